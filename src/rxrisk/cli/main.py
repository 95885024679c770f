"""The ``rxrisk`` entry point: parse the arguments, run the command, turn what happens into an
exit code and one line on stderr (usage and input errors 2, anything else 1, Ctrl-C 130,
SIGTERM 143), and leave no spill file behind."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading

from rxrisk.cli.options import build_parser
from rxrisk.cli.progress import one_line
from rxrisk.errors import InputError

#: --threads range (more threads than cores are not used: numba caps them at the cores)
THREADS_RANGE = (1, 1024)
#: Commands that read claims (see :func:`ready_claims_process`).
CLAIMS_COMMANDS = ("score", "edits", "report", "measures")
#: Objects allocated between two collections of the youngest generation in a claims command's
#: process (Python's default: 700). Its imports and numba's set-up allocate about a million
#: objects; collecting every 700 of them took a tenth of a warm run. Cycles are still collected.
GC_YOUNG_OBJECTS = 10_000
#: The variables OpenBLAS reads its thread count from, in its order of precedence.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
#: The variable numpy reads, at import, whether to advise huge pages for its large arrays.
NUMPY_HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


def _subparser(parser: argparse.ArgumentParser, name: str | None):
    """The parser of subcommand ``name`` (``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse ``argv`` with one-line usage errors and the --threads range check.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser of :func:`rxrisk.cli.options.build_parser`.
    argv : list of str or None
        The arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    tuple
        ``(args, None)``, or ``(None, exit code)`` after --help, --version, a usage error (one
        line on stderr) or no arguments at all (the help, exit 0).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return None, 0
    try:
        args, extra = parser.parse_known_args(argv)
        sub = _subparser(parser, getattr(args, "command", None))
        if getattr(args, "config_command", None):
            sub = _subparser(sub, args.config_command)
        if extra:
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
        threads = getattr(args, "threads", None)
        lo, hi = THREADS_RANGE
        if threads is not None and not lo <= threads <= hi:
            sub.error(
                f"--threads {threads}: out of range; give a whole number between {lo} and {hi:,}"
            )
    except SystemExit as exc:
        code = exc.code
        return None, (0 if code is None else code if isinstance(code, int) else 2)
    return args, None


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the run like KeyboardInterrupt does for SIGINT, so temporary
    outputs and spill files are removed on the way out (not an Exception: nothing catches it
    by accident)."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut clean-up short
    raise Terminated


def _committed() -> int:
    """Runs whose outputs this process has committed (without importing the writers)."""
    outputs = sys.modules.get("rxrisk.io.outputs")
    return getattr(outputs, "committed_runs", 0) if outputs is not None else 0


def _interrupted(what: str, before: int) -> None:
    written = "its outputs were written" if _committed() > before else "no output was written"
    print(f"rxrisk: {what}; {written}", file=sys.stderr)


class _NoPandas:
    """An import finder that reports pandas missing (see :func:`settle_pyarrow_without_pandas`)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name=name)
        return None


def settle_pyarrow_without_pandas() -> None:
    """Let pyarrow settle its pandas check, in this process, as if pandas were not installed.

    pyarrow imports pandas, when it is installed, the first time it converts Python values to
    Arrow (a scalar, a list, a compute function's literal argument), to recognise pandas
    objects among them; its C++ and Python sides then keep the answer. A command reads files,
    so no pandas object can reach pyarrow, and the pandas import (a fifth of a warm ``score``)
    buys nothing. The check is settled here with pandas hidden for a moment (while no other
    thread imports); pandas is importable again afterwards, so code that asks for pandas itself
    still gets it. Nothing is done when pandas is already imported.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa  # third party: only when a claims command runs, not for --help

    hide = _NoPandas()
    sys.meta_path.insert(0, hide)
    try:
        pa.array([0])  # pyarrow's C++ check (it converts Python values)
        pa.lib._pandas_api.have_pandas  # noqa: B018 - reading it runs pyarrow's Python check
    except AttributeError:  # another pyarrow: its checks run later, as they would
        pass
    finally:
        sys.meta_path.remove(hide)


def one_blas_thread() -> bool:
    """Give numpy's OpenBLAS one thread in this process, before numpy is imported; returns
    whether it was set.

    At import, OpenBLAS starts a thread for every further core, and each spins for a while
    waiting for work: about 0.11 s of CPU per process on the 2-core machine this was measured
    on (``import numpy`` then a 0.5 s sleep: 0.19 s of user CPU, 0.08 s with one thread),
    taken from the reader and the checks. rxrisk calls no BLAS routine (no matrix products,
    no ``numpy.linalg``). Nothing is changed when numpy is already imported (too late) or
    when the user set any of :data:`BLAS_THREAD_VARIABLES`.
    """
    if "numpy" in sys.modules or any(os.environ.get(v) for v in BLAS_THREAD_VARIABLES):
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    return True


def no_numpy_hugepage_advice() -> bool:
    """Tell numpy, before it is imported, not to advise the kernel to back its large arrays
    with transparent huge pages; returns whether it was set.

    numpy advises huge pages (``madvise(MADV_HUGEPAGE)``) for every array of 4 MiB or more.
    Where the system's transparent huge pages are ``madvise`` (a common default, and this
    machine's), such a region's first touch makes the kernel find, compact and clear a whole
    2 MiB page: encoding the 1M-member book's tracked rows for the first time in a process
    (streamed in first, as ``score`` does) spent 0.55 s in the kernel with the advice and
    0.08 s without, and ``score`` took 4.46 s rather than 4.74 s (system 0.64 s rather than
    1.05 s; medians of 7 alternating rounds, see ``docs/streaming.md``). Nothing is changed when numpy is already imported (too late) or
    when the user set ``NUMPY_MADVISE_HUGEPAGE``; child processes inherit the setting.
    """
    if "numpy" in sys.modules or os.environ.get(NUMPY_HUGEPAGE_VARIABLE):
        return False
    os.environ[NUMPY_HUGEPAGE_VARIABLE] = "0"
    return True


def ready_claims_process(args) -> None:
    """Ready the process of a claims command (local engine) run as the command: pyarrow's pandas
    check settled without pandas, the garbage collector's youngest generation at
    :data:`GC_YOUNG_OBJECTS`, and the memory allocator picked for the size of the book
    (:func:`rxrisk.cli.allocator.pick_allocator`)."""
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])  # before the imports begin
    settle_pyarrow_without_pandas()
    from rxrisk.cli.allocator import pick_allocator  # lazy: reads the inputs' metadata

    pick_allocator(args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``rxrisk`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success; 2 usage or input error (one line on stderr); 1 anything else
        (one line; ``RXRISK_DEBUG=1`` raises instead); 130 after Ctrl-C; 143 after SIGTERM.

    Notes
    -----
    Called without ``argv``, as the command is (the console script, ``python -m rxrisk``), the
    process exits next: every object is then frozen out of the garbage collector
    (:func:`gc.freeze`), so Python's collections at exit skip the object graph that numba,
    pyarrow and pandas built (walking and freeing it was most of the time a warm ``score``
    took to exit). Exit hooks (``atexit``) still run; the memory goes back to the system with
    the process. Such a process gives numpy's OpenBLAS one thread (:func:`one_blas_thread`)
    and asks numpy for no huge pages (:func:`no_numpy_hugepage_advice`).
    A claims command on the local engine, run as the command, first readies its
    process (:func:`ready_claims_process`: pyarrow without pandas, fewer collections, the
    allocator for the size of its book).
    """
    args, code = parse_args(build_parser(), argv)
    if args is None:
        return code
    if argv is None:  # the command's own process (Notes)
        one_blas_thread()
        no_numpy_hugepage_advice()
    if argv is None and getattr(args, "command", None) in CLAIMS_COMMANDS:
        if getattr(args, "engine", "local") == "local":  # the command's own process (Notes)
            ready_claims_process(args)
    before = _committed()
    old_term = None
    finished = False
    try:
        if threading.current_thread() is threading.main_thread():
            old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        code = args.func(args)
        finished = True
        return code
    except InputError as exc:
        print(f"rxrisk: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _interrupted("interrupted", before)
        return 130
    except Terminated:
        _interrupted("terminated (SIGTERM)", before)
        return 128 + signal.SIGTERM
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("RXRISK_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"rxrisk: internal error: {type(exc).__name__}: {msg} (set RXRISK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        spool = sys.modules.get("rxrisk.engines.spool")
        if not finished and spool is not None:  # spill folders of a store left open mid-way
            spool.remove_live_spills()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if argv is None:  # the command: the process exits next (see Notes)
            gc.freeze()

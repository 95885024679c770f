"""What the command line prints while it works: the progress line on stderr, the run summary
of the intake (rows read, rejected by reason, warnings) and the first-run notice while numba
compiles the kernels. Nothing here imports numba, pyarrow or the kernels."""

from __future__ import annotations

import os
import sys
import time


class Progress:
    """Progress on stderr: a line as each stage ends and, on long streaming runs, a running
    count (rows read, partitions done) with its rate, redrawn in place at most once a second."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.open_line = False

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, stage: str, n: int | None = None) -> None:
        extra = f" ({n:,} rows)" if n is not None else ""
        self.end_line()
        print(
            f"rxrisk: {stage} done at {self._elapsed():6.1f}s{extra}", file=sys.stderr, flush=True
        )

    def tick(self, what: str, n: int) -> None:
        now = self._elapsed()
        if now - self.last < 1.0:
            return
        self.last = now
        rate = f" ({n / now:,.0f}/s)" if "rows" in what and now > 0 else ""
        sys.stderr.write(f"\r\x1b[Krxrisk: {what}: {n:,}{rate} at {now:6.1f}s")
        sys.stderr.flush()
        self.open_line = True

    def end_line(self) -> None:
        """End the running count's line, if one is open."""
        if self.open_line:
            sys.stderr.write("\n")
            self.open_line = False


def progress_printer(enabled: bool) -> Progress | None:
    """A :class:`Progress` when progress should show (stderr is a terminal, no --quiet)."""
    return Progress() if enabled else None


def command_progress(args, command: str):
    """The progress of ``command`` (None where it does not show: stderr is not a terminal, or
    --quiet), with the first-run notice when its kernels will compile."""
    return with_notice(progress_printer(not args.quiet and sys.stderr.isatty()), command)


def one_line(text: str) -> str:
    """A message on one line: line breaks inside it (a file name may hold one) are escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def print_intake(args, audit: dict) -> None:
    """The run summary (rows read, in scope, rejected by reason) and the warnings, on
    stderr whether or not it is a terminal, unless --quiet."""
    if args.quiet:
        return
    from rxrisk.ingest.intake import summary_lines  # lazy: pulls pyarrow.compute

    names = {"pharmacy": str(args.pharmacy)}
    if args.medical:
        names["medical"] = str(args.medical)
    for line in summary_lines(audit, names):
        print(one_line(line), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------- first-run notice

#: The kernel modules each command runs (nested kernels included), for the first-run notice.
COMMAND_KERNELS = {
    "score": (
        "dictionary",
        "distinct",
        "events",
        "fills",
        "grouping",
        "member_scores",
        "strings",
        "timeline",
        "windows",
    ),
    "edits": ("dictionary", "edits", "fills", "grouping", "strings"),
    "report": ("dictionary", "fills", "grouping", "strings", "timeline"),
    "measures": ("dictionary", "fills", "grouping", "measures", "strings", "timeline"),
}
#: Rough cold-compile seconds per module on 2 cores (kernels called from another kernel
#: compile with it and count there). Measured with numba's compile events, CPU seconds of a
#: first run on a 200-member book (2026-12-06): edits 12.5, grouping 6.8, member_scores 4.6,
#: measures 3.9, strings 2.1, dictionary 1.9, timeline 0.4 (only ``report`` calls it itself).
COMPILE_SECONDS = {
    "edits": 12,
    "grouping": 7,
    "member_scores": 5,
    "measures": 4,
    "dictionary": 2,
    "strings": 2,
}


def kernel_cache_dir() -> str:
    """The folder where compiled rxrisk kernels are saved (``NUMBA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/rxrisk/numba``, in a sub-folder named after the kernel sources' path),
    worked out without importing numba or the kernels."""
    from rxrisk.kernels._cache_files import user_cache_dir  # lazy: only when a command runs

    return str(user_cache_dir())


def kernels_to_compile(command: str) -> list[str]:
    """The kernel modules of ``command`` that neither the user cache nor the cache shipped with
    the package holds for these kernel sources.

    Parameters
    ----------
    command : str
        A subcommand name, e.g. ``"score"``.

    Returns
    -------
    list of str
        The modules with no index file that numba would use for this Python, this numba and
        these kernel sources: what the next run will compile. Empty when nothing compiles (all
        cached, JIT disabled, or a command without kernels).
    """
    from importlib.metadata import PackageNotFoundError, version  # slow: only when run

    from rxrisk.kernels._cache_files import cached_modules  # lazy: only when a command runs

    modules = COMMAND_KERNELS.get(command, ())
    if not modules or os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return []
    try:
        numba_version = version("numba")
    except PackageNotFoundError:  # pragma: no cover - numba is a dependency
        numba_version = None
    found = cached_modules(modules, numba_version)
    return [module for module in modules if module not in found]


def compile_notice(command: str) -> str | None:
    """The first-run line for ``command``.

    Parameters
    ----------
    command : str
        A subcommand name, e.g. ``"score"``.

    Returns
    -------
    str or None
        What to print before numba compiles (with the rough time it takes and, when the cache
        folder is not writable, how to make it compile only once); None when its kernels are
        cached.
    """
    missing = kernels_to_compile(command)
    if not missing:
        return None
    seconds = sum(COMPILE_SECONDS.get(m, 0) for m in missing)
    seconds = max(5, 5 * round(seconds / 5))
    folder = kernel_cache_dir()
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.access(folder, os.W_OK):  # numba then compiles in memory on every run
        return (
            f"compiling kernels (about {seconds} s on 2 cores, on every run: {folder} is not "
            "writable; set NUMBA_CACHE_DIR to a writable folder to compile only once)"
        )
    return f"compiling kernels (first run only, about {seconds} s on 2 cores)"


class NoticingProgress:
    """Progress that prints the first-run compile notice when the first stage ends or the
    first running count comes (numba compiles right after reading starts), then passes
    everything on to the :class:`Progress` it wraps. A run whose kernels run as Python (a
    small book: the tier is chosen when the read ends) compiles nothing and says nothing."""

    def __init__(self, inner: Progress, notice: str):
        self.inner = inner
        self.notice = notice

    def _note(self) -> None:
        from rxrisk.kernels._jit import python_tier  # lazy: only once a stage has ended

        if self.notice is not None and python_tier():  # a small book: nothing compiles
            self.notice = None
        if self.notice is not None:
            self.inner.end_line()
            print(f"rxrisk: {self.notice}", file=sys.stderr, flush=True)
            self.notice = None

    def __call__(self, stage: str, n: int | None = None) -> None:
        self.inner(stage, n)
        self._note()

    def tick(self, what: str, n: int) -> None:
        self._note()
        self.inner.tick(what, n)


def with_notice(progress: Progress | None, command: str):
    """``progress`` wrapped to print the first-run notice when ``command`` will compile (only
    where progress shows: stderr is a terminal and no --quiet)."""
    notice = None if progress is None else compile_notice(command)
    return progress if notice is None else NoticingProgress(progress, notice)

"""``rxrisk compile``: compile every kernel now, into the user cache or (``--shipped``) into the
cache folder shipped inside the package, by running each command once on a small generated book
(and the parallel sort once on a million keys)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rxrisk.errors import InputError

#: Members of the generated book the commands run on (every kernel is reached but the parallel
#: sort; seconds to run).
BOOK_MEMBERS = 300
#: The parallel sort runs only on a million keys or more, which the book never has: it is
#: compiled by sorting that many keys directly.
SORT_RUN = (
    "import numpy as np\n"
    "from rxrisk.io.arrow import SORT_KERNEL_MIN_KEYS, sort_uint64\n"
    "keys = np.arange(SORT_KERNEL_MIN_KEYS, 0, -1, dtype=np.uint64)\n"
    "assert (sort_uint64(keys) == keys[::-1]).all()\n"
)


def kernel_runs(book: Path, out: Path) -> list[tuple[str, list[str]]]:
    """The command lines (after ``rxrisk``) that call every kernel: each claims command in
    memory and streamed.

    Parameters
    ----------
    book : Path
        A folder written by ``rxrisk generate``.
    out : Path
        A folder for the outputs.

    Returns
    -------
    list of (str, list of str)
        A label and the arguments of each run.
    """
    ph, md = str(book / "pharmacy.parquet"), ["--medical", str(book / "medical.parquet")]
    enrollment = ["--eligibility", str(book / "eligibility.parquet")]
    enrollment += ["--members", str(book / "members.parquet"), "--year", "2025"]
    streamed = ["--stream", "--partitions", "2", "--memory-budget", "0"]
    runs = []
    for mode, extra in (("in memory", ["--in-memory"]), ("streamed", streamed)):
        tag = mode.split()[-1]
        scores = out / f"scores-{tag}.parquet"
        mode_runs = [
            (f"score, {mode}", ["score", ph, *md, "--as-of", "2025-12-31", "--out", str(scores)]),
            (f"edits, {mode}", ["edits", ph, *md, "--out", str(out / f"edits-{tag}.parquet")]),
            (
                f"report, {mode}",
                ["report", str(scores), "--pharmacy", ph, *md, "--out", str(out / f"r-{tag}")],
            ),
            (
                f"measures, {mode}",
                ["measures", ph, *md, *enrollment, "--out", str(out / f"m-{tag}.parquet")],
            ),
        ]
        runs += [(label, [*args, *extra, "--quiet"]) for label, args in mode_runs]
    return runs


def cmd_compile(args) -> int:
    """``rxrisk compile``: run every command once on a generated book in child processes, so
    that numba compiles and caches every kernel.

    Parameters
    ----------
    args : argparse.Namespace
        ``shipped`` (bool: compile into the package's own cache folder, for wheel builds and
        images) and ``quiet``.

    Returns
    -------
    int
        The exit code, 0. A folder that cannot be written, or ``NUMBA_DISABLE_JIT`` set,
        raises :class:`~rxrisk.errors.InputError`; a failed run, RuntimeError.
    """
    from rxrisk.config.kernel_tier import TIER_ENV  # lazy: run only
    from rxrisk.kernels import _cache_files as files  # lazy: run only (no numba)

    if os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0"):
        raise InputError(
            "rxrisk compile: NUMBA_DISABLE_JIT is set, so the kernels run as plain Python and "
            "there is nothing to compile; unset NUMBA_DISABLE_JIT to compile them"
        )
    env = dict(os.environ)
    env.pop(files.BUILD_ENV, None)
    env[TIER_ENV] = "compiled"  # the book is small: under auto its kernels would run as Python
    if args.shipped:
        env[files.BUILD_ENV] = "1"
        folder, fix = files.SHIPPED_DIR, "run it as the owner of the install"
        if not files.writable(folder):
            raise InputError(f"rxrisk compile --shipped: cannot write {folder}; {fix}")
    else:
        folder = files.save_dir()
        if folder is None:
            raise InputError(
                f"rxrisk compile: cannot write {files.user_cache_dir()}; set NUMBA_CACHE_DIR "
                "to a writable folder"
            )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rxrisk-compile-") as tmp:
        book, out = Path(tmp) / "book", Path(tmp) / "out"
        out.mkdir()
        generate = ["generate", "--members", str(BOOK_MEMBERS), "--seed", "1", "--out", str(book)]
        runs = [("sample book", [*generate, "--quiet"]), *kernel_runs(book, out)]
        commands = [(label, ["-m", "rxrisk.cli", *argv]) for label, argv in runs]
        commands.append(("parallel sort", ["-c", SORT_RUN]))
        for label, argv in commands:
            if not args.quiet:
                print(f"rxrisk compile: {label} ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, *argv],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise RuntimeError(f"rxrisk compile: {label} failed ({done.returncode}): {last}")
    if not args.quiet:
        seconds = time.perf_counter() - started
        where = "the install's shipped cache" if args.shipped else "the user cache"
        print(
            f"rxrisk compile: every kernel is compiled and cached ({where}, {folder}) "
            f"in {seconds:.0f}s",
            file=sys.stderr,
        )
    return 0

"""The one jit decorator factory of the kernels (like datashader's ``ngjit``).

Every kernel is compiled in nopython mode with ``cache=True``. The on-disk cache goes to
``NUMBA_CACHE_DIR`` when the user set it; otherwise to ``$XDG_CACHE_HOME/rxrisk/numba``
(``~/.cache/rxrisk/numba``), so that a read-only install (site-packages owned by root, a
container image) still caches. When no such folder is writable, caching is turned off and
the kernels are compiled in memory on first call, which is slower but correct.

Kernels never read module globals for configuration (numba freezes globals at compile
time) and never call ``numba.get_num_threads()`` (it disables caching): the thread or chunk
count is passed in as an argument. :func:`each_chunk` runs a kernel over chunks on threads.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
from numba.core import config as _numba_config


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True):
            pass
        return True
    except OSError:
        return False


def _configure_cache() -> bool:
    """Point numba's cache at a writable folder; return whether caching is possible."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return _writable(Path(os.environ["NUMBA_CACHE_DIR"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    target = Path(base) / "rxrisk" / "numba"
    if _writable(target):
        _numba_config.CACHE_DIR = str(target)
        return True
    return False


CACHE_ENABLED = _configure_cache()


def ngjit(*args, parallel: bool = False, **kwargs):
    """Decorate a kernel: nopython, cached when possible, optionally parallel.

    Usable bare (``@ngjit``) or with options (``@ngjit(parallel=True)``).
    """
    options = {"nopython": True, "nogil": True, "cache": CACHE_ENABLED, "parallel": parallel}
    options.update(kwargs)
    if len(args) == 1 and callable(args[0]):
        return numba.jit(**options)(args[0])
    return numba.jit(*args, **options)


def each_chunk(kernel, n_chunks, *args):
    """Run ``kernel(c, *args)`` for every chunk ``c`` in ``0 .. n_chunks - 1`` on
    ``numba.get_num_threads()`` threads: the calling thread and a pool of the others, each
    taking the next chunk until none is left (the kernels are ``nogil``: chunks run at once).

    The parallel drivers of the kernels are this plain Python loop rather than a ``prange``:
    numba's parallel lowering compiles every driver (and everything it calls) again, which
    cost most of the first run's compile time. Chunks must write disjoint outputs; the result
    then does not depend on the thread count.
    """
    n_threads = min(numba.get_num_threads(), n_chunks)
    if n_threads <= 1:
        for c in range(n_chunks):
            kernel(c, *args)
        return
    next_chunk = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        for c in next_chunk:
            if c >= n_chunks:
                return
            kernel(c, *args)

    with ThreadPoolExecutor(n_threads - 1) as pool:
        helpers = [pool.submit(work) for _ in range(n_threads - 1)]
        work()
        for done in helpers:
            done.result()  # re-raises a chunk's exception

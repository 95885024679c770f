"""The one jit decorator factory of the kernels (like datashader's ``ngjit``).

Every kernel is compiled in nopython mode with ``cache=True``. The on-disk cache goes to
``NUMBA_CACHE_DIR`` when the user set it; otherwise to ``$XDG_CACHE_HOME/rxrisk/numba``
(``~/.cache/rxrisk/numba``), so that a read-only install (site-packages owned by root, a
container image) still caches. When no such folder is writable, caching is turned off and
the kernels are compiled in memory on first call, which is slower but correct.

Kernels never read module globals for configuration (numba freezes globals at compile
time) and never call ``numba.get_num_threads()`` (it disables caching): the thread or chunk
count is passed in as an argument.
"""

from __future__ import annotations

import os
import tempfile
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

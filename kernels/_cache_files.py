"""Where the compiled kernels are cached and whether a cache index fits these kernel sources:
the one owner of the kernel cache layout (nothing of numba is imported here).

Two folders hold numba cache files (``<module>.<function>-<line>.pyXY.nbi`` indexes and their
``.nbc`` data files):

- the **shipped** folder, ``_cache`` next to the kernel sources, filled when the wheel is built
  (``rxrisk compile --shipped``, run by ``setup.py``): read-only at run time, so a fresh or
  read-only install loads compiled kernels instead of compiling them;
- the **user** folder, where kernels compiled at run time are saved: ``$NUMBA_CACHE_DIR`` when
  set, else ``$XDG_CACHE_HOME/rxrisk/numba`` (``~/.cache/rxrisk/numba``), in a sub-folder named
  after the kernel sources' path (as numba names it); none when no such folder is writable.

Every index carries a stamp of *all* the kernel sources (:func:`source_stamp`), not only of the
file that defines the function: a kernel that inlines a helper from another kernel file is then
compiled again when that helper changes, which numba's own per-file stamp misses.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import sys
import tempfile
from pathlib import Path

#: The folder of the kernel sources.
KERNELS_DIR = Path(os.path.abspath(os.path.dirname(__file__)))
#: The cache shipped with the package (built with the wheel).
SHIPPED_DIR = KERNELS_DIR / "_cache"
#: Set to ``1`` by ``rxrisk compile --shipped``: kernels are compiled into :data:`SHIPPED_DIR`.
BUILD_ENV = "RXRISK_KERNEL_CACHE_BUILD"


def writable(path: Path) -> bool:
    """Whether ``path`` exists or can be made, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True):
            pass
        return True
    except OSError:
        return False


def user_cache_dir() -> Path:
    """The user cache folder of these kernel sources (whether or not it is writable)."""
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "rxrisk",
        "numba",
    )
    src = str(KERNELS_DIR)
    return Path(base) / f"{os.path.basename(src)}_{hashlib.sha1(src.encode()).hexdigest()}"


def save_dir() -> Path | None:
    """The folder compiled kernels are saved to: the shipped one while it is being built, else
    the user folder when it is writable, else None (compiled in memory on every run)."""
    if os.environ.get(BUILD_ENV) == "1":
        return SHIPPED_DIR if writable(SHIPPED_DIR) else None
    folder = user_cache_dir()
    return folder if writable(folder) else None


@functools.cache
def source_stamp() -> bytes:
    """sha256 of every kernel source file (names and bytes, in name order) and this Python's
    version: the stamp every cache index must carry to be used."""
    digest = hashlib.sha256(f"py{sys.version_info[0]}.{sys.version_info[1]}".encode())
    for path in sorted(KERNELS_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


class _Stub:
    """Stands for every class while an index file is read: nothing of numba is imported and
    nothing of the file runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _IndexReader(pickle.Unpickler):
    """Reads a numba index file with every class it names replaced by :class:`_Stub`."""

    def find_class(self, module, name):
        return _Stub


def index_is_fresh(index: Path, numba_version: str | None) -> bool:
    """Whether numba will use the index file ``index``: written by this numba version (None:
    any) with the stamp of these kernel sources."""
    try:
        with open(index, "rb") as f:  # numba's version, then the pickled (stamp, overloads)
            written_by = _IndexReader(f).load()
            stamp = _IndexReader(io.BytesIO(f.read())).load()[0]
    except Exception:  # noqa: BLE001 - unreadable or another layout: not used
        return False
    if numba_version is not None and written_by != numba_version:
        return False
    return stamp == source_stamp()


def cached_modules(modules, numba_version: str | None) -> set[str]:
    """The kernel modules among ``modules`` with a fresh index in the user or shipped folder."""
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    found = set()
    for folder in (user_cache_dir(), SHIPPED_DIR):
        if not folder.is_dir():
            continue
        for module in modules:
            if module not in found and any(
                index_is_fresh(index, numba_version)
                for index in folder.glob(f"{module}.*.{tag}.nbi")
            ):
                found.add(module)
    return found

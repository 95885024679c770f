"""The one jit decorator factory of the kernels (like datashader's ``ngjit``).

Every kernel is compiled in nopython mode and cached on disk by :class:`KernelCache`, which
reads first the user cache folder and then the cache shipped with the package, and saves what it
compiles to the user folder (:mod:`rxrisk.kernels._cache_files` owns the layout). A fresh install
therefore loads the kernels compiled when the wheel was built, and a read-only install (no
writable cache folder anywhere) does too; only a kernel missing from both (another numba, another
CPU, edited kernel sources) is compiled, and then kept in memory when no folder is writable.

Kernels never read module globals for configuration (numba freezes globals at compile
time) and never call ``numba.get_num_threads()`` (it disables caching): the thread or chunk
count is passed in as an argument. :func:`each_chunk` runs a kernel over chunks on threads.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    _CacheLocator,
)
from numba.core.dispatcher import Dispatcher

from rxrisk.kernels._cache_files import SHIPPED_DIR, save_dir, source_stamp

#: Where compiled kernels are saved (None: nowhere writable, kept in memory).
SAVE_DIR = save_dir()


class _KernelLocator(_CacheLocator):
    """numba cache locator of a kernel: the save folder (else the shipped one), stamped with
    every kernel source."""

    def __init__(self, py_func, py_file):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = str(SAVE_DIR if SAVE_DIR is not None else SHIPPED_DIR)

    def ensure_cache_path(self):
        if SAVE_DIR is not None:
            super().ensure_cache_path()

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return source_stamp()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_KernelLocator]


class KernelCache(FunctionCache):
    """numba's function cache over two folders: loads from the save folder, then from the
    shipped cache; saves to the save folder only (nothing when there is none)."""

    _impl_class = _KernelCacheImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        shipped = None
        if SAVE_DIR != SHIPPED_DIR and SHIPPED_DIR.is_dir():
            shipped = IndexDataCacheFile(
                cache_path=str(SHIPPED_DIR),
                filename_base=self._impl.filename_base,
                source_stamp=source_stamp(),
            )
        self._shipped = shipped

    def load_overload(self, sig, target_context):
        """Load the kernel compiled for ``sig``, or None.

        numba's own version first refreshes the whole target context, which imports and
        registers every typing and lowering module numba has (about 0.2 s in each process):
        that is needed to compile, not to load machine code. Only the runtime the loaded code
        calls into is initialised here; a miss is compiled by numba's compiler, which
        refreshes the context itself.
        """
        from numba.core.runtime import rtsys

        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        data = self._cache_file.load(key) if SAVE_DIR is not None else None
        if data is None and self._shipped is not None:
            data = self._shipped.load(key)
        return None if data is None else self._impl.rebuild(target_context, data)

    def _save_overload(self, sig, data):
        if SAVE_DIR is not None:
            super()._save_overload(sig, data)


def ngjit(*args, parallel: bool = False, **kwargs):
    """Decorate a kernel: nopython, nogil, cached by :class:`KernelCache`, optionally parallel.

    Usable bare (``@ngjit``) or with options (``@ngjit(parallel=True)``).
    """
    options = {"nopython": True, "nogil": True, "cache": False, "parallel": parallel}
    options.update(kwargs)
    if len(args) == 1 and callable(args[0]):
        return _cached(numba.jit(**options)(args[0]))
    decorate = numba.jit(*args, **options)
    return lambda func: _cached(decorate(func))


def _cached(dispatcher):
    """``dispatcher`` with :class:`KernelCache` as its cache (a plain function under
    ``NUMBA_DISABLE_JIT=1`` is returned as it is)."""
    if isinstance(dispatcher, Dispatcher):
        dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher


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

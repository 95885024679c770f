"""numba's function cache over the two kernel cache folders (imported with numba, on the first
compiled call: :mod:`rxrisk.kernels._jit` does not import numba before then).

:class:`KernelCache` reads first the user cache folder and then the cache shipped with the
package, and saves what it compiles to the user folder (:mod:`rxrisk.kernels._cache_files` owns
the layout). A fresh install therefore loads the kernels compiled when the wheel was built, and a
read-only install (no writable cache folder anywhere) does too; only a kernel missing from both
(another numba, another CPU, edited kernel sources) is compiled, and then kept in memory when no
folder is writable.
"""

from __future__ import annotations

from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    _CacheLocator,
)

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

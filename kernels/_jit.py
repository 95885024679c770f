"""The one jit decorator factory of the kernels (like datashader's ``ngjit``), and the two tiers
a kernel runs in.

A kernel is a :class:`Kernel`: its Python function and, made on its first compiled call, a numba
dispatcher (nopython, nogil, cached on disk by :class:`~rxrisk.kernels._kernel_cache.KernelCache`).
A call runs in one of two tiers:

- **compiled** (the default): the numba dispatcher, loaded from the cache or compiled;
- **python**: the kernel's Python function as it is, for a run whose book is so small that
  importing numba and loading compiled kernels would take longer than the work (about 0.35 s
  of a warm start). The run's code picks the tier (:func:`use_python_tier`) for its own
  context (:mod:`contextvars`): a run in another thread, or after this one, is not affected.
  Both tiers run the same source and give the same bytes.

This module imports numba only when a kernel is first called in the compiled tier, so a small
book, ``rxrisk --help`` and ``import rxrisk`` never load it.

Kernels never read module globals for configuration (numba freezes globals at compile time) and
never call ``numba.get_num_threads()`` (it disables caching): the thread or chunk count is passed
in as an argument. :func:`each_chunk` runs a kernel over chunks on threads.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

#: Whether the kernels called in this context run as Python (the python tier).
_PYTHON_TIER = contextvars.ContextVar("rxrisk_kernels_python_tier", default=False)
#: Guards the one-time numba set-up and the helpers registered with it.
_NUMBA_LOCK = threading.Lock()
#: Helpers waiting to be registered with numba (``register_jitable``) once it is loaded.
_JITABLE: list = []
#: Whether numba is loaded and set up (:func:`_load_numba`).
_numba_ready = False
#: The ``--threads`` setting in force (None: numba's default, every core).
_threads: int | None = None


def use_python_tier(on: bool) -> None:
    """Run the kernels called from now on in this context as Python (``on``) or compiled.

    A run calls it once, for its own context: the public entry points run in a copy of their
    caller's (:func:`own_context`), so the choice ends with the run.
    """
    _PYTHON_TIER.set(bool(on))


def python_tier() -> bool:
    """Whether the kernels called in this context run as Python."""
    return _PYTHON_TIER.get()


def own_context(func):
    """Decorate an entry point: it runs in a copy of its caller's context, so the kernel tier
    its run picks ends when it returns."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        return contextvars.copy_context().run(func, *args, **kwargs)

    return run


def submit(pool: ThreadPoolExecutor, fn, *args):
    """``pool.submit(fn, *args)`` in a copy of the calling context (the pool's threads then use
    the caller's kernel tier)."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


def _default_threads() -> int:
    """numba's default thread count, without importing numba: ``NUMBA_NUM_THREADS``, else the
    cores this process may run on."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None) -> int:
    """Apply ``--threads`` (None: keep the setting in force) and return the thread count in force.

    Kept here, and handed to numba when it is (or once it gets) loaded, so that the python tier
    never imports numba for it. ``n`` is capped at numba's maximum (``NUMBA_NUM_THREADS``).
    """
    global _threads
    if n is not None:
        _threads = max(1, min(int(n), _default_threads()))
        if "numba" in sys.modules:
            sys.modules["numba"].set_num_threads(_threads)
    return threads()


def threads() -> int:
    """The thread count in force: the ``--threads`` setting, else numba's (when loaded), else
    numba's default."""
    if _threads is not None:
        return _threads
    if "numba" in sys.modules:
        return sys.modules["numba"].get_num_threads()
    return _default_threads()


def jitable(func):
    """Decorate a small helper usable both from Python and inside kernels (numba's
    ``register_jitable``, applied once numba is loaded): returns ``func`` itself."""
    with _NUMBA_LOCK:
        _JITABLE.append(func)
        if _numba_ready:
            _register_jitables()
    return func


def _register_jitables() -> None:
    """Register the waiting :func:`jitable` helpers with numba (the lock held)."""
    from numba.extending import register_jitable

    while _JITABLE:
        register_jitable(_JITABLE.pop())


def _load_numba() -> None:
    """One-time numba set-up, on the first compiled call: numba learns that a :class:`Kernel`
    names its dispatcher, and the :func:`jitable` helpers; the ``--threads`` setting is
    applied."""
    global _numba_ready
    if _numba_ready:  # always so while a kernel compiles (this runs before the first compile)
        return
    with _NUMBA_LOCK:
        if _numba_ready:
            return
        import numba
        from numba.extending import typeof_impl

        @typeof_impl.register(Kernel)
        def _typeof_kernel(kernel, context):
            return typeof_impl(kernel.dispatcher, context)

        _register_jitables()
        if _threads is not None:
            numba.set_num_threads(_threads)
        _numba_ready = True


class Kernel:
    """A kernel: its Python function, run as Python in the python tier and through a numba
    dispatcher (made on the first compiled call) in the compiled tier.

    Parameters
    ----------
    py_func : callable
        The kernel's source function.
    options : dict
        numba jit options (``nopython``, ``nogil``, ``parallel``, ``inline``, ...).

    Notes
    -----
    Inside a kernel, a call to another kernel is typed by numba as a call to that kernel's
    dispatcher; a kernel decorated with ``inline="always"`` is inlined by numba from
    :attr:`py_func` and :attr:`targetoptions` without a dispatcher of its own.
    """

    def __init__(self, py_func, options: dict):
        self.py_func = py_func
        self.targetoptions = options
        self._dispatcher = None
        functools.update_wrapper(self, py_func)

    @property
    def dispatcher(self):
        """The numba dispatcher (made, and numba loaded, on first use; two threads that make
        it at once keep the first one stored, before either compiles)."""
        if self._dispatcher is None:
            _load_numba()
            made = _make_dispatcher(self.py_func, self.targetoptions)
            with _NUMBA_LOCK:
                if self._dispatcher is None:
                    self._dispatcher = made
        return self._dispatcher

    @property
    def signatures(self) -> list:
        """The signatures compiled or loaded so far (none before the first compiled call; this
        makes no dispatcher)."""
        return list(getattr(self._dispatcher, "signatures", ()))  # none under NUMBA_DISABLE_JIT

    def __call__(self, *args):
        if _PYTHON_TIER.get():
            return self.py_func(*args)
        if self.targetoptions.get("parallel") and _threads is not None:
            dispatcher = self.dispatcher
            sys.modules["numba"].set_num_threads(_threads)  # numba's setting is per thread
            return dispatcher(*args)
        return self.dispatcher(*args)

    def __repr__(self) -> str:
        return f"<rxrisk kernel {self.py_func.__module__}.{self.py_func.__qualname__}>"


def _make_dispatcher(py_func, options: dict):
    """A numba dispatcher of ``py_func`` with the kernel cache (under ``NUMBA_DISABLE_JIT=1``,
    ``py_func`` itself)."""
    import numba
    from numba.core.dispatcher import Dispatcher

    from rxrisk.kernels._kernel_cache import KernelCache  # lazy: it imports numba

    dispatcher = numba.jit(**options)(py_func)
    if isinstance(dispatcher, Dispatcher):
        dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher


def ngjit(*args, parallel: bool = False, **kwargs):
    """Decorate a kernel: nopython, nogil, cached by the kernel cache, optionally parallel;
    returns a :class:`Kernel`.

    Usable bare (``@ngjit``) or with options (``@ngjit(parallel=True)``).
    """
    options = {"nopython": True, "nogil": True, "cache": False, "parallel": parallel}
    options.update(kwargs)
    if len(args) == 1 and callable(args[0]):
        return Kernel(args[0], options)
    if args:
        raise TypeError("ngjit takes a function or keyword options only")
    return lambda func: Kernel(func, options)


def each_chunk(kernel, n_chunks, *args):
    """Run ``kernel(c, *args)`` for every chunk ``c`` in ``0 .. n_chunks - 1`` on
    :func:`threads` threads: the calling thread and a pool of the others, each taking the next
    chunk until none is left (the kernels are ``nogil``: chunks run at once). In the python tier
    the chunks run one after another on the calling thread.

    The parallel drivers of the kernels are this plain Python loop rather than a ``prange``:
    numba's parallel lowering compiles every driver (and everything it calls) again, which
    cost most of the first run's compile time. Chunks must write disjoint outputs; the result
    then does not depend on the thread count.
    """
    n_threads = 1 if _PYTHON_TIER.get() else min(threads(), n_chunks)
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

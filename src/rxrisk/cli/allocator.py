"""The memory allocator of a claims command's process, picked from the size of its inputs.

A run that holds its whole book's tracked rows at once (one member partition: every run of the
in-memory path and a streamed book of up to ``StreamOptions.rows_per_partition`` input rows)
allocates and frees the same large buffers batch after batch: the Parquet decoder's column
buffers, the checks' masks, the taken rows. From Arrow's default allocator (mimalloc) most of
them came back as fresh pages, which the kernel clears first: on the 2-core machine this was
measured on, 14-23% of a 1M-member ``score``'s CPU samples were page clearing, and its system
time swung from 0.6 to 3.4 s between runs. Such a run therefore uses the C library's allocator
(Arrow's ``system`` pool) with blocks of up to :data:`HEAP_BLOCK_BYTES` served from the heap,
freed memory kept for reuse rather than handed back, and one heap per core (at most
:data:`MAX_ARENAS`): the same command then spent 1.0 s in the kernel rather than 2.8 s and
took 5.95 s rather than 6.55 s (medians of 9 alternating rounds of one install with and
without it). What is kept is given back when the process ends.

A larger book is streamed in several partitions with a memory bound of its own, which memory
kept for reuse would break (the 20M-member book's peak grew from 5.2 to 8.5 GiB in an earlier
experiment that ran it on Arrow's ``system`` pool with glibc keeping freed memory), so it keeps
Arrow's default. So does a process whose Arrow pool the user chose (``ARROW_DEFAULT_MEMORY_POOL``),
a run given ``--partitions`` or ``--memory-budget``, a run whose input sizes are unknown before
reading (CSV, streams), and a process on a C library other than glibc (the settings are
glibc's; its allocator without them was slower than mimalloc).
"""

from __future__ import annotations

import ctypes
import os

#: glibc ``mallopt`` parameters (``malloc.h``)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Blocks up to this size come from the heap and are reused once freed (glibc's largest
#: setting; its default moves between 128 KiB and this as blocks are freed).
HEAP_BLOCK_BYTES = 32 << 20
#: Free memory at the top of a heap kept before any is handed back (glibc's largest setting).
KEEP_FREE_BYTES = (1 << 31) - 1
#: At most this many heaps (glibc's default is 8 per core: each keeps its own free memory).
MAX_ARENAS = 8


def book_rows(args) -> int | None:
    """Rows of the command's claims inputs (pharmacy and, when given, medical) from their
    metadata; None when any count is unknown before reading."""
    from rxrisk.engines.batches import input_rows  # lazy: pulls pyarrow

    total = 0
    for source in (getattr(args, "pharmacy", None), getattr(args, "medical", None)):
        if source is None:
            continue
        rows = input_rows(source)
        if rows is None:
            return None
        total += rows
    return total


def single_partition(args) -> bool:
    """Whether the command's run holds its whole book at once: input rows known and at most
    one streaming partition's worth, and no ``--partitions`` / ``--memory-budget`` asked for."""
    if getattr(args, "partitions", None) is not None:
        return False
    if getattr(args, "memory_budget", None) is not None:
        return False
    from rxrisk.engines.stream import StreamOptions  # lazy: pulls pyarrow.compute

    rows = book_rows(args)
    return rows is not None and rows <= StreamOptions.rows_per_partition


def _glibc():
    """The process's C library when it is glibc (with ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover - no C library to load
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    return libc


def use_heap_allocator() -> bool:
    """Switch this process to the C library's allocator with the settings of the module's
    description: glibc's ``mallopt`` first, then Arrow's ``system`` pool for every allocation
    from here on (buffers made before keep their pool). Returns whether it was done (False,
    and nothing changed, on another C library or when a setting is refused)."""
    libc = _glibc()
    if libc is None:
        return False
    arenas = max(2, min(MAX_ARENAS, os.cpu_count() or 2))
    settings = (
        (M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES),
        (M_TRIM_THRESHOLD, KEEP_FREE_BYTES),
        (M_ARENA_MAX, arenas),
    )
    for param, value in settings:
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            return False  # settings made so far only move glibc's limits; Arrow is untouched
    import pyarrow as pa  # third party: only when a claims command runs

    pa.set_memory_pool(pa.system_memory_pool())
    return True


def pick_allocator(args) -> bool:
    """Use the heap allocator (:func:`use_heap_allocator`) when the command's run holds its
    whole book at once (:func:`single_partition`) and the user did not choose Arrow's pool.
    Returns whether the allocator was switched."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return False
    if not single_partition(args):
        return False
    return use_heap_allocator()

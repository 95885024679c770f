"""Partitioned row storage for the streaming path: in memory up to a byte budget, then in
Arrow IPC spill files (one per partition), read back one partition at a time.

Rows keep their arrival order within a partition, so a partition read back is in input order.
Spill files are compressed (:data:`SPILL_CODEC`): a few tenths of the Arrow bytes, read back to
the same values and record batches.
Spill folders are named after the process that owns them (:mod:`rxrisk.io.runfiles`); the first
spill into a folder removes the spill folders that killed runs left there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from rxrisk.errors import InputError
from rxrisk.io.runfiles import spill_name, sweep_spill

_live: set[Path] = set()  # spill folders of this process not yet removed by Spool.close

#: Codec of the spill files. On the claim keys and tracked fills of a generated 1M-member
#: book (166 MB as uncompressed Arrow), lz4 (frame) wrote 94 MB for about 0.4 CPU seconds,
#: written and read back; zstd level 1 wrote 50 MB for twice the CPU time or more.
SPILL_CODEC = "lz4"


@functools.cache
def spill_write_options() -> ipc.IpcWriteOptions:
    """IPC write options of the spill files: :data:`SPILL_CODEC` (none on a pyarrow build
    without it; the reader finds each file's codec in the file), compressing on the calling
    thread (with Arrow's thread pool, a streamed 1M-member book peaked at 2.0 GB of memory
    instead of 1.2 GB)."""
    if not pa.Codec.is_available(SPILL_CODEC):
        return ipc.IpcWriteOptions(use_threads=False)
    return ipc.IpcWriteOptions(compression=SPILL_CODEC, use_threads=False)


def remove_live_spills() -> None:
    """Remove every spill folder this process still has (the CLI calls it when a run ends by
    an error or a signal, whatever point the run had reached)."""
    for folder in list(_live):
        shutil.rmtree(folder, ignore_errors=True)
        _live.discard(folder)


def sweep_spill_root(root=None) -> list[Path]:
    """Remove the spill folders of killed runs from ``root`` (default: the system temporary
    folder); see :mod:`rxrisk.io.runfiles`."""
    return sweep_spill(os.path.realpath(root if root is not None else tempfile.gettempdir()))


class Spool:
    """Rows split into ``n_parts`` partitions.

    Parameters
    ----------
    name : str
        Prefix of the spill files (``{name}-{part:05d}.arrow``).
    n_parts : int
        Number of partitions.
    budget_bytes : int
        Bytes held in memory before everything moves to spill files (0: spill at once).
    spill_dir : path or None
        Folder for the spill files (a private folder named after this process is made inside
        it, or in the system temporary folder when None, and removed by :meth:`close`).
    """

    def __init__(self, name: str, n_parts: int, *, budget_bytes: int, spill_dir=None):
        self.name = name
        self.n_parts = int(n_parts)
        self.budget_bytes = int(budget_bytes)
        self.spill_root = spill_dir
        self.rows = 0
        self.bytes_in_memory = 0
        self.schema: pa.Schema | None = None
        self._memory: list[list[pa.Table]] = [[] for _ in range(self.n_parts)]
        self._dir: Path | None = None
        self._writers: dict[int, ipc.RecordBatchFileWriter] = {}

    @property
    def spilled(self) -> bool:
        return self._dir is not None

    def add(self, table: pa.Table, part: np.ndarray | None = None) -> None:
        """Append the rows of ``table`` to their partitions (``part`` per row; -1 drops the
        row; None puts every row in partition 0)."""
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if part is None:
            pieces = [(0, table)] if table.num_rows else []
        elif self.n_parts == 1:
            keep = part >= 0
            table = table if keep.all() else table.filter(pa.array(keep))
            pieces = [(0, table)] if table.num_rows else []
        else:
            # a stable sort of 16-bit partition numbers is numpy's O(n) radix sort
            small = part.astype(np.int16) if self.n_parts < (1 << 15) else part
            order = np.argsort(small, kind="stable")
            counts = np.bincount(part[part >= 0], minlength=self.n_parts)
            first = len(part) - int(counts.sum())  # the -1 rows sort first
            taken = table.take(pa.array(order[first:]))
            bounds = np.concatenate([[0], np.cumsum(counts)])
            pieces = [
                (p, taken.slice(int(bounds[p]), int(counts[p])))
                for p in range(self.n_parts)
                if counts[p]
            ]
        for p, piece in pieces:
            self.rows += piece.num_rows
            if self.spilled:
                self._write(p, piece)
            else:
                self._memory[p].append(piece)
                self.bytes_in_memory += piece.nbytes
        if not self.spilled and self.bytes_in_memory > self.budget_bytes:
            self._spill()

    def _spill(self) -> None:
        root = self.spill_root
        if root is not None and not Path(root).is_dir():
            raise InputError(f"--spill-dir {root}: no such folder; create it or choose another")
        base = Path(root if root is not None else tempfile.gettempdir())
        sweep_spill_root(base)
        path = base / spill_name(self.name)
        try:
            path.mkdir(mode=0o700)
        except OSError as exc:
            raise InputError(
                f"--spill-dir {base}: cannot create a spill folder there "
                f"({exc.strerror or type(exc).__name__}); choose another folder"
            ) from None
        _live.add(path)
        self._dir = path
        for p, pieces in enumerate(self._memory):
            for piece in pieces:
                self._write(p, piece)
        self._memory = [[] for _ in range(self.n_parts)]
        self.bytes_in_memory = 0

    def _write(self, p: int, piece: pa.Table) -> None:
        w = self._writers.get(p)
        if w is None:
            path = self._dir / f"{self.name}-{p:05d}.arrow"
            w = ipc.new_file(str(path), self.schema, options=spill_write_options())
            self._writers[p] = w
        w.write_table(piece)

    def finish(self) -> None:
        """Close the spill files (call once, after the last :meth:`add`)."""
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    def read(self, p: int) -> pa.Table | None:
        """The rows of partition ``p`` in arrival order (None when it has none)."""
        if self.spilled:
            path = self._dir / f"{self.name}-{p:05d}.arrow"
            if not path.exists():
                return None
            with pa.OSFile(str(path)) as f:
                return ipc.open_file(f).read_all()
        pieces = self._memory[p]
        return pa.concat_tables(pieces) if pieces else None

    def release(self, p: int) -> None:
        """Forget partition ``p`` (its memory or its spill file)."""
        if self.spilled:
            with contextlib.suppress(FileNotFoundError):
                (self._dir / f"{self.name}-{p:05d}.arrow").unlink()
        else:
            self.bytes_in_memory -= sum(t.nbytes for t in self._memory[p])
            self._memory[p] = []

    def close(self) -> None:
        """Close writers and remove every spill file."""
        for w in self._writers.values():
            with contextlib.suppress(Exception):
                w.close()
        self._writers.clear()
        self._memory = [[] for _ in range(self.n_parts)]
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            _live.discard(self._dir)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

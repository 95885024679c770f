"""Writing the synthetic book: blocks in order, one file per table or parts, the summary.

Members are generated in blocks of :data:`BLOCK_MEMBERS`, each from its own child of
``numpy.random.SeedSequence(seed)``; blocks are also cut at part boundaries. A block's eligibility
spans and birth dates (:mod:`~rxrisk.synthetic.enrollment`) come from another child of the seed,
never from the claims' stream, so the claims are the same with or without them. A writer thread
streams each block's tables to the Parquet writer while the next block is generated; outputs get
temporary names and are renamed when complete, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rxrisk.config.reference import DRUG_CLASSES, load_reference
from rxrisk.days import day_of
from rxrisk.io.runfiles import sweep_outputs, temp_name
from rxrisk.synthetic.archetypes import Archetypes, draw_archetypes
from rxrisk.synthetic.block import Block
from rxrisk.synthetic.catalog import Catalog
from rxrisk.synthetic.enrollment import (
    ELIGIBILITY_SCHEMA,
    MEMBERS_SCHEMA,
    EnrollmentFrame,
    enrollment_tables,
)
from rxrisk.synthetic.everyday_drugs import (
    other_tracked_classes,
    untracked_acute_fills,
    untracked_maintenance_fills,
)
from rxrisk.synthetic.medical import medical_events
from rxrisk.synthetic.opioids import opioid_fills, treatment_fills
from rxrisk.synthetic.pools import Pools
from rxrisk.synthetic.strings import digit_strings
from rxrisk.synthetic.tables import (
    MEDICAL_SCHEMA,
    PHARMACY_SCHEMA,
    finish_medical,
    finish_pharmacy,
)

#: Members per generation block: the unit of the random streams (and of memory use).
BLOCK_MEMBERS = 100_000

_PART_NAME = re.compile(r"part-\d+\.parquet")
_CLAIM_KINDS = ("pharmacy", "medical")
_ENROLLMENT_KINDS = ("eligibility", "members")
_SCHEMAS = {
    "pharmacy": PHARMACY_SCHEMA,
    "medical": MEDICAL_SCHEMA,
    "eligibility": ELIGIBILITY_SCHEMA,
    "members": MEMBERS_SCHEMA,
}
#: Child of ``SeedSequence(seed)`` whose children are the blocks' enrollment streams (the
#: claims use children 0 and 1).
_ENROLLMENT_STREAM = 2


def generate_block(blk: Block) -> Archetypes:
    """Draw all pharmacy fills and medical rows of a block; return its members' archetypes.

    The order of the steps is the order of the random draws, hence part of the output: a step
    moved is a different book.

    Parameters
    ----------
    blk : Block
        A new block; its rows collect in ``blk.ph`` and ``blk.md``.

    Returns
    -------
    Archetypes
        The member masks (the enrollment draws chronic users, shoppers and MAT members as
        adults).
    """
    blk.place_members()
    kinds = draw_archetypes(blk)
    untracked_maintenance_fills(blk)
    untracked_acute_fills(blk)
    opioid_fills(blk, kinds)
    treatment_fills(blk, kinds)
    other_tracked_classes(blk, kinds)
    medical_events(blk, kinds)
    return kinds


def _kinds(enrollment: bool) -> tuple[str, ...]:
    """The tables of a book, in summary order."""
    return _CLAIM_KINDS + (_ENROLLMENT_KINDS if enrollment else ())


def _pieces(members: int, part_members: int):
    """``(index, part, first, n, last_of_part)`` of each generation block, in order.

    Blocks follow the grid of :data:`BLOCK_MEMBERS` and are also cut at part boundaries, so a block
    never spans two parts. When ``part_members`` is a multiple of :data:`BLOCK_MEMBERS` (or covers
    the whole book) the blocks are exactly those of a single-file book.
    """
    first, index = 0, 0
    while first < members:
        part = first // part_members
        part_end = min(members, (part + 1) * part_members)
        stop = min(part_end, (first // BLOCK_MEMBERS + 1) * BLOCK_MEMBERS)
        yield index, part, first, stop - first, stop == part_end
        first, index = stop, index + 1


def _child(root: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """``root.spawn(n)[i]`` for any ``n > i``, without making the ``n`` children."""
    return np.random.SeedSequence(
        root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size
    )


def _check_parts_folder(path: Path) -> None:
    """A parts folder may only replace an earlier parts folder (``part-*.parquet`` files only)."""
    if not path.exists():
        return
    if not path.is_dir() or any(not _PART_NAME.fullmatch(p.name) for p in path.iterdir()):
        raise FileExistsError(
            f"{path} exists and is not a folder of part-*.parquet files from an earlier run; "
            "remove it or choose another output folder"
        )


def _checked(members, part_members, start, end, row_group_size) -> tuple[int, int | None]:
    """The validated ``(members, part_members)`` of :func:`generate_book`."""
    members = int(members)
    if members < 1:
        raise ValueError("members must be at least 1")
    if part_members is not None:
        part_members = int(part_members)
        if part_members < 1:
            raise ValueError("part_members must be at least 1")
    if not isinstance(start, dt.date) or not isinstance(end, dt.date):
        raise TypeError("start and end must be datetime.date")
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    if int(row_group_size) < 1:
        raise ValueError("row_group_size must be at least 1")
    return members, part_members


class _Layout:
    """Where the book goes: final and temporary paths, and the file of each part."""

    def __init__(self, out: Path, members: int, part_members: int | None, kinds: tuple):
        self.out = out
        self.part_members = part_members
        self.kinds = kinds
        if part_members is None:
            self.n_parts = 1
            self.final = {k: out / f"{k}.parquet" for k in kinds}
            self.tmp = {k: out / temp_name(v.name) for k, v in self.final.items()}
        else:
            self.n_parts = -(-members // part_members)
            self.width = max(5, len(str(self.n_parts - 1)))
            self.final = {k: out / k for k in kinds}
            for path in self.final.values():
                _check_parts_folder(path)
            self.tmp = {k: out / temp_name(k) for k in kinds}

    def part_path(self, kind: str, part: int) -> Path:
        """The (temporary) file of ``part`` of table ``kind``."""
        if self.part_members is None:
            return self.tmp[kind]
        return self.tmp[kind] / f"part-{part:0{self.width}d}.parquet"

    def publish(self) -> None:
        """Rename the finished temporary outputs to their final names (replacing earlier ones)."""
        tmp, final = self.tmp, self.final
        if self.part_members is None:
            for k in final:
                os.replace(tmp[k], final[k])
            return
        for dest in final.values():
            _check_parts_folder(dest)  # it may have changed while generating
        for k, dest in final.items():
            if dest.exists():
                old = dest.with_name(temp_name(dest.name, "old"))
                os.replace(dest, old)
                os.replace(tmp[k], dest)
                shutil.rmtree(old)
            else:
                os.replace(tmp[k], dest)

    def discard(self) -> None:
        """Remove the temporary outputs (after a failure)."""
        for p in self.tmp.values():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass


class _Book:
    """What all blocks share: the date range, the catalog, the pools and the random streams."""

    def __init__(
        self, members: int, seed: int, start: dt.date, end: dt.date, reference, enrollment
    ):
        self.members = members
        self.seed = int(seed)
        self.start, self.end = start, end
        self.n_days = (end - start).days + 1
        self.epoch_start = day_of(start)
        self.id_width = max(8, len(str(members)))
        root = np.random.SeedSequence(int(seed))
        pool_seq, self.block_root = root.spawn(2)
        pool_rng = np.random.default_rng(pool_seq)
        self.catalog = Catalog(reference, pool_rng)
        self.pools = Pools(members, pool_rng)
        self.claim_base = 1
        self.frame = EnrollmentFrame.of_book(members, self.id_width, start, end)
        self.enrollment_root = _child(root, _ENROLLMENT_STREAM) if enrollment else None

    def block_tables(self, index: int, first: int, n: int):
        """Generate block ``index`` (members ``first .. first + n - 1``) and finish its tables.

        Returns ``(tables, pharmacy_stats, medical_stats, archetype_counts, enrollment_counts)``
        with ``tables`` by kind (eligibility and members only when the book has them;
        ``enrollment_counts`` is then ``None``); claim numbers continue from the previous block.
        """
        rng = np.random.default_rng(_child(self.block_root, index))
        blk = Block(rng, self.catalog, self.pools, first, n, self.n_days, self.id_width)
        kinds = generate_block(blk)
        member_ids = digit_strings(b"M", np.arange(first + 1, first + n + 1), self.id_width)
        ph, ph_stats, self.claim_base = finish_pharmacy(
            blk, rng, self.claim_base, self.epoch_start, member_ids
        )
        md, md_stats = finish_medical(blk, rng, self.epoch_start, member_ids)
        tables = {"pharmacy": ph, "medical": md}
        enrollment_counts = None
        if self.enrollment_root is not None:
            erng = np.random.default_rng(_child(self.enrollment_root, index))
            adult = kinds.chronic | kinds.shopper | kinds.mat
            elig, mem, enrollment_counts = enrollment_tables(erng, self.frame, first, n, adult)
            tables.update(eligibility=elig, members=mem)
        return tables, ph_stats, md_stats, blk.counts, enrollment_counts


class _Totals:
    """The running counts of the summary."""

    def __init__(self):
        self.by_class = np.zeros(len(DRUG_CLASSES) + 1, np.int64)
        self.rows = {"pharmacy": 0, "medical": 0}
        self.ph_special: dict[str, int] = {
            "reversal_rows": 0,
            "rebill_rows": 0,
            "duplicate_rows": 0,
        }
        self.md_special: dict[str, int] = {}
        self.archetypes: dict[str, int] = {}
        self.enrollment: dict[str, int] | None = None

    def add(self, tables: dict, ph_stats: dict, md_stats: dict, counts: dict, enrollment) -> int:
        """Count a block; return the claim rows (pharmacy + medical) so far."""
        for kind in _ENROLLMENT_KINDS:
            if kind in tables:
                self.rows[kind] = self.rows.get(kind, 0) + tables[kind].num_rows
        if enrollment is not None:
            self.enrollment = self.enrollment or {}
            for key, v in enrollment.items():
                self.enrollment[key] = self.enrollment.get(key, 0) + v
        self.rows["pharmacy"] += ph_stats["rows"]
        self.rows["medical"] += md_stats["rows"]
        self.by_class += ph_stats["by_class"]
        for key in ("reversal_rows", "rebill_rows", "duplicate_rows"):
            self.ph_special[key] += ph_stats[key]
        for key, v in ph_stats["kinds"].items():
            self.ph_special[key] = self.ph_special.get(key, 0) + v
        for key, v in md_stats["kinds"].items():
            self.md_special[key] = self.md_special.get(key, 0) + v
        for key, v in counts.items():
            self.archetypes[key] = self.archetypes.get(key, 0) + v
        return self.rows["pharmacy"] + self.rows["medical"]

    def summary(self, book: _Book, layout: _Layout, t0: float) -> dict:
        """The summary returned by :func:`generate_book`."""
        names = ("untracked", *DRUG_CLASSES)
        return {
            "members": book.members,
            "seed": book.seed,
            "start": book.start.isoformat(),
            "end": book.end.isoformat(),
            "paths": {k: str(v) for k, v in layout.final.items()},
            "parts": None if layout.part_members is None else layout.n_parts,
            "part_members": layout.part_members,
            "pharmacy_rows": self.rows["pharmacy"],
            "medical_rows": self.rows["medical"],
            "rows": self.rows,
            "pharmacy_rows_by_class": {name: int(self.by_class[i]) for i, name in enumerate(names)},
            "pharmacy_special": self.ph_special,
            "medical_special": self.md_special,
            "archetypes": self.archetypes,
            "measurement_year": book.frame.year,
            "eligibility_rows": self.rows.get("eligibility"),
            "members_rows": self.rows.get("members"),
            "enrollment": self.enrollment,
            "seconds": round(time.perf_counter() - t0, 3),
        }


class _PartWriter:
    """The open Parquet writers of the current part (used by the writer thread only)."""

    def __init__(self, layout: _Layout, row_group_size: int):
        self.layout = layout
        self.row_group_size = row_group_size
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, part: int, tables: dict[str, pa.Table], last: bool) -> None:
        """Append a block's tables (by kind) to ``part``; close the part's files after its last
        block."""
        opts = {"compression": "zstd", "use_dictionary": False}
        writers = self.writers
        if not writers:
            path = self.layout.part_path
            for kind in self.layout.kinds:
                writers[kind] = pq.ParquetWriter(path(kind, part), _SCHEMAS[kind], **opts)
        for kind in self.layout.kinds:
            writers[kind].write_table(tables[kind], row_group_size=self.row_group_size)
        if last:
            for w in writers.values():
                w.close()
            writers.clear()

    def close_quietly(self) -> None:
        """Close what is open (after a failure; the writer thread has stopped)."""
        for w in self.writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - cleaning up after the real error
                pass


class _Progress:
    """Calls ``progress(stage, rows)`` after each block (one file per table) or each part."""

    def __init__(self, progress, members: int, layout: _Layout):
        self.progress = progress
        self.members = members
        self.layout = layout
        self.t = time.perf_counter()
        self.rows = 0

    def restart(self) -> None:
        """Start the clock of the first part."""
        self.t = time.perf_counter()

    def report(self, part: int, done: int, n_rows: int, last: bool) -> None:
        """A block of ``part`` is written: ``done`` members and ``n_rows`` rows so far."""
        if self.progress is None:
            return
        members = self.members
        if self.layout.part_members is None:
            self.progress(f"members {done:,}/{members:,}", n_rows)
        elif last:
            now = time.perf_counter()
            part_rows = n_rows - self.rows
            rate = part_rows / max(now - self.t, 1e-9)
            self.t, self.rows = now, n_rows
            self.progress(
                f"part {part + 1}/{self.layout.n_parts} (members {done:,}/{members:,}; "
                f"{part_rows:,} rows, {rate:,.0f} rows/s)",
                n_rows,
            )


def _write_blocks(book: _Book, layout: _Layout, totals: _Totals, writer, progress) -> None:
    """Generate and write the blocks in order; a block's write overlaps the next's generation."""
    members = book.members
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rxrisk-generate-write") as pool:
        pending = None
        progress.restart()
        for index, part, first, nb, last in _pieces(members, layout.part_members or members):
            tables, *stats = book.block_tables(index, first, nb)
            n_rows = totals.add(tables, *stats)
            if pending is not None:
                pending[0].result()
                progress.report(*pending[1:])
            pending = (
                pool.submit(writer.write, part, tables, last),
                part,
                first + nb,
                n_rows,
                last,
            )
            del tables
        if pending is not None:
            pending[0].result()
            progress.report(*pending[1:])


def _write_book(book: _Book, layout: _Layout, totals: _Totals, writer, progress) -> None:
    """Write all blocks to temporary outputs, then publish them; on failure leave nothing."""
    try:
        if layout.part_members is not None:
            for path in layout.tmp.values():
                path.mkdir()
        _write_blocks(book, layout, totals, writer, progress)
        layout.publish()
    except BaseException:
        writer.close_quietly()
        layout.discard()
        raise


def generate_book(
    out_dir,
    *,
    members: int,
    seed: int = 0,
    start: dt.date = dt.date(2025, 1, 1),
    end: dt.date = dt.date(2025, 12, 31),
    row_group_size: int = 1_000_000,
    progress: Callable[[str, int], None] | None = None,
    reference: pa.Table | None = None,
    part_members: int | None = None,
    enrollment: bool = True,
) -> dict:
    """Write a synthetic book to ``out_dir/{pharmacy,medical,eligibility,members}.parquet``, or
    with ``part_members`` to the folders ``out_dir/pharmacy/``, ``medical/``, ... of parts.

    Memory is bounded by one block of :data:`BLOCK_MEMBERS` members in both layouts (blocks are
    streamed to the Parquet writer), so a book of any size may be written as one file per table;
    parts only split the output into files of ``part_members`` members each.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Target folder (created if missing). Outputs are written to temporary names in it and
        renamed when complete; on failure no partial output is left behind.
    members : int
        Number of members (``M`` + zero-padded number, 1-based, unique in the whole book).
    seed : int
        Seed of ``numpy.random.SeedSequence``; the same arguments give byte-identical files.
    start, end : datetime.date
        Inclusive date range of fills and services; rates are per member-year.
    row_group_size : int
        Maximum rows per Parquet row group (each block of members starts a new group).
    progress : callable, optional
        ``progress(stage, n)`` with ``n`` the rows (pharmacy + medical) written so far. One file
        per table: called each time a block of members has been written, with
        ``stage = "members 100,000/1,000,000"``. Parts: called each time a part has been written,
        with ``stage = "part 1/20 (members 1,000,000/20,000,000; 19,711,042 rows, 1,050,000
        rows/s)"`` (rows and rate of that part).
    reference : pyarrow.Table, optional
        Drug reference; defaults to :func:`rxrisk.config.reference.load_reference`.
    part_members : int, optional
        Write ``pharmacy/part-00000.parquet``, ``part-00001.parquet``, ... and the same names in
        the other tables' folders: part ``p`` holds members ``p*part_members + 1`` to
        ``min((p+1)*part_members, members)``. Part names sort in generation order (five digits,
        more if needed), so the folders are inputs of :func:`rxrisk.score` as they are. Parts are
        written one after the other and closed when complete. Member ids, claim numbers and the
        prescriber/pharmacy pools are those of the whole book; reversals and duplicates stay
        within their part. When ``part_members`` is a multiple of :data:`BLOCK_MEMBERS` the rows,
        read in part order, are exactly those of the single-file book of the same
        ``(members, seed)``; otherwise blocks are also cut at part boundaries (still
        deterministic for the same ``part_members``). Existing folders are replaced, but only if
        they hold nothing but ``part-*.parquet`` files. Default: one file per table.
    enrollment : bool
        Also write eligibility and members (:mod:`~rxrisk.synthetic.enrollment`; same claims).

    Returns
    -------
    dict
        ``members``, ``seed``, ``start``, ``end``, ``paths`` (files, or folders with parts),
        ``parts`` and ``part_members`` (None for one file per table), ``pharmacy_rows``,
        ``medical_rows``, ``rows`` (the same, per table),
        ``pharmacy_rows_by_class`` (by the class of the generated drug, ``untracked`` included;
        rows whose NDC was then corrupted still count under it), ``pharmacy_special`` (reversal,
        rebill and duplicate rows and each defect/oddity kind), ``medical_special``,
        ``archetypes`` (member counts), ``measurement_year``, ``eligibility_rows``,
        ``members_rows``, ``enrollment`` (pattern counts; None without it), ``seconds``.
    """
    t0 = time.perf_counter()
    members, part_members = _checked(members, part_members, start, end, row_group_size)
    layout = _Layout(Path(out_dir), members, part_members, _kinds(enrollment))
    if reference is None:
        reference = load_reference()
    layout.out.mkdir(parents=True, exist_ok=True)
    sweep_outputs(layout.out)  # temporary files of killed runs (only those whose owner is dead)
    book = _Book(members, seed, start, end, reference, enrollment)
    totals = _Totals()
    writer = _PartWriter(layout, int(row_group_size))
    _write_book(book, layout, totals, writer, _Progress(progress, members, layout))
    return totals.summary(book, layout, t0)

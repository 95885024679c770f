"""Batch readers of the streaming engine: any supported source read batch by batch (Parquet
file or folder, Arrow IPC, CSV, Arrow table or stream), with the row count when it is known
before reading, and the command line's choice of streaming by input size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from rxrisk.errors import InputError
from rxrisk.ingest import sources


@dataclass
class BatchSource:
    """An input read batch by batch: a name for messages, the full schema, the row count
    when known without reading (Parquet / IPC metadata, tables), and the batches."""

    name: str
    schema: pa.Schema
    rows: int | None
    batches: Iterator[pa.Table]


def open_batches(
    source, *, label: str, batch_rows: int, columns=None, dictionary_columns=None
) -> BatchSource:
    """Open ``source`` (as :func:`rxrisk.ingest.sources.read_source` accepts) for batch reading.

    ``columns``: a function of the schema giving the column names to read (None: all).
    ``dictionary_columns``: the text columns a Parquet input is read with as dictionaries
    (None: :data:`rxrisk.ingest.sources.DICTIONARY_COLUMNS`).
    """
    pick = (lambda schema: schema.names) if columns is None else columns
    if isinstance(source, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        sources.unique_names(source.schema.names, f"{label} input")
    if isinstance(source, pa.Table):
        return BatchSource(
            label,
            source.schema,
            source.num_rows,
            (
                pa.Table.from_batches([b])
                for b in source.select(pick(source.schema)).to_batches(batch_rows)
            ),
        )
    if isinstance(source, pa.RecordBatch):
        return open_batches(
            pa.Table.from_batches([source]), label=label, batch_rows=batch_rows, columns=columns
        )
    if isinstance(source, pa.RecordBatchReader) or (
        hasattr(source, "__arrow_c_stream__") and not isinstance(source, (str, Path))
    ):
        reader = (
            source
            if isinstance(source, pa.RecordBatchReader)
            else pa.RecordBatchReader.from_stream(source)
        )
        sources.unique_names(reader.schema.names, f"{label} input")
        return BatchSource(label, reader.schema, None, _reader_tables(reader, pick))
    if isinstance(source, (str, Path)):
        if dictionary_columns is None:
            dictionary_columns = sources.DICTIONARY_COLUMNS
        return _open_path(Path(source), label, batch_rows, pick, dictionary_columns)
    raise InputError(
        f"{label} input: cannot read an object of type {type(source).__name__}; "
        "pass a pyarrow Table, a RecordBatchReader, an Arrow C stream (polars, pandas via pyarrow) or a file path"
    )


def _reader_tables(reader, pick) -> Iterator[pa.Table]:
    names = pick(reader.schema)
    for b in reader:
        yield pa.Table.from_batches([b]).select(names)


def _open_path(path: Path, label: str, batch_rows: int, pick, dictionary_columns) -> BatchSource:
    if not path.exists():
        raise InputError(f"{label} input {path}: no such file or folder; check the path")
    name = path.name.lower()

    def fail(exc) -> InputError:
        return sources.read_error(path, label, exc)

    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            dataset = sources.parquet_dataset(
                path, label, pre_buffer=False, dictionary_columns=dictionary_columns
            )
            schema = dataset.schema
            rows = dataset.count_rows()
            batches = row_group_batches(dataset, pick(schema), batch_rows)
        elif name.endswith((".arrow", ".feather", ".ipc")):
            mm = pa.memory_map(str(path))
            try:
                reader = ipc.open_file(mm)
                schema, rows = reader.schema, reader.count_rows()
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                mm.seek(0)
                reader = ipc.open_stream(mm)
                schema, rows, batches = reader.schema, None, iter(reader)
            sources.unique_names(schema.names, f"{label} input {path}")
        elif name.endswith(sources.CSV_SUFFIXES):
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=64 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types=sources.all_text_types(path, label),
                    strings_can_be_null=False,
                    null_values=[],
                ),
            )
            schema, rows, batches = reader.schema, None, iter(reader)
        else:
            raise InputError(
                f"{label} input {path}: unknown file type; use .parquet (or a folder of them), .arrow/.feather, or .csv/.csv.gz"
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise fail(exc) from None

    names = pick(schema)

    def tables() -> Iterator[pa.Table]:
        it = iter(batches)
        while True:
            try:
                b = next(it)
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as exc:
                raise fail(exc) from None
            t = pa.Table.from_batches([b])
            yield t.select(names) if t.column_names != names else t

    return BatchSource(str(path), schema, rows, tables())


def row_group_batches(dataset, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of a Parquet dataset (:func:`rxrisk.ingest.sources.parquet_dataset`), read
    a run of row groups at a time (:func:`row_group_runs`), the next run decoding on Arrow's
    threads while the caller works on this one's batches.

    Arrow's dataset scanner, once asked for a file's batches, decodes the whole file as fast
    as it can whatever its ``batch_readahead``, and keeps what the caller has not taken yet:
    a slow caller holds a decoded file in memory (the 1M-member book's 302 MB pharmacy file
    filled 2.1 GB when its first batch was left untaken). Scanning a run of row groups at a
    time bounds that to the run being worked on and the next one.

    Parameters
    ----------
    dataset : pyarrow.dataset.FileSystemDataset
        Parquet parts in read order, with the unified schema each part is read in.
    columns : list of str
        The columns to read, in the order of the batches' columns.
    batch_rows : int
        Most rows per batch; batches also end where row groups end.

    Yields
    ------
    pyarrow.RecordBatch
    """
    runs = row_group_runs(dataset, batch_rows)

    def start(run) -> Iterator[pa.RecordBatch]:  # decoding begins here, not at next()
        return run.to_batches(
            schema=dataset.schema, columns=columns, batch_size=batch_rows, batch_readahead=1
        )

    ahead = next(runs, None)
    scan = start(ahead) if ahead is not None else None
    while scan is not None:
        ahead = next(runs, None)
        current, scan = scan, (start(ahead) if ahead is not None else None)
        yield from current


def row_group_runs(dataset, batch_rows: int) -> Iterator:
    """The row groups of each part of a Parquet dataset in runs of consecutive row groups of
    at least ``batch_rows`` rows (a part's last run may hold fewer), one fragment each.

    A run is one row group when row groups are at least a batch (pyarrow writes 1,048,576
    rows a row group by default); files of many small row groups are not scanned a row group
    at a time (a scan costs about 0.2 ms to start: 400 row groups of 1,000 rows took 0.13 s
    that way against 0.05 s for the whole-file scanner).
    """
    for part in dataset.get_fragments():
        part.ensure_complete_metadata()  # the part's row groups, from its footer
        ids, rows = [], 0
        for group in part.row_groups:
            ids.append(group.id)
            rows += group.num_rows
            if rows >= batch_rows:
                yield part.subset(row_group_ids=ids)
                ids, rows = [], 0
        if ids:
            yield part.subset(row_group_ids=ids)


#: inputs with at least this many rows are streamed by default on the command line
AUTO_STREAM_ROWS = 5_000_000
#: CSV files have no row count: stream from this size on (about 60 bytes a row)
AUTO_STREAM_CSV_BYTES = 300 << 20


def input_rows(source) -> int | None:
    """Rows of a Parquet file or folder or Arrow IPC file from its metadata (nothing is read),
    or of a table; None for anything else (CSV, streams) and anything unreadable (the reader
    then reports the problem)."""
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return source.num_rows
    if not isinstance(source, (str, Path)):
        return None
    path = Path(source)
    name = path.name.lower()
    try:
        if path.is_file() and name.endswith((".parquet", ".pq")):  # its footer only
            return pq.read_metadata(path).num_rows
        if path.is_dir():
            import pyarrow.dataset as ds  # lazy: slow to import; a folder needs it

            return ds.dataset(path, format="parquet").count_rows()
        if path.is_file() and name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as mm:
                return ipc.open_file(mm).count_rows()
    except (pa.ArrowInvalid, OSError):
        return None
    return None


def should_stream(source) -> bool:
    """Whether the CLI streams ``source`` by default: a Parquet file or folder or Arrow IPC
    file of at least :data:`AUTO_STREAM_ROWS` rows (:func:`input_rows`), or a CSV file of at
    least :data:`AUTO_STREAM_CSV_BYTES`. Anything unreadable: False (the reader then reports
    the problem)."""
    if not isinstance(source, (str, Path)):
        return False
    path = Path(source)
    if path.name.lower().endswith(sources.CSV_SUFFIXES):
        try:
            return path.stat().st_size >= AUTO_STREAM_CSV_BYTES
        except OSError:
            return False
    rows = input_rows(path)
    return rows is not None and rows >= AUTO_STREAM_ROWS


def engine_columns(required, optional):
    def pick(schema: pa.Schema) -> list[str]:
        return [n for n in schema.names if n in required or n in optional]

    return pick


def timed_batches(
    src: BatchSource, clock, stage: str, label: str
) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, batch) pairs of ``src``; time spent waiting on the reader counts as
    "read", the rest as ``stage``; ``label`` names the running count of rows read."""
    r0 = 0
    it = iter(src.batches)
    empty = True
    while True:
        clock.lap(stage, quiet=True)
        try:
            t = next(it)
        except StopIteration:
            break
        clock.lap("read", quiet=True)
        empty = False
        yield r0, t
        r0 += t.num_rows
        clock.tick(f"{label} rows read", r0)
    if empty:  # no batch at all: still check the schema on zero rows
        clock.lap("read", quiet=True)
        yield 0, src.schema.empty_table().select(src.schema.names)

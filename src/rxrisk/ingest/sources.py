"""Reading the inputs: any supported source to an Arrow table, with the reader's own problems
(missing or unreadable files, duplicate column names, ragged or non-UTF-8 CSV rows, Parquet
parts that do not unify) as one-line usage errors (:class:`InputError`).

The columns the engine reads are named here (:data:`PHARMACY_REQUIRED`, ...); casting them
to their working types is :mod:`rxrisk.ingest.conform`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from rxrisk.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.dataset as ds

PHARMACY_REQUIRED = ("member_id", "fill_date", "ndc", "quantity", "days_supply")
PHARMACY_OPTIONAL = ("prescriber_id", "pharmacy_id", "claim_id", "claim_status")
MEDICAL_REQUIRED = ("member_id", "service_date", "code_type", "code")
ELIGIBILITY_REQUIRED = ("member_id", "start_date", "end_date")
ELIGIBILITY_OPTIONAL = ("product",)
MEMBERS_REQUIRED = ("member_id", "birth_date")

#: Low-cardinality text columns read from Parquet as dictionaries: validation works on their
#: distinct values, so decoding every row to a string and hashing it again would be waste.
DICTIONARY_COLUMNS = ("ndc", "claim_status", "code_type", "code")


@dataclass(frozen=True)
class Source:
    """A table read from somewhere, with a name for messages."""

    table: pa.Table
    name: str


def read_source(source, *, label: str) -> Source:
    """Read a source fully into an Arrow table.

    Parameters
    ----------
    source : pyarrow.Table, pyarrow.RecordBatchReader, object with ``__arrow_c_stream__``,
        str or Path (Parquet file or folder, ``.arrow``/``.feather``/``.ipc``, ``.csv``/``.csv.gz``)
    label : str
        ``"pharmacy"``, ``"medical"``, ``"eligibility"`` or ``"members"``, for messages (and
        the columns every part of a Parquet folder must have).

    Raises
    ------
    InputError
        A missing or unreadable file, a duplicate column name, Parquet parts that do not
        unify (:func:`parquet_schema`), a ragged or non-UTF-8 CSV file (:func:`csv_problem`).
    """
    if isinstance(source, pa.Table):
        unique_names(source.schema.names, f"{label} input")
        return Source(source, label)
    if isinstance(source, pa.RecordBatchReader):
        unique_names(source.schema.names, f"{label} input")
        return Source(source.read_all(), label)
    if isinstance(source, pa.RecordBatch):
        unique_names(source.schema.names, f"{label} input")
        return Source(pa.Table.from_batches([source]), label)
    if hasattr(source, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(source)
        unique_names(reader.schema.names, f"{label} input")
        return Source(reader.read_all(), label)
    if isinstance(source, (str, Path)):
        path = Path(source)
        return Source(_read_path(path, label), str(path))
    raise InputError(
        f"{label} input: cannot read an object of type {type(source).__name__}; "
        "pass a pyarrow Table, a RecordBatchReader, an Arrow C stream (polars, pandas via pyarrow) or a file path"
    )


CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")


def _read_path(path: Path, label: str) -> pa.Table:
    if not path.exists():
        raise InputError(f"{label} input {show_name(path)}: no such file or folder; check the path")
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            table = None if path.is_dir() else parquet_file_table(path)
            return parquet_dataset(path, label).to_table() if table is None else table
        if name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as src:
                try:
                    reader = ipc.open_file(src)
                except pa.ArrowInvalid:
                    src.seek(0)
                    reader = ipc.open_stream(src)
                unique_names(reader.schema.names, f"{label} input {show_name(path)}")
                return reader.read_all()
        if name.endswith(CSV_SUFFIXES):
            # Everything as text: per-row parse failures become rejected rows, not a crash.
            return pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types=all_text_types(path, label),
                    strings_can_be_null=False,
                    null_values=[],
                ),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise read_error(path, label, exc) from None
    raise InputError(
        f"{label} input {show_name(path)}: unknown file type; use .parquet (or a folder of them), .arrow/.feather, or .csv/.csv.gz"
    )


def read_error(path: Path, label: str, exc: Exception) -> InputError:
    """The usage error for a file that Arrow failed to read: for CSV, the first bad line found
    by :func:`csv_problem` (Arrow's own CSV messages echo the whole row); otherwise Arrow's
    first message line."""
    if path.name.lower().endswith(CSV_SUFFIXES):
        found = csv_problem(path, label)
        if found is not None:
            return found
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        text = text.split(": Expected ")[0]  # never the row text that follows
        return InputError(
            f"{label} input {show_name(path)}: cannot be read as CSV ({show_name(text)})"
        )
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"{label} input {show_name(path)}: cannot be read ({show_name(text)})")


def show_name(value, limit: int = 200) -> str:
    """A name (path, column) for a one-line message: control characters escaped, a long name
    shortened in the middle (a path keeps its file name)."""
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    if len(text) <= limit:
        return text
    return text[: limit // 2 - 2] + "..." + text[-(limit - limit // 2 - 1) :]


def unique_names(names, where: str) -> None:
    """InputError when a column name appears twice (columns are found by name)."""
    seen = set()
    for n in names:
        if n in seen:
            raise InputError(
                f"{where}: column '{show_name(n)}' appears more than once; "
                "rename or drop the extra column"
            )
        seen.add(n)


def all_text_types(path: Path, label: str = "input") -> dict[str, pa.DataType]:
    """Every column of a CSV file as text (its header read by Arrow); duplicate names are an
    InputError."""
    where = f"{label} input {show_name(path)}"
    reader = pacsv.open_csv(path)
    try:
        names = reader.schema.names
    except UnicodeDecodeError:  # column names that are not UTF-8
        raise InputError(_HEADER_NOT_UTF8.format(where=where)) from None
    finally:
        reader.close()
    unique_names(names, where)
    return {n: pa.string() for n in names}


# ------------------------------------------------------------------------------ CSV problems


_HEADER_NOT_UTF8 = (
    "{where}: the header (line 1) is not valid UTF-8 text; save the file as UTF-8 and run again"
)


def _open_text_bytes(path: Path):
    import gzip

    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _csv_header(path: Path) -> list[str] | None:
    """The header's field names (None when the header is not UTF-8)."""
    import codecs
    import csv

    with _open_text_bytes(path) as f:
        first = f.readline()
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removeprefix(codecs.BOM_UTF8.decode("utf-8"))
    return next(csv.reader([text.rstrip("\r\n")]), [])


def _line_of_record(path: Path, record: int) -> int | None:
    """Physical line number of CSV record ``record`` (1 = header; empty lines are no record,
    as Arrow reads them), or None when the file ends first."""
    count = 0
    with _open_text_bytes(path) as f:
        for line_no, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n"):
                count += 1
                if count == record:
                    return line_no
    return None


def _where_line(path: Path, record: int) -> str:
    line = _line_of_record(path, record)
    row = f"data row {record - 1:,}"
    return f"line {line:,} ({row})" if line is not None else row


def csv_problem(path: Path, label: str) -> InputError | None:
    """Find the first ragged row or invalid UTF-8 value of a CSV file, reading it again on one
    thread (only after a read failed). The message names the line, the column counts or the
    column, never a value."""
    where = f"{label} input {show_name(path)}"
    try:
        return _first_csv_problem(path, where)
    except (pa.ArrowInvalid, OSError, EOFError, ValueError, zlib.error):  # a broken gzip file
        return None


#: Arrow's message for a ragged row when reading on one thread (the row's text follows)
_RAGGED_RE = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")


def _first_csv_problem(path: Path, where: str) -> InputError | None:
    header = _csv_header(path)
    if header is None:
        return InputError(_HEADER_NOT_UTF8.format(where=where))
    records = 1  # the header
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in header},
                strings_can_be_null=False,
                null_values=[],
            ),
        )
        for batch in reader:
            for i, col in enumerate(batch.columns):
                if not (pa.types.is_binary(col.type) or pa.types.is_string(col.type)):
                    continue
                try:
                    col.cast(pa.string())
                except pa.ArrowInvalid:
                    bad = next(
                        k
                        for k, v in enumerate(col.to_pylist())
                        if v is not None and not _is_utf8(v)
                    )
                    name = show_name(batch.schema.names[i])
                    return InputError(
                        f"{where}: column '{name}' on {_where_line(path, records + bad + 1)} "
                        "is not valid UTF-8 text; save the file as UTF-8 and run again"
                    )
            records += batch.num_rows
    except pa.ArrowInvalid as exc:
        m = _RAGGED_RE.search(str(exc))
        if m is None:
            return None
        number, expected, actual = (int(g) for g in m.groups())
        return InputError(
            f"{where}: {_where_line(path, number)} has {actual} fields where the header has "
            f"{expected}; fix that row (a value that contains a comma needs quotes) and run again"
        )
    return None


def _is_utf8(value) -> bool:
    try:
        (value if isinstance(value, bytes) else str(value).encode()).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -------------------------------------------------------------------------- Parquet folders

#: columns every part of a Parquet folder must have (by input label)
_REQUIRED = {
    "pharmacy": PHARMACY_REQUIRED,
    "medical": MEDICAL_REQUIRED,
    "eligibility": ELIGIBILITY_REQUIRED,
    "members": MEMBERS_REQUIRED,
}
#: the columns the engine reads (by input label); a type conflict in any other column is
#: read as text instead of failing, as other columns are only carried to the quarantine
_ENGINE_COLUMNS = {
    "pharmacy": PHARMACY_REQUIRED + PHARMACY_OPTIONAL,
    "medical": MEDICAL_REQUIRED,
    "eligibility": ELIGIBILITY_REQUIRED + ELIGIBILITY_OPTIONAL,
    "members": MEMBERS_REQUIRED,
}


def parquet_parts(path: Path) -> list[str]:
    """The Parquet files of a folder (or the file itself), in path order: files in
    subfolders included, names starting with ``.`` or ``_`` skipped (``_SUCCESS``,
    ``.crc``), as Arrow's dataset discovery does."""
    import pyarrow.fs as pafs

    if not path.is_dir():
        return [str(path)]
    infos = pafs.LocalFileSystem().get_file_info(pafs.FileSelector(str(path), recursive=True))
    files = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = Path(info.path).relative_to(path)
        if not any(part.startswith((".", "_")) for part in rel.parts):
            files.append(info.path)
    return sorted(files)


#: rows per batch of Arrow's dataset scanner (its default ``batch_size``): the chunks of a
#: table read from a Parquet dataset are its row groups cut into pieces of at most this size
SCAN_BATCH_ROWS = 1 << 17


def parquet_file_table(path: Path) -> pa.Table | None:
    """One Parquet file read without importing ``pyarrow.dataset`` (slow to import, and it
    imports pandas when pandas is installed): the same table, chunk for chunk, as
    ``parquet_dataset(path, label).to_table()`` gives (row groups cut into
    :data:`SCAN_BATCH_ROWS` pieces, :data:`DICTIONARY_COLUMNS` as dictionaries, one empty
    chunk when the file holds no rows).

    Returns
    -------
    pyarrow.Table or None
        None when the file is not a plain readable one (a duplicate column name, a read error):
        the dataset reader then reads it, or reports the problem in its own words.
    """
    try:
        meta = pq.ParquetFile(path).metadata
        names = meta.schema.to_arrow_schema().names
        if len(set(names)) != len(names):
            return None
        dictionary = [c for c in DICTIONARY_COLUMNS if c in names]
        file = pq.ParquetFile(path, metadata=meta, read_dictionary=dictionary, pre_buffer=True)
        batches = []
        for i in range(file.num_row_groups):
            part = file.read_row_group(i, use_threads=True)
            batches += part.to_batches(max_chunksize=SCAN_BATCH_ROWS)
        if not batches:
            return file.schema_arrow.empty_table()
        return pa.Table.from_batches(batches, schema=file.schema_arrow)
    except Exception:  # noqa: BLE001 - the dataset reader reads it or reports the problem
        return None


def _dataset():
    """``pyarrow.dataset``, imported where a dataset is read (slow to import: it imports pandas
    when pandas is installed)."""
    import pyarrow.dataset as ds  # lazy: slow to import; one Parquet file is read without it

    return ds


def parquet_dataset(
    path: Path, label: str, *, pre_buffer: bool = True, dictionary_columns=DICTIONARY_COLUMNS
) -> ds.Dataset:
    """A Parquet file or folder as one dataset, for the in-memory and the streaming reader:
    parts in path order, the schema of :func:`parquet_schema`, and the low-cardinality text
    columns (``dictionary_columns``, by default :data:`DICTIONARY_COLUMNS`) read as
    dictionaries."""
    ds = _dataset()
    fmt = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=tuple(dictionary_columns)),
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=pre_buffer),
    )
    files, _, schema = parquet_schema(path, label, fmt)
    return ds.dataset(files, schema=schema, format=fmt)


def parquet_schema(path: Path, label: str, fmt: ds.ParquetFileFormat | None = None):
    """``(parts, their schemas, the unified schema)`` of a Parquet file or folder, from the
    parts' footers only (``fmt``: the format the parts are read with).

    Parts are in path order (:func:`parquet_parts`). A column missing from some parts is
    null there; types that differ between parts unify within their kind (integer widths to
    the widest, integers with floats to float, text kinds to text, dates and same-zone
    timestamps to the finest unit); a column the engine does not read whose types do not
    unify is read as text. A part without a required column, two parts whose types for a
    column the engine reads do not unify (text and integer member ids), a duplicate column
    name or an unreadable part is an InputError naming the part files and the column.
    """
    fmt = fmt or _dataset().ParquetFileFormat()
    where = f"{label} input {show_name(path)}"
    files = parquet_parts(path)
    if not files:
        raise InputError(f"{where}: the folder holds no Parquet files; check the path")

    def part(f: str) -> str:
        return show_name(Path(f).relative_to(path)) if path.is_dir() else show_name(path)

    import pyarrow.fs as pafs

    local = pafs.LocalFileSystem()
    schemas = []
    for f in files:
        try:
            schema = fmt.inspect(f, filesystem=local)
        except (pa.ArrowInvalid, OSError) as exc:
            text = show_name(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if not path.is_dir():
                raise InputError(f"{where}: cannot be read as Parquet ({text})") from None
            raise InputError(
                f"{where}: part {part(f)} cannot be read as Parquet ({text}); "
                "remove it from the folder or rewrite it"
            ) from None
        unique_names(schema.names, f"{where}, part {part(f)}" if path.is_dir() else where)
        schemas.append(schema)
    if len(files) == 1:
        return files, schemas, schemas[0]

    required = _REQUIRED.get(label, ())
    engine = _ENGINE_COLUMNS.get(label)
    order: dict[str, list[int]] = {}  # column -> parts that have it
    for i, schema in enumerate(schemas):
        for n in schema.names:
            order.setdefault(n, []).append(i)
    fields = []
    for name, having in order.items():
        if name in required and len(having) < len(files):
            lacking = next(i for i in range(len(files)) if i not in set(having))
            raise InputError(
                f"{where}: part {part(files[lacking])} has no column '{show_name(name)}', which is "
                f"required (part {part(files[having[0]])} has it); add the column to that part "
                "or remove the part"
            )
        found = [(i, schemas[i].field(name)) for i in having]
        first = found[0][1]
        if all(fld.type == first.type for _, fld in found):
            fields.append(first)
            continue
        typ, clash = _unify_types(
            [fld.type for _, fld in found], name in DICTIONARY_COLUMNS, name != "member_id"
        )
        if typ is None:
            a, b = found[clash[0]], found[clash[1]]
            if (
                engine is not None
                and name not in engine
                and _castable_to_text([fld.type for _, fld in found])
            ):
                fields.append(pa.field(name, pa.string()))
                continue
            raise InputError(
                f"{where}: column '{show_name(name)}' is {a[1].type} in part {part(files[a[0]])} "
                f"but {b[1].type} in part {part(files[b[0]])}; give the column one type in "
                "every part (rewrite the odd part)"
            )
        fields.append(pa.field(name, typ))
    return files, schemas, pa.schema(fields, metadata=schemas[0].metadata)


def _type_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if is_text_type(t):
        return "text"
    if pa.types.is_signed_integer(t):
        return "signed"
    if pa.types.is_unsigned_integer(t):
        return "uint64" if t == pa.uint64() else "unsigned"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return f"timestamp {t.tz}"
    return str(t)


#: kinds that unify with each other (integers: unsigned 64-bit never with signed ones)
_UNIFIABLE = ({"signed", "unsigned"}, {"unsigned", "uint64"})
_NUMERIC = ({"signed", "unsigned", "float"},)


def _unify_types(types: list[pa.DataType], dictionary: bool, numeric: bool = True):
    """``(type, None)``: one type every one of ``types`` is read as; or ``(None, (i, j))``: types
    ``i`` and ``j`` do not unify. Nulls unify with anything; text kinds give text (a
    dictionary when ``dictionary``), integer widths the widest (unsigned 64-bit never with a
    signed integer), floats the widest float, integers with floats (when ``numeric``) a
    float, dates and same-zone timestamps the finest unit, decimals the widest decimal; any
    other mix does not unify."""
    groups = _UNIFIABLE + (_NUMERIC if numeric else ())
    first: dict[str, int] = {}
    for j, t in enumerate(types):
        if pa.types.is_null(t):
            continue
        k = _type_kind(t)
        first.setdefault(k, j)
        kinds = set(first)
        if len(kinds) > 1 and not any(kinds <= group for group in groups):
            i = next(i for kk, i in first.items() if not any({kk, k} <= g for g in groups))
            return None, (i, j)
    if not first:
        return pa.null(), None
    if "text" in first:
        large = any(
            pa.types.is_large_string(t.value_type if pa.types.is_dictionary(t) else t)
            for t in types
        )
        value = pa.large_string() if large else pa.string()
        return (pa.dictionary(pa.int32(), value) if dictionary else value), None
    plain = [t for t in types if not pa.types.is_null(t)]
    try:
        schema = pa.unify_schemas(
            [pa.schema([("x", t)]) for t in plain], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        j = next(j for j, t in enumerate(types) if not pa.types.is_null(t) and t != plain[0])
        return None, (types.index(plain[0]), j)
    return schema.field("x").type, None


def _castable_to_text(types: list[pa.DataType]) -> bool:
    for t in types:
        try:
            pa.array([], t).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return False
    return True


def is_text_type(t: pa.DataType) -> bool:
    """Whether ``t`` is a string type (string, large string or string view)."""
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)

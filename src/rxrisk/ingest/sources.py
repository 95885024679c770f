"""Sources to Arrow, and the schema check of the pharmacy and medical inputs.

:func:`read_source` turns any supported source into a :class:`pyarrow.Table`;
:func:`conform_pharmacy` / :func:`conform_medical` check column presence and types and cast
each column to the engine's working type, leaving per-row problems (unparseable dates,
non-numeric quantities) as nulls for :mod:`rxrisk.ingest.validate` to put in their bucket.
A column whose type cannot be cast at all is a usage error (:class:`InputError`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.ipc as ipc

from rxrisk.errors import InputError

TRIM = " \t\r\n"

PHARMACY_REQUIRED = ("member_id", "fill_date", "ndc", "quantity", "days_supply")
PHARMACY_OPTIONAL = ("prescriber_id", "pharmacy_id", "claim_id", "claim_status")
MEDICAL_REQUIRED = ("member_id", "service_date", "code_type", "code")

#: Low-cardinality text columns read from Parquet as dictionaries: validation works on their
#: distinct values, so decoding every row to a string and hashing it again would be waste.
DICTIONARY_COLUMNS = ("ndc", "claim_status", "code_type", "code")

_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT_RE = r"^[+-]?[0-9]+(\.0*)?$"


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
        ``"pharmacy"`` or ``"medical"``, for messages (and the columns every part of a
        Parquet folder must have).

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
        raise InputError(f"{label} input {_show(path)}: no such file or folder; check the path")
    name = path.name.lower()
    try:
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            return parquet_dataset(path, label).to_table()
        if name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as src:
                try:
                    reader = ipc.open_file(src)
                except pa.ArrowInvalid:
                    src.seek(0)
                    reader = ipc.open_stream(src)
                unique_names(reader.schema.names, f"{label} input {_show(path)}")
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
        f"{label} input {_show(path)}: unknown file type; use .parquet (or a folder of them), .arrow/.feather, or .csv/.csv.gz"
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
        return InputError(f"{label} input {_show(path)}: cannot be read as CSV ({_show(text)})")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"{label} input {_show(path)}: cannot be read ({_show(text)})")


def _show(value, limit: int = 200) -> str:
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
                f"{where}: column '{_show(n)}' appears more than once; "
                "rename or drop the extra column"
            )
        seen.add(n)


def all_text_types(path: Path, label: str = "input") -> dict[str, pa.DataType]:
    """Every column of a CSV file as text (its header read by Arrow); duplicate names are an
    InputError."""
    where = f"{label} input {_show(path)}"
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
    where = f"{label} input {_show(path)}"
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
                    name = _show(batch.schema.names[i])
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
_REQUIRED = {"pharmacy": PHARMACY_REQUIRED, "medical": MEDICAL_REQUIRED}
#: the columns the engine reads (by input label); a type conflict in any other column is
#: read as text instead of failing, as other columns are only carried to the quarantine
_ENGINE_COLUMNS = {
    "pharmacy": PHARMACY_REQUIRED + PHARMACY_OPTIONAL,
    "medical": MEDICAL_REQUIRED,
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


def parquet_dataset(path: Path, label: str, *, pre_buffer: bool = True) -> ds.Dataset:
    """A Parquet file or folder as one dataset, for the in-memory and the streaming reader:
    parts in path order, the schema of :func:`parquet_schema`, and the low-cardinality text
    columns (:data:`DICTIONARY_COLUMNS`) read as dictionaries."""
    fmt = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=DICTIONARY_COLUMNS),
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
    fmt = fmt or ds.ParquetFileFormat()
    where = f"{label} input {_show(path)}"
    files = parquet_parts(path)
    if not files:
        raise InputError(f"{where}: the folder holds no Parquet files; check the path")

    def part(f: str) -> str:
        return _show(Path(f).relative_to(path)) if path.is_dir() else _show(path)

    import pyarrow.fs as pafs

    local = pafs.LocalFileSystem()
    schemas = []
    for f in files:
        try:
            schema = fmt.inspect(f, filesystem=local)
        except (pa.ArrowInvalid, OSError) as exc:
            text = _show(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
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
                f"{where}: part {part(files[lacking])} has no column '{_show(name)}', which is "
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
                f"{where}: column '{_show(name)}' is {a[1].type} in part {part(files[a[0]])} "
                f"but {b[1].type} in part {part(files[b[0]])}; give the column one type in "
                "every part (rewrite the odd part)"
            )
        fields.append(pa.field(name, typ))
    return files, schemas, pa.schema(fields, metadata=schemas[0].metadata)


def _type_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if _is_text(t):
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


# ----------------------------------------------------------------------------------- casting


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _type_error(src: Source, column: str, found: pa.DataType, expected: str) -> InputError:
    return InputError(
        f"{_show(src.name)}: column '{column}' has type {found}; expected {expected}. "
        f"Convert the column to {expected} before scoring"
    )


def trim(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim surrounding space, tab, CR and LF (strings only)."""
    return pc.utf8_trim(col, characters=TRIM)


def empty_to_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)


def as_text(src: Source, name: str) -> pa.ChunkedArray:
    """A string column (integers are written as text), not yet trimmed.

    Dictionary-encoded string columns stay dictionary-encoded (their consumers work on
    distinct values). Trimming and empty-to-null are applied where values are
    used, on distinct values or on the kept rows (:func:`clean_text`), so the whole book is
    never copied for it; blank checks on every row run as a byte scan (``kernels.strings``).
    """
    col = src.table.column(name)
    t = col.type
    if pa.types.is_dictionary(t) and _is_text(t.value_type):
        return col
    col = _decode(col)
    t = col.type
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.string())])
    if pa.types.is_integer(t) or _is_text(t):
        return col.cast(pa.string())
    raise _type_error(src, name, t, "string")


def as_member_id(src: Source) -> pa.ChunkedArray:
    """member_id as string (not yet trimmed) or int64, keeping the input's kind."""
    col = _decode(src.table.column("member_id"))
    t = col.type
    if t == pa.uint64() and len(col) and (pc.max(col).as_py() or 0) >= 2**63:
        raise InputError(
            f"{_show(src.name)}: column 'member_id' has type uint64 with values of 2^63 or more; "
            "expected string or an integer below 2^63 (member ids are held as int64). "
            "Convert the column to string before scoring"
        )
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.string())])
    if _is_text(t):
        return col.cast(pa.string())
    raise _type_error(src, "member_id", t, "string or integer")


def clean_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim strings and turn empty ones into nulls; other types pass through."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return empty_to_null(trim(col))
    return col


def as_date(src: Source, name: str, date_format: str | None = None) -> pa.ChunkedArray:
    """A date32 column; a value that is not a real date becomes null (the row is rejected later).

    Accepted: an Arrow date or timestamp (its date part); text ``YYYY-MM-DD`` or ``YYYYMMDD``;
    an integer column read as ``YYYYMMDD`` (20250315); other text only through
    ``date_format`` (a ``strptime`` format such as ``'%m/%d/%Y'``), which is tried first on
    text columns. Nothing is guessed, and impossible dates (2025-02-30, month 13, year 0)
    are null rather than rolled over into the next month.
    """
    col = _decode(src.table.column(name))
    t = col.type
    if pa.types.is_date32(t):
        return col
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.date32())])
    if pa.types.is_date64(t) or pa.types.is_timestamp(t):
        return col.cast(pa.date32())
    if pa.types.is_integer(t) or _is_text(t):
        # decided on the distinct values (a book has a few thousand distinct dates)
        from rxrisk.io.arrow import dict_codes, to_numpy

        if pa.types.is_integer(t):
            codes, distinct = dict_codes(col)
            days, ok = ymd_days(to_numpy(distinct, np.int64, 0))
        else:
            codes, distinct = dict_codes(trim(col.cast(pa.string())))
            days, ok = text_days(distinct, date_format)
        ok = np.append(ok, False)[codes]
        days = np.append(days, 0)[codes]
        return pa.chunked_array([pa.array(days, pa.int32(), mask=~ok)]).cast(pa.date32())
    raise _type_error(
        src, name, t, "date (a date or timestamp, text YYYY-MM-DD or YYYYMMDD, or integer YYYYMMDD)"
    )


#: date directives an explicit date format must contain: a year, a month and a day
_FORMAT_PARTS = (("%Y", "%y"), ("%m", "%b", "%B", "%h"), ("%d", "%e"))


def check_date_format(date_format) -> str | None:
    """Check an explicit date format (``--date-format`` / ``date_format=``); None passes."""
    if date_format is None:
        return None
    fmt = date_format if isinstance(date_format, str) else None
    if not fmt or any(not any(p in fmt for p in part) for part in _FORMAT_PARTS):
        raise InputError(
            f"date format {date_format!r}: give a strptime format with a year, a month and a "
            "day, e.g. '%m/%d/%Y' (03/15/2025) or '%d.%m.%Y' (15.03.2025)"
        )
    return fmt


def ymd_days(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``YYYYMMDD`` to (days since 1970-01-01 as int32, valid mask).

    Valid: year 1-9999, month 1-12 and a day that exists in that month (leap years
    included); anything else is invalid (its day number is 0).
    """
    v = np.asarray(v, np.int64)
    y, m, d = v // 10000, (v // 100) % 100, v % 100
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)[
        np.clip(m, 0, 12)
    ] + ((m == 2) & leap)
    ok = (y >= 1) & (y <= 9999) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= dim)
    y, m, d = np.where(ok, y, 1970), np.where(ok, m, 1), np.where(ok, d, 1)
    # days from the civil date (proleptic Gregorian), as in H. Hinnant's date algorithms
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468).astype(np.int32), ok


_CANONICAL_DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8})$"
_DAY_MIN, _DAY_MAX = -719162, 2932896  # 0001-01-01 and 9999-12-31


def text_days(text: pa.Array, date_format: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed date text (typically distinct values) to (int32 day numbers, valid mask).

    ``date_format`` is tried first; text it does not read (or when there is none) is read as
    ``YYYY-MM-DD`` or ``YYYYMMDD``. A format-read value counts only when writing the date
    back in the format gives the text again (leading zeros and case aside), so the days a
    ``strptime`` rolls over (02/30 -> 03/02) are invalid.
    """
    from rxrisk.io.arrow import to_bool, to_numpy

    n = len(text)
    days = np.zeros(n, np.int32)
    ok = np.zeros(n, bool)
    if date_format is not None and n:
        ts = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
        back = pc.strftime(ts, format=date_format)
        same = pc.equal(_date_text_key(back), _date_text_key(text))
        d = to_numpy(ts.cast(pa.date32()).cast(pa.int32()), np.int64, 0)
        ok = to_bool(same) & (d >= _DAY_MIN) & (d <= _DAY_MAX)
        days = np.where(ok, d, 0).astype(np.int32)
    canonical = to_bool(pc.match_substring_regex(text, _CANONICAL_DATE_RE)) & ~ok
    if canonical.any():
        digits = pc.replace_substring(text, "-", "")
        v = to_numpy(pc.if_else(pa.array(canonical), digits, "0").cast(pa.int64()), np.int64, 0)
        cd, cok = ymd_days(v)
        cok &= canonical
        days = np.where(cok, cd, days)
        ok |= cok
    return days, ok


def _date_text_key(text):
    """Date text compared without case, whitespace and leading zeros of its numbers."""
    low = pc.utf8_lower(text)
    unpadded = pc.replace_substring_regex(low, r"(^|[^0-9])0+([0-9])", r"\1\2")
    return pc.replace_substring_regex(unpadded, r"\s+", "")


def as_float(src: Source, name: str) -> pa.ChunkedArray:
    col = _decode(src.table.column(name))
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return col.cast(pa.float64())
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.float64())])
    if _is_text(t):
        text = trim(col.cast(pa.string()))
        ok = pc.match_substring_regex(text, _NUMBER_RE)
        return pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
    raise _type_error(src, name, t, "float")


def as_int(src: Source, name: str) -> pa.ChunkedArray:
    """An integer column (any integer width, kept as is); non-integral floats and
    unparseable text become null (int64)."""
    col = _decode(src.table.column(name))
    t = col.type
    if pa.types.is_integer(t):
        return col
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.int64())])
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = col.cast(pa.float64())
        ok = pc.and_(pc.is_finite(f), pc.equal(pc.floor(f), f))
        ok = pc.and_(ok, pc.less(pc.abs(f), 1e15))
        return pc.if_else(ok, f, pa.scalar(None, pa.float64())).cast(pa.int64())
    if _is_text(t):
        text = trim(col.cast(pa.string()))
        ok = pc.match_substring_regex(text, _INT_RE)
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(text), 15))
        f = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
        return f.cast(pa.int64())
    raise _type_error(src, name, t, "integer")


def require(src: Source, names, label: str) -> None:
    missing = [n for n in names if n not in src.table.column_names]
    if missing:
        have = ", ".join(_show(n, 40) for n in src.table.column_names[:12])
        more = len(src.table.column_names) - 12
        have += f" and {more:,} more" if more > 0 else ""
        raise InputError(
            f"{_show(src.name)}: {label} input is missing required column '{missing[0]}' (columns found: {have}); "
            f"required columns are {', '.join(names)}"
        )


@dataclass(frozen=True)
class PharmacyColumns:
    """Pharmacy columns in their working types (one entry per input row)."""

    member_id: pa.ChunkedArray
    fill_date: pa.ChunkedArray
    ndc: pa.ChunkedArray
    quantity: pa.ChunkedArray
    days_supply: pa.ChunkedArray
    prescriber_id: pa.ChunkedArray
    pharmacy_id: pa.ChunkedArray
    claim_id: pa.ChunkedArray
    claim_status: pa.ChunkedArray

    def __len__(self) -> int:
        return len(self.member_id)


@dataclass(frozen=True)
class MedicalColumns:
    member_id: pa.ChunkedArray
    service_date: pa.ChunkedArray
    code_type: pa.ChunkedArray
    code: pa.ChunkedArray

    def __len__(self) -> int:
        return len(self.member_id)


def _optional_text(src: Source, name: str) -> pa.ChunkedArray:
    if name in src.table.column_names:
        return as_text(src, name)
    return pa.chunked_array([pa.nulls(src.table.num_rows, pa.string())])


def conform_pharmacy(src: Source, *, date_format: str | None = None) -> PharmacyColumns:
    """Check and cast the pharmacy columns (``date_format``: see :func:`as_date`)."""
    require(src, PHARMACY_REQUIRED, "pharmacy")
    ndc_type = src.table.column("ndc").type
    if pa.types.is_dictionary(ndc_type):
        ndc_type = ndc_type.value_type
    if pa.types.is_integer(ndc_type) or pa.types.is_floating(ndc_type):
        raise InputError(
            f"{src.name}: column 'ndc' has type {ndc_type}; expected string. "
            "NDCs need their leading zeros: read the column as text"
        )
    return PharmacyColumns(
        member_id=as_member_id(src),
        fill_date=as_date(src, "fill_date", date_format),
        ndc=as_text(src, "ndc"),
        quantity=as_float(src, "quantity"),
        days_supply=as_int(src, "days_supply"),
        prescriber_id=_optional_text(src, "prescriber_id"),
        pharmacy_id=_optional_text(src, "pharmacy_id"),
        claim_id=_optional_text(src, "claim_id"),
        claim_status=_optional_text(src, "claim_status"),
    )


def conform_medical(src: Source, *, date_format: str | None = None) -> MedicalColumns:
    """Check and cast the medical columns (``date_format``: see :func:`as_date`)."""
    require(src, MEDICAL_REQUIRED, "medical")
    return MedicalColumns(
        member_id=as_member_id(src),
        service_date=as_date(src, "service_date", date_format),
        code_type=as_text(src, "code_type"),
        code=as_text(src, "code"),
    )

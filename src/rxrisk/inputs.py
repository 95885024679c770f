"""Sources to Arrow, and the schema check of SPEC 1.1 / 1.2.

:func:`read_source` turns any supported source into a :class:`pyarrow.Table`;
:func:`conform_pharmacy` / :func:`conform_medical` check column presence and types and cast
each column to the engine's working type, leaving per-row problems (unparseable dates,
non-numeric quantities) as nulls for :mod:`rxrisk.validate` to put in their bucket.
A column whose type cannot be cast at all is a usage error (:class:`InputError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

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
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


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
        ``"pharmacy"`` or ``"medical"``, for messages.
    """
    if isinstance(source, pa.Table):
        return Source(source, label)
    if isinstance(source, pa.RecordBatchReader):
        return Source(source.read_all(), label)
    if isinstance(source, pa.RecordBatch):
        return Source(pa.Table.from_batches([source]), label)
    if hasattr(source, "__arrow_c_stream__"):
        return Source(pa.RecordBatchReader.from_stream(source).read_all(), label)
    if isinstance(source, (str, Path)):
        path = Path(source)
        return Source(_read_path(path, label), str(path))
    raise InputError(
        f"{label} input: cannot read an object of type {type(source).__name__}; "
        "pass a pyarrow Table, a RecordBatchReader, an Arrow C stream (polars, pandas via pyarrow) or a file path"
    )


def _read_path(path: Path, label: str) -> pa.Table:
    if not path.exists():
        raise InputError(f"{label} input {path}: no such file or folder; check the path")
    name = path.name.lower()
    try:
        if path.is_dir():
            fmt = ds.ParquetFileFormat(
                read_options=ds.ParquetReadOptions(dictionary_columns=DICTIONARY_COLUMNS)
            )
            return ds.dataset(path, format=fmt).to_table()
        if name.endswith(".parquet") or name.endswith(".pq"):
            present = [c for c in pq.read_schema(path).names if c in DICTIONARY_COLUMNS]
            return pq.read_table(path, read_dictionary=present)
        if name.endswith((".arrow", ".feather", ".ipc")):
            with pa.memory_map(str(path)) as src:
                try:
                    return ipc.open_file(src).read_all()
                except pa.ArrowInvalid:
                    src.seek(0)
                    return ipc.open_stream(src).read_all()
        if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            # Everything as text: per-row parse failures become rejected rows, not a crash.
            return pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types=all_text_types(path), strings_can_be_null=False, null_values=[]
                ),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"{label} input {path}: cannot be read ({str(exc).splitlines()[0]})"
        ) from None
    raise InputError(
        f"{label} input {path}: unknown file type; use .parquet (or a folder of them), .arrow/.feather, or .csv/.csv.gz"
    )


def all_text_types(path: Path) -> dict[str, pa.DataType]:
    reader = pacsv.open_csv(path)
    names = reader.schema.names
    reader.close()
    return {n: pa.string() for n in names}


# ----------------------------------------------------------------------------------- casting


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _type_error(src: Source, column: str, found: pa.DataType, expected: str) -> InputError:
    return InputError(
        f"{src.name}: column '{column}' has type {found}; expected {expected}. "
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
    distinct values). Trimming and empty-to-null (SPEC 1.1) are applied where values are
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
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.string())])
    if _is_text(t):
        return col.cast(pa.string())
    raise _type_error(src, "member_id", t, "string or integer")


def clean_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim strings and turn empty ones into nulls (SPEC 1.1); other types pass through."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return empty_to_null(trim(col))
    return col


def as_date(src: Source, name: str) -> pa.ChunkedArray:
    """A date32 column; unparseable text becomes null (the row is rejected later)."""
    col = _decode(src.table.column(name))
    t = col.type
    if pa.types.is_date32(t):
        return col
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.date32())])
    if pa.types.is_date64(t) or pa.types.is_timestamp(t):
        return col.cast(pa.date32())
    if _is_text(t):
        text = trim(col.cast(pa.string()))
        ok = pc.match_substring_regex(text, _DATE_RE)
        text = pc.if_else(ok, text, pa.scalar(None, pa.string()))
        ts = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
        return ts.cast(pa.date32())
    raise _type_error(src, name, t, "date (date32, or text YYYY-MM-DD)")


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
        have = ", ".join(src.table.column_names[:12])
        raise InputError(
            f"{src.name}: {label} input is missing required column '{missing[0]}' (columns found: {have}); "
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


def conform_pharmacy(src: Source) -> PharmacyColumns:
    """Check and cast the pharmacy columns of SPEC 1.1."""
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
        fill_date=as_date(src, "fill_date"),
        ndc=as_text(src, "ndc"),
        quantity=as_float(src, "quantity"),
        days_supply=as_int(src, "days_supply"),
        prescriber_id=_optional_text(src, "prescriber_id"),
        pharmacy_id=_optional_text(src, "pharmacy_id"),
        claim_id=_optional_text(src, "claim_id"),
        claim_status=_optional_text(src, "claim_status"),
    )


def conform_medical(src: Source) -> MedicalColumns:
    """Check and cast the medical columns of SPEC 1.2."""
    require(src, MEDICAL_REQUIRED, "medical")
    return MedicalColumns(
        member_id=as_member_id(src),
        service_date=as_date(src, "service_date"),
        code_type=as_text(src, "code_type"),
        code=as_text(src, "code"),
    )

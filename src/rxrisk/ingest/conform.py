"""Conforming: the schema check of the pharmacy and medical inputs and the casts of their
columns to the engine's working types (:class:`PharmacyColumns`, :class:`MedicalColumns`).

Per-row problems (unparseable dates, non-numeric quantities) become nulls for
:mod:`rxrisk.ingest.validate` to put in their bucket; a missing column or a column whose
type cannot be cast at all is a usage error (:class:`InputError`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.ingest.dates import date_column
from rxrisk.ingest.sources import (
    MEDICAL_REQUIRED,
    PHARMACY_REQUIRED,
    Source,
    is_text_type,
    show_name,
)

TRIM = " \t\r\n"

_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT_RE = r"^[+-]?[0-9]+(\.0*)?$"


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _type_error(src: Source, column: str, found: pa.DataType, expected: str) -> InputError:
    return InputError(
        f"{show_name(src.name)}: column '{column}' has type {found}; expected {expected}. "
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
    if pa.types.is_dictionary(t) and is_text_type(t.value_type):
        return col
    col = _decode(col)
    t = col.type
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.string())])
    if pa.types.is_integer(t) or is_text_type(t):
        return col.cast(pa.string())
    raise _type_error(src, name, t, "string")


def as_member_id(src: Source) -> pa.ChunkedArray:
    """member_id as string (not yet trimmed) or int64, keeping the input's kind."""
    col = _decode(src.table.column("member_id"))
    t = col.type
    if t == pa.uint64() and len(col) and (pc.max(col).as_py() or 0) >= 2**63:
        raise InputError(
            f"{show_name(src.name)}: column 'member_id' has type uint64 with values of 2^63 or more; "
            "expected string or an integer below 2^63 (member ids are held as int64). "
            "Convert the column to string before scoring"
        )
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.string())])
    if is_text_type(t):
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
    if pa.types.is_integer(t) or is_text_type(t):
        if not pa.types.is_integer(t):
            col = trim(col.cast(pa.string()))
        return date_column(col, date_format)
    raise _type_error(
        src, name, t, "date (a date or timestamp, text YYYY-MM-DD or YYYYMMDD, or integer YYYYMMDD)"
    )


def as_float(src: Source, name: str) -> pa.ChunkedArray:
    col = _decode(src.table.column(name))
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return col.cast(pa.float64())
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), pa.float64())])
    if is_text_type(t):
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
    if is_text_type(t):
        text = trim(col.cast(pa.string()))
        ok = pc.match_substring_regex(text, _INT_RE)
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(text), 15))
        f = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
        return f.cast(pa.int64())
    raise _type_error(src, name, t, "integer")


def require(src: Source, names, label: str) -> None:
    missing = [n for n in names if n not in src.table.column_names]
    if missing:
        have = ", ".join(show_name(n, 40) for n in src.table.column_names[:12])
        more = len(src.table.column_names) - 12
        have += f" and {more:,} more" if more > 0 else ""
        raise InputError(
            f"{show_name(src.name)}: {label} input is missing required column '{missing[0]}' (columns found: {have}); "
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

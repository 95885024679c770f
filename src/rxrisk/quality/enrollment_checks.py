"""The rows of the eligibility and members inputs: conformed, bucketed with their first failing
reason, and the used rows kept as arrays (vectorised: Arrow compute and numpy masks).

Eligibility rows are rejected for ``member_id`` (null or empty), ``start_date`` (null or not a
date) or ``end_date`` (not a date, or before ``start_date``; a null or empty end is
open-ended); members rows for ``member_id``, ``birth_date`` (null or not a date) or
``duplicate`` (a member_id of an earlier row that passed the first two checks: the first is
kept). Dates take the forms of the claims (:func:`rxrisk.ingest.conform.as_date`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.ingest.conform import as_date, as_member_id, as_text, clean_text, require, trim
from rxrisk.ingest.sources import (
    ELIGIBILITY_REQUIRED,
    MEMBERS_REQUIRED,
    Source,
    is_text_type,
    show_name,
)
from rxrisk.io.arrow import date_days, dict_codes, is_null, to_bool
from rxrisk.kernels.measures_containers import OPEN_END
from rxrisk.quality.enrollment_join import seen_before

BUCKETS = ("rejected", "used")
ELIGIBILITY_REASONS = ("member_id", "start_date", "end_date")
MEMBERS_REASONS = ("member_id", "birth_date", "duplicate")
#: the product of a span whose product is null or empty (or that has no product column)
UNSPECIFIED = "unspecified"

_WHOLE_NUMBER_RE = r"^-?[0-9]+$"


def _counts(reason: np.ndarray, names: tuple[str, ...]) -> dict:
    r = np.bincount(reason[reason >= 0].astype(np.intp), minlength=len(names))
    rejected = int(r.sum())
    return {
        "rows_read": int(len(reason)),
        "buckets": {"rejected": rejected, "used": int(len(reason)) - rejected},
        "rejected_by_reason": {name: int(r[i]) for i, name in enumerate(names)},
    }


def _first_reason(checks: list[np.ndarray], n: int) -> np.ndarray:
    reason = np.full(n, -1, np.int8)
    for i in range(len(checks) - 1, -1, -1):
        reason[checks[i]] = i
    return reason


@dataclass(frozen=True)
class CheckedEligibility:
    """Eligibility rows after the checks.

    Attributes
    ----------
    table : pyarrow.Table
        The rows as read (quarantine and offending values).
    reason : numpy.ndarray of int8
        Index into :data:`ELIGIBILITY_REASONS` per row; -1 for a used row.
    ids : pyarrow.Array
        member_id of the used rows (input order), in the pharmacy's member_id type.
    start, end : numpy.ndarray of int32
        First and last enrolled day of the used rows; ``OPEN_END`` for an open end.
    product : numpy.ndarray of int32
        Product code of the used rows: index into ``products``.
    products : tuple of str
        The sorted distinct product names of the used rows.
    """

    table: pa.Table
    reason: np.ndarray
    ids: pa.Array
    start: np.ndarray
    end: np.ndarray
    product: np.ndarray
    products: tuple[str, ...]

    def counts(self) -> dict:
        """The audit block (``rows_read``, ``buckets``, ``rejected_by_reason``)."""
        return _counts(self.reason, ELIGIBILITY_REASONS)


@dataclass(frozen=True)
class CheckedMembers:
    """Members rows after the checks.

    Attributes
    ----------
    table : pyarrow.Table
        The rows as read.
    reason : numpy.ndarray of int8
        Index into :data:`MEMBERS_REASONS` per row; -1 for a used row.
    ids : pyarrow.Array
        member_id of the used rows (input order, distinct), in the pharmacy's type.
    birth : numpy.ndarray of int32
        Birth day of the used rows.
    """

    table: pa.Table
    reason: np.ndarray
    ids: pa.Array
    birth: np.ndarray

    def counts(self) -> dict:
        """The audit block (``rows_read``, ``buckets``, ``rejected_by_reason``)."""
        return _counts(self.reason, MEMBERS_REASONS)


# ----------------------------------------------------------------------------- member ids


def _where(src: Source, label: str) -> str:
    return f"{label} input" if src.name == label else f"{label} input {show_name(src.name)}"


def member_ids(src: Source, label: str, member_type: pa.DataType) -> pa.ChunkedArray:
    """member_id trimmed (empty as null) and cast to the pharmacy's ``member_type``.

    Integer ids against text pharmacy ids become their decimal text; text ids against
    integer pharmacy ids must be whole numbers (leading zeros allowed), else an
    :class:`InputError` names the value and both types.
    """
    col = as_member_id(src)  # int64, or string not yet trimmed
    if pa.types.is_string(col.type):
        col = clean_text(col)
    if is_text_type(member_type):
        return col.cast(member_type)
    if not pa.types.is_integer(member_type):
        raise TypeError(f"member_type must be a string or integer type, not {member_type}")
    if pa.types.is_integer(col.type):
        return col.cast(member_type)
    whole = pc.match_substring_regex(col, _WHOLE_NUMBER_RE)
    bad = np.flatnonzero(~to_bool(pc.or_kleene(whole, pc.is_null(col))))
    if not len(bad):
        try:
            return col.cast(member_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = np.flatnonzero(~to_bool(pc.is_null(col)))  # out of range: shown below
            bad = bad[_out_of_range(col, bad)]
    value = col.take(pa.array(bad[:1], pa.int64()))[0].as_py()
    raise InputError(
        f"{_where(src, label)}: column 'member_id' has text {show_name(repr(value), 60)} that "
        f"is not an integer member id, but the pharmacy input's member_id is {member_type}; "
        "give member_id one type in every input (e.g. write the pharmacy's member_id as text)"
    )


def _out_of_range(col: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Of ``rows`` (non-null whole numbers), those that do not fit int64."""
    text = col.take(pa.array(rows, pa.int64()))
    negative = pc.starts_with(text, "-")
    digits = pc.utf8_ltrim(pc.utf8_ltrim(text, characters="-"), characters="0")
    length = pc.utf8_length(digits)
    limit = pc.if_else(negative, "9223372036854775808", "9223372036854775807")
    over = pc.or_(pc.greater(length, 19), pc.and_(pc.equal(length, 19), pc.greater(digits, limit)))
    return to_bool(over)


def _blank_cells(src: Source, name: str) -> np.ndarray:
    """Null or empty (after trimming) cells of a column, per row."""
    col = src.table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not is_text_type(col.type):
        return is_null(col)
    empty = pc.equal(trim(col.cast(pa.string())), "")
    return to_bool(pc.or_kleene(pc.is_null(col), empty))


# ----------------------------------------------------------------------------- the checks


def check_eligibility(
    src: Source, *, member_type: pa.DataType, date_format: str | None = None
) -> CheckedEligibility:
    """Bucket every eligibility row and keep the used spans (see the module docstring)."""
    require(src, ELIGIBILITY_REQUIRED, "eligibility")
    ids = member_ids(src, "eligibility", member_type)
    start_col = as_date(src, "start_date", date_format)
    end_col = as_date(src, "end_date", date_format)
    start, end = date_days(start_col), date_days(end_col)
    no_start, no_end = is_null(start_col), is_null(end_col)
    open_end = _blank_cells(src, "end_date")
    n = src.table.num_rows
    reason = _first_reason(
        [is_null(ids), no_start, (no_end & ~open_end) | (~no_end & (end < start))], n
    )
    used = reason < 0
    end = np.where(no_end, np.int32(OPEN_END), end).astype(np.int32)
    product, products = _products(src, used)
    return CheckedEligibility(
        table=src.table,
        reason=reason,
        ids=_used(ids, used),
        start=np.ascontiguousarray(start[used], np.int32),
        end=np.ascontiguousarray(end[used], np.int32),
        product=product,
        products=products,
    )


def _used(col: pa.ChunkedArray, used: np.ndarray) -> pa.Array:
    out = col.filter(pa.array(used, pa.bool_()))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _products(src: Source, used: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Product code of each used row and the sorted names the codes index."""
    n_used = int(np.count_nonzero(used))
    if "product" not in src.table.column_names:
        names = (UNSPECIFIED,) if n_used else ()
        return np.zeros(n_used, np.int32), names
    codes, distinct = dict_codes(_used(as_text(src, "product"), used))
    # trimmed and empty-to-unspecified on the distinct values; slot -1: a null product
    values = [UNSPECIFIED if v is None else v for v in clean_text(distinct).to_pylist()]
    values.append(UNSPECIFIED)
    present = np.zeros(len(values), bool)  # which values the used rows hold
    present[:-1] = np.bincount(codes[codes >= 0], minlength=len(distinct)) > 0
    present[-1] = bool((codes < 0).any())
    names = sorted({v for v, p in zip(values, present, strict=True) if p})
    rank_of = {name: i for i, name in enumerate(names)}
    rank = np.array([rank_of.get(v, -1) for v in values], np.int32)
    return np.ascontiguousarray(rank[codes], np.int32), tuple(names)


def check_members(
    src: Source, *, member_type: pa.DataType, date_format: str | None = None
) -> CheckedMembers:
    """Bucket every members row and keep the used birth dates (see the module docstring)."""
    require(src, MEMBERS_REQUIRED, "members")
    ids = member_ids(src, "members", member_type)
    birth_col = as_date(src, "birth_date", date_format)
    n = src.table.num_rows
    no_id, no_birth = is_null(ids), is_null(birth_col)
    candidate = ~no_id & ~no_birth
    duplicate = np.zeros(n, bool)
    rows = np.flatnonzero(candidate)
    if len(rows):
        duplicate[rows] = seen_before(_used(ids, candidate))
    reason = _first_reason([no_id, no_birth, duplicate], n)
    used = reason < 0
    return CheckedMembers(
        table=src.table,
        reason=reason,
        ids=_used(ids, used),
        birth=np.ascontiguousarray(date_days(birth_col)[used], np.int32),
    )

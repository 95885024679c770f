"""The scored member table of a report: reading it (CSV text back to types), the as-of date,
and which members the flags and reasons select."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.settings import parse_as_of
from rxrisk.days import date_of
from rxrisk.errors import InputError
from rxrisk.ingest.sources import read_source


def load_members(members) -> pa.Table:
    """The scored member table with its types (the text columns of a CSV table converted).

    Parameters
    ----------
    members : pyarrow.Table or path
        The ``rxrisk score`` member table (Parquet, Arrow or CSV).

    Returns
    -------
    pyarrow.Table
        The table, dictionary columns decoded, CSV text back to dates, booleans, numbers
        and reason lists.
    """
    table = read_source(members, label="members").table
    for col in ("member_id", "as_of", "reasons"):
        if col not in table.column_names:
            raise InputError(
                f"members input: no '{col}' column; give a member table written by 'rxrisk score'"
            )
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = _from_text(name, col)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _from_text(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column of a CSV member table back to its member-table type."""
    if name == "member_id":
        return col
    empty = pc.fill_null(pc.equal(col, ""), True)
    col = pc.if_else(empty, pa.scalar(None, col.type), col)
    if name == "reasons":
        return pc.if_else(
            pc.is_null(col),
            pa.scalar([], pa.list_(pa.string())),
            pc.split_pattern(col, ";"),
        )
    try:
        if name in ("as_of", "last_emergency_date"):
            return pc.strptime(col, format="%Y-%m-%d", unit="s").cast(pa.date32())
        low = pc.utf8_lower(col)
        if pc.all(pc.is_in(pc.drop_null(low), value_set=pa.array(["true", "false"]))).as_py():
            return pc.equal(low, "true")
        return col.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"members input: column '{name}' holds values that are not of its member-table type"
        ) from None


def pick_as_of(table: pa.Table, as_of) -> tuple[pa.Table, int]:
    """Rows of one as-of date: ``as_of`` when given, else the latest in the table.

    Parameters
    ----------
    table : pyarrow.Table
        The member table (:func:`load_members`).
    as_of : date, str or None
        The as-of date to report.

    Returns
    -------
    tuple of (pyarrow.Table, int)
        The rows of that date and its day number.
    """
    col = pc.drop_null(pc.unique(table.column("as_of"))).cast(pa.int32())
    days = np.sort(col.to_numpy(zero_copy_only=False).astype(np.int64))
    if as_of is None:
        if not len(days):
            raise InputError("members input: the member table is empty; nothing to report")
        day = int(days[-1])
    else:
        parsed = parse_as_of(as_of)
        if len(parsed) != 1:
            raise InputError("--as-of: give one date for a report")
        day = int(parsed[0])
        if day not in set(days.tolist()):
            have = ", ".join(str(date_of(d)) for d in days[-5:]) or "none"
            raise InputError(
                f"--as-of {date_of(day)}: the member table has no rows for it (as-of dates: {have})"
            )
    keep = pc.equal(table.column("as_of").cast(pa.int32()), day)
    return table.filter(keep), day


def flag_column(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    """A boolean flag column of the member table, null as false.

    Parameters
    ----------
    table : pyarrow.Table
        The member table.
    name : str
        The flag.
    what : str
        How the user named it (``"flag"`` or ``"reason"``), for the message when the table
        has no such flag.

    Returns
    -------
    pyarrow.ChunkedArray
        The flag per row.
    """
    if name not in table.column_names or not pa.types.is_boolean(table.schema.field(name).type):
        flags = [f.name for f in table.schema if pa.types.is_boolean(f.type)]
        flags = [f for f in flags if not f.endswith("_dx")]
        raise InputError(
            f"{what} {name}: no such flag in the member table; use one of {', '.join(flags)}"
        )
    return pc.fill_null(table.column(name), False)


def selection_mask(table: pa.Table, flags, reasons) -> np.ndarray:
    """Rows where any of ``flags`` is true or ``reasons`` holds any of ``reasons``.

    Parameters
    ----------
    table : pyarrow.Table
        The member table of one as-of date.
    flags, reasons : sequences of flag names or None
        The selection.

    Returns
    -------
    numpy.ndarray
        bool per row.
    """
    n = table.num_rows
    out = np.zeros(n, bool)
    for name in flags or ():
        out |= np.asarray(flag_column(table, name, "flag"), bool)
    if reasons:
        for name in reasons:
            flag_column(table, name, "reason")  # the name must be a flag of the table
        col = table.column("reasons")
        flat = pc.list_flatten(col)
        parent = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        hit = np.asarray(pc.fill_null(pc.is_in(flat, value_set=pa.array(list(reasons))), False))
        out[parent[hit]] = True
    return out

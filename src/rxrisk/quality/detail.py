"""The member detail table of a measures run: one row per (member, period) eligible for any
measure, with the member's quantities and each measure's denominator and numerator."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.kernels.measures_containers import EXCLUSION_NAMES, NO_DAY
from rxrisk.quality.rates import MEASURES, measure_flags

#: The quantity columns after ``member_id``, ``period_start``, ``period_end``, ``product``,
#: ``age`` and ``exclusion``, with their Arrow types.
_QUANTITY_TYPES = (
    ("opioid_claims", pa.int64()),
    ("opioid_fill_dates", pa.int64()),
    ("cumulative_days_supply", pa.int64()),
    ("ipsd", pa.date32()),
    ("treatment_days", pa.int64()),
    ("avg_mme", pa.float64()),
    ("longest_high_dose_run", pa.int64()),
    ("prescribers", pa.int64()),
    ("pharmacies", pa.int64()),
    ("benzo_fill_dates", pa.int64()),
    ("opioid_benzo_days", pa.int64()),
    ("episode_start", pa.date32()),
    ("covered_30", pa.int64()),
    ("covered_62", pa.int64()),
)
_DAY_COLUMNS = ("ipsd", "episode_start")


def detail_schema(member_type: pa.DataType) -> pa.Schema:
    """The schema of the detail table, for member ids of type ``member_type``."""
    head = [
        ("member_id", member_type),
        ("period_start", pa.date32()),
        ("period_end", pa.date32()),
        ("product", pa.string()),
        ("age", pa.int64()),
        ("exclusion", pa.string()),
    ]
    flags = [(f"{m}_{part}", pa.bool_()) for m in MEASURES for part in ("denominator", "numerator")]
    return pa.schema(head + list(_QUANTITY_TYPES) + flags)


#: The detail table's column names, in order.
DETAIL_COLUMNS: tuple[str, ...] = tuple(detail_schema(pa.string()).names)


def detail_table(member_ids: pa.Array, quantities, periods, products, settings) -> pa.Table:
    """The member detail: one row per (member, period) eligible for any measure.

    Rows come in the quantities' order, member then period, which is sorted by member_id
    then period_start because the claims' ``member_ids`` and the periods are sorted.

    Parameters
    ----------
    member_ids : pyarrow.Array
        The claims' sorted distinct member ids (the pharmacy input's type).
    quantities : rxrisk.quality.compute.MeasureQuantities
        The quantities of every (member, period) row.
    periods : numpy.ndarray of int, shape (n_periods, 2)
        First and last day of each period, sorted.
    products : tuple of str
        Product name of each product code.
    settings : rxrisk.quality.settings.MeasureSettings
        The measure thresholds.

    Returns
    -------
    pyarrow.Table
        Columns :data:`DETAIL_COLUMNS` with the types of :func:`detail_schema`.
    """
    flags = measure_flags(quantities.flag_inputs(), settings)
    keep = np.zeros(len(quantities.member_index), bool)
    for eligible, _, _ in flags.values():
        keep |= eligible
    rows = np.flatnonzero(keep)
    q = quantities.take(rows)
    periods = np.asarray(periods, np.int32).reshape(-1, 2)
    schema = detail_schema(member_ids.type)
    columns = {
        "member_id": member_ids.take(pa.array(q.member_index, pa.int64())),
        "period_start": pa.array(periods[q.period_index, 0], pa.date32()),
        "period_end": pa.array(periods[q.period_index, 1], pa.date32()),
        "product": _names(products, q.product),
        "age": pa.array(q.age, pa.int64()),
        "exclusion": _names(EXCLUSION_NAMES, q.exclusion),
    }
    for name, typ in _QUANTITY_TYPES:
        values = getattr(q, name)
        if name in _DAY_COLUMNS:
            columns[name] = pa.array(values, typ, mask=values == NO_DAY)
        else:
            columns[name] = pa.array(values, typ)
    for measure, (_, denominator, numerator) in flags.items():
        columns[f"{measure}_denominator"] = pa.array(denominator[rows], pa.bool_())
        columns[f"{measure}_numerator"] = pa.array(numerator[rows], pa.bool_())
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _names(names, codes: np.ndarray) -> pa.Array:
    """The string of each code (position in ``names``); null for a negative code."""
    indices = pa.array(np.asarray(codes, np.int64), pa.int64(), mask=codes < 0)
    return pa.array(list(names), pa.string()).take(indices)

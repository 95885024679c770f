"""The summary of rates: per period, measure and product, counted from the member detail alone."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.quality.rates import MEASURES, measure_flags

#: The product of the rows that count every product together (sorted first).
ALL_PRODUCTS = "all"

#: Detail columns that :func:`rxrisk.quality.rates.measure_flags` reads as they are.
_COUNTS = (
    "opioid_fill_dates",
    "cumulative_days_supply",
    "longest_high_dose_run",
    "prescribers",
    "pharmacies",
    "benzo_fill_dates",
    "opioid_benzo_days",
    "covered_30",
    "covered_62",
)

#: The summary's columns and types.
SUMMARY_SCHEMA = pa.schema(
    [
        ("period_start", pa.date32()),
        ("period_end", pa.date32()),
        ("measure", pa.string()),
        ("product", pa.string()),
        ("eligible", pa.int64()),
        ("excluded", pa.int64()),
        ("denominator", pa.int64()),
        ("numerator", pa.int64()),
        ("rate", pa.float64()),
    ]
)


def _numbers(detail: pa.Table, name: str, dtype, fill) -> np.ndarray:
    """A detail column as a numpy array of ``dtype`` (nulls as ``fill``)."""
    col = pc.fill_null(detail.column(name).cast(pa.from_numpy_dtype(dtype)), fill)
    return np.asarray(col.to_numpy(), dtype=dtype)


def _present(detail: pa.Table, name: str) -> np.ndarray:
    """Bool per detail row: column ``name`` is not null."""
    return np.asarray(pc.is_valid(detail.column(name)).to_numpy(), dtype=bool)


def detail_quantities(detail: pa.Table) -> dict[str, np.ndarray]:
    """The quantities :func:`~rxrisk.quality.rates.measure_flags` reads, from a member detail.

    Every detail row is a member enrolled in its period (a member that is not enrolled is
    eligible for no measure, so has no row): ``enrolled`` is true throughout; ``excluded`` is
    ``exclusion`` not null and ``has_episode`` is ``episode_start`` not null.

    Parameters
    ----------
    detail : pyarrow.Table
        The member detail (:func:`rxrisk.quality.detail.detail_table`).

    Returns
    -------
    dict of str to numpy.ndarray
        One array per quantity, one entry per detail row.
    """
    n = detail.num_rows
    q = {name: _numbers(detail, name, np.int64, 0) for name in _COUNTS}
    q["age"] = _numbers(detail, "age", np.int32, -1)
    q["avg_mme"] = _numbers(detail, "avg_mme", np.float64, 0.0)
    q["enrolled"] = np.ones(n, dtype=bool)
    q["excluded"] = _present(detail, "exclusion")
    q["has_episode"] = _present(detail, "episode_start")
    return q


def summary_table(detail: pa.Table, periods, settings) -> pa.Table:
    """The summary of rates: one row per (period, measure, product).

    Parameters
    ----------
    detail : pyarrow.Table
        The member detail (:func:`rxrisk.quality.detail.detail_table`); only its quantity,
        ``exclusion``, ``episode_start``, ``product``, ``period_start`` and ``period_end``
        columns are read.
    periods : numpy.ndarray
        int32 ``(n_periods, 2)``: first and last day of each period, sorted and distinct
        (:func:`rxrisk.quality.settings.parse_periods`).
    settings : rxrisk.quality.settings.MeasureSettings
        The thresholds of the measures.

    Returns
    -------
    pyarrow.Table
        Columns ``period_start``, ``period_end``, ``measure``, ``product``, ``eligible``,
        ``excluded``, ``denominator``, ``numerator`` (int64) and ``rate`` (float64, null when the
        denominator is 0). A period has a row per measure for product ``all`` (every product
        together) and for each product with a detail row in that period; a period with no
        detail row still has its ``all`` rows, with zero counts and null rates. Sorted by period,
        measure (in the order of :data:`~rxrisk.quality.rates.MEASURES`), then product (``all``
        first, then the products in ascending order).
    """
    periods = np.asarray(periods, dtype=np.int32).reshape(-1, 2)
    flags = measure_flags(detail_quantities(detail), settings)
    no_day = np.iinfo(np.int32).min
    starts = _numbers(detail, "period_start", np.int32, no_day)
    ends = _numbers(detail, "period_end", np.int32, no_day)
    products = pc.fill_null(detail.column("product").cast(pa.string()), "unspecified")
    names = sorted(pc.unique(products).to_pylist())
    codes = pc.index_in(products, value_set=pa.array(names, pa.string())).to_numpy()
    codes = np.asarray(codes, dtype=np.intp)
    rows = []
    for p0, p1 in periods:
        in_period = (starts == p0) & (ends == p1)  # periods may share a start
        present = np.unique(codes[in_period])
        for measure in MEASURES:
            eligible, denominator, numerator = (
                np.asarray(a, dtype=bool) & in_period for a in flags[measure]
            )
            counts = [
                np.bincount(codes[a], minlength=len(names))
                for a in (eligible, denominator, numerator)
            ]
            rows.append((p0, p1, measure, ALL_PRODUCTS, *(int(c.sum()) for c in counts)))
            for code in present:
                rows.append((p0, p1, measure, names[code], *(int(c[code]) for c in counts)))
    return _table(rows)


def _table(rows: list[tuple]) -> pa.Table:
    """The summary table of ``(p0, p1, measure, product, eligible, denominator, numerator)``
    rows in their final order."""
    p0, p1, measure, product, eligible, denominator, numerator = (
        (list(col) for col in zip(*rows, strict=True)) if rows else ([] for _ in range(7))
    )
    eligible = np.asarray(eligible, dtype=np.int64)
    denominator = np.asarray(denominator, dtype=np.int64)
    numerator = np.asarray(numerator, dtype=np.int64)
    rate = numerator / np.where(denominator > 0, denominator, 1)
    columns = [
        pa.array(np.asarray(p0, dtype=np.int32), pa.int32()).cast(pa.date32()),
        pa.array(np.asarray(p1, dtype=np.int32), pa.int32()).cast(pa.date32()),
        pa.array(measure, pa.string()),
        pa.array(product, pa.string()),
        pa.array(eligible, pa.int64()),
        pa.array(eligible - denominator, pa.int64()),
        pa.array(denominator, pa.int64()),
        pa.array(numerator, pa.int64()),
        pa.array(rate, pa.float64(), mask=denominator == 0),
    ]
    return pa.Table.from_arrays(columns, schema=SUMMARY_SCHEMA)

"""The decoder of the member-scoring outputs: the metric columns read from the slots named in
``rxrisk.kernels.layout``, the reasons list and the member table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.config.codesets import CATEGORIES
from rxrisk.config.schema import definition_stems, metric_fields
from rxrisk.kernels import layout

_BIT = {name: 1 << i for i, name in enumerate(CATEGORIES)}
#: Diagnosis flags decoded from the category bits slot.
DX_BITS = {
    "oud_dx": _BIT["oud"],
    "sud_dx": _BIT["oud"] | _BIT["sud_other"],
    "cancer_dx": _BIT["cancer"],
    "sickle_cell_dx": _BIT["sickle_cell"],
    "hospice_dx": _BIT["hospice_palliative"],
}


def metric_columns(
    metrics, rows, as_of_days, outputs
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Metric columns (numpy) of the selected kernel output rows.

    Parameters
    ----------
    metrics : MetricsConfig
        The windows, lookbacks and average-MME definitions the outputs were computed with.
    rows : numpy.ndarray of int
        Selected output rows ``m * k + j``, ascending.
    as_of_days : numpy.ndarray of int32
        The as-of day of each selected row.
    outputs : rxrisk.kernels.containers.ScoreOutputs
        The column-major kernel outputs (see :func:`rxrisk.scoring.run.run_kernels`); their
        slots are those of :mod:`rxrisk.kernels.layout`.

    Returns
    -------
    columns, nulls : dict
        Columns by output name; null masks of the nullable ones.
    """
    ints, floats = outputs.ints, outputs.floats
    if len(rows) != ints.shape[1]:  # a subset (all rows, ascending, are taken as they are)
        ints = ints.take(rows, axis=1)
        floats = floats.take(rows, axis=1)
    nw = len(metrics.windows)
    stems = definition_stems(metrics.mme_definitions)
    cols: dict[str, np.ndarray] = {}
    for wi, w in enumerate(metrics.windows):
        for name, slot in layout.WINDOW_INTS:
            cols[f"{name}_{w}d"] = ints[layout.window_int(wi, slot)]
        for name, slot in layout.WINDOW_FLOATS:
            cols[f"{name}_{w}d"] = floats[layout.window_float(wi, slot)]
        for name, slot in layout.DEFINITION_FLOATS:
            if name in stems:
                cols[f"{name}_{w}d"] = floats[layout.definition_float(nw, wi, slot)]
    for name, slot in layout.SINGLE_FLOATS:
        cols[name] = floats[layout.single_float(nw, slot)]
    single = {name: ints[layout.single_int(nw, slot)] for name, slot in layout.SINGLE_INTS}
    for name in ("high_dose_run", "mat_fills", "naloxone_fills"):
        cols[name] = single[name]
    cols[f"ed_visits_{metrics.ed_lookback_days}d"] = single["ed_visits"]
    cols[f"overdoses_{metrics.dx_lookback_days}d"] = single["overdoses"]
    last = single["last_emergency"]
    none = last == layout.NO_DATE
    cols["last_emergency_date"] = np.where(none, 0, last).astype(np.int32)
    cols["days_since_emergency"] = np.where(none, 0, as_of_days.astype(np.int64) - last).astype(
        np.int32
    )
    bits = single["category_bits"]
    for name, mask in DX_BITS.items():
        cols[name] = (bits & mask) != 0
    nulls = {"last_emergency_date": none, "days_since_emergency": none}
    return cols, nulls


def reasons_array(flags: dict[str, np.ndarray], n: int) -> pa.Array:
    """list<string> of the names of the true flags per row, in flag order (vectorised).

    Parameters
    ----------
    flags : dict of str to numpy.ndarray of bool
        Flag columns by name, each of length ``n``, in output order.
    n : int
        Number of rows.

    Returns
    -------
    pyarrow.ListArray
        One list of flag names per row.
    """
    names = list(flags)
    if not names:
        return pa.ListArray.from_arrays(
            pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string())
        )
    matrix = np.column_stack([flags[k] for k in names]) if n else np.zeros((0, len(names)), bool)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(matrix.sum(axis=1), out=offsets[1:])
    _, which = np.nonzero(matrix)
    values = pa.array(names, pa.string()).take(pa.array(which.astype(np.int32)))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def member_table(
    member_ids: pa.Array, as_of_days: np.ndarray, metrics, cols, nulls, flags
) -> pa.Table:
    """Assemble the member table.

    Parameters
    ----------
    member_ids : pyarrow.Array
        The member id of each row.
    as_of_days : numpy.ndarray of int
        The as-of day of each row.
    metrics : MetricsConfig
        Names the metric columns (windows, lookbacks and average-MME definitions).
    cols, nulls : dict
        Metric columns and their null masks (:func:`metric_columns`).
    flags : dict of str to numpy.ndarray of bool
        Flag columns in output order.

    Returns
    -------
    pyarrow.Table
        ``member_id``, ``as_of``, the metric columns, the flags and ``reasons``.
    """
    n = len(as_of_days)
    arrays = [member_ids, pa.array(as_of_days.astype(np.int32), pa.int32()).view(pa.date32())]
    names = ["member_id", "as_of"]
    for f in metric_fields(
        metrics.windows, metrics.ed_lookback_days, metrics.dx_lookback_days, metrics.mme_definitions
    ):
        data = cols[f.name]
        mask = nulls.get(f.name)
        if pa.types.is_date32(f.type):
            arr = pa.array(data.astype(np.int32), pa.int32(), mask=mask).view(pa.date32())
        else:
            arr = pa.array(data.astype(f.type.to_pandas_dtype(), copy=False), f.type, mask=mask)
        arrays.append(arr)
        names.append(f.name)
    for name, values in flags.items():
        arrays.append(pa.array(values, pa.bool_()))
        names.append(name)
    arrays.append(reasons_array(flags, n))
    names.append("reasons")
    return pa.Table.from_arrays(arrays, names=names)

"""Member-table assembly (SPEC 4), the audit, the quarantine table and atomic writers."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from rxrisk.arrowutil import take_rows
from rxrisk.codesets import CATEGORIES
from rxrisk.errors import InputError
from rxrisk.kernels.distinct import C_BENZO_FILLS, C_OPIOID_FILLS, C_PHARMACIES, C_PRESCRIBERS
from rxrisk.kernels.events import NO_DATE
from rxrisk.kernels.member_scores import N_COUNTS, N_MME
from rxrisk.kernels.windows import (
    C_BENZO_OVERLAP,
    C_CNS_OVERLAP,
    C_HIGH_DOSE_DAYS,
    C_OPIOID_DAYS,
    M_AVG,
    M_PEAK,
    M_TOTAL,
)
from rxrisk.schema import metric_fields

_COUNT_COL = {
    "opioid_fills": C_OPIOID_FILLS,
    "opioid_prescribers": C_PRESCRIBERS,
    "opioid_pharmacies": C_PHARMACIES,
    "opioid_days": C_OPIOID_DAYS,
    "high_dose_days": C_HIGH_DOSE_DAYS,
    "benzo_fills": C_BENZO_FILLS,
    "benzo_overlap_days": C_BENZO_OVERLAP,
    "cns_overlap_days": C_CNS_OVERLAP,
}
_MME_COL = {"mme_total": M_TOTAL, "mme_avg": M_AVG, "mme_peak": M_PEAK}
_BIT = {name: 1 << i for i, name in enumerate(CATEGORIES)}
_DX_BITS = {
    "oud_dx": _BIT["oud"],
    "sud_dx": _BIT["oud"] | _BIT["sud_other"],
    "cancer_dx": _BIT["cancer"],
    "sickle_cell_dx": _BIT["sickle_cell"],
    "hospice_dx": _BIT["hospice_palliative"],
}


def metric_columns(
    metrics, rows, as_of_days, raw
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Metric columns (numpy) of the selected kernel output rows.

    Parameters
    ----------
    metrics : MetricsConfig
    rows : int array, selected rows ``m * k + j`` of the kernel outputs, ascending.
    as_of_days : int32 array, the as-of day of each selected row.
    raw : dict with the column-major kernel outputs ``ints`` and ``floats`` (see
        :func:`rxrisk.kernels.member_scores.score_members`).

    Returns
    -------
    columns, nulls : dict
        Columns by output name; null masks of the nullable ones.
    """
    ints, floats = raw["ints"], raw["floats"]
    if len(rows) != ints.shape[1]:  # a subset (all rows, ascending, are taken as they are)
        ints = ints.take(rows, axis=1)
        floats = floats.take(rows, axis=1)
    nw = len(metrics.windows)
    ci, cf = nw * N_COUNTS, nw * N_MME
    cols: dict[str, np.ndarray] = {}
    for wi, w in enumerate(metrics.windows):
        for name, c in _COUNT_COL.items():
            cols[f"{name}_{w}d"] = ints[wi * N_COUNTS + c]
        for name, c in _MME_COL.items():
            cols[f"{name}_{w}d"] = floats[wi * N_MME + c]
    cols["mme_today"] = floats[cf]
    cols["mme_rolling_max"] = floats[cf + 1]
    cols["high_dose_run"] = ints[ci]
    cols["mat_fills"] = ints[ci + 1]
    cols["naloxone_fills"] = ints[ci + 2]
    cols[f"ed_visits_{metrics.ed_lookback_days}d"] = ints[ci + 3]
    cols[f"overdoses_{metrics.dx_lookback_days}d"] = ints[ci + 4]
    last = ints[ci + 5]
    none = last == NO_DATE
    cols["last_emergency_date"] = np.where(none, 0, last).astype(np.int32)
    cols["days_since_emergency"] = np.where(none, 0, as_of_days.astype(np.int64) - last).astype(
        np.int32
    )
    bits = ints[ci + 6]
    for name, mask in _DX_BITS.items():
        cols[name] = (bits & mask) != 0
    nulls = {"last_emergency_date": none, "days_since_emergency": none}
    return cols, nulls


def reasons_array(flags: dict[str, np.ndarray], n: int) -> pa.Array:
    """list<string> of the names of the true flags per row, in flag order (vectorised)."""
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
    """Assemble the SPEC 4 member table."""
    n = len(as_of_days)
    arrays = [member_ids, pa.array(as_of_days.astype(np.int32), pa.int32()).view(pa.date32())]
    names = ["member_id", "as_of"]
    for f in metric_fields(metrics.windows, metrics.ed_lookback_days, metrics.dx_lookback_days):
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


def quarantine_table(
    parts: list[tuple[str, pa.Table, np.ndarray, np.ndarray, tuple[str, ...]]],
) -> pa.Table:
    """Rejected rows as read, with ``source``, ``row_number`` (1-based) and ``reject_reason``.

    ``parts`` holds (source label, raw table, row indices, reason codes, reason names) and
    optionally the 0-based input row numbers of those rows when ``raw`` is not the whole input
    (streaming keeps only each batch's rejected rows). Columns of all parts are unioned; a
    column whose types differ is written as text.
    """
    tables = []
    for label, raw, rows, reason, reason_names, *row_numbers in parts:
        numbers = row_numbers[0] if row_numbers else rows
        taken = pa.table({name: take_rows(raw.column(name), rows) for name in raw.column_names})
        head = pa.table(
            {
                "source": pa.array([label] * len(rows), pa.string()),
                "row_number": pa.array(numbers + 1, pa.int64()),
                "reject_reason": pa.array(reason_names, pa.string()).take(
                    pa.array(reason.astype(np.int32))
                ),
            }
        )
        for name in taken.column_names:
            head = head.append_column(name, taken.column(name))
        tables.append(head)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = [
            t.cast(
                pa.schema(
                    [pa.field(f.name, pa.string()) if i >= 3 else f for i, f in enumerate(t.schema)]
                )
            )
            for t in tables
        ]
        return pa.concat_tables(texts, promote_options="permissive")


# ------------------------------------------------------------------------------------ writers

_FORMATS = (".parquet", ".csv", ".arrow")


def check_output_path(path, what: str = "--out") -> Path:
    """Validate an output path early (before any work): known extension, folder exists."""
    p = Path(path)
    if p.suffix.lower() not in _FORMATS and what != "--audit":
        raise InputError(
            f"{what} {p}: unknown extension '{p.suffix}'; use one of {', '.join(_FORMATS)}"
        )
    if not p.parent.exists() and str(p.parent) not in ("", "."):
        raise InputError(f"{what} {p}: folder {p.parent} does not exist; create it first")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target folder; rename it onto ``path`` on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _csv_ready(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        if pa.types.is_list(col.type):
            joined = pc.binary_join(col, ";")
            cols.append(joined)
        else:
            cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def write_table(table: pa.Table, path) -> None:
    """Write a table atomically; the format follows the extension (.parquet, .csv, .arrow)."""
    path = Path(path)
    ext = path.suffix.lower()
    with atomic_path(path) as tmp:
        if ext == ".parquet":
            pq.write_table(table, tmp, compression="zstd")
        elif ext == ".csv":
            pacsv.write_csv(_csv_ready(table), tmp)
        elif ext == ".arrow":
            with ipc.new_file(tmp, table.schema) as writer:
                writer.write_table(table)
        else:  # guarded by check_output_path
            raise InputError(
                f"{path}: unknown extension '{path.suffix}'; use one of {', '.join(_FORMATS)}"
            )


def write_json(obj, path) -> None:
    """Write JSON atomically (sorted keys are not used: the audit keeps its documented order)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2) + "\n")

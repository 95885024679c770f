"""Names and Arrow types of the member-table columns, derived from config."""

from __future__ import annotations

import pyarrow as pa

#: Per-window float metrics.
WINDOW_MME_METRICS = ("mme_total", "mme_avg", "mme_peak")
#: Output order of the per-window columns.
WINDOW_ORDER = (
    "opioid_fills",
    "opioid_prescribers",
    "opioid_pharmacies",
    "opioid_days",
    "mme_total",
    "mme_avg",
    "mme_peak",
    "high_dose_days",
    "benzo_fills",
    "benzo_overlap_days",
    "cns_overlap_days",
)
DX_COLUMNS = ("oud_dx", "sud_dx", "cancer_dx", "sickle_cell_dx", "hospice_dx")
#: The optional average-MME definitions of a rule file's ``[metrics] mme_definitions``, in the
#: order of their columns: definition ``x`` adds ``mme_avg_x_{w}d`` to every window, right
#: after ``mme_avg_{w}d`` (whatever the order of the rule file's list).
MME_DEFINITIONS = ("window", "supply", "fill")

COUNT_TYPE = pa.int32()


def definition_stems(definitions) -> list[str]:
    """The column stems (``mme_avg_<name>``) of the named average-MME definitions, in
    :data:`MME_DEFINITIONS` order."""
    return [f"mme_avg_{name}" for name in MME_DEFINITIONS if name in definitions]


def metric_fields(windows, ed_days: int, dx_days: int, definitions=()) -> list[pa.Field]:
    """Return the metric fields of the member table, in output order.

    Parameters
    ----------
    windows : sequence of int
        Window lengths in days, ascending.
    ed_days, dx_days : int
        The ``E`` and ``D`` lookbacks of the data dictionary.
    definitions : collection of str, optional
        The optional average-MME definitions (names of :data:`MME_DEFINITIONS`); each adds a
        float64 column per window after that window's ``mme_avg``. None by default.
    """
    stems = definition_stems(definitions)
    fields: list[pa.Field] = []
    for w in windows:
        for name in WINDOW_ORDER:
            typ = pa.float64() if name in WINDOW_MME_METRICS else COUNT_TYPE
            fields.append(pa.field(f"{name}_{w}d", typ))
            if name == "mme_avg":
                fields += [pa.field(f"{stem}_{w}d", pa.float64()) for stem in stems]
    fields += [
        pa.field("mme_today", pa.float64()),
        pa.field("mme_rolling_max", pa.float64()),
        pa.field("high_dose_run", COUNT_TYPE),
        pa.field("mat_fills", COUNT_TYPE),
        pa.field("naloxone_fills", COUNT_TYPE),
        pa.field(f"ed_visits_{ed_days}d", COUNT_TYPE),
        pa.field(f"overdoses_{dx_days}d", COUNT_TYPE),
        pa.field("last_emergency_date", pa.date32()),
        pa.field("days_since_emergency", COUNT_TYPE),
    ]
    fields += [pa.field(name, pa.bool_()) for name in DX_COLUMNS]
    return fields

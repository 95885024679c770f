"""The measures report's measure wording, numerator member lists and numerator members' detail."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.quality.rates import MEASURES
from rxrisk.reports.markup import esc

MEASURE_LABEL = {
    "high_dose_average": "High dose: average daily MME",
    "high_dose_sustained": "High dose: sustained",
    "multiple_prescribers": "Multiple prescribers",
    "multiple_pharmacies": "Multiple pharmacies",
    "multiple_providers": "Multiple prescribers and pharmacies",
    "high_dose_multiple_providers": "High dose and multiple providers",
    "opioid_benzodiazepine": "Opioids with benzodiazepines",
    "continued_use_15_of_30": "Continued use: 15 of 30 days",
    "continued_use_31_of_62": "Continued use: 31 of 62 days",
}
MODELLED_ON = {
    "high_dose_average": "HEDIS HDO",
    "high_dose_sustained": "PQA OHD",
    "multiple_prescribers": "HEDIS UOP",
    "multiple_pharmacies": "HEDIS UOP",
    "multiple_providers": "PQA OMP, HEDIS UOP",
    "high_dose_multiple_providers": "PQA OHDMP",
    "opioid_benzodiazepine": "PQA COB",
    "continued_use_15_of_30": "HEDIS COU",
    "continued_use_31_of_62": "HEDIS COU",
}
COLUMN_LABEL = {
    "product": "Product",
    "age": "Age",
    "exclusion": "Exclusion",
    "opioid_claims": "Opioid claims",
    "opioid_fill_dates": "Opioid fill dates",
    "cumulative_days_supply": "Days supply",
    "ipsd": "First opioid fill",
    "treatment_days": "Treatment days",
    "avg_mme": "Avg daily MME",
    "longest_high_dose_run": "High-dose run",
    "prescribers": "Prescribers",
    "pharmacies": "Pharmacies",
    "benzo_fill_dates": "Benzo fill dates",
    "opioid_benzo_days": "Opioid + benzo days",
    "episode_start": "Episode start",
    "covered_30": "Covered of 30",
    "covered_62": "Covered of 62",
}
#: The detail section's columns (a numerator member is never excluded: no ``exclusion``).
DETAIL_SHOWN = tuple(c for c in COLUMN_LABEL if c != "exclusion")
_BREAKABLE = {  # soft hyphens: the narrow detail table may break these headers
    "prescribers": "Prescri\u00adbers",
    "pharmacies": "Pharma\u00adcies",
    "treatment_days": "Treat\u00adment days",
}
_CELL_CLASS = {"product": "", "exclusion": "", "ipsd": "num nw", "episode_start": "num nw"}
_PROVIDERS = ("prescribers", "pharmacies", "opioid_claims", "avg_mme")
MEASURE_QUANTITIES = {
    "high_dose_average": ("avg_mme", "treatment_days", "ipsd", "opioid_fill_dates"),
    "high_dose_sustained": ("longest_high_dose_run", "avg_mme", "treatment_days", "ipsd"),
    "multiple_prescribers": _PROVIDERS,
    "multiple_pharmacies": _PROVIDERS,
    "multiple_providers": _PROVIDERS,
    "high_dose_multiple_providers": (
        "longest_high_dose_run",
        "prescribers",
        "pharmacies",
        "avg_mme",
    ),
    "opioid_benzodiazepine": ("benzo_fill_dates", "opioid_benzo_days", "opioid_fill_dates"),
    "continued_use_15_of_30": ("episode_start", "covered_30", "covered_62"),
    "continued_use_31_of_62": ("episode_start", "covered_30", "covered_62"),
}


def fmt_count(x) -> str:
    """A count with thousands separators (``1,234``)."""
    return f"{int(x):,}"


def fmt_value(x) -> str:
    """A detail value as text: counts with separators, MME with one decimal, ISO dates, and
    an empty cell for null."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def period_label(p0: dt.date, p1: dt.date) -> str:
    """A period in words: the year for a calendar year, else ``first to last``."""
    if (p0.month, p0.day, p1.month, p1.day) == (1, 1, 12, 31) and p0.year == p1.year:
        return str(p0.year)
    return f"{p0} to {p1}"


def _n(x) -> str:
    x = float(x)
    return f"{x:g}" if x != round(x) else f"{x:.0f}"


def definitions(s) -> str:
    """What each measure counts, with the thresholds in force.

    Parameters
    ----------
    s : rxrisk.quality.settings.MeasureSettings
        The thresholds.

    Returns
    -------
    str
        A heading and a table, a row per measure.
    """
    opioid = (
        f"age {s.min_age}+ on the first day, enrolled, {s.min_opioid_fill_dates}+ opioid fill "
        f"dates and {s.min_cumulative_days_supply}+ days supply in the period"
    )
    continued = (
        f"age {s.min_age}+, enrolled, and a new opioid episode (no opioid on any of the "
        f"{s.negative_history_days} days before it) starting at least 62 days before the "
        "period ends"
    )
    providers = f"{s.min_prescribers}+ prescribers and {s.min_pharmacies}+ pharmacies"
    run = f"{s.high_dose_run_days}+ consecutive days at {_n(s.high_dose_mme)}+ MME"
    numerator = {
        "high_dose_average": "average daily MME over the treatment days "
        f"{_n(s.high_dose_average_mme)}+",
        "high_dose_sustained": run,
        "multiple_prescribers": f"opioids from {s.min_prescribers}+ prescribers",
        "multiple_pharmacies": f"opioids from {s.min_pharmacies}+ pharmacies",
        "multiple_providers": f"opioids from {providers}",
        "high_dose_multiple_providers": f"{run}, and opioids from {providers}",
        "opioid_benzodiazepine": f"{s.min_benzo_fill_dates}+ benzodiazepine fill dates and "
        f"{s.min_opioid_benzo_days}+ days covered by both",
        "continued_use_15_of_30": f"opioids on {s.min_covered_30}+ of the episode's first 30 days",
        "continued_use_31_of_62": f"opioids on {s.min_covered_62}+ of the episode's first 62 days",
    }
    rows = "".join(
        f"<tr><td>{esc(MEASURE_LABEL[m])}<small>{esc(m)}</small></td><td>{esc(numerator[m])}</td>"
        f"<td>{esc(continued if m.startswith('continued_use') else opioid)}</td>"
        f"<td>{esc(MODELLED_ON[m])}</td></tr>"
        for m in MEASURES
    )
    return (
        "<h2>What the measures count</h2>"
        '<table class="defs"><thead><tr><th>Measure</th><th>Numerator</th><th>Eligible</th>'
        f"<th>Modelled on</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="note">Claims count when filled in the period. Enrolled: at most '
        f"{s.max_gaps} gap of at most {s.max_gap_days} days in the period, and enrolled on its "
        "last day. The definitions are modelled on the published descriptions of the PQA and "
        "NCQA HEDIS measures; their licensed value sets and fine print are not reproduced.</p>"
    )


@dataclass
class MemberLists:
    """The numerator members of every (period, measure, product), and their detail rows.

    ``rows`` are the detail rows in at least one numerator, in detail order (member, then
    period); the detail anchor of ``rows[i]`` is ``d{i}``. ``lists[(j, m)]`` holds, per product
    of period ``j`` in report order, the positions in ``rows`` of that product's numerator
    members of measure ``m``.
    """

    rows: list
    lists: dict
    products: dict  # period index -> products of the period, "all" first
    labels: list  # period index -> the period in words
    index: dict  # (first day, last day) of a period -> its index

    @classmethod
    def build(cls, detail: pa.Table, periods: list, products: dict, labels: list) -> MemberLists:
        """Gather the numerator rows of ``detail`` for the ``periods`` (``(start, end)`` dates)
        with the ``products`` of each period and the periods' ``labels``."""
        hit = np.zeros(detail.num_rows, dtype=bool)
        for m in MEASURES:
            hit |= _bools(detail, f"{m}_numerator")
        rows = detail.take(pa.array(np.flatnonzero(hit), pa.int64())).to_pylist()
        index = {(p[0], p[1]): j for j, p in enumerate(periods)}
        names = {j: list(products[p]) for j, p in enumerate(periods)}
        lists: dict = {}
        for i, r in enumerate(rows):
            j = index.get((r["period_start"], r["period_end"]))
            if j is None:
                continue
            product = r["product"] if r["product"] is not None else "unspecified"
            if product not in names[j]:
                names[j].append(product)
            for m in MEASURES:
                if r[f"{m}_numerator"]:
                    lists.setdefault((j, m), {}).setdefault(product, []).append(i)
        return cls(rows=rows, lists=lists, products=names, labels=labels, index=index)

    @property
    def n_members(self) -> int:
        """Distinct members in any numerator of any period."""
        return len({r["member_id"] for r in self.rows})

    def anchor(self, j: int, m: str, product: str | None) -> str | None:
        """The anchor of the list of period ``j``, measure ``m`` (and ``product``; None for every
        product), or None when the list is empty."""
        groups = self.lists.get((j, m), {})
        if product is None:
            return f"n-p{j}-{m}" if groups else None
        if not groups.get(product):
            return None
        return f"n-p{j}-{m}-k{self.products[j].index(product)}"

    def numerator_sections(self) -> str:
        """A section listing, per period and measure, the numerator members by product."""
        parts = []
        for j, label in enumerate(self.labels):
            for m in MEASURES:
                if (j, m) in self.lists:
                    parts.append(self._list(j, m, label))
        if not parts:
            parts.append("<p>No member is in a numerator.</p>")
        return (
            '<section class="cover" id="numerators"><h1>Numerator members</h1>'
            '<p class="sub">Per period and measure, by product; a member id leads to the '
            "member's detail.</p>" + "".join(parts) + "</section>"
        )

    def _list(self, j: int, m: str, label: str) -> str:
        groups = self.lists[(j, m)]
        cols = MEASURE_QUANTITIES[m]
        head = "".join(f'<th class="num">{esc(COLUMN_LABEL[c])}</th>' for c in ("age", *cols))
        body = []
        total = 0
        for product in self.products[j]:
            members = groups.get(product)
            if not members:
                continue
            total += len(members)
            body.append(
                f'<tr class="grp" id="{self.anchor(j, m, product)}"><th colspan="{len(cols) + 2}">'
                f"{esc(product)} ({fmt_count(len(members))})</th></tr>"
            )
            for i in members:
                r = self.rows[i]
                tds = "".join(f'<td class="num">{esc(fmt_value(r.get(c)))}</td>' for c in cols)
                body.append(
                    f'<tr><td><a href="#d{i}">{esc(r["member_id"])}</a></td>'
                    f'<td class="num">{esc(fmt_value(r.get("age")))}</td>{tds}</tr>'
                )
        return (
            f'<h2 id="{self.anchor(j, m, None)}">{esc(MEASURE_LABEL[m])}, {esc(label)}: '
            f"{fmt_count(total)} numerator members</h2>"
            f'<div class="scroll"><table class="numerator" data-measure="{esc(m)}" '
            f'data-period="{j}"><thead><tr><th>Member</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )

    def detail_section(self) -> str:
        """A section with a row per numerator member and period: every quantity, and under it
        the numerators the member is in."""
        head = "".join(
            f'<th title="{esc(c)}">{esc(_BREAKABLE.get(c, COLUMN_LABEL[c]))}</th>'
            for c in DETAIL_SHOWN
        )
        width = len(DETAIL_SHOWN) + 2
        body = []
        for i, r in enumerate(self.rows):
            tds = "".join(
                f'<td class="{_CELL_CLASS.get(c, "num")}">{esc(fmt_value(r.get(c)))}</td>'
                for c in DETAIL_SHOWN
            )
            chips = "".join(
                f'<span class="chip">{esc(m)}</span>' for m in MEASURES if r[f"{m}_numerator"]
            )
            body.append(
                f'<tr id="d{i}"><td class="nw">{esc(r["member_id"])}</td>'
                f'<td class="nw">{esc(self._period(r["period_start"], r["period_end"]))}</td>{tds}</tr>'
                f'<tr class="in"><td></td><td colspan="{width - 1}">in the numerator of '
                f"{chips}</td></tr>"
            )
        if not body:
            body.append(f'<tr><td colspan="{width}">None.</td></tr>')
        return (
            '<section class="cover" id="detail"><h1>Numerator members: detail</h1>'
            '<p class="sub">One row per member and period with a measure numerator; the '
            "quantities are those of the member detail file.</p>"
            '<div class="scroll"><table class="detail"><thead><tr><th>Member</th><th>Period</th>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></section>"
        )

    def _period(self, p0, p1) -> str:
        j = self.index.get((p0, p1))
        return self.labels[j] if j is not None else f"{p0} to {p1}"


def _bools(detail: pa.Table, name: str) -> np.ndarray:
    """A bool column of ``detail`` as numpy (null as false)."""
    col = detail.column(name)
    values = col.to_numpy(zero_copy_only=False)
    return (
        np.asarray([bool(v) for v in values], dtype=bool) if col.null_count else values.astype(bool)
    )

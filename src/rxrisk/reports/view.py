"""What one member's profile shows, gathered into plain Python values (:class:`MemberView`),
and what every page needs besides (:class:`ReportContext`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rxrisk.reports.chart import chart_svg
from rxrisk.reports.data import Daily, Fills, MedicalEvents


@dataclass
class ReportContext:
    """What the renderer needs besides one member's data."""

    as_of: int
    lookback_days: int
    first_day: int
    ruleset: object
    thresholds: dict
    stems: dict = field(default_factory=dict)  # member position -> file stem


@dataclass
class MemberView:
    """Everything one member section shows, in plain Python values."""

    pos: int
    member_id: str
    stem: str
    row: dict
    reasons: list
    mme: np.ndarray
    benzo: np.ndarray
    cns: np.ndarray
    fills: list  # tuples, see FILL_COLUMNS, plus the prescriber code last
    prescribers: list  # (id, opioid fills, all fills, last day)
    pharmacies: list
    events: list  # (day, category bits, codes, bits of each code)
    chart: str = ""

    @classmethod
    def build(
        cls,
        m: int,
        row: dict,
        fills: Fills,
        daily: Daily,
        events: MedicalEvents,
        ctx: ReportContext,
        in_window: np.ndarray,
    ) -> MemberView:
        """The view of member ``m``, its chart drawn.

        Parameters
        ----------
        m : int
            The member's position in ``fills``, ``daily`` and ``events``.
        row : dict
            The member's row of the member table.
        fills, daily, events :
            The claims of the reported members (:mod:`rxrisk.reports.data`).
        ctx : ReportContext
            The report.
        in_window : numpy.ndarray
            bool per fill: filled in the lookback.

        Returns
        -------
        MemberView
            The member's profile in plain values.
        """
        sl = fills.rows(m)
        table, prescribers, pharmacies = _fill_rows(
            fills, np.arange(sl.start, sl.stop)[in_window[sl]]
        )
        view = cls(
            pos=m,
            member_id=str(row["member_id"]),
            stem=ctx.stems[m],
            row=row,
            reasons=list(row.get("reasons") or []),
            mme=daily.mme[m],
            benzo=daily.benzo_overlap[m],
            cns=daily.cns_overlap[m] & ~daily.benzo_overlap[m],
            fills=table,
            prescribers=prescribers,
            pharmacies=pharmacies,
            events=_event_days(events, m),
        )
        view.chart = chart_svg(view, ctx)
        return view


def _fill_rows(fills: Fills, idx: np.ndarray) -> tuple[list, list, list]:
    """The fills table rows of fills ``idx``, and the prescriber and pharmacy lists."""
    cache = _pylists(fills)
    table = []
    presc, pharm = Counter(), Counter()
    presc_op, pharm_op = Counter(), Counter()
    last_p, last_r = {}, {}
    for i in idx.tolist():
        p, q = cache["prescriber"][i], cache["pharmacy"][i]
        opioid = cache["drug_class"][i] == "opioid"
        day = int(fills.start[i])
        table.append(
            (
                day,
                cache["drug_name"][i],
                cache["ndc"][i],
                cache["drug_class"][i],
                cache["strength"][i],
                cache["unit"][i],
                float(fills.quantity[i]),
                int(fills.days_supply[i]),
                int(fills.covered[i]),
                float(fills.mme[i]) if opioid else None,
                p,
                q,
                int(fills.prescriber[i]),
            )
        )
        presc[p] += 1
        pharm[q] += 1
        presc_op[p] += opioid
        pharm_op[q] += opioid
        last_p[p] = day
        last_r[q] = day
    return (
        table,
        _provider_list(presc, presc_op, last_p),
        _provider_list(pharm, pharm_op, last_r),
    )


def _event_days(events: MedicalEvents, m: int) -> list[tuple]:
    """Member ``m``'s medical rows merged by day: (day, bits, codes, bits of each code)."""
    ev = []
    esl = events.rows(m)
    for i in range(esl.start, esl.stop):
        mask = int(events.mask[i])
        code = f"{events.code_type[i]} {events.code[i]}"
        day = int(events.day[i])
        if ev and ev[-1][0] == day:
            ev[-1][1] |= mask
            if code in ev[-1][2]:
                ev[-1][3][ev[-1][2].index(code)] |= mask
            else:
                ev[-1][2].append(code)
                ev[-1][3].append(mask)
        else:
            ev.append([day, mask, [code], [mask]])
    return [tuple(e) for e in ev]


def _pylists(fills: Fills) -> dict:
    """Python lists of the fills' text columns (made once per report, kept on ``fills``)."""
    cache = fills.py
    if not cache:
        cache = {
            "prescriber": fills.prescriber_ids.take(_codes(fills.prescriber)).to_pylist(),
            "pharmacy": fills.pharmacy_ids.take(_codes(fills.pharmacy)).to_pylist(),
            "drug_name": fills.drug_name.to_pylist(),
            "ndc": fills.ndc.to_pylist(),
            "drug_class": fills.drug_class.to_pylist(),
            "strength": fills.strength.to_pylist(),
            "unit": fills.unit.to_pylist(),
        }
        fills.py.update(cache)
    return cache


def _codes(codes: np.ndarray) -> pa.Array:
    return pa.array(codes.astype(np.int64), mask=codes < 0)


def _provider_list(counts, opioid, last) -> list:
    rows = [(k, opioid[k], n, last[k]) for k, n in counts.items()]
    rows.sort(key=lambda r: (-r[2], -r[3], r[0] is None, str(r[0])))
    return rows

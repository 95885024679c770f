"""HTML and inline-SVG rendering of the report pages (see :mod:`rxrisk.reports.profiles`).

Every page is self-contained: inline CSS, inline SVG, no script, no external asset, and a
Content-Security-Policy that forbids loading anything. Every data value goes through
:func:`esc` (``html.escape``); only numbers this module computes itself (coordinates) are
written unescaped.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from rxrisk import __version__
from rxrisk.config.codesets import CATEGORIES
from rxrisk.reports.profiles import (
    CATEGORY_BIT,
    CATEGORY_LABEL,
    date_of,
    fmt_date,
    mme_text,
    num,
    plural,
    reason_sentences,
)

CLASS_LABEL = {
    "opioid": "Opioid",
    "benzodiazepine": "Benzodiazepine",
    "gabapentinoid": "Gabapentinoid",
    "muscle_relaxant": "Muscle relaxant",
    "sedative_hypnotic": "Sleep drug (Z-drug)",
    "buprenorphine_mat": "Buprenorphine (MAT)",
    "naltrexone": "Naltrexone",
    "naloxone": "Naloxone",
    "stimulant": "Stimulant",
}
REASON_LABEL = {
    "excluded": "Exempt: cancer, sickle cell disease or hospice care",
    "high_dose": "High average daily dose",
    "multi_provider": "Opioids from multiple prescribers and pharmacies",
    "cms_oms": "CMS opioid overutilization criteria",
    "concurrent_benzo": "Opioids overlapping with benzodiazepines",
    "dose_with_cns": "Opioid dose with other CNS depressants",
    "overdose_history": "Opioid overdose in the last year",
    "substance_use_history": "Substance use disorder diagnosis",
    "at_risk": "At risk (any criterion)",
    "emergency_outreach": "Emergency visit in the last 90 days",
}
MAX_EVENT_ROWS = 40
REFERENCE_LINES = (50.0, 90.0)  # CDC: reassess at 50 MME/day, avoid or justify 90 MME/day


def esc(value) -> str:
    """Escape any value for HTML text and attributes (None becomes empty)."""
    return html.escape("" if value is None else str(value), quote=True)


# --------------------------------------------------------------------------- member view


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
    def build(cls, m, row, fills, daily, events, ctx, in_window) -> MemberView:
        sl = fills.rows(m)
        idx = np.arange(sl.start, sl.stop)[in_window[sl]]
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
        reasons = list(row.get("reasons") or [])
        view = cls(
            pos=m,
            member_id=str(row["member_id"]),
            stem=ctx.stems[m],
            row=row,
            reasons=reasons,
            mme=daily.mme[m],
            benzo=daily.benzo_overlap[m],
            cns=daily.cns_overlap[m] & ~daily.benzo_overlap[m],
            fills=table,
            prescribers=_provider_list(presc, presc_op, last_p),
            pharmacies=_provider_list(pharm, pharm_op, last_r),
            events=[tuple(e) for e in ev],
        )
        view.chart = chart_svg(view, ctx)
        return view


def _pylists(fills) -> dict:
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


def _codes(codes: np.ndarray):
    import pyarrow as pa

    return pa.array(codes.astype(np.int64), mask=codes < 0)


def _provider_list(counts, opioid, last) -> list:
    rows = [(k, opioid[k], n, last[k]) for k, n in counts.items()]
    rows.sort(key=lambda r: (-r[2], -r[3], r[0] is None, str(r[0])))
    return rows


# --------------------------------------------------------------------------------- chart

_W, _H, _L, _R, _T, _B = 960, 300, 56, 64, 16, 44


def _nice_axis(top: float) -> tuple[float, float]:
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000):
        if top / step <= 7:
            return float(np.ceil(top / step) * step), float(step)
    step = 10 ** np.ceil(np.log10(top / 6))
    return float(np.ceil(top / step) * step), float(step)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(
        zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(), strict=True)
    )


def chart_svg(view, ctx) -> str:
    """The daily MME chart: one point per lookback day, 50/90 MME lines, overlap shading,
    ED visit and overdose markers."""
    n = len(view.mme)
    pw, ph = _W - _L - _R, _H - _T - _B
    peak = float(view.mme.max()) if n else 0.0
    ymax, step = _nice_axis(max(100.0, peak * 1.08))
    dx = pw / max(n, 1)

    def x(i):
        return _L + (i + 0.5) * dx

    def y(v):
        return _T + ph * (1.0 - v / ymax)

    first, last = ctx.first_day, ctx.first_day + n - 1
    title = f"Daily MME from {fmt_date(first)} to {fmt_date(last)}"
    o = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{esc(title)}" data-days="{n}" data-ymax="{ymax:g}">',
        f"<title>{esc(title)}</title>",
        f'<rect class="plot" x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="#fbfcfd" '
        f'stroke="#c9d1d9"/>',
    ]
    for cls, mask, color in (
        ("cns-overlap", view.cns, "#c39bd3"),
        ("benzo-overlap", view.benzo, "#f39c12"),
    ):
        for s, e in _runs(mask):
            o.append(
                f'<rect class="{cls}" x="{_L + s * dx:.1f}" y="{_T}" width="{(e - s + 1) * dx:.1f}" '
                f'height="{ph}" fill="{color}" fill-opacity="0.28"><title>{esc(fmt_date(first + s))}'
                f" to {esc(fmt_date(first + e))}: {'benzodiazepine' if cls == 'benzo-overlap' else 'other CNS depressant'}"
                f" overlap ({e - s + 1} days)</title></rect>"
            )
    v = 0.0
    while v <= ymax + 1e-9:
        o.append(
            f'<line class="grid" x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#e3e8ee"/><text x="{_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" '
            f'class="tick">{num(v)}</text>'
        )
        v += step
    shown_year = False
    for i in range(n):
        d = date_of(first + i)
        if d.day == 1 or i == 0:
            label = d.strftime("%b") if d.day == 1 else ""
            if d.day == 1 and (d.month == 1 or not shown_year):
                label += f" {d.year}"
                shown_year = True
            o.append(
                f'<line class="xtick" x1="{_L + i * dx:.1f}" x2="{_L + i * dx:.1f}" y1="{_T + ph}" '
                f'y2="{_T + ph + 5}" stroke="#8a96a3"/>'
            )
            if label:
                o.append(
                    f'<text class="tick" x="{_L + i * dx + 3:.1f}" y="{_T + ph + 17}">{esc(label)}</text>'
                )
    o.append(
        f'<text class="tick" x="{_L + pw}" y="{_T + ph + 34}" text-anchor="end">as of '
        f"{esc(fmt_date(last))}</text>"
        f'<text class="tick" x="{_L}" y="{_T + ph + 34}">{esc(fmt_date(first))}</text>'
        f'<text class="axis" transform="translate(14 {_T + ph / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">MME per day</text>'
    )
    pts = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, v in enumerate(view.mme))
    if n:
        o.append(
            f'<polygon class="mme-area" points="{x(0):.1f},{y(0):.1f} {pts} '
            f'{x(n - 1):.1f},{y(0):.1f}" fill="#1f4e99" fill-opacity="0.10"/>'
        )
    for ref, color in zip(REFERENCE_LINES, ("#b9770e", "#c0392b"), strict=True):
        o.append(
            f'<line class="ref ref-{ref:g}" data-mme="{ref:g}" x1="{_L}" x2="{_L + pw}" '
            f'y1="{y(ref):.1f}" y2="{y(ref):.1f}" stroke="{color}" stroke-width="1.5" '
            f'stroke-dasharray="6 4"/><text class="reflabel" x="{_L + pw + 4}" '
            f'y="{y(ref) + 4:.1f}" fill="{color}">{ref:g} MME</text>'
        )
    o.append(
        f'<polyline class="mme-line" points="{pts}" fill="none" stroke="#1f4e99" '
        f'stroke-width="2" stroke-linejoin="round"/>'
    )
    for day, mask, codes, _ in view.events:
        if not first <= day <= last:
            continue
        xi = x(day - first)
        tip = esc(f"{fmt_date(day)}: " + ", ".join(codes))
        if mask & CATEGORY_BIT["opioid_overdose"]:
            o.append(
                f'<g class="event od-marker"><title>Opioid overdose {tip}</title>'
                f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{_T}" y2="{_T + ph}" stroke="#c0392b" '
                f'stroke-width="1.5"/><path d="M{xi:.1f} {_T - 1} l7 8 l-7 8 l-7 -8 z" '
                f'fill="#c0392b"/></g>'
            )
        if mask & CATEGORY_BIT["ed_visit"]:
            o.append(
                f'<g class="event ed-marker"><title>ED visit {tip}</title>'
                f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{_T}" y2="{_T + ph}" stroke="#6c3483" '
                f'stroke-dasharray="2 3"/><path d="M{xi:.1f} {_T + ph - 12} l7 12 h-14 z" '
                f'fill="#6c3483"/></g>'
            )
    o.append("</svg>")
    return "".join(o)


_LEGEND = (
    '<div class="legend">'
    '<span><i class="sw" style="background:#1f4e99"></i>Daily MME</span>'
    '<span><i class="sw dash" style="border-color:#b9770e"></i>50 MME</span>'
    '<span><i class="sw dash" style="border-color:#c0392b"></i>90 MME</span>'
    '<span><i class="sw box" style="background:#f8d49c"></i>Opioid + benzodiazepine</span>'
    '<span><i class="sw box" style="background:#ead7f0"></i>Opioid + other CNS depressant</span>'
    '<span><i class="tri" style="color:#6c3483">&#9650;</i>ED visit</span>'
    '<span><i class="tri" style="color:#c0392b">&#9670;</i>Opioid overdose</span>'
    "</div>"
)


# ------------------------------------------------------------------------------ sections


def _tile(label: str, value: str, hot: bool = False, sub: str = "", small=False) -> str:
    cls = "tile hot" if hot else "tile"
    cls += " small" if small else ""
    sub = f"<small>{esc(sub)}</small>" if sub else ""
    return f'<div class="{cls}"><b>{esc(value)}</b><span>{esc(label)}</span>{sub}</div>'


def _metrics(view, ctx) -> str:
    r = view.row
    t = []
    tol = ctx.ruleset.metrics.tolerance
    hd = ctx.ruleset.metrics.high_dose_mme

    def has(*cols):
        return all(r.get(c) is not None for c in cols)

    if has("mme_avg_180d"):
        t.append(
            _tile(
                "avg daily MME, 180 days",
                mme_text(r["mme_avg_180d"]),
                r["mme_avg_180d"] >= hd - tol,
            )
        )
    if has("mme_peak_180d"):
        t.append(
            _tile(
                "peak daily MME, 180 days",
                mme_text(r["mme_peak_180d"]),
                r["mme_peak_180d"] >= hd - tol,
            )
        )
    if has("mme_today"):
        t.append(_tile("MME on the as-of date", mme_text(r["mme_today"])))
    if has("opioid_prescribers_180d"):
        t.append(
            _tile(
                "opioid prescribers, 180 days",
                num(r["opioid_prescribers_180d"]),
                r["opioid_prescribers_180d"] >= 4,
            )
        )
    if has("opioid_pharmacies_180d"):
        t.append(
            _tile(
                "opioid pharmacies, 180 days",
                num(r["opioid_pharmacies_180d"]),
                r["opioid_pharmacies_180d"] >= 4,
            )
        )
    if has("opioid_fills_180d"):
        t.append(_tile("opioid fills, 180 days", num(r["opioid_fills_180d"])))
    if has("benzo_overlap_days_180d"):
        sub = (
            f"{num(r['benzo_overlap_days_365d'])} in 365 days"
            if has("benzo_overlap_days_365d")
            else ""
        )
        t.append(
            _tile(
                "opioid + benzo overlap days, 180 days",
                num(r["benzo_overlap_days_180d"]),
                r["benzo_overlap_days_180d"] >= 30,
                sub,
            )
        )
    if "last_emergency_date" in r:
        if r.get("last_emergency_date") is None:
            t.append(_tile("last emergency (365 days)", "none"))
        else:
            d = r.get("days_since_emergency")
            t.append(
                _tile(
                    "last emergency",
                    fmt_date(r["last_emergency_date"]),
                    d is not None and d <= 89,
                    f"{num(d)} days before the as-of date",
                    small=True,
                )
            )
    if has("naloxone_fills", "mat_fills"):
        t.append(
            _tile(
                "naloxone / MAT fills, 365 days",
                f"{num(r['naloxone_fills'])} / {num(r['mat_fills'])}",
            )
        )
    return f'<div class="tiles">{"".join(t)}</div>'


FILL_HEAD = (
    "<tr><th>Date</th><th>Drug</th><th>Class</th><th>Strength</th><th class=num>Quantity</th>"
    "<th class=num>Days supply</th><th class=num>Covered days</th><th class=num>MME/day</th>"
    "<th>Prescriber</th><th>Pharmacy</th></tr>"
)


def _fills_table(view, mine: int | None) -> str:
    rows = []
    for day, name, ndc, cls, strength, unit, qty, ds, cov, mme, p, q, pcode in view.fills:
        klass = f"fill c-{esc(cls)}" + (" mine" if mine is not None and pcode == mine else "")
        st = f"{num(strength)} {unit or ''}".strip() if strength is not None else ""
        rows.append(
            f'<tr class="{klass}"><td class="d">{esc(fmt_date(day))}</td><td>{esc(name)}'
            f"<small>NDC {esc(ndc)}</small></td><td>{esc(CLASS_LABEL.get(cls, cls))}</td>"
            f"<td>{esc(st)}</td><td class=num>{esc(num(qty))}</td><td class=num>{esc(ds)}</td>"
            f"<td class=num>{esc(cov)}</td><td class=num>{esc('' if mme is None else f'{mme:.1f}')}"
            f"</td><td>{esc(p if p is not None else '(unknown)')}</td>"
            f"<td>{esc(q if q is not None else '(unknown)')}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="10">No tracked fills in the lookback.</td></tr>')
    return f'<table class="fills"><thead>{FILL_HEAD}</thead><tbody>{"".join(rows)}</tbody></table>'


def _providers(title: str, items: list, mine_id=None) -> str:
    rows = []
    for pid, opioid, total, last in items:
        cls = ' class="mine"' if mine_id is not None and pid == mine_id else ""
        rows.append(
            f"<tr{cls}><td>{esc(pid if pid is not None else '(unknown)')}</td>"
            f"<td class=num>{opioid}</td><td class=num>{total}</td>"
            f"<td>{esc(fmt_date(last))}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="4">None</td></tr>'
    return (
        f'<div><h3>{esc(title)} ({len(items)})</h3><table class="prov"><thead><tr><th>ID</th>'
        f"<th class=num>Opioid fills</th><th class=num>All fills</th><th>Last fill</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def _events(view, ctx) -> str:
    days = max(ctx.lookback_days, ctx.ruleset.metrics.dx_lookback_days)
    items = list(reversed(view.events))
    rows = []
    for day, mask, codes, _ in items[:MAX_EVENT_ROWS]:
        labels = [CATEGORY_LABEL.get(c, c) for c in CATEGORIES if mask & CATEGORY_BIT[c]]
        hot = mask & (CATEGORY_BIT["ed_visit"] | CATEGORY_BIT["opioid_overdose"])
        rows.append(
            f"<tr{' class=hot' if hot else ''}><td>{esc(fmt_date(day))}</td>"
            f"<td>{esc(', '.join(labels))}</td><td>{esc(', '.join(codes))}</td></tr>"
        )
    more = len(items) - MAX_EVENT_ROWS
    if more > 0:
        rows.append(f'<tr><td colspan="3">{more} earlier dates not shown</td></tr>')
    body = (
        "".join(rows)
        or '<tr><td colspan="3">No emergency visits, overdoses or tracked diagnoses.</td></tr>'
    )
    return (
        f"<h2>Emergency visits and diagnoses, last {days} days</h2>"
        f'<table class="events"><thead><tr><th>Date</th><th>What</th><th>Codes</th></tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )


def _nowrap_dates(escaped: str) -> str:
    """Keep ISO dates of already escaped text on one line (digits only are wrapped)."""
    return re.sub(r"\b(\d{4}-\d{2}-\d{2})\b", r'<span class="nw">\1</span>', escaped)


def member_section(view, ctx, prescriber_code: int | None = None, prescriber_id=None) -> str:
    """One member's profile as a ``<section>`` (bundles highlight one prescriber's fills)."""
    r = view.row
    sentences = reason_sentences(view, ctx)
    items = "".join(
        f'<li data-flag="{esc(f)}">{_nowrap_dates(esc(s))}'
        + (f'<span class="anchor">{esc(a)}</span>' if a else "")
        + "</li>"
        for f, s, a in sentences
    )
    chips = "".join(f'<span class="chip">{esc(x)}</span>' for x in view.reasons)
    badge = '<span class="badge">AT RISK</span>' if "at_risk" in view.reasons else ""
    mine = ""
    if prescriber_code is not None:
        k = sum(1 for f in view.fills if f[-1] == prescriber_code)
        mine = (
            f'<p class="mine-note">{plural(k, "fill")} in this profile {"was" if k == 1 else "were"} '
            f"written by you (highlighted).</p>"
        )
    first = fmt_date(ctx.first_day)
    last = fmt_date(ctx.as_of)
    n_opioid = sum(1 for f in view.fills if f[3] == "opioid")
    return (
        f'<section class="member" id="m-{esc(view.stem)}">'
        f"<header><h1>Member {esc(view.member_id)} {badge}</h1>"
        f'<p class="sub">Medication profile as of {esc(last)}; fills {esc(first)} to {esc(last)} '
        f"({ctx.lookback_days} days)</p></header>"
        f'<div class="reasons"><h2>Why this member was flagged</h2><ul>{items}</ul>'
        f'<p class="chips">{chips}</p></div>{mine}'
        f"<h2>Key metrics</h2>{_metrics(view, ctx)}"
        f"<h2>Daily MME, last {ctx.lookback_days} days</h2>{view.chart}{_LEGEND}"
        f"{_events(view, ctx)}"
        f'<div class="two">{_providers("Prescribers", view.prescribers, prescriber_id)}'
        f"{_providers('Pharmacies', view.pharmacies)}</div>"
        f"<h2>Fills, last {ctx.lookback_days} days ({len(view.fills)}; {n_opioid} opioid)</h2>"
        f"{_fills_table(view, prescriber_code)}"
        f'<p class="foot">Member id {esc(r.get("member_id"))}. MME/day = strength x quantity / '
        "covered days x CDC conversion factor. Flags and metrics are those of the scored member "
        "table; fills and chart are recomputed from the claims.</p></section>"
    )


# ---------------------------------------------------------------------------------- pages

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f7;color:#1b1f24;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:20px}
section.member,section.cover{background:#fff;border:1px solid #d9dee3;border-radius:8px;padding:20px 26px;margin:0 0 28px}
h1{font-size:24px;margin:0 0 2px}h2{font-size:16px;margin:22px 0 8px}h3{font-size:14px;margin:14px 0 6px}
.sub{color:#5b6570;margin:0}
.badge{display:inline-block;vertical-align:middle;font-size:12px;letter-spacing:.06em;background:#b42318;color:#fff;border-radius:4px;padding:2px 8px;margin-left:8px}
.reasons{border-left:8px solid #b42318;background:#fef3f2;padding:12px 18px 8px;margin:16px 0;border-radius:4px}
.reasons h2{color:#b42318;margin:0 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.06em}
.reasons ul{margin:0;padding-left:22px}
.reasons li{font-size:20px;line-height:1.35;margin:6px 0 10px;font-weight:600}
.reasons .anchor{display:block;font-size:12px;color:#5b6570;font-weight:400}
.chip{display:inline-block;font:12px ui-monospace,Menlo,Consolas,monospace;background:#fff;border:1px solid #e4b4ae;border-radius:10px;padding:1px 8px;margin:0 4px 4px 0;color:#7a271a}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.tile{border:1px solid #d9dee3;border-radius:6px;padding:8px 10px;background:#fff}
.tile b{display:block;font-size:22px;line-height:1.2}.tile span{font-size:12px;color:#5b6570}
.tile.small b{font-size:18px;white-space:nowrap}.counts td{border:none;font-size:17px;font-weight:600;padding:2px 6px}
.counts td.num{width:3em}.tile small{display:block;font-size:11px;color:#5b6570}.tile.hot{border-color:#b42318;background:#fef3f2}.tile.hot b{color:#b42318}
svg.chart{width:100%;height:auto;display:block;font:12px system-ui,Arial,sans-serif}
svg .tick{fill:#5b6570;font-size:11px}svg .axis{fill:#5b6570;font-size:12px}svg .reflabel{font-size:11px;font-weight:600}
.legend{font-size:12px;color:#36404a;margin:4px 0 6px}.legend span{margin-right:16px;white-space:nowrap}
.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}
.sw.dash{height:0;border-top:2px dashed}.sw.box{height:12px;width:14px}
.tri{font-style:normal;margin-right:4px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e8ee;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
td.d,.nw{white-space:nowrap}.scroll{overflow-x:auto}td small{display:block;color:#5b6570;font-size:11px}
tr.c-opioid td:first-child{border-left:4px solid #1f4e99}tr.c-benzodiazepine td:first-child{border-left:4px solid #f39c12}
tr.mine td,tr.mine{background:#fff4c2}tr.hot td{background:#fdf0ef}
.mine-note{background:#fff4c2;padding:6px 10px;border-radius:4px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.foot{color:#5b6570;font-size:12px;margin-top:14px}
a{color:#1f4e99}
@media print{body{background:#fff}main{padding:0}section.member{break-before:page;border:none}}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>{body}</main>"
        f'<p class="foot" style="text-align:center">rxrisk {esc(__version__)}. Confidential: '
        "protected health information for the care of this patient.</p></body></html>\n"
    )


def member_page(view, ctx) -> str:
    nav = '<p class="sub"><a href="../index.html">All reports</a></p>'
    return document(f"Member {view.member_id}", nav + member_section(view, ctx))


def prescriber_page(prescriber_id: str, code: int, views: list, ctx) -> str:
    counts = Counter(r for v in views for r in v.reasons)
    order = [f for f in ctx.thresholds if counts.get(f)] + sorted(
        f for f in counts if f not in ctx.thresholds
    )
    reason_rows = "".join(
        f'<tr><td class="num">{counts[f]}</td><td>{esc(REASON_LABEL.get(f, f))} '
        f'<span class="chip">{esc(f)}</span></td></tr>'
        for f in order
    )
    patients = []
    for v in views:
        k = sum(1 for f in v.fills if f[-1] == code)
        patients.append(
            f'<tr><td><a href="#m-{esc(v.stem)}">{esc(v.member_id)}</a></td>'
            f"<td>{esc(', '.join(x for x in v.reasons if x != 'at_risk'))}</td>"
            f'<td class="num">{esc(mme_text(v.row.get("mme_avg_180d")))}</td>'
            f'<td class="num">{k}</td><td><a href="../members/{esc(v.stem)}.html">profile</a></td></tr>'
        )
    cover = (
        f'<section class="cover"><p class="sub"><a href="../index.html">All reports</a></p>'
        f"<h1>Prescriber alert: {esc(prescriber_id)}</h1>"
        f'<p class="sub">As of {esc(fmt_date(ctx.as_of))}; prescriptions you wrote from '
        f"{esc(fmt_date(ctx.first_day))} ({ctx.lookback_days} days)</p>"
        f'<div class="reasons"><h2>{plural(len(views), "patient")} of yours '
        f"{'meets' if len(views) == 1 else 'meet'} opioid-risk criteria</h2>"
        f'<table class="counts"><tbody>{reason_rows}</tbody></table></div>'
        "<p>Each profile below lists every prescriber, pharmacy and fill of the period, the risk "
        "factors found, the daily MME over time, overlapping benzodiazepines and recent "
        "emergency visits; fills you wrote are highlighted. Options include counseling, "
        "reviewing the dose and pain-management alternatives, prescribing naloxone, referral "
        "to treatment (MAT) and, where appropriate, lock-in to a single prescriber or pharmacy "
        "for opioids.</p>"
        "<h2>Patients</h2><table><thead><tr><th>Member</th><th>Reasons</th>"
        "<th class=num>Avg MME, 180 d</th><th class=num>Fills by you</th><th></th></tr></thead>"
        f"<tbody>{''.join(patients)}</tbody></table></section>"
    )
    sections = "".join(member_section(v, ctx, code, prescriber_id) for v in views)
    return document(f"Prescriber {prescriber_id}", cover + sections)


def _list_table(table, columns: list[str], link: bool = True) -> str:
    if table.num_rows == 0:
        return "<p>None.</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    rows = []
    for r in table.select(
        [c for c in columns if c in table.column_names] + ["profile"]
    ).to_pylist():
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, list):
                v = ", ".join(map(str, v))
            elif isinstance(v, float):
                v = f"{v:.2f}" if c.endswith("share") else mme_text(v)
            text = esc(v)
            if c == "member_id" and link and r.get("profile"):
                text = f'<a href="{esc(r["profile"])}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def index_page(summary, members, bundles, outreach, lock, ctx) -> str:
    s = summary
    tiles = "".join(
        [
            _tile("member profiles", num(s["member_pages"])),
            _tile("prescriber bundles", num(s["prescriber_pages"])),
            _tile("outreach list", num(s["outreach_rows"])),
            _tile("lock-in candidates", num(s["lock_in_rows"])),
        ]
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in s["notes"])
    member_rows = "".join(
        f'<tr><td><a href="members/{esc(stem)}.html">{esc(mid)}</a></td>'
        f"<td>{esc(', '.join(x for x in (row.get('reasons') or []) if x != 'at_risk'))}</td>"
        f'<td class="num">{esc(mme_text(row.get("mme_avg_180d")))}</td></tr>'
        for mid, stem, row in members
    )
    presc_rows = "".join(
        f'<tr><td><a href="prescribers/{esc(name)}">{esc(pid)}</a></td><td class="num">{k}</td></tr>'
        for pid, name, k in bundles
    )
    f = s["files"]
    body = (
        f'<section class="cover"><h1>Opioid-risk reports as of {esc(s["as_of"])}</h1>'
        f'<p class="sub">{num(s["members_selected"])} selected of {num(s["members_in_table"])} '
        f"scored members; lookback {s['lookback_days']} days.</p>"
        f'<div class="tiles">{tiles}</div>'
        + (f"<ul>{notes}</ul>" if notes else "")
        + f'<h2>Outreach list (<a href="{esc(f["outreach"])}">{esc(f["outreach"])}</a>)</h2>'
        "<p class=sub>Members at risk with an emergency in the last 90 days: most recent "
        "emergency first, then highest average daily MME.</p>"
        + _list_table(
            outreach,
            ["member_id", "last_emergency_date", "days_since_emergency", "mme_avg_180d", "reasons"],
        )
        + f'<h2>Lock-in candidates (<a href="{esc(f["lock_in"])}">{esc(f["lock_in"])}</a>)</h2>'
        + _list_table(
            lock,
            [
                "member_id",
                "opioid_fills",
                "distinct_prescribers",
                "distinct_pharmacies",
                "top_prescriber_id",
                "top_prescriber_share",
                "top_pharmacy_id",
                "top_pharmacy_share",
                "reasons",
            ],
        )
        + "<h2>Member profiles</h2><table><thead><tr><th>Member</th><th>Reasons</th>"
        f"<th class=num>Avg MME, 180 d</th></tr></thead><tbody>{member_rows}</tbody></table>"
        "<h2>Prescriber bundles</h2><table><thead><tr><th>Prescriber</th><th class=num>Patients"
        f"</th></tr></thead><tbody>{presc_rows}</tbody></table></section>"
    )
    return document(f"rxrisk reports {s['as_of']}", body)

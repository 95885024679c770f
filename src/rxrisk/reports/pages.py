"""The report's HTML pages: a member profile, a prescriber bundle (cover and the profiles of
the prescriber's flagged patients) and the index, each self-contained (see
:mod:`rxrisk.reports.markup`)."""

from __future__ import annotations

import re
from collections import Counter

from rxrisk.config.codesets import CATEGORIES
from rxrisk.reports.chart import LEGEND
from rxrisk.reports.markup import document, esc, tile
from rxrisk.reports.wording import (
    CATEGORY_BIT,
    CATEGORY_LABEL,
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


def _metrics(view, ctx) -> str:
    """The key-figure tiles of a profile (only those of columns the member table has)."""
    r = view.row
    m = ctx.ruleset.metrics
    tiles = _dose_tiles(r, m.high_dose_mme - m.tolerance) + _care_tiles(r)
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _has(r: dict, *cols) -> bool:
    return all(r.get(c) is not None for c in cols)


def _dose_tiles(r: dict, high: float) -> list[str]:
    """Dose, provider, fill and overlap tiles; doses from ``high`` up are drawn as warnings."""
    t = []
    for col, label in (
        ("mme_avg_180d", "avg daily MME, 180 days"),
        ("mme_peak_180d", "peak daily MME, 180 days"),
    ):
        if _has(r, col):
            t.append(tile(label, mme_text(r[col]), r[col] >= high))
    if _has(r, "mme_today"):
        t.append(tile("MME on the as-of date", mme_text(r["mme_today"])))
    for col, label in (
        ("opioid_prescribers_180d", "opioid prescribers, 180 days"),
        ("opioid_pharmacies_180d", "opioid pharmacies, 180 days"),
    ):
        if _has(r, col):
            t.append(tile(label, num(r[col]), r[col] >= 4))
    if _has(r, "opioid_fills_180d"):
        t.append(tile("opioid fills, 180 days", num(r["opioid_fills_180d"])))
    if _has(r, "benzo_overlap_days_180d"):
        sub = (
            f"{num(r['benzo_overlap_days_365d'])} in 365 days"
            if _has(r, "benzo_overlap_days_365d")
            else ""
        )
        t.append(
            tile(
                "opioid + benzo overlap days, 180 days",
                num(r["benzo_overlap_days_180d"]),
                r["benzo_overlap_days_180d"] >= 30,
                sub,
            )
        )
    return t


def _care_tiles(r: dict) -> list[str]:
    """The last emergency and the naloxone / MAT fills."""
    t = []
    if "last_emergency_date" in r:
        if r.get("last_emergency_date") is None:
            t.append(tile("last emergency (365 days)", "none"))
        else:
            d = r.get("days_since_emergency")
            t.append(
                tile(
                    "last emergency",
                    fmt_date(r["last_emergency_date"]),
                    d is not None and d <= 89,
                    f"{num(d)} days before the as-of date",
                    small=True,
                )
            )
    if _has(r, "naloxone_fills", "mat_fills"):
        t.append(
            tile(
                "naloxone / MAT fills, 365 days",
                f"{num(r['naloxone_fills'])} / {num(r['mat_fills'])}",
            )
        )
    return t


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
    """One member's profile as a ``<section>`` (bundles highlight one prescriber's fills).

    Parameters
    ----------
    view : rxrisk.reports.view.MemberView
        The member.
    ctx : rxrisk.reports.view.ReportContext
        The report.
    prescriber_code, prescriber_id : optional
        In a prescriber's bundle: the prescriber whose fills are highlighted.

    Returns
    -------
    str
        The section's markup.
    """
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
        f"<h2>Daily MME, last {ctx.lookback_days} days</h2>{view.chart}{LEGEND}"
        f"{_events(view, ctx)}"
        f'<div class="two">{_providers("Prescribers", view.prescribers, prescriber_id)}'
        f"{_providers('Pharmacies', view.pharmacies)}</div>"
        f"<h2>Fills, last {ctx.lookback_days} days ({len(view.fills)}; {n_opioid} opioid)</h2>"
        f"{_fills_table(view, prescriber_code)}"
        f'<p class="foot">Member id {esc(r.get("member_id"))}. MME/day = strength x quantity / '
        "covered days x CDC conversion factor. Flags and metrics are those of the scored member "
        "table; fills and chart are recomputed from the claims.</p></section>"
    )


def member_page(view, ctx) -> str:
    """The page ``members/<stem>.html``: one member's profile.

    Parameters
    ----------
    view : rxrisk.reports.view.MemberView
        The member.
    ctx : rxrisk.reports.view.ReportContext
        The report.

    Returns
    -------
    str
        The HTML document.
    """
    nav = '<p class="sub"><a href="../index.html">All reports</a></p>'
    return document(f"Member {view.member_id}", nav + member_section(view, ctx))


def prescriber_page(prescriber_id: str, code: int, views: list, ctx) -> str:
    """The page ``prescribers/<stem>.html``: a cover, then the profiles of the patients.

    Parameters
    ----------
    prescriber_id : str
        The prescriber.
    code : int
        The prescriber's code in the fills (``MemberView.fills`` rows end with it).
    views : list of rxrisk.reports.view.MemberView
        The selected members the prescriber wrote a fill for in the lookback.
    ctx : rxrisk.reports.view.ReportContext
        The report.

    Returns
    -------
    str
        The HTML document.
    """
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
    """The page ``index.html``: counts, notes, both lists and links to every page.

    Parameters
    ----------
    summary : dict
        The run summary (counts, notes, file names).
    members : list of tuple
        ``(member id, stem, member-table row)`` per profile.
    bundles : list of tuple
        ``(prescriber id, file name, patients)`` per bundle.
    outreach, lock : pyarrow.Table
        The lists (with their ``profile`` column).
    ctx : rxrisk.reports.view.ReportContext
        The report.

    Returns
    -------
    str
        The HTML document.
    """
    s = summary
    tiles = "".join(
        [
            tile("member profiles", num(s["member_pages"])),
            tile("prescriber bundles", num(s["prescriber_pages"])),
            tile("outreach list", num(s["outreach_rows"])),
            tile("lock-in candidates", num(s["lock_in_rows"])),
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

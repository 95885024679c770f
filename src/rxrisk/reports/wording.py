"""The reasons in plain words: one sentence per flag with the member's numbers and the rule
file's thresholds, and the number, date and plural wording of the pages."""

from __future__ import annotations

import ast
import re

import numpy as np
import pyarrow as pa

from rxrisk.config.codesets import CATEGORIES
from rxrisk.config.rules import compile_flags
from rxrisk.config.schema import metric_fields
from rxrisk.days import date_of

CATEGORY_BIT = {name: 1 << i for i, name in enumerate(CATEGORIES)}
CATEGORY_LABEL = {
    "ed_visit": "ED visit",
    "opioid_overdose": "Opioid overdose",
    "oud": "Opioid use disorder",
    "sud_other": "Other substance use disorder",
    "cancer": "Cancer",
    "sickle_cell": "Sickle cell disease",
    "hospice_palliative": "Hospice / palliative care",
}


def num(x) -> str:
    """A threshold or count as text: no decimals when whole.

    Parameters
    ----------
    x : number or None
        The value.

    Returns
    -------
    str
        ``1,234``, ``2.5`` or ``n/a`` for None.
    """
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if x == round(x) else f"{x:,.2f}".rstrip("0").rstrip(".")


def mme_text(x) -> str:
    """An MME value as text: whole numbers from 10 up, one decimal below.

    Parameters
    ----------
    x : number or None
        The value.

    Returns
    -------
    str
        ``120``, ``7.5`` or ``n/a`` for None.
    """
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 10 or x == 0 else f"{x:.1f}"


def fmt_date(day) -> str:
    """A date as ``YYYY-MM-DD``.

    Parameters
    ----------
    day : int, datetime.date or None
        A day number or a date.

    Returns
    -------
    str
        The ISO date; empty for None.
    """
    return "" if day is None else str(date_of(day) if isinstance(day, (int, np.integer)) else day)


def rule_thresholds(ruleset) -> dict:
    """The thresholds each flag of the rule file compares with, for quoting them.

    Parameters
    ----------
    ruleset : rxrisk.config.rules.Ruleset
        The rules the member table was scored with.

    Returns
    -------
    dict
        Per flag: ``{"cmp": {column: [numbers]}, "refs": {names}, "anchor", "when"}``.
    """
    m = ruleset.metrics
    kinds = {
        f.name: "bool" if pa.types.is_boolean(f.type) else "number"
        for f in metric_fields(m.windows, m.ed_lookback_days, m.dx_lookback_days, m.mme_definitions)
    }
    meta = {f.name: f for f in ruleset.flags}
    out = {}
    for name, tree in compile_flags(ruleset, kinds):
        cmp: dict[str, list[float]] = {}
        refs = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                cmp.setdefault(node.left.id, []).append(float(node.comparators[0].value))
            elif isinstance(node, ast.Name):
                refs.add(node.id)
        out[name] = {
            "cmp": {k: sorted(v) for k, v in cmp.items()},
            "refs": refs,
            "anchor": meta[name].anchor,
            "when": " ".join(meta[name].when.split()),
        }
    return out


class _Row:
    """Values and thresholds for one flag's sentence; KeyError means: use the generic one."""

    def __init__(self, row: dict, rule: dict, tol: float):
        self.row, self.rule, self.tol = row, rule, tol

    def col(self, prefix: str, default: str) -> str:
        for c in self.rule.get("cmp", {}):
            if c.startswith(prefix):
                return c
        return default

    def v(self, col: str):
        value = self.row[col]
        if value is None:
            raise KeyError(col)
        return value

    def t(self, col: str, default: float, pick=min) -> float:
        values = self.rule.get("cmp", {}).get(col)
        return pick(values) if values else default

    def ge(self, col: str, default: float, pick=min) -> bool:
        return float(self.v(col)) >= self.t(col, default, pick) - self.tol


def _window(col: str) -> str:
    m = re.search(r"_(\d+)d$", col)
    return f"the last {m.group(1)} days" if m else "the window"


def plural(n, word: str, many: str | None = None) -> str:
    """``n`` and the word, in the plural unless ``n`` is 1.

    Parameters
    ----------
    n : number
        The count.
    word : str
        The singular.
    many : str, optional
        The plural when it is not ``word + "s"``.

    Returns
    -------
    str
        ``"1 fill"``, ``"3 pharmacies"``.
    """
    return f"{num(n)} {word if float(n) == 1 else (many or word + 's')}"


def _latest_event(view, bits: int):
    """(day, codes of those categories) of the latest event with any of ``bits``."""
    for day, mask, codes, masks in reversed(view.events):
        if mask & bits:
            return day, [c for c, m in zip(codes, masks, strict=True) if m & bits]
    return None, []


def reason_sentences(view, ctx) -> list[tuple[str, str, str]]:
    """One sentence per reason of the member, with the member's numbers and the thresholds.

    Parameters
    ----------
    view : rxrisk.reports.view.MemberView
        The member.
    ctx : rxrisk.reports.view.ReportContext
        The report (rules and thresholds).

    Returns
    -------
    list of tuple of (str, str, str)
        ``(flag, sentence, anchor)`` per reason, ``at_risk`` only when it is the only one.
    """
    out = []
    tol = ctx.ruleset.metrics.tolerance
    dx_days = ctx.ruleset.metrics.dx_lookback_days
    shown = [r for r in view.reasons if r != "at_risk"] or list(view.reasons)
    for flag in shown:
        rule = ctx.thresholds.get(flag, {})
        r = _Row(view.row, rule, tol)
        try:
            text = _SENTENCES[flag](r, view, ctx, dx_days) if flag in _SENTENCES else None
        except (KeyError, TypeError, ValueError, IndexError):
            text = None
        if not text:
            text = _generic(flag, r)
        out.append((flag, text, rule.get("anchor", "")))
    return out


def _generic(flag: str, r: _Row) -> str:
    when = r.rule.get("when")
    if not when:
        return f"Flag {flag} is set"
    vals = [f"{c} = {_value(r.row.get(c))}" for c in sorted(r.rule.get("refs", ())) if c in r.row]
    return f"Rule {flag}: {when}" + (f" (here: {', '.join(vals)})" if vals else "")


def _value(x) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return mme_text(x)
    return "n/a" if x is None else str(x)


def _s_high_dose(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    return (
        f"Average daily dose of {mme_text(r.v(c))} MME over {_window(c)} "
        f"(threshold {num(r.t(c, 90))})"
    )


def _s_multi_provider(r, view, ctx, dx):
    p = r.col("opioid_prescribers_", "opioid_prescribers_180d")
    q = r.col("opioid_pharmacies_", "opioid_pharmacies_180d")
    return (
        f"Opioids from {plural(r.v(p), 'prescriber')} and "
        f"{plural(r.v(q), 'pharmacy', 'pharmacies')} in {_window(p)} "
        f"(threshold {num(r.t(p, 4))} prescribers and {num(r.t(q, 4))} pharmacies)"
    )


def _s_cms_oms(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    p = r.col("opioid_prescribers_", "opioid_prescribers_180d")
    q = r.col("opioid_pharmacies_", "opioid_pharmacies_180d")
    od = r.col("overdoses_", "overdoses_365d")
    fl = r.col("opioid_fills_", "opioid_fills_180d")
    tp_low, tp_high = r.t(p, 3, min), r.t(p, 5, max)
    tq = r.t(q, 3)
    parts = []
    pv, qv = float(r.v(p)), float(r.v(q))
    dose = r.ge(c, 90) and ((pv >= tp_low and qv >= tq) or pv >= tp_high)
    if dose:
        parts.append(
            f"average daily dose of {mme_text(r.v(c))} MME (threshold {num(r.t(c, 90))}) with "
            f"opioids from {num(pv)} prescribers and {num(qv)} pharmacies in {_window(p)} "
            f"(criteria: {num(tp_low)} prescribers and {num(tq)} pharmacies, "
            f"or {num(tp_high)} prescribers)"
        )
    if r.ge(od, 1) and r.ge(fl, 1):
        day, _ = _latest_event(view, CATEGORY_BIT["opioid_overdose"])
        when = f", latest {fmt_date(day)}" if day is not None else ""
        parts.append(
            f"opioid overdose in {_window(od)} ({plural(r.v(od), 'date')}{when}) while still "
            f"filling opioids ({plural(r.v(fl), 'opioid fill')} in {_window(fl)})"
        )
    if not parts:
        return None
    return "CMS opioid overutilization criteria met: " + "; and ".join(parts)


def _s_concurrent_benzo(r, view, ctx, dx):
    c = r.col("benzo_overlap_days_", "benzo_overlap_days_365d")
    o = r.col("opioid_fills_", "opioid_fills_365d")
    b = r.col("benzo_fills_", "benzo_fills_365d")
    return (
        f"{plural(r.v(c), 'day')} of overlapping opioid and benzodiazepine use in {_window(c)} "
        f"(threshold {num(r.t(c, 30))}), from {plural(r.v(o), 'opioid fill')} and "
        f"{plural(r.v(b), 'benzodiazepine fill')}"
    )


def _s_dose_with_cns(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    x = r.col("cns_overlap_days_", "cns_overlap_days_180d")
    return (
        f"Average daily dose of {mme_text(r.v(c))} MME (threshold {num(r.t(c, 50))}) together "
        f"with {plural(r.v(x), 'day')} of other CNS depressants (benzodiazepines, "
        f"gabapentinoids, muscle relaxants, sleep drugs) in {_window(x)} "
        f"(threshold {num(r.t(x, 30))} days)"
    )


def _s_overdose_history(r, view, ctx, dx):
    od = r.col("overdoses_", f"overdoses_{dx}d")
    day, codes = _latest_event(view, CATEGORY_BIT["opioid_overdose"])
    latest = f"; latest on {fmt_date(day)} ({', '.join(codes)})" if day is not None else ""
    return f"Opioid overdose on {plural(r.v(od), 'date')} in {_window(od)}{latest}"


def _s_substance_use(r, view, ctx, dx):
    oud = bool(view.row.get("oud_dx"))
    label = "opioid use disorder" if oud else "substance use disorder"
    day, codes = _latest_event(view, CATEGORY_BIT["oud"] | CATEGORY_BIT["sud_other"])
    latest = f" ({', '.join(codes)} on {fmt_date(day)})" if day is not None else ""
    return f"Diagnosis of {label} in the last {dx} days{latest}"


def _s_excluded(r, view, ctx, dx):
    which = [
        label
        for col, label in (
            ("cancer_dx", "cancer"),
            ("sickle_cell_dx", "sickle cell disease"),
            ("hospice_dx", "hospice or palliative care"),
        )
        if view.row.get(col)
    ]
    return (
        f"Exempt from the dose and provider criteria: {' and '.join(which)} diagnosis in the "
        f"last {dx} days"
    )


def _s_emergency_outreach(r, view, ctx, dx):
    d = r.v("days_since_emergency")
    limit = r.t("days_since_emergency", 89, max)
    day = view.row.get("last_emergency_date")
    kinds = [
        CATEGORY_LABEL[k]
        for k in ("ed_visit", "opioid_overdose")
        if any(e[1] & CATEGORY_BIT[k] for e in view.events if fmt_date(e[0]) == fmt_date(day))
    ]
    what = " and ".join(kinds) if kinds else "Emergency visit"
    return (
        f"{what} {plural(d, 'day')} ago, on {fmt_date(day)}: outreach within "
        f"{num(limit + 1)} days of an emergency"
    )


def _s_at_risk(r, view, ctx, dx):
    met = [n for n in r.rule.get("refs", ()) if view.row.get(n) is True and n in ctx.thresholds]
    return f"At risk of opioid harm: {plural(len(met), 'risk criterion', 'risk criteria')} met"


_SENTENCES = {
    "excluded": _s_excluded,
    "high_dose": _s_high_dose,
    "multi_provider": _s_multi_provider,
    "cms_oms": _s_cms_oms,
    "concurrent_benzo": _s_concurrent_benzo,
    "dose_with_cns": _s_dose_with_cns,
    "overdose_history": _s_overdose_history,
    "substance_use_history": _s_substance_use,
    "at_risk": _s_at_risk,
    "emergency_outreach": _s_emergency_outreach,
}

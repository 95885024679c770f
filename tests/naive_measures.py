"""Plain-Python reference of the standard opioid measures (the test oracle of ``rxrisk.measures``).

Written from the contract text of the measures (definitions per member and period, the nine
measures, the detail and summary tables), for clarity, not speed: loops over rows and days, no
numpy. Claims and medical rows go through :mod:`naive` (buckets, patch rewrite, daily MME, code
categories); this module adds the eligibility and members intake, the per-(member, period)
quantities, the measure flags and the two output tables.

READINGS (where the contract leaves room; the kernel helper reads the same text):

* ``duplicate`` members row: a row whose member_id was on an earlier row that *was kept* (passed
  the member_id and birth_date checks), like the pharmacy ``duplicate`` bucket that only looks at
  rows that reached that step. So a member whose first row has a bad birth date and whose second
  row is valid keeps the second row.
* eligibility ``product``: trimmed; null, empty or blank is ``unspecified``.
* ``age``: completed years on p0 by (month, day) comparison, so a 29 February birthday turns over
  on 1 March in common years (and on 29 February in leap years). A birth date after p0 gives a
  negative age (never eligible). Unknown (no valid members row) is ``None``.
* ``enrolled`` needs p1 covered, so a gap at the end is never allowed; a gap at the start counts
  toward ``max_gaps`` like any other.
* ``product`` is defined whenever a span covers p1 (even when the member is not enrolled); it is
  only shown in detail rows, which are always enrolled.
* ``treatment_days``: ipsd .. min(last day covered by an opioid claim filled in P, p1), inclusive,
  gap days included (HEDIS HDO's treatment period); ``avg_mme`` = sum of mme(d) over those days /
  their number, where mme(d) sums only opioid claims filled in P.
* ``longest_high_dose_run``: mme(d) from opioid claims filled in P only, days of P only.
* ``opioid_benzo_days``: both the opioid and the benzodiazepine claim filled in P.
* ``episode_start``: negative history looks at every opioid claim of the member whatever its fill
  date (a claim filled after e cannot cover days before e); ``covered_30``/``covered_62`` count
  opioid claims filled in e .. p1 (the windows end by p1 since e <= p1 - 61).
* ``<measure>_numerator`` implies ``<measure>_denominator`` (a numerator is counted only among the
  denominator); an excluded eligible row is in the detail with every denominator false.
* summary ``excluded`` = eligible and exclusion not null; ``rate`` null when the denominator is 0.
* periods: sorted, repeated periods measured once; each period is measured on its own (overlapping
  periods are independent).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

import naive

MEASURES = (
    "high_dose_average",
    "high_dose_sustained",
    "multiple_prescribers",
    "multiple_pharmacies",
    "multiple_providers",
    "high_dose_multiple_providers",
    "opioid_benzodiazepine",
    "continued_use_15_of_30",
    "continued_use_31_of_62",
)
OPIOID_MEASURES = MEASURES[:7]
CONTINUED_USE_MEASURES = MEASURES[7:]

QUANTITY_COLUMNS = (
    "opioid_claims",
    "opioid_fill_dates",
    "cumulative_days_supply",
    "ipsd",
    "treatment_days",
    "avg_mme",
    "longest_high_dose_run",
    "prescribers",
    "pharmacies",
    "benzo_fill_dates",
    "opioid_benzo_days",
    "episode_start",
    "covered_30",
    "covered_62",
)
DETAIL_COLUMNS = (
    ("member_id", "period_start", "period_end", "product", "age", "exclusion")
    + QUANTITY_COLUMNS
    + tuple(f"{m}_{part}" for m in MEASURES for part in ("denominator", "numerator"))
)
SUMMARY_COLUMNS = (
    "period_start",
    "period_end",
    "measure",
    "product",
    "eligible",
    "excluded",
    "denominator",
    "numerator",
    "rate",
)
EXCLUSION_ORDER = ("hospice_palliative", "cancer", "sickle_cell")
ELIGIBILITY_REASONS = ("member_id", "start_date", "end_date")
MEMBERS_REASONS = ("member_id", "birth_date", "duplicate")
UNSPECIFIED = "unspecified"
OPEN_END = math.inf


@dataclass(frozen=True)
class Settings:
    """The measures settings, with the attribute names of ``rxrisk.quality.settings``."""

    max_gaps: int = 1
    max_gap_days: int = 45
    min_age: int = 18
    min_opioid_fill_dates: int = 2
    min_cumulative_days_supply: int = 15
    high_dose_mme: float = 90.0
    high_dose_average_mme: float = 90.0
    high_dose_run_days: int = 90
    min_prescribers: int = 4
    min_pharmacies: int = 4
    min_benzo_fill_dates: int = 2
    min_opioid_benzo_days: int = 30
    negative_history_days: int = 60
    min_covered_30: int = 15
    min_covered_62: int = 31


def settings_from(obj: Any = None, **overrides) -> Settings:
    """Settings from None (defaults), any object with the same attribute names, plus overrides."""
    values = {}
    for f in fields(Settings):
        if obj is not None and hasattr(obj, f.name):
            values[f.name] = getattr(obj, f.name)
    values.update(overrides)
    return Settings(**values)


_REFERENCE: dict | None = None


def default_reference() -> dict[str, dict[str, Any]]:
    """The packaged drug reference in naive form (what ``rxrisk.measures`` uses by default)."""
    global _REFERENCE
    if _REFERENCE is None:
        from rxrisk.config.reference import load_reference

        _REFERENCE = naive.reference_from_table(load_reference())
    return _REFERENCE


# --------------------------------------------------------------------------- intake

_COMPACT_DATE = re.compile(r"[0-9]{8}")


def parse_date(value: Any) -> dt.date | None:
    """A date in one of the contract's forms (date, timestamp, ``YYYY-MM-DD``, ``YYYYMMDD`` text,
    ``YYYYMMDD`` integer); None when null or unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = f"{value:08d}" if value >= 0 else str(value)
    if isinstance(value, str):
        text = value.strip(naive.WHITESPACE)
        if _COMPACT_DATE.fullmatch(text):
            try:
                return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            except ValueError:
                return None
    return naive._parse_date(value)


def _blank(value: Any) -> bool:
    value = naive._trim(value)
    return value is None or value == ""


@dataclass(frozen=True)
class Span:
    """One used eligibility row: days as ordinals, ``end`` = inf when open-ended."""

    member_id: Any
    start: int
    end: float
    product: str

    def covers(self, d: int) -> bool:
        return self.start <= d <= self.end


def eligibility_pass(rows) -> tuple[list[str], list[Span]]:
    """Bucket eligibility rows: ``rejected:<reason>`` (member_id, start_date, end_date) or used."""
    labels, spans = [], []
    for row in rows:
        member = naive._member_id(row.get("member_id"))
        start = parse_date(row.get("start_date"))
        raw_end = row.get("end_date")
        end = None if _blank(raw_end) else parse_date(raw_end)
        if member is None:
            labels.append("rejected:member_id")
        elif start is None:
            labels.append("rejected:start_date")
        elif not _blank(raw_end) and (end is None or end < start):
            labels.append("rejected:end_date")
        else:
            product = naive._trim(row.get("product"))
            if product is None or product == "":
                product = UNSPECIFIED
            labels.append("used")
            spans.append(
                Span(
                    member, start.toordinal(), OPEN_END if end is None else end.toordinal(), product
                )
            )
    return labels, spans


def members_pass(rows) -> tuple[list[str], dict[Any, dt.date]]:
    """Bucket members rows: ``rejected:<reason>`` (member_id, birth_date, duplicate) or used;
    returns the birth date of each kept member (the first kept row wins)."""
    labels, births = [], {}
    for row in rows:
        member = naive._member_id(row.get("member_id"))
        birth = parse_date(row.get("birth_date"))
        if member is None:
            labels.append("rejected:member_id")
        elif birth is None:
            labels.append("rejected:birth_date")
        elif member in births:
            labels.append("rejected:duplicate")
        else:
            labels.append("used")
            births[member] = birth
    return labels, births


# --------------------------------------------------------------------------- quantities


def age_on(birth: dt.date | None, p0: dt.date) -> int | None:
    """Completed years on p0 (29 February birthdays turn over on 1 March in common years)."""
    if birth is None:
        return None
    return p0.year - birth.year - ((p0.month, p0.day) < (birth.month, birth.day))


def enrolled(spans: list[Span], p0: int, p1: int, settings: Settings) -> bool:
    """At most max_gaps gaps of at most max_gap_days days each, and p1 covered."""
    gaps, run = [], 0
    for d in range(p0, p1 + 1):
        if any(s.covers(d) for s in spans):
            if run:
                gaps.append(run)
            run = 0
        else:
            run += 1
    if run:  # p1 itself is uncovered
        return False
    return len(gaps) <= settings.max_gaps and all(g <= settings.max_gap_days for g in gaps)


def product_on(spans: list[Span], p1: int) -> str | None:
    """Product of the span covering p1 with the latest start (ties: the smallest product)."""
    covering = [s for s in spans if s.covers(p1)]
    if not covering:
        return None
    latest = max(s.start for s in covering)
    return min(s.product for s in covering if s.start == latest)


def exclusion_in(events: list[naive.Event], p0: int, p1: int) -> str | None:
    cats = set()
    for e in events:
        if p0 <= e.day <= p1:
            cats |= e.categories
    for name in EXCLUSION_ORDER:
        if name in cats:
            return name
    return None


def _daily_mme(opioids: list[naive.Fill], first: int, last: int) -> dict[int, float]:
    """mme(d) for d in first..last, summing the daily MME of the given opioid claims."""
    return {d: sum(f.daily_mme for f in opioids if f.covers(d)) for d in range(first, last + 1)}


def _covered(claims: list[naive.Fill], first: int, last: int) -> set[int]:
    return {d for d in range(first, last + 1) if any(f.covers(d) for f in claims)}


def episode(all_opioids, opioids_in_p, p0: int, p1: int, settings: Settings):
    """(episode_start ordinal or None, covered_30, covered_62)."""
    history = settings.negative_history_days
    for e in sorted({f.start for f in opioids_in_p}):
        if e > p1 - 61:
            break
        if history > 0 and any(f.start <= e - 1 and f.end >= e - history for f in all_opioids):
            continue  # an opioid claim covers one of the days e-history .. e-1
        from_e = [f for f in opioids_in_p if f.start >= e]
        return e, len(_covered(from_e, e, e + 29)), len(_covered(from_e, e, e + 61))
    return None, 0, 0


def quantities(fills, events, spans, birth, p0_date, p1_date, settings: Settings) -> dict:
    """Every quantity of one (member, period), plus ``enrolled`` (bool) and ``age`` (or None)."""
    p0, p1 = p0_date.toordinal(), p1_date.toordinal()
    in_p = [f for f in fills if p0 <= f.start <= p1]
    ops = [f for f in in_p if f.drug_class == "opioid"]
    bzs = [f for f in in_p if f.drug_class == "benzodiazepine"]
    q: dict[str, Any] = {
        "age": age_on(birth, p0_date),
        "enrolled": enrolled(spans, p0, p1, settings),
        "product": product_on(spans, p1),
        "exclusion": exclusion_in(events, p0, p1),
        "opioid_claims": len(ops),
        "opioid_fill_dates": len({f.start for f in ops}),
        "cumulative_days_supply": sum(f.end - f.start + 1 for f in ops),
        "ipsd": None,
        "treatment_days": 0,
        "avg_mme": 0.0,
    }
    mme = _daily_mme(ops, p0, p1)
    if ops:
        ipsd = min(f.start for f in ops)
        last = min(max(f.end for f in ops), p1)
        days = range(ipsd, last + 1)
        q["ipsd"] = dt.date.fromordinal(ipsd)
        q["treatment_days"] = len(days)
        total = 0.0
        for d in days:
            total += mme[d]
        q["avg_mme"] = total / len(days)
    best = run = 0
    for d in range(p0, p1 + 1):
        run = run + 1 if naive._ge(mme[d], settings.high_dose_mme) else 0
        best = max(best, run)
    q["longest_high_dose_run"] = best
    q["prescribers"] = len({f.prescriber_id for f in ops} - {None})
    q["pharmacies"] = len({f.pharmacy_id for f in ops} - {None})
    q["benzo_fill_dates"] = len({f.start for f in bzs})
    q["opioid_benzo_days"] = len(_covered(ops, p0, p1) & _covered(bzs, p0, p1))
    all_ops = [f for f in fills if f.drug_class == "opioid"]
    e, c30, c62 = episode(all_ops, ops, p0, p1, settings)
    q["episode_start"] = None if e is None else dt.date.fromordinal(e)
    q["covered_30"], q["covered_62"] = c30, c62
    return q


# --------------------------------------------------------------------------- measures


def measure_flags(q: dict, settings: Settings) -> dict[str, tuple[bool, bool, bool]]:
    """measure -> (eligible, denominator, numerator) for one (member, period)."""
    s = settings
    base = q["age"] is not None and q["age"] >= s.min_age and q["enrolled"]
    opioid = (
        base
        and q["opioid_fill_dates"] >= s.min_opioid_fill_dates
        and q["cumulative_days_supply"] >= s.min_cumulative_days_supply
    )
    continued = base and q["episode_start"] is not None
    sustained = q["longest_high_dose_run"] >= s.high_dose_run_days
    providers = q["prescribers"] >= s.min_prescribers and q["pharmacies"] >= s.min_pharmacies
    numerators = {
        "high_dose_average": naive._ge(q["avg_mme"], s.high_dose_average_mme),
        "high_dose_sustained": sustained,
        "multiple_prescribers": q["prescribers"] >= s.min_prescribers,
        "multiple_pharmacies": q["pharmacies"] >= s.min_pharmacies,
        "multiple_providers": providers,
        "high_dose_multiple_providers": sustained and providers,
        "opioid_benzodiazepine": q["benzo_fill_dates"] >= s.min_benzo_fill_dates
        and q["opioid_benzo_days"] >= s.min_opioid_benzo_days,
        "continued_use_15_of_30": q["covered_30"] >= s.min_covered_30,
        "continued_use_31_of_62": q["covered_62"] >= s.min_covered_62,
    }
    out = {}
    for m in MEASURES:
        eligible = bool(opioid if m in OPIOID_MEASURES else continued)
        denominator = eligible and q["exclusion"] is None
        out[m] = (eligible, denominator, denominator and bool(numerators[m]))
    return out


# --------------------------------------------------------------------------- entry point


@dataclass
class NaiveMeasures:
    """The reference's answer: every (member, period) record, the detail and summary rows."""

    records: dict[tuple[Any, dt.date, dt.date], dict[str, Any]]
    detail: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    audit: dict[str, Any]
    periods: list[tuple[dt.date, dt.date]] = field(default_factory=list)


def normalize_periods(periods) -> list[tuple[dt.date, dt.date]]:
    """Sorted distinct (p0, p1) pairs; an int is a calendar year."""
    out = set()
    for p in periods:
        if isinstance(p, int):
            p = (dt.date(p, 1, 1), dt.date(p, 12, 31))
        p0, p1 = parse_date(p[0]), parse_date(p[1])
        if p0 is None or p1 is None or p1 < p0:
            raise ValueError(f"bad period: {p!r}")
        out.add((p0, p1))
    return sorted(out)


def _by_member(items) -> dict[Any, list]:
    grouped: dict[Any, list] = {}
    for item in items:
        grouped.setdefault(item.member_id, []).append(item)
    return grouped


def naive_measures(
    pharmacy_rows,
    medical_rows,
    eligibility_rows,
    members_rows,
    periods,
    settings: Any = None,
    reference: dict | None = None,
) -> NaiveMeasures:
    """Measure a book: raw rows of the four inputs, the periods and the settings."""
    s = settings if isinstance(settings, Settings) else settings_from(settings)
    ref = default_reference() if reference is None else reference
    pharmacy_labels, fills = naive._pharmacy_pass(
        list(pharmacy_rows or []), ref, naive._config(None)
    )
    medical_labels, events = naive._medical_pass(list(medical_rows or []))
    eligibility_labels, spans = eligibility_pass(list(eligibility_rows or []))
    members_labels, births = members_pass(list(members_rows or []))
    fills_by, events_by, spans_by = _by_member(fills), _by_member(events), _by_member(spans)
    everyone = set(fills_by) | set(events_by) | set(spans_by) | set(births)
    members = sorted(everyone, key=naive._member_sort_key)
    period_list = normalize_periods(periods)

    records: dict[tuple[Any, dt.date, dt.date], dict[str, Any]] = {}
    detail: list[dict[str, Any]] = []
    for member in members:
        for p0, p1 in period_list:
            q = quantities(
                fills_by.get(member, []),
                events_by.get(member, []),
                spans_by.get(member, []),
                births.get(member),
                p0,
                p1,
                s,
            )
            flags = measure_flags(q, s)
            record = {"member_id": member, "period_start": p0, "period_end": p1, **q}
            for m, (eligible, denominator, numerator) in flags.items():
                record[f"{m}_eligible"] = eligible
                record[f"{m}_denominator"] = denominator
                record[f"{m}_numerator"] = numerator
            record["in_detail"] = any(e for e, _, _ in flags.values())
            records[(member, p0, p1)] = record
            if record["in_detail"]:
                detail.append({c: record[c] for c in DETAIL_COLUMNS})
    audit = {
        "pharmacy": naive._count_audit(
            pharmacy_labels, naive.PHARMACY_BUCKETS, naive.PHARMACY_REASONS
        ),
        "medical": naive._count_audit(medical_labels, naive.MEDICAL_BUCKETS, naive.MEDICAL_REASONS),
        "eligibility": naive._count_audit(
            eligibility_labels, ("rejected", "used"), ELIGIBILITY_REASONS
        ),
        "members": naive._count_audit(members_labels, ("rejected", "used"), MEMBERS_REASONS),
        "members_eligible": len({row["member_id"] for row in detail}),
    }
    summary = summarize(records, period_list)
    return NaiveMeasures(records, detail, summary, audit, period_list)


def summarize(records: dict, period_list) -> list[dict[str, Any]]:
    """Summary rows per (period, measure, product), ``all`` first, from the detail records."""
    rows = []
    for p0, p1 in period_list:
        in_detail = [r for (_, a, b), r in records.items() if (a, b) == (p0, p1) and r["in_detail"]]
        products = sorted({r["product"] for r in in_detail})
        for m in MEASURES:
            for product in ["all", *products]:
                chosen = [r for r in in_detail if product == "all" or r["product"] == product]
                eligible = sum(r[f"{m}_eligible"] for r in chosen)
                excluded = sum(r[f"{m}_eligible"] and r["exclusion"] is not None for r in chosen)
                denominator = sum(r[f"{m}_denominator"] for r in chosen)
                numerator = sum(r[f"{m}_numerator"] for r in chosen)
                rows.append(
                    {
                        "period_start": p0,
                        "period_end": p1,
                        "measure": m,
                        "product": product,
                        "eligible": eligible,
                        "excluded": excluded,
                        "denominator": denominator,
                        "numerator": numerator,
                        "rate": numerator / denominator if denominator else None,
                    }
                )
    return rows

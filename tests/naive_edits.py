"""Plain-Python reference of SPEC section 7 (point-of-sale safety-edit replay): the oracle of
tests/test_edits.py.

Row dicts in, row dicts out. For every evaluated claim it rebuilds the member's history from
scratch and tests every day literally (no incremental state), so it shares nothing with the
kernel's bookkeeping. Buckets, covered days, daily MME and medical categories come from
tests/naive.py (the SPEC 1-2 oracle). Decisions where SPEC 7 is not explicit are marked
``READING:``.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from naive import (
    MEDICAL_BUCKETS,
    MEDICAL_REASONS,
    PHARMACY_BUCKETS,
    PHARMACY_REASONS,
    _config,
    _count_audit,
    _medical_pass,
    _member_sort_key,
    _optional_id,
    _pharmacy_pass,
    normalize_ndc,
)

EDIT_NAMES = (
    "mme_care_coordination",
    "mme_hard_limit",
    "opioid_naive_days_limit",
    "opioid_benzo_concurrent",
    "duplicate_long_acting",
)
EXCLUSION_CATEGORIES = frozenset({"cancer", "sickle_cell", "hospice_palliative"})

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "config": {"dx_lookback_days": 365, "tolerance": 1e-9},
    "mme_care_coordination": {"threshold": 90.0, "min_prescribers": 2},
    "mme_hard_limit": {"threshold": 200.0},
    "opioid_naive_days_limit": {"lookback_days": 90, "max_covered_days": 7},
    "opioid_benzo_concurrent": {},
    "duplicate_long_acting": {},
}

#: With more active opioid claims than this, cumulative_mme is the exact sum of its terms
#: rounded once (``math.fsum``); up to it, the terms are added one by one in evaluation order
#: (the claim's MME first). The engine documents this rule (docs/edits.md, "Cumulative MME").
SEQUENTIAL_MAX = 32


def cumulative_mme(claim_mme: float, active_mme: list[float]) -> float:
    """claim_mme plus the active opioid claims' MME (in evaluation order), as documented."""
    if len(active_mme) > SEQUENTIAL_MAX:
        return math.fsum([claim_mme, *active_mme])
    total = claim_mme
    for x in active_mme:
        total += x
    return total


COLUMNS = (
    "member_id",
    "claim_id",
    "fill_date",
    "ndc",
    "drug_class",
    "claim_mme",
    "cumulative_mme",
    "active_opioid_prescribers",
    "excluded_at_fill",
    *EDIT_NAMES,
    "edits",
)


def settings_with(overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The default settings with ``{"edit.field": value}`` overrides applied."""
    out = copy.deepcopy(DEFAULT_SETTINGS)
    for key, value in (overrides or {}).items():
        section, field = key.split(".")
        if field not in out[section]:
            raise KeyError(key)
        out[section][field] = value
    return out


@dataclass
class Claim:
    """One used pharmacy row with what the edits read."""

    input_row: int
    member_id: Any
    start: int  # fill_date ordinal
    end: int  # last covered day ordinal (patch rewrite applied)
    drug_class: str
    mme: float
    prescriber_id: Any
    ndc: str
    claim_id: Any
    ingredient: str | None
    long_acting: bool | None

    def covers(self, day: int) -> bool:
        return self.start <= day <= self.end


def _ingredient(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip(" \t\r\n").lower()
    return text or None


def _used_claims(pharmacy_rows, reference, max_days_supply) -> tuple[list[str], list[Claim]]:
    labels, fills = _pharmacy_pass(
        pharmacy_rows, reference, _config({"max_days_supply": max_days_supply})
    )
    used = [
        (i, row)
        for i, (row, label) in enumerate(zip(pharmacy_rows, labels, strict=True))
        if label == "used"
    ]
    assert len(used) == len(fills)
    claims = []
    for (i, row), f in zip(used, fills, strict=True):
        ndc = normalize_ndc(row.get("ndc"))
        entry = reference[ndc]
        claims.append(
            Claim(
                input_row=i,
                member_id=f.member_id,
                start=f.start,
                end=f.end,
                drug_class=f.drug_class,
                mme=f.daily_mme,
                prescriber_id=f.prescriber_id,
                ndc=ndc,
                claim_id=_optional_id(row.get("claim_id")),
                ingredient=_ingredient(entry.get("ingredient")),
                long_acting=entry.get("long_acting"),
            )
        )
    return labels, claims


def _evaluate(c: Claim, prior: list[Claim], events, s) -> dict[str, Any]:
    f = c.start
    tol = s["config"]["tolerance"]
    D = s["config"]["dx_lookback_days"]
    is_opioid = c.drug_class == "opioid"
    is_benzo = c.drug_class == "benzodiazepine"

    active = [p for p in prior if p.covers(f)]
    active_opioids = [p for p in active if p.drug_class == "opioid"]
    claim_mme = c.mme if is_opioid else 0.0
    cumulative = cumulative_mme(claim_mme, [p.mme for p in active_opioids])
    prescribers = {p.prescriber_id for p in active_opioids}
    if is_opioid:
        prescribers.add(c.prescriber_id)
    prescribers.discard(None)

    excluded = any(
        f - D + 1 <= e.day <= f and (e.categories & EXCLUSION_CATEGORIES) for e in events
    )

    # READING: "no prior opioid claim covers any day in f-L .. f-1", literally: a prior claim
    # filled the same day covers no earlier day, so it does not end naivety.
    lookback = s["opioid_naive_days_limit"]["lookback_days"]
    naive = not any(
        p.drug_class == "opioid" and any(p.covers(d) for d in range(f - lookback, f)) for p in prior
    )
    covered_days = c.end - c.start + 1

    def ge(x: float, t: float) -> bool:
        return x >= t - tol

    care = s["mme_care_coordination"]
    fired = {
        "mme_care_coordination": is_opioid
        and not excluded
        and ge(cumulative, care["threshold"])
        and len(prescribers) >= care["min_prescribers"],
        "mme_hard_limit": is_opioid
        and not excluded
        and ge(cumulative, s["mme_hard_limit"]["threshold"]),
        "opioid_naive_days_limit": is_opioid
        and not excluded
        and naive
        and covered_days > s["opioid_naive_days_limit"]["max_covered_days"],
        "opioid_benzo_concurrent": (
            is_opioid and any(p.drug_class == "benzodiazepine" for p in active)
        )
        or (is_benzo and bool(active_opioids)),
        # A null ingredient or null long_acting on either side never fires.
        "duplicate_long_acting": is_opioid
        and c.long_acting is True
        and c.ingredient is not None
        and any(
            p.long_acting is True and p.ingredient is not None and p.ingredient != c.ingredient
            for p in active_opioids
        ),
    }
    row = {
        "member_id": c.member_id,
        "claim_id": c.claim_id,
        "fill_date": dt.date.fromordinal(f),
        "ndc": c.ndc,
        "drug_class": c.drug_class,
        "claim_mme": claim_mme,
        "cumulative_mme": cumulative,
        "active_opioid_prescribers": len(prescribers),
        "excluded_at_fill": excluded,
    }
    for name in EDIT_NAMES:
        row[name] = bool(fired[name])
    row["edits"] = [name for name in EDIT_NAMES if fired[name]]
    return row


@dataclass
class NaiveEdits:
    claims: list[dict[str, Any]]
    audit: dict[str, Any]


def naive_edits(
    pharmacy_rows, medical_rows, reference, settings=None, max_days_supply=365
) -> NaiveEdits:
    """Replay SPEC 7 over row dicts (see tests/naive.py for the row and reference shapes)."""
    s = settings or DEFAULT_SETTINGS
    pharmacy_rows = list(pharmacy_rows or [])
    medical_rows = list(medical_rows or [])
    pharmacy_labels, claims = _used_claims(pharmacy_rows, reference, max_days_supply)
    medical_labels, events = _medical_pass(medical_rows)

    by_member: dict[Any, list[Claim]] = {}
    for c in claims:
        by_member.setdefault(c.member_id, []).append(c)
    events_by_member: dict[Any, list] = {}
    for e in events:
        events_by_member.setdefault(e.member_id, []).append(e)

    out: list[dict[str, Any]] = []
    for member_id in sorted(by_member, key=_member_sort_key):
        history = sorted(by_member[member_id], key=lambda c: (c.start, c.input_row))
        for k, c in enumerate(history):
            if c.drug_class in ("opioid", "benzodiazepine"):
                out.append(_evaluate(c, history[:k], events_by_member.get(member_id, []), s))

    audit = {
        "pharmacy": _count_audit(pharmacy_labels, PHARMACY_BUCKETS, PHARMACY_REASONS),
        "medical": _count_audit(medical_labels, MEDICAL_BUCKETS, MEDICAL_REASONS),
        "members_scored": len({r["member_id"] for r in out}),
        "rows_out": len(out),
        "edits": {
            "claims_evaluated": len(out),
            "fired": {n: sum(r[n] for r in out) for n in EDIT_NAMES},
            "members_hit": {n: len({r["member_id"] for r in out if r[n]}) for n in EDIT_NAMES},
        },
    }
    return NaiveEdits(out, audit)

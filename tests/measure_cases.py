"""Hand cases of the standard opioid measures, with expectations worked out by hand.

Each case is a small book (pharmacy rows on real NDCs of the packaged drug reference, eligibility
spans, members rows, optional medical rows) with its periods and the EXPECTED values of the
quantities and flags the case is about, keyed by (member, period). Every case is checked against
the plain-Python reference (tests/test_naive_measures.py) and the engine
(tests/test_measures_vs_naive.py). Also: Arrow builders and the hypothesis strategy of random books.

Arithmetic used below: oxycodone 5 mg (factor 1.5), 60 tablets / 30 days = 15 MME a day;
oxycodone 30 mg, 60 / 30 days = 90 MME a day; fentanyl 25 mcg/hr patch (factor 7.2, 3 days a
patch), covered days = max(1, round_half_up(3 x patches)) whatever the days_supply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from cases import medical_table, pharmacy_table

# --------------------------------------------------------------------------- drugs (packaged)

OXY5 = "00228287611"  # OXYCODONE HCL 5 MG tablet, opioid, factor 1.5, short-acting
OXY30 = "00228287911"  # OXYCODONE HCL 30 MG tablet, opioid, factor 1.5
FENT25 = "00093690045"  # FENTANYL TRANSDERMAL SYSTEM 25 MCG/HR, factor 7.2, 3 days per patch
BENZO = "00003013350"  # CLORAZEPATE DIPOTASSIUM 3.75 MG, benzodiazepine
#: what the cases assume of each NDC (checked against the packaged reference by the tests)
DRUGS = {
    OXY5: {
        "drug_class": "opioid",
        "strength_per_unit": 5.0,
        "mme_factor": 1.5,
        "days_per_unit": None,
    },
    OXY30: {
        "drug_class": "opioid",
        "strength_per_unit": 30.0,
        "mme_factor": 1.5,
        "days_per_unit": None,
    },
    FENT25: {
        "drug_class": "opioid",
        "strength_per_unit": 25.0,
        "mme_factor": 7.2,
        "days_per_unit": 3.0,
    },
    BENZO: {"drug_class": "benzodiazepine", "days_per_unit": None},
}


def d(y: int, m: int, dd: int) -> dt.date:
    return dt.date(y, m, dd)


def year(y: int) -> tuple[dt.date, dt.date]:
    return (d(y, 1, 1), d(y, 12, 31))


P2025 = year(2025)
ADULT = d(1970, 1, 1)
OLD_START = d(2000, 1, 1)  # default first day of a span
JAN5 = d(2025, 1, 5)

# --------------------------------------------------------------------------- row builders


def rx(member, fill_date, ndc=OXY5, quantity=60.0, days_supply=30, prescriber="P1",
       pharmacy="R1", claim_id=None, status=None) -> dict[str, Any]:  # fmt: skip
    """A pharmacy row (default: oxycodone 5 mg, 60 tablets, 30 days = 15 MME a day)."""
    return {
        "member_id": member,
        "fill_date": fill_date,
        "ndc": ndc,
        "quantity": quantity,
        "days_supply": days_supply,
        "prescriber_id": prescriber,
        "pharmacy_id": pharmacy,
        "claim_id": claim_id,
        "claim_status": status,
    }


def span(member, start=OLD_START, end=None, product="commercial") -> dict[str, Any]:
    return {"member_id": member, "start_date": start, "end_date": end, "product": product}


def person(member, birth=ADULT) -> dict[str, Any]:
    return {"member_id": member, "birth_date": birth}


def med(member, service_date, code_type, code) -> dict[str, Any]:
    return {"member_id": member, "service_date": service_date, "code_type": code_type, "code": code}


def two_fills(member, y: int = 2025) -> list[dict[str, Any]]:
    """15 MME on 01-10..02-08 and 02-10..03-11: 2 fill dates, 60 days supply, episode on 01-10."""
    return [rx(member, d(y, 1, 10)), rx(member, d(y, 2, 10))]


# --------------------------------------------------------------------------- the case type


@dataclass
class MeasureCase:
    name: str
    pharmacy: list[dict[str, Any]]
    eligibility: list[dict[str, Any]]
    members: list[dict[str, Any]]
    periods: list[tuple[dt.date, dt.date]]
    medical: list[dict[str, Any]] | None = None
    #: (member, (p0, p1)) -> {quantity or "<measure>_eligible/_denominator/_numerator" or
    #: "in_detail" or "enrolled": expected value}
    expected: dict[tuple[Any, tuple[dt.date, dt.date]], dict[str, Any]] = field(
        default_factory=dict
    )
    #: ((p0, p1), measure, product) -> {summary column: expected value}
    summary: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    #: {"eligibility": {...}, "members": {...}}: expected audit blocks
    audit: dict[str, Any] = field(default_factory=dict)
    member_type: str = "string"
    date_type: str = "date32"  # type of the eligibility / members date columns


CASES: dict[str, MeasureCase] = {}


def _members_of(rows) -> list:
    seen = []
    for r in rows:
        if r["member_id"] not in seen:
            seen.append(r["member_id"])
    return seen


def _add(name, pharmacy, expected, *, eligibility=None, members=None, periods=(P2025,), **kw):
    """Register a case; eligibility / members default to an open span and an adult for every
    pharmacy member (pass [] for none)."""
    if eligibility is None:
        eligibility = [span(m) for m in _members_of(pharmacy)]
    if members is None:
        members = [person(m) for m in _members_of(pharmacy)]
    exp = {}
    for key, values in expected.items():
        member, period = key if isinstance(key, tuple) else (key, periods[0])
        exp[(member, period)] = values
    CASES[name] = MeasureCase(
        name, pharmacy, eligibility, members, list(periods), expected=exp, **kw
    )


# --------------------------------------------------------------------------- enrollment

_add(
    "gap_45_vs_46",
    two_fills("A") + two_fills("B") + two_fills("C") + two_fills("D"),
    {
        "A": {"enrolled": True, "in_detail": True},  # 04-01..05-15: one gap of 45 days
        "B": {"enrolled": False, "in_detail": False},  # 04-01..05-16: 46 days
        "C": {"enrolled": True, "in_detail": True},  # 01-01..02-14 at the start: 45 days
        "D": {"enrolled": False, "in_detail": False},  # 01-01..02-15: 46 days
    },
    eligibility=[
        span("A", d(2024, 1, 1), d(2025, 3, 31)),
        span("A", d(2025, 5, 16)),
        span("B", d(2024, 1, 1), d(2025, 3, 31)),
        span("B", d(2025, 5, 17)),
        span("C", d(2025, 2, 15)),
        span("D", d(2025, 2, 16)),
    ],
)

_add(
    "two_gaps",
    two_fills("A") + two_fills("B") + two_fills("C") + two_fills("D") + two_fills("E"),
    {
        "A": {"enrolled": False, "in_detail": False},  # two gaps of 10 days
        "B": {"enrolled": True},  # touching spans, then one gap of 10 days
        "C": {"enrolled": True},  # overlapping spans
        "D": {"enrolled": False},  # a 4-day gap at the start and a 10-day gap
        "E": {"enrolled": True},  # a span wholly before the period changes nothing
    },
    eligibility=[
        span("A", d(2024, 1, 1), d(2025, 3, 31)),
        span("A", d(2025, 4, 11), d(2025, 6, 30)),
        span("A", d(2025, 7, 11)),
        span("B", d(2024, 1, 1), d(2025, 3, 31)),
        span("B", d(2025, 4, 1), d(2025, 6, 30)),
        span("B", d(2025, 7, 11)),
        span("C", d(2024, 1, 1), d(2025, 6, 30)),
        span("C", d(2025, 3, 1)),
        span("D", d(2025, 1, 5), d(2025, 6, 30)),
        span("D", d(2025, 7, 11)),
        span("E", d(2020, 1, 1), d(2020, 12, 31)),
        span("E", d(2024, 6, 1)),
    ],
)

_add(
    "enrolled_on_last_day",
    two_fills("A") + two_fills("B") + two_fills("C"),
    {
        "A": {"enrolled": False, "in_detail": False, "product": None},  # ends on p1 - 1
        "B": {"enrolled": True, "product": "commercial"},
        "C": {"enrolled": True, "product": "part_d"},  # a one-day span on p1
    },
    eligibility=[
        span("A", d(2024, 1, 1), d(2025, 12, 30)),
        span("B", d(2024, 1, 1), d(2025, 12, 31)),
        span("C", d(2024, 1, 1), d(2025, 12, 30)),
        span("C", d(2025, 12, 31), d(2025, 12, 31), "part_d"),
    ],
)

_add(
    "product_tie",
    two_fills("A") + two_fills("B") + two_fills("C") + two_fills("D") + two_fills("E"),
    {
        "A": {"product": "commercial"},  # two spans start 06-01: the smallest product
        "B": {"product": "part_d"},  # the later span ends before p1
        "C": {"product": "unspecified"},  # null product
        "D": {"product": "unspecified"},  # blank product
        "E": {"product": "medicaid"},  # trimmed
    },
    eligibility=[
        span("A", d(2024, 1, 1), None, "medicaid"),
        span("A", d(2025, 6, 1), None, "part_d"),
        span("A", d(2025, 6, 1), d(2025, 12, 31), "commercial"),
        span("B", d(2024, 1, 1), None, "part_d"),
        span("B", d(2025, 3, 1), d(2025, 11, 30), "commercial"),
        span("C", d(2024, 1, 1), None, None),
        span("D", d(2024, 1, 1), None, "  "),
        span("E", d(2024, 1, 1), None, " medicaid "),
    ],
    summary={
        (P2025, "high_dose_average", "all"): {"eligible": 5, "denominator": 5, "numerator": 0},
        (P2025, "high_dose_average", "commercial"): {"eligible": 1},
        (P2025, "high_dose_average", "medicaid"): {"eligible": 1},
        (P2025, "high_dose_average", "part_d"): {"eligible": 1},
        (P2025, "high_dose_average", "unspecified"): {"eligible": 2, "rate": 0.0},
    },
)

# --------------------------------------------------------------------------- age

_add(
    "age_17_vs_18",
    two_fills("A") + two_fills("B"),
    {
        "A": {"age": 18, "in_detail": True},
        "B": {"age": 17, "in_detail": False},  # 18 on 2025-01-02, one day late
    },
    members=[person("A", d(2007, 1, 1)), person("B", d(2007, 1, 2))],
)

_LEAP_BORN = d(2004, 2, 29)
_add(
    "feb29_birthday_p0_feb28",
    [rx("A", d(2022, 3, 10)), rx("A", d(2022, 4, 10))],
    {"A": {"age": 17, "in_detail": False}},  # in a common year, 18 only on 1 March
    members=[person("A", _LEAP_BORN)],
    periods=[(d(2022, 2, 28), d(2022, 12, 31))],
)
_add(
    "feb29_birthday_p0_mar1",
    [rx("A", d(2022, 3, 10)), rx("A", d(2022, 4, 10))],
    {"A": {"age": 18, "in_detail": True}},
    members=[person("A", _LEAP_BORN)],
    periods=[(d(2022, 3, 1), d(2022, 12, 31))],
)
_add(
    "feb29_birthday_leap_year_feb28",
    [rx("A", d(2024, 3, 10)), rx("A", d(2024, 4, 10))],
    {"A": {"age": 19}},
    members=[person("A", _LEAP_BORN)],
    periods=[(d(2024, 2, 28), d(2024, 12, 31))],
)
_add(
    "feb29_birthday_leap_year_feb29",
    [rx("A", d(2024, 3, 10)), rx("A", d(2024, 4, 10))],
    {"A": {"age": 20}},  # in a leap year the birthday is 29 February itself
    members=[person("A", _LEAP_BORN)],
    periods=[(d(2024, 2, 29), d(2024, 12, 31))],
)

# --------------------------------------------------------------------------- fill counts

_add(
    "same_date_vs_two_dates",
    [
        rx("A", d(2025, 3, 1), quantity=30.0, days_supply=15),
        rx("A", d(2025, 3, 1), quantity=30.0, days_supply=15),
        rx("B", d(2025, 3, 1), quantity=30.0, days_supply=15),
        rx("B", d(2025, 3, 2), quantity=30.0, days_supply=15),
    ],
    {
        "A": {
            "opioid_claims": 2,
            "opioid_fill_dates": 1,
            "cumulative_days_supply": 30,
            "high_dose_average_eligible": False,
            "continued_use_15_of_30_eligible": True,  # the episode still counts
            "in_detail": True,
        },
        "B": {"opioid_claims": 2, "opioid_fill_dates": 2, "high_dose_average_eligible": True},
    },
)

_add(
    "days_supply_14_vs_15",
    [
        rx("A", d(2025, 3, 1), quantity=14.0, days_supply=7),
        rx("A", d(2025, 3, 10), quantity=14.0, days_supply=7),
        rx("B", d(2025, 3, 1), quantity=14.0, days_supply=7),
        rx("B", d(2025, 3, 10), quantity=16.0, days_supply=8),
        # patches: 2 x 3 = 6 days and 3 x 3 = 9 days, whatever days_supply says
        rx("C", d(2025, 3, 1), FENT25, quantity=2.0, days_supply=1),
        rx("C", d(2025, 3, 7), FENT25, quantity=3.0, days_supply=1),
        # 1.5 patches = 4.5 days -> 5 (half up; half-even would give 4), then 9 or 10 days
        rx("D", d(2025, 3, 1), FENT25, quantity=1.5, days_supply=30),
        rx("D", d(2025, 3, 6), FENT25, quantity=3.0, days_supply=30),
        rx("E", d(2025, 3, 1), FENT25, quantity=1.5, days_supply=30),
        rx("E", d(2025, 3, 6), FENT25, quantity=10 / 3, days_supply=30),
    ],
    {
        "A": {"cumulative_days_supply": 14, "high_dose_average_eligible": False},
        "B": {"cumulative_days_supply": 15, "high_dose_average_eligible": True},
        "C": {
            "cumulative_days_supply": 15,
            "high_dose_average_eligible": True,
            "treatment_days": 15,
            "avg_mme": 60.0,  # 25 x 2 / 6 x 7.2 and 25 x 3 / 9 x 7.2
        },
        "D": {"cumulative_days_supply": 14, "high_dose_average_eligible": False},  # 5 + 9
        "E": {"cumulative_days_supply": 15, "high_dose_average_eligible": True},  # 5 + 10
    },
)

# --------------------------------------------------------------------------- MME


def _float_90(member) -> list[dict[str, Any]]:
    """Oxycodone 5 mg, 36.09 tablets / 3 days then 143.91 / 12 days: an average of 90 in exact
    arithmetic, 89.99999999999999 in floating point (summed by day or by claim)."""
    return [
        rx(member, d(2025, 1, 1), quantity=36.09, days_supply=3),
        rx(member, d(2025, 1, 4), quantity=143.91, days_supply=12),
    ]


_add(
    "avg_mme_under_and_at_90",
    [
        rx("A", d(2025, 1, 1), OXY30),
        rx("A", d(2025, 1, 31), OXY30),
        rx("B", d(2025, 1, 1), OXY30, quantity=59.99999),
        rx("B", d(2025, 1, 31), OXY30, quantity=59.99999),
        *_float_90("C"),
        rx("D", d(2025, 1, 1), OXY30),
        rx("D", d(2025, 2, 1), OXY30),  # 01-31 uncovered: a gap day in the treatment period
    ],
    {
        "A": {"treatment_days": 60, "avg_mme": 90.0, "high_dose_average_numerator": True},
        "B": {"avg_mme": 89.999985, "high_dose_average_numerator": False},
        "C": {"treatment_days": 15, "avg_mme": 90.0, "high_dose_average_numerator": True},
        "D": {
            "treatment_days": 61,
            "avg_mme": 5400 / 61,
            "high_dose_average_numerator": False,
            "longest_high_dose_run": 30,
        },
    },
)

_add(
    "high_dose_run_89_vs_90",
    [
        rx("A", d(2025, 1, 1), OXY30),
        rx("A", d(2025, 1, 31), OXY30),
        rx("A", d(2025, 3, 2), OXY30, quantity=58.0, days_supply=29),  # to 03-30: 89 days
        rx("B", d(2025, 1, 1), OXY30),
        rx("B", d(2025, 1, 31), OXY30),
        rx("B", d(2025, 3, 2), OXY30),  # to 03-31: 90 days
        # two 45-MME claims add up to 90 on the days both cover
        rx("C", d(2025, 1, 1), OXY30, quantity=90.0, days_supply=90),  # 01-01..03-31
        rx("C", d(2025, 1, 2), OXY30, quantity=90.0, days_supply=90),  # 01-02..04-01: 89 both
        rx("D", d(2025, 1, 1), OXY30, quantity=91.0, days_supply=91),  # 01-01..04-01
        rx("D", d(2025, 1, 2), OXY30, quantity=90.0, days_supply=90),  # 90 days both
    ],
    {
        "A": {"longest_high_dose_run": 89, "high_dose_sustained_numerator": False},
        "B": {"longest_high_dose_run": 90, "high_dose_sustained_numerator": True},
        "C": {"longest_high_dose_run": 89, "high_dose_sustained_numerator": False},
        "D": {"longest_high_dose_run": 90, "high_dose_sustained_numerator": True},
    },
)

# --------------------------------------------------------------------------- providers


def _monthly(member, prescribers, pharmacies, ndc=OXY5, start=JAN5):
    """One 30-day claim a month per (prescriber, pharmacy) pair, from ``start``."""
    rows = []
    for i, (p, r) in enumerate(zip(prescribers, pharmacies, strict=True)):
        rows.append(rx(member, start + dt.timedelta(days=30 * i), ndc, prescriber=p, pharmacy=r))
    return rows


_add(
    "prescribers_and_pharmacies_3_vs_4",
    [
        *_monthly("A", ["P1", "P2", "P3", None, ""], ["R1"] * 5),
        *_monthly("B", ["P1", "P2", "P3", "P4", None], ["R1", "R2", "R3", None, " R3 "]),
        *_monthly("C", ["P1", "P2", "P3", "P4", " P1 "], ["R1", "R2", "R3", "R4", ""]),
        *_monthly("D", ["P1", "P2", "P3", "P4"], ["R1", "R2", "R3", "R4"], OXY30, d(2025, 1, 1)),
        *_monthly("E", ["P1", "P2", "P3"], ["R1", "R2", "R3"]),
        rx("E", d(2025, 4, 1), BENZO, prescriber="P4", pharmacy="R4"),  # not an opioid
    ],
    {
        "A": {"prescribers": 3, "pharmacies": 1, "multiple_prescribers_numerator": False},
        "B": {
            "prescribers": 4,
            "pharmacies": 3,
            "multiple_prescribers_numerator": True,
            "multiple_pharmacies_numerator": False,
            "multiple_providers_numerator": False,
        },
        "C": {
            "prescribers": 4,
            "pharmacies": 4,
            "multiple_providers_numerator": True,
            "multiple_pharmacies_numerator": True,
            "high_dose_multiple_providers_numerator": False,
        },
        "D": {
            "longest_high_dose_run": 120,
            "multiple_providers_numerator": True,
            "high_dose_multiple_providers_numerator": True,
        },
        "E": {"prescribers": 3, "pharmacies": 3, "multiple_providers_numerator": False},
    },
)

# --------------------------------------------------------------------------- benzodiazepines

_OPIOID_60 = [d(2025, 1, 1), d(2025, 1, 31)]  # 15 MME on 01-01..03-01


def _opioid_60(member):
    return [rx(member, day) for day in _OPIOID_60]


_add(
    "benzo_overlap_29_vs_30",
    [
        *_opioid_60("A"),
        rx("A", d(2025, 1, 1), BENZO, quantity=15.0, days_supply=15),
        rx("A", d(2025, 1, 16), BENZO, quantity=14.0, days_supply=14),  # to 01-29
        *_opioid_60("B"),
        rx("B", d(2025, 1, 1), BENZO, quantity=15.0, days_supply=15),
        rx("B", d(2025, 1, 16), BENZO, quantity=15.0, days_supply=15),  # to 01-30
        *_opioid_60("C"),
        rx("C", d(2025, 1, 1), BENZO, quantity=30.0, days_supply=30),
        rx("C", d(2025, 1, 1), BENZO, quantity=30.0, days_supply=30),  # one fill date
        *_opioid_60("D"),
        rx("D", d(2024, 12, 20), BENZO, quantity=30.0, days_supply=30),  # before p0
        rx("D", d(2025, 1, 20), BENZO, quantity=30.0, days_supply=30),
        # an opioid filled before p0 covering January does not overlap
        rx("E", d(2024, 12, 15), quantity=120.0, days_supply=60),  # to 2025-02-12
        rx("E", d(2025, 2, 20)),
        rx("E", d(2025, 3, 1)),  # opioid days in P: 02-20..03-30
        rx("E", d(2025, 1, 1), BENZO, quantity=30.0, days_supply=30),
        rx("E", d(2025, 1, 31), BENZO, quantity=30.0, days_supply=30),  # to 03-01
    ],
    {
        "A": {
            "benzo_fill_dates": 2,
            "opioid_benzo_days": 29,
            "opioid_benzodiazepine_numerator": False,
        },
        "B": {
            "benzo_fill_dates": 2,
            "opioid_benzo_days": 30,
            "opioid_benzodiazepine_numerator": True,
        },
        "C": {
            "benzo_fill_dates": 1,
            "opioid_benzo_days": 30,
            "opioid_benzodiazepine_numerator": False,
        },
        "D": {
            "benzo_fill_dates": 1,
            "opioid_benzo_days": 30,
            "opioid_benzodiazepine_numerator": False,
        },
        "E": {"benzo_fill_dates": 2, "opioid_benzo_days": 10, "opioid_claims": 2},
    },
)

# --------------------------------------------------------------------------- continued use

_E = d(2025, 3, 1)  # e - 60 = 2024-12-31, e - 61 = 2024-12-30
_add(
    "negative_history_60_vs_61",
    [
        rx("A", d(2024, 12, 2)),  # covers 12-02..12-31: the 60th day before e
        rx("A", _E),
        rx("A", d(2025, 3, 31)),
        rx("B", d(2024, 12, 1)),  # covers 12-01..12-30: only the 61st day before e
        rx("B", _E),
        rx("B", d(2025, 3, 31)),
        rx("C", d(2024, 12, 2)),
        rx("C", _E),  # 03-01..03-30; 06-01 - 60 = 04-02: the next fill starts an episode
        rx("C", d(2025, 6, 1)),
    ],
    {
        "A": {
            "episode_start": None,
            "covered_30": 0,
            "covered_62": 0,
            "continued_use_15_of_30_eligible": False,
            "opioid_claims": 2,  # the claim filled before p0 is not counted
            "cumulative_days_supply": 60,
            "ipsd": _E,
            "in_detail": True,
        },
        "B": {
            "episode_start": _E,
            "covered_30": 30,
            "covered_62": 60,  # 03-01..04-29 of 03-01..05-01
            "continued_use_15_of_30_numerator": True,
            "continued_use_31_of_62_numerator": True,
        },
        "C": {"episode_start": d(2025, 6, 1), "covered_30": 30, "covered_62": 30},
    },
)

_add(
    "episode_start_p1_61_vs_p1_60",
    [rx("A", d(2025, 10, 31)), rx("B", d(2025, 11, 1))],
    {
        "A": {
            "episode_start": d(2025, 10, 31),
            "covered_30": 30,
            "covered_62": 30,
            "continued_use_15_of_30_numerator": True,
            "continued_use_31_of_62_numerator": False,
            "high_dose_average_eligible": False,
            "in_detail": True,
        },
        "B": {"episode_start": None, "in_detail": False},
    },
)

_add(
    "covered_14_15_of_30_and_30_31_of_62",
    [
        rx("A", d(2025, 2, 1), quantity=28.0, days_supply=14),
        rx("B", d(2025, 2, 1), quantity=30.0, days_supply=15),
        rx("C", d(2025, 2, 1)),
        rx("D", d(2025, 2, 1)),
        rx("D", d(2025, 4, 3), quantity=20.0, days_supply=10),  # e + 61: the last day counts
        rx("E", d(2025, 2, 1), quantity=40.0, days_supply=20),
        rx("E", d(2025, 2, 5), quantity=20.0, days_supply=10),  # inside the first: once
    ],
    {
        "A": {"covered_30": 14, "covered_62": 14, "continued_use_15_of_30_numerator": False},
        "B": {"covered_30": 15, "covered_62": 15, "continued_use_15_of_30_numerator": True},
        "C": {"covered_30": 30, "covered_62": 30, "continued_use_31_of_62_numerator": False},
        "D": {"covered_30": 30, "covered_62": 31, "continued_use_31_of_62_numerator": True},
        "E": {"covered_30": 20, "covered_62": 20, "episode_start": d(2025, 2, 1)},
    },
)

# --------------------------------------------------------------------------- exclusions

_add(
    "exclusions_and_their_order",
    [r for m in "ABCDEFGH" for r in two_fills(m)],
    {
        "A": {
            "exclusion": "hospice_palliative",
            "high_dose_average_eligible": True,
            "high_dose_average_denominator": False,
            "in_detail": True,
        },  # fmt: skip
        "B": {"exclusion": "cancer", "continued_use_15_of_30_denominator": False},
        "C": {"exclusion": "sickle_cell"},
        "D": {"exclusion": None, "continued_use_15_of_30_numerator": True},  # before p0
        "E": {"exclusion": None},  # after p1
        "F": {"exclusion": None},  # sickle-cell trait
        "G": {"exclusion": "hospice_palliative"},  # revenue code on p1
        "H": {"exclusion": "cancer"},  # on p0
    },
    medical=[
        med("A", d(2025, 4, 1), "ICD10CM", "C50.911"),
        med("A", d(2025, 5, 1), "ICD10CM", "Z51.5"),
        med("B", d(2025, 4, 1), "ICD10CM", "D57.1"),
        med("B", d(2025, 5, 1), "ICD10CM", "C50.911"),
        med("C", d(2025, 4, 1), "ICD10CM", "D57.1"),
        med("D", d(2024, 12, 31), "ICD10CM", "C50.911"),
        med("E", d(2026, 1, 1), "ICD10CM", "Z51.5"),
        med("F", d(2025, 4, 1), "ICD10CM", "D57.3"),
        med("G", d(2025, 12, 31), "REV", "0651"),
        med("H", d(2025, 1, 1), "ICD10CM", "C50.911"),
    ],
    summary={
        (P2025, "high_dose_average", "all"): {
            "eligible": 8,
            "excluded": 5,
            "denominator": 3,
            "numerator": 0,
            "rate": 0.0,
        },  # fmt: skip
        (P2025, "continued_use_15_of_30", "all"): {
            "eligible": 8,
            "excluded": 5,
            "denominator": 3,
            "numerator": 3,
            "rate": 1.0,
        },  # fmt: skip
    },
)

# --------------------------------------------------------------------------- products, periods

P2024 = year(2024)
_add(
    "two_products",
    two_fills("A", 2024) + two_fills("A") + two_fills("B", 2024) + two_fills("B"),
    {
        ("A", P2024): {"product": "commercial", "in_detail": True},
        ("A", P2025): {"product": "part_d", "in_detail": True},
        ("B", P2024): {"product": "medicaid"},
        ("B", P2025): {"product": "part_d", "enrolled": True},  # touching spans
    },
    eligibility=[
        span("A", d(2023, 1, 1), d(2024, 12, 31), "commercial"),
        span("A", d(2025, 1, 1), None, "part_d"),
        span("B", d(2023, 1, 1), d(2025, 6, 30), "medicaid"),
        span("B", d(2025, 7, 1), None, "part_d"),
    ],
    periods=(P2024, P2025),
    summary={
        (P2024, "high_dose_average", "commercial"): {"eligible": 1},
        (P2024, "high_dose_average", "medicaid"): {"eligible": 1},
        (P2025, "high_dose_average", "part_d"): {"eligible": 2},
    },
)

_add(
    "claims_before_p0_and_after_p1",
    [
        rx("A", d(2024, 12, 20), OXY30, quantity=120.0, days_supply=60),  # 90 MME to 02-17
        rx("A", d(2025, 2, 1), quantity=20.0, days_supply=10),
        rx("A", d(2025, 2, 11), quantity=20.0, days_supply=10),
        rx("A", d(2026, 1, 1), OXY30),  # after p1
        rx("B", d(2025, 12, 10)),
        rx("B", d(2025, 12, 20)),  # covers to 2026-01-18: clipped to p1
    ],
    {
        "A": {
            "opioid_claims": 2,
            "opioid_fill_dates": 2,
            "cumulative_days_supply": 20,
            "ipsd": d(2025, 2, 1),
            "treatment_days": 20,
            "avg_mme": 15.0,
            "longest_high_dose_run": 0,
            "episode_start": None,  # the December claim covers 01-31
        },
        "B": {
            "cumulative_days_supply": 60,  # not clipped
            "treatment_days": 22,  # 12-10..12-31
            "avg_mme": 510 / 22,  # 10 days of 15 and 12 days of 30
            "episode_start": None,  # after p1 - 61
        },
    },
)

# --------------------------------------------------------------------------- who is measured

_add(
    "missing_inputs",
    two_fills("B") + two_fills("C") + two_fills("D"),
    {
        "A": {
            "enrolled": True,
            "opioid_claims": 0,
            "ipsd": None,
            "treatment_days": 0,
            "avg_mme": 0.0,
            "episode_start": None,
            "in_detail": False,
        },  # fmt: skip
        "B": {"enrolled": False, "in_detail": False},  # claims without eligibility
        "C": {"age": None, "enrolled": True, "in_detail": False},  # no members row
        "D": {"in_detail": True},
    },
    eligibility=[span("A"), span("C"), span("D")],
    members=[person("A"), person("B"), person("D")],
)

_add(
    "intake_of_eligibility_and_members",
    two_fills("A") + two_fills("B") + two_fills("C") + two_fills("D"),
    {
        "A": {"age": 55, "product": "commercial", "in_detail": True},
        "B": {"age": 35, "product": "part_d", "in_detail": True},  # first row's date was bad
        "C": {"age": 17, "enrolled": True, "in_detail": False},  # the first kept row wins
        "D": {"age": None, "enrolled": False, "in_detail": False},
    },
    eligibility=[
        span("A", "2024-01-01", "", "commercial"),
        span(" ", "2024-01-01", None),  # member_id
        span("B", None, None),  # start_date
        span("B", "2024-13-01", None),  # start_date: impossible
        span("B", "20240101", "20231231"),  # end_date before start_date
        span("B", "20240101", "garbage"),  # end_date
        span("B", "20240101", None, "part_d"),
        span(" C ", "2024-01-01", "2025-12-31"),
        span("D", "2025-06-01", "2025-05-31"),  # end_date
        span("D", "2025-06-01", "2025-06-01"),
    ],
    members=[
        person("A", "1970-01-01"),
        person("A", "1980-01-01"),  # duplicate
        person("B", "not a date"),  # birth_date
        person("B", "19900101"),
        person("", "1970-01-01"),  # member_id
        person("C", None),  # birth_date
        person(" C", "20070102"),
        person("C", "1970-01-01"),  # duplicate
    ],
    audit={
        "eligibility": {
            "rows_read": 10,
            "buckets": {"rejected": 6, "used": 4},
            "rejected_by_reason": {"member_id": 1, "start_date": 2, "end_date": 3},
        },
        "members": {
            "rows_read": 8,
            "buckets": {"rejected": 5, "used": 3},
            "rejected_by_reason": {"member_id": 1, "birth_date": 2, "duplicate": 2},
        },
    },
    date_type="string",
)

_add(
    "integer_member_ids",
    two_fills(101) + two_fills(102),
    {101: {"in_detail": True, "enrolled": True}, 102: {"enrolled": False}},
    eligibility=[span(101), span(102, d(2024, 1, 1), d(2025, 3, 31)), span(102, d(2025, 5, 17))],
    member_type="int64",
)

_add(
    "three_periods",
    [
        rx("A", d(2023, 6, 1)),
        rx("A", d(2023, 7, 1)),
        rx("A", d(2024, 12, 20)),  # covers into 2025: negative history of 2025
        rx("A", d(2025, 1, 15), quantity=20.0, days_supply=10),  # blocked by 12-20's claim
        rx("A", d(2025, 4, 1), OXY30),  # 01-31..03-31 uncovered: an episode
        *two_fills("B", 2024),
    ],
    {
        ("A", year(2023)): {"opioid_claims": 2, "episode_start": d(2023, 6, 1)},
        ("A", P2024): {"opioid_claims": 1, "in_detail": False, "episode_start": None},
        ("A", P2025): {
            "opioid_claims": 2,
            "cumulative_days_supply": 40,
            "episode_start": d(2025, 4, 1),
            "covered_62": 30,
            "in_detail": True,
        },
        ("B", year(2023)): {"in_detail": False},
        ("B", P2024): {"in_detail": True},
        ("B", P2025): {"in_detail": False},
    },
    periods=(year(2023), P2024, P2025),
)


_H1 = (d(2025, 1, 1), d(2025, 6, 30))
_add(
    "periods_sharing_a_start",
    two_fills("A") + two_fills("B"),
    {
        ("A", _H1): {"product": "medicaid", "in_detail": True},
        ("A", P2025): {"product": "part_d", "in_detail": True},
        ("B", _H1): {"product": "commercial", "in_detail": True},
        ("B", P2025): {"product": None, "enrolled": False, "in_detail": False},
    },
    eligibility=[
        span("A", d(2024, 1, 1), d(2025, 6, 30), "medicaid"),
        span("A", d(2025, 7, 1), None, "part_d"),
        span("B", d(2024, 1, 1), d(2025, 6, 30), "commercial"),
    ],
    periods=(_H1, P2025),
    summary={  # each period has the products of its own detail rows only
        (_H1, "high_dose_average", "all"): {"eligible": 2},
        (_H1, "high_dose_average", "commercial"): {"eligible": 1},
        (_H1, "high_dose_average", "medicaid"): {"eligible": 1},
        (P2025, "high_dose_average", "all"): {"eligible": 1},
        (P2025, "high_dose_average", "part_d"): {"eligible": 1},
    },
)


# --------------------------------------------------------------------------- Arrow builders

ELIGIBILITY_COLUMNS = ("member_id", "start_date", "end_date", "product")
MEMBERS_COLUMNS = ("member_id", "birth_date")


def _member_type(member_type: str) -> pa.DataType:
    return pa.int64() if member_type == "int64" else pa.string()


def _table(rows, columns, types) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows], type=types[c]) for c in columns})


def eligibility_table(rows, member_type="string", date_type="date32") -> pa.Table:
    date = pa.date32() if date_type == "date32" else pa.string()
    types = {"member_id": _member_type(member_type), "start_date": date, "end_date": date,
             "product": pa.string()}  # fmt: skip
    return _table(rows, ELIGIBILITY_COLUMNS, types)


def members_table(rows, member_type="string", date_type="date32") -> pa.Table:
    date = pa.date32() if date_type == "date32" else pa.string()
    return _table(
        rows, MEMBERS_COLUMNS, {"member_id": _member_type(member_type), "birth_date": date}
    )


def case_tables(case: MeasureCase) -> dict[str, pa.Table | None]:
    """The case's inputs as Arrow tables: pharmacy, medical (or None), eligibility, members."""
    return {
        "pharmacy": pharmacy_table(case.pharmacy, case.member_type),
        "medical": None if case.medical is None else medical_table(case.medical, case.member_type),
        "eligibility": eligibility_table(case.eligibility, case.member_type, case.date_type),
        "members": members_table(case.members, case.member_type, case.date_type),
    }

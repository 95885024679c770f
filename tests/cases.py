"""Hand-made scoring cases shared by test_naive.py (hand-computed expectations) and
test_score_vs_naive.py (engine vs the naive oracle), plus Arrow builders.

Every test NDC starts with ``9999988``: the public NDC lists behind the default reference
use the labeler ``99999`` but nothing under ``9999988`` (checked against
../shared/data/reference), so the tiny reference below never collides with the default one
the engine merges it over. The one exception is ``09999880001``, the 4-4-2 target, which is
not in those lists either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

A = dt.date(2024, 6, 30)  # the default as-of date of the hand cases


def day(offset: int) -> dt.date:
    """A + offset days."""
    return A + dt.timedelta(days=offset)


# --------------------------------------------------------------------------- tiny reference

OXY = "99999880001"  # oxycodone 10 MG, factor 1.5
FENT = "99999880002"  # fentanyl patch 25 MCG/HR, factor 7.2, 3 days per patch
BUP_PATCH = "99999880003"  # buprenorphine patch 10 MCG/HR (pain: class opioid, no factor), 7 days
ALPRAZ = "99999880004"  # alprazolam 1 MG, benzodiazepine
GABA = "99999880005"  # gabapentin 300 MG, gabapentinoid
BUP_MAT = "99999880006"  # buprenorphine 8 MG sublingual, buprenorphine_mat
NALOX = "99999880007"  # naloxone 4 MG, naloxone
STIM = "99999880008"  # amphetamine 10 MG, stimulant
MORPH_LIQ = "99999880009"  # morphine oral solution 2 MG/ML, factor 1
NALTREX = "99999880010"  # naltrexone 50 MG
CYCLO = "99999880011"  # cyclobenzaprine 10 MG, muscle_relaxant
ZOLP = "99999880012"  # zolpidem 10 MG, sedative_hypnotic
OXY5_442 = "09999880001"  # oxycodone 5 MG, factor 1.5: target of the 4-4-2 form 9999-8800-01
OXY20_532 = "99999088001"  # oxycodone 20 MG, factor 1.5: target of the 5-3-2 form 99999-880-01
UNTRACKED = "99999889999"  # valid NDC in no reference

# (ndc, drug_name, ingredient, drug_class, strength, unit, factor, long_acting, dpu, schedule)
_REFERENCE_ROWS = [
    (OXY, "oxycodone hcl 10 mg", "oxycodone", "opioid", 10.0, "MG", 1.5, False, None, "CII"),
    (FENT, "fentanyl 25 mcg/hr patch", "fentanyl", "opioid", 25.0, "MCG/HR", 7.2, True, 3.0, "CII"),
    (
        BUP_PATCH,
        "buprenorphine 10 mcg/hr patch",
        "buprenorphine",
        "opioid",
        10.0,
        "MCG/HR",
        None,
        True,
        7.0,
        "CIII",
    ),
    (
        ALPRAZ,
        "alprazolam 1 mg",
        "alprazolam",
        "benzodiazepine",
        1.0,
        "MG",
        None,
        False,
        None,
        "CIV",
    ),
    (
        GABA,
        "gabapentin 300 mg",
        "gabapentin",
        "gabapentinoid",
        300.0,
        "MG",
        None,
        False,
        None,
        None,
    ),
    (
        BUP_MAT,
        "buprenorphine 8 mg sl",
        "buprenorphine",
        "buprenorphine_mat",
        8.0,
        "MG",
        None,
        False,
        None,
        "CIII",
    ),
    (NALOX, "naloxone 4 mg nasal", "naloxone", "naloxone", 4.0, "MG", None, False, None, None),
    (STIM, "amphetamine 10 mg", "amphetamine", "stimulant", 10.0, "MG", None, False, None, "CII"),
    (
        MORPH_LIQ,
        "morphine 2 mg/ml solution",
        "morphine",
        "opioid",
        2.0,
        "MG/ML",
        1.0,
        False,
        None,
        "CII",
    ),
    (NALTREX, "naltrexone 50 mg", "naltrexone", "naltrexone", 50.0, "MG", None, False, None, None),
    (
        CYCLO,
        "cyclobenzaprine 10 mg",
        "cyclobenzaprine",
        "muscle_relaxant",
        10.0,
        "MG",
        None,
        False,
        None,
        None,
    ),
    (ZOLP, "zolpidem 10 mg", "zolpidem", "sedative_hypnotic", 10.0, "MG", None, False, None, "CIV"),
    (OXY5_442, "oxycodone hcl 5 mg", "oxycodone", "opioid", 5.0, "MG", 1.5, False, None, "CII"),
    (OXY20_532, "oxycodone hcl 20 mg", "oxycodone", "opioid", 20.0, "MG", 1.5, False, None, "CII"),
]

REFERENCE_SCHEMA = pa.schema(
    [
        ("ndc", pa.string()),
        ("drug_name", pa.string()),
        ("ingredient", pa.string()),
        ("drug_class", pa.string()),
        ("strength_per_unit", pa.float64()),
        ("unit", pa.string()),
        ("mme_factor", pa.float64()),
        ("long_acting", pa.bool_()),
        ("days_per_unit", pa.float64()),
        ("dea_schedule", pa.string()),
    ]
)


def reference_table() -> pa.Table:
    columns = list(zip(*_REFERENCE_ROWS, strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, REFERENCE_SCHEMA, strict=True)],
        schema=REFERENCE_SCHEMA,
    )


def reference_dict() -> dict[str, dict[str, Any]]:
    """The tiny reference in naive form (same content as reference_table())."""
    return {
        ndc: {
            "drug_class": cls,
            "strength_per_unit": strength,
            "mme_factor": factor,
            "days_per_unit": dpu,
            "long_acting": la,
            "ingredient": ingredient,
        }
        for ndc, _name, ingredient, cls, strength, _unit, factor, la, dpu, _sched in _REFERENCE_ROWS
    }


# --------------------------------------------------------------------------- row builders


def fill(
    member,
    offset,
    ndc=OXY,
    quantity=60.0,
    days_supply=30,
    prescriber="P1",
    pharmacy="PH1",
    claim_id=None,
    status=None,
) -> dict[str, Any]:
    """A pharmacy row filled on A + offset."""
    return {
        "member_id": member,
        "fill_date": day(offset) if isinstance(offset, int) else offset,
        "ndc": ndc,
        "quantity": quantity,
        "days_supply": days_supply,
        "prescriber_id": prescriber,
        "pharmacy_id": pharmacy,
        "claim_id": claim_id,
        "claim_status": status,
    }


def med(member, offset, code_type, code) -> dict[str, Any]:
    """A medical row on A + offset (offset None = null date)."""
    return {
        "member_id": member,
        "service_date": None if offset is None else day(offset),
        "code_type": code_type,
        "code": code,
    }


@dataclass
class Case:
    name: str
    pharmacy: list[dict[str, Any]]
    medical: list[dict[str, Any]] | None
    as_of: list[dt.date]
    member_type: str = "string"  # "string" or "int64" for the Arrow tables


# --------------------------------------------------------------------------- the cases

CASES: dict[str, Case] = {}


def _add(name, pharmacy, medical=None, as_of=None, member_type="string"):
    CASES[name] = Case(name, pharmacy, medical, as_of or [A], member_type)


_add("empty", [], None)

_add("one_fill", [fill("M1", -29, OXY, 60.0, 30)])

# Single-day fills (ds 1, 10 mg x 6 / 1 x 1.5 = 90 MME) exactly at the window edges.
_add(
    "window_edges",
    [
        fill("M1", off, OXY, 6.0, 1, prescriber=f"P{i}", pharmacy=f"PH{i}")
        for i, off in enumerate([-364, -365, -179, -180, -89, -90, 0, 1], start=1)
    ],
)

# 30 MME covering A-99..A-70: 20 days inside the 90-day window, filled before it.
_add("covering_from_before", [fill("M1", -99, OXY, 60.0, 30)])

# Three 30-MME fills on the same day, 2 prescribers, 2 pharmacies.
_add(
    "same_day",
    [
        fill("M1", -9, OXY, 20.0, 10, prescriber="P1", pharmacy="PH1"),
        fill("M1", -9, OXY, 20.0, 10, prescriber="P2", pharmacy="PH1"),
        fill("M1", -9, OXY, 20.0, 10, prescriber="P1", pharmacy="PH2"),
    ],
)

_add(
    "patches",
    [
        # 10 fentanyl patches x 3 days = 30 covered days (input days_supply 28 is ignored).
        fill("M1", -29, FENT, 10.0, 28),
        # 4 buprenorphine patches x 7 days = 28 covered days, no MME factor.
        fill("M2", -27, BUP_PATCH, 4.0, 30),
        # 2.5 patches x 3 = 7.5 -> 8 days (round half up).
        fill("M3", -7, FENT, 2.5, 7),
        # 1.5 patches x 3 = 4.5 -> 5 days (half up, where round-half-even would give 4).
        fill("M4", -4, FENT, 1.5, 5),
    ],
)

# 150 mL of 2 mg/mL over 15 days, factor 1.
_add("liquid", [fill("M1", -14, MORPH_LIQ, 150.0, 15)])

_add(
    "null_ids",
    [
        fill("M1", -9, OXY, 2.0, 10, prescriber=None, pharmacy=None),
        fill("M1", -9, OXY, 2.0, 10, prescriber="", pharmacy="PH1"),
        fill("M1", -9, OXY, 2.0, 10, prescriber=" P1 ", pharmacy="\tPH1\n"),
        fill("M1", -9, OXY, 2.0, 10, prescriber="P1", pharmacy="  "),
    ],
)

REJECTION_ROWS = [
    # (row, expected label)
    (fill(None, -9, OXY, 2.0, 10), "rejected:member_id"),
    (fill("  ", -9, OXY, 2.0, 10), "rejected:member_id"),
    # the NDC is tested first: a null or bad NDC is rejected for it whatever else is wrong
    (fill("", None, None, None, None, status="X"), "rejected:ndc"),
    (fill("M1", None, OXY, 2.0, 10), "rejected:fill_date"),
    (fill("M1", None, "bad", None, 0, status="X"), "rejected:ndc"),
    (fill("M1", -9, None, 2.0, 10), "rejected:ndc"),
    (fill("M1", -9, "12345", 2.0, 10), "rejected:ndc"),
    (fill("M1", -9, "9999988000", None, None, status="X"), "rejected:ndc"),
    (fill("M1", -9, OXY, 2.0, 10, status="X"), "rejected:claim_status"),
    (fill("M1", -9, OXY, None, None, status="void"), "rejected:claim_status"),
    (fill("M1", -9, OXY, None, 10), "rejected:quantity"),
    (fill("M1", -9, OXY, 0.0, 10), "rejected:quantity"),
    (fill("M1", -9, OXY, -5.0, 10), "rejected:quantity"),
    (fill("M1", -9, OXY, float("nan"), 10), "rejected:quantity"),
    (fill("M1", -9, OXY, float("inf"), 10), "rejected:quantity"),
    (fill("M1", -9, OXY, None, None), "rejected:quantity"),
    (fill("M1", -9, OXY, 2.0, None), "rejected:days_supply"),
    (fill("M1", -9, OXY, 2.0, 0), "rejected:days_supply"),
    (fill("M1", -9, OXY, 2.0, -3), "rejected:days_supply"),
    (fill("M1", -9, OXY, 2.0, 366), "rejected:days_supply"),
    # A patch is checked on its input days_supply although its coverage is rewritten.
    (fill("M1", -9, FENT, 10.0, 0), "rejected:days_supply"),
    # 365 days is allowed: used.
    (fill("M1", -9, OXY, 2.0, 365), "used"),
    # Reversals are not checked for quantity or days supply.
    (fill("M1", -9, OXY, None, None, claim_id="R1", status="R"), "reversal"),
    (fill("M1", -9, OXY, -2.0, -10, claim_id="R2", status="reversed"), "reversal"),
]
_add("rejections", [r for r, _ in REJECTION_ROWS])

BUCKET_ROWS = [
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C1", status="paid"), "reversed"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C2", status="P"), "used"),
    (fill("M1", -9, OXY, -2.0, -10, claim_id="C1", status="R"), "reversal"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id=" C1 ", status="PAID"), "reversed"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C2", status=None), "duplicate"),
    # an untracked row takes no part in claim-id matching: the later C3 is not a duplicate
    (fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="C3", status=""), "untracked"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C3", status="p"), "used"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id=None, status=" Reversed "), "reversal"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id=None), "used"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id=None), "used"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id=""), "used"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C4", status="r"), "reversal"),
    (fill("M1", -9, OXY, 0.0, 10, claim_id="C5"), "rejected:quantity"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C5"), "used"),
    (fill("M1", -9, "bad-ndc", 2.0, 10, claim_id="C6", status="R"), "rejected:ndc"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="C6"), "used"),
    (fill("M2", -9, UNTRACKED, 2.0, 10), "untracked"),
]
_add("buckets", [r for r, _ in BUCKET_ROWS])

NDC_FORM_ROWS = [
    (fill("M1", -9, "9999-8800-01", 10.0, 10), "used"),  # -> 09999880001, 5 mg
    (fill("M1", -9, "99999-880-01", 10.0, 10), "used"),  # -> 99999088001, 20 mg
    (fill("M1", -9, "99999-8800-1", 10.0, 10), "used"),  # -> 99999880001, 10 mg
    (fill("M1", -9, "99999-8800-01", 10.0, 10), "used"),  # -> 99999880001
    (fill("M1", -9, " 99999 880001\t", 10.0, 10), "used"),  # spaces removed
    (fill("M1", -9, "9999988000", 10.0, 10), "rejected:ndc"),  # 10 bare digits
    (fill("M1", -9, "9999-888-01", 10.0, 10), "rejected:ndc"),  # 4-3-2
    (fill("M1", -9, "99999-88000-1", 10.0, 10), "rejected:ndc"),  # 5-5-1
    (fill("M1", -9, "ABCDE-8800-01", 10.0, 10), "rejected:ndc"),  # letters
    (fill("M1", -9, "99999880001X", 10.0, 10), "rejected:ndc"),
    (fill("M1", -9, "999998800011", 10.0, 10), "rejected:ndc"),  # 12 digits
]
_add("ndc_forms", [r for r, _ in NDC_FORM_ROWS])

# The order of the tests: NDC first, then untracked rows (never checked further, never in
# claim-id matching), then the other reasons.
BUCKET_ORDER_ROWS = [
    # untracked rows with a bad date / quantity / member / status / days supply: untracked
    (fill("M1", None, UNTRACKED, 2.0, 10), "untracked"),
    (fill("M1", -9, UNTRACKED, -1.0, 10), "untracked"),
    (fill("M1", -9, UNTRACKED, float("nan"), 10), "untracked"),
    (fill(None, -9, UNTRACKED, 2.0, 10), "untracked"),
    (fill("  ", -9, UNTRACKED, 2.0, 10), "untracked"),
    (fill("M1", -9, UNTRACKED, 2.0, 0), "untracked"),
    (fill("M1", -9, UNTRACKED, 2.0, 10, status="void"), "untracked"),
    (fill(None, None, UNTRACKED, None, None, status="X"), "untracked"),
    (fill("M1", -9, UNTRACKED, 1e308, 30), "untracked"),
    # a null or bad NDC is rejected for it even when the member id is null too
    (fill(None, -9, None, 2.0, 10), "rejected:ndc"),
    (fill(None, None, "bad", None, None, status="X"), "rejected:ndc"),
    (fill("M1", -9, None, 2.0, 10, claim_id="K0", status="R"), "rejected:ndc"),
    # an untracked reversal does not reverse the tracked paid row with its claim id
    (fill("M1", -9, UNTRACKED, None, None, claim_id="K1", status="R"), "untracked"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="K1"), "used"),
    # an untracked paid row first does not make the tracked one with its claim id a duplicate
    (fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="K2"), "untracked"),
    (fill("M1", -9, OXY, 2.0, 10, claim_id="K2"), "used"),
    # nor is an untracked row after a tracked one a duplicate
    (fill("M1", -9, OXY, 2.0, 10, claim_id="K3"), "used"),
    (fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="K3"), "untracked"),
    # a tracked reversal leaves an untracked paid row with its claim id untracked
    (fill("M1", -9, OXY, None, None, claim_id="K4", status="R"), "reversal"),
    (fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="K4"), "untracked"),
    # the rejected ndc row with K0 (a reversal) reverses nothing
    (fill("M1", -9, OXY, 2.0, 10, claim_id="K0"), "used"),
    # tracked rows are still checked in order: member id, fill date, status, quantity, ds
    (fill(None, None, OXY, None, None, status="X"), "rejected:member_id"),
    (fill("M1", None, OXY, None, None, status="X"), "rejected:fill_date"),
]
_add("bucket_order", [r for r, _ in BUCKET_ORDER_ROWS])

MEDICAL_ORDER_ROWS = [
    # a valid code in no category: unclassified, whatever the member id and date
    (med(None, None, "ICD10CM", "J45.909"), "unclassified"),
    (med("M1", None, "ICD10CM", "J45.909"), "unclassified"),
    (med("  ", -5, "CPT", "99999"), "unclassified"),
    # code type and code are tested first
    (med(None, None, "ICD9CM", "304.00"), "rejected:code_type"),
    (med(None, -5, None, "F11.20"), "rejected:code_type"),
    (med(None, None, "ICD10CM", None), "rejected:code"),
    (med("M1", None, "ICD10CM", " "), "rejected:code"),
    # then the member id and the date of a classified row
    (med(None, None, "ICD10CM", "F11.20"), "rejected:member_id"),
    (med("M1", None, "ICD10CM", "F11.20"), "rejected:service_date"),
    (med("M1", -5, "REV", "0450"), "used"),
]
_add(
    "medical_order",
    [fill("M1", -9, OXY, 2.0, 10)],
    [r for r, _ in MEDICAL_ORDER_ROWS],
)

FAR_FUTURE = dt.date(9999, 12, 31)  # the last date an as-of date can be

# Huge quantities: coverage never overflows; a non-finite daily MME is rejected (quantity).
HUGE_QUANTITY_ROWS = [
    # 1e9 fentanyl patches: 3e9 covered days (to the end of every window, even at 9999-12-31),
    # daily MME 25 x 1e9 / 3e9 x 7.2 = 60
    (fill("H1", -29, FENT, 1e9, 30), "used"),
    # 25 x 1e308 overflows: no finite daily MME
    (fill("H2", -9, FENT, 1e308, 30), "rejected:quantity"),
    (fill("H3", -9, OXY, 1e308, 30), "rejected:quantity"),
    # a patch's MME does not depend on the input days supply: quantity is tested first
    (fill("H4", -9, FENT, 1e308, 0), "rejected:quantity"),
    # no days of supply to divide by: the days supply decides
    (fill("H5", -9, OXY, 1e308, 0), "rejected:days_supply"),
    # no MME factor (buprenorphine pain patch) or no MME (benzodiazepine): used, coverage
    # capped far beyond every date
    (fill("H6", -9, BUP_PATCH, 1e308, 30), "used"),
    (fill("H7", -9, ALPRAZ, 1e308, 30), "used"),
    # 1e300 patches: 3e300 days, MME 25 x 1e300 / 3e300 x 7.2 = 60
    (fill("H8", -9, FENT, 1e300, 30), "used"),
    # reversals are not checked for quantity
    (fill("H9", -9, FENT, 1e308, 30, claim_id="HR", status="R"), "reversal"),
]
_add("huge_quantity", [r for r, _ in HUGE_QUANTITY_ROWS], as_of=[A, day(400), FAR_FUTURE])

MEDICAL_NEAR_MISS_ROWS = [
    (med("M1", -10, "ICD10CM", "T40.2X5A"), "unclassified"),  # adverse effect
    (med("M1", -10, "ICD10CM", "T40.2X1D"), "unclassified"),  # subsequent encounter
    (med("M1", -10, "ICD10CM", "T40.2X6A"), "unclassified"),  # underdosing
    (med("M1", -10, "ICD10CM", "T40.2X1S"), "unclassified"),  # sequela
    (med("M1", -10, "ICD10CM", "T40.5X1A"), "unclassified"),  # cocaine
    (med("M1", -10, "ICD10CM", "T40.7X1A"), "unclassified"),  # cannabis
    (med("M1", -10, "ICD10CM", "D57.3"), "unclassified"),  # sickle-cell trait
    (med("M1", -10, "ICD10CM", "F17.210"), "unclassified"),  # nicotine
    (med("M1", -10, "ICD10CM", "C97"), "unclassified"),
    (med("M1", -10, "ICD10CM", "Z51.1"), "unclassified"),
    (med("M1", -10, "CPT", "99286"), "unclassified"),
    (med("M1", -10, "CPT", "99280"), "unclassified"),
    (med("M1", -10, "REV", "0449"), "unclassified"),
    (med("M1", -10, "REV", "04500"), "unclassified"),
    (med("M1", -10, "REV", "0982"), "unclassified"),
    (med("M1", -10, "POS", "22"), "unclassified"),
    (med("M1", -10, "POS", "023"), "unclassified"),
    (med("M1", -10, "ICD10CM", "99285"), "unclassified"),  # a CPT code under ICD
    (med("M1", -10, "POS", "0450"), "unclassified"),  # a REV code under POS
    (med(None, -10, "ICD10CM", "F11.20"), "rejected:member_id"),
    (med("", -10, "ICD10CM", "F11.20"), "rejected:member_id"),
    (med("M1", None, "ICD10CM", "F11.20"), "rejected:service_date"),
    (med("M1", None, None, None), "rejected:code_type"),  # the code type is tested first
    (med("M1", -10, None, "F11.20"), "rejected:code_type"),
    (med("M1", -10, " ", "F11.20"), "rejected:code_type"),
    (med("M1", -10, "ICD9CM", "304.00"), "rejected:code_type"),
    (med("M1", -10, "ICD10CM", None), "rejected:code"),
    (med("M1", -10, "ICD10CM", " \t"), "rejected:code"),
]
_add(
    "medical_near_miss",
    [fill("M1", -9, OXY, 2.0, 10)],
    [r for r, _ in MEDICAL_NEAR_MISS_ROWS],
)

_add(
    "medical_hits",
    [fill("OD1", -9, OXY, 2.0, 10)],
    [
        # OD1: overdoses on A-10 (twice) and A-5; one at A-400 is outside D.
        med("OD1", -10, "ICD10CM", "T40.2X1A"),
        med("OD1", -10, "icd10cm", "T40.411A"),
        med("OD1", -5, "ICD10CM", "t40414a"),
        med("OD1", -400, "ICD10CM", "T40.1X1A"),
        # OD2: the T40.60 family and T40.4X (pre-2023) codes, medical only.
        med("OD2", -100, "ICD10CM", "T40.604A"),
        med("OD2", -200, "ICD10CM", "T40.4X2A"),
        med("OD2", -300, "ICD10CM", "T40.693A"),
        # ED1: ED visits on A-20 (two codes), A-30, A-89; A-90 is outside E but inside D.
        med("ED1", -20, "REV", "450"),
        med("ED1", -20, "POS", "23"),
        med("ED1", -30, "HCPCS", "99285"),
        med("ED1", -89, "cpt", "99281"),
        med("ED1", -90, "REV", "0981"),
        # SUD1: opioid use disorder; SUD2: alcohol use disorder (sud but not oud).
        med("SUD1", -10, "ICD10CM", "F11.20"),
        med("SUD2", -10, "ICD10CM", "F10.20"),
        med("SUD2", -10, "ICD10CM", "F17.210"),
        # Exclusions.
        med("EX1", -10, "ICD10CM", "C50.911"),
        med("EX2", -10, "ICD10CM", "D57.1"),
        med("EX3", -10, "ICD10CM", "Z51.5"),
        med("EX4", -10, "REV", "651"),
        med("EX5", -10, "POS", "34"),
        med("EX6", -10, "ICD10CM", "G89.3"),
        med("EX7", -10, "ICD10CM", "C7A.010"),
        med("EX8", -10, "REV", "0235"),
    ],
)

_add(
    "high_dose_run",
    [
        # 10 x 60 / 10 x 1.5 = 90 MME on A-39..A-30 (10 days)
        fill("M1", -39, OXY, 60.0, 10),
        # A-29 uncovered; 10 x 90 / 15 x 1.5 = 90 MME on A-28..A-14 (15 days)
        fill("M1", -28, OXY, 90.0, 15),
        # two 45-MME fills (10 x 30 / 10 x 1.5) on A-5..A+4 adding up to 90
        fill("M1", -5, OXY, 30.0, 10),
        fill("M1", -5, OXY, 30.0, 10),
    ],
)

_add(
    "rolling_max",
    [
        # 10 x 400 / 10 x 1.5 = 600 MME on A-370..A-361 (4 days inside A-364..A)
        fill("M1", -370, OXY, 400.0, 10),
        # 10 x 180 / 90 x 1.5 = 30 MME on A-300..A-211
        fill("M1", -300, OXY, 180.0, 90),
        # 10 x 120 / 10 x 1.5 = 180 MME on A-199..A-190
        fill("M1", -199, OXY, 120.0, 10),
    ],
)


def _many(member, offset, quantity, ds, prescribers, pharmacies, ndc=OXY):
    return [
        fill(member, offset, ndc, quantity, ds, prescriber=p, pharmacy=ph)
        for p, ph in zip(prescribers, pharmacies, strict=True)
    ]


_add(
    "flags_high_dose",
    [
        fill("HD90", -9, OXY, 60.0, 10),  # 10 x 60 / 10 x 1.5 = 90
        fill("HD8999", -14, OXY, 89.99, 15),  # 10 x 89.99 / 15 x 1.5 = 89.99
        fill("HDTOL", -14, OXY, 90.0 - 5e-10, 15),  # 90 - 5e-10 >= 90 - 1e-9
    ],
)

_add(
    "flags_multi_provider",
    _many("MP44", -9, 2.0, 10, ["P1", "P2", "P3", "P4"], ["PH1", "PH2", "PH3", "PH4"])
    + _many("MP43", -9, 2.0, 10, ["P1", "P2", "P3", "P4"], ["PH1", "PH2", "PH3", "PH3"])
    + _many("MP34", -9, 2.0, 10, ["P1", "P2", "P3", "P3"], ["PH1", "PH2", "PH3", "PH4"])
    + _many("MPOLD", -200, 2.0, 10, ["P1", "P2", "P3", "P4"], ["PH1", "PH2", "PH3", "PH4"]),
)

_add(
    "flags_cms_oms",
    # three 30-MME fills (10 x 20 / 10 x 1.5) = 90 a day
    _many("C33", -9, 20.0, 10, ["P1", "P2", "P3"], ["PH1", "PH2", "PH3"])
    + _many("C32", -9, 20.0, 10, ["P1", "P2", "P3"], ["PH1", "PH2", "PH2"])
    # five 18-MME fills (10 x 12 / 10 x 1.5) = 90 a day
    + _many("C51", -9, 12.0, 10, ["P1", "P2", "P3", "P4", "P5"], ["PH1"] * 5)
    # four 22.5-MME fills (10 x 15 / 10 x 1.5) = 90 a day
    + _many("C41", -9, 15.0, 10, ["P1", "P2", "P3", "P4"], ["PH1"] * 4)
    + [fill("COD", -179, OXY, 2.0, 10), fill("CODOLD", -180, OXY, 2.0, 10)],
    [
        med("COD", -100, "ICD10CM", "T40.2X1A"),
        med("CODOLD", -100, "ICD10CM", "T40.2X1A"),
    ],
)

_add(
    "flags_concurrent_benzo",
    [
        # opioid 1 MME (10 x 2 / 30 x 1.5) on A-59..A
        fill("CB30", -59, OXY, 2.0, 30),
        fill("CB30", -29, OXY, 2.0, 30),
        fill("CB30", -59, ALPRAZ, 30.0, 15),  # A-59..A-45
        fill("CB30", -44, ALPRAZ, 30.0, 15),  # A-44..A-30
        fill("CB29", -59, OXY, 2.0, 30),
        fill("CB29", -29, OXY, 2.0, 30),
        fill("CB29", -59, ALPRAZ, 30.0, 15),  # A-59..A-45
        fill("CB29", -44, ALPRAZ, 30.0, 14),  # A-44..A-31
        fill("CB1", -59, OXY, 2.0, 30),
        fill("CB1", -29, OXY, 2.0, 30),
        fill("CB1", -59, ALPRAZ, 30.0, 30),  # A-59..A-30, one benzo fill
        fill("CBOP1", -59, OXY, 4.0, 60),  # one opioid fill covering A-59..A
        fill("CBOP1", -59, ALPRAZ, 30.0, 15),
        fill("CBOP1", -44, ALPRAZ, 30.0, 15),
    ],
)

_add(
    "flags_dose_with_cns",
    [
        # 10 x 100 / 30 x 1.5 = 50 MME on A-29..A
        fill("DC", -29, OXY, 100.0, 30),
        fill("DC", -29, GABA, 90.0, 30),
        # 10 x 99.98 / 30 x 1.5 = 49.99
        fill("DCLOW", -29, OXY, 99.98, 30),
        fill("DCLOW", -29, GABA, 90.0, 30),
        fill("DC29", -29, OXY, 100.0, 30),
        fill("DC29", -28, GABA, 90.0, 29),  # A-28..A: 29 days
        fill("DCMIX", -29, OXY, 100.0, 30),
        fill("DCMIX", -29, CYCLO, 15.0, 15),  # A-29..A-15
        fill("DCMIX", -14, ZOLP, 15.0, 15),  # A-14..A
    ],
)

_add(
    "flags_substance",
    [
        fill("SUFILL", -300, OXY, 2.0, 10),
        fill("SUOLD", -370, OXY, 2.0, 10),  # A-370..A-361: covers the window, not filled in it
    ],
    [
        med("SUNOFILL", -10, "ICD10CM", "F11.20"),
        med("SUFILL", -10, "ICD10CM", "F11.20"),
        med("SUOLD", -10, "ICD10CM", "F11.20"),
    ],
)

_add(
    "flags_excluded",
    [
        fill("EXH", -9, OXY, 60.0, 10),  # 90 MME
        fill("EXS", -9, OXY, 60.0, 10),
        fill("EXOLD", -9, OXY, 60.0, 10),
    ],
    [
        med("EXH", -10, "ICD10CM", "C50.911"),
        med("EXH", -20, "ICD10CM", "T40.2X1A"),
        med("EXS", -10, "ICD10CM", "D57.1"),
        med("EXOLD", -365, "ICD10CM", "C50.911"),  # outside a-D+1..a
    ],
)

_add(
    "flags_emergency",
    [
        fill("E89", -9, OXY, 60.0, 10),  # 90 MME: high_dose, at_risk
        fill("E90", -9, OXY, 60.0, 10),
        fill("EFUT", -9, OXY, 60.0, 10),
        fill("ELOW", -9, OXY, 2.0, 10),  # 3 MME: not at risk
    ],
    [
        med("E89", -89, "CPT", "99283"),
        med("E90", -90, "CPT", "99283"),
        med("EFUT", 1, "CPT", "99283"),
        med("ELOW", -1, "CPT", "99283"),
    ],
)

_add(
    "membership",
    [
        fill("FILLOLD", -400, OXY, 2.0, 30),  # A-400..A-371: before A-364
        fill("FILLEDGE", -393, OXY, 2.0, 30),  # A-393..A-364: covers A-364
        fill("FILLFUT", 1, OXY, 2.0, 30),  # after A
        fill("STIM", -10, STIM, 30.0, 30),
        fill("MAT", -10, BUP_MAT, 30.0, 30),
        fill("MAT", -200, NALTREX, 30.0, 30),
        fill("MAT", -300, NALOX, 1.0, 1),
        fill("MAT", -365, NALOX, 1.0, 1),  # outside H
    ],
    [
        med("MEDONLY", -10, "REV", "0450"),
        med("MED364", -364, "ICD10CM", "F11.20"),
        med("MED365", -365, "ICD10CM", "F11.20"),
        med("MEDUNCL", -10, "ICD10CM", "J45.909"),
    ],
)

_add(
    "multi_as_of",
    [
        fill("M1", -29, OXY, 60.0, 30),  # 30 MME on A-29..A
        fill("M1", -150, OXY, 60.0, 30),  # 30 MME on A-150..A-121
    ],
    None,
    [day(30), A, day(-100)],
)

_add(
    "int_member_ids",
    [fill(100, -9, OXY, 2.0, 10), fill(12, -9, OXY, 4.0, 10), fill(7, -9, OXY, 6.0, 10)],
    [med(7, -5, "ICD10CM", "F11.20"), med(55, -5, "REV", "0450")],
    member_type="int64",
)

_add(
    "string_member_sort",
    [fill("M10", -9), fill(" M2\t", -9), fill("M1 ", -9), fill("m0", -9)],
)


# --------------------------------------------------------------------------- Arrow builders

PHARMACY_COLUMNS = [
    ("member_id", None),
    ("fill_date", pa.date32()),
    ("ndc", pa.string()),
    ("quantity", pa.float64()),
    ("days_supply", pa.int32()),
    ("prescriber_id", pa.string()),
    ("pharmacy_id", pa.string()),
    ("claim_id", pa.string()),
    ("claim_status", pa.string()),
]
MEDICAL_COLUMNS = [
    ("member_id", None),
    ("service_date", pa.date32()),
    ("code_type", pa.string()),
    ("code", pa.string()),
]


def _member_type(member_type: str) -> pa.DataType:
    return pa.int64() if member_type == "int64" else pa.string()


def _table(rows, columns, member_type) -> pa.Table:
    fields = [pa.field(n, t if t is not None else _member_type(member_type)) for n, t in columns]
    schema = pa.schema(fields)
    arrays = [pa.array([r.get(f.name) for r in rows], type=f.type) for f in fields]
    return pa.Table.from_arrays(arrays, schema=schema)


def pharmacy_table(rows, member_type: str = "string") -> pa.Table:
    return _table(rows, PHARMACY_COLUMNS, member_type)


def medical_table(rows, member_type: str = "string") -> pa.Table:
    return _table(rows, MEDICAL_COLUMNS, member_type)


def combined_book() -> Case:
    """Every string-keyed hand case in one book, at three as-of dates. Member and claim ids
    are prefixed by the case name so cases stay apart (reversal matching spans the book)."""
    pharmacy, medical = [], []
    for case in CASES.values():
        if case.member_type != "string":
            continue
        for row in case.pharmacy:
            row = dict(row)
            if isinstance(row["member_id"], str) and row["member_id"].strip():
                row["member_id"] = f"{case.name}/{row['member_id'].strip()}"
            if row.get("claim_id"):
                row["claim_id"] = f"{case.name}/{row['claim_id']}"
            pharmacy.append(row)
        for row in case.medical or []:
            row = dict(row)
            if isinstance(row["member_id"], str) and row["member_id"].strip():
                row["member_id"] = f"{case.name}/{row['member_id'].strip()}"
            medical.append(row)
    return Case("book", pharmacy, medical, [day(0), day(30), day(-100)])


# --------------------------------------------------------------------------- random scenarios

SCENARIO_BASE = dt.date(2024, 1, 1)

_GOOD_NDCS = [OXY, OXY, OXY, FENT, BUP_PATCH, ALPRAZ, ALPRAZ, GABA, BUP_MAT, NALOX, STIM]
_GOOD_NDCS += [MORPH_LIQ, NALTREX, CYCLO, ZOLP, OXY5_442, OXY20_532]
_ODD_NDCS = [
    "9999-8800-01",
    "99999-880-01",
    "99999-8800-1",
    "99999-8800-02",
    " 99999880001 ",
    UNTRACKED,
    "9999988000",
    "99999-88000-1",
    "abc",
    "",
    None,
]
_QUANTITIES = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0]
_QUANTITIES += [90.0, 120.0, 150.0, 240.0]
_BAD_QUANTITIES = [None, 0.0, -1.0, float("nan")]
_IDS = [None, None, "", " ", "P1", "P2", "P3", "P4", "P5", " P1 "]
_PHARMACIES = [None, None, "", "PH1", "PH2", "PH3", "PH4", "\tPH2"]
_FOCUS_IDS = [None, "P1", "P2", "P3", "P4", "P5", "P6"]
_FOCUS_PHARMACIES = [None, "PH1", "PH2", "PH3", "PH4", "PH5"]
_STATUSES = [None] * 20 + ["", "paid", "P", "p", "PAID", "R", "reversed", " Reversed ", "X"]
_MEDICAL_CODES = [
    ("ICD10CM", "T40.2X1A"),
    ("ICD10CM", "T40.2X5A"),
    ("ICD10CM", "T40.2X1D"),
    ("ICD10CM", "T40.2X6A"),
    ("ICD10CM", "T40.411A"),
    ("ICD10CM", "T40.604A"),
    ("icd10cm", "t402x4a"),
    ("ICD10CM", "F11.20"),
    ("ICD10CM", "F10.20"),
    ("ICD10CM", "F17.210"),
    ("ICD10CM", "D57.3"),
    ("ICD10CM", "D57.1"),
    ("ICD10CM", "C50.911"),
    ("ICD10CM", "C97"),
    ("ICD10CM", "Z51.5"),
    ("ICD10CM", "G89.3"),
    ("ICD10CM", "J45.909"),
    ("REV", "450"),
    ("REV", "0981"),
    ("REV", "0651"),
    ("REV", "04500"),
    ("POS", "23"),
    ("POS", "34"),
    ("POS", "023"),
    ("CPT", "99285"),
    ("HCPCS", "99284"),
    ("cpt", "99281"),
    ("CPT", "99286"),
    (None, "F11.20"),
    ("ICD9CM", "304.00"),
    ("ICD10CM", None),
    ("ICD10CM", " "),
]


def scenarios(max_members: int = 6, max_fills: int = 25):
    """Hypothesis strategy: Case objects with random members, fills and medical rows."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        int_ids = draw(st.integers(0, 3)) == 0
        n_members = draw(st.integers(1, max_members))
        as_of_offsets = draw(st.lists(st.integers(60, 500), min_size=1, max_size=3, unique=True))
        as_of = [SCENARIO_BASE + dt.timedelta(days=o) for o in as_of_offsets]
        pharmacy: list[dict[str, Any]] = []
        medical: list[dict[str, Any]] = []
        claim_ids = [f"C{i}" for i in range(12)]
        for m in range(n_members):
            if int_ids:
                member = 1000 + 37 * m
            else:
                member = draw(st.sampled_from([f"M{m}", f" M{m}", f"M{m}\t"]))
            # a "focused" member fills often before an as-of date, at many places, high doses
            focus = draw(st.integers(0, 2)) == 0
            for _ in range(draw(st.integers(0, max_fills))):
                odd = draw(st.integers(0, 9)) == 0
                row_member = member
                if odd and draw(st.booleans()):
                    row_member = None if int_ids else draw(st.sampled_from([None, "", "  "]))
                if focus:
                    offset = draw(st.sampled_from(as_of_offsets)) - draw(st.integers(0, 170))
                else:
                    offset = draw(st.integers(-20, 520))
                fill_date = SCENARIO_BASE + dt.timedelta(days=offset)
                if odd and draw(st.booleans()):
                    fill_date = None
                if focus:
                    ndc = draw(st.sampled_from([OXY, OXY, FENT, ALPRAZ, GABA, MORPH_LIQ]))
                else:
                    ndc = draw(st.sampled_from(_GOOD_NDCS * 3 + _ODD_NDCS))
                if draw(st.integers(0, 9)) == 0:
                    quantity = draw(st.sampled_from(_BAD_QUANTITIES))
                else:
                    quantity = draw(st.sampled_from(_QUANTITIES))
                if draw(st.integers(0, 9)) == 0:
                    days_supply = draw(st.sampled_from([0, -5, 365, 366, 400, None]))
                else:
                    days_supply = draw(st.integers(1, 90))
                claim_id = None
                if draw(st.integers(0, 2)) == 0:
                    claim_id = draw(st.sampled_from(claim_ids))
                pharmacy.append(
                    {
                        "member_id": row_member,
                        "fill_date": fill_date,
                        "ndc": ndc,
                        "quantity": quantity,
                        "days_supply": days_supply,
                        "prescriber_id": draw(st.sampled_from(_FOCUS_IDS if focus else _IDS)),
                        "pharmacy_id": draw(
                            st.sampled_from(_FOCUS_PHARMACIES if focus else _PHARMACIES)
                        ),
                        "claim_id": claim_id,
                        "claim_status": draw(st.sampled_from(_STATUSES)),
                    }
                )
            for _ in range(draw(st.integers(0, 8))):
                code_type, code = draw(st.sampled_from(_MEDICAL_CODES))
                # medical rows cluster before the as-of dates so emergencies are recent
                anchor = draw(st.sampled_from(as_of_offsets))
                offset = anchor - draw(st.integers(-5, 400))
                service_date = SCENARIO_BASE + dt.timedelta(days=offset)
                row_member = member
                if draw(st.integers(0, 14)) == 0:
                    row_member = None
                if draw(st.integers(0, 14)) == 0:
                    service_date = None
                medical.append(
                    {
                        "member_id": row_member,
                        "service_date": service_date,
                        "code_type": code_type,
                        "code": code,
                    }
                )
        pharmacy = draw(st.permutations(pharmacy)) if pharmacy else pharmacy
        medical = draw(st.permutations(medical)) if medical else medical
        medical_or_none = medical if (medical or draw(st.booleans())) else None
        return Case(
            "random",
            list(pharmacy),
            None if medical_or_none is None else list(medical_or_none),
            as_of,
            "int64" if int_ids else "string",
        )

    return build()

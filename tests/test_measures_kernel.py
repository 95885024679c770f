"""The standard-measures kernel and its wrapper on hand cases: each quantity of a (member,
period) row and its edges (enrollment gaps, product, age, claims, exclusions, continued-use
episodes), the measure rules, the detail table, and one compiled specialisation."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxrisk.days import date_of, day_of
from rxrisk.engines.local import configure, encode_book, ingest_book
from rxrisk.kernels import containers as kc
from rxrisk.kernels.measures_containers import NO_DAY, OPEN_END, MeasureOutputs, MemberSpans
from rxrisk.quality.compute import NO_BIRTH, ages, check_measure_arguments, measure_claims
from rxrisk.quality.detail import DETAIL_COLUMNS, detail_table
from rxrisk.quality.rates import MEASURES, measure_flags
from rxrisk.quality.settings import MeasureSettings

from cases import ALPRAZ, OXY, fill, med, medical_table, pharmacy_table, reference_table

D = dt.date
P0, P1 = D(2025, 1, 1), D(2025, 12, 31)
YEAR = ((P0, P1),)
EARLY = D(2020, 1, 1)  # start of the default enrollment span (open-ended)
ADULT = D(1970, 1, 1)  # the default birth date


def settings(**overrides) -> MeasureSettings:
    """The default measure settings with ``overrides``."""
    return msgspec.structs.replace(MeasureSettings(), **overrides)


def plus(date: dt.date, days: int) -> dt.date:
    return date + dt.timedelta(days=days)


def rx(member, date, quantity=60.0, ds=30, ndc=OXY, prescriber="P1", pharmacy="PH1"):
    """A paid claim. OXY (10 mg, factor 1.5): daily MME = 15 x quantity / ds."""
    return fill(member, date, ndc, quantity, ds, prescriber=prescriber, pharmacy=pharmacy)


def encode(pharmacy, medical=None, member_type="string"):
    """The ``Claims`` of a tiny book, through the real ingest and encode."""
    setup = configure(as_of="2025-12-31", reference=reference_table())
    med_table = medical_table(medical, member_type) if medical else None
    _, selected = ingest_book(
        pharmacy_table(pharmacy, member_type), med_table, setup, all_members=False
    )
    return encode_book(selected, setup)


def member_spans(ids, spans) -> MemberSpans:
    """``MemberSpans`` of members ``ids`` from {member: [(start, end or None, code)]}; a member
    not in ``spans`` has one open span from :data:`EARLY` with product 0."""
    offsets, rows = [0], []
    for member in ids:
        mine = spans.get(member, [(EARLY, None, 0)])
        rows += sorted(
            (day_of(s), OPEN_END if e is None else day_of(e), code) for s, e, code in mine
        )
        offsets.append(len(rows))
    cols = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return MemberSpans(np.array(offsets, np.intp), *(np.array(c, np.int32) for c in cols))


def run(pharmacy, medical=None, *, spans=None, births=None, periods=YEAR, **overrides):
    """Quantities of every member: {(member, period index): {quantity: value}} (days as dates,
    None for none)."""
    claims = encode(pharmacy, medical)
    ids = claims.member_ids.to_pylist()
    births = births or {}
    birth_day = np.array(
        [NO_BIRTH if births.get(m, ADULT) is None else day_of(births.get(m, ADULT)) for m in ids],
        np.int32,
    )
    days = np.array([[day_of(a), day_of(b)] for a, b in periods], np.int32)
    q = measure_claims(
        claims, member_spans(ids, spans or {}), birth_day, days, settings(**overrides)
    )
    out = {}
    for r in range(len(q.member_index)):
        row = {name: value[r].item() for name, value in vars(q).items()}
        for name in ("ipsd", "episode_start"):
            row[name] = None if row[name] == NO_DAY else date_of(row[name])
        out[ids[row["member_index"]], row["period_index"]] = row
    return out


def one(pharmacy, medical=None, member="M1", **kwargs):
    """The quantities of ``member`` in the first period."""
    return run(pharmacy, medical, **kwargs)[member, 0]


def anchor(member="M1"):
    """A claim far from every period, so that a member exists without claims in P."""
    return rx(member, D(2010, 1, 1), 10.0, 1)


# --------------------------------------------------------------------------- enrollment


@pytest.mark.parametrize(
    ("spans", "enrolled"),
    [
        ([(plus(P0, -10), None, 0)], True),
        # a gap of 45 days in the middle is allowed, 46 is not
        ([(P0, D(2025, 1, 31), 0), (plus(D(2025, 1, 31), 46), None, 0)], True),
        ([(P0, D(2025, 1, 31), 0), (plus(D(2025, 1, 31), 47), None, 0)], False),
        # the same at the start of the period
        ([(plus(P0, 45), None, 0)], True),
        ([(plus(P0, 46), None, 0)], False),
        # p1 not covered (a one-day gap at the end)
        ([(plus(P0, -10), plus(P1, -1), 0)], False),
        # two gaps of 3 days
        ([(P0, D(2025, 3, 1), 0), (D(2025, 3, 5), D(2025, 6, 1), 0), (D(2025, 6, 5), P1, 0)], False),
        # overlapping and touching spans leave no gap
        ([(EARLY, D(2025, 3, 31), 0), (D(2025, 4, 1), D(2025, 6, 30), 0), (D(2025, 6, 1), P1, 0)], True),
        # spans outside the period count for nothing
        ([(EARLY, plus(P0, -1), 0), (P0, P1, 0), (plus(P1, 1), None, 0)], True),
        ([(EARLY, plus(P0, -1), 0), (plus(P1, 1), None, 0)], False),
    ],
)  # fmt: skip
def test_enrolled(spans, enrolled):
    assert one([anchor()], spans={"M1": spans})["enrolled"] is enrolled


def test_enrolled_counts_gaps_against_max_gaps():
    two_gaps = [(P0, D(2025, 3, 1), 0), (D(2025, 3, 5), D(2025, 6, 1), 0), (D(2025, 6, 5), P1, 0)]
    assert one([anchor()], spans={"M1": two_gaps}, max_gaps=2)["enrolled"] is True
    touching = [(P0, D(2025, 6, 30), 0), (D(2025, 7, 1), None, 0)]
    assert one([anchor()], spans={"M1": touching}, max_gaps=0)["enrolled"] is True
    gap = [(P0, D(2025, 6, 30), 0), (D(2025, 7, 2), None, 0)]
    assert one([anchor()], spans={"M1": gap}, max_gaps=0)["enrolled"] is False


@pytest.mark.parametrize(
    ("spans", "product"),
    [
        # the span covering p1 with the latest start; a later span ending before p1 is ignored
        ([(EARLY, None, 2), (D(2025, 6, 1), None, 1), (D(2025, 7, 1), P1, 3),
          (D(2025, 8, 1), D(2025, 11, 30), 0)], 3),
        # same start: the smallest code, whatever the ends
        ([(D(2025, 7, 1), P1, 2), (D(2025, 7, 1), None, 1), (EARLY, None, 0)], 1),
        ([(D(2025, 7, 1), P1, 1), (D(2025, 7, 1), None, 2)], 1),
        # none covers p1
        ([(EARLY, plus(P1, -1), 0)], -1),
        ([(plus(P1, 1), None, 0)], -1),
    ],
)  # fmt: skip
def test_product(spans, product):
    assert one([anchor()], spans={"M1": spans})["product"] == product


# --------------------------------------------------------------------------- age


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (D(2007, 1, 1), D(2025, 1, 1), 18),
        (D(2007, 1, 2), D(2025, 1, 1), 17),
        (D(2008, 2, 29), D(2026, 2, 28), 17),
        (D(2008, 2, 29), D(2026, 3, 1), 18),
        (D(2008, 2, 29), D(2028, 2, 28), 19),
        (D(2008, 2, 29), D(2028, 2, 29), 20),
        (D(1900, 3, 1), D(2000, 2, 29), 99),
        (D(2025, 1, 1), D(2025, 1, 1), 0),
    ],
)
def test_age_in_completed_years(birth, on, age):
    assert ages(np.array([day_of(birth)], np.int32), np.array([day_of(on)]))[0, 0] == age


def test_age_per_period_and_unknown_birth():
    rows = run(
        [anchor("M1"), anchor("M2")],
        births={"M1": D(2007, 6, 15), "M2": None},
        periods=((D(2025, 1, 1), D(2025, 12, 31)), (D(2025, 6, 15), D(2025, 12, 31))),
    )
    assert [rows["M1", j]["age"] for j in (0, 1)] == [17, 18]
    assert [rows["M2", j]["age"] for j in (0, 1)] == [-1, -1]


# --------------------------------------------------------------------------- claims


def test_same_date_claims_and_distinct_ids():
    q = one(
        [
            rx("M1", D(2025, 3, 1), prescriber="A", pharmacy="X"),
            rx("M1", D(2025, 3, 1), prescriber="B", pharmacy="X"),
            rx("M1", D(2025, 3, 1), prescriber=None, pharmacy=""),
            rx("M1", D(2025, 4, 1), prescriber="A", pharmacy="Y"),
            rx("M1", D(2025, 4, 1), ndc=ALPRAZ, prescriber="C", pharmacy="Z"),  # not an opioid
        ]
    )
    assert (q["opioid_claims"], q["opioid_fill_dates"]) == (4, 2)
    assert (q["prescribers"], q["pharmacies"]) == (2, 2)
    assert q["cumulative_days_supply"] == 120
    assert q["benzo_fill_dates"] == 1


def test_claims_outside_the_period_do_not_count():
    q = one(
        [
            rx("M1", plus(P0, -10), 180.0, 30),  # 90 MME into January, filled before p0
            rx("M1", plus(P0, 2), 30.0, 10, ndc=ALPRAZ),
            rx("M1", plus(P1, 1), 180.0, 30),  # filled after p1
        ]
    )
    assert q["opioid_claims"] == q["opioid_fill_dates"] == q["cumulative_days_supply"] == 0
    assert (q["ipsd"], q["treatment_days"], q["avg_mme"]) == (None, 0, 0.0)
    assert q["longest_high_dose_run"] == q["opioid_benzo_days"] == q["prescribers"] == 0
    assert q["benzo_fill_dates"] == 1


def test_days_supply_unclipped_and_treatment_clipped_to_p1():
    q = one([rx("M1", plus(P1, -4), 90.0, 30), rx("M1", plus(P1, -9), 2.0, 2)])
    assert q["cumulative_days_supply"] == 32
    assert q["ipsd"] == plus(P1, -9)
    assert q["treatment_days"] == 10  # p1 - 9 .. p1
    # 2 days at 15 MME, 3 days of nothing, 5 days at 45 MME
    assert q["avg_mme"] == pytest.approx((2 * 15 + 5 * 45) / 10)


def test_avg_mme_over_treatment_days_with_a_gap():
    # 30 MME on Mar 1-10, nothing on Mar 11-20, 60 MME on Mar 21-30
    q = one([rx("M1", D(2025, 3, 1), 20.0, 10), rx("M1", D(2025, 3, 21), 40.0, 10)])
    assert (q["ipsd"], q["treatment_days"]) == (D(2025, 3, 1), 30)
    assert q["avg_mme"] == pytest.approx(30.0)


HIGH_DOSE = [
    rx("M1", D(2025, 3, 1), 90.0, 30),  # 45 MME, Mar 1-30
    rx("M1", D(2025, 3, 11), 90.0, 30),  # 45 MME, Mar 11 - Apr 9: 90 on Mar 11-30
    rx("M1", D(2025, 3, 31), 60.0, 10),  # 90 MME, Mar 31 - Apr 9: 135 with the second
    rx("M1", D(2025, 6, 1), 120.0, 20),  # 90 MME, Jun 1-20: a shorter run
]


@pytest.mark.parametrize(
    ("high_dose_mme", "run_days"), [(90.0, 30), (90.0 + 5e-10, 30), (90.001, 10), (136.0, 0)]
)
def test_longest_high_dose_run(high_dose_mme, run_days):
    q = one(HIGH_DOSE, high_dose_mme=high_dose_mme)
    assert q["longest_high_dose_run"] == run_days


def test_opioid_benzo_days_and_benzo_fill_dates():
    q = one(
        [
            rx("M1", D(2025, 3, 1), 60.0, 30),  # Mar 1-30
            rx("M1", D(2025, 3, 1), 60.0, 30),  # the same days: counted once
            rx("M1", D(2025, 3, 21), 30.0, 30, ndc=ALPRAZ),  # Mar 21 - Apr 19
            rx("M1", D(2025, 3, 21), 30.0, 5, ndc=ALPRAZ),
            rx("M1", D(2025, 12, 29), 30.0, 30, ndc=ALPRAZ),  # clipped to p1
            rx("M1", D(2025, 12, 25), 60.0, 30),
        ]
    )
    assert q["benzo_fill_dates"] == 2
    assert q["opioid_benzo_days"] == 10 + 3


# --------------------------------------------------------------------------- exclusion


@pytest.mark.parametrize(
    ("codes", "exclusion"),
    [
        ([(D(2025, 2, 1), "C50.911"), (D(2025, 9, 1), "Z51.5")], 0),  # hospice first
        ([(D(2025, 9, 1), "D57.1"), (D(2025, 2, 1), "C50.911")], 1),  # then cancer
        ([(D(2025, 9, 1), "D57.1")], 2),
        ([(plus(P0, -1), "Z51.5"), (P1, "D57.1")], 2),  # hospice before P
        ([(plus(P0, -1), "Z51.5"), (plus(P1, 1), "C50.911"), (P0, "F11.20")], -1),
    ],
)
def test_exclusion_category_order(codes, exclusion):
    medical = [
        {"member_id": "M1", "service_date": d, "code_type": "ICD10CM", "code": c} for d, c in codes
    ]
    assert one([anchor()], medical)["exclusion"] == exclusion


def test_member_with_medical_rows_only():
    rows = run([anchor("M1")], [med("M2", 0, "ICD10CM", "C50.911")], periods=((D(2024, 1, 1), P1),))
    assert rows["M2", 0]["exclusion"] == 1 and rows["M2", 0]["opioid_claims"] == 0


# --------------------------------------------------------------------------- episode


def test_claim_before_p0_counts_in_the_negative_history_only():
    before = [rx("M1", plus(P0, -30), 60.0, 30)]  # covers p0 - 30 .. p0 - 1
    q = one([*before, rx("M1", plus(P0, 20), 60.0, 30)])
    assert (q["episode_start"], q["covered_30"], q["covered_62"]) == (None, 0, 0)
    assert q["opioid_claims"] == 1
    # earlier, it leaves the 60 days before p0 + 20 free
    q = one([rx("M1", plus(P0, -100), 60.0, 30), rx("M1", plus(P0, 20), 60.0, 30)])
    assert q["episode_start"] == plus(P0, 20)


@pytest.mark.parametrize(("prior_end", "episode"), [(-60, False), (-61, True), (-21, False)])
def test_negative_history_edge(prior_end, episode):
    e = plus(P0, 20)  # the prior claims are filled before p0 (-21: it ends on p0 - 1)
    prior = rx("M1", plus(e, prior_end - 9), 20.0, 10)  # covers e + prior_end - 9 .. e + prior_end
    q = one([prior, rx("M1", e, 60.0, 30)])
    assert q["episode_start"] == (e if episode else None)


def test_later_fill_can_start_the_episode():
    q = one(
        [
            rx("M1", plus(P0, -20), 60.0, 30),
            rx("M1", plus(P0, 5), 60.0, 30),  # covered before: ends p0 + 34
            rx("M1", plus(P0, 94), 60.0, 30),  # 60 days before: p0 + 34 is covered
            rx("M1", plus(P0, 200), 60.0, 30),  # 60 days before: none covered (p0 + 123 ends)
        ]
    )
    assert q["episode_start"] == plus(P0, 200)


@pytest.mark.parametrize(("offset", "found"), [(-61, True), (-60, False)])
def test_episode_start_no_later_than_p1_minus_61(offset, found):
    q = one([rx("M1", plus(P1, offset), 124.0, 62)])
    if found:
        assert (q["episode_start"], q["covered_30"], q["covered_62"]) == (plus(P1, -61), 30, 62)
    else:
        assert (q["episode_start"], q["covered_30"], q["covered_62"]) == (None, 0, 0)


def test_covered_days_of_the_episode():
    e = D(2025, 3, 1)
    q = one(
        [
            rx("M1", e, 20.0, 10),  # e .. e + 9
            rx("M1", e, 10.0, 5),  # the same days
            rx("M1", plus(e, 20), 60.0, 30),  # e + 20 .. e + 49
            rx("M1", plus(e, 62), 60.0, 30),  # after e + 61
        ]
    )
    assert (q["episode_start"], q["covered_30"], q["covered_62"]) == (e, 20, 40)


def test_episode_from_the_first_fill_date_with_negative_history_zero():
    q = one([rx("M1", plus(P0, -5), 60.0, 30), rx("M1", plus(P0, 3), 60.0, 30)],
            negative_history_days=0)  # fmt: skip
    # the claim filled before e covers e .. e + 21 but is not filled from e on
    assert (q["episode_start"], q["covered_30"]) == (plus(P0, 3), 30)


# --------------------------------------------------------------------------- periods


def test_several_periods_equal_single_period_runs():
    pharmacy = [
        *HIGH_DOSE,
        rx("M1", D(2024, 11, 20), 60.0, 30, prescriber="Q", pharmacy="R"),
        rx("M1", D(2025, 3, 5), 30.0, 30, ndc=ALPRAZ),
        rx("M2", D(2024, 12, 30), 200.0, 20, prescriber="Q"),
        rx("M2", D(2025, 7, 1), 60.0, 30, prescriber=None),
        rx("M3", D(2025, 6, 30), 60.0, 30),
    ]
    medical = [med("M2", 300, "ICD10CM", "C50.911"), med("M3", 400, "ICD10CM", "Z51.5")]
    spans = {"M2": [(D(2024, 3, 1), D(2025, 5, 31), 0), (D(2025, 6, 15), None, 1)]}
    births = {"M3": D(2007, 3, 1)}
    periods = (
        (D(2024, 1, 1), D(2024, 12, 31)),
        (D(2025, 1, 1), D(2025, 6, 30)),
        (D(2025, 1, 1), D(2025, 12, 31)),
        (D(2025, 3, 1), D(2025, 3, 31)),
    )
    together = run(pharmacy, medical, spans=spans, births=births, periods=periods)
    for j, period in enumerate(periods):
        alone = run(pharmacy, medical, spans=spans, births=births, periods=(period,))
        for member in ("M1", "M2", "M3"):
            got = dict(together[member, j], period_index=0)
            assert got == alone[member, 0], (member, period)
    assert together["M1", 2]["opioid_claims"] == 4 and together["M2", 0]["opioid_claims"] == 1


# --------------------------------------------------------------------------- rules and detail


def _flag_inputs(**values):
    q = {
        "age": 40, "enrolled": True, "excluded": False, "opioid_fill_dates": 2,
        "cumulative_days_supply": 15, "avg_mme": 0.0, "longest_high_dose_run": 0,
        "prescribers": 0, "pharmacies": 0, "benzo_fill_dates": 0, "opioid_benzo_days": 0,
        "has_episode": False, "covered_30": 0, "covered_62": 0,
    }  # fmt: skip
    q.update(values)
    return {k: np.array([v]) for k, v in q.items()}


@pytest.mark.parametrize(
    ("values", "measure", "expected"),
    [
        ({}, "high_dose_average", (True, True, False)),
        ({"avg_mme": 90.0 - 5e-10}, "high_dose_average", (True, True, True)),
        ({"avg_mme": 89.999}, "high_dose_average", (True, True, False)),
        ({"avg_mme": 95.0, "excluded": True}, "high_dose_average", (True, False, False)),
        ({"age": 17, "avg_mme": 95.0}, "high_dose_average", (False, False, False)),
        ({"age": -1, "avg_mme": 95.0}, "high_dose_average", (False, False, False)),
        ({"enrolled": False}, "high_dose_average", (False, False, False)),
        ({"opioid_fill_dates": 1}, "multiple_prescribers", (False, False, False)),
        ({"cumulative_days_supply": 14}, "multiple_prescribers", (False, False, False)),
        ({"longest_high_dose_run": 90}, "high_dose_sustained", (True, True, True)),
        ({"longest_high_dose_run": 89}, "high_dose_sustained", (True, True, False)),
        ({"prescribers": 4}, "multiple_prescribers", (True, True, True)),
        ({"prescribers": 4, "pharmacies": 3}, "multiple_providers", (True, True, False)),
        ({"prescribers": 4, "pharmacies": 4}, "multiple_providers", (True, True, True)),
        ({"pharmacies": 4}, "multiple_pharmacies", (True, True, True)),
        ({"prescribers": 4, "pharmacies": 4, "longest_high_dose_run": 89},
         "high_dose_multiple_providers", (True, True, False)),
        ({"prescribers": 4, "pharmacies": 4, "longest_high_dose_run": 90},
         "high_dose_multiple_providers", (True, True, True)),
        ({"benzo_fill_dates": 2, "opioid_benzo_days": 30}, "opioid_benzodiazepine",
         (True, True, True)),
        ({"benzo_fill_dates": 1, "opioid_benzo_days": 30}, "opioid_benzodiazepine",
         (True, True, False)),
        ({"opioid_fill_dates": 0}, "continued_use_15_of_30", (False, False, False)),
        ({"opioid_fill_dates": 0, "has_episode": True, "covered_30": 15},
         "continued_use_15_of_30", (True, True, True)),
        ({"has_episode": True, "covered_30": 14}, "continued_use_15_of_30", (True, True, False)),
        ({"has_episode": True, "covered_62": 31}, "continued_use_31_of_62", (True, True, True)),
        ({"has_episode": True, "covered_62": 30, "excluded": True}, "continued_use_31_of_62",
         (True, False, False)),
    ],
)  # fmt: skip
def test_measure_flags(values, measure, expected):
    flags = measure_flags(_flag_inputs(**values), settings())
    assert tuple(flags) == MEASURES
    assert tuple(bool(a[0]) for a in flags[measure]) == expected


def _detail(pharmacy, medical=None, member_type="string", periods=YEAR, spans=None):
    claims = encode(pharmacy, medical, member_type)
    ids = claims.member_ids.to_pylist()
    days = np.array([[day_of(a), day_of(b)] for a, b in periods], np.int32)
    birth_day = np.full(len(ids), day_of(ADULT), np.int32)
    q = measure_claims(claims, member_spans(ids, spans or {}), birth_day, days, settings())
    return detail_table(claims.member_ids, q, days, ("commercial", "part_d"), settings())


def test_detail_rows_columns_and_order():
    h1 = (P0, D(2025, 6, 30))
    pharmacy = [
        rx("B", D(2025, 2, 1)), rx("B", D(2025, 3, 1)),  # eligible in both periods, excluded
        rx("A", D(2025, 6, 1)), rx("A", D(2025, 7, 1)),  # eligible in the year only
        rx("C", D(2025, 12, 1), 10.0, 10),  # one fill, too late for an episode: never
        rx("D", D(2024, 10, 1)), rx("D", D(2025, 1, 1)),  # continued use only
    ]  # fmt: skip
    medical = [{"member_id": "B", "service_date": D(2025, 2, 2), "code_type": "ICD10CM",
                "code": "C50.911"}]  # fmt: skip
    table = _detail(pharmacy, medical, periods=(h1, YEAR[0]), spans={"A": [(EARLY, None, 1)]})
    assert tuple(table.column_names) == DETAIL_COLUMNS
    assert table.schema.field("member_id").type == pa.string()
    types_ = {f.name: str(f.type) for f in table.schema}
    assert types_["period_start"] == types_["ipsd"] == types_["episode_start"] == "date32[day]"
    assert types_["avg_mme"] == "double" and types_["age"] == types_["covered_62"] == "int64"
    assert types_["exclusion"] == types_["product"] == "string"
    assert {types_[c] for c in DETAIL_COLUMNS[-18:]} == {"bool"}
    rows = table.to_pylist()
    got = [(r["member_id"], r["period_end"], r["product"], r["exclusion"]) for r in rows]
    assert got == [
        ("A", P1, "part_d", None),
        ("B", h1[1], "commercial", "cancer"),
        ("B", P1, "commercial", "cancer"),
        ("D", h1[1], "commercial", None),
        ("D", P1, "commercial", None),
    ]
    assert {r["period_start"] for r in rows} == {P0}
    a, b, _, d, _ = rows
    assert a["high_dose_average_denominator"] and a["continued_use_15_of_30_numerator"]
    assert a["ipsd"] == a["episode_start"] == D(2025, 6, 1) and a["opioid_fill_dates"] == 2
    assert not b["high_dose_average_denominator"] and b["episode_start"] == D(2025, 2, 1)
    assert not d["high_dose_average_denominator"] and d["continued_use_15_of_30_denominator"]
    assert d["opioid_claims"] == 1 and d["covered_30"] == 30


def test_detail_keeps_integer_member_ids_and_can_be_empty():
    table = _detail(
        [rx(7, D(2025, 2, 1)), rx(7, D(2025, 3, 1)), rx(3, D(2025, 1, 1))], member_type="int64"
    )
    assert table.schema.field("member_id").type == pa.int64()
    assert table.column("member_id").to_pylist() == [3, 7]
    empty = _detail([anchor()])
    assert empty.num_rows == 0 and tuple(empty.column_names) == DETAIL_COLUMNS


# --------------------------------------------------------------------------- arguments, compile


def test_arguments_of_another_dtype_are_refused():
    claims = encode([anchor()])
    fills = kc.MemberFills(
        claims.fill_offsets, claims.start, claims.end, claims.role, claims.mme,
        claims.prescriber, claims.pharmacy, int(claims.n_prescribers), int(claims.n_pharmacies),
    )  # fmt: skip
    events = kc.MemberEvents(claims.med_offsets, claims.med_day, claims.med_mask)
    spans = member_spans(["M1"], {})
    from rxrisk.kernels.measures_containers import MeasureParams

    params = MeasureParams(np.array([[0, 10]], np.int32), 1, 45, 90.0, 60, 64, 16, 32, 1)
    out = MeasureOutputs.filled(1)
    check_measure_arguments(fills, events, spans, params, out)
    wide = spans._replace(span_start=spans.span_start.astype(np.int64))
    with pytest.raises(TypeError, match="MemberSpans.span_start"):
        check_measure_arguments(fills, events, wide, params, out)
    with pytest.raises(TypeError, match="MeasureParams.max_gaps"):
        check_measure_arguments(fills, events, spans, params._replace(max_gaps=np.int64(1)), out)
    with pytest.raises(ValueError, match="MeasureOutputs.ints"):
        check_measure_arguments(fills, events, spans, params, MeasureOutputs.filled(2))


_CHILD = """
import json, sys
import numpy as np
from rxrisk.kernels._jit import Kernel
import pyarrow.parquet as pq
import rxrisk
from rxrisk.engines.local import configure, encode_book, ingest_book
from rxrisk.kernels import measures, timeline
from rxrisk.kernels.measures_containers import OPEN_END, MemberSpans
from rxrisk.quality.compute import measure_claims
from rxrisk.quality.settings import MeasureSettings

pharmacy = pq.read_table(sys.argv[1])
rxrisk.score(pharmacy, as_of="2025-12-31")
setup = configure(as_of="2025-12-31")
_, selected = ingest_book(pharmacy, None, setup, all_members=False)
claims = encode_book(selected, setup)
n = len(claims.member_ids)
spans = MemberSpans(np.arange(n + 1, dtype=np.intp), np.zeros(n, np.int32),
                    np.full(n, OPEN_END, np.int32), np.zeros(n, np.int32))
periods = np.array([[20089, 20453], [20270, 20453]])
measure_claims(claims, spans, np.zeros(n, np.int32), periods, MeasureSettings())
found = {}
for module in (measures, timeline):
    for name, value in vars(module).items():
        if isinstance(value, Kernel) and value.signatures:
            found[module.__name__.rsplit(".", 1)[1] + "." + name] = len(value.signatures)
print(json.dumps(found))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compilation")
def test_measures_compile_one_specialisation(small_book, tmp_path):
    pq.write_table(small_book[0], tmp_path / "pharmacy.parquet")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))  # empty: everything compiles
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "pharmacy.parquet")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "measures.measure_chunk" in found and "measures.episode" in found
    # the score and the measures share the timeline builder's one specialisation
    assert found.get("timeline.build_timeline") == 1
    assert {name: n for name, n in found.items() if n > 1} == {}

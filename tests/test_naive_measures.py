"""The plain-Python measures reference (tests/naive_measures.py) against the hand cases'
expectations (tests/measure_cases.py), worked out by hand: what makes the reference trustworthy."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from measure_cases import CASES, DRUGS, P2025, MeasureCase, d, person, rx, span, two_fills
from naive_measures import (
    DETAIL_COLUMNS,
    MEASURES,
    SUMMARY_COLUMNS,
    Settings,
    age_on,
    default_reference,
    naive_measures,
    parse_date,
)


def run(case: MeasureCase, periods=None, settings=None):
    return naive_measures(
        case.pharmacy,
        case.medical,
        case.eligibility,
        case.members,
        case.periods if periods is None else periods,
        settings,
    )


def same(got, want) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return type(got) is type(want) and got == want


def test_the_cases_drugs_are_what_they_assume():
    ref = default_reference()
    for ndc, facts in DRUGS.items():
        for key, value in facts.items():
            assert ref[ndc][key] == value, (ndc, key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case_expectations(name):
    case = CASES[name]
    result = run(case)
    for (member, (p0, p1)), want in case.expected.items():
        record = result.records[(member, p0, p1)]
        diffs = {k: (record[k], v) for k, v in want.items() if not same(record[k], v)}
        assert not diffs, f"{name} {member} {p0}: (reference, hand) {diffs}"
    rows = {
        (r["period_start"], r["period_end"], r["measure"], r["product"]): r for r in result.summary
    }
    for ((p0, p1), measure, product), want in case.summary.items():
        row = rows[(p0, p1, measure, product)]
        diffs = {k: (row[k], v) for k, v in want.items() if not same(row[k], v)}
        assert not diffs, f"{name} summary {measure} {product}: {diffs}"
    for block, want in case.audit.items():
        got = result.audit[block]
        assert got["rows_read"] == want["rows_read"]
        assert got["buckets"] == want["buckets"]
        assert got["rejected_by_reason"] == want["rejected_by_reason"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case_tables_are_consistent(name):
    case = CASES[name]
    result = run(case)
    detail = result.detail
    # one row per (member, period) eligible for any measure, in order, columns in order
    want_keys = [k for k, r in result.records.items() if r["in_detail"]]
    assert [(r["member_id"], r["period_start"], r["period_end"]) for r in detail] == want_keys
    for row in detail:
        assert tuple(row) == DETAIL_COLUMNS
        for m in MEASURES:
            assert row[f"{m}_denominator"] or not row[f"{m}_numerator"]
            assert not (row[f"{m}_denominator"] and row["exclusion"] is not None)
        assert row["product"] is not None and row["age"] >= 18
    # summary: every product of the period's detail rows plus "all", in order
    for p0, p1 in result.periods:
        products = sorted(
            {r["product"] for r in detail if (r["period_start"], r["period_end"]) == (p0, p1)}
        )
        got = [
            (r["measure"], r["product"])
            for r in result.summary
            if (r["period_start"], r["period_end"]) == (p0, p1)
        ]
        assert got == [(m, p) for m in MEASURES for p in ["all", *products]]
    for row in result.summary:
        assert tuple(row) == SUMMARY_COLUMNS
        assert row["eligible"] == row["excluded"] + row["denominator"]
        assert row["rate"] == (
            row["numerator"] / row["denominator"] if row["denominator"] else None
        )
    assert result.audit["members_eligible"] == len({r["member_id"] for r in detail})


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if len(c.periods) > 1))
def test_several_periods_equal_single_period_runs(name):
    case = CASES[name]
    together = run(case)
    detail, summary = [], []
    for period in case.periods:
        one = run(case, [period])
        detail += one.detail
        summary += one.summary
    detail.sort(
        key=lambda r: (
            isinstance(r["member_id"], str),
            r["member_id"],
            r["period_start"],
            r["period_end"],
        )
    )
    assert together.detail == detail
    assert together.summary == summary


def test_age_completed_years_and_29_february():
    born = d(2004, 2, 29)
    assert age_on(born, d(2022, 2, 28)) == 17
    assert age_on(born, d(2022, 3, 1)) == 18
    assert age_on(born, d(2024, 2, 28)) == 19
    assert age_on(born, d(2024, 2, 29)) == 20
    assert age_on(d(2007, 1, 1), d(2025, 1, 1)) == 18
    assert age_on(d(2007, 1, 2), d(2025, 1, 1)) == 17
    assert age_on(d(2026, 1, 1), d(2025, 1, 1)) == -1
    assert age_on(None, d(2025, 1, 1)) is None


def test_date_forms():
    assert parse_date("2025-03-15") == d(2025, 3, 15)
    assert parse_date(" 20250315 ") == d(2025, 3, 15)
    assert parse_date(20250315) == d(2025, 3, 15)
    assert parse_date(dt.datetime(2025, 3, 15, 23, 59)) == d(2025, 3, 15)
    for bad in ("2025-02-30", "20250230", "15/03/2025", "", None, True, 2025):
        assert parse_date(bad) is None, bad


def test_settings_move_the_thresholds():
    # Two gaps of 10 days: not enrolled by default, enrolled with max_gaps = 2.
    pharmacy = two_fills("A")
    eligibility = [
        span("A", d(2024, 1, 1), d(2025, 3, 31)),
        span("A", d(2025, 4, 11), d(2025, 6, 30)),
        span("A", d(2025, 7, 11)),
    ]
    members = [person("A")]
    key = ("A", *P2025)
    default = naive_measures(pharmacy, None, eligibility, members, [P2025])
    assert default.records[key]["enrolled"] is False
    loose = naive_measures(pharmacy, None, eligibility, members, [P2025], Settings(max_gaps=2))
    assert loose.records[key]["enrolled"] is True
    # 15 MME: high-dose with a threshold of 15, over 30 + 30 days with a gap day between.
    low = Settings(high_dose_mme=15.0, high_dose_average_mme=14.0, high_dose_run_days=30)
    record = naive_measures(pharmacy, None, eligibility, members, [P2025], low).records[key]
    assert record["longest_high_dose_run"] == 30
    assert record["high_dose_average_numerator"] is False  # not enrolled
    # negative history of 0 days: every opioid fill date can start an episode
    rows = [rx("B", d(2025, 1, 1), days_supply=60, quantity=120.0), rx("B", d(2025, 2, 1))]
    people, spans = [person("B")], [span("B")]
    none = naive_measures(rows, None, spans, people, [P2025], Settings(negative_history_days=0))
    assert none.records[("B", *P2025)]["episode_start"] == d(2025, 1, 1)


def test_periods_are_sorted_and_measured_once():
    case = CASES["two_products"]
    p2024, p2025 = case.periods
    again = run(case, [p2025, p2024, p2025, 2024])
    assert again.periods == [p2024, p2025]
    assert again.detail == run(case).detail


def test_the_float_case_sits_just_off_90():
    # the "at 90" member of avg_mme_under_and_at_90 relies on the 1e-9 tolerance
    case = CASES["avg_mme_under_and_at_90"]
    avg = run(case).records[("C", *P2025)]["avg_mme"]
    assert avg != 90.0 and abs(avg - 90.0) < 1e-9

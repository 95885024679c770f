"""The engine (``rxrisk.measures``) held to the plain-Python measures reference
(tests/naive_measures.py): every hand case of tests/measure_cases.py (detail, summary, audit blocks
and the cases' own expectations), random books (hypothesis: few members, claims and spans near the
period boundaries, several periods) and a small generated book. RXRISK_HYPOTHESIS_EXAMPLES scales
the number of random examples."""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import asdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from measure_cases import (
    BENZO,
    CASES,
    FENT25,
    OXY5,
    OXY30,
    MeasureCase,
    case_tables,
    d,
    med,
    person,
    rx,
    span,
    year,
)
from naive_measures import DETAIL_COLUMNS, MEASURES, SUMMARY_COLUMNS, Settings, naive_measures

import rxrisk

EXAMPLES = int(os.environ.get("RXRISK_HYPOTHESIS_EXAMPLES", "60"))
BLOCKS = ("pharmacy", "medical", "eligibility", "members")
BLOCK_KEYS = ("rows_read", "buckets", "rejected_by_reason")
HYPOTHESIS_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INT_COLUMNS = [c for c in DETAIL_COLUMNS if c not in ("member_id", "period_start", "period_end",
               "product", "exclusion", "ipsd", "avg_mme", "episode_start")
               and not c.endswith(("_denominator", "_numerator"))]  # fmt: skip


# --------------------------------------------------------------------------- running both


def engine(case: MeasureCase, periods=None, measure_settings: Settings | None = None, **kw):
    tables = case_tables(case)
    if measure_settings is not None:
        from rxrisk.quality.settings import MeasureSettings

        kw["config"] = MeasureSettings(**asdict(measure_settings))
    return rxrisk.measures(
        tables["pharmacy"],
        tables["medical"],
        eligibility=tables["eligibility"],
        members=tables["members"],
        periods=list(case.periods if periods is None else periods),
        max_reject_share=1.0,  # random books hold more bad rows than a real book
        **kw,
    )


def reference(case: MeasureCase, periods=None, measure_settings: Settings | None = None):
    return naive_measures(
        case.pharmacy,
        case.medical,
        case.eligibility,
        case.members,
        case.periods if periods is None else periods,
        measure_settings,
    )


def same(got, want) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return type(got) is type(want) and got == want


def assert_rows_equal(got_rows, want_rows, key_columns, what):
    got_keys = [tuple(r[k] for k in key_columns) for r in got_rows]
    want_keys = [tuple(r[k] for k in key_columns) for r in want_rows]
    assert got_keys == want_keys, f"{what}: rows differ"
    for got, want in zip(got_rows, want_rows, strict=True):
        assert list(got) == list(want), f"{what}: columns differ"
        diffs = {k: (got[k], want[k]) for k in want if not same(got[k], want[k])}
        assert not diffs, f"{what} {[want[k] for k in key_columns]}: (engine, reference) {diffs}"


def assert_schemas(result, member_type: str) -> None:
    detail = result.detail.schema
    assert tuple(detail.names) == DETAIL_COLUMNS
    want_member = pa.int64() if member_type == "int64" else pa.string()
    assert detail.field("member_id").type == want_member
    for name in ("period_start", "period_end", "ipsd", "episode_start"):
        assert detail.field(name).type == pa.date32(), name
    for name in INT_COLUMNS:
        assert detail.field(name).type == pa.int64(), name
    assert detail.field("avg_mme").type == pa.float64()
    for m in MEASURES:
        for part in ("denominator", "numerator"):
            assert detail.field(f"{m}_{part}").type == pa.bool_()
    summary = result.summary.schema
    assert tuple(summary.names) == SUMMARY_COLUMNS
    for name in ("eligible", "excluded", "denominator", "numerator"):
        assert summary.field(name).type == pa.int64(), name
    assert summary.field("rate").type == pa.float64()
    assert summary.field("period_start").type == pa.date32()


def assert_engine_matches(case: MeasureCase, periods=None, measure_settings=None, **kw):
    want = reference(case, periods, measure_settings)
    got = engine(case, periods, measure_settings, **kw)
    assert_schemas(got, case.member_type)
    assert_rows_equal(
        got.detail.to_pylist(), want.detail, ("member_id", "period_start", "period_end"), "detail"
    )
    assert_rows_equal(
        got.summary.to_pylist(),
        want.summary,
        ("period_start", "period_end", "measure", "product"),
        "summary",
    )
    for block in BLOCKS:
        got_block = {k: got.audit[block][k] for k in BLOCK_KEYS}
        assert got_block == {k: want.audit[block][k] for k in BLOCK_KEYS}, block
    assert got.audit["members_eligible"] == want.audit["members_eligible"]
    return got


# --------------------------------------------------------------------------- hand cases


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case(name):
    case = CASES[name]
    got = assert_engine_matches(case)
    # and the case's hand-worked values, where the engine shows them
    rows = {(r["member_id"], r["period_start"], r["period_end"]): r for r in got.detail.to_pylist()}
    for (member, (p0, p1)), want in case.expected.items():
        row = rows.get((member, p0, p1))
        if "in_detail" in want:
            assert (row is not None) == want["in_detail"], (member, p0)
        if row is None:
            continue
        diffs = {k: (row[k], v) for k, v in want.items() if k in row and not same(row[k], v)}
        assert not diffs, f"{member} {p0}: (engine, hand) {diffs}"
    summary = {
        (r["period_start"], r["period_end"], r["measure"], r["product"]): r
        for r in got.summary.to_pylist()
    }
    for ((p0, p1), measure, product), want in case.summary.items():
        row = summary[(p0, p1, measure, product)]
        assert all(same(row[k], v) for k, v in want.items()), (measure, product, row, want)
    for block, want in case.audit.items():
        assert {k: got.audit[block][k] for k in BLOCK_KEYS} == want, block


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case_streamed(name):
    # the streaming route gives the same tables
    assert_engine_matches(CASES[name], stream=True)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if len(c.periods) > 1))
def test_several_periods_equal_single_period_runs(name):
    case = CASES[name]
    together = engine(case)
    detail, summary = [], []
    for period in case.periods:
        one = engine(case, [period])
        detail += one.detail.to_pylist()
        summary += one.summary.to_pylist()
    detail.sort(key=lambda r: (r["member_id"], r["period_start"], r["period_end"]))
    assert together.detail.to_pylist() == detail
    assert together.summary.to_pylist() == summary


def test_all_hand_cases_as_one_book():
    # every string-keyed case's members in one book (ids prefixed by the case), one period
    pharmacy, medical, eligibility, members = [], [], [], []
    for case in CASES.values():
        if case.member_type != "string" or case.date_type != "date32":
            continue
        if case.periods != [year(2025)]:
            continue

        def named(row, case=case):
            row = dict(row)
            if isinstance(row["member_id"], str) and row["member_id"].strip():
                row["member_id"] = f"{case.name}/{row['member_id'].strip()}"
            return row

        pharmacy += [named(r) for r in case.pharmacy]
        medical += [named(r) for r in case.medical or []]
        eligibility += [named(r) for r in case.eligibility]
        members += [named(r) for r in case.members]
    book = MeasureCase("book", pharmacy, eligibility, members, [year(2025)], medical)
    assert_engine_matches(book)


def test_non_default_settings():
    loose = Settings(
        max_gaps=2,
        max_gap_days=10,
        min_age=17,
        min_opioid_fill_dates=1,
        min_cumulative_days_supply=14,
        high_dose_mme=45.0,
        high_dose_average_mme=15.0,
        high_dose_run_days=60,
        min_prescribers=3,
        min_pharmacies=3,
        min_benzo_fill_dates=1,
        min_opioid_benzo_days=29,
        negative_history_days=30,
        min_covered_30=14,
        min_covered_62=30,
    )
    for name in ("two_gaps", "age_17_vs_18", "benzo_overlap_29_vs_30", "negative_history_60_vs_61",
                 "prescribers_and_pharmacies_3_vs_4", "covered_14_15_of_30_and_30_31_of_62",
                 "high_dose_run_89_vs_90", "days_supply_14_vs_15"):  # fmt: skip
        assert_engine_matches(CASES[name], measure_settings=loose)


# --------------------------------------------------------------------------- random books

PERIOD_PLANS = [
    [year(2025)],
    [year(2024), year(2025)],
    [(d(2025, 3, 1), d(2025, 8, 31))],
    [(d(2024, 7, 1), d(2025, 6, 30)), (d(2025, 7, 1), d(2026, 6, 30))],
    [year(2024), (d(2025, 1, 1), d(2025, 6, 30)), (d(2025, 7, 1), d(2025, 12, 31))],
    [(d(2024, 7, 1), d(2025, 6, 30)), (d(2025, 1, 1), d(2025, 6, 30)), year(2025)],  # overlapping
]
# (ndc, quantity, days_supply): 15, 90, 45 and 60 MME opioids, patches, benzodiazepines
DRUG_FILLS = [
    (OXY5, 60.0, 30),
    (OXY5, 28.0, 14),
    (OXY5, 30.0, 15),
    (OXY30, 60.0, 30),
    (OXY30, 58.0, 29),
    (OXY30, 90.0, 90),
    (OXY30, 20.0, 10),
    (FENT25, 10.0, 30),
    (FENT25, 1.5, 30),
    (BENZO, 30.0, 30),
    (BENZO, 15.0, 15),
    (BENZO, 14.0, 14),
]
PRODUCTS = [None, "", "commercial", "part_d", " part_d ", "medicaid"]
CODES = [("ICD10CM", "Z51.5"), ("ICD10CM", "C50.911"), ("ICD10CM", "D57.1"),
         ("ICD10CM", "D57.3"), ("ICD10CM", "F11.20"), ("REV", "0651"), ("POS", "34")]  # fmt: skip
DAY = dt.timedelta(days=1)


def _boundaries(periods) -> list[dt.date]:
    out = []
    for p0, p1 in periods:
        for base, offsets in ((p0, (-61, -60, -1, 0, 1, 44, 45, 46)), (p1, (-61, -60, -1, 0, 1))):
            out += [base + k * DAY for k in offsets]
    return out


PRESCRIBERS = [None, "", "P1", "P2", "P3", "P4", "P5", " P2 "]
PHARMACIES = [None, "R1", "R2", "R3", "R4", "R5", " R4"]
CHAIN_DRUGS = [(OXY30, 60.0, 30), (OXY30, 58.0, 29), (OXY5, 60.0, 30), (FENT25, 10.0, 30),
               (BENZO, 30.0, 30)]  # fmt: skip


def _odd(draw, row: dict, m: int, pharmacy: list) -> None:
    """Now and then a reversed claim or a rejected row instead of a used one."""
    if draw(st.integers(0, 11)) == 0:
        kind = draw(st.sampled_from(["reversed", "no_member", "bad_quantity"]))
        row["claim_id"] = f"K{m}"
        if kind == "reversed":
            pharmacy.append(dict(row, claim_status="R"))
        elif kind == "no_member":
            row["member_id"] = None
        else:
            row["quantity"] = 0.0
    pharmacy.append(row)


def _fills(draw, member, m, a_day, max_fills, pharmacy):
    """Chains of refills (about every days-supply, with jitter) and scattered fills."""
    for _ in range(draw(st.integers(0, 3))):
        ndc, quantity, days_supply = draw(st.sampled_from(CHAIN_DRUGS))
        day = a_day()
        for _ in range(draw(st.integers(1, 5))):
            row = rx(member, day, ndc, quantity, days_supply, draw(st.sampled_from(PRESCRIBERS)),
                     draw(st.sampled_from(PHARMACIES)))  # fmt: skip
            _odd(draw, row, m, pharmacy)
            day = day + (days_supply + draw(st.integers(-5, 3))) * DAY
    for _ in range(draw(st.integers(0, max_fills))):
        ndc, quantity, days_supply = draw(st.sampled_from(DRUG_FILLS))
        row = rx(member, a_day(), ndc, quantity, days_supply, draw(st.sampled_from(PRESCRIBERS)),
                 draw(st.sampled_from(PHARMACIES)))  # fmt: skip
        _odd(draw, row, m, pharmacy)


def _spans(draw, member, periods, a_day, long_ago) -> list[dict]:
    """Enrolled throughout, with gaps of 44 to 47 days, random spans, or none."""
    product = st.sampled_from(PRODUCTS)
    mode = draw(st.sampled_from(["full", "full", "gap", "gap", "random", "none"]))
    if mode == "full":
        return [span(member, long_ago, None, draw(product))]
    if mode == "gap":
        p0, p1 = draw(st.sampled_from(periods))
        gap_start = p0 + draw(st.integers(0, (p1 - p0).days)) * DAY
        gap = draw(st.sampled_from([1, 10, 44, 45, 46, 47]))
        rows = [span(member, long_ago, gap_start - DAY, draw(product))]
        rows.append(span(member, gap_start + gap * DAY, None, draw(product)))
        if draw(st.booleans()):  # an overlapping span
            rows.append(span(member, a_day(), None, draw(product)))
        return rows
    rows = []
    if mode == "random":
        for _ in range(draw(st.integers(1, 3))):
            start = a_day() if draw(st.booleans()) else long_ago
            end = None if draw(st.booleans()) else start + draw(st.integers(0, 400)) * DAY
            if draw(st.integers(0, 9)) == 0:
                start, end = None, start  # rejected: no start
            rows.append(span(member, start, end, draw(product)))
    return rows


def _births(draw, member, periods) -> list[dict]:
    if draw(st.integers(0, 9)) < 6:
        return [person(member, d(1970, 1, 1))]
    rows = []
    for _ in range(draw(st.integers(0, 2))):
        p0 = draw(st.sampled_from(periods))[0]
        births = [d(1970, 1, 1), d(p0.year - 18, p0.month, min(p0.day, 28)), d(2004, 2, 29),
                  d(2007, 2, 28), d(p0.year - 18, 12, 31), None]  # fmt: skip
        rows.append(person(member, draw(st.sampled_from(births))))
    return rows


@st.composite
def measure_books(draw, max_members: int = 4, max_fills: int = 8):
    """Random MeasureCase: claims, spans, births and codes near the periods' boundaries."""
    int_ids = draw(st.integers(0, 3)) == 0
    periods = draw(st.sampled_from(PERIOD_PLANS))
    edges = _boundaries(periods)
    first, last = periods[0][0] - 90 * DAY, periods[-1][1] + 10 * DAY

    def a_day():
        if draw(st.booleans()):
            return draw(st.sampled_from(edges)) + draw(st.integers(-3, 3)) * DAY
        return first + draw(st.integers(0, (last - first).days)) * DAY

    pharmacy, eligibility, members, medical = [], [], [], []
    for m in range(draw(st.integers(1, max_members))):
        member = 1000 + m if int_ids else draw(st.sampled_from([f"M{m}", f" M{m} "]))
        _fills(draw, member, m, a_day, max_fills, pharmacy)
        eligibility += _spans(draw, member, periods, a_day, first - 400 * DAY)
        members += _births(draw, member, periods)
        for _ in range(draw(st.integers(0, 2))):
            code_type, code = draw(st.sampled_from(CODES))
            medical.append(med(member, a_day(), code_type, code))
    pharmacy = draw(st.permutations(pharmacy)) if pharmacy else pharmacy
    return MeasureCase(
        "random",
        list(pharmacy),
        eligibility,
        members,
        periods,
        medical if (medical or draw(st.booleans())) else None,
        member_type="int64" if int_ids else "string",
    )


@HYPOTHESIS_SETTINGS
@given(measure_books())
def test_random_books(case):
    assert_engine_matches(case)


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(measure_books(max_members=2, max_fills=6))
def test_random_books_one_period_at_a_time(case):
    together = engine(case).detail.to_pylist()
    separate = []
    for period in case.periods:
        separate += engine(case, [period]).detail.to_pylist()
    separate.sort(key=lambda r: (r["member_id"], r["period_start"], r["period_end"]))
    assert together == separate


# --------------------------------------------------------------------------- a generated book


@pytest.fixture(scope="module")
def generated_book(tmp_path_factory):
    from rxrisk.synthetic.writer import generate_book

    out = tmp_path_factory.mktemp("book")
    generate_book(out, members=150, seed=14)
    if not (out / "eligibility.parquet").exists() or not (out / "members.parquet").exists():
        pytest.skip("the generator writes no eligibility / members yet")
    return {name: pq.read_table(out / f"{name}.parquet") for name in BLOCKS}


def test_generated_book(generated_book):
    t = generated_book
    rows = {name: table.to_pylist() for name, table in t.items()}
    member_type = "int64" if pa.types.is_integer(t["pharmacy"]["member_id"].type) else "string"
    periods = [(d(2025, 1, 1), d(2025, 6, 30)), year(2025)]
    want = naive_measures(rows["pharmacy"], rows["medical"], rows["eligibility"], rows["members"],
                          periods)  # fmt: skip
    got = rxrisk.measures(
        t["pharmacy"],
        t["medical"],
        eligibility=t["eligibility"],
        members=t["members"],
        periods=periods,
        max_reject_share=1.0,
    )
    assert_schemas(got, member_type)
    assert want.detail, "the generated book should have members in the measures"
    assert_rows_equal(
        got.detail.to_pylist(), want.detail, ("member_id", "period_start", "period_end"), "detail"
    )
    assert_rows_equal(
        got.summary.to_pylist(),
        want.summary,
        ("period_start", "period_end", "measure", "product"),
        "summary",
    )
    for block in BLOCKS:
        assert {k: got.audit[block][k] for k in BLOCK_KEYS} == {
            k: want.audit[block][k] for k in BLOCK_KEYS
        }, block


@st.composite
def other_settings(draw):
    """Measures settings away from the defaults (thresholds at and around the usual ones)."""
    return Settings(
        max_gaps=draw(st.integers(0, 3)),
        max_gap_days=draw(st.sampled_from([0, 1, 10, 45, 60])),
        min_age=draw(st.sampled_from([0, 17, 18, 21])),
        min_opioid_fill_dates=draw(st.integers(1, 3)),
        min_cumulative_days_supply=draw(st.sampled_from([1, 15, 30, 60])),
        high_dose_mme=draw(st.sampled_from([15.0, 50.0, 90.0, 120.0])),
        high_dose_average_mme=draw(st.sampled_from([15.0, 50.0, 90.0])),
        high_dose_run_days=draw(st.sampled_from([1, 30, 60, 90])),
        min_prescribers=draw(st.integers(1, 5)),
        min_pharmacies=draw(st.integers(1, 5)),
        min_benzo_fill_dates=draw(st.integers(1, 3)),
        min_opioid_benzo_days=draw(st.sampled_from([1, 15, 30])),
        negative_history_days=draw(st.sampled_from([0, 1, 30, 60, 90])),
        min_covered_30=draw(st.sampled_from([1, 15, 30])),
        min_covered_62=draw(st.sampled_from([1, 31, 62])),
    )


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(measure_books(max_members=3), other_settings())
def test_random_books_with_other_settings(case, measure_settings):
    assert_engine_matches(case, measure_settings=measure_settings)

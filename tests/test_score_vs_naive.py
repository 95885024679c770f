"""The engine (rxrisk.score) held to the naive oracle (tests/naive.py).

Every hand case of tests/cases.py, several as-of dates per call, and random scenarios
(hypothesis). RXRISK_HYPOTHESIS_EXAMPLES scales the number of random examples.
"""

from __future__ import annotations

import math
import os

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rxrisk
from rxrisk.config.rules import load_rules

from cases import (
    CASES,
    Case,
    combined_book,
    day,
    fill,
    medical_table,
    pharmacy_table,
    reference_dict,
    reference_table,
    scenarios,
)
from naive import FLAGS, MME_DEFINITIONS, column_names, naive_score

REF = reference_dict()
EXAMPLES = int(os.environ.get("RXRISK_HYPOTHESIS_EXAMPLES", "100"))
AUDIT_BLOCK_KEYS = ("rows_read", "buckets", "rejected_by_reason")
HYPOTHESIS_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def rules_with(definitions) -> rxrisk.config.rules.RuleSet | None:
    """The default rule set with ``[metrics] mme_definitions = definitions`` (None: default)."""
    if not definitions:
        return None
    rules = load_rules()
    metrics = msgspec.structs.replace(rules.metrics, mme_definitions=list(definitions))
    return msgspec.structs.replace(rules, metrics=metrics)


def engine(case: Case, definitions=()):
    pharmacy = pharmacy_table(case.pharmacy, case.member_type)
    medical = None if case.medical is None else medical_table(case.medical, case.member_type)
    # random books hold far more bad rows than a real book: no intake stop here (it has its
    # own tests in test_loud_intake.py)
    return rxrisk.score(
        pharmacy,
        medical,
        as_of=list(case.as_of),
        reference=reference_table(),
        rules=rules_with(definitions),
        max_reject_share=1.0,
    )


def oracle(case: Case, definitions=()):
    config = {"mme_definitions": tuple(definitions)} if definitions else None
    return naive_score(case.pharmacy, case.medical, case.as_of, REF, config)


def _same(got, want) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return type(got) is type(want) and got == want


def assert_members_equal(got_rows: list[dict], want_rows: list[dict]) -> None:
    got_keys = [(r["member_id"], r["as_of"]) for r in got_rows]
    want_keys = [(r["member_id"], r["as_of"]) for r in want_rows]
    assert got_keys == want_keys
    for got, want in zip(got_rows, want_rows, strict=True):
        assert list(got) == list(want)
        diffs = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
        assert not diffs, f"{want['member_id']} @ {want['as_of']}: (engine, naive) {diffs}"


def assert_schema(members: pa.Table, member_type: str, definitions=()) -> None:
    schema = members.schema
    assert schema.names == column_names({"mme_definitions": tuple(definitions)})
    want_member = pa.int64() if member_type == "int64" else pa.string()
    assert schema.field("member_id").type == want_member
    for name in ("as_of", "last_emergency_date"):
        assert schema.field(name).type == pa.date32(), name
    assert pa.types.is_integer(schema.field("days_since_emergency").type)
    assert schema.field("reasons").type in (pa.list_(pa.string()), pa.list_(pa.large_string()))
    for f in schema:
        if f.name in FLAGS or f.name.endswith("_dx"):
            assert f.type == pa.bool_(), f.name
        elif f.name.startswith("mme_"):
            assert f.type == pa.float64(), f.name
        elif f.name not in ("member_id", "as_of", "last_emergency_date", "reasons"):
            assert pa.types.is_integer(f.type), f.name


def assert_engine_matches(case: Case, definitions=()) -> None:
    want = oracle(case, definitions)
    result = engine(case, definitions)
    assert_schema(result.members, case.member_type, definitions)
    assert_members_equal(result.members.to_pylist(), want.members)
    for block in ("pharmacy", "medical"):
        got_block = {k: result.audit[block][k] for k in AUDIT_BLOCK_KEYS}
        assert got_block == want.audit[block], block
    assert result.audit["members_scored"] == want.audit["members_scored"]
    assert result.audit["rows_out"] == want.audit["rows_out"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case(name):
    assert_engine_matches(CASES[name])


def test_hand_cases_at_several_as_of_dates():
    # Every hand case again, scored at five dates in one call (A-200 .. A+200).
    dates = [day(-200), day(-31), day(0), day(45), day(200)]
    for case in CASES.values():
        assert_engine_matches(
            Case(case.name + "@several", case.pharmacy, case.medical, dates, case.member_type)
        )


def test_all_hand_cases_in_one_book():
    assert_engine_matches(combined_book())


def test_member_only_in_medical_with_empty_pharmacy():
    case = Case(
        "medical_only",
        [],
        [{"member_id": "X", "service_date": day(-3), "code_type": "REV", "code": "0450"}],
        [day(0)],
    )
    assert_engine_matches(case)


def test_single_as_of_date_argument():
    case = CASES["one_fill"]
    result = rxrisk.score(pharmacy_table(case.pharmacy), as_of=day(0), reference=reference_table())
    assert_members_equal(result.members.to_pylist(), oracle(case).members)


def test_reversal_anywhere_in_book():
    # The reversal comes before the paid claim and belongs to another member row.
    rows = [
        fill("M2", -5, claim_id="K1", status="R", quantity=-60.0, days_supply=-30),
        fill("M1", -9, claim_id="K1"),
        fill("M1", -9, claim_id="K2"),
        fill("M1", -8, claim_id="K2"),
    ]
    assert_engine_matches(Case("reversal_first", rows, None, [day(0)]))


@HYPOTHESIS_SETTINGS
@given(scenarios())
def test_random_books(case):
    assert_engine_matches(case)


@HYPOTHESIS_SETTINGS
@given(scenarios(max_members=2, max_fills=8))
def test_random_small_books(case):
    assert_engine_matches(case)


def test_hand_cases_with_every_average_mme_definition():
    # listed out of column order: the columns come in the same place whatever the order
    dates = [day(-200), day(-31), day(0), day(45), day(200)]
    for case in CASES.values():
        several = Case(case.name + "@several", case.pharmacy, case.medical, dates, case.member_type)
        for one in (case, several):
            assert_engine_matches(one, ("fill", "window", "supply"))


#: Any subset of the definitions, in any order.
DEFINITION_LISTS = st.lists(st.sampled_from(MME_DEFINITIONS), min_size=1, max_size=3, unique=True)


@settings(HYPOTHESIS_SETTINGS, max_examples=max(10, EXAMPLES // 2))
@given(scenarios(), DEFINITION_LISTS)
def test_random_books_with_average_mme_definitions(case, definitions):
    assert_engine_matches(case, definitions)


@settings(HYPOTHESIS_SETTINGS, max_examples=max(10, EXAMPLES // 2))
@given(scenarios(max_members=2, max_fills=8), DEFINITION_LISTS)
def test_random_small_books_with_average_mme_definitions(case, definitions):
    assert_engine_matches(case, definitions)


@settings(
    max_examples=max(10, EXAMPLES // 4),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_random_books_scored_as_one_date_at_a_time(case):
    # Scoring dates one by one gives the rows of the multi-date call.
    together = engine(case).members.to_pylist()
    separate = []
    for a in sorted(case.as_of):
        one = Case(case.name, case.pharmacy, case.medical, [a], case.member_type)
        separate += engine(one).members.to_pylist()
    separate.sort(key=lambda r: (isinstance(r["member_id"], str), r["member_id"], r["as_of"]))
    assert_members_equal(together, separate)

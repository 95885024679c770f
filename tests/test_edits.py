"""Point-of-sale safety-edit replay (SPEC 7): ``rxrisk.replay_edits``, ``rxrisk edits``, the
edits file and ``--set``.

Every hand case runs the engine and the plain-Python oracle (tests/naive_edits.py) and checks
both against the hand-computed expectation; hypothesis then compares them on random members.
RXRISK_HYPOTHESIS_EXAMPLES scales the number of random examples.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rxrisk
from rxrisk.cli import main
from rxrisk.edits import drug_keys, load_edits

from naive import reference_from_table
from naive_edits import COLUMNS, EDIT_NAMES, naive_edits, settings_with

EXAMPLES = int(os.environ.get("RXRISK_HYPOTHESIS_EXAMPLES", "100"))
HYPOTHESIS_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

D0 = dt.date(2025, 1, 1)


def day(offset: int) -> dt.date:
    return D0 + dt.timedelta(days=offset)


# --------------------------------------------------------------------------- tiny reference
# NDCs under 9999966: nothing in the packaged reference starts with it (checked against
# data/reference/drugs.csv), so this table merges over the default without collisions.

OXY = "99999660001"  # oxycodone 10 MG IR, factor 1.5
OXY_ER = "99999660002"  # oxycodone 20 MG ER (long-acting), factor 1.5
MORPH_ER = "99999660003"  # morphine 30 MG ER (long-acting), factor 1
METH = "99999660004"  # methadone 10 MG (long-acting), factor 4.7
FENT = "99999660005"  # fentanyl 25 MCG/HR patch (long-acting), factor 7.2, 3 days per patch
BUP_PATCH = "99999660006"  # buprenorphine 10 MCG/HR patch, opioid without factor, 7 days per patch
ALPRAZ = "99999660007"  # alprazolam 1 MG, benzodiazepine
BUP_MAT = "99999660008"  # buprenorphine 8 MG, buprenorphine_mat
NALTREX = "99999660009"  # naltrexone 50 MG
GABA = "99999660010"  # gabapentin 300 MG, gabapentinoid
OXY_ER40 = "99999660011"  # oxycodone 40 MG ER: same ingredient as OXY_ER, spelled differently
UNTRACKED = "99999669999"

_ROWS = [
    # ndc, drug_name, ingredient, drug_class, strength, unit, factor, long_acting, dpu, schedule
    (OXY, "oxycodone 10 mg", "oxycodone", "opioid", 10.0, "MG", 1.5, False, None, "CII"),
    (OXY_ER, "oxycodone er 20 mg", "oxycodone", "opioid", 20.0, "MG", 1.5, True, None, "CII"),
    (MORPH_ER, "morphine er 30 mg", "morphine", "opioid", 30.0, "MG", 1.0, True, None, "CII"),
    (METH, "methadone 10 mg", "methadone", "opioid", 10.0, "MG", 4.7, True, None, "CII"),
    (FENT, "fentanyl 25 mcg/hr", "fentanyl", "opioid", 25.0, "MCG/HR", 7.2, True, 3.0, "CII"),
    (
        BUP_PATCH,
        "butrans 10 mcg/hr",
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
    (NALTREX, "naltrexone 50 mg", "naltrexone", "naltrexone", 50.0, "MG", None, False, None, None),
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
    (OXY_ER40, "oxycontin 40 mg", " OxyCodone ", "opioid", 40.0, "MG", 1.5, True, None, "CII"),
]
_SCHEMA = pa.schema(
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
REFERENCE = pa.Table.from_arrays(
    [pa.array(col, f.type) for col, f in zip(zip(*_ROWS, strict=True), _SCHEMA, strict=True)],
    schema=_SCHEMA,
)
REF = reference_from_table(REFERENCE)


def fill(
    member,
    offset,
    ndc=OXY,
    quantity=60.0,
    days_supply=30,
    prescriber="P1",
    claim_id=None,
    status=None,
):
    return {
        "member_id": member,
        "fill_date": day(offset),
        "ndc": ndc,
        "quantity": quantity,
        "days_supply": days_supply,
        "prescriber_id": prescriber,
        "pharmacy_id": "PH1",
        "claim_id": claim_id,
        "claim_status": status,
    }


def med(member, offset, code_type, code):
    return {"member_id": member, "service_date": day(offset), "code_type": code_type, "code": code}


def pharmacy_table(rows, member_type=None):
    member_type = member_type or pa.string()
    return pa.table(
        {
            "member_id": pa.array([r["member_id"] for r in rows], member_type),
            "fill_date": pa.array([r["fill_date"] for r in rows], pa.date32()),
            "ndc": pa.array([r["ndc"] for r in rows], pa.string()),
            "quantity": pa.array([r["quantity"] for r in rows], pa.float64()),
            "days_supply": pa.array([r["days_supply"] for r in rows], pa.int64()),
            "prescriber_id": pa.array([r["prescriber_id"] for r in rows], pa.string()),
            "pharmacy_id": pa.array([r["pharmacy_id"] for r in rows], pa.string()),
            "claim_id": pa.array([r["claim_id"] for r in rows], pa.string()),
            "claim_status": pa.array([r["claim_status"] for r in rows], pa.string()),
        }
    )


def medical_table(rows, member_type=None):
    member_type = member_type or pa.string()
    return pa.table(
        {
            "member_id": pa.array([r["member_id"] for r in rows], member_type),
            "service_date": pa.array([r["service_date"] for r in rows], pa.date32()),
            "code_type": pa.array([r["code_type"] for r in rows], pa.string()),
            "code": pa.array([r["code"] for r in rows], pa.string()),
        }
    )


def _same(got, want) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return type(got) is type(want) and got == want


def replay(pharmacy, medical=None, overrides=None, member_type=None, threads=None):
    """Run engine and oracle; assert they agree; return the engine's rows and audit."""
    over = overrides or {}
    result = rxrisk.replay_edits(
        pharmacy_table(pharmacy, member_type),
        None if medical is None else medical_table(medical, member_type),
        reference=REFERENCE,
        overrides=[f"{k}={v}" for k, v in over.items()],
        threads=threads,
    )
    want = naive_edits(pharmacy, medical, REF, settings_with(over))
    got = result.claims.to_pylist()
    assert result.claims.column_names == list(COLUMNS)
    assert len(got) == len(want.claims)
    for i, (g, w) in enumerate(zip(got, want.claims, strict=True)):
        diffs = {k: (g[k], w[k]) for k in COLUMNS if not _same(g[k], w[k])}
        assert not diffs, f"row {i} ({w['member_id']}, {w['fill_date']}): (engine, naive) {diffs}"
    audit = result.audit
    for key in ("pharmacy", "medical", "members_scored", "rows_out"):
        assert audit[key] == want.audit[key], key
    for key in ("claims_evaluated", "fired", "members_hit"):
        assert audit["edits"][key] == want.audit["edits"][key], key
    return got, audit


def fired(row) -> set[str]:
    return set(row["edits"])


# --------------------------------------------------------------------------- order and history


def test_same_day_claims_in_input_order_and_members_sorted():
    # Input rows out of order and interleaved across members; on one day, input order rules.
    rows = [
        fill("B", 5, OXY, 20.0, 10, prescriber="P1", claim_id="b1"),
        fill("A", 3, OXY, 20.0, 10, prescriber="P1", claim_id="a1"),  # 30 MME
        fill("A", 3, OXY, 40.0, 10, prescriber="P2", claim_id="a2"),  # 60 MME
        fill("A", 1, ALPRAZ, 30.0, 30, prescriber="P9", claim_id="a0"),
        fill("A", 3, OXY, 20.0, 10, prescriber="P1", claim_id="a3"),  # 30 MME
    ]
    got, audit = replay(rows)
    assert [r["claim_id"] for r in got] == ["a0", "a1", "a2", "a3", "b1"]
    assert [r["cumulative_mme"] for r in got] == [0.0, 30.0, 90.0, 120.0, 30.0]
    assert [r["active_opioid_prescribers"] for r in got] == [0, 1, 2, 2, 1]
    # a2 reaches exactly 90 MME with two prescribers; a3 is over 90 with the same two.
    assert [("mme_care_coordination" in fired(r)) for r in got] == [False, False, True, True, False]
    # Same-day opioids do not cover an earlier day: all three of A's are naive, but ds 10 > 7.
    assert [("opioid_naive_days_limit" in fired(r)) for r in got] == [False, True, True, True, True]
    assert all("opioid_benzo_concurrent" in fired(r) for r in got[1:4])
    assert audit["members_scored"] == 2 and audit["rows_out"] == 5


def test_history_is_paid_used_claims_only():
    rows = [
        fill("A", 0, OXY, 600.0, 10, claim_id="r1"),  # 900 MME, reversed below
        fill("A", 0, OXY, 600.0, 10, claim_id="r1", status="R"),
        fill("A", 0, ALPRAZ, 30.0, 30, claim_id="d1"),
        fill("A", 0, ALPRAZ, 30.0, 30, claim_id="d1"),  # duplicate: not evaluated, not history
        fill("A", 0, UNTRACKED, 10.0, 10),
        fill("A", 0, OXY, 0.0, 10),  # rejected (quantity)
        fill("A", 2, OXY, 20.0, 5, claim_id="c1"),
    ]
    got, audit = replay(rows)
    assert [r["claim_id"] for r in got] == ["d1", "c1"]
    assert got[1]["cumulative_mme"] == 60.0 and "mme_hard_limit" not in fired(got[1])
    assert fired(got[1]) == {"opioid_benzo_concurrent"}  # the kept alprazolam is active
    b = audit["pharmacy"]["buckets"]
    assert (
        b["reversed"],
        b["reversal"],
        b["duplicate"],
        b["untracked"],
        b["rejected"],
        b["used"],
    ) == (1, 1, 1, 1, 1, 2)


def test_an_edit_that_fires_stays_in_history():
    rows = [
        fill("A", 0, OXY, 900.0, 10, prescriber="P1"),
        fill("A", 1, OXY, 20.0, 10, prescriber="P2"),
    ]
    got, _ = replay(rows)
    assert "mme_hard_limit" in fired(got[0])
    assert got[1]["cumulative_mme"] == 1350.0 + 30.0
    assert {"mme_hard_limit", "mme_care_coordination"} <= fired(got[1])


# --------------------------------------------------------------------------- naive lookback


@pytest.mark.parametrize(
    ("offset", "naive", "active"),
    [
        (9, False, True),  # the prior claim ends on f: active, not naive
        (10, False, False),  # it ends on f-1: not active, still not naive
        (99, False, False),  # it ends on f-90: inside the lookback, not naive
        (100, True, False),  # it ends on f-91: naive
    ],
)
def test_naive_lookback_edges(offset, naive, active):
    rows = [fill("A", 0, OXY, 20.0, 10), fill("A", offset, OXY, 16.0, 8)]  # prior covers days 0..9
    got, _ = replay(rows)
    c = got[1]
    assert ("opioid_naive_days_limit" in fired(c)) is naive
    assert c["cumulative_mme"] == (30.0 + 30.0 if active else 30.0)


@pytest.mark.parametrize(("days_supply", "fires"), [(7, False), (8, True), (1, False)])
def test_naive_days_threshold(days_supply, fires):
    got, _ = replay([fill("A", 0, OXY, 10.0, days_supply)])
    assert ("opioid_naive_days_limit" in fired(got[0])) is fires


def test_patch_days_per_unit_rewrite():
    rows = [
        fill("A", 0, FENT, 10.0, 28),  # 10 patches x 3 = 30 covered days: naive and > 7
        fill("B", 0, FENT, 2.0, 30),  # 2 x 3 = 6 days: input days_supply 30 is ignored
        fill("C", 0, FENT, 2.5, 5),  # 2.5 x 3 = 7.5 -> 8 days (round half up): fires
        fill("D", 0, BUP_PATCH, 4.0, 30),  # 4 x 7 = 28 days, no MME factor
        fill("D", 20, OXY, 20.0, 10),  # inside the patch's 28 days: not naive
        fill("E", 0, FENT, 2.0, 30),  # covers days 0..5 (not 0..29)
        fill("E", 96, OXY, 20.0, 10),  # f-90 = 6: the patch ended on f-91, so naive
    ]
    got, _ = replay(rows)
    by = {(r["member_id"], r["fill_date"]): r for r in got}
    a = by[("A", day(0))]
    assert a["claim_mme"] == pytest.approx(25.0 * 10.0 / 30.0 * 7.2)
    assert "opioid_naive_days_limit" in fired(a)
    assert "opioid_naive_days_limit" not in fired(by[("B", day(0))])
    assert by[("B", day(0))]["claim_mme"] == pytest.approx(25.0 * 2.0 / 6.0 * 7.2)
    assert "opioid_naive_days_limit" in fired(by[("C", day(0))])
    assert by[("D", day(0))]["claim_mme"] == 0.0
    assert "opioid_naive_days_limit" in fired(by[("D", day(0))])
    assert "opioid_naive_days_limit" not in fired(by[("D", day(20))])
    assert "opioid_naive_days_limit" in fired(by[("E", day(96))])


def test_mat_is_not_evaluated_and_does_not_end_naivety():
    rows = [
        fill("A", 0, BUP_MAT, 30.0, 30),
        fill("A", 5, NALTREX, 30.0, 30),
        fill("A", 6, GABA, 90.0, 30),
        fill("A", 10, OXY, 20.0, 10),
    ]
    got, audit = replay(rows)
    assert len(got) == 1 and got[0]["drug_class"] == "opioid"
    assert fired(got[0]) == {"opioid_naive_days_limit"}
    assert got[0]["cumulative_mme"] == 30.0 and got[0]["active_opioid_prescribers"] == 1
    assert audit["edits"]["claims_evaluated"] == 1


# --------------------------------------------------------------------------- exclusions


@pytest.mark.parametrize(
    ("code_type", "code", "offset", "excluded"),
    [
        ("ICD10CM", "C50.911", 100 - 364, True),  # f-D+1: inside
        ("ICD10CM", "C50.911", 100 - 365, False),  # f-D: outside
        ("ICD10CM", "C50.911", 100, True),  # the fill day itself
        ("ICD10CM", "C50.911", 101, False),  # after the fill
        ("ICD10CM", "D57.1", 50, True),  # sickle cell
        ("ICD10CM", "D57.3", 50, False),  # trait: not sickle cell disease
        ("REV", "651", 50, True),  # hospice revenue code
        ("ICD10CM", "Z51.5", 50, True),  # palliative care
        ("ICD10CM", "F11.20", 50, False),  # OUD does not exclude
    ],
)
def test_excluded_at_fill(code_type, code, offset, excluded):
    rows = [
        fill("A", 100, OXY, 1400.0, 10, prescriber="P1"),
        fill("A", 100, OXY, 20.0, 10, prescriber="P2"),
    ]
    got, _ = replay(rows, [med("A", offset, code_type, code)])
    assert [r["excluded_at_fill"] for r in got] == [excluded, excluded]
    want = (
        set()
        if excluded
        else {"mme_care_coordination", "mme_hard_limit", "opioid_naive_days_limit"}
    )
    assert fired(got[1]) == want


def test_exclusion_spares_benzo_and_duplicate_edits():
    rows = [
        fill("A", 0, ALPRAZ, 30.0, 30),
        fill("A", 1, MORPH_ER, 300.0, 30),  # 300 MME, naive, with a benzo
        fill("A", 2, OXY_ER, 90.0, 30),
    ]
    got, _ = replay(rows, [med("A", -10, "ICD10CM", "C34.90")])
    assert all(r["excluded_at_fill"] for r in got)
    assert fired(got[1]) == {"opioid_benzo_concurrent"}
    assert fired(got[2]) == {"opioid_benzo_concurrent", "duplicate_long_acting"}


def test_dx_lookback_is_config():
    rows = [fill("A", 100, OXY, 20.0, 10)]
    got, _ = replay(
        rows, [med("A", 50, "ICD10CM", "C50.911")], overrides={"config.dx_lookback_days": 30}
    )
    assert not got[0]["excluded_at_fill"] and "opioid_naive_days_limit" in fired(got[0])


# --------------------------------------------------------------------------- benzodiazepines


def test_benzo_with_active_opioid_and_the_reverse():
    rows = [
        fill("A", 0, OXY, 40.0, 10, prescriber="P1"),  # 60 MME, days 0..9
        fill("A", 9, ALPRAZ, 30.0, 30, prescriber="P2"),  # the opioid ends on f: concurrent
        fill("A", 20, OXY, 20.0, 10, prescriber="P3"),  # benzo active (9..38): concurrent
        fill("B", 0, OXY, 40.0, 10),
        fill("B", 10, ALPRAZ, 30.0, 30),  # opioid ended on f-1: not concurrent
    ]
    got, _ = replay(rows)
    a_benzo, a_oxy, _b_oxy, b_benzo = got[1], got[2], got[3], got[4]
    assert a_benzo["drug_class"] == "benzodiazepine"
    assert a_benzo["claim_mme"] == 0.0 and a_benzo["cumulative_mme"] == 60.0
    assert a_benzo["active_opioid_prescribers"] == 1  # the benzo's own prescriber does not count
    assert fired(a_benzo) == {"opioid_benzo_concurrent"}
    assert "opioid_benzo_concurrent" in fired(a_oxy)
    assert fired(b_benzo) == set() and b_benzo["cumulative_mme"] == 0.0


# --------------------------------------------------------------------------- duplicate long-acting


@pytest.mark.parametrize(
    ("first", "second", "fires"),
    [
        (OXY_ER, MORPH_ER, True),  # different ingredients
        (MORPH_ER, METH, True),
        (FENT, METH, True),  # patch + oral
        (OXY_ER, OXY_ER40, False),  # same ingredient (" OxyCodone " == "oxycodone")
        (OXY_ER, OXY_ER, False),
        (OXY, MORPH_ER, False),  # the active claim is short-acting
        (MORPH_ER, OXY, False),  # the new claim is short-acting
        (ALPRAZ, MORPH_ER, False),
    ],
)
def test_duplicate_long_acting(first, second, fires):
    got, _ = replay([fill("A", 0, first, 30.0, 30), fill("A", 5, second, 30.0, 30)])
    assert ("duplicate_long_acting" in fired(got[-1])) is fires


def test_duplicate_long_acting_needs_an_active_claim():
    got, _ = replay([fill("A", 0, OXY_ER, 30.0, 30), fill("A", 30, MORPH_ER, 30.0, 30)])
    assert "duplicate_long_acting" not in fired(got[1])


def test_drug_keys_trim_case_and_nulls():
    ref = pa.table(
        {
            "ingredient": pa.array(["Morphine", " morphine ", None, "  ", "oxycodone"]),
            "long_acting": pa.array([True, False, True, True, None]),
        }
    )
    ingredient, long_acting = drug_keys(ref)
    assert (
        ingredient[0] == ingredient[1] >= 0
        and ingredient[4] >= 0
        and ingredient[4] != ingredient[0]
    )
    assert list(ingredient[2:4]) == [-1, -1]
    assert list(long_acting) == [1, 0, 1, 1, -1]


def test_null_ingredient_or_long_acting_never_fires_duplicate():
    """Kernel level: the loader never yields nulls, but the kernel must not fire on them."""
    from rxrisk.kernels._jit import each_chunk
    from rxrisk.kernels.edits import replay_chunk
    from rxrisk.kernels.edits_containers import (
        E_DUPLICATE_LA,
        SEQUENTIAL_MAX,
        EditClaims,
        EditOutputs,
        EditParams,
    )
    from rxrisk.kernels.roles import OPIOID

    # One member, two active long-acting opioids; vary ingredient / long_acting of each.
    cases = [((0, 1), (1, 1), True), ((-1, 1), (1, 1), False), ((0, 1), (-1, 1), False),
             ((0, -1), (1, 1), False), ((0, 1), (1, -1), False), ((0, 1), (0, 1), False)]  # fmt: skip
    params = EditParams(
        exclusion_bits=0, dx_days=365, care_floor=90.0, care_min_prescribers=2, hard_floor=200.0,
        naive_lookback=90, naive_max_days=7, n_prescribers=1, n_ingredients=2,
        sequential_max=SEQUENTIAL_MAX,
    )  # fmt: skip
    for (ing0, la0), (ing1, la1), want in cases:
        claims = EditClaims(
            fill_offsets=np.array([0, 2], np.intp),
            start=np.array([0, 1], np.int32),
            end=np.array([29, 30], np.int32),
            role=np.array([OPIOID, OPIOID], np.uint8),
            mme=np.array([10.0, 10.0]),
            prescriber=np.array([0, 0], np.int32),
            ingredient=np.array([ing0, ing1], np.int32),
            long_acting=np.array([la0, la1], np.int8),
            med_offsets=np.array([0, 0], np.intp),
            med_day=np.zeros(0, np.int32),
            med_mask=np.zeros(0, np.uint8),
        )
        out = EditOutputs.zeros(n_fills=2, n_chunks=1)
        each_chunk(replay_chunk, len(out.work), claims, params, out)
        assert bool(out.fired[1] & E_DUPLICATE_LA) is want, (ing0, la0, ing1, la1)


def _kernel_arguments():
    """Valid containers of the replay kernel for one member with two opioid fills."""
    from rxrisk.kernels.edits_containers import EditClaims, EditOutputs, EditParams
    from rxrisk.kernels.roles import OPIOID

    claims = EditClaims(
        fill_offsets=np.array([0, 2], np.intp),
        start=np.array([0, 1], np.int32),
        end=np.array([29, 30], np.int32),
        role=np.array([OPIOID, OPIOID], np.uint8),
        mme=np.array([10.0, 10.0]),
        prescriber=np.array([0, 0], np.int32),
        ingredient=np.array([0, 1], np.int32),
        long_acting=np.array([1, 1], np.int8),
        med_offsets=np.array([0, 2], np.intp),
        med_day=np.zeros(2, np.int32),
        med_mask=np.zeros(2, np.uint8),
    )
    params = EditParams(
        exclusion_bits=0, dx_days=365, care_floor=90.0, care_min_prescribers=2, hard_floor=200.0,
        naive_lookback=90, naive_max_days=7, n_prescribers=1, n_ingredients=2, sequential_max=32,
    )  # fmt: skip
    return claims, params, EditOutputs.zeros(n_fills=2, n_chunks=1)


@pytest.mark.parametrize(
    ("box", "field", "value", "message"),
    [
        ("claims", "start", np.array([0, 1], np.int64), "start must be a int32 array of fills"),
        ("claims", "mme", np.array([10.0]), "mme must be a float64 array of fills"),
        ("claims", "med_day", np.zeros(4, np.int32)[::2], "med_day must be a int32 array"),
        ("claims", "fill_offsets", np.array([0, 1], np.intp), "fill_offsets must run from 0"),
        ("claims", "med_offsets", np.array([0, 0], np.intp), "med_offsets must run from 0"),
        ("claims", "prescriber", np.array([0, 1], np.int32), "prescriber codes must lie in"),
        ("claims", "ingredient", np.array([-2, 0], np.int32), "ingredient codes must lie in"),
        ("outputs", "fired", np.zeros(2, np.int8), "fired must be a uint8 array of fills"),
        ("outputs", "work", np.zeros((1, 1), np.int64), "work must be a int64 array of chunks"),
        ("params", "care_floor", 90, "care_floor must be a Python float"),
        ("params", "dx_days", np.int64(365), "dx_days must be a Python int"),
    ],
)
def test_kernel_arguments_are_checked_once_before_the_kernel(box, field, value, message):
    from rxrisk.edits.replay import check_kernel_arguments

    boxes = dict(zip(("claims", "params", "outputs"), _kernel_arguments(), strict=True))
    check_kernel_arguments(**boxes)  # the valid ones pass
    boxes[box] = boxes[box]._replace(**{field: value})
    with pytest.raises(ValueError, match=message):
        check_kernel_arguments(**boxes)


def test_edit_names_are_the_sections_of_the_edit_set_and_the_kernel_bits():
    import msgspec

    from rxrisk.edits import EDIT_NAMES as ENGINE_EDIT_NAMES
    from rxrisk.edits import SECTIONS
    from rxrisk.edits.config import _Sections
    from rxrisk.kernels.edits_containers import EDIT_BITS

    assert SECTIONS == tuple(f.name for f in msgspec.structs.fields(_Sections))
    assert ENGINE_EDIT_NAMES == tuple(EDIT_BITS) == EDIT_NAMES  # the oracle's names
    bits = list(EDIT_BITS.values())
    assert sorted(bits) == bits and all(b & (b - 1) == 0 for b in bits)  # distinct single bits


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("quantities", "prescribers", "care", "hard"),
    [
        ((30.0, 30.0), ("P1", "P2"), True, False),  # 45 + 45 = 90 exactly, 2 prescribers
        ((30.0, 29.99), ("P1", "P2"), False, False),  # just below 90
        ((30.0, 30.0), ("P1", "P1"), False, False),  # 90 but one prescriber
        ((30.0, 30.0), ("P1", None), False, False),  # a null prescriber does not count
        ((100.0, 100.0 / 3.0), ("P1", "P2"), True, True),  # 150 + 50 = 200 (within tolerance)
        ((100.0, 33.3), ("P1", "P2"), True, False),  # 199.95: just below 200
    ],
)
def test_mme_thresholds(quantities, prescribers, care, hard):
    # oxycodone 10 mg x 2q / 20 days x 1.5 = 1.5 q MME
    rows = [fill("A", 0, OXY, quantities[0] * 2, 20, prescriber=prescribers[0]),
            fill("A", 1, OXY, quantities[1] * 2, 20, prescriber=prescribers[1])]  # fmt: skip
    got, _ = replay(rows)
    c = got[1]
    assert ("mme_care_coordination" in fired(c)) is care
    assert ("mme_hard_limit" in fired(c)) is hard


def test_overrides_change_results():
    rows = [
        fill("A", 0, OXY, 40.0, 4, prescriber="P1"),
        fill("A", 200, OXY, 80.0, 10, prescriber="P1"),
    ]
    base, _ = replay(rows)  # 150 MME naive 4 days; 120 MME naive 10 days
    assert [fired(r) for r in base] == [set(), {"opioid_naive_days_limit"}]
    got, audit = replay(
        rows,
        overrides={
            "mme_hard_limit.threshold": 150,
            "mme_care_coordination.min_prescribers": 1,
            "opioid_naive_days_limit.max_covered_days": 3,
            "opioid_naive_days_limit.lookback_days": 200,
        },
    )
    assert fired(got[0]) == {"mme_hard_limit", "mme_care_coordination", "opioid_naive_days_limit"}
    assert fired(got[1]) == {"mme_care_coordination"}  # day 0..3 is inside 200-200 .. 199
    assert audit["edits"]["settings"]["mme_hard_limit"] == {"threshold": 150.0}
    assert audit["edits"]["fired"] == {
        "mme_care_coordination": 2, "mme_hard_limit": 1, "opioid_naive_days_limit": 1,
        "opioid_benzo_concurrent": 0, "duplicate_long_acting": 0,
    }  # fmt: skip


# --------------------------------------------------------------------------- table, audit, types


def test_columns_types_and_audit():
    rows = [
        fill(7, 0, "99999-6600-01", 20.0, 10, claim_id=" c1 "),  # hyphenated 5-4-2, trimmed id
        fill(7, 1, ALPRAZ, 30.0, 30),
        fill(3, 2, GABA, 30.0, 30),
    ]
    result = rxrisk.replay_edits(pharmacy_table(rows, pa.int64()), reference=REFERENCE)
    t = result.claims
    types = {f.name: f.type for f in t.schema}
    assert types["member_id"] == pa.int64()
    assert types["fill_date"] == pa.date32()
    assert types["claim_mme"] == types["cumulative_mme"] == pa.float64()
    assert pa.types.is_integer(types["active_opioid_prescribers"])
    for name in ("excluded_at_fill", *EDIT_NAMES):
        assert types[name] == pa.bool_(), name
    assert types["edits"] == pa.list_(pa.string())
    assert t.column("ndc").to_pylist() == [OXY, ALPRAZ]
    assert t.column("claim_id").to_pylist() == ["c1", None]
    a = result.audit
    assert list(a["edits"]["fired"]) == list(EDIT_NAMES) == list(a["edits"]["members_hit"])
    assert a["edits"]["claims_evaluated"] == 2 and a["members_scored"] == 1 and a["rows_out"] == 2
    assert a["medical"]["rows_read"] == 0 and set(a["medical"]["buckets"]) == {
        "rejected",
        "unclassified",
        "used",
    }
    assert {"read", "validate", "encode", "kernels", "output"} <= set(a["seconds"])
    assert len(a["config_digest"]) == 64 and a["version"] == rxrisk.__version__
    other = rxrisk.replay_edits(pharmacy_table(rows, pa.int64()), reference=REFERENCE,
                                overrides=["mme_hard_limit.threshold=150"])  # fmt: skip
    assert other.audit["config_digest"] != a["config_digest"]


def test_empty_input():
    result = rxrisk.replay_edits(pharmacy_table([]), reference=REFERENCE)
    assert result.claims.num_rows == 0 and result.claims.column_names == list(COLUMNS)
    assert result.audit["edits"]["fired"] == dict.fromkeys(EDIT_NAMES, 0)


def test_folder_input_order_is_path_order(tmp_path):
    folder = tmp_path / "ph"
    folder.mkdir()
    # On the same day, the claim of file a.parquet is adjudicated before that of b.parquet.
    pq.write_table(
        pharmacy_table([fill("A", 0, OXY, 40.0, 10, prescriber="P2", claim_id="second")]),
        folder / "b.parquet",
    )
    pq.write_table(
        pharmacy_table([fill("A", 0, OXY, 20.0, 10, prescriber="P1", claim_id="first")]),
        folder / "a.parquet",
    )
    t = rxrisk.replay_edits(str(folder), reference=REFERENCE).claims
    assert t.column("claim_id").to_pylist() == ["first", "second"]
    assert t.column("cumulative_mme").to_pylist() == [30.0, 90.0]


# --------------------------------------------------------------------------- config errors


def _edits_file(tmp_path, text):
    p = tmp_path / "edits.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "[mme_hard_limit]\nthreshold = 'high'\n",
            ["edit mme_hard_limit, field threshold", "Expected `float`"],
        ),
        (
            "[mme_hard_limit]\nlimit = 150\n",
            ["edit mme_hard_limit: unknown field 'limit'", "valid fields: threshold"],
        ),
        (
            "[mme_hard_limt]\nthreshold = 150\n",
            ["unknown edit [mme_hard_limt]", "valid edits: config, mme_care_coordination"],
        ),
        (
            "[mme_hard_limit]\nthreshold = -1\n",
            ["edit mme_hard_limit, field threshold: -1.0 must be"],
        ),
        (
            "[opioid_naive_days_limit]\nlookback_days = 0\n",
            ["edit opioid_naive_days_limit, field lookback_days: 0 must be"],
        ),
        ("[config]\ntolerance = 2\n", ["section config, field tolerance"]),
        (
            "[mme_care_coordination]\nmin_prescribers = 1.5\n",
            ["field min_prescribers", "Expected `int`"],
        ),
        (
            "[duplicate_long_acting]\nenabled = false\n",
            ["edit duplicate_long_acting: unknown field 'enabled'", "no fields"],
        ),
        ("[mme_hard_limit\n", ["not valid TOML"]),
    ],
)
def test_bad_edits_file(tmp_path, text, needles):
    p = _edits_file(tmp_path, text)
    with pytest.raises(rxrisk.InputError) as err:
        load_edits(p)
    msg = str(err.value)
    assert msg.startswith(f"edits file {p}: ") and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_edits_file_missing(tmp_path):
    with pytest.raises(rxrisk.InputError, match="cannot be read"):
        load_edits(tmp_path / "nope.toml")


def test_partial_file_keeps_defaults(tmp_path):
    edits = load_edits(_edits_file(tmp_path, "[mme_hard_limit]\nthreshold = 120\n"))
    assert edits.mme_hard_limit.threshold == 120.0
    assert (
        edits.mme_care_coordination.threshold == 90.0
        and edits.opioid_naive_days_limit.lookback_days == 90
    )


def test_default_file_matches_spec():
    e = load_edits()
    assert (e.mme_care_coordination.threshold, e.mme_care_coordination.min_prescribers) == (90.0, 2)
    assert e.mme_hard_limit.threshold == 200.0
    assert (
        e.opioid_naive_days_limit.lookback_days,
        e.opioid_naive_days_limit.max_covered_days,
    ) == (90, 7)
    assert (e.config.dx_lookback_days, e.config.tolerance) == (365, 1e-9)


@pytest.mark.parametrize(
    ("item", "needles"),
    [
        ("mme_hard_limit.threshold", ["write EDIT.FIELD=VALUE"]),
        ("threshold=150", ["write EDIT.FIELD=VALUE"]),
        (
            "hard_limit.threshold=150",
            [
                "unknown edit 'hard_limit'",
                "valid edits: config, mme_care_coordination, mme_hard_limit",
            ],
        ),
        (
            "mme_hard_limit.limit=150",
            ["edit mme_hard_limit has no field 'limit'", "valid fields: threshold"],
        ),
        ("mme_hard_limit.threshold=abc", ["field threshold", "Expected `float`, got `str`"]),
        ("mme_hard_limit.threshold=-5", ["field threshold: -5.0 must be"]),
        (
            "opioid_naive_days_limit.max_covered_days=7.5",
            ["field max_covered_days", "Expected `int`"],
        ),
        ("config.dx_lookback_days=0", ["section config, field dx_lookback_days"]),
    ],
)
def test_bad_set(item, needles):
    with pytest.raises(rxrisk.InputError) as err:
        load_edits(None, [item])
    msg = str(err.value)
    assert msg.startswith(f"--set {item}: ") and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_set_applies_in_order():
    e = load_edits(
        None,
        ["mme_hard_limit.threshold=150", "mme_hard_limit.threshold = 175.5", "config.tolerance=0"],
    )
    assert e.mme_hard_limit.threshold == 175.5 and e.config.tolerance == 0.0


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_files(tmp_path):
    rows = [
        fill("A", 0, OXY, 100.0, 10, prescriber="P1"),  # 150 MME
        fill("A", 1, OXY, 100.0, 10, prescriber="P2"),  # 300 MME cumulative
        fill("A", 2, ALPRAZ, 30.0, 30),
        fill("B", 0, OXY, 20.0, 3),
    ]
    pq.write_table(pharmacy_table(rows), tmp_path / "ph.parquet")
    pq.write_table(medical_table([med("B", 0, "ICD10CM", "C50.911")]), tmp_path / "md.parquet")
    pq.write_table(REFERENCE, tmp_path / "ref.parquet")
    return tmp_path


def test_cli_edits_writes_outputs(cli_files, capsys):
    t = cli_files
    rc = main(["edits", str(t / "ph.parquet"), "--medical", str(t / "md.parquet"), "--reference", str(t / "ref.parquet"),
               "--out", str(t / "claims.csv"), "--audit", str(t / "audit.json"), "--threads", "1",
               "--set", "mme_hard_limit.threshold=150"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "replayed 4 claims of 2 members" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines["mme_hard_limit"] == ["2", "1"] and lines["duplicate_long_acting"] == ["0", "0"]
    audit = json.loads((t / "audit.json").read_text())
    assert (
        audit["edits"]["fired"]["mme_hard_limit"] == 2
        and audit["edits"]["members_hit"]["mme_hard_limit"] == 1
    )
    assert (t / "claims.csv").read_text().count("\n") == 5
    assert not [p for p in os.listdir(t) if p.endswith(".tmp")]


def test_cli_bad_set_exits_2(cli_files, capsys):
    t = cli_files
    rc = main(
        [
            "edits",
            str(t / "ph.parquet"),
            "--out",
            str(t / "claims.parquet"),
            "--set",
            "mme_hard_limit.thresh=1",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid fields: threshold" in err
    assert not (t / "claims.parquet").exists()


# --------------------------------------------------------------------------- determinism


def test_same_output_whatever_the_thread_count(tmp_path):
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=3000, seed=7)
    ph, md = str(tmp_path / "pharmacy.parquet"), str(tmp_path / "medical.parquet")
    one = rxrisk.replay_edits(ph, md, threads=1)
    two = rxrisk.replay_edits(ph, md, threads=2)
    assert one.claims.num_rows > 0
    assert one.claims.equals(two.claims)
    for a in (one.audit, two.audit):
        a.pop("seconds")
    assert one.audit == two.audit


# --------------------------------------------------------------------------- random members

_NDCS = [
    OXY,
    OXY,
    OXY_ER,
    MORPH_ER,
    METH,
    FENT,
    BUP_PATCH,
    ALPRAZ,
    ALPRAZ,
    BUP_MAT,
    NALTREX,
    GABA,
    OXY_ER40,
    UNTRACKED,
]
_CODES = [
    ("ICD10CM", "C50.911"),
    ("ICD10CM", "D57.1"),
    ("REV", "0651"),
    ("ICD10CM", "F11.20"),
    ("CPT", "99284"),
]


@st.composite
def books(draw):
    n_members = draw(st.integers(1, 4))
    pharmacy, medical = [], []
    for m in range(n_members):
        member = f"M{m}"
        for _ in range(draw(st.integers(0, 12))):
            pharmacy.append(
                fill(
                    member,
                    draw(st.integers(0, 150)),
                    draw(st.sampled_from(_NDCS)),
                    draw(st.sampled_from([1.0, 2.5, 10.0, 30.0, 60.0, 90.0, 120.0, 400.0])),
                    draw(st.integers(1, 40)),
                    prescriber=draw(st.sampled_from([None, "P1", "P2", "P3"])),
                    claim_id=draw(st.sampled_from([None, None, "c1", "c2"])),
                    status=draw(st.sampled_from([None, None, None, "R"])),
                )
            )
        for _ in range(draw(st.integers(0, 3))):
            code_type, code = draw(st.sampled_from(_CODES))
            medical.append(med(member, draw(st.integers(-60, 150)), code_type, code))
    order = draw(st.permutations(range(len(pharmacy))))
    pharmacy = [pharmacy[i] for i in order]
    overrides = {}
    if draw(st.booleans()):
        overrides = {
            "mme_care_coordination.threshold": draw(st.sampled_from([30.0, 90.0])),
            "mme_care_coordination.min_prescribers": draw(st.integers(0, 3)),
            "mme_hard_limit.threshold": draw(st.sampled_from([60.0, 200.0])),
            "opioid_naive_days_limit.lookback_days": draw(st.sampled_from([1, 10, 90])),
            "opioid_naive_days_limit.max_covered_days": draw(st.sampled_from([0, 7, 20])),
            "config.dx_lookback_days": draw(st.sampled_from([30, 365])),
        }
    return pharmacy, (medical or None), overrides


@HYPOTHESIS_SETTINGS
@given(books())
def test_engine_matches_naive_on_random_members(book):
    pharmacy, medical, overrides = book
    replay(pharmacy, medical, overrides)

"""The safety-edit replay on members with very many overlapping claims.

The kernel keeps each member's active claims in heaps with running aggregates (see
kernels/edits.py); these tests hold it to the plain-Python oracle (tests/naive_edits.py) at
every edge of that bookkeeping: claims ending on f-1 and on f, same-day claims, prescriber
and ingredient counts that rise and fall, members sharing a chunk's scratch, and the exact
cumulative MME above ``SEQUENTIAL_MAX`` active opioid claims, bit for bit. The complexity
check counts the kernel's elementary steps (no clock): a member with 200,000 same-day claims
(20,000 under NUMBA_DISABLE_JIT) must take O(n log n) steps, where the replay before this
design took n**2 / 2.
"""

from __future__ import annotations

import datetime as dt
import math
import struct

import numba
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rxrisk
from rxrisk.clock import Clock
from rxrisk.config.settings import load_config
from rxrisk.edits import drug_keys, load_edits
from rxrisk.edits.run import run_edits_kernel
from rxrisk.ingest.select import ingest
from rxrisk.kernels import edits_containers as contract
from rxrisk.kernels._jit import each_chunk
from rxrisk.kernels.edits import replay_chunk
from rxrisk.scoring.encode import encode_used

from naive_edits import SEQUENTIAL_MAX, cumulative_mme, naive_edits, settings_with
from test_edits import (
    ALPRAZ,
    BUP_PATCH,
    FENT,
    GABA,
    HYPOTHESIS_SETTINGS,
    METH,
    MORPH_ER,
    OXY,
    OXY_ER,
    OXY_ER40,
    REF,
    REFERENCE,
    day,
    fill,
    fired,
    med,
    replay,
)


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def replay_exact(rows, medical=None, overrides=None, threads=None):
    """``replay`` (engine == oracle within 1e-9), then cumulative_mme bit for bit too."""
    got, audit = replay(rows, medical, overrides, threads=threads)
    want = naive_edits(rows, medical, REF, settings_with(overrides or {})).claims
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert bits(g["cumulative_mme"]) == bits(w["cumulative_mme"]), (
            f"row {i}: engine {g['cumulative_mme']!r} oracle {w['cumulative_mme']!r}"
        )
    return got, audit


def test_the_oracle_and_the_kernel_share_the_summation_rule():
    assert contract.SEQUENTIAL_MAX == SEQUENTIAL_MAX


# --------------------------------------------------------------------------- hand cases


@pytest.mark.parametrize(("offset", "active"), [(9, True), (10, False)])
def test_claim_leaves_the_active_set_after_its_last_day(offset, active):
    # A: oxycodone days 0..9 (30 MME, P1) and alprazolam days 0..9; then a long-acting
    # morphine on day 9 (last day of both: still active) or day 10 (both gone).
    rows = [
        fill("A", 0, OXY, 20.0, 10, prescriber="P1"),  # 10 mg x 20 / 10 d x 1.5 = 30 MME
        fill("A", 0, OXY_ER, 20.0, 10, prescriber="P1"),  # 20 x 20 / 10 x 1.5 = 60, LA oxy
        fill("A", 0, ALPRAZ, 10.0, 10, prescriber="P2"),
        fill("A", offset, MORPH_ER, 10.0, 10, prescriber="P3"),  # 30 MME, LA morphine
    ]
    got, _ = replay_exact(rows)
    c = got[-1]
    assert c["cumulative_mme"] == (30.0 + 30.0 + 60.0 if active else 30.0)
    assert c["active_opioid_prescribers"] == (2 if active else 1)
    assert ("opioid_benzo_concurrent" in fired(c)) is active
    assert ("duplicate_long_acting" in fired(c)) is active


def test_same_day_claims_see_each_other_but_not_themselves():
    rows = [fill("A", 3, OXY, 40.0, 20, prescriber="P1") for _ in range(4)]
    rows.append(fill("A", 3, ALPRAZ, 10.0, 10, prescriber="P1"))
    rows.append(fill("A", 3, OXY, 40.0, 20, prescriber=None))
    got, _ = replay_exact(rows)
    assert [r["cumulative_mme"] for r in got] == [30.0, 60.0, 90.0, 120.0, 120.0, 150.0]
    # one prescriber (P1) whatever the repeats; the null one adds nobody
    assert [r["active_opioid_prescribers"] for r in got] == [1, 1, 1, 1, 1, 1]
    assert ["opioid_benzo_concurrent" in fired(r) for r in got] == [False] * 4 + [True, True]
    # none of them covers a day before day 3: all naive (20 days > 7)
    assert all("opioid_naive_days_limit" in fired(r) for i, r in enumerate(got) if i != 4)


def test_prescriber_counts_fall_as_claims_end():
    rows = [
        fill("A", 0, OXY, 20.0, 10, prescriber="P1"),  # days 0..9
        fill("A", 0, OXY, 40.0, 20, prescriber="P1"),  # days 0..19
        fill("A", 1, OXY, 20.0, 10, prescriber="P2"),  # days 1..10
        fill("A", 10, OXY, 20.0, 10, prescriber="P3"),  # P1 (2nd) and P2 active
        fill("A", 11, OXY, 20.0, 10, prescriber="P2"),  # P1 (2nd), P3 active; P2 ended on 10
        fill("A", 20, OXY, 20.0, 10, prescriber="P3"),  # P3 (day 10..19) gone, P2/P3 from 11
        fill("A", 40, OXY, 20.0, 10, prescriber="P1"),  # nothing active
    ]
    got, _ = replay_exact(rows)
    assert [r["active_opioid_prescribers"] for r in got] == [1, 1, 2, 3, 3, 2, 1]


@pytest.mark.parametrize(
    ("active", "claim", "fires"),
    [
        ((OXY_ER,), OXY_ER40, False),  # same ingredient, other strength and spelling
        ((OXY_ER, OXY_ER40), OXY_ER, False),
        ((OXY_ER, MORPH_ER), OXY_ER40, True),  # the morphine differs
        ((MORPH_ER, MORPH_ER), OXY_ER, True),
        ((OXY, OXY), OXY_ER, False),  # short-acting actives never count
        ((FENT,), METH, True),
        ((BUP_PATCH,), FENT, True),  # a factorless long-acting opioid still counts
    ],
)
def test_duplicate_long_acting_counts_by_ingredient(active, claim, fires):
    rows = [fill("A", 0, ndc, 10.0, 30, prescriber="P1") for ndc in active]
    rows.append(fill("A", 5, claim, 10.0, 30, prescriber="P1"))
    got, _ = replay_exact(rows)
    assert ("duplicate_long_acting" in fired(got[-1])) is fires


def test_duplicate_long_acting_stops_when_the_other_ingredient_ends():
    rows = [
        fill("A", 0, MORPH_ER, 10.0, 5),  # days 0..4
        fill("A", 0, OXY_ER, 10.0, 30),  # days 0..29
        fill("A", 4, OXY_ER40, 10.0, 30),  # morphine still active
        fill("A", 5, OXY_ER40, 10.0, 30),  # only oxycodone left
        fill("A", 5, MORPH_ER, 10.0, 5),  # morphine again: oxycodone actives differ
    ]
    got, _ = replay_exact(rows)
    assert ["duplicate_long_acting" in fired(r) for r in got] == [False, True, True, False, True]


def test_members_sharing_a_chunk_start_from_nothing():
    # 40 members on 1 thread: 8 chunks of 5 members, the scratch (prescriber and ingredient
    # counts, heaps, partials) passes from member to member. Each member ends with claims
    # still active; the next one's first claim must see none of them.
    rows = []
    for m in range(40):
        member = f"M{m:02d}"
        first = (MORPH_ER, OXY_ER)[m % 2]
        rows += [fill(member, 0, first, 10.0, 90, prescriber="P1")] * (SEQUENTIAL_MAX + 3)
        rows.append(fill(member, 1, (OXY_ER, MORPH_ER)[m % 2], 10.0, 90, prescriber="P2"))
    rows += [fill("Z", 0, OXY_ER, 10.0, 90, prescriber="P1")]
    got, _ = replay_exact(rows, threads=1)
    by_member = {}
    for r in got:
        by_member.setdefault(r["member_id"], []).append(r)
    for member, claims in by_member.items():
        assert claims[0]["cumulative_mme"] == claims[0]["claim_mme"], member
        assert claims[0]["active_opioid_prescribers"] == 1, member
        assert fired(claims[0]) <= {"opioid_naive_days_limit"}, member
    assert all("duplicate_long_acting" in fired(c[-1]) for m, c in by_member.items() if m != "Z")


def _non_dyadic_rows(n: int, member: str = "A", start: int = 0) -> list[dict]:
    # oxycodone 10 mg x q / 7 days x 1.5: MMEs that are not exact in binary, so that the
    # order and the rounding of the sum show in the last bits
    return [
        fill(member, start, OXY, float(q), 7, prescriber=f"P{q % 3}")
        for q in [3, 10, 11, 17, 29, 31, 41, 53, 61, 73] * (n // 10 + 1)
    ][:n]


def test_above_sequential_max_the_sum_is_exact_and_rounded_once():
    n = SEQUENTIAL_MAX + 12
    rows = _non_dyadic_rows(n)
    got, _ = replay_exact(rows)
    mmes = [r["claim_mme"] for r in got]
    # the two rules must differ on this input somewhere, or the test proves nothing
    differ = 0
    for k in range(SEQUENTIAL_MAX + 1, n):
        seq = mmes[k]
        for x in mmes[:k]:
            seq += x
        exact = math.fsum(mmes[: k + 1])
        differ += seq != exact
        assert got[k]["cumulative_mme"] == exact
    assert differ > 0
    # up to SEQUENTIAL_MAX active claims: in evaluation order, the claim's own MME first
    for k in range(SEQUENTIAL_MAX + 1):
        assert got[k]["cumulative_mme"] == cumulative_mme(mmes[k], mmes[:k])


def test_crossing_sequential_max_both_ways():
    # 40 claims active on days 0..6; 3 of them run to day 29: on day 7 the member is back
    # under SEQUENTIAL_MAX and back to the ordered sum; then above again on day 7.
    rows = _non_dyadic_rows(40)
    for r in rows[5:8]:
        r["days_supply"] = 30
        r["quantity"] *= 30 / 7
    rows += _non_dyadic_rows(35, start=7)
    got, _ = replay_exact(rows)
    assert got[40]["cumulative_mme"] == cumulative_mme(
        got[40]["claim_mme"], [got[k]["claim_mme"] for k in (5, 6, 7)]
    )


def test_exclusion_and_naive_on_a_crowded_member():
    rows = [fill("A", 10, OXY, 10.0, 10)]  # days 10..19: covers f-90 of day 100 only
    rows += [{**r, "days_supply": 30} for r in _non_dyadic_rows(40, start=100)]
    rows += [{**r, "days_supply": 30} for r in _non_dyadic_rows(40, start=300)]  # naive again
    rows += _non_dyadic_rows(40, start=330)  # the day-300 claims cover 300..329: not naive
    got, _ = replay_exact(rows, [med("A", 305, "ICD10CM", "C50.911")])
    assert [r["excluded_at_fill"] for r in got] == [False] * 81 + [True] * 40
    naive = ["opioid_naive_days_limit" in fired(r) for r in got]
    assert naive == [True] + [False] * 40 + [True] * 40 + [False] * 40


# --------------------------------------------------------------------------- random crowds

_CROWD_NDCS = [OXY, OXY, OXY_ER, OXY_ER40, MORPH_ER, METH, FENT, BUP_PATCH, ALPRAZ, GABA]


@st.composite
def crowded_books(draw):
    """1-3 members with up to 90 claims each, mostly within a few days of each other."""
    pharmacy = []
    for m in range(draw(st.integers(1, 3))):
        span = draw(st.sampled_from([0, 3, 20, 120]))
        for _ in range(draw(st.integers(0, 90))):
            pharmacy.append(
                fill(
                    f"M{m}",
                    draw(st.integers(0, span)),
                    draw(st.sampled_from(_CROWD_NDCS)),
                    draw(st.sampled_from([1.0, 3.0, 7.0, 10.0, 30.0, 45.0, 61.0, 90.0])),
                    draw(st.integers(1, 40)),
                    prescriber=draw(st.sampled_from([None, "P1", "P2", "P3", "P4"])),
                )
            )
    order = draw(st.permutations(range(len(pharmacy))))
    pharmacy = [pharmacy[i] for i in order]
    overrides = {}
    if draw(st.booleans()):
        overrides = {
            "mme_care_coordination.min_prescribers": draw(st.integers(0, 4)),
            "opioid_naive_days_limit.lookback_days": draw(st.sampled_from([1, 2, 10])),
        }
    return pharmacy, overrides


@HYPOTHESIS_SETTINGS
@given(crowded_books())
def test_engine_matches_oracle_bit_for_bit_on_crowded_members(book):
    pharmacy, overrides = book
    replay_exact(pharmacy, None, overrides)


# --------------------------------------------------------------------------- complexity

N_SKEW = 20_000 if numba.config.DISABLE_JIT else 200_000


def _kernel_run(table: pa.Table, threads=1):
    cfg = load_config(reference=REFERENCE)
    data = ingest(table, None, cfg, clock=Clock())
    claims = encode_used(data)
    ref_row = data.pharmacy_rows.ref_index[claims.row]
    out = run_edits_kernel(claims, ref_row, drug_keys(cfg.reference), load_edits(), threads)
    return claims, out


def _one_member(n: int, days, supply, ndc_codes, prescriber_codes) -> pa.Table:
    ndcs = np.array([OXY, OXY_ER, MORPH_ER, ALPRAZ])
    first = (day(0) - dt.date(1970, 1, 1)).days
    return pa.table(
        {
            "member_id": pa.array(np.full(n, "SKEW")),
            "fill_date": pa.array((np.asarray(days) + first).astype(np.int32)).cast(pa.date32()),
            "ndc": pa.array(ndcs[ndc_codes]),
            "quantity": pa.array(np.full(n, 20.0)),
            "days_supply": pa.array(np.asarray(supply, np.int64)),
            "prescriber_id": pa.array(np.char.add("P", np.asarray(prescriber_codes).astype(str))),
            "pharmacy_id": pa.array(np.full(n, "PH1")),
        }
    )  # fmt: skip


def _steps_bound(n: int) -> int:
    # measured: 0.4 n log2 n (same day), 1.5 n log2 n (a year, 1..90 days' supply)
    return 8 * n * math.ceil(math.log2(n))


def test_same_day_skewed_member_takes_n_log_n_steps_and_is_right():
    n = N_SKEW
    k = np.arange(n)
    # oxycodone 20 x 10 mg / 10 days x 1.5 = 30 MME; one claim in 5 a benzodiazepine
    ndc_codes = np.where(k % 5 == 4, 3, 0)
    presc = k % 7
    claims, out = _kernel_run(_one_member(n, np.zeros(n), np.full(n, 10), ndc_codes, presc))
    work = int(out.work.sum())
    assert work <= _steps_bound(n), work  # the replay before: n**2 / 2 = 2e10
    opioid = ndc_codes == 0
    assert np.array_equal(claims.row, k)  # one member, one day: input order
    before = np.concatenate([[0], np.cumsum(opioid)[:-1]])  # opioids filled before
    assert np.array_equal(out.cumulative, 30.0 * (before + opioid))
    seen, want = set(), []
    for i in range(n):
        want.append(len(seen | {presc[i]}) if opioid[i] else len(seen))
        if opioid[i]:
            seen.add(presc[i])
    assert np.array_equal(out.active_prescribers, want)
    concurrent = (out.fired & contract.E_OPIOID_BENZO) != 0
    benzos_before = np.concatenate([[0], np.cumsum(~opioid)[:-1]])
    assert np.array_equal(concurrent, np.where(opioid, benzos_before > 0, before > 0))


def test_year_skewed_member_takes_n_log_n_steps():
    # claims spread over a year with 1..90 days' supply: the heaps fill and drain every day
    n = N_SKEW
    rng = np.random.default_rng(5)
    days = np.sort(rng.integers(0, 365, n))
    claims, out = _kernel_run(
        _one_member(n, days, rng.integers(1, 91, n), rng.integers(0, 4, n), rng.integers(0, 50, n))
    )
    work = int(out.work.sum())
    assert work <= _steps_bound(n), work
    assert out.evaluated.sum() == n


def test_replay_chunks_on_containers_count_work_per_chunk():
    from rxrisk.kernels.roles import BENZO, OPIOID

    # member 0: three opioids on day 0; member 1: one benzodiazepine and one other fill
    claims = contract.EditClaims(
        fill_offsets=np.array([0, 3, 5], np.intp),
        start=np.array([0, 0, 0, 5, 5], np.int32),
        end=np.array([9, 9, 9, 14, 14], np.int32),
        role=np.array([OPIOID, OPIOID, OPIOID, BENZO, 0], np.uint8),
        mme=np.array([10.0, 20.0, 30.0, 0.0, 0.0]),
        prescriber=np.array([0, 1, 0, 1, -1], np.int32),
        ingredient=np.array([0, 1, -1, -1, -1], np.int32),
        long_acting=np.array([1, 1, 0, 0, 0], np.int8),
        med_offsets=np.array([0, 0, 0], np.intp),
        med_day=np.zeros(0, np.int32),
        med_mask=np.zeros(0, np.uint8),
    )
    params = contract.EditParams(
        exclusion_bits=0, dx_days=365, care_floor=90.0, care_min_prescribers=2, hard_floor=200.0,
        naive_lookback=90, naive_max_days=7, n_prescribers=2, n_ingredients=2,
        sequential_max=contract.SEQUENTIAL_MAX,
    )  # fmt: skip
    out = contract.EditOutputs.zeros(n_fills=5, n_chunks=2)
    each_chunk(replay_chunk, len(out.work), claims, params, out)
    assert list(out.evaluated) == [True, True, True, True, False]
    assert list(out.cumulative) == [10.0, 30.0, 60.0, 0.0, 0.0]
    assert list(out.active_prescribers) == [1, 2, 2, 0, 0]
    dup = contract.E_DUPLICATE_LA
    assert list(out.fired & dup) == [0, dup, 0, 0, 0]
    assert list(out.fired & contract.E_OPIOID_BENZO) == [0, 0, 0, 0, 0]  # members apart
    assert out.work[0] > 0 and out.work[1] > 0  # one member per chunk


def test_end_to_end_on_a_skewed_member_matches_the_kernel_run():
    n = 2_000
    rng = np.random.default_rng(11)
    table = _one_member(n, np.sort(rng.integers(0, 30, n)), rng.integers(1, 31, n), rng.integers(0, 4, n), rng.integers(0, 9, n))  # fmt: skip
    result = rxrisk.replay_edits(table, reference=REFERENCE, threads=2)
    claims, out = _kernel_run(table, threads=1)
    sel = np.flatnonzero(out.evaluated)
    got = result.claims.column("cumulative_mme").to_numpy()
    assert got.tobytes() == out.cumulative[sel].tobytes()

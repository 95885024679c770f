"""Out-of-scope rows first (the bucket order of every row) and huge quantities, on every path
that reads claims: in memory, streaming, ``edits``, and the naive oracle.

The hand rows live in tests/cases.py (``BUCKET_ORDER_ROWS``, ``MEDICAL_ORDER_ROWS``,
``HUGE_QUANTITY_ROWS``), so test_score_vs_naive.py, test_stream.py and test_spark.py also
hold every engine to the oracle on them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import rxrisk
from rxrisk.engines.stream import StreamOptions
from rxrisk.ingest import validate

from cases import (
    BUCKET_ORDER_ROWS,
    CASES,
    FAR_FUTURE,
    FENT,
    HUGE_QUANTITY_ROWS,
    MEDICAL_ORDER_ROWS,
    OXY,
    UNTRACKED,
    A,
    fill,
    med,
    medical_table,
    pharmacy_table,
    reference_dict,
    reference_table,
)
from naive import _covered_days, naive_score

REF = reference_dict()
PHARMACY_CASES = {"bucket_order": BUCKET_ORDER_ROWS, "huge_quantity": HUGE_QUANTITY_ROWS}


def _labels(bucket, reason, buckets, reasons) -> list[str]:
    return [
        f"rejected:{reasons[r]}" if buckets[b] == "rejected" else buckets[b]
        for b, r in zip(bucket.tolist(), reason.tolist(), strict=True)
    ]


def _ingest(pharmacy_rows, medical_rows=None):
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.select import ingest

    cfg = load_config(reference=reference_table())
    medical = None if medical_rows is None else medical_table(medical_rows)
    return ingest(pharmacy_table(pharmacy_rows), medical, cfg, clock=Clock())


def _score(rows, medical=None, *, as_of, stream=None, **kw):
    return rxrisk.score(
        pharmacy_table(rows),
        None if medical is None else medical_table(medical),
        as_of=as_of,
        reference=reference_table(),
        stream=stream,
        **kw,
    )


def _row(result, member, as_of):
    rows = [
        r for r in result.members.to_pylist() if r["member_id"] == member and r["as_of"] == as_of
    ]
    assert len(rows) == 1, (member, as_of)
    return rows[0]


# --------------------------------------------------------------------------- bucket order


@pytest.mark.parametrize("name", sorted(PHARMACY_CASES))
def test_pharmacy_labels_naive_and_in_memory(name):
    expected = [label for _, label in PHARMACY_CASES[name]]
    case = CASES[name]
    assert naive_score(case.pharmacy, None, case.as_of, REF).pharmacy_buckets == expected
    rows = _ingest(case.pharmacy).pharmacy_rows
    got = _labels(rows.bucket, rows.reason, validate.PHARMACY_BUCKETS, validate.PHARMACY_REASONS)
    assert got == expected


def test_medical_labels_naive_and_in_memory():
    expected = [label for _, label in MEDICAL_ORDER_ROWS]
    case = CASES["medical_order"]
    assert naive_score(case.pharmacy, case.medical, case.as_of, REF).medical_buckets == expected
    rows = _ingest(case.pharmacy, case.medical).medical_rows
    got = _labels(rows.bucket, rows.reason, validate.MEDICAL_BUCKETS, validate.MEDICAL_REASONS)
    assert got == expected
    # only used rows carry category bits
    assert (rows.mask[rows.bucket != validate.MEDICAL_BUCKETS.index("used")] == 0).all()


@pytest.mark.parametrize("name", ["bucket_order", "medical_order", "huge_quantity"])
@pytest.mark.parametrize("all_members", [False, True])
def test_streaming_is_the_in_memory_result(name, all_members):
    case = CASES[name]
    kw = dict(as_of=case.as_of, quarantine=True, all_members=all_members)
    whole = _score(case.pharmacy, case.medical, **kw)
    options = StreamOptions(
        batch_rows=3, partitions=2, claim_partitions=3, memory_bytes=0, min_partition_rows=1
    )
    streamed = _score(case.pharmacy, case.medical, stream=options, **kw)
    assert streamed.members.equals(whole.members)
    for block in ("pharmacy", "medical"):
        assert streamed.audit[block] == whole.audit[block]
    assert streamed.quarantine.equals(whole.quarantine)


def test_untracked_and_rejected_rows_have_no_claim_keys(monkeypatch):
    """Streaming keeps claim keys of the tracked rows that passed the checks only."""
    from rxrisk.engines import spool

    spooled: list[int] = []
    add = spool.Spool.add

    def record(self, table, part=None):
        if self.name == "claims":
            spooled.extend(table.column("row").to_pylist())
        return add(self, table, part)

    monkeypatch.setattr(spool.Spool, "add", record)
    rows = [r for r, _ in BUCKET_ORDER_ROWS]
    options = StreamOptions(batch_rows=4, claim_partitions=2, min_partition_rows=1)
    _score(rows, as_of=[A], stream=options)
    labels = [label for _, label in BUCKET_ORDER_ROWS]
    want = [
        i
        for i, (r, label) in enumerate(zip(rows, labels, strict=True))
        if r["claim_id"] and label in ("used", "reversal", "reversed", "duplicate")
    ]
    assert sorted(spooled) == want
    assert want  # the case has matching rows at all


def test_untracked_reversal_and_duplicate_leave_the_tracked_row_used():
    rows = [
        fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="K1", status="R"),
        fill("M1", -9, UNTRACKED, 2.0, 10, claim_id="K2"),
        fill("M1", -9, OXY, 6.0, 1, claim_id="K1"),
        fill("M1", -9, OXY, 6.0, 1, claim_id="K2"),
    ]
    for stream in (None, StreamOptions(batch_rows=1, claim_partitions=2, min_partition_rows=1)):
        r = _score(rows, as_of=[A], stream=stream)
        b = r.audit["pharmacy"]["buckets"]
        assert (b["untracked"], b["used"], b["reversal"], b["reversed"], b["duplicate"]) == (
            2,
            2,
            0,
            0,
            0,
        )
        # two used fills of 10 mg x 6 / 1 day x 1.5 = 90 MME each, on A-9
        assert _row(r, "M1", A)["mme_peak_90d"] == pytest.approx(180.0)


def test_all_members_counts_every_non_blank_member_id():
    """``all_members``: a member id seen on any row counts, whatever its bucket, including
    untracked rows (whose member id is not otherwise checked); blank ids are no member."""
    pharmacy = [
        fill("U1", None, UNTRACKED, -1.0, 0, status="X"),  # untracked only (bad fields)
        fill(None, -9, UNTRACKED, 2.0, 10),  # untracked, null member: no member
        fill("  ", -9, UNTRACKED, 2.0, 10),  # untracked, blank member: no member
        fill("N1", -9, None, 2.0, 10),  # rejected ndc only
        fill("D1", None, OXY, 2.0, 10),  # rejected fill_date only
        fill("M1", -9, OXY, 6.0, 1),  # used
    ]
    medical = [
        med("C1", None, "ICD10CM", "J45.909"),  # unclassified only
        med("T1", -5, "ICD9CM", "304.00"),  # rejected code_type only
        med(None, -5, "ICD10CM", "J45.909"),
    ]
    want = ["C1", "D1", "M1", "N1", "T1", "U1"]
    whole = _score(pharmacy, medical, as_of=[A], all_members=True)
    assert whole.members.column("member_id").to_pylist() == want
    streamed = _score(
        pharmacy,
        medical,
        as_of=[A],
        all_members=True,
        stream=StreamOptions(batch_rows=2, partitions=2, min_partition_rows=1),
    )
    assert streamed.members.equals(whole.members)


# --------------------------------------------------------------------------- huge quantities


def test_huge_patch_covers_every_window_with_its_true_mme():
    case = CASES["huge_quantity"]
    for stream in (None, StreamOptions(batch_rows=2, partitions=3, min_partition_rows=1)):
        r = _score(case.pharmacy, as_of=case.as_of, stream=stream)
        for a in (A, FAR_FUTURE):
            row = _row(r, "H1", a)
            # 25 mcg/hr x 1e9 patches / 3e9 days x 7.2 = 60 MME a day, on every day
            assert row["mme_today"] == pytest.approx(60.0)
            for w in (90, 180, 365):
                expected_days = 30 if a == A else w  # filled on A-29
                assert row[f"opioid_days_{w}d"] == expected_days
                assert row[f"mme_total_{w}d"] == pytest.approx(60.0 * expected_days)
        # no factor: covered to the end of every window, without MME
        row = _row(r, "H6", FAR_FUTURE)
        assert row["opioid_days_365d"] == 365 and row["mme_today"] == 0.0
        assert _row(r, "H8", FAR_FUTURE)["mme_today"] == pytest.approx(60.0)
        # the benzodiazepine's 30 days end long before
        assert "H7" not in {m for m, d in _members_at(r, FAR_FUTURE)}


def _members_at(result, as_of):
    return [
        (m, d)
        for m, d in zip(
            result.members.column("member_id").to_pylist(),
            result.members.column("as_of").to_pylist(),
            strict=True,
        )
        if d == as_of
    ]


def test_non_finite_daily_mme_is_rejected_for_quantity():
    case = CASES["huge_quantity"]
    r = _score(case.pharmacy, as_of=case.as_of, quarantine=True)
    reasons = r.audit["pharmacy"]["rejected_by_reason"]
    assert reasons["quantity"] == 3 and reasons["days_supply"] == 1
    q = r.quarantine
    assert q.column("reject_reason").to_pylist() == [
        "quantity",
        "quantity",
        "quantity",
        "days_supply",
    ]
    assert [int(x) for x in q.column("row_number").to_pylist()] == [2, 3, 4, 5]


def test_covered_days_never_overflow():
    from rxrisk.ingest.drugs import supply_days
    from rxrisk.kernels.fills import LAST_DAY, MAX_COVERED_DAYS, covered, last_day

    qty = np.array([10.0, 1e9, 1e300, 1e308, np.inf])
    ds = np.full(len(qty), 30, np.int64)
    dpu = np.full(len(qty), 3.0)
    want = [30, MAX_COVERED_DAYS, MAX_COVERED_DAYS, MAX_COVERED_DAYS, MAX_COVERED_DAYS]
    # the naive reading is uncapped (exact integers, inf past the floats): the cap is the
    # only difference
    naive_days = [_covered_days(float(q), 30, {"days_per_unit": 3.0}) for q in qty]
    assert [min(d, MAX_COVERED_DAYS) for d in naive_days] == want
    assert [int(covered(ds[i], qty[i], dpu[i])) for i in range(len(qty))] == want
    assert supply_days(ds, qty, dpu)[:3].tolist() == [30.0, 3e9, 3e300]
    assert int(last_day(np.int32(LAST_DAY - 5), np.int64(MAX_COVERED_DAYS))) == LAST_DAY
    assert int(last_day(np.int32(-10), np.int64(30))) == 19


def test_last_covered_day_is_capped_at_the_last_date():
    """A fill dated near the last date32 day: its coverage ends there, not before its start."""
    from rxrisk.kernels.fills import LAST_DAY
    from rxrisk.scoring.encode import encode_used

    rows = [fill("M1", -9, FENT, 10.0, 30), fill("M2", -9, FENT, 1e9, 30)]
    table = pharmacy_table(rows)
    late = pa.array([LAST_DAY - 5, LAST_DAY - 100], pa.int32()).cast(pa.date32())
    table = table.set_column(1, "fill_date", late)
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.select import ingest

    cfg = load_config(reference=reference_table())
    claims = encode_used(ingest(table, None, cfg, clock=Clock()))
    assert claims.start.tolist() == [LAST_DAY - 5, LAST_DAY - 100]
    assert claims.end.tolist() == [LAST_DAY, LAST_DAY]


def test_edits_see_the_huge_patch():
    """``rxrisk edits``: the 1e9-patch claim covers more days than any naive limit, with its
    true daily MME; the 1e308 one is rejected."""
    from rxrisk.edits import replay_edits

    rows = [fill("H1", -29, FENT, 1e9, 30), fill("H2", -9, FENT, 1e308, 30)]
    res = replay_edits(pharmacy_table(rows), reference=reference_table())
    got = res.claims.to_pylist()
    assert [c["member_id"] for c in got] == ["H1"]
    assert got[0]["claim_mme"] == pytest.approx(60.0)
    assert got[0]["opioid_naive_days_limit"] is True
    assert res.audit["pharmacy"]["rejected_by_reason"]["quantity"] == 1


def test_huge_quantity_far_future_matches_naive_row_for_row():
    # the oracle covers 3e9 days exactly (Python integers); the engine caps coverage far
    # beyond every date: the same member rows
    case = CASES["huge_quantity"]
    want = naive_score(case.pharmacy, None, case.as_of, REF)
    got = _score(case.pharmacy, as_of=case.as_of)
    assert [(r["member_id"], r["as_of"]) for r in got.members.to_pylist()] == [
        (r["member_id"], r["as_of"]) for r in want.members
    ]
    assert dt.date(9999, 12, 31) in case.as_of

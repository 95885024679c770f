"""Each kernel against its array-level plain-Python reference (tests/naive.py)."""

import math
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rxrisk.kernels.distinct import covers_horizon, fill_counts
from rxrisk.kernels.events import NO_DATE, medical_lookback
from rxrisk.kernels.timeline import build_timeline
from rxrisk.kernels.windows import longest_run, prefix_sums, rolling_max, window_sums

import naive

EXAMPLES = int(os.environ.get("RXRISK_HYPOTHESIS_EXAMPLES", "100"))
WINDOWS = np.array([3, 7, 10], np.int64)


def _fills(draw_list):
    rows = sorted(draw_list, key=lambda r: r[0])
    start = np.array([r[0] for r in rows], np.int32)
    end = np.array([r[0] + r[1] - 1 for r in rows], np.int32)
    role = np.array([r[2] for r in rows], np.uint8)
    mme = np.array([r[3] if r[2] & 1 else 0.0 for r in rows], np.float64)
    presc = np.array([r[4] for r in rows], np.int32)
    pharm = np.array([r[5] for r in rows], np.int32)
    return start, end, role, mme, presc, pharm


fill_rows = st.lists(
    st.tuples(
        st.integers(-5, 30),  # start day
        st.integers(1, 12),  # covered days
        st.sampled_from([0, 1, 2 | 4, 4, 8, 16, 1]),  # role bits
        st.sampled_from([0.0, 10.0, 45.0, 90.0, 89.999999, 120.5, 1e-3]),
        st.integers(-1, 4),  # prescriber code
        st.integers(-1, 3),  # pharmacy code
    ),
    max_size=12,
)


def _timeline(start, end, role, mme, lo, length):
    arrays = [np.full(length + 1, 7, np.float64)] + [
        np.full(length + 1, 7, np.int32) for _ in range(3)
    ]
    any_op = build_timeline(start, end, role, mme, 0, len(start), lo, length, *arrays)
    return any_op, arrays


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(fill_rows, st.integers(10, 30))
def test_timeline_and_windows_match_reference(rows, a):
    start, end, role, mme, _, _ = _fills(rows)
    lo = a - int(WINDOWS[-1]) + 1
    length = a - lo + 1
    any_op, (mme_day, op_day, bz_day, cns_day) = _timeline(start, end, role, mme, lo, length)
    for i in range(length):
        v, op, bz, cn = naive.kernel_mme_on_day(start, end, role, mme, lo + i)
        assert math.isclose(mme_day[i], v, rel_tol=1e-9, abs_tol=1e-9)
        assert (op_day[i], bz_day[i], cns_day[i]) == (op, bz, cn)
    assert any_op == any(op_day[:length] > 0)
    counts = np.zeros((3, 8), np.int32)
    mmes = np.zeros((3, 3), np.float64)
    floor = 90.0 - 1e-9
    window_sums(mme_day, op_day, bz_day, cns_day, a - lo, WINDOWS, floor, counts, mmes)
    for k, w in enumerate(WINDOWS):
        op_days, hd, bz, cn, total, avg, peak = naive.kernel_window(
            start, end, role, mme, a, int(w), floor
        )
        assert (counts[k, 3], counts[k, 4], counts[k, 6], counts[k, 7]) == (op_days, hd, bz, cn)
        for got, want in zip(mmes[k], (total, avg, peak), strict=True):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    series = [float(x) for x in mme_day[:length]]
    prefix = np.zeros(length + 1)
    prefix_sums(mme_day, length, prefix)
    for span in (1, 4, 10, 11):
        want = naive.kernel_rolling_max(series, int(WINDOWS[-1]), span)
        assert math.isclose(
            rolling_max(prefix, a - lo, int(WINDOWS[-1]), span), want, rel_tol=1e-9, abs_tol=1e-9
        )
    assert longest_run(mme_day, a - lo, int(WINDOWS[-1]), floor) == naive.kernel_longest_run(
        series, floor
    )


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(fill_rows, st.integers(-3, 40))
def test_fill_counts_match_reference(rows, a):
    start, end, role, _, presc, pharm = _fills(rows)
    counts = np.zeros((3, 8), np.int32)
    seen_p = np.zeros(8, np.int64)
    seen_q = np.zeros(8, np.int64)
    mat, nal = fill_counts(
        start, role, presc, pharm, 0, len(start), a, WINDOWS, seen_p, seen_q, 1, counts
    )
    for k, w in enumerate(WINDOWS):
        want = naive.kernel_fill_counts(start, role, presc, pharm, a, int(w))
        assert (counts[k, 0], counts[k, 1], counts[k, 2], counts[k, 5]) == want[:4]
    assert (mat, nal) == naive.kernel_fill_counts(start, role, presc, pharm, a, int(WINDOWS[-1]))[
        4:
    ]
    first = a - int(WINDOWS[-1]) + 1
    assert covers_horizon(start, end, 0, len(start), a, int(WINDOWS[-1])) == any(
        s <= a and e >= first for s, e in zip(start, end, strict=True)
    )


def test_fill_counts_window_edges():
    # fills on a-w (out), a-w+1 (in), a (in), a+1 (out) for w = 3, a = 10
    start = np.array([7, 8, 10, 11], np.int32)
    role = np.ones(4, np.uint8)
    ids = np.array([0, 1, 2, 3], np.int32)
    counts = np.zeros((3, 8), np.int32)
    fill_counts(
        start,
        role,
        ids,
        ids,
        0,
        4,
        10,
        WINDOWS,
        np.zeros(4, np.int64),
        np.zeros(4, np.int64),
        1,
        counts,
    )
    assert counts[0, :3].tolist() == [2, 2, 2]
    assert counts[1, :3].tolist() == [3, 3, 3]


def test_empty_member_and_single_row():
    empty = np.zeros(0, np.int32)
    any_op, (mme_day, op_day, _, _) = _timeline(
        empty, empty, np.zeros(0, np.uint8), np.zeros(0), 0, 10
    )
    assert not any_op and mme_day[:10].sum() == 0 and op_day[:10].sum() == 0
    assert medical_lookback(empty, np.zeros(0, np.uint8), 0, 0, 10, 3, 5, 1, 2) == (
        0,
        0,
        NO_DATE,
        0,
    )
    any_op, (mme_day, _, _, _) = _timeline(
        np.array([2], np.int32),
        np.array([4], np.int32),
        np.array([1], np.uint8),
        np.array([60.0]),
        0,
        10,
    )
    assert any_op and mme_day[:10].tolist() == [0, 0, 60, 60, 60, 0, 0, 0, 0, 0]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 127)), max_size=15),
    st.integers(0, 45),
    st.integers(1, 20),
    st.integers(1, 30),
)
def test_medical_lookback_matches_reference(rows, a, ed_days, dx_days):
    rows = sorted(rows)
    day = np.array([r[0] for r in rows], np.int32)
    mask = np.array([r[1] for r in rows], np.uint8)
    ed, od, last, bits = medical_lookback(day, mask, 0, len(day), a, ed_days, dx_days, 1, 2)
    w_ed, w_od, w_last, w_bits = naive.kernel_medical(day, mask, a, ed_days, dx_days, 1, 2)
    assert (ed, od, bits) == (w_ed, w_od, w_bits)
    assert last == (NO_DATE if w_last is None else w_last)


def _naive_claim_match(ids, is_reversal, is_candidate):
    clean = [None if i is None or not i.strip(" \t\r\n") else i.strip(" \t\r\n") for i in ids]
    rev_ids = {c for c, r in zip(clean, is_reversal, strict=True) if r and c is not None}
    reversed_, dup, seen = [], [], set()
    for c, cand in zip(clean, is_candidate, strict=True):
        r = bool(cand and c is not None and c in rev_ids)
        d = bool(cand and c is not None and not r and c in seen)
        if cand and c is not None and not r:
            seen.add(c)
        reversed_.append(r)
        dup.append(d)
    return reversed_, dup


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [None, "", " ", "a", " a", "a\t", "b", "ab", "ba", "c1", "c2", "\r\nc1"]
            ),
            st.booleans(),
            st.booleans(),
        ),
        max_size=25,
    ),
    st.sampled_from([None, 60, 63]),
)
def test_claim_id_matching_survives_hash_collisions(rows, row_bits):
    import pyarrow as pa

    from rxrisk.validate import match_claim_ids

    ids = [r[0] for r in rows]
    is_rev = np.array([r[1] for r in rows], bool)
    is_cand = np.array([r[2] and not r[1] for r in rows], bool)
    col = pa.chunked_array([pa.array(ids[:5], pa.string()), pa.array(ids[5:], pa.string())])
    # row_bits 60 / 63 leave 4 / 1 hash bits: nearly every id collides, so the string
    # comparison inside each run is what keeps different ids apart.
    got = match_claim_ids(col, is_rev, is_cand, row_bits=row_bits)
    want = _naive_claim_match(ids, is_rev, is_cand)
    assert got[0].tolist() == want[0] and got[1].tolist() == want[1]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=300),
    st.integers(1, 9),
    st.sampled_from([0, 20, 40, 63]),
)
def test_parallel_sort_matches_numpy(values, n_chunks, shift):
    from rxrisk.kernels.sorting import sort_keys

    keys = np.array([v >> shift for v in values], np.uint64)
    assert np.array_equal(sort_keys(keys, n_chunks), np.sort(keys))

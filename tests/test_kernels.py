"""Each kernel against its array-level plain-Python reference (tests/naive.py)."""

import math
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rxrisk.kernels import roles
from rxrisk.kernels.distinct import covers_horizon, fill_counts
from rxrisk.kernels.events import NO_DATE, medical_lookback
from rxrisk.kernels.timeline import build_timeline, opioid_span
from rxrisk.kernels.windows import fill_averages, rolling_max, window_sums

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
    prefix = np.full(length + 1, 7.0)
    any_op = build_timeline(start, end, role, mme, 0, len(start), lo, length, *arrays, prefix)
    return any_op, arrays, prefix


def _window_figures(arrays, prefix, first, last, ia, floor):
    counts = np.zeros((3, 8), np.int32)
    mmes = np.zeros((3, 3), np.float64)
    run = window_sums(*arrays, first, last, ia, WINDOWS, floor, counts, mmes)
    rolling = [rolling_max(prefix, first, last, ia, int(WINDOWS[-1]), s) for s in (1, 4, 10, 11)]
    return counts, mmes, run, rolling


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(fill_rows, st.integers(10, 30))
def test_timeline_and_windows_match_reference(rows, a):
    start, end, role, mme, _, _ = _fills(rows)
    lo = a - int(WINDOWS[-1]) + 1
    length = a - lo + 1
    any_op, arrays, prefix = _timeline(start, end, role, mme, lo, length)
    mme_day, op_day, bz_day, cns_day = arrays
    for i in range(length):
        v, op, bz, cn = naive.kernel_mme_on_day(start, end, role, mme, lo + i)
        assert math.isclose(mme_day[i], v, rel_tol=1e-9, abs_tol=1e-9)
        assert (op_day[i], bz_day[i], cns_day[i]) == (op, bz, cn)
        assert prefix[i + 1] == prefix[i] + mme_day[i]
    assert any_op == any(op_day[:length] > 0)
    floor = 90.0 - 1e-9
    counts, mmes, run, rolling = _window_figures(arrays, prefix, 0, length - 1, a - lo, floor)
    for k, w in enumerate(WINDOWS):
        op_days, hd, bz, cn, total, avg, peak = naive.kernel_window(
            start, end, role, mme, a, int(w), floor
        )
        assert (counts[k, 3], counts[k, 4], counts[k, 6], counts[k, 7]) == (op_days, hd, bz, cn)
        for got, want in zip(mmes[k], (total, avg, peak), strict=True):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    series = [float(x) for x in mme_day[:length]]
    for got, span in zip(rolling, (1, 4, 10, 11), strict=True):
        want = naive.kernel_rolling_max(series, int(WINDOWS[-1]), span)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    assert run == naive.kernel_longest_run(series, floor)

    # The timeline of the opioid span only gives exactly the same figures.
    first, last = opioid_span(start, end, role, 0, len(start), lo, length)
    assert (first <= last) == any_op
    if any_op:
        assert op_day[first] > 0 and op_day[last] > 0
        assert not (op_day[:first] > 0).any() and not (op_day[last + 1 : length] > 0).any()
        _, part, part_prefix = _timeline(start, end, role, mme, lo + first, last - first + 1)
        got = _window_figures(part, part_prefix, first, last, a - lo, floor)
        want = (counts, mmes, run, rolling)
        assert np.array_equal(got[0], want[0]) and got[2] == want[2]
        assert got[1].tobytes() == want[1].tobytes()  # the same float sums, bit for bit
        assert np.array(got[3]).tobytes() == np.array(want[3]).tobytes()
    else:
        assert (first, last) == (length, -1)


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


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(fill_rows, st.integers(-3, 40))
def test_fill_averages_match_reference(rows, a):
    start, end, role, mme, _, _ = _fills(rows)
    mmes = np.zeros((3, 3), np.float64)
    mmes[:, 0] = [12.5, 0.0, 731.0]  # the windows' MME totals (W_MME_TOTAL)
    averages = np.full((3, 3), 7.0)
    fill_averages(start, end, role, mme, 0, len(start), a, WINDOWS, mmes, averages)
    for k, w in enumerate(WINDOWS):
        want = naive.kernel_fill_averages(start, end, role, mme, a, int(w), mmes[k, 0])
        for got, value in zip(averages[k], want, strict=True):
            assert math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-12)


def test_fill_averages_window_edges():
    # opioid fills on a-w (out), a-w+1 (in), a (in), a+1 (out) for w = 3, a = 10, and a benzo
    start = np.array([7, 8, 9, 10, 11], np.int32)
    end = start + np.array([29, 9, 4, 0, 99], np.int32)  # 30, 10, 5, 1 and 100 covered days
    role = np.array([1, 1, 2, 1, 1], np.uint8)
    mme = np.array([15.0, 60.0, 0.0, 90.0, 1000.0])
    mmes = np.zeros((3, 3), np.float64)
    mmes[:, 0] = [300.0, 700.0, 1000.0]
    averages = np.zeros((3, 3), np.float64)
    fill_averages(start, end, role, mme, 0, len(start), 10, WINDOWS, mmes, averages)
    assert averages[0].tolist() == [100.0, (600.0 + 90.0) / 11, 75.0]
    # windows 7 and 10 also hold the fill on day 7, the day before window 3's first day
    want = [(450.0 + 600.0 + 90.0) / 41, (15.0 + 60.0 + 90.0) / 3]
    assert averages[1].tolist() == [100.0, *want] and averages[2].tolist() == [100.0, *want]
    averages[:] = 7.0
    fill_averages(start, end, role, mme, 0, len(start), 6, WINDOWS, mmes, averages)
    assert averages[:, 1:].tolist() == [[0.0, 0.0]] * 3  # no fill on or before day 6


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
    any_op, (mme_day, op_day, _, _), prefix = _timeline(
        empty, empty, np.zeros(0, np.uint8), np.zeros(0), 0, 10
    )
    assert not any_op and mme_day[:10].sum() == 0 and op_day[:10].sum() == 0
    assert prefix[:11].tolist() == [0.0] * 11
    assert medical_lookback(empty, np.zeros(0, np.uint8), 0, 0, 10, 3, 5, 1, 2) == (
        0,
        0,
        NO_DATE,
        0,
    )
    any_op, (mme_day, _, _, _), prefix = _timeline(
        np.array([2], np.int32),
        np.array([4], np.int32),
        np.array([1], np.uint8),
        np.array([60.0]),
        0,
        10,
    )
    assert any_op and mme_day[:10].tolist() == [0, 0, 60, 60, 60, 0, 0, 0, 0, 0]
    assert prefix[10] == 180.0


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

    from rxrisk.ingest.validate import match_claim_ids

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


def _scores(members, med, as_of, floor, rolling_days=4, definitions=0):
    """Run the member driver on per-member fill rows and medical rows."""
    from rxrisk.kernels.containers import MemberEvents, MemberFills, ScoreOutputs, ScoreParams
    from rxrisk.kernels.layout import n_float_slots, n_int_slots
    from rxrisk.kernels.member_scores import score_members

    parts = [_fills(rows) for rows in members]
    fill_offsets = np.cumsum([0] + [len(p[0]) for p in parts]).astype(np.intp)
    arrays = [np.concatenate([p[c] for p in parts]) for c in range(6)]
    med_rows = [sorted(rows) for rows in med]
    med_offsets = np.cumsum([0] + [len(r) for r in med_rows]).astype(np.intp)
    med_day = np.array([d for rows in med_rows for d, _ in rows], np.int32)
    med_mask = np.array([m for rows in med_rows for _, m in rows], np.uint8)
    n = len(members) * len(as_of)
    ints = np.zeros((n_int_slots(3), n), np.int32)
    floats = np.zeros((n_float_slots(3, definitions), n), np.float64)
    present = np.zeros(n, np.bool_)
    score_members(
        MemberFills(fill_offsets, *arrays, n_prescribers=8, n_pharmacies=8),
        MemberEvents(med_offsets, med_day, med_mask),
        ScoreParams(
            as_of=np.array(as_of, np.int32),
            windows=WINDOWS,
            high_dose_floor=floor,
            rolling_days=rolling_days,
            ed_days=5,
            dx_days=12,
            ed_bit=1,
            od_bit=2,
            n_chunks=3,
            mme_definitions=definitions,
        ),
        ScoreOutputs(ints, floats, present),
    )
    return parts, med_rows, ints, floats, present


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.lists(fill_rows, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 7)), max_size=6),
    st.lists(st.integers(10, 35), min_size=1, max_size=3, unique=True),
    st.sampled_from([90.0 - 1e-9, 45.0, -1e-9, 0.0]),
    st.sampled_from([0, 1]),
)
def test_member_driver_matches_reference(members, med, as_of, floor, definitions):
    as_of = sorted(as_of)
    h = int(WINDOWS[-1])
    meds = [med] + [[] for _ in members[1:]]
    parts, med_rows, ints, floats, present = _scores(
        members, meds, as_of, floor, definitions=definitions
    )
    assert floats.shape[0] == 11 + 9 * definitions
    lo = as_of[0] - h + 1
    for m, (start, end, role, mme, presc, pharm) in enumerate(parts):
        # the driver keeps timeline figures at 0 for a member without opioid coverage
        covered = any(
            (role[i] & 1) and end[i] >= lo and start[i] <= as_of[-1] for i in range(len(start))
        )
        for j, a in enumerate(as_of):
            r = m * len(as_of) + j
            series = [
                naive.kernel_mme_on_day(start, end, role, mme, d)[0]
                for d in range(a - h + 1, a + 1)
            ]
            for k, w in enumerate(WINDOWS):
                col = ints[k * 8 : k * 8 + 8, r]
                fills = naive.kernel_fill_counts(start, role, presc, pharm, a, int(w))
                assert (col[0], col[1], col[2], col[5]) == fills[:4]
                op_days, hd, bz, cn, total, avg, peak = (
                    naive.kernel_window(start, end, role, mme, a, int(w), floor)
                    if covered
                    else (0, 0, 0, 0, 0.0, 0.0, 0.0)
                )
                assert (col[3], col[4], col[6], col[7]) == (op_days, hd, bz, cn)
                got = floats[k * 3 : k * 3 + 3, r]
                for g, want in zip(got, (total, avg, peak), strict=True):
                    assert math.isclose(g, want, rel_tol=1e-9, abs_tol=1e-9)
                if definitions:  # after the 9 window and 2 single floats
                    want = naive.kernel_fill_averages(start, end, role, mme, a, int(w), total)
                    got = floats[11 + k * 3 : 11 + k * 3 + 3, r]
                    for g, value in zip(got, want, strict=True):
                        assert math.isclose(g, value, rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(floats[9, r], series[-1], rel_tol=1e-9, abs_tol=1e-9)
            rolling = naive.kernel_rolling_max(series, h, 4) if covered else 0.0
            assert math.isclose(floats[10, r], rolling, rel_tol=1e-9, abs_tol=1e-9)
            run = naive.kernel_longest_run(series, floor) if covered else 0
            mat_nal = naive.kernel_fill_counts(start, role, presc, pharm, a, h)[4:]
            assert (ints[24, r], *ints[25:27, r]) == (run, *mat_nal)
            day = np.array([d for d, _ in med_rows[m]], np.int32)
            mask = np.array([x for _, x in med_rows[m]], np.uint8)
            ed, od, last, bits = naive.kernel_medical(day, mask, a, 5, 12, 1, 2)
            assert tuple(ints[27:31, r]) == (ed, od, NO_DATE if last is None else last, bits)
            seen = any(s <= a and e >= a - h + 1 for s, e in zip(start, end, strict=True))
            seen = seen or any(a - 12 + 1 <= d <= a for d in day)
            assert present[r] == seen


def _naive_entry(role, strength, factor, days_per_unit):
    """A reference entry for ``tests/naive.py`` from one row of drug arrays (NaN: null)."""

    def value(x):
        return None if np.isnan(x) else float(x)

    return {
        "drug_class": "opioid" if role & roles.OPIOID else "not-opioid",
        "strength_per_unit": value(strength),
        "mme_factor": value(factor),
        "days_per_unit": value(days_per_unit),
    }


def test_fill_arithmetic_matches_the_naive_reading():
    from rxrisk.kernels.fills import covered, daily, supply_days

    rng = np.random.default_rng(5)
    n = 400
    ds = rng.integers(1, 40, n)
    qty = rng.choice([0.5, 1.0, 2.5, 3.0, 10.0, 29.5, 60.0, 1e-3], n)
    dpu = np.where(rng.random(n) < 0.3, rng.choice([1 / 3, 3.0, 0.5, 7.0], n), np.nan)
    role = rng.choice(np.array([0, 1, 2, 6, 8, 16], np.uint8), n)
    strength = np.where(rng.random(n) < 0.1, np.nan, rng.choice([5.0, 10.0, 12.5, 30.0], n))
    factor = np.where(rng.random(n) < 0.1, np.nan, rng.choice([0.15, 1.0, 1.5, 2.4], n))
    for i in range(n):
        entry = _naive_entry(role[i], strength[i], factor[i], dpu[i])
        want_ds = naive._covered_days(float(qty[i]), int(ds[i]), entry)
        assert covered(ds[i], qty[i], dpu[i]) == want_ds
        got = daily(role[i], strength[i], qty[i], supply_days(ds[i], qty[i], dpu[i]), factor[i])
        want = naive._daily_mme(float(qty[i]), want_ds, entry)
        assert np.float64(got).tobytes() == np.float64(want).tobytes()
    assert daily(np.uint8(1), 10.0, 3.0, 0, 1.5) == 0.0  # no division by a zero supply


_IDS = ["", "a", "ab", "b", "a\x00", "é", "M00000012", "M00000002", "0123456789abcdef"]
_IDS += ["0123456789abcdefX", "0123456789abcdefXY", "0123456789abcdefY", "0123456789abcdef\x00"]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(_IDS), st.text("ab\x00é9", max_size=19))),
    st.integers(1, 4),
)
def test_string_dictionary_matches_reference(values, n_parts):
    import pyarrow as pa

    from rxrisk.io.arrow import string_chunks
    from rxrisk.kernels.dictionary import (
        K_HI,
        K_LEN,
        K_LO,
        SHORT,
        code_strings,
        key_strings,
        order_long_ids,
        packed_sort_keys,
        string_keys,
    )

    cut = sorted({0, len(values)} | {len(values) * i // n_parts for i in range(n_parts)})
    col = pa.chunked_array(
        [pa.array(values[a:b], pa.string()) for a, b in zip(cut, cut[1:], strict=False)],
        pa.string(),
    )
    n = len(values)
    codes = np.empty(n, np.int32)
    keys = np.empty((max(n, 1), 4), np.uint64)
    tails = np.empty(max(1, sum(len(v.encode()) for v in values if v)), np.uint8)
    state = np.zeros(2, np.int64)
    table = np.full(2, -1, np.int32)  # tiny: grows while coding
    pos = 0
    for offsets, data, null in string_chunks(col):
        table = code_strings(offsets, data, null, codes, pos, table, keys, tails, state)
        pos += len(null)
    first: dict[str, int] = {}
    want = [-1 if v is None else first.setdefault(v, len(first)) for v in values]
    assert codes.tolist() == want
    nd = int(state[0])
    assert nd == len(first)
    keys = keys[:nd]
    offsets, data = key_strings(keys, tails, np.arange(nd, dtype=np.intp))
    got = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(nd)]
    assert got == list(first)

    packed, code_bits = packed_sort_keys(keys, nd)
    if len(packed):
        order = (np.sort(packed) & np.uint64((1 << code_bits) - 1)).astype(np.intp)
    else:
        short = np.minimum(keys[:, K_LEN], np.uint64(SHORT + 1))
        order = np.lexsort((short, keys[:, K_LO], keys[:, K_HI])).astype(np.intp)
    order_long_ids(keys, tails, order)
    offsets, data = key_strings(keys, tails, order)
    got = [bytes(data[offsets[i] : offsets[i + 1]]) for i in range(nd)]
    assert got == sorted(v.encode() for v in first)

    # per-row keys of a whole array: the same words as the dictionary's
    arr = pa.array([v for v in values if v is not None], pa.string())
    offsets, data, _ = next(string_chunks(arr))
    hi, lo, length = (np.empty(len(arr), np.uint64) for _ in range(3))
    longest = string_keys(offsets, data, hi, lo, length, 3) if len(arr) else 0
    assert longest == max((len(v.encode()) for v in arr.to_pylist()), default=0)
    for i, v in enumerate(arr.to_pylist()):
        c = first[v]
        assert (hi[i], lo[i], length[i]) == (keys[c, K_HI], keys[c, K_LO], keys[c, K_LEN])


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(-3, 3))))
def test_integer_dictionary_matches_reference(values):
    from rxrisk.kernels.dictionary import K_HI, code_integers, packed_sort_keys

    n = len(values)
    codes = np.empty(n, np.int32)
    keys = np.empty((max(n, 1), 4), np.uint64)
    state = np.zeros(2, np.int64)
    null = np.array([v is None for v in values], np.bool_)
    ints = np.array([0 if v is None else v for v in values], np.int64)
    code_integers(ints, null, codes, 0, np.full(4, -1, np.int32), keys, state)
    first: dict[int, int] = {}
    want = [-1 if v is None else first.setdefault(v, len(first)) for v in values]
    assert codes.tolist() == want
    nd = int(state[0])
    keys = keys[:nd]
    packed, code_bits = packed_sort_keys(keys, nd)
    if len(packed):
        order = (np.sort(packed) & np.uint64((1 << code_bits) - 1)).astype(np.intp)
    else:
        order = np.argsort(keys[:, K_HI], kind="stable")
    got = (keys[order, K_HI] ^ np.uint64(1 << 63)).view(np.int64).tolist()
    assert got == sorted(first)


def _naive_claims(ph, md, extra, rows):
    """Members sorted, fills and medical rows by (member, day, input position)."""
    key = (lambda v: v.encode()) if any(isinstance(v, str) for v in ph + md + extra) else None
    members = sorted({v for v in ph + md + extra if v is not None}, key=key)
    at = {v: i for i, v in enumerate(members)}
    fills = sorted(range(len(ph)), key=lambda i: (at[ph[i]], rows[i][0], i))
    meds = sorted(range(len(md)), key=lambda i: (at[md[i]], rows[len(ph) + i][0], i))
    return members, at, fills, meds


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    st.sampled_from(["short", "long", "int"]),
    st.lists(st.integers(0, 9), max_size=14),
    st.lists(st.integers(0, 9), max_size=8),
    st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=5),
    st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 3)), min_size=30, max_size=30),
    st.sampled_from([1, 10**6]),
)
def test_encode_groups_rows_like_a_sort(kind, ph_ids, md_ids, extra_ids, rows, per_bucket):
    import pyarrow as pa

    import rxrisk.scoring.encode as enc
    from rxrisk.ingest.tracked import TrackedRows

    names = {
        "short": ["M9", "M10", "M1", "b", "a\x00", "a", "", "é", "M100", "zz", "M2", "M3", "M0"],
        "long": [f"member-0000-{i % 4}-{i}-xxxxxxxxxxxx" for i in range(13)],
        "int": [5, -7, 2**40, 0, 3, -(2**62), 9, 1, 11, 4, 6, 8, 2],
    }[kind]
    typ = pa.int64() if kind == "int" else pa.string()
    ph = [names[i] for i in ph_ids]
    md = [names[i] for i in md_ids]
    extra = [None if i is None else names[i] for i in extra_ids]
    n = len(ph)
    ref_role = np.array([1, 2, 6, 0], np.uint8)
    drugs = enc.DrugTable(
        role=ref_role,
        strength=np.array([10.0, 1.0, np.nan, 2.0]),
        factor=np.array([1.5, np.nan, np.nan, 1.0]),
        days_per_unit=np.array([np.nan, 3.0, np.nan, np.nan]),
        ndc=pa.array(["1", "2", "3", "4"]),
    )

    def chunked(values, t):
        half = len(values) // 2
        return pa.chunked_array([pa.array(values[:half], t), pa.array(values[half:], t)], t)

    old = enc._ROWS_PER_BUCKET
    enc._ROWS_PER_BUCKET = per_bucket  # 1: as many buckets as the keys allow
    try:
        fills = {
            "row": np.arange(n, dtype=np.int64) * 3,
            "member_id": chunked(ph, typ),
            "fill_date": chunked([r[0] for r in rows[:n]], pa.int32()).cast(pa.date32()),
            "quantity": chunked([float(r[1] + 1) for r in rows[:n]], pa.float64()),
            "days_supply": chunked([r[1] + 2 for r in rows[:n]], pa.int32()),
            "prescriber_id": chunked([f"p{r[1]}" for r in rows[:n]], pa.string()),
            "pharmacy_id": chunked(
                [None if r[1] == 0 else f"q{r[0]}" for r in rows[:n]], pa.string()
            ),
            "ref_index": np.array([r[1] for r in rows[:n]], np.int32),
        }
        events = {
            "member_id": chunked(md, typ),
            "service_date": chunked([r[0] for r in rows[n : n + len(md)]], pa.int32()).cast(
                pa.date32()
            ),
            "mask": np.array([r[1] for r in rows[n : n + len(md)]], np.uint8),
        }
        tracked = TrackedRows(pa.table(fills), pa.table(events), chunked(extra, typ))
        claims = enc.encode(tracked, drugs)
    finally:
        enc._ROWS_PER_BUCKET = old
    members, at, fills, meds = _naive_claims(ph, md, extra, rows)
    assert claims.member_ids.to_pylist() == members
    assert (
        claims.fill_offsets.tolist()
        == np.cumsum([0] + [sum(at[v] == g for v in ph) for g in range(len(members))]).tolist()
    )
    assert (
        claims.med_offsets.tolist()
        == np.cumsum([0] + [sum(at[v] == g for v in md) for g in range(len(members))]).tolist()
    )
    assert claims.row.tolist() == [3 * i for i in fills]
    assert claims.start.tolist() == [rows[i][0] for i in fills]
    qty = np.array([float(rows[i][1] + 1) for i in range(n)], np.float64)
    ref = np.array([rows[i][1] for i in range(n)], np.int64)
    entries = [
        _naive_entry(ref_role[r], drugs.strength[r], drugs.factor[r], drugs.days_per_unit[r])
        for r in range(len(ref_role))
    ]
    ds = [naive._covered_days(float(qty[i]), rows[i][1] + 2, entries[ref[i]]) for i in range(n)]
    mme = np.array([naive._daily_mme(float(qty[i]), ds[i], entries[ref[i]]) for i in range(n)])
    assert claims.end.tolist() == [rows[i][0] + ds[i] - 1 for i in fills]
    assert claims.role.tolist() == [ref_role[ref[i]] for i in fills]
    assert claims.mme.tobytes() == mme[fills].tobytes()
    presc: dict[str, int] = {}  # codes in order of first appearance in input order
    codes = [presc.setdefault(f"p{rows[i][1]}", len(presc)) for i in range(n)]
    assert claims.prescriber.tolist() == [codes[i] for i in fills]
    assert claims.n_prescribers == len(presc)
    pharm: dict[str, int] = {}
    codes = [
        None if rows[i][1] == 0 else pharm.setdefault(f"q{rows[i][0]}", len(pharm))
        for i in range(n)
    ]
    assert claims.pharmacy.tolist() == [-1 if codes[i] is None else codes[i] for i in fills]
    assert claims.n_pharmacies == len(pharm)
    assert claims.med_day.tolist() == [rows[n + i][0] for i in meds]
    assert claims.med_mask.tolist() == [rows[n + i][1] for i in meds]

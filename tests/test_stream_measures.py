"""The standard measures on the streaming engine (rxrisk.engines.stream_measures) against the
in-memory route: same detail and summary byte for byte, same audit blocks, whatever the batch
size, partition count and spilling; the enrollment split by member partition."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.engines.partitions import member_parts
from rxrisk.engines.stream import StreamOptions
from rxrisk.engines.stream_measures import split_enrollment
from rxrisk.quality.enrollment import read_enrollment
from rxrisk.quality.settings import MeasureSettings

from cases import combined_book, medical_table, pharmacy_table, reference_table

PRODUCTS = ("part_d", "medicaid", "commercial", None)


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _without_seconds(audit: dict) -> str:
    return json.dumps({k: v for k, v in audit.items() if k != "seconds"})


def in_memory(pharmacy, medical, eligibility, members, periods, settings, **kw):
    """:func:`rxrisk.measures` in memory."""
    return rxrisk.measures(
        pharmacy,
        medical,
        eligibility=eligibility,
        members=members,
        periods=periods,
        config=settings,
        **kw,
    )


def streamed(pharmacy, medical, eligibility, members, periods, settings, options, **kw):
    """:func:`rxrisk.measures` streamed with ``options``."""
    return in_memory(
        pharmacy, medical, eligibility, members, periods, settings, stream=options, **kw
    )


def assert_same(got, want) -> None:
    for a, b in ((got.detail, want.detail), (got.summary, want.summary)):
        assert a.schema == b.schema
        assert a.equals(b)
        assert _parquet_bytes(a) == _parquet_bytes(b)
    assert _without_seconds(got.audit) == _without_seconds(want.audit)
    if want.quarantine is not None:
        # repr: NaN quantities compare unequal to themselves
        assert repr(got.quarantine.to_pylist()) == repr(want.quarantine.to_pylist())
        assert got.quarantine.schema == want.quarantine.schema


def _enrollment_of(member_ids: list, seed: int) -> tuple[pa.Table, pa.Table]:
    """Eligibility spans and birth dates of every member, of several kinds (full years,
    gaps, leavers, switches, none), with a few rejected and duplicate rows."""
    rng = np.random.default_rng(seed)
    spans, births = [], []
    y0 = dt.date(2023, 1, 1)
    for k, m in enumerate(member_ids):
        kind = int(rng.integers(0, 6))
        product = PRODUCTS[int(rng.integers(0, len(PRODUCTS)))]
        start = y0 + dt.timedelta(days=int(rng.integers(0, 200)))
        if kind == 0:  # open-ended
            spans.append((m, start, None, product))
        elif kind == 1:  # a gap, then open-ended with another product
            end = start + dt.timedelta(days=int(rng.integers(200, 500)))
            spans.append((m, start, end, product))
            spans.append((m, end + dt.timedelta(days=int(rng.integers(1, 80))), None, "medicaid"))
        elif kind == 2:  # leaves
            spans.append((m, start, start + dt.timedelta(days=int(rng.integers(100, 600))), None))
        elif kind == 3:  # overlapping spans
            spans.append((m, start, dt.date(2026, 1, 1), "commercial"))
            spans.append((m, start + dt.timedelta(days=30), None, product))
        elif kind == 4:  # touching renewals
            for year in (2023, 2024, 2025):
                spans.append((m, dt.date(year, 1, 1), dt.date(year, 12, 31), product))
        if k % 7 != 3:  # some members have no birth date
            births.append((m, dt.date(1930, 1, 1) + dt.timedelta(days=int(rng.integers(0, 30000)))))
        if k % 11 == 5:
            births.append((m, dt.date(1990, 2, 28)))  # duplicate: the first row is kept
    spans.append((None, y0, None, "part_d"))  # rejected: member_id
    spans.append((member_ids[0], dt.date(2024, 5, 1), dt.date(2024, 4, 1), None))  # end < start
    births.append((None, dt.date(1960, 1, 1)))  # rejected: member_id
    typ = pa.int64() if isinstance(member_ids[0], int) else pa.string()
    eligibility = pa.table(
        {
            "member_id": pa.array([s[0] for s in spans], typ),
            "start_date": pa.array([s[1] for s in spans], pa.date32()),
            "end_date": pa.array([s[2] for s in spans], pa.date32()),
            "product": pa.array([s[3] for s in spans], pa.string()),
        }
    )
    members = pa.table(
        {
            "member_id": pa.array([b[0] for b in births], typ),
            "birth_date": pa.array([b[1] for b in births], pa.date32()),
        }
    )
    return eligibility, members


def _hand_book():
    case = combined_book()
    pharmacy, medical = pharmacy_table(case.pharmacy), medical_table(case.medical)
    ids = set()
    for t in (pharmacy, medical):
        ids |= {m.strip() for m in t.column("member_id").to_pylist() if m and m.strip()}
    eligibility, members = _enrollment_of(sorted(ids), seed=5)
    return pharmacy, medical, eligibility, members


HAND_PERIODS = "2023-07-01:2024-06-30,2024-01-01:2024-12-31,2024-03-01:2024-04-30"

OPTIONS = [
    StreamOptions(),
    StreamOptions(batch_rows=7, partitions=3, claim_partitions=4, min_partition_rows=1),
    StreamOptions(
        batch_rows=50, partitions=5, claim_partitions=2, memory_bytes=0, min_partition_rows=1
    ),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: repr(o)[13:60])
def test_hand_book_same_as_in_memory(options, tmp_path):
    pharmacy, medical, eligibility, members = _hand_book()
    settings = MeasureSettings(min_opioid_fill_dates=1, min_cumulative_days_supply=1, min_age=0)
    kw = dict(reference=reference_table(), max_reject_share=1.0, quarantine=True)
    want = in_memory(pharmacy, medical, eligibility, members, HAND_PERIODS, settings, **kw)
    opts = StreamOptions(**{**options.__dict__, "spill_dir": str(tmp_path)})
    got = streamed(pharmacy, medical, eligibility, members, HAND_PERIODS, settings, opts, **kw)
    assert_same(got, want)
    assert want.detail.num_rows > 20  # the book measures something
    assert len(set(want.detail.column("product").to_pylist())) > 2
    assert want.audit["members"]["buckets"]["rejected"] > 0
    assert list(tmp_path.iterdir()) == []  # spill files removed


def int_book():
    """The hand book's pharmacy rows with integer member ids, their eligibility and members."""
    case = combined_book()
    rows = [dict(r) for r in case.pharmacy if isinstance(r["member_id"], str)]
    names = sorted({r["member_id"].strip() for r in rows if r["member_id"].strip()})
    number = {name: 1000 + 7 * k for k, name in enumerate(names)}
    for r in rows:
        r["member_id"] = number.get(r["member_id"].strip())
    eligibility, members = _enrollment_of(sorted(number.values()), seed=9)
    return pharmacy_table(rows, "int64"), eligibility, members


def as_text_ids(table: pa.Table) -> pa.Table:
    """``table`` with its integer member ids as text, odd ones padded (``" 00123 "``): they
    meet integer pharmacy ids as numbers."""
    ids = [f" 00{v} " if v is not None and v % 2 else v for v in table.column(0).to_pylist()]
    text = [str(v) if isinstance(v, int) else v for v in ids]
    return table.set_column(0, "member_id", pa.array(text, pa.string()))


@pytest.mark.parametrize("text_ids", [False, True])
def test_int_member_ids_without_medical(text_ids):
    pharmacy, eligibility, members = int_book()
    if text_ids:
        eligibility, members = as_text_ids(eligibility), as_text_ids(members)
    settings = MeasureSettings(min_opioid_fill_dates=1, min_cumulative_days_supply=1, min_age=0)
    kw = dict(reference=reference_table(), max_reject_share=1.0)
    want = in_memory(pharmacy, None, eligibility, members, HAND_PERIODS, settings, **kw)
    opts = StreamOptions(batch_rows=11, partitions=4, memory_bytes=0, min_partition_rows=1)
    got = streamed(pharmacy, None, eligibility, members, HAND_PERIODS, settings, opts, **kw)
    assert_same(got, want)
    assert got.detail.schema.field("member_id").type == pa.int64()
    assert got.detail.num_rows > 10


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from rxrisk.synthetic import generate_book

    folder = tmp_path_factory.mktemp("book")
    generate_book(folder, members=1500, seed=3)
    return folder


def test_generated_book_several_partitions_and_spill(book, tmp_path):
    inputs = [book / f"{n}.parquet" for n in ("pharmacy", "medical", "eligibility", "members")]
    settings = MeasureSettings()
    want = in_memory(*inputs, 2025, settings)
    options = StreamOptions(
        batch_rows=3000,
        partitions=6,
        claim_partitions=3,
        memory_bytes=0,
        spill_dir=str(tmp_path),
        min_partition_rows=1,
    )
    got = streamed(*inputs, 2025, settings, options)
    assert_same(got, want)
    assert want.detail.num_rows > 50
    assert list(tmp_path.iterdir()) == []


def test_no_detail_row_gives_the_in_memory_empty_tables():
    pharmacy, medical, eligibility, members = _hand_book()
    periods = 1990
    kw = dict(reference=reference_table(), max_reject_share=1.0)
    want = in_memory(pharmacy, medical, eligibility, members, periods, MeasureSettings(), **kw)
    opts = StreamOptions(batch_rows=9, partitions=3, min_partition_rows=1)
    got = streamed(pharmacy, medical, eligibility, members, periods, MeasureSettings(), opts, **kw)
    assert want.detail.num_rows == 0
    assert_same(got, want)


@pytest.mark.parametrize("n_parts", [1, 2, 5])
def test_split_enrollment_keeps_each_members_rows_in_its_partition(n_parts):
    _, _, eligibility, members = _hand_book()
    enrollment = read_enrollment(
        eligibility, members, member_type=pa.string(), max_reject_share=1.0
    )
    parts = split_enrollment(enrollment, n_parts)
    ids = pa.array(sorted(set(enrollment.eligibility.ids.to_pylist())), pa.string())
    where = member_parts(pa.chunked_array([ids]), n_parts)
    whole_spans, products = enrollment.spans_for(ids)
    whole_births = enrollment.births_for(ids)
    seen = 0
    for p, part in enumerate(parts):
        sub = ids.filter(pa.array(where == p))
        spans, part_products = part.spans_for(sub)
        assert part_products == products
        rows = np.flatnonzero(where == p)
        want_births = whole_births[rows]
        assert np.array_equal(part.births_for(sub), want_births)
        starts = [
            whole_spans.span_start[whole_spans.span_offsets[m] : whole_spans.span_offsets[m + 1]]
            for m in rows
        ]
        got = np.concatenate(starts) if starts else np.zeros(0, np.int32)
        assert np.array_equal(spans.span_start, got)
        seen += len(part.eligibility.ids)
    assert seen == len(enrollment.eligibility.ids)
    assert len(ids) > 20

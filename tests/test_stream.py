"""The streaming path (rxrisk.engines.stream) against the in-memory path: same member table byte for
byte, same audit (but for seconds), same quarantine, whatever the batch size, partition
counts, spilling and input kind; bad input handled the same way; no spill file left."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rxrisk
from rxrisk.engines.batches import should_stream
from rxrisk.engines.partitions import member_parts, string_hashes
from rxrisk.engines.spool import Spool
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError

from cases import combined_book, medical_table, pharmacy_table, reference_table, scenarios
from test_score_vs_naive import HYPOTHESIS_SETTINGS


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _without_seconds(audit: dict) -> str:
    return json.dumps({k: v for k, v in audit.items() if k != "seconds"})


def assert_same(got: rxrisk.Result, want: rxrisk.Result) -> None:
    assert got.members.schema == want.members.schema
    assert got.members.equals(want.members)
    assert _parquet_bytes(got.members) == _parquet_bytes(want.members)
    assert _without_seconds(got.audit) == _without_seconds(want.audit)
    if want.quarantine is not None:
        # repr: NaN quantities compare unequal to themselves
        assert repr(got.quarantine.to_pylist()) == repr(want.quarantine.to_pylist())
        assert got.quarantine.column_names == want.quarantine.column_names


def _book():
    case = combined_book()
    return (
        pharmacy_table(case.pharmacy),
        medical_table(case.medical),
        list(case.as_of),
    )


OPTIONS = [
    StreamOptions(),
    StreamOptions(batch_rows=1),
    StreamOptions(batch_rows=7, partitions=3, claim_partitions=4, min_partition_rows=1),
    StreamOptions(
        batch_rows=50, partitions=5, claim_partitions=2, memory_bytes=0, min_partition_rows=1
    ),
    StreamOptions(batch_rows=13, partitions=1, claim_partitions=1, memory_bytes=2000),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: repr(o)[13:60])
@pytest.mark.parametrize("all_members", [False, True])
def test_hand_case_book_same_as_in_memory(options, all_members, tmp_path):
    pharmacy, medical, as_of = _book()
    kw = dict(as_of=as_of, reference=reference_table(), quarantine=True, all_members=all_members)
    want = rxrisk.score(pharmacy, medical, **kw)
    opts = StreamOptions(**{**options.__dict__, "spill_dir": str(tmp_path)})
    got = rxrisk.score(pharmacy, medical, stream=opts, **kw)
    assert_same(got, want)
    assert want.members.num_rows > 50
    assert list(tmp_path.iterdir()) == []  # spill files removed


def test_without_medical_and_with_int_member_ids():
    case = next(c for c in _cases() if c.member_type == "int64")
    pharmacy = pharmacy_table(case.pharmacy, "int64")
    want = rxrisk.score(pharmacy, as_of=list(case.as_of), reference=reference_table())
    got = rxrisk.score(
        pharmacy,
        as_of=list(case.as_of),
        reference=reference_table(),
        stream=StreamOptions(batch_rows=2, partitions=3, memory_bytes=0, min_partition_rows=1),
    )
    assert_same(got, want)
    assert got.members.schema.field("member_id").type == pa.int64()


def _cases():
    from cases import CASES

    return CASES.values()


def _write_inputs(tmp_path, pharmacy: pa.Table, medical: pa.Table):
    """The same two tables as every file kind the readers accept."""
    out = {}
    pq.write_table(pharmacy, tmp_path / "ph.parquet", row_group_size=40)
    pq.write_table(medical, tmp_path / "md.parquet", row_group_size=30)
    out["parquet"] = (tmp_path / "ph.parquet", tmp_path / "md.parquet")
    for name, table in (("ph", pharmacy), ("md", medical)):
        folder = tmp_path / f"{name}_parts"
        folder.mkdir()
        step = 55
        for i in range(0, table.num_rows, step):
            pq.write_table(table.slice(i, step), folder / f"part-{i // step:05d}.parquet")
    out["folder"] = (tmp_path / "ph_parts", tmp_path / "md_parts")
    for name, table in (("ph", pharmacy), ("md", medical)):
        with ipc.new_file(tmp_path / f"{name}.arrow", table.schema) as w:
            for b in table.to_batches(max_chunksize=33):
                w.write_batch(b)
    out["arrow"] = (tmp_path / "ph.arrow", tmp_path / "md.arrow")
    for name, table in (("ph", pharmacy), ("md", medical)):
        pacsv.write_csv(table, tmp_path / f"{name}.csv")
    out["csv"] = (tmp_path / "ph.csv", tmp_path / "md.csv")
    return out


@pytest.mark.parametrize("kind", ["parquet", "folder", "arrow", "csv", "reader"])
def test_every_input_kind(kind, tmp_path):
    pharmacy, medical, as_of = _book()
    files = _write_inputs(tmp_path, pharmacy, medical)
    opts = StreamOptions(batch_rows=17, partitions=2, claim_partitions=3, min_partition_rows=1)
    kw = dict(as_of=as_of, reference=reference_table(), quarantine=True)
    if kind == "reader":
        want = rxrisk.score(pharmacy, medical, **kw)
        got = rxrisk.score(
            pa.RecordBatchReader.from_batches(pharmacy.schema, pharmacy.to_batches(21)),
            pa.RecordBatchReader.from_batches(medical.schema, medical.to_batches(9)),
            stream=opts,
            **kw,
        )
    else:
        ph, md = files[kind]
        want = rxrisk.score(ph, md, **kw)
        got = rxrisk.score(ph, md, stream=opts, **kw)
    assert_same(got, want)


@HYPOTHESIS_SETTINGS
@given(
    scenarios(),
    st.integers(1, 40),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from([0, 1 << 30]),
)
def test_random_books(case, batch_rows, partitions, claim_partitions, memory_bytes):
    pharmacy = pharmacy_table(case.pharmacy, case.member_type)
    medical = None if case.medical is None else medical_table(case.medical, case.member_type)
    kw = dict(as_of=list(case.as_of), reference=reference_table(), quarantine=True)
    kw["max_reject_share"] = 1.0  # random books: far more bad rows than the intake stop allows
    want = rxrisk.score(pharmacy, medical, **kw)
    opts = StreamOptions(
        batch_rows=batch_rows,
        partitions=partitions,
        claim_partitions=claim_partitions,
        memory_bytes=memory_bytes,
        min_partition_rows=1,
    )
    assert_same(rxrisk.score(pharmacy, medical, stream=opts, **kw), want)


def test_generated_book_with_spill(tmp_path):
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=1500, seed=3)
    ph, md = tmp_path / "pharmacy.parquet", tmp_path / "medical.parquet"
    kw = dict(as_of="2025-06-30,2025-12-31", quarantine=True)
    want = rxrisk.score(ph, md, **kw)
    spill = tmp_path / "spill"
    spill.mkdir()
    got = rxrisk.score(
        ph,
        md,
        stream=StreamOptions(
            batch_rows=5000, partitions=4, claim_partitions=3, memory_bytes=0, spill_dir=str(spill)
        ),
        **kw,
    )
    assert_same(got, want)
    buckets = got.audit["pharmacy"]["buckets"]
    assert buckets["reversed"] > 0 and buckets["duplicate"] > 0 and buckets["rejected"] > 0
    assert sum(buckets.values()) == got.audit["pharmacy"]["rows_read"]
    assert list(spill.iterdir()) == []


def test_both_routes_select_the_same_tracked_rows(tmp_path):
    """The stage value of both routes is one: the streaming engine's member partitions, put
    together, hold the in-memory path's ``TrackedRows`` column for column (fills by input
    row, events and members seen as sets), on a book with reversed, duplicate and rejected
    rows, read in batches that split claim-id pairs."""
    import pyarrow.compute as pc

    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.engines.stream import ingest_stream
    from rxrisk.ingest.select import ingest, select_used
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=800, seed=5)
    ph, md = tmp_path / "pharmacy.parquet", tmp_path / "medical.parquet"
    cfg = load_config()
    data = ingest(ph, md, cfg, clock=Clock())
    buckets = data.audit_blocks()["pharmacy"]["buckets"]
    assert buckets["reversed"] and buckets["duplicate"] and buckets["rejected"]
    whole = select_used(data, all_members=True)
    opts = StreamOptions(batch_rows=777, partitions=3, claim_partitions=2, min_partition_rows=1)
    book = ingest_stream(ph, md, cfg, options=opts, clock=Clock(), all_members=True)
    try:
        parts = [book.tracked(p) for p in range(book.n_parts)]
    finally:
        book.close()
    fills = pa.concat_tables([p.fills for p in parts])
    fills = fills.take(pc.sort_indices(fills, [("row", "ascending")]))
    assert fills.schema == whole.fills.schema
    assert fills.equals(whole.fills)
    keys = [("member_id", "ascending"), ("service_date", "ascending"), ("mask", "ascending")]

    def events(t: pa.Table) -> pa.Table:
        return t.take(pc.sort_indices(t, keys))

    streamed_events = pa.concat_tables([p.events for p in parts])
    assert events(streamed_events).equals(events(whole.events))
    streamed_members = [v for p in parts for v in p.extra_members.to_pylist()]
    assert set(streamed_members) == set(whole.extra_members.to_pylist())
    assert None not in streamed_members


def test_empty_pharmacy_and_medical_only_member():
    pharmacy, medical, as_of = _book()
    empty = pharmacy.slice(0, 0)
    kw = dict(as_of=as_of, reference=reference_table(), quarantine=True)
    want = rxrisk.score(empty, medical, **kw)
    opts = StreamOptions(batch_rows=5, partitions=2, min_partition_rows=1)
    got = rxrisk.score(empty, medical, stream=opts, **kw)
    assert_same(got, want)
    assert got.members.num_rows > 0  # members seen only in medical rows


def test_no_rows_at_all():
    pharmacy, medical, as_of = _book()
    kw = dict(as_of=as_of, reference=reference_table(), quarantine=True)
    want = rxrisk.score(pharmacy.slice(0, 0), medical.slice(0, 0), **kw)
    got = rxrisk.score(pharmacy.slice(0, 0), medical.slice(0, 0), stream=True, **kw)
    assert_same(got, want)
    assert got.members.num_rows == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.drop_columns(["ndc"]),
        lambda t: t.set_column(
            t.column_names.index("quantity"), "quantity", pa.array([[1.0]] * t.num_rows)
        ),
        lambda t: t.set_column(t.column_names.index("ndc"), "ndc", pa.array(np.arange(t.num_rows))),
    ],
    ids=["missing column", "list quantity", "integer ndc"],
)
def test_schema_errors_are_the_in_memory_ones(change, tmp_path):
    pharmacy, _, as_of = _book()
    bad = change(pharmacy)
    with pytest.raises(InputError) as want:
        rxrisk.score(bad, as_of=as_of, reference=reference_table())
    with pytest.raises(InputError) as got:
        rxrisk.score(bad, as_of=as_of, reference=reference_table(), stream=True)
    assert str(got.value) == str(want.value)


def test_member_id_types_must_agree():
    pharmacy, medical, as_of = _book()
    md = medical.set_column(0, "member_id", pa.array(np.arange(medical.num_rows)))
    with pytest.raises(InputError, match="member_id has different types"):
        rxrisk.score(pharmacy, md, as_of=as_of, reference=reference_table(), stream=True)


def test_error_mid_stream_leaves_no_spill_file(tmp_path):
    pharmacy, _, as_of = _book()

    def batches():
        yield from pharmacy.to_batches(20)[:3]
        raise OSError("disk went away")

    reader = pa.RecordBatchReader.from_batches(pharmacy.schema, batches())
    opts = StreamOptions(batch_rows=10, memory_bytes=0, spill_dir=str(tmp_path))
    with pytest.raises(OSError, match="disk went away"):
        rxrisk.score(reader, as_of=as_of, reference=reference_table(), stream=opts)
    assert list(tmp_path.iterdir()) == []


def test_options_are_checked():
    with pytest.raises(InputError, match="batch_rows"):
        StreamOptions(batch_rows=0)
    with pytest.raises(InputError, match="partitions"):
        StreamOptions(partitions=-2)


def test_member_parts_agree_across_chunks_and_whitespace():
    ids = pa.chunked_array([["a", " b", "c\t", None], ["", "a ", "b", "c"]])
    p = member_parts(ids, 7)
    assert p[3] == -1 and p[4] == -1
    assert p[0] == p[5] and p[1] == p[6] and p[2] == p[7]
    ints = pa.chunked_array([[5, None, 7], [7, 5]])
    q = member_parts(ints, 3)
    assert q[1] == -1 and q[0] == q[4] and q[2] == q[3]
    assert set(q[q >= 0]) <= {0, 1, 2}


def test_spool_keeps_order_in_memory_and_spilled(tmp_path):
    for budget in (1 << 30, 0):
        with Spool("t", 3, budget_bytes=budget, spill_dir=str(tmp_path)) as s:
            s.add(pa.table({"x": [0, 1, 2, 3]}), np.array([2, 0, 2, -1]))
            s.add(pa.table({"x": [4, 5]}), np.array([0, 2]))
            s.finish()
            assert s.spilled == (budget == 0)
            assert s.read(0).column("x").to_pylist() == [1, 4]
            assert s.read(1) is None
            assert s.read(2).column("x").to_pylist() == [0, 2, 5]
            assert s.rows == 5
        assert list(tmp_path.iterdir()) == []


def test_should_stream(tmp_path):
    small = pa.table({"a": [1, 2, 3]})
    pq.write_table(small, tmp_path / "s.parquet")
    assert not should_stream(tmp_path / "s.parquet")
    assert not should_stream(small)
    assert not should_stream(tmp_path / "missing.parquet")
    (tmp_path / "s.csv").write_text("a\n1\n")
    assert not should_stream(tmp_path / "s.csv")


def test_cli_stream_output_is_byte_identical(tmp_path):
    from rxrisk.cli import main

    pharmacy, medical, as_of = _book()
    pq.write_table(pharmacy, tmp_path / "ph.parquet")
    pq.write_table(medical, tmp_path / "md.parquet")
    pacsv.write_csv(reference_table(), tmp_path / "ref.csv")
    common = [
        "score",
        str(tmp_path / "ph.parquet"),
        "--medical",
        str(tmp_path / "md.parquet"),
        "--reference",
        str(tmp_path / "ref.csv"),
        "--as-of",
        ",".join(str(d) for d in as_of),
        "--quiet",
    ]
    spill = tmp_path / "spill"
    spill.mkdir()
    assert main([*common, "--out", str(tmp_path / "a.parquet"), "--in-memory"]) == 0
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "b.parquet"),
                "--stream",
                "--batch-rows",
                "9",
                "--partitions",
                "3",
                "--memory-budget",
                "0",
                "--spill-dir",
                str(spill),
            ]
        )
        == 0
    )
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert list(spill.iterdir()) == []
    assert os.path.getsize(tmp_path / "a.parquet") > 1000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--in-memory", "--partitions", "2"], "are for streaming"),
        (["--stream", "--memory-budget", "lots"], "--memory-budget lots"),
        (["--stream", "--spill-dir", "/nonexistent/x"], "--spill-dir"),
        (["--stream", "--batch-rows", "0"], "--batch-rows 0"),
    ],
)
def test_cli_stream_usage_errors(extra, message, tmp_path, capsys):
    from rxrisk.cli import main

    pharmacy, _, _ = _book()
    pq.write_table(pharmacy, tmp_path / "ph.parquet")
    args = ["score", str(tmp_path / "ph.parquet"), "--as-of", "2024-06-30"]
    code = main([*args, "--out", str(tmp_path / "o.parquet"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


class _FakeClock:
    def __init__(self, step: float):
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    from rxrisk import cli
    from rxrisk.cli import progress

    pharmacy, medical, as_of = _book()
    pq.write_table(pharmacy, tmp_path / "ph.parquet", row_group_size=40)
    pq.write_table(medical, tmp_path / "md.parquet")
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(progress.time, "perf_counter", _FakeClock(0.6))
    args = ["score", str(tmp_path / "ph.parquet"), "--medical", str(tmp_path / "md.parquet")]
    args += ["--as-of", "2024-06-30", "--out", str(tmp_path / "o.parquet"), "--stream"]
    args += ["--batch-rows", "25", "--reference", str(tmp_path / "ref.csv")]
    pacsv.write_csv(reference_table(), tmp_path / "ref.csv")
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "rxrisk: pharmacy rows read: " in err and "/s) at" in err  # count with its rate
    assert "rxrisk: medical rows read: " in err
    assert "\r\x1b[K" in err  # redrawn in place
    assert "rxrisk: match done at" in err and "rxrisk: output done at" in err


def test_no_progress_when_quiet_or_not_a_terminal(tmp_path, monkeypatch, capsys):
    from rxrisk import cli
    from rxrisk.cli import progress

    pharmacy, _, _ = _book()
    pq.write_table(pharmacy, tmp_path / "ph.parquet")
    pacsv.write_csv(reference_table(), tmp_path / "ref.csv")
    args = ["score", str(tmp_path / "ph.parquet"), "--as-of", "2024-06-30", "--stream"]
    args += ["--out", str(tmp_path / "o.parquet"), "--reference", str(tmp_path / "ref.csv")]
    assert cli.main(args) == 0  # stderr captured: not a terminal
    err = capsys.readouterr().err  # the intake summary only, no progress
    assert "done at" not in err and "\r" not in err and "rows read:" not in err
    assert err.startswith("rxrisk: pharmacy ")
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True)
    assert cli.main([*args, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_redraws_at_most_once_a_second(monkeypatch, capsys):
    from rxrisk.cli import progress

    clock = _FakeClock(0.25)
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    p = progress.Progress()
    for n in range(1, 21):
        p.tick("rows read", n * 1000)
    p("validate")
    err = capsys.readouterr().err
    assert 3 <= err.count("\r") <= 6  # 20 ticks over ~5 s
    assert err.endswith("s\n") and "rxrisk: validate done at" in err


@HYPOTHESIS_SETTINGS
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=30), st.integers(1, 3))
def test_string_hashes_match_the_reference(values, n_chunks):
    from naive import kernel_string_hash

    size = max(1, len(values) // n_chunks)
    chunks = [values[i : i + size] for i in range(0, len(values), size)] or [[]]
    col = pa.chunked_array([pa.array(c, pa.string()) for c in chunks], pa.string())
    got = string_hashes(col)
    assert got.tolist() == [kernel_string_hash(v) for v in values]
    parts = member_parts(col, 5)
    assert parts.tolist() == [h % 5 if h >= 0 else -1 for h in got.tolist()]

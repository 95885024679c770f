"""The safety-edit replay on the streaming engine (rxrisk.engines.stream_edits) against the
in-memory replay: the same claim table byte for byte (Parquet bytes) and the same audit but
for ``seconds``, whatever the batch size, partition count and spilling; ``rxrisk edits
--stream`` and the automatic choice of the command line."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_edits_skew import _non_dyadic_rows

import rxrisk
from rxrisk.cli import main
from rxrisk.engines import stream_edits
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError

from cases import combined_book, reference_table
from cases import medical_table as case_medical
from cases import pharmacy_table as case_pharmacy
from test_edits import (
    ALPRAZ,
    EXAMPLES,
    GABA,
    HYPOTHESIS_SETTINGS,
    OXY,
    OXY_ER,
    REFERENCE,
    UNTRACKED,
    books,
    fill,
    med,
    medical_table,
    pharmacy_table,
)


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _without_seconds(audit: dict) -> str:
    return json.dumps({k: v for k, v in audit.items() if k != "seconds"})


def assert_same(got, want) -> None:
    assert got.claims.schema == want.claims.schema
    assert got.claims.equals(want.claims)
    assert _parquet_bytes(got.claims) == _parquet_bytes(want.claims)
    assert _without_seconds(got.audit) == _without_seconds(want.audit)


def both(pharmacy, medical, options, **kw):
    """(streamed, in memory) replays of the same inputs."""
    want = rxrisk.replay_edits(pharmacy, medical, **kw)
    got = rxrisk.replay_edits(pharmacy, medical, stream=options, **kw)
    assert "select" in got.audit["seconds"] and "select" not in want.audit["seconds"]
    return got, want


OPTIONS = [
    True,
    StreamOptions(batch_rows=1),
    StreamOptions(batch_rows=7, partitions=3, claim_partitions=4, min_partition_rows=1),
    StreamOptions(
        batch_rows=50, partitions=5, claim_partitions=2, memory_bytes=0, min_partition_rows=1
    ),
    StreamOptions(batch_rows=13, partitions=1, claim_partitions=1, memory_bytes=2000),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: repr(o)[13:60])
def test_hand_case_book_same_as_in_memory(options, tmp_path):
    case = combined_book()
    if isinstance(options, StreamOptions):
        options = StreamOptions(**{**options.__dict__, "spill_dir": str(tmp_path)})
    got, want = both(
        case_pharmacy(case.pharmacy),
        case_medical(case.medical),
        options,
        reference=reference_table(),
    )
    assert_same(got, want)
    assert want.claims.num_rows > 20 and want.audit["members_scored"] > 5
    assert list(tmp_path.iterdir()) == []  # spill files removed


@pytest.mark.parametrize("kind", ["parquet", "folder", "arrow", "csv"])
def test_every_input_kind(kind, tmp_path):
    from test_stream import _write_inputs

    case = combined_book()
    ph, md = _write_inputs(tmp_path, case_pharmacy(case.pharmacy), case_medical(case.medical))[kind]
    options = StreamOptions(batch_rows=17, partitions=2, claim_partitions=3, min_partition_rows=1)
    got, want = both(ph, md, options, reference=reference_table())
    assert_same(got, want)
    assert want.claims.num_rows > 20


def test_without_a_claim_id_column():
    case = combined_book()
    pharmacy = case_pharmacy(case.pharmacy).drop_columns(["claim_id"])
    options = StreamOptions(batch_rows=11, partitions=3, min_partition_rows=1)
    got, want = both(pharmacy, case_medical(case.medical), options, reference=reference_table())
    assert_same(got, want)
    assert (
        got.claims.num_rows > 20 and got.claims.column("claim_id").null_count == got.claims.num_rows
    )


def test_generated_book_with_tiny_partitions_and_spill(tmp_path):
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=1500, seed=3)
    ph, md = tmp_path / "pharmacy.parquet", tmp_path / "medical.parquet"
    spill = tmp_path / "spill"
    spill.mkdir()
    options = StreamOptions(
        batch_rows=5000,
        partitions=6,
        claim_partitions=3,
        memory_bytes=0,
        spill_dir=str(spill),
        min_partition_rows=1,
    )
    got, want = both(ph, md, options)
    assert_same(got, want)
    buckets = got.audit["pharmacy"]["buckets"]
    assert buckets["reversed"] > 0 and buckets["duplicate"] > 0 and buckets["rejected"] > 0
    assert want.claims.num_rows > 1000
    assert sum(got.audit["edits"]["fired"].values()) > 0
    assert list(spill.iterdir()) == []


def test_crowded_member_among_others():
    """A member with 300 claims on a few days (above the 32 active claims of the in-order
    sum) shares the book with ordinary members spread over several partitions."""
    rows = _non_dyadic_rows(150, "CROWD") + _non_dyadic_rows(150, "CROWD", start=3)
    for m in range(40):
        rows += [
            fill(f"M{m:02d}", 5 * m, OXY, 90.0, 30, prescriber=f"P{m % 4}", claim_id=f"c{m}"),
            fill(f"M{m:02d}", 5 * m + 10, OXY_ER, 60.0, 30, prescriber="P9"),
            fill(f"M{m:02d}", 5 * m + 12, ALPRAZ, 30.0, 30),
        ]
    rows = rows[1::2] + rows[::2]  # members' rows interleaved in the input
    medical = [med("M03", 1, "ICD10CM", "C50.911"), med("CROWD", 2, "REV", "0651")]
    options = StreamOptions(batch_rows=37, partitions=4, memory_bytes=0, min_partition_rows=1)
    got, want = both(pharmacy_table(rows), medical_table(medical), options, reference=REFERENCE)
    assert_same(got, want)
    crowd = want.claims.filter(pc.equal(want.claims["member_id"], "CROWD"))
    assert crowd.num_rows == 300 and want.audit["members_scored"] == 41


def test_int_member_ids_without_medical():
    rows = [fill(m, 3 * m, OXY, 120.0, 30) for m in range(30)]
    rows += [fill(m, 3 * m + 1, ALPRAZ, 30.0, 30) for m in range(0, 30, 2)]
    options = StreamOptions(batch_rows=4, partitions=3, memory_bytes=0, min_partition_rows=1)
    got, want = both(pharmacy_table(rows, pa.int64()), None, options, reference=REFERENCE)
    assert_same(got, want)
    assert got.claims.schema.field("member_id").type == pa.int64()
    assert got.claims.num_rows == 45


@pytest.mark.parametrize("rows", [[], [fill("A", 0, GABA), fill("B", 1, UNTRACKED)]])
def test_no_evaluated_claims(rows):
    options = StreamOptions(batch_rows=1, partitions=2, min_partition_rows=1)
    got, want = both(pharmacy_table(rows), None, options, reference=REFERENCE)
    assert_same(got, want)
    assert got.claims.num_rows == 0


@settings(HYPOTHESIS_SETTINGS, max_examples=max(10, EXAMPLES // 4))
@given(
    books(),
    st.integers(1, 9),
    st.integers(1, 5),
    st.integers(1, 3),
    st.sampled_from([0, 300, 1 << 30]),
)
def test_random_books(book, batch_rows, partitions, claim_partitions, memory_bytes):
    pharmacy, medical, overrides = book
    options = StreamOptions(
        batch_rows=batch_rows,
        partitions=partitions,
        claim_partitions=claim_partitions,
        memory_bytes=memory_bytes,
        min_partition_rows=1,
    )
    got, want = both(
        pharmacy_table(pharmacy),
        None if medical is None else medical_table(medical),
        options,
        reference=REFERENCE,
        overrides=[f"{k}={v}" for k, v in overrides.items()],
    )
    assert_same(got, want)


def test_merge_runs_orders_members_across_partitions():
    parts = [
        pa.table({"member_id": ["b", "b", "d"], "k": [1, 2, 3]}),
        pa.table({"member_id": pa.array([], pa.string()), "k": pa.array([], pa.int64())}),
        pa.table({"member_id": ["a", "c", "c", "c"], "k": [4, 5, 6, 7]}),
    ]
    runs = [
        (pa.array(["b", "d"]), [2, 1]),
        (pa.array([], pa.string()), []),
        (pa.array(["a", "c"]), [1, 3]),
    ]
    runs = [(ids, pa.array(n, pa.int64()).to_numpy()) for ids, n in runs]
    merged = stream_edits.merge_runs(parts, runs)
    assert merged.column("k").to_pylist() == [4, 1, 2, 5, 6, 7, 3]
    assert merged.column("member_id").num_chunks == 1


def test_stream_argument_is_checked():
    with pytest.raises(InputError, match="stream 'yes': give True, False"):
        rxrisk.replay_edits(pharmacy_table([]), reference=REFERENCE, stream="yes")


# --------------------------------------------------------------------------- command line


@pytest.fixture
def cli_book(tmp_path):
    case = combined_book()
    pq.write_table(case_pharmacy(case.pharmacy), tmp_path / "ph.parquet")
    pq.write_table(case_medical(case.medical), tmp_path / "md.parquet")
    pq.write_table(reference_table(), tmp_path / "ref.parquet")
    return [
        "edits",
        str(tmp_path / "ph.parquet"),
        "--medical",
        str(tmp_path / "md.parquet"),
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--quiet",
    ]


def _audit(path) -> str:
    return _without_seconds(json.loads(path.read_text()))


def test_cli_stream_output_is_byte_identical(cli_book, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert (
        main([*cli_book, "--out", str(a), "--audit", str(tmp_path / "a.json"), "--in-memory"]) == 0
    )
    streamed = ["--stream", "--batch-rows", "9", "--partitions", "3", "--memory-budget", "0"]
    out = ["--out", str(b), "--audit", str(tmp_path / "b.json"), "--spill-dir", str(spill)]
    assert main([*cli_book, *out, *streamed]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert _audit(tmp_path / "a.json") == _audit(tmp_path / "b.json")
    assert "select" in json.loads((tmp_path / "b.json").read_text())["seconds"]
    assert pq.read_table(a).num_rows > 20
    assert list(spill.iterdir()) == []


def test_cli_streams_large_inputs_by_default(cli_book, tmp_path, monkeypatch):
    """The choice of ``score``: a large pharmacy input streams unless --in-memory."""
    import rxrisk.engines.batches as batches

    monkeypatch.setattr(batches, "should_stream", lambda path: True)
    assert (
        main([*cli_book, "--out", str(tmp_path / "a.parquet"), "--audit", str(tmp_path / "a.json")])
        == 0
    )
    assert "select" in json.loads((tmp_path / "a.json").read_text())["seconds"]
    assert (
        main(
            [
                *cli_book,
                "--out",
                str(tmp_path / "b.parquet"),
                "--audit",
                str(tmp_path / "b.json"),
                "--in-memory",
            ]
        )
        == 0
    )
    assert "select" not in json.loads((tmp_path / "b.json").read_text())["seconds"]
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--in-memory", "--partitions", "2"], "are for streaming"),
        (["--stream", "--memory-budget", "lots"], "--memory-budget lots"),
        (["--stream", "--spill-dir", "/nonexistent/x"], "--spill-dir"),
    ],
)
def test_cli_stream_usage_errors(cli_book, extra, message, tmp_path, capsys):
    code = main([*cli_book, "--out", str(tmp_path / "o.parquet"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()

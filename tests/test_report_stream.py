"""``rxrisk report`` with its claims streamed (rxrisk.reports.claims over the streaming engine)
against the in-memory route: the same report folder byte for byte (every page, both lists, the
index) and the same summary and audit, whatever the batch size, partition count and spilling;
only the reported members' rows are kept."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.clock import Clock
from rxrisk.config.settings import load_config
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError
from rxrisk.reports import write_reports
from rxrisk.reports.claims import read_claims

from cases import combined_book, medical_table, pharmacy_table, reference_table

OPTIONS = [
    StreamOptions(),
    StreamOptions(batch_rows=7, partitions=3, claim_partitions=4, min_partition_rows=1),
    StreamOptions(
        batch_rows=50, partitions=5, claim_partitions=2, memory_bytes=0, min_partition_rows=1
    ),
]


def folder_bytes(root) -> dict:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def without_run(summary: dict) -> dict:
    """The summary without what differs between two runs into two folders."""
    return {k: v for k, v in summary.items() if k not in ("seconds", "out_dir")}


def assert_same_report(got_dir, got: dict, want_dir, want: dict) -> None:
    got_files, want_files = folder_bytes(got_dir), folder_bytes(want_dir)
    assert sorted(got_files) == sorted(want_files)
    for name, data in want_files.items():
        assert got_files[name] == data, name
    assert without_run(got) == without_run(want)


def flag_names(members: pa.Table) -> list[str]:
    return [f.name for f in members.schema if f.type == pa.bool_()]


def int_book() -> pa.Table:
    """The hand book's pharmacy rows with integer member ids."""
    rows = [dict(r) for r in combined_book().pharmacy if isinstance(r["member_id"], str)]
    names = sorted({r["member_id"].strip() for r in rows if r["member_id"].strip()})
    number = {name: 1000 + 7 * k for k, name in enumerate(names)}
    for r in rows:
        r["member_id"] = number.get(r["member_id"].strip())
    return pharmacy_table(rows, "int64")


def _hand_book():
    """Every string-keyed hand case in one book (reversals across members, duplicates,
    rejected and untracked rows, blank ids) and its member table at the first as-of date."""
    case = combined_book()
    pharmacy, medical = pharmacy_table(case.pharmacy), medical_table(case.medical)
    members = rxrisk.score(
        pharmacy,
        medical,
        as_of=case.as_of,
        reference=reference_table(),
        max_reject_share=1.0,
    ).members
    return pharmacy, medical, members, case.as_of[0]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: repr(o)[13:60])
def test_hand_book_report_same_as_in_memory(options, tmp_path):
    pharmacy, medical, members, as_of = _hand_book()
    kw = dict(
        as_of=as_of,
        flags=flag_names(members),  # every flagged member gets a page
        reference=reference_table(),
        max_reject_share=1.0,
    )
    want = write_reports(members, pharmacy, medical, out_dir=tmp_path / "mem", **kw)
    spill = tmp_path / "spill"
    spill.mkdir()
    opts = StreamOptions(**{**options.__dict__, "spill_dir": str(spill)})
    got = write_reports(members, pharmacy, medical, out_dir=tmp_path / "str", stream=opts, **kw)
    assert_same_report(tmp_path / "str", got, tmp_path / "mem", want)
    assert want["member_pages"] > 10 and want["prescriber_pages"] > 5  # the book reports
    assert want["pharmacy"]["buckets"]["reversed"] > 0
    assert want["pharmacy"]["buckets"]["duplicate"] > 0
    assert list(spill.iterdir()) == []  # spill files removed


def test_streamed_claims_are_the_wanted_members_used_rows():
    pharmacy, medical, members, _ = _hand_book()
    cfg = load_config(reference=reference_table())
    ids = sorted(set(members.column("member_id").to_pylist()))
    wanted = pa.array([m for k, m in enumerate(ids) if k % 5], pa.string())  # 4 in 5 members
    want, want_blocks = read_claims(
        pharmacy, medical, cfg, wanted, clock=Clock(), max_reject_share=1.0
    )
    opts = StreamOptions(
        batch_rows=9, partitions=4, claim_partitions=3, memory_bytes=0, min_partition_rows=1
    )
    got, got_blocks = read_claims(
        pharmacy, medical, cfg, wanted, stream=opts, clock=Clock(), max_reject_share=1.0
    )
    assert got_blocks == want_blocks
    for a, b in ((got.fills, want.fills), (got.events, want.events)):
        assert a.schema == b.schema
        assert a.equals(b)
    kept = set(want.fills.column("member_id").to_pylist())
    kept |= set(want.events.column("member_id").to_pylist())
    assert kept and kept <= set(wanted.to_pylist())  # no other member's rows are kept
    assert want.fills.num_rows < want_blocks["pharmacy"]["buckets"]["used"]


def test_integer_member_ids_without_medical(tmp_path):
    pharmacy = int_book()
    members = rxrisk.score(
        pharmacy, as_of="2024-06-30", reference=reference_table(), max_reject_share=1.0
    ).members
    kw = dict(flags=flag_names(members), reference=reference_table(), max_reject_share=1.0)
    want = write_reports(members, pharmacy, out_dir=tmp_path / "mem", **kw)
    opts = StreamOptions(batch_rows=11, partitions=4, memory_bytes=0, min_partition_rows=1)
    got = write_reports(members, pharmacy, out_dir=tmp_path / "str", stream=opts, **kw)
    assert_same_report(tmp_path / "str", got, tmp_path / "mem", want)
    assert want["member_pages"] > 3


def test_member_table_ids_the_claims_cannot_hold_fail_alike(tmp_path):
    pharmacy = int_book()
    members = rxrisk.score(
        pharmacy, as_of="2024-06-30", reference=reference_table(), max_reject_share=1.0
    ).members
    ids = pc.cast(members.column("member_id"), pa.string())
    members = members.set_column(0, "member_id", pc.binary_join_element_wise("M", ids, ""))
    kw = dict(flags=flag_names(members), reference=reference_table(), max_reject_share=1.0)
    messages = []
    for stream in (None, StreamOptions(batch_rows=5, partitions=2, min_partition_rows=1)):
        with pytest.raises(InputError, match="member_id is string in the member table") as e:
            write_reports(members, pharmacy, out_dir=tmp_path / "r", stream=stream, **kw)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from rxrisk.synthetic import generate_book

    root = tmp_path_factory.mktemp("book")
    generate_book(root, members=1500, seed=11)
    ph, md = root / "pharmacy.parquet", root / "medical.parquet"
    members = rxrisk.score(ph, md, as_of="2025-06-30,2025-12-31").members
    members_path = root / "members.parquet"
    import pyarrow.parquet as pq

    pq.write_table(members, members_path)
    return root, ph, md, members_path


def test_generated_book_several_partitions_and_spill(book, tmp_path):
    root, ph, md, members = book
    want = write_reports(members, ph, md, out_dir=tmp_path / "mem")
    spill = tmp_path / "spill"
    spill.mkdir()
    options = StreamOptions(
        batch_rows=3000,
        partitions=6,
        claim_partitions=3,
        memory_bytes=0,
        spill_dir=str(spill),
        min_partition_rows=1,
    )
    got = write_reports(members, ph, md, out_dir=tmp_path / "str", stream=options)
    assert_same_report(tmp_path / "str", got, tmp_path / "mem", want)
    assert want["member_pages"] > 20 and want["lock_in_rows"] > 0 and want["outreach_rows"] > 0
    assert list(spill.iterdir()) == []


def test_cli_stream_and_in_memory_write_the_same_folder(book, tmp_path, capsys):
    root, ph, md, members = book
    common = [str(members), "--pharmacy", str(ph), "--medical", str(md), "--quiet"]
    assert main(["report", *common, "--out", str(tmp_path / "mem"), "--in-memory"]) == 0
    spill = tmp_path / "spill"
    spill.mkdir()
    streamed = ["--partitions", "3", "--batch-rows", "4000", "--memory-budget", "0"]
    args = ["report", *common, "--out", str(tmp_path / "str"), *streamed]
    assert main([*args, "--spill-dir", str(spill)]) == 0  # tuning options imply --stream
    assert folder_bytes(tmp_path / "str") == folder_bytes(tmp_path / "mem")
    assert list(spill.iterdir()) == []


def test_cli_streaming_options_with_in_memory_are_a_usage_error(book, tmp_path, capsys):
    root, ph, md, members = book
    args = ["report", str(members), "--pharmacy", str(ph), "--out", str(tmp_path / "r")]
    assert main([*args, "--in-memory", "--partitions", "2"]) == 2
    assert "drop --in-memory" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_hand_book_as_of_default_is_the_latest(tmp_path):
    pharmacy, medical, members, _ = _hand_book()
    latest = max(members.column("as_of").to_pylist())
    assert isinstance(latest, dt.date)
    kw = dict(flags=flag_names(members), reference=reference_table(), max_reject_share=1.0)
    want = write_reports(members, pharmacy, medical, out_dir=tmp_path / "mem", **kw)
    opts = StreamOptions(batch_rows=13, partitions=2, memory_bytes=0, min_partition_rows=1)
    got = write_reports(members, pharmacy, medical, out_dir=tmp_path / "str", stream=opts, **kw)
    assert want["as_of"] == str(latest)
    assert_same_report(tmp_path / "str", got, tmp_path / "mem", want)

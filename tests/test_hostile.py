"""Hostile input: the engine's promises hold for malformed tables, files, paths, options,
rule files and as-of dates.

For every case: exit 0 with a correct audit, or exit 2 with ONE error line ("rxrisk: error:
..." or "rxrisk <command>: error: ..."; any other stderr line is a run-summary line starting
with "rxrisk:"); never a traceback or an internal error; no message line shows more than 3
values of member data (planted as unique sentinel tokens, see tests/hostile_strategies.py);
bucket counts add up to rows read; the output folder holds exactly the requested outputs on
success and nothing on failure; inputs are byte-identical afterwards.

The fast part runs ``rxrisk.cli.main`` in process on small tables; a few cases run the
installed ``rxrisk`` entry point in a subprocess (marked slow). RXRISK_HYPOTHESIS_EXAMPLES
scales the number of random examples.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import rxrisk
from rxrisk.config.resources import data_path
from rxrisk.errors import InputError

import hostile_strategies as hs

EXAMPLES = int(os.environ.get("RXRISK_HYPOTHESIS_EXAMPLES", "100"))
# Every example runs the engine: shrinking a failure can take many minutes, so it is off
# unless RXRISK_HOSTILE_SHRINK=1 (the failing example is reported as generated).
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("RXRISK_HOSTILE_SHRINK"):
    _PHASES.append(Phase.shrink)
HYPOTHESIS_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=_PHASES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
HALF_SETTINGS = settings(HYPOTHESIS_SETTINGS, max_examples=max(10, EXAMPLES // 2))
CLI_SETTINGS = settings(HYPOTHESIS_SETTINGS, max_examples=max(10, EXAMPLES // 4))
AS_OF = "2025-12-31"
OXY = hs.ROLE_NDC["oxy30"]
PATCH = hs.ROLE_NDC["patch"]
BENZO = hs.ROLE_NDC["benzo"]


# --------------------------------------------------------------------------------- helpers


def _used_members(book, outcome) -> set:
    out = set()
    for row, (bucket, _) in zip(book.rows, outcome, strict=True):
        if bucket == "used":
            v = row["member_id"]
            out.add(v.strip(" \t\r\n") if isinstance(v, str) else v)
    return out


def _check_result_audit(audit: dict, ph_book, md_book) -> tuple[dict, list]:
    """Audit blocks equal the oracle's; warnings exactly when a reason is above 1%."""
    ph_out, ph_block = hs.pharmacy_outcome(ph_book)
    md_out, md_block = hs.medical_outcome(md_book)
    blocks = {"pharmacy": ph_block, "medical": md_block}
    hs.check_blocks_add_up(audit)
    for table in ("pharmacy", "medical"):
        got = {k: audit[table][k] for k in ("rows_read", "buckets", "rejected_by_reason")}
        assert got == blocks[table], (table, got, blocks[table])
    hs.check_audit_warnings(audit)
    warned = hs.warned_reasons(blocks)
    assert bool(audit["warnings"]) == bool(warned), (audit["warnings"], warned)
    for _table, reason in warned:
        assert any(reason in w for w in audit["warnings"]), (reason, audit["warnings"])
    return blocks, [ph_out, md_out]


def _clean_ids(values) -> set:
    return {v.strip(" \t\r\n") if isinstance(v, str) else v for v in values}


def _csv_rows(path: Path) -> int:
    """Data rows of a CSV file written by the engine (every column read as text)."""
    if not path.stat().st_size:
        return 0
    reader = pacsv.open_csv(path)
    names = reader.schema.names
    reader.close()
    t = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )
    return t.num_rows


class Layout:
    """tmp/in (inputs), tmp/out (outputs, empty before the run), tmp/spill."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.inp = self.root / "in"
        self.out = self.root / "out"
        self.spill = self.root / "spill"
        for p in (self.inp, self.out, self.spill):
            p.mkdir(parents=True, exist_ok=True)

    def run(self, argv, *, requested=(), allowed=(0, 2)) -> tuple[hs.Run, str | None]:
        """Run the CLI and check streams, outputs, untouched inputs and an empty spill dir."""
        before = hs.snapshot(self.inp)
        run = hs.run_cli(argv)
        line = hs.check_streams(run, allowed)
        assert hs.snapshot(self.inp) == before, ("input changed", run)
        hs.check_outputs(run, self.out, list(requested))
        assert os.listdir(self.spill) == [], (os.listdir(self.spill), run)
        if run.rc == 0 and "audit.json" in requested:
            audit = json.loads((self.out / "audit.json").read_text())
            hs.check_blocks_add_up(audit)
            hs.check_audit_warnings(audit)
        return run, line

    def audit(self) -> dict:
        return json.loads((self.out / "audit.json").read_text())


@pytest.fixture
def lay(tmp_path) -> Layout:
    return Layout(tmp_path)


def _score_argv(lay: Layout, pharmacy, *extra, medical=None, out="m.parquet"):
    argv = ["score", pharmacy, "--as-of", AS_OF, "--out", lay.out / out]
    argv += ["--audit", lay.out / "audit.json"]
    if medical is not None:
        argv += ["--medical", medical]
    return argv + list(extra)


REQ = ["m.parquet", "audit.json"]


def _good_pharmacy(n: int = 3, **override) -> dict:
    """A valid pharmacy column dict with sentinel ids."""
    cols = {
        "member_id": [hs.member_token(i % 5) for i in range(n)],
        "fill_date": [dt.date(2025, 12, 1)] * n,
        "ndc": [OXY] * n,
        "quantity": [60.0] * n,
        "days_supply": [30] * n,
        "prescriber_id": [f"ZQP{i:04d}" for i in range(n)],
        "pharmacy_id": [f"ZQR{i:04d}" for i in range(n)],
        "claim_id": [f"ZQC{i:04d}" for i in range(n)],
        "claim_status": ["paid"] * n,
    }
    cols.update(override)
    return cols


def _good_medical(n: int = 3) -> dict:
    return {
        "member_id": [hs.member_token(i % 5) for i in range(n)],
        "service_date": [dt.date(2025, 11, 1)] * n,
        "code_type": ["CPT"] * n,
        "code": ["99284"] * n,
    }


def _write_parquet(cols, path) -> Path:
    t = cols if isinstance(cols, pa.Table) else pa.table(cols)
    pq.write_table(t, path)
    return Path(path)


def _write_csv_rows(path, header, rows) -> Path:
    text = "\n".join([",".join(header)] + [",".join(str(c) for c in r) for r in rows]) + "\n"
    Path(path).write_text(text)
    return Path(path)


# ---------------------------------------------------------------- generated books (oracle)


@HYPOTHESIS_SETTINGS
@given(ph=hs.pharmacy_books(), data=st.data())
def test_api_buckets_follow_the_documented_order(ph, data):
    """Every row of a hostile table lands in the bucket the documented order gives it; the
    audit lists every bucket and reason, warns above 1%, and scores only used members."""
    mk = "int64" if ph.kinds["member_id"] == "int64" else "string"
    md = data.draw(st.none() | hs.medical_books(member_kind=mk))
    res = rxrisk.score(
        hs.to_table(ph),
        None if md is None else hs.to_table(md),
        as_of=AS_OF,
        max_reject_share=1.0,
    )
    _, (ph_out, md_out) = _check_result_audit(res.audit, ph, md)
    assert res.audit["rows_out"] == res.members.num_rows
    used = _used_members(ph, ph_out) | (set() if md is None else _used_members(md, md_out))
    assert _clean_ids(res.members.column("member_id").to_pylist()) <= used


@HALF_SETTINGS
@given(ph=hs.pharmacy_books(max_rows=40, min_rows=8))
def test_api_loud_intake_stops_above_the_share(ph):
    """Default max_reject_share: a reason above 25% of the in-scope rows (and at least 10
    rows) raises InputError with one line naming the column; otherwise the run goes on."""
    _, block = hs.pharmacy_outcome(ph)
    blocks = {"pharmacy": block, "medical": hs.medical_outcome(None)[1]}
    verdict, over = hs.intake_verdict(blocks)
    try:
        res = rxrisk.score(hs.to_table(ph), as_of=AS_OF)
    except InputError as exc:
        msg = str(exc)
        assert verdict == "stop", (msg, blocks)
        assert "\n" not in msg and len(hs.sentinels(msg)) <= 3, msg
        assert not hs.NEVER_SHOWN_RE.search(msg), msg
        assert any(reason in msg for _, reason, _ in over), (msg, over)
        return
    assert verdict == "go", (verdict, over, blocks)
    _check_result_audit(res.audit, ph, None)


@CLI_SETTINGS
@given(ph=hs.pharmacy_books(), data=st.data())
def test_api_streaming_equals_in_memory_on_hostile_books(ph, data):
    """Batch by batch (3 rows a batch, 2 partitions) gives the same members and audit."""
    from rxrisk.engines.stream import StreamOptions

    mk = "int64" if ph.kinds["member_id"] == "int64" else "string"
    md = data.draw(st.none() | hs.medical_books(member_kind=mk))
    args = (hs.to_table(ph), None if md is None else hs.to_table(md))
    kw = {"as_of": ["2025-06-30", AS_OF], "max_reject_share": 1.0, "all_members": True}
    with tempfile.TemporaryDirectory(prefix="rxrisk-hostile-spill-") as spill:
        opts = StreamOptions(batch_rows=3, partitions=2, memory_bytes=0, spill_dir=spill)
        streamed = rxrisk.score(*args, stream=opts, **kw)
        assert os.listdir(spill) == []
    memory = rxrisk.score(*args, **kw)
    assert streamed.members.equals(memory.members)
    for key in ("pharmacy", "medical", "members_scored", "rows_out", "warnings"):
        assert streamed.audit[key] == memory.audit[key], key


@st.composite
def _cli_case(draw):
    fmt = draw(st.sampled_from(hs.FORMATS))
    safe = fmt.startswith("csv")
    ph = draw(hs.pharmacy_books(csv_safe=safe, max_rows=30))
    mk = "int64" if ph.kinds["member_id"] == "int64" and not safe else "string"
    md = draw(st.none() | hs.medical_books(csv_safe=safe, member_kind=mk))
    command = draw(st.sampled_from(["score", "score", "edits"]))
    opts = {
        "share": draw(st.sampled_from([None, None, "1", "0.5", "0"])),
        "quiet": draw(st.booleans()),
        "stream": command == "score" and draw(st.booleans()),
        "quarantine": command == "score" and draw(st.booleans()),
        "repeat": draw(st.integers(0, 3)) == 0,
    }
    return fmt, ph, md, command, opts


@CLI_SETTINGS
@given(case=_cli_case())
def test_cli_hostile_books(case):
    """Hostile books in every file format through ``rxrisk score`` / ``rxrisk edits``: exit
    code as loud intake decides, one error line, no leak, no stray file, inputs unchanged,
    audit equal to the oracle's."""
    fmt, ph, md, command, opts = case
    with tempfile.TemporaryDirectory(prefix="rxrisk-hostile-") as tmp:
        lay = Layout(tmp)
        ph_path = hs.write_book(ph, lay.inp / "ph", fmt)
        md_path = None if md is None else hs.write_book(md, lay.inp / "md", fmt)
        out_name = "m.parquet" if command == "score" else "e.arrow"
        argv = [command, ph_path, "--out", lay.out / out_name, "--audit", lay.out / "audit.json"]
        if command == "score":
            argv += ["--as-of", AS_OF]
        requested = [out_name, "audit.json"]
        if md_path is not None:
            argv += ["--medical", md_path]
        if opts["share"] is not None:
            argv += ["--max-reject-share", opts["share"]]
        if opts["quiet"]:
            argv.append("--quiet")
        if opts["stream"]:
            argv += ["--stream", "--batch-rows", "3", "--spill-dir", lay.spill]
        if opts["quarantine"]:
            argv += ["--quarantine", lay.out / "q.csv"]
            requested.append("q.csv")
        blocks = {"pharmacy": hs.pharmacy_outcome(ph)[1], "medical": hs.medical_outcome(md)[1]}
        share = float(opts["share"]) if opts["share"] else hs.STOP_SHARE
        verdict, over = hs.intake_verdict(blocks, share)
        allowed = {"stop": (2,), "go": (0,)}[verdict]
        # rejected rows with a nested or binary column, as read, in a CSV quarantine: written
        # somehow, or refused with one line, never a crash
        nested_q = opts["quarantine"] and any(
            (b.layout or {}).get("extra") in ("list", "struct", "binary") for b in (ph, md) if b
        )
        if nested_q:
            allowed = (0, 2)
        run, line = lay.run(argv, requested=requested, allowed=allowed)
        assert "ZQZ" not in run.err + run.out, run  # an ignored column never shows
        if run.rc == 2 and verdict == "go":
            assert "quarantine" in line or "q.csv" in line, line
            return
        if run.rc == 2:
            names = {"pharmacy": ph_path.name, "medical": "" if md_path is None else md_path.name}
            rest = line.replace(str(lay.root), "")
            assert any(
                reason in line and names[table] in line and re.search(rf"\b{count}\b", rest)
                for table, reason, count in over
            ), (line, over)
            return
        audit = lay.audit()
        _check_result_audit(audit, ph, md)
        if opts["quiet"]:
            assert run.err == "", run  # --quiet: nothing but errors
        else:
            assert any(f"{blocks['pharmacy']['rows_read']:,}" in x for x in run.lines()), run
            for w in audit["warnings"]:
                assert any(w in x for x in run.lines()), (w, run)
        if opts["quarantine"]:
            n_rej = (
                blocks["pharmacy"]["buckets"]["rejected"] + blocks["medical"]["buckets"]["rejected"]
            )
            assert _csv_rows(lay.out / "q.csv") == n_rej
        if opts["repeat"]:  # the same inputs give byte-identical outputs, whatever the threads
            again = Layout(Path(tmp) / "again")
            argv2 = [str(a).replace(str(lay.out), str(again.out)) for a in argv] + [
                "--threads",
                "1",
            ]
            again.run(argv2, requested=requested, allowed=(0,))
            assert (again.out / out_name).read_bytes() == (lay.out / out_name).read_bytes()
            a2 = again.audit()
            for key in set(audit) | set(a2):
                assert key == "seconds" or a2.get(key) == audit.get(key), key


# ---------------------------------------------------------------------- schema and types


@pytest.mark.parametrize("column", ["member_id", "fill_date", "ndc", "quantity", "days_supply"])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_missing_required_pharmacy_column(lay, column, fmt):
    t = pa.table(_good_pharmacy()).drop_columns([column])
    path = lay.inp / f"ph.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path)
    else:
        pacsv.write_csv(t, path)
    _, line = lay.run(_score_argv(lay, path), allowed=(2,))
    assert column in line and "ph." in line


@pytest.mark.parametrize("column", ["member_id", "service_date", "code_type", "code"])
def test_missing_required_medical_column(lay, column):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    md = _write_parquet(pa.table(_good_medical()).drop_columns([column]), lay.inp / "md.parquet")
    _, line = lay.run(_score_argv(lay, ph, medical=md), allowed=(2,))
    assert column in line and "md.parquet" in line


_WRONG_TYPES = [
    ("ndc", pa.array([11111111111, 22222222222, 33333333333], pa.int64())),
    ("member_id", pa.array([1.5, 2.5, 3.5])),
    ("member_id", pa.array([True, False, True])),
    ("fill_date", pa.array([1.0, 2.0, 3.0])),
    ("fill_date", pa.array([True, False, True])),
    ("quantity", pa.array([dt.date(2025, 1, 1)] * 3)),
    ("quantity", pa.array([[1], [2], [3]])),
    ("days_supply", pa.array([dt.date(2025, 1, 1)] * 3)),
    ("days_supply", pa.array([{"a": 1}] * 3)),
    ("prescriber_id", pa.array([["x"], ["y"], ["z"]])),
]


@pytest.mark.parametrize(("column", "values"), _WRONG_TYPES, ids=lambda v: getattr(v, "type", v))
def test_uncastable_column_type_exit_2(lay, column, values):
    cols = _good_pharmacy()
    cols[column] = values
    path = _write_parquet(cols, lay.inp / "ph.parquet")
    _, line = lay.run(_score_argv(lay, path), allowed=(2,))
    assert column in line and "ph.parquet" in line


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("quantity", pa.array([60, 60, 60], pa.decimal128(10, 2))),
        ("quantity", pa.array([60.0, 60.0, 60.0], pa.float32())),
        ("days_supply", pa.array([30, 30, 30], pa.int32())),
        ("days_supply", pa.array([30, 30, 30], pa.uint8())),
        ("member_id", pa.array(["ZQM0001", "ZQM0002", "ZQM0003"], pa.large_string())),
        ("member_id", pa.array([1, 2, 3], pa.int16())),
        ("ndc", pa.array([OXY] * 3).dictionary_encode()),
        ("fill_date", pa.array([dt.datetime(2025, 12, 1, 13)] * 3, pa.timestamp("ns"))),
        ("fill_date", pa.array([dt.date(2025, 12, 1)] * 3, pa.date64())),
    ],
    ids=lambda v: str(getattr(v, "type", v)),
)
def test_castable_column_types_are_read(lay, column, values):
    cols = _good_pharmacy()
    cols[column] = values
    path = _write_parquet(cols, lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path), requested=REQ, allowed=(0,))
    assert lay.audit()["pharmacy"]["buckets"]["used"] == 3


@pytest.mark.parametrize(
    "kind", ["large_string", "string_view", "dictionary"], ids=lambda k: f"member_id-{k}"
)
def test_blank_member_ids_in_other_text_types(kind):
    """Blank ids are blank whatever the Arrow text type (trimmed of space, tab, CR, LF)."""
    ids = ["ZQM0001", "   ", "\t", "", None, " ZQM0001 "]
    arr = pa.array(ids, pa.string())
    arr = {
        "large_string": lambda: arr.cast(pa.large_string()),
        "string_view": lambda: arr.cast(pa.string_view()),
        "dictionary": lambda: arr.dictionary_encode(),
    }[kind]()
    cols = _good_pharmacy(len(ids), member_id=arr)
    res = rxrisk.score(pa.table(cols), as_of=AS_OF, max_reject_share=1.0)
    assert res.audit["pharmacy"]["rejected_by_reason"]["member_id"] == 4
    assert res.members.column("member_id").to_pylist() == ["ZQM0001"]


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv", "csv.gz"])
def test_zero_row_inputs_score_to_an_empty_table(lay, fmt):
    ph = hs.PharmacyBook({c: "string" for c in hs.PHARMACY_COLUMNS}, [], [])
    md = hs.MedicalBook({c: "string" for c in hs.MEDICAL_COLUMNS}, [], [])
    php, mdp = hs.write_book(ph, lay.inp / "ph", fmt), hs.write_book(md, lay.inp / "md", fmt)
    lay.run(_score_argv(lay, php, medical=mdp), requested=REQ, allowed=(0,))
    a = lay.audit()
    assert a["pharmacy"]["rows_read"] == 0 and a["medical"]["rows_read"] == 0
    assert a["rows_out"] == 0 and a["members_scored"] == 0 and a["warnings"] == []
    assert pq.read_table(lay.out / "m.parquet").num_rows == 0


def test_zero_rows_of_null_type(lay):
    t = pa.table({c: pa.nulls(0) for c in hs.PHARMACY_COLUMNS})
    lay.run(
        _score_argv(lay, _write_parquet(t, lay.inp / "ph.parquet")), requested=REQ, allowed=(0,)
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", b""),
        ("newline.csv", b"\n"),
        ("header_only_wrong.csv", b"a,b,c\n"),
        ("garbage.parquet", b"PAR1 this is not parquet PAR1"),
        ("text.parquet", b"member_id,fill_date\nZQM0001,2025-01-01\n"),
        ("garbage.arrow", b"\x00\x01\x02 not arrow"),
        ("bad.csv.gz", b"\x1f\x8b\x08\x00 truncated gzip"),
        ("binary.csv", bytes(range(256)) * 4),
    ],
)
def test_unreadable_files_exit_2(lay, name, content):
    path = lay.inp / name
    path.write_bytes(content)
    _, line = lay.run(_score_argv(lay, path), allowed=(2,))
    assert name in line


def test_truncated_parquet_exit_2(lay):
    full = _write_parquet(_good_pharmacy(50), lay.root / "full.parquet")
    data = full.read_bytes()
    (lay.inp / "ph.parquet").write_bytes(data[: len(data) // 2])
    _, line = lay.run(_score_argv(lay, lay.inp / "ph.parquet"), allowed=(2,))
    assert "ph.parquet" in line


def test_zero_column_parquet_exit_2(lay):
    path = _write_parquet(pa.table({}), lay.inp / "ph.parquet")
    _, line = lay.run(_score_argv(lay, path), allowed=(2,))
    assert "member_id" in line


@pytest.mark.parametrize(
    "path", ["nope.parquet", "nope.csv", "nope_dir/", "ph.xlsx", "ph.json"], ids=str
)
def test_unusable_pharmacy_paths_exit_2(lay, path):
    if path.endswith((".xlsx", ".json")):
        (lay.inp / path).write_bytes(b"{}")
    lay.run(_score_argv(lay, lay.inp / path), allowed=(2,))


@pytest.mark.parametrize(
    "content",
    [
        "member_id;fill_date;ndc;quantity;days_supply\nZQM0001;2025-12-01;{ndc};60;30\n",
        "member_id\tfill_date\tndc\tquantity\tdays_supply\nZQM0001\t2025-12-01\t{ndc}\t60\t30\n",
        "Member_ID,Fill_Date,NDC,Quantity,Days_Supply\nZQM0001,2025-12-01,{ndc},60,30\n",
    ],
    ids=["semicolon", "tab", "upper-case-header"],
)
def test_csv_of_another_dialect(lay, content):
    (lay.inp / "ph.csv").write_text(content.format(ndc=OXY))
    run, line = lay.run(_score_argv(lay, lay.inp / "ph.csv"), requested=REQ)
    if run.rc == 2:
        assert "ph.csv" in line and "member_id" in line.lower()


def test_concatenated_csv_exports(lay):
    """A header repeated mid-file (two exports pasted together), an all-empty row and blank
    lines: the stray rows are rejected for their NDC, nothing is lost."""
    head = ",".join(hs.PHARMACY_COLUMNS)
    row = lambda i: f"ZQM{i:04d},2025-12-01,{OXY},60,30,ZQP{i:04d},,ZQC{i:04d},paid"  # noqa: E731
    lines = [head, row(1), row(2), "", head, row(3), ",,,,,,,,", "", row(4)]
    (lay.inp / "ph.csv").write_text("\n".join(lines) + "\n")
    lay.run(
        _score_argv(lay, lay.inp / "ph.csv", "--max-reject-share", "1"), requested=REQ, allowed=(0,)
    )
    a = lay.audit()["pharmacy"]
    assert a["rows_read"] == 6 and a["buckets"]["used"] == 4
    assert a["rejected_by_reason"]["ndc"] == 2


@pytest.mark.parametrize(
    "content",
    [
        " member_id ,fill_date,ndc,quantity,days_supply\nZQM0001,2025-12-01,{ndc},60,30\n",
        'member_id,fill_date,ndc,quantity,days_supply,note\nZQM0001,2025-12-01,{ndc},60,30,"two\nlines"\n',
        "member_id,fill_date,ndc,quantity,days_supply\nZQM0001\x00,2025-12-01,{ndc},60,30\n",
    ],
    ids=["padded-header", "newline-in-quoted-field", "nul-in-id"],
)
def test_odd_csv_content(lay, content):
    (lay.inp / "ph.csv").write_text(content.format(ndc=OXY))
    run, line = lay.run(_score_argv(lay, lay.inp / "ph.csv"), requested=REQ)
    if run.rc == 2:
        assert "ph.csv" in line


@pytest.mark.parametrize("where", ["input", "output", "rules", "medical", "spill-dir", "audit"])
def test_newline_in_a_file_name_keeps_one_line(lay, where):
    """A file name is shown escaped: a newline in it cannot forge a second message line."""
    evil = "ph\nrxrisk: error: forged line"
    if where == "input":
        path = _write_parquet(
            pa.table(_good_pharmacy()).drop_columns(["ndc"]), lay.inp / f"{evil}.parquet"
        )
        argv = _score_argv(lay, path)
    else:
        path = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
        argv = ["score", path, "--as-of", AS_OF, "--out", lay.out / "m.parquet"]
        argv += {
            "output": ["--out", lay.out / f"{evil}.xlsx"],
            "rules": ["--rules", lay.inp / f"{evil}.toml"],
            "medical": ["--medical", lay.inp / f"{evil}.csv"],
            "spill-dir": ["--stream", "--spill-dir", lay.inp / evil],
            "audit": ["--audit", lay.out / evil / "audit.json"],
        }[where]
    run, line = lay.run(argv, allowed=(2,))
    assert len(run.lines()) == 1, run


def test_folder_with_a_symlink_loop(lay):
    folder = _parts(lay, _good_pharmacy(3))
    os.symlink("..", folder / "up")
    lay.run(_score_argv(lay, folder), requested=REQ)


def test_csv_with_bom_and_crlf_is_read(lay):
    t = pa.table(_good_pharmacy(3, fill_date=["2025-12-01"] * 3))
    buf = pa.BufferOutputStream()
    pacsv.write_csv(t, buf)
    text = buf.getvalue().to_pybytes().decode().replace("\n", "\r\n")
    (lay.inp / "ph.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    lay.run(_score_argv(lay, lay.inp / "ph.csv"), requested=REQ, allowed=(0,))
    assert lay.audit()["pharmacy"]["buckets"]["used"] == 3


# ------------------------------------------------------------------------ duplicate columns


def _dup_table(name: str, cols: dict) -> pa.Table:
    names = list(cols) + [name]
    arrays = [pa.array(v) if not isinstance(v, pa.Array) else v for v in cols.values()]
    arrays.append(pa.array(cols[name]))
    return pa.Table.from_arrays(arrays, names=names)


@pytest.mark.parametrize("column", ["member_id", "ndc", "quantity"])
@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv"])
def test_duplicate_required_column_exit_2(lay, column, fmt):
    t = _dup_table(column, _good_pharmacy(3, fill_date=["2025-12-01"] * 3))
    path = lay.inp / f"ph.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path)
    elif fmt == "arrow":
        with ipc.new_file(path, t.schema) as w:
            w.write_table(t)
    else:
        pacsv.write_csv(t, path)
    _, line = lay.run(_score_argv(lay, path), allowed=(2,))
    assert column in line and f"ph.{fmt}" in line


def test_duplicate_medical_column_exit_2(lay):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    md = lay.inp / "md.parquet"
    pq.write_table(_dup_table("code", _good_medical()), md)
    _, line = lay.run(_score_argv(lay, ph, medical=md), allowed=(2,))
    assert "code" in line and "md.parquet" in line


def test_duplicate_column_api_table_raises_input_error():
    with pytest.raises(InputError) as exc:
        rxrisk.score(_dup_table("member_id", _good_pharmacy()), as_of=AS_OF)
    assert "member_id" in str(exc.value) and "\n" not in str(exc.value)


def test_duplicate_extra_column(lay):
    """Two copies of a column the engine does not read: scored or refused, never a crash."""
    cols = _good_pharmacy()
    cols["note"] = ["a", "b", "c"]
    path = _write_parquet(_dup_table("note", cols), lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path), requested=REQ)


# ------------------------------------------------------------------ ragged CSV, bad UTF-8


@HYPOTHESIS_SETTINGS
@given(
    n=st.integers(1, 12),
    at=st.integers(0, 11),
    delta=st.sampled_from([-3, -1, 1, 4]),
    gz=st.booleans(),
    table=st.sampled_from(["pharmacy", "medical"]),
)
def test_ragged_csv_row_names_file_line_and_counts_never_the_row(n, at, delta, gz, table):
    at = at % n
    if table == "pharmacy":
        header = list(hs.PHARMACY_COLUMNS)

        def row(i):
            ids = [f"ZQP{i:04d}", f"ZQR{i:04d}", f"ZQC{i:04d}"]
            return [f"ZQM{i:04d}", "2025-12-01", OXY, "60", "30", *ids, "paid"]
    else:
        header = list(hs.MEDICAL_COLUMNS)

        def row(i):
            return [f"ZQM{i:04d}", "2025-11-01", "CPT", "99284"]

    rows = [row(i) for i in range(n)]
    bad = rows[at]
    if delta > 0:
        bad += [f"ZQX{k:04d}" for k in range(delta)]
    else:
        del bad[delta:]
    planted = hs.sentinels(",".join(bad))
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    with tempfile.TemporaryDirectory(prefix="rxrisk-hostile-") as tmp:
        lay = Layout(tmp)
        name = "t.csv.gz" if gz else "t.csv"
        data = gzip.compress(text.encode(), mtime=0) if gz else text.encode()
        (lay.inp / name).write_bytes(data)
        if table == "pharmacy":
            argv = _score_argv(lay, lay.inp / name)
        else:
            ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
            argv = _score_argv(lay, ph, medical=lay.inp / name)
        _, line = lay.run(argv, allowed=(2,))
        assert name in line, line
        assert not (hs.sentinels(line) & planted), ("raw row in message", line)
        # the file line (header is line 1) or the data row
        assert re.search(rf"\b(line|row) ({at + 2}|{at + 1})\b", line), line
        assert str(len(header)) in line and str(len(bad)) in line, line


@pytest.mark.parametrize(
    "column", ["member_id", "fill_date", "ndc", "claim_status", "prescriber_id"]
)
def test_invalid_utf8_names_column_and_row(lay, column):
    header = list(hs.PHARMACY_COLUMNS)
    rows = [
        [f"ZQM{i:04d}", "2025-12-01", OXY, "60", "30", f"ZQP{i:04d}", "", f"ZQC{i:04d}", "paid"]
        for i in range(6)
    ]
    lines = [",".join(header).encode()] + [",".join(r).encode() for r in rows]
    j = header.index(column)
    cells = lines[4].split(b",")
    cells[j] = b"ZQB0004\xff\xfe"
    lines[4] = b",".join(cells)
    (lay.inp / "ph.csv").write_bytes(b"\n".join(lines) + b"\n")
    _, line = lay.run(_score_argv(lay, lay.inp / "ph.csv"), allowed=(2,))
    assert column in line and "ph.csv" in line
    assert re.search(r"\b(line 5|row 4)\b", line), line  # data row 4 is file line 5


def test_invalid_utf8_in_an_unread_column(lay):
    header = [*hs.PHARMACY_COLUMNS, "note"]
    rows = [f"ZQM0001,2025-12-01,{OXY},60,30,,,ZQC0001,paid,".encode() + b"\xff"]
    (lay.inp / "ph.csv").write_bytes(b"\n".join([",".join(header).encode(), *rows]) + b"\n")
    lay.run(_score_argv(lay, lay.inp / "ph.csv"), requested=REQ)


def test_invalid_utf8_in_header_exit_2(lay):
    header = b"member_id,fill_d\xffte,ndc,quantity,days_supply"
    (lay.inp / "ph.csv").write_bytes(header + f"\nZQM0001,2025-12-01,{OXY},60,30\n".encode())
    lay.run(_score_argv(lay, lay.inp / "ph.csv"), allowed=(2,))


# ------------------------------------------------------------------ Parquet folders of parts


def _parts(lay: Layout, *tables) -> Path:
    folder = lay.inp / "pharmacy"
    folder.mkdir()
    for i, t in enumerate(tables):
        pq.write_table(
            t if isinstance(t, pa.Table) else pa.table(t), folder / f"part-{i:05d}.parquet"
        )
    return folder


_MODES = {"in-memory": [], "stream": ["--stream", "--batch-rows", "2"]}


@pytest.fixture(params=list(_MODES))
def mode(request, lay):
    extra = _MODES[request.param]
    return extra + (["--spill-dir", lay.spill] if extra else [])


def test_parts_missing_an_optional_column(lay, mode):
    a = _good_pharmacy(4)
    b = _good_pharmacy(3, claim_id=["ZQC0010", "ZQC0011", "ZQC0012"])
    b = {k: v for k, v in b.items() if k not in ("prescriber_id", "claim_status")}
    folder = _parts(lay, a, b)
    lay.run(_score_argv(lay, folder, *mode), requested=REQ, allowed=(0,))
    audit = lay.audit()
    assert audit["pharmacy"]["rows_read"] == 7 and audit["pharmacy"]["buckets"]["used"] == 7


def test_parts_missing_a_required_column(lay, mode):
    b = {k: v for k, v in _good_pharmacy(3).items() if k != "ndc"}
    folder = _parts(lay, _good_pharmacy(4), b)
    _, line = lay.run(_score_argv(lay, folder, *mode), allowed=(2,))
    assert "ndc" in line and "part-00001" in line


@pytest.mark.parametrize(
    ("column", "other"),
    [
        ("quantity", ["60", "60", "60"]),
        ("member_id", [1, 2, 3]),
        ("ndc", pa.array([[OXY]] * 3)),
    ],
    ids=["quantity-float-vs-text", "member_id-text-vs-int", "ndc-text-vs-list"],
)
def test_parts_with_conflicting_types(lay, mode, column, other):
    folder = _parts(lay, _good_pharmacy(3), _good_pharmacy(3, **{column: other}))
    _, line = lay.run(_score_argv(lay, folder, *mode), allowed=(2,))
    assert column in line and "part-0000" in line


@pytest.mark.parametrize(
    "other",
    [
        {"days_supply": pa.array([30, 30, 30], pa.int32())},
        {"fill_date": ["2025-12-01"] * 3},
        {"quantity": pa.array([60, 60, 60], pa.int64())},
        {"prescriber_id": pa.nulls(3)},
    ],
    ids=["int32-vs-int64", "date-vs-text", "float-vs-int", "string-vs-null"],
)
def test_parts_with_compatible_or_ambiguous_types(lay, mode, other):
    folder = _parts(lay, _good_pharmacy(3), _good_pharmacy(3, **other))
    run, _ = lay.run(_score_argv(lay, folder, *mode), requested=REQ)
    if run.rc == 0:
        assert lay.audit()["pharmacy"]["rows_read"] == 6


def test_parts_with_an_empty_part_and_spark_markers(lay, mode):
    folder = _parts(lay, _good_pharmacy(3), pa.table(_good_pharmacy(3)).slice(0, 0))
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".part-00000.parquet.crc").write_bytes(b"crc")
    lay.run(_score_argv(lay, folder, *mode), requested=REQ, allowed=(0,))
    assert lay.audit()["pharmacy"]["rows_read"] == 3


@pytest.mark.parametrize("extra", ["README.txt", "empty", "nested"])
def test_odd_folders(lay, mode, extra):
    if extra == "empty":
        folder = lay.inp / "pharmacy"
        folder.mkdir()
    else:
        folder = _parts(lay, _good_pharmacy(3))
        if extra == "README.txt":
            (folder / "README.txt").write_text("ZQM0001 notes\n")
        else:
            (folder / "year=2025").mkdir()
            pq.write_table(pa.table(_good_pharmacy(2)), folder / "year=2025" / "p.parquet")
    lay.run(_score_argv(lay, folder, *mode), requested=REQ)


# --------------------------------------------------------------- hostile drug references

_REF_HEADER = "ndc,ingredient,drug_class,strength_per_unit,unit,mme_factor,days_per_unit\n"
_REF_CASES = {
    "ok": ("12345678901,oxycodone,opioid,30,MG,1.5,\n", (0,)),
    "header-only": ("", (0,)),
    "factor-nan": ("12345678901,oxycodone,opioid,30,MG,nan,\n", (0, 2)),
    "factor-inf": ("12345678901,oxycodone,opioid,30,MG,inf,\n", (0, 2)),
    "factor-negative": ("12345678901,oxycodone,opioid,30,MG,-1.5,\n", (0, 2)),
    "strength-huge": ("12345678901,oxycodone,opioid,1e308,MG,1e308,\n", (0, 2)),
    "days-per-unit-zero": ("12345678901,fentanyl,opioid,25,MCG/HR,7.2,0\n", (0, 2)),
    "days-per-unit-huge": ("12345678901,fentanyl,opioid,25,MCG/HR,7.2,1e308\n", (0, 2)),
    "days-per-unit-nan": ("12345678901,fentanyl,opioid,25,MCG/HR,7.2,nan\n", (0, 2)),
    "duplicate-ndc": (
        "12345678901,oxycodone,opioid,30,MG,1.5,\n12345678901,oxycodone,opioid,30,MG,9,\n",
        (0, 2),
    ),
    "ndc-short": ("1234,oxycodone,opioid,30,MG,1.5,\n", (2,)),
    "ndc-text": ("ZQN0001ABCD,oxycodone,opioid,30,MG,1.5,\n", (2,)),
    "class-unknown": ("12345678901,heroin,street,30,MG,1.5,\n", (2,)),
    "strength-text": ("12345678901,oxycodone,opioid,thirty,MG,1.5,\n", (0, 2)),
    "ragged": ("12345678901,oxycodone,opioid,30,MG,1.5,,extra\n", (2,)),
}


@pytest.mark.parametrize("name", list(_REF_CASES))
def test_hostile_reference_rows(lay, name):
    rows, allowed = _REF_CASES[name]
    (lay.inp / "ref.csv").write_text(_REF_HEADER + rows)
    ph = _write_parquet(
        _good_pharmacy(2, ndc=["12345678901", OXY], quantity=[60.0, 60.0]), lay.inp / "ph.parquet"
    )
    argv = _score_argv(lay, ph, "--reference", lay.inp / "ref.csv", "--max-reject-share", "1")
    run, line = lay.run(argv, requested=REQ, allowed=allowed)
    if run.rc == 2:
        assert "ref.csv" in line, line
    else:
        m = pq.read_table(lay.out / "m.parquet")
        for col in ("mme_avg_90d", "mme_today", "mme_rolling_max"):
            assert all(math.isfinite(v) for v in m.column(col).to_pylist()), (col, m)


def test_reference_missing_a_required_column(lay):
    (lay.inp / "ref.csv").write_text(
        "ndc,ingredient,drug_class,strength_per_unit,unit\n12345678901,oxycodone,opioid,30,MG\n"
    )
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    _, line = lay.run(_score_argv(lay, ph, "--reference", lay.inp / "ref.csv"), allowed=(2,))
    assert "ref.csv" in line and "mme_factor" in line


# ------------------------------------------------------------- odd columns carried along


@pytest.mark.parametrize("qfmt", ["csv", "parquet", "arrow"])
@pytest.mark.parametrize("extra", ["list", "list_int", "struct", "binary"])
def test_quarantine_keeps_rows_with_nested_or_binary_columns(lay, extra, qfmt):
    """Rejected rows are quarantined as read, extra columns included; a format that cannot
    hold such a column is refused with one line, never a crash."""
    cols = _good_pharmacy(4, member_id=["ZQM0001", "", "ZQM0002", " "])
    t = pa.table(cols).append_column("notes", hs.extra_column(extra, 4))
    path = _write_parquet(t, lay.inp / "ph.parquet")
    q = f"q.{qfmt}"
    argv = _score_argv(lay, path, "--max-reject-share", "1", "--quarantine", lay.out / q)
    run, _ = lay.run(argv, requested=[*REQ, q], allowed=(0, 2) if qfmt == "csv" else (0,))
    if run.rc == 0:
        rows = (
            _csv_rows(lay.out / q)
            if qfmt == "csv"
            else (
                pq.read_table(lay.out / q).num_rows
                if qfmt == "parquet"
                else ipc.open_file(lay.out / q).read_all().num_rows
            )
        )
        assert rows == 2


@pytest.mark.parametrize("column", ["member_id", "ndc", "claim_id", "claim_status"])
def test_arrow_view_and_large_text_types_via_cli(lay, column):
    """string_view columns (Arrow IPC) are text like any other, bad values included."""
    cols = _good_pharmacy(5, fill_date=["2025-12-01"] * 5)
    cols["claim_status"] = ["paid", "P", "b1", " ", "paid"]
    cols[column][4] = {"member_id": " ", "ndc": "ZQN0004", "claim_id": "", "claim_status": "VOID"}[
        column
    ]
    t = pa.table(cols)
    t = t.set_column(t.schema.get_field_index(column), column, t[column].cast(pa.string_view()))
    path = lay.inp / "ph.arrow"
    with ipc.new_file(path, t.schema) as w:
        w.write_table(t)
    lay.run(_score_argv(lay, path, "--max-reject-share", "1"), requested=REQ, allowed=(0,))
    assert lay.audit()["pharmacy"]["buckets"]["used"] == (5 if column == "claim_id" else 4)


def test_integer_medical_codes(lay):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    md = {
        **_good_medical(3),
        "code_type": ["CPT", "REV", "POS"],
        "code": pa.array([99284, 450, 23]),
    }
    mdp = _write_parquet(md, lay.inp / "md.parquet")
    run, _ = lay.run(_score_argv(lay, ph, medical=mdp), requested=REQ)
    if run.rc == 0:
        assert lay.audit()["medical"]["buckets"]["used"] == 3


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_timezone_timestamps(lay, tz):
    ts = pa.array([dt.datetime(2025, 12, 1, 12)] * 3, pa.timestamp("us", tz=tz))
    path = _write_parquet(_good_pharmacy(3, fill_date=ts), lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path), requested=REQ, allowed=(0,))
    assert lay.audit()["pharmacy"]["buckets"]["used"] == 3


def test_same_file_as_pharmacy_and_medical(lay):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    _, line = lay.run(_score_argv(lay, ph, medical=ph), allowed=(2,))
    assert "service_date" in line or "code" in line


def test_very_long_member_id_is_data_not_a_message(lay):
    long_id = "ZQM0001" + "x" * 1_000_000
    path = _write_parquet(_good_pharmacy(2, member_id=[long_id, ""]), lay.inp / "ph.parquet")
    run, _ = lay.run(_score_argv(lay, path, "--max-reject-share", "1"), requested=REQ, allowed=(0,))
    assert len(run.err) < 10_000
    assert pq.read_table(lay.out / "m.parquet").column("member_id").to_pylist() == [long_id]


@pytest.mark.parametrize("command", ["show", "report"])
def test_member_table_commands_on_a_claims_file(lay, command):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    if command == "show":
        argv = ["show", ph]
    else:
        argv = ["report", ph, "--pharmacy", ph, "--out", lay.out / "report"]
    lay.run(argv, allowed=(2,))


@pytest.mark.parametrize("junk", [b"", b"PAR1garbage", b"\x00" * 64])
def test_show_on_junk(lay, junk):
    (lay.inp / "m.parquet").write_bytes(junk)
    lay.run(["show", lay.inp / "m.parquet"], allowed=(2,))


# ---------------------------------------------------------------------- member id extremes


@pytest.mark.parametrize("where", ["pharmacy", "both"])
def test_uint64_member_ids_work_or_exit_2(lay, where):
    ids = pa.array([2**63 + 5, 2**64 - 1, 7], pa.uint64())
    ph = _write_parquet(_good_pharmacy(3, member_id=ids), lay.inp / "ph.parquet")
    md = None
    if where == "both":
        md = _write_parquet({**_good_medical(3), "member_id": ids}, lay.inp / "md.parquet")
    run, _ = lay.run(_score_argv(lay, ph, medical=md), requested=REQ)
    if run.rc == 0:
        got = pq.read_table(lay.out / "m.parquet").column("member_id").to_pylist()
        assert sorted(got) == sorted(ids.to_pylist())


def test_member_id_types_differ_between_inputs(lay):
    ph = _write_parquet(_good_pharmacy(3, member_id=[1, 2, 3]), lay.inp / "ph.parquet")
    md = _write_parquet(_good_medical(3), lay.inp / "md.parquet")
    lay.run(_score_argv(lay, ph, medical=md), requested=REQ)
    lay2 = Layout(lay.root / "all")
    lay2.run(_score_argv(lay2, ph, "--all-members", medical=md), requested=REQ)


# ---------------------------------------------------------------------- value edge cases


def _one_row_audit(**row):
    cols = _good_pharmacy(1)
    for k, v in row.items():
        cols[k] = v if isinstance(v, pa.Array) else [v]
    res = rxrisk.score(pa.table(cols), as_of=AS_OF, max_reject_share=1.0)
    hs.check_blocks_add_up(res.audit)
    return res


@pytest.mark.parametrize(
    ("row", "bucket", "reason"),
    [
        # out-of-scope rows first: nothing else of an untracked row is checked
        ({"ndc": "99999999999", "member_id": None}, "untracked", None),
        ({"ndc": "99999999999", "fill_date": None, "quantity": -1.0}, "untracked", None),
        ({"ndc": "99999999999", "claim_status": "ZQS0001"}, "untracked", None),
        ({"ndc": "99999999999", "claim_status": "R", "days_supply": -3}, "untracked", None),
        ({"ndc": "ZQN0001", "member_id": None}, "rejected", "ndc"),
        # huge quantities: coverage without overflow; an infinite daily MME is rejected
        ({"ndc": PATCH, "quantity": 1e9}, "used", None),
        ({"ndc": PATCH, "quantity": 1e300}, "used", None),
        ({"ndc": PATCH, "quantity": 1e308}, "rejected", "quantity"),
        ({"ndc": OXY, "quantity": 1e308, "days_supply": 1}, "rejected", "quantity"),
        ({"ndc": OXY, "quantity": math.inf}, "rejected", "quantity"),
        ({"ndc": BENZO, "quantity": 1e308}, "used", None),
        ({"ndc": OXY, "quantity": 1e308, "claim_status": "B2"}, "reversal", None),
        (
            {"ndc": OXY, "quantity": -60.0, "days_supply": -30, "claim_status": "reversal"},
            "reversal",
            None,
        ),
        ({"ndc": OXY, "days_supply": 2**62}, "rejected", "days_supply"),
        # statuses
        ({"claim_status": "b1"}, "used", None),
        ({"claim_status": "  "}, "used", None),
        ({"claim_status": "VOID"}, "rejected", "claim_status"),
        # dates: impossible ones rejected, never rolled forward
        ({"fill_date": "2025-02-30"}, "rejected", "fill_date"),
        ({"fill_date": "2025-04-31"}, "rejected", "fill_date"),
        ({"fill_date": "0000-06-01"}, "rejected", "fill_date"),
        ({"fill_date": "20251201"}, "used", None),
        ({"fill_date": pa.array([20251201], pa.int64())}, "used", None),
        ({"fill_date": pa.array([20250230], pa.int64())}, "rejected", "fill_date"),
        ({"fill_date": pa.array([20251201], pa.int32())}, "used", None),
        ({"fill_date": "9999-12-31"}, "used", None),
        ({"fill_date": "0001-01-01"}, "used", None),
    ],
    ids=lambda v: str(v).replace("\n", " ")[:70],
)
def test_single_row_outcome(row, bucket, reason):
    res = _one_row_audit(**row)
    ph = res.audit["pharmacy"]
    assert ph["buckets"][bucket] == 1, ph
    if reason is not None:
        assert ph["rejected_by_reason"][reason] == 1, ph


def test_huge_patch_quantity_keeps_coverage():
    """A 1e9-patch fill covers from its fill date through the as-of date at the patch's
    daily MME (strength x factor / days per patch)."""
    res = _one_row_audit(ndc=PATCH, quantity=1e9, fill_date=dt.date(2025, 12, 1))
    m = res.members.to_pylist()
    assert len(m) == 1
    d = hs.drug(PATCH)
    assert m[0]["opioid_days_90d"] == 31
    assert math.isclose(m[0]["mme_today"], d["strength"] / d["dpu"] * d["factor"], rel_tol=1e-9)


def test_huge_patch_quantity_across_the_whole_calendar():
    """3e9 days of patches filled on 0001-01-01 still cover 9999-12-31 (no int32 wrap)."""
    cols = _good_pharmacy(1, ndc=[PATCH], quantity=[1e9], fill_date=[dt.date(1, 1, 1)])
    res = rxrisk.score(pa.table(cols), as_of=["0001-01-01", "9999-12-31"])
    m = res.members.to_pylist()
    assert [r["opioid_days_90d"] for r in m] == [1, 90]
    assert all(math.isfinite(r["mme_total_365d"]) and r["mme_today"] > 0 for r in m)


def test_impossible_dates_are_never_rolled_forward(lay):
    """2025-02-30 is not 2025-03-02: the rows are rejected, no fill lands in March."""
    dates = ["2025-02-30", "2025-02-29", "2025-04-31", "2025-06-31", "2025-09-31", "2025-11-31"]
    n = len(dates)
    ph = _good_pharmacy(n, fill_date=dates, member_id=[hs.member_token(i) for i in range(n)])
    path = _write_parquet(ph, lay.inp / "ph.parquet")
    lay.run(
        _score_argv(lay, path, "--max-reject-share", "1", "--quarantine", lay.out / "q.csv"),
        requested=[*REQ, "q.csv"],
        allowed=(0,),
    )
    a = lay.audit()
    assert a["pharmacy"]["rejected_by_reason"]["fill_date"] == n
    assert pq.read_table(lay.out / "m.parquet").num_rows == 0


@pytest.mark.parametrize("iface", ["cli", "api"])
def test_explicit_date_format(lay, iface):
    dates = ["12/01/2025", "02/30/2025", "13/01/2025", "ZQD0009", " 11/15/2025 "]
    ph = _good_pharmacy(len(dates), fill_date=dates)
    md = {**_good_medical(2), "service_date": ["11/01/2025", "11/31/2025"]}
    if iface == "api":
        res = rxrisk.score(
            pa.table(ph), pa.table(md), as_of=AS_OF, date_format="%m/%d/%Y", max_reject_share=1.0
        )
        audit = res.audit
    else:
        php = _write_parquet(ph, lay.inp / "ph.parquet")
        mdp = _write_parquet(md, lay.inp / "md.parquet")
        argv = _score_argv(
            lay, php, "--date-format", "%m/%d/%Y", "--max-reject-share", "1", medical=mdp
        )
        lay.run(argv, requested=REQ, allowed=(0,))
        audit = lay.audit()
    assert audit["pharmacy"]["buckets"]["used"] == 2
    assert audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 3
    assert audit["medical"]["rejected_by_reason"]["service_date"] == 1


@pytest.mark.parametrize("fmt", ["%Q", "", "%Y", "no fields"])
def test_odd_date_formats(lay, fmt):
    path = _write_parquet(_good_pharmacy(3, fill_date=["2025-12-01"] * 3), lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path, "--date-format", fmt), requested=REQ)


# ------------------------------------------------------------------------------ loud intake


def _bad_dates_book(n_rows: int, n_bad: int, n_untracked: int = 0) -> dict:
    dates = [f"ZQD{i:04d}" if i < n_bad else "2025-12-01" for i in range(n_rows)]
    ndc = [OXY] * n_rows
    members = [hs.member_token(i) for i in range(n_rows)]
    for i in range(n_untracked):  # untracked rows: blank member and bad date, never checked
        dates.append(f"ZQU{i:04d}")
        ndc.append("99999999999")
        members.append("  ")
    n = len(dates)
    return _good_pharmacy(n, fill_date=dates, ndc=ndc, member_id=members)


@pytest.mark.parametrize("command", ["score", "edits"])
def test_loud_intake_stop_names_file_column_count_and_3_values(lay, command):
    path = _write_parquet(_bad_dates_book(20, 12), lay.inp / "claims.parquet")
    argv = [command, path, "--out", lay.out / "m.parquet", "--audit", lay.out / "audit.json"]
    if command == "score":
        argv += ["--as-of", AS_OF]
    run, line = lay.run(argv, allowed=(2,))
    rest = line.replace(str(lay.root), "")  # numbers outside the path
    assert "claims.parquet" in line and "fill_date" in line and re.search(r"\b12\b", rest), line
    shown = hs.sentinels(line)
    assert 1 <= len(shown) <= 3 and all(v.startswith("ZQD") for v in shown), line


def test_loud_intake_stop_turned_off_warns(lay):
    path = _write_parquet(_bad_dates_book(20, 12), lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path, "--max-reject-share", "1"), requested=REQ, allowed=(0,))
    a = lay.audit()
    assert a["pharmacy"]["rejected_by_reason"]["fill_date"] == 12
    assert any("fill_date" in w for w in a["warnings"]), a["warnings"]


@pytest.mark.parametrize(
    ("n_rows", "n_bad", "n_untracked", "rc", "warned"),
    [
        (100, 2, 0, 0, True),  # 2% warns
        (100, 1, 0, 0, False),  # 1% is not above 1%
        (9, 9, 0, 0, True),  # every row, but fewer than 10
        (40, 10, 0, 0, True),  # exactly 25% is not above
        (40, 11, 0, 2, None),
        (40, 0, 200, 0, False),  # untracked rows are not validated
        (40, 13, 200, 2, None),  # the share is of in-scope rows, not of rows read
    ],
)
def test_loud_intake_thresholds(lay, n_rows, n_bad, n_untracked, rc, warned):
    path = _write_parquet(_bad_dates_book(n_rows, n_bad, n_untracked), lay.inp / "ph.parquet")
    lay.run(_score_argv(lay, path), requested=REQ, allowed=(rc,))
    if rc == 0:
        a = lay.audit()
        assert a["pharmacy"]["buckets"]["untracked"] == n_untracked
        assert bool(a["warnings"]) == warned, a["warnings"]


def test_loud_intake_stops_report_too(lay):
    """``rxrisk report`` reads the same claims: the same stop, and no report folder."""
    path = _write_parquet(_bad_dates_book(30, 20), lay.inp / "ph.parquet")
    scored = Layout(lay.root / "scored")
    scored.run(_score_argv(scored, path, "--max-reject-share", "1"), requested=REQ, allowed=(0,))
    members = scored.out / "m.parquet"
    _, line = lay.run(
        ["report", members, "--pharmacy", path, "--out", lay.out / "report"], allowed=(2,)
    )
    assert "fill_date" in line and "ph.parquet" in line


def test_loud_intake_medical_stop(lay):
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    md = _good_medical(20)
    md["code_type"] = [f"ZQT{i:04d}" if i < 15 else "CPT" for i in range(20)]
    mdp = _write_parquet(md, lay.inp / "md.parquet")
    _, line = lay.run(_score_argv(lay, ph, medical=mdp), allowed=(2,))
    rest = line.replace(str(lay.root), "")
    assert "md.parquet" in line and "code_type" in line and re.search(r"\b15\b", rest), line
    assert len(hs.sentinels(line)) <= 3


def test_not_quiet_failure_keeps_one_error_line(lay):
    """Without --quiet the run summary may precede the error; still one error line."""
    path = _write_parquet(_bad_dates_book(30, 20), lay.inp / "ph.parquet")
    run, _ = lay.run(_score_argv(lay, path), allowed=(2,))
    assert all(x.startswith("rxrisk") for x in run.lines())


# ------------------------------------------------------------------------- path collisions


@pytest.fixture
def book(lay):
    _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    md = lay.inp / "md.csv"
    pacsv.write_csv(pa.table(_good_medical()), md)
    shutil.copy(data_path("rules", "default.toml"), lay.inp / "rules.toml")
    pacsv.write_csv(hs._REF.slice(0, 3), lay.inp / "ref.csv")
    return lay


@pytest.mark.parametrize(
    "extra",
    [
        ["--out", "{in}/ph.parquet"],
        ["--out", "{in}/../in/ph.parquet"],
        ["--out", "{out}/m.parquet", "--audit", "{out}/m.parquet"],
        ["--out", "{out}/m.csv", "--quarantine", "{out}/m.csv"],
        ["--out", "{out}/m.parquet", "--quarantine", "{in}/md.csv"],
        ["--out", "{out}/m.parquet", "--audit", "{in}/ph.parquet"],
        ["--out", "{out}/m.parquet", "--audit", "{in}/rules.toml"],
        ["--out", "{in}/ref.csv"],
    ],
    ids=lambda v: " ".join(v),
)
def test_output_path_collisions_exit_2_before_reading(book, extra):
    lay = book
    (lay.inp / "ph.parquet").write_bytes(b"not parquet: must never be read")
    argv = [
        "score",
        lay.inp / "ph.parquet",
        "--medical",
        lay.inp / "md.csv",
        "--rules",
        lay.inp / "rules.toml",
        "--reference",
        lay.inp / "ref.csv",
        "--as-of",
        AS_OF,
    ]
    argv += [a.replace("{in}", str(lay.inp)).replace("{out}", str(lay.out)) for a in extra]
    _, line = lay.run(argv, allowed=(2,))
    assert "cannot be read" not in line and "not parquet" not in line, line


def test_relative_output_equal_to_absolute_input(book, monkeypatch):
    lay = book
    monkeypatch.chdir(lay.root)
    lay.run(
        ["score", lay.inp / "ph.parquet", "--as-of", AS_OF, "--out", "in/ph.parquet"], allowed=(2,)
    )


def test_edits_output_equal_to_input(book):
    lay = book
    lay.run(["edits", lay.inp / "ph.parquet", "--out", lay.inp / "ph.parquet"], allowed=(2,))


def test_output_through_a_symlink_to_the_input(book):
    """Refused, or written by replacing the link: the input itself is never touched."""
    lay = book
    os.symlink(lay.inp / "ph.parquet", lay.root / "link.parquet")
    run = hs.run_cli(
        [
            "score",
            lay.inp / "ph.parquet",
            "--as-of",
            AS_OF,
            "--out",
            lay.root / "link.parquet",
            "--quiet",
        ]
    )
    hs.check_streams(run)
    assert pq.read_table(lay.inp / "ph.parquet").num_rows == 3


@pytest.mark.parametrize(
    "target",
    [
        ["--out", "{out}/adir.parquet"],
        ["--out", "{in}/ph.parquet/m.parquet"],
        ["--out", "{out}/m.parquet", "--audit", "{out}/adir.parquet"],
        ["--out", "{out}/m.parquet", "--quarantine", "{in}/md.csv/q.csv"],
        ["--out", "{out}/m.parquet", "--audit", "{out}/missing/audit.json"],
        ["--out", "{out}/m.parquet", "--stream", "--spill-dir", "{in}/md.csv"],
        ["--out", "{out}/m.parquet", "--stream", "--spill-dir", "{out}/missing"],
    ],
    ids=lambda v: " ".join(v),
)
def test_unusable_targets_exit_2_up_front(book, target):
    lay = book
    (lay.out / "adir.parquet").mkdir()
    argv = ["score", lay.inp / "ph.parquet", "--as-of", AS_OF]
    argv += [a.replace("{in}", str(lay.inp)).replace("{out}", str(lay.out)) for a in target]
    before = hs.snapshot(lay.inp)
    run = hs.run_cli(argv)
    hs.check_streams(run, (2,))
    assert hs.snapshot(lay.inp) == before
    assert sorted(os.listdir(lay.out)) == ["adir.parquet"]
    assert os.listdir(lay.out / "adir.parquet") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_exit_2(book):
    lay = book
    os.chmod(lay.out, 0o500)
    try:
        run = hs.run_cli(
            ["score", lay.inp / "ph.parquet", "--as-of", AS_OF, "--out", lay.out / "m.parquet"]
        )
        hs.check_streams(run, (2,))
    finally:
        os.chmod(lay.out, 0o700)
    assert os.listdir(lay.out) == []


def test_outputs_of_a_failed_run_leave_existing_files_alone(book):
    """A failing run (loud-intake stop) does not replace an earlier run's outputs."""
    lay = book
    (lay.out / "m.parquet").write_bytes(b"earlier member table")
    bad = _write_parquet(_bad_dates_book(30, 20), lay.inp / "bad.parquet")
    run = hs.run_cli(_score_argv(lay, bad))
    hs.check_streams(run, (2,))
    assert (lay.out / "m.parquet").read_bytes() == b"earlier member table"
    assert sorted(os.listdir(lay.out)) == ["m.parquet"]


# ------------------------------------------------------------------ out-of-range options


_ARGPARSE_LEVEL = [
    ["--bogus"],
    ["--threads", "two"],
    ["--batch-rows", "abc"],
    ["--batch-rows", "1e3"],
    ["--partitions", "1.5"],
    ["--engine", "bogus"],
    ["--stream", "--in-memory"],
]
_VALUE_LEVEL = [
    ["--partitions", "0"],
    ["--partitions", "-3"],
    ["--batch-rows", "0"],
    ["--batch-rows", "-1"],
    ["--memory-budget", "-1"],
    ["--memory-budget", "abc"],
    ["--memory-budget", "nan"],
    ["--memory-budget", "inf"],
    ["--memory-budget", "1e400"],
    ["--memory-budget", "12Q"],
    ["--memory-budget", ""],
    ["--max-reject-share", "abc"],
    ["--threads", "0"],
    ["--threads", "-2"],
    ["--max-reject-share", "-0.1"],
    ["--max-reject-share", "1.5"],
    ["--max-reject-share", "nan"],
    ["--max-reject-share", "inf"],
    ["--in-memory", "--batch-rows", "5"],
    ["--master", "local[1]"],
]


@pytest.mark.parametrize("extra", _ARGPARSE_LEVEL + _VALUE_LEVEL, ids=lambda v: " ".join(v))
def test_out_of_range_options_exit_2_with_one_line(book, extra):
    lay = book
    argv = _score_argv(lay, lay.inp / "ph.parquet", *extra)
    _, line = lay.run(argv, allowed=(2,))
    if extra in _ARGPARSE_LEVEL:
        assert line.startswith("rxrisk score: error:") and "rxrisk score --help" in line, line


@pytest.mark.parametrize(
    "extra",
    [
        ["--partitions", "0"],
        ["--partitions", "100000"],
        ["--batch-rows", "0"],
        ["--batch-rows", "1000000000"],
        ["--memory-budget", "2T"],
        ["--memory-budget", "-1"],
    ],
    ids=lambda v: " ".join(v),
)
def test_streaming_bounds_name_their_range(book, extra):
    lay = book
    _, line = lay.run(_score_argv(lay, lay.inp / "ph.parquet", *extra), allowed=(2,))
    assert extra[0] in line and "between" in line, line


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "{ph}", "--as-of", AS_OF],  # no --out
        ["score", "{ph}", "--out", "{out}/m.parquet"],  # no --as-of
        ["score", "--as-of", AS_OF, "--out", "{out}/m.parquet"],  # no PHARMACY
        ["score"],
        ["frobnicate"],
        [],
        ["edits", "{ph}", "--out", "{out}/e.parquet", "--set", "bogus"],
        ["edits", "{ph}", "--out", "{out}/e.parquet", "--set", "mme_hard_limit.threshold=nan"],
        ["edits", "{ph}", "--out", "{out}/e.parquet", "--set", "mme_hard_limit.threshold=abc"],
        ["edits", "{ph}", "--out", "{out}/e.parquet", "--set", "nosuch.threshold=1"],
    ],
    ids=lambda v: " ".join(v) or "<none>",
)
def test_usage_errors_exit_2_with_one_line(book, argv):
    lay = book
    allowed = (0, 2) if not argv else (2,)  # bare "rxrisk" may print its help
    argv = [
        a.replace("{ph}", str(lay.inp / "ph.parquet")).replace("{out}", str(lay.out)) for a in argv
    ]
    run, _ = lay.run(argv, allowed=allowed)
    if run.rc == 0:
        assert "usage" in run.out.lower()


@pytest.mark.parametrize(
    "extra",
    [
        ["--members", "0"],
        ["--members", "-5"],
        ["--members", "many"],
        ["--members", "10", "--part-members", "0"],
        ["--members", "10", "--seed", "x"],
        ["--members", "10", "--out-is-a-file"],
    ],
    ids=lambda v: " ".join(v),
)
def test_generate_usage_errors(lay, extra):
    target = lay.out / "book"
    if "--out-is-a-file" in extra:
        extra = [e for e in extra if e != "--out-is-a-file"]
        target = lay.inp / "ph.parquet"
        _write_parquet(_good_pharmacy(), target)
    run, _ = lay.run(["generate", *extra, "--out", target, "--quiet"], allowed=(2,))
    assert not (lay.out / "book").exists()


@pytest.mark.parametrize("value", ["1e999", "inf", "-5", "0"])
def test_edit_threshold_overrides(book, value):
    lay = book
    argv = [
        "edits",
        lay.inp / "ph.parquet",
        "--out",
        lay.out / "e.parquet",
        "--audit",
        lay.out / "audit.json",
    ]
    lay.run(
        [*argv, "--set", f"mme_hard_limit.threshold={value}"], requested=["e.parquet", "audit.json"]
    )


def test_edit_override_is_not_evaluated_as_code(book):
    lay = book
    marker = lay.root / "PWNED"
    expr = f"__import__('os').system('touch {marker}')"
    lay.run(
        [
            "edits",
            lay.inp / "ph.parquet",
            "--out",
            lay.out / "e.parquet",
            "--set",
            f"mme_hard_limit.threshold={expr}",
        ],
        allowed=(2,),
    )
    assert not marker.exists()


# -------------------------------------------------------------------------------- rule files

_FLAG = "[[flags]]\nname = \"hit\"\nwhen = '''{}'''\n"
_DEEP = 5000
_RULES_EXIT_2 = {
    "toml-syntax": "[[flags]\nname = 'x'\n",
    "toml-unterminated": "[metrics]\nwindows = [90, 180\n",
    "unknown-top-field": "bogus = 1\n",
    "unknown-metrics-field": "[metrics]\nbogus = 1\n",
    "unknown-flag-field": "[[flags]]\nname = 'x'\nwhen = 'oud_dx'\ncolour = 'red'\n",
    "nan-high-dose": "[metrics]\nhigh_dose_mme = nan\n",
    "nan-tolerance": "[metrics]\ntolerance = nan\n",
    "nan-window": "[metrics]\nwindows = [nan]\n",
    "windows-empty": "[metrics]\nwindows = []\n",
    "windows-zero": "[metrics]\nwindows = [0]\n",
    "windows-negative": "[metrics]\nwindows = [-1, 90]\n",
    "windows-duplicate": "[metrics]\nwindows = [90, 90]\n",
    "windows-huge": "[metrics]\nwindows = [9223372036854775807]\n",
    "windows-text": "[metrics]\nwindows = '90'\n",
    "windows-float": "[metrics]\nwindows = [90.5]\n",
    "max-days-zero": "[metrics]\nmax_days_supply = 0\n",
    "int-overflow": "[metrics]\nmax_days_supply = 99999999999999999999\n",
    "edition-unknown": "[metrics]\nfactor_edition = 'cdc1999'\n",
    "edition-number": "[metrics]\nfactor_edition = 5\n",
    "flag-name-clash": "[[flags]]\nname = 'member_id'\nwhen = 'oud_dx'\n",
    "flag-name-dup": "[[flags]]\nname = 'x'\nwhen = 'oud_dx'\n[[flags]]\nname = 'x'\nwhen = 'oud_dx'\n",
    "flag-name-empty": "[[flags]]\nname = ''\nwhen = 'oud_dx'\n",
    "flag-name-space": "[[flags]]\nname = 'a b'\nwhen = 'oud_dx'\n",
    "when-empty": _FLAG.format(""),
    "when-number": "[[flags]]\nname = 'x'\nwhen = 5\n",
    "when-forward-ref": "[[flags]]\nname = 'a'\nwhen = 'b'\n[[flags]]\nname = 'b'\nwhen = 'oud_dx'\n",
    "when-bool-compared": _FLAG.format("oud_dx >= 1"),
    "when-bare-number": _FLAG.format("mme_avg_180d"),
    "when-text-threshold": _FLAG.format("mme_avg_180d >= 'x'"),
    "when-bool-threshold": _FLAG.format("mme_avg_180d >= True"),
    "when-reversed": _FLAG.format("90 <= mme_avg_180d"),
    "when-chained": _FLAG.format("mme_avg_180d >= 1 >= 0"),
    "when-nan-name": _FLAG.format("mme_avg_180d >= nan"),
    "when-arithmetic": _FLAG.format("mme_avg_180d * 2 >= 90"),
    "deep-not": _FLAG.format("not " * _DEEP + "oud_dx"),
    "deep-parens": _FLAG.format("(" * _DEEP + "oud_dx" + ")" * _DEEP),
    "deep-and": _FLAG.format("oud_dx and (" * _DEEP + "oud_dx" + ")" * _DEEP),
    "deep-toml-array": "x = " + "[" * _DEEP + "]" * _DEEP + "\n",
    "deep-toml-table": "x = " + "{a = " * _DEEP + "1" + "}" * _DEEP + "\n",
    "binary": "\x00\x01\x02\xff",
}
_INJECTIONS = [
    "__import__('os').system('touch {m}')",
    "oud_dx or __import__('os').system('touch {m}')",
    'oud_dx and exec(\'open("{m}", "w")\')',
    "mme_avg_180d.__class__.__bases__ >= 1",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "lambda: open('{m}', 'w')",
    "__builtins__",
    "oud_dx if open('{m}', 'w') else oud_dx",
    "oud_dx; import os",
    "oud_dx\nor __import__('os').system('touch {m}')",
    'f\'{{open("{m}", "w")}}\' >= 1',
    "(x := open('{m}', 'w'))",
    "getattr(oud_dx, 'x')",
]
_RULES_EITHER = {
    "empty": "",
    "bom": "\ufeff[metrics]\nwindows = [90, 180, 365]\n",
    "inf-high-dose": "[metrics]\nhigh_dose_mme = inf\n",
    "negative-high-dose": "[metrics]\nhigh_dose_mme = -1.0\n",
    "when-inf": _FLAG.format("mme_avg_180d >= 1e999"),
    "when-negative": _FLAG.format("mme_avg_180d >= -1"),
    "when-comment": _FLAG.format("mme_avg_180d >= 90 # comment"),
    "long-flat": _FLAG.format("oud_dx or " * _DEEP + "oud_dx"),
    "shallow-parens": _FLAG.format("(" * 50 + "oud_dx" + ")" * 50),
    "long-name": "[[flags]]\nname = '" + "x" * 10000 + "'\nwhen = 'oud_dx'\n",
    "dunder-name": "[[flags]]\nname = '__import__'\nwhen = 'oud_dx'\n",
}


def _rules_run(book, text: str, allowed, *, raw: bytes | None = None):
    lay = book
    path = lay.inp / "custom.toml"
    path.write_bytes(raw if raw is not None else text.encode())
    argv = _score_argv(lay, lay.inp / "ph.parquet", "--rules", path, "--quiet")
    return lay.run(argv, requested=REQ, allowed=allowed)


@pytest.mark.parametrize("name", list(_RULES_EXIT_2))
def test_malformed_rule_files_exit_2(book, name):
    text = _RULES_EXIT_2[name]
    raw = b"\x00\x01\x02\xff" if name == "binary" else None
    _, line = _rules_run(book, text, (2,), raw=raw)
    assert "custom.toml" in line, line


@pytest.mark.parametrize("expr", _INJECTIONS, ids=range(len(_INJECTIONS)))
def test_rule_expressions_never_run_code(book, monkeypatch, expr):
    lay = book
    cwd = lay.root / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    marker = lay.root / "PWNED"
    text = (
        '[[flags]]\nname = "hit"\nwhen = """'
        + expr.format(m=marker).replace("\\", "\\\\")
        + '"""\n'
    )
    _rules_run(book, text, (2,))
    assert not marker.exists() and os.listdir(cwd) == []


@pytest.mark.parametrize("name", list(_RULES_EITHER))
def test_odd_rule_files_score_or_exit_2(book, name):
    _rules_run(book, _RULES_EITHER[name], (0, 2))


_EDITS_EXIT_2 = {
    "syntax": "[mme_hard_limit\nthreshold = 1\n",
    "unknown-edit": "[no_such_edit]\nthreshold = 1\n",
    "unknown-field": "[mme_hard_limit]\ncolour = 'red'\n",
    "nan-threshold": "[mme_hard_limit]\nthreshold = nan\n",
    "nan-tolerance": "[config]\ntolerance = nan\n",
    "text-threshold": "[mme_hard_limit]\nthreshold = 'high'\n",
    "negative-lookback": "[opioid_naive_days_limit]\nlookback_days = -1\n",
    "deep-toml": "x = " + "[" * _DEEP + "]" * _DEEP + "\n",
    "injection": "[mme_hard_limit]\nthreshold = \"__import__('os').system('touch {m}')\"\n",
}


@pytest.mark.parametrize("name", list(_EDITS_EXIT_2))
def test_malformed_edit_files_exit_2(book, name):
    lay = book
    marker = lay.root / "PWNED"
    (lay.inp / "myedits.toml").write_text(_EDITS_EXIT_2[name].replace("{m}", str(marker)))
    argv = ["edits", lay.inp / "ph.parquet", "--edits", lay.inp / "myedits.toml"]
    argv += ["--out", lay.out / "e.parquet", "--audit", lay.out / "audit.json"]
    _, line = lay.run(argv, allowed=(2,))
    assert "myedits.toml" in line and not marker.exists()


@pytest.mark.parametrize(
    "text",
    ["[ed_visit\n", "bogus = 1\n", "x = " + "[" * _DEEP + "]" * _DEEP + "\n", "\x00\xff"],
    ids=["syntax", "unknown-field", "deep-toml", "binary"],
)
def test_malformed_codeset_files_exit_2(book, text):
    lay = book
    (lay.inp / "mycodes.toml").write_text(text)
    argv = _score_argv(lay, lay.inp / "ph.parquet", "--codesets", lay.inp / "mycodes.toml")
    _, line = lay.run(argv, allowed=(2,))
    assert "mycodes.toml" in line


@pytest.mark.parametrize(
    "extra",
    [
        ["--audit", "{in}/rules.toml", "--rules", "{in}/rules.toml"],
        ["--audit", "{in}/myedits.toml", "--edits", "{in}/myedits.toml"],
        ["--audit", "{in}/ref.csv", "--reference", "{in}/ref.csv"],
        ["--audit", "{out}/e.parquet"],
    ],
    ids=lambda v: " ".join(v),
)
def test_edits_output_collisions(book, extra):
    lay = book
    shutil.copy(data_path("rules", "edits.toml"), lay.inp / "myedits.toml")
    argv = ["edits", lay.inp / "ph.parquet", "--out", lay.out / "e.parquet"]
    argv += [a.replace("{in}", str(lay.inp)).replace("{out}", str(lay.out)) for a in extra]
    lay.run(argv, allowed=(2,))


_EXPR_LEAVES = [
    "mme_avg_180d",
    "opioid_fills_90d",
    "days_since_emergency",
    "oud_dx",
    "cancer_dx",
    "90",
    "0.5",
    "1e999",
    "-1",
    "nan",
    "True",
    "None",
    "'text'",
    "...",
    "__import__('os').system('touch {m}')",
    "open('{m}', 'w')",
    "mme_avg_180d.real",
    "[1]",
    "{{1: 2}}",
    "hit",
]


def _expressions():
    leaf = st.sampled_from(_EXPR_LEAVES)

    def grow(inner):
        return st.one_of(
            inner.map(lambda x: f"not {x}"),
            inner.map(lambda x: f"({x})"),
            st.tuples(
                inner, inner, st.sampled_from(["and", "or", ">=", "<", "==", "!=", "+", "*", "if"])
            ).map(
                lambda t: (
                    f"{t[0]} {t[2]} {t[1]}" if t[2] != "if" else f"{t[0]} if {t[1]} else {t[0]}"
                )
            ),
        )

    return st.recursive(leaf, grow, max_leaves=12)


@HALF_SETTINGS
@given(expr=_expressions())
def test_random_rule_expressions_score_or_raise_input_error(small_book, tmp_path_factory, expr):
    """Any expression, well-formed or not: a flag column or an InputError, never another
    exception, never code run."""
    ph, md = small_book
    marker = tmp_path_factory.getbasetemp() / "PWNED"
    when = expr.format(m=marker)
    try:
        res = rxrisk.score(ph, md, as_of=AS_OF, rules={"flags": [{"name": "hit", "when": when}]})
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)
    else:
        assert res.members.schema.field("hit").type == pa.bool_()
    assert not marker.exists()


def test_valid_rules_still_work(book):
    """The shallow forms of the deep expressions are fine: the checks are not blanket refusals."""
    text = _FLAG.format("not not (oud_dx and (sud_dx or not cancer_dx))")
    _rules_run(book, text, (0,))


def test_rules_path_is_a_folder_or_missing(book):
    lay = book
    for rules in (lay.inp, lay.inp / "missing.toml"):
        lay.run(_score_argv(lay, lay.inp / "ph.parquet", "--rules", rules), allowed=(2,))


# ------------------------------------------------------------------------------ as-of dates


@pytest.mark.parametrize(
    ("as_of", "allowed"),
    [
        ("2024-02-29", (0,)),
        ("2025-02-29", (2,)),
        ("2025-02-30", (2,)),
        ("", (2,)),
        (",", (2,)),
        ("31/12/2025", (2,)),
        ("2025-12-31,nope", (2,)),
        ("0000-12-31", (2,)),
        ("2025-12-31T00:00", (2,)),
        ("2025-12-31,2024-12-31,2025-12-31", (0,)),
        ("0001-01-01", (0, 2)),
        ("9999-12-31", (0, 2)),
        ("20251231", (0, 2)),
        (" 2025-12-31 , 2025-06-30 ", (0, 2)),
        ("2025-12-31,", (0, 2)),
    ],
    ids=repr,
)
def test_cli_as_of_edge_cases(book, as_of, allowed):
    lay = book
    argv = ["score", lay.inp / "ph.parquet", "--medical", lay.inp / "md.csv", "--as-of", as_of]
    argv += ["--out", lay.out / "m.parquet", "--audit", lay.out / "audit.json"]
    lay.run(argv, requested=REQ, allowed=allowed)
    if as_of.startswith("2025-12-31,2024"):
        assert lay.audit()["as_of"] == ["2024-12-31", "2025-12-31"]


def test_many_as_of_dates(book):
    lay = book
    days = [str(dt.date(2024, 1, 1) + dt.timedelta(days=i)) for i in range(0, 730, 2)]
    argv = _score_argv(lay, lay.inp / "ph.parquet", medical=lay.inp / "md.csv")
    argv[argv.index("--as-of") + 1] = ",".join(days)
    lay.run(argv, requested=REQ, allowed=(0,))
    assert len(lay.audit()["as_of"]) == len(days)


_TWO = ["2025-06-30", "2025-12-31"]
_AS_OF_API_OK = [
    (np.datetime64("2025-12-31"), AS_OF),
    (np.datetime64("2025-12-31T10:00"), AS_OF),
    ([np.datetime64("2025-12-31", "D"), "2025-06-30"], _TWO),
    (np.array(["2025-12-31", "2025-06-30"], dtype="datetime64[D]"), _TWO),
    (dt.datetime(2025, 12, 31, 23, 59), AS_OF),
    ([dt.date(2025, 12, 31)], AS_OF),
]
_AS_OF_API_BAD = [
    20251231,
    2025.5,
    True,
    None,
    [],
    "2025-02-30",
    np.datetime64("NaT"),
    [20251231],
    ["2025-12-31", None],
    float("nan"),
    b"2025-12-31",
]


@pytest.mark.parametrize(("as_of", "same_as"), _AS_OF_API_OK, ids=repr)
def test_api_as_of_accepted(small_book, as_of, same_as):
    ph, md = small_book
    got = rxrisk.score(ph, md, as_of=as_of)
    want = rxrisk.score(ph, md, as_of=same_as)
    assert got.audit["as_of"] == want.audit["as_of"]
    assert got.members.equals(want.members)


@pytest.mark.parametrize("as_of", _AS_OF_API_BAD, ids=repr)
def test_api_as_of_rejected_with_input_error(small_book, as_of):
    ph, md = small_book
    with pytest.raises(InputError) as exc:
        rxrisk.score(ph, md, as_of=as_of)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------- API hostility


def test_api_rules_as_dict(small_book):
    ph, md = small_book
    rules = {"flags": [{"name": "hit", "when": "mme_avg_180d >= 90"}]}
    res = rxrisk.score(ph, md, as_of=AS_OF, rules=rules)
    assert "hit" in res.members.column_names


@pytest.mark.parametrize(
    "rules",
    [
        {"bogus": 1},
        {"metrics": {"high_dose_mme": float("nan")}},
        {"flags": [{"name": "hit", "when": "__import__('os')"}]},
        {"flags": [{"name": "hit", "when": "not " * _DEEP + "oud_dx"}]},
        {"flags": "oud_dx"},
    ],
    ids=lambda v: repr(v)[:60],
)
def test_api_bad_rules_raise_input_error(small_book, rules):
    ph, md = small_book
    with pytest.raises(InputError) as exc:
        rxrisk.score(ph, md, as_of=AS_OF, rules=rules)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("rules", [42, b"[metrics]", 1.5], ids=repr)
def test_api_rules_of_a_wrong_type(small_book, rules):
    ph, md = small_book
    with pytest.raises((InputError, TypeError)):
        rxrisk.score(ph, md, as_of=AS_OF, rules=rules)


@pytest.mark.parametrize(
    "pharmacy",
    [42, "no/such/file.parquet", object(), pa.table({"x": [1]}), pa.table({})],
    ids=["int", "missing", "object", "no-columns", "empty"],
)
def test_api_bad_pharmacy_raises_input_error(pharmacy):
    with pytest.raises(InputError):
        rxrisk.score(pharmacy, as_of=AS_OF)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), "0.5x"])
def test_api_bad_max_reject_share(small_book, share):
    ph, md = small_book
    with pytest.raises((InputError, TypeError) if isinstance(share, str) else InputError):
        rxrisk.score(ph, md, as_of=AS_OF, max_reject_share=share)


# -------------------------------------------------------------- the real entry point (slow)


def _entry_point() -> list[str]:
    exe = Path(sys.executable).with_name("rxrisk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rxrisk.cli"]


def _subprocess_cases(lay: Layout) -> list[tuple[str, list]]:
    ph = _write_parquet(_good_pharmacy(), lay.inp / "ph.parquet")
    (lay.inp / "rag.csv").write_text(
        ",".join(hs.PHARMACY_COLUMNS) + "\nZQM0001,2025-12-01,x,1,1,,,,paid,ZQX0001\n"
    )
    (lay.inp / "deep.toml").write_text(_FLAG.format("not " * _DEEP + "oud_dx"))
    (lay.inp / "deeptoml.toml").write_text(_RULES_EXIT_2["deep-toml-array"])
    bad = _write_parquet(_bad_dates_book(30, 20), lay.inp / "bad.parquet")
    out = ["--out", str(lay.out / "m.parquet")]
    base = ["score", "--as-of", AS_OF, *out]
    return [
        ("ragged", [*base, str(lay.inp / "rag.csv")]),
        ("deep-rule", [*base, str(ph), "--rules", str(lay.inp / "deep.toml")]),
        ("deep-toml", [*base, str(ph), "--rules", str(lay.inp / "deeptoml.toml")]),
        ("unknown-option", [*base, str(ph), "--bogus"]),
        ("out-is-input", ["score", str(ph), "--as-of", AS_OF, "--out", str(ph)]),
        ("loud-stop", [*base, str(bad)]),
        ("memory-budget-inf", [*base, str(ph), "--memory-budget", "inf"]),
    ]


@pytest.mark.slow
def test_real_entry_point_errors_are_one_line(tmp_path):
    lay = Layout(tmp_path)
    failures = []
    for name, argv in _subprocess_cases(lay):
        before = hs.snapshot(lay.inp)
        p = subprocess.run(
            [*_entry_point(), *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != "RXRISK_DEBUG"},
        )
        run = hs.Run(p.returncode, p.stdout, p.stderr, argv)
        try:
            hs.check_streams(run, (2,))
            assert hs.snapshot(lay.inp) == before
            assert os.listdir(lay.out) == []
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)

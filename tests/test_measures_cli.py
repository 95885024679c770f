"""``rxrisk measures``: a CSV plan extract with US dates, the outputs it writes (together or not
at all), the lines it prints, and its usage and input errors (exit 2, one line, nothing written).
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.config.resources import data_path
from rxrisk.quality.rates import MEASURES
from rxrisk.quality.summary import SUMMARY_SCHEMA

OXY30 = "00228287911"  # oxycodone 30 mg tablet (packaged reference), MME factor 1.5

PHARMACY_CSV = f"""member_id,fill_date,ndc,quantity,days_supply,prescriber_id,pharmacy_id,claim_id,claim_status
A,01/10/2025,{OXY30},120,30,P1,R1,c1,paid
A,02/10/2025,{OXY30},120,30,P2,R1,c2,paid
B,01/15/2025,{OXY30},30,30,P1,R2,c3,paid
B,02/15/2025,{OXY30},30,30,P1,R2,c4,paid
C,03/01/2025,{OXY30},120,30,P1,R1,c5,paid
C,04/01/2025,{OXY30},120,30,P1,R1,c6,paid
"""

ELIGIBILITY_CSV = """member_id,start_date,end_date,product
A,01/01/2020,,part_d
B,06/01/2024,12/31/2026,medicaid
C,01/01/2020,,part_d
"""

MEMBERS_CSV = """member_id,birth_date
A,05/01/1960
B,01/01/1980
"""


@pytest.fixture
def extract(tmp_path):
    """A plan extract: three CSV files with US dates (C has no members row)."""
    for name, text in (
        ("pharmacy.csv", PHARMACY_CSV),
        ("eligibility.csv", ELIGIBILITY_CSV),
        ("members.csv", MEMBERS_CSV),
    ):
        (tmp_path / name).write_text(text)
    return tmp_path


def _argv(t, *extra):
    return [
        "measures",
        str(t / "pharmacy.csv"),
        "--eligibility",
        str(t / "eligibility.csv"),
        "--members",
        str(t / "members.csv"),
        "--date-format",
        "%m/%d/%Y",
        *extra,
    ]


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err


# ------------------------------------------------------------------ a run


def test_csv_extract_with_us_dates(extract, capsys):
    t = extract
    rc = main(
        _argv(
            t,
            "--year",
            "2025",
            "--out",
            str(t / "summary.csv"),
            "--detail",
            str(t / "detail.parquet"),
            "--audit",
            str(t / "audit.json"),
            "--report",
            str(t / "report"),
        )
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = pacsv.read_csv(t / "summary.csv")
    assert summary.column_names == SUMMARY_SCHEMA.names
    assert summary.num_rows == len(MEASURES) * 3  # all, medicaid, part_d
    rows = [r for r in summary.to_pylist() if r["product"] == "all"]
    high = next(r for r in rows if r["measure"] == "high_dose_average")
    assert (high["eligible"], high["denominator"], high["numerator"], high["rate"]) == (
        2,
        2,
        1,
        0.5,
    )
    detail = pq.read_table(t / "detail.parquet")
    assert detail.column("member_id").to_pylist() == ["A", "B"]  # C: no members row
    assert detail.column("ipsd").to_pylist() == [dt.date(2025, 1, 10), dt.date(2025, 1, 15)]
    audit = json.loads((t / "audit.json").read_text())
    assert audit["members_eligible"] == 2 and audit["members"]["rows_read"] == 2
    assert audit["eligibility"]["buckets"] == {"rejected": 0, "used": 3}
    assert (t / "report" / "index.html").read_text().lstrip().lower().startswith("<!doctype html")
    # the same as the API
    api = rxrisk.measures(
        str(t / "pharmacy.csv"),
        eligibility=str(t / "eligibility.csv"),
        members=str(t / "members.csv"),
        periods=2025,
        date_format="%m/%d/%Y",
    )
    assert pq.read_table(t / "detail.parquet").equals(api.detail)
    # what it printed: the intake of the four inputs on stderr, the rates on stdout
    err = captured.err.splitlines()
    assert any(line.startswith("rxrisk: eligibility ") and "3 rows read" in line for line in err)
    assert any(line.startswith("rxrisk: members ") for line in err)
    assert "rxrisk: measured 2 members eligible for a measure in 1 period" in captured.out
    assert "high_dose_average" in captured.out and "50.0%" in captured.out


def test_periods_and_formats(extract, capsys):
    t = extract
    rc = main(
        _argv(
            t,
            "--period",
            "2025-01-01:2025-06-30,2025-07-01:2025-12-31",
            "--out",
            str(t / "summary.arrow"),
            "--quiet",
        )
    )
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == "" and captured.err == ""
    summary = pa.ipc.open_file(t / "summary.arrow").read_all()
    assert summary.schema == SUMMARY_SCHEMA
    starts = sorted(set(summary.column("period_start").to_pylist()))
    assert starts == [dt.date(2025, 1, 1), dt.date(2025, 7, 1)]


def test_config_file_changes_the_rates(extract, capsys):
    t = extract
    (t / "m.toml").write_text("[high_dose]\nhigh_dose_average_mme = 200\n")
    out = t / "s.parquet"
    assert main(_argv(t, "--year", "2025", "--config", str(t / "m.toml"), "--out", str(out))) == 0
    rows = pq.read_table(out).to_pylist()
    high = next(r for r in rows if r["measure"] == "high_dose_average" and r["product"] == "all")
    assert high["numerator"] == 0


def test_config_show_measures_prints_the_default(capsys, tmp_path):
    assert main(["config", "show", "measures"]) == 0
    text = capsys.readouterr().out
    assert text == data_path("measures", "default.toml").read_text()
    assert "SPEC" not in text


def test_help_lists_the_command(capsys):
    assert main(["--help"]) == 0
    assert "measures" in capsys.readouterr().out
    assert main(["measures", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--eligibility", "--members", "--year", "--period", "--detail", "--report"):
        assert option in text
    assert "SPEC" not in text


# ------------------------------------------------------------------ refused: exit 2, one line


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--out", "{t}/s.parquet"], "one of the arguments --year --period is required"),
        (
            ["--year", "2025", "--period", "2025-01-01:2025-12-31", "--out", "{t}/s.parquet"],
            "not allowed with argument",
        ),
        (["--year", "20x5", "--out", "{t}/s.parquet"], "--year '20x5' is not a year"),
        (["--period", "2025-02-30:2025-12-31", "--out", "{t}/s.parquet"], "does not exist"),
        (["--period", "2025-12-31:2025-01-01", "--out", "{t}/s.parquet"], "end is before"),
        (["--year", "2025", "--out", "{t}/s.txt"], "--out {t}/s.txt: unknown extension '.txt'"),
        (
            ["--year", "2025", "--out", "{t}/eligibility.csv"],
            "--out {t}/eligibility.csv and --eligibility {t}/eligibility.csv are the same file",
        ),
        (
            ["--year", "2025", "--out", "{t}/s.csv", "--detail", "{t}/s.csv"],
            "--detail {t}/s.csv and --out {t}/s.csv are the same file",
        ),
        (
            ["--year", "2025", "--out", "{t}/s.csv", "--report", "{t}/members.csv"],
            "--report {t}/members.csv: is a file; give a folder",
        ),
        (
            ["--year", "2025", "--out", "{t}/s.csv", "--config", "{t}/none.toml"],
            "measures config file {t}/none.toml: cannot be read",
        ),
        (["--year", "2025", "--out", "{t}/s.csv", "--threads", "0"], "--threads 0: out of range"),
        (
            ["--year", "2025", "--out", "{t}/s.csv", "--max-reject-share", "2"],
            "max reject share '2'",
        ),
    ],
)
def test_refused_runs_write_nothing(extract, capsys, monkeypatch, extra, needle):
    t = extract

    def boom(*a, **k):
        raise AssertionError("the run read its inputs before refusing")

    if "--max-reject-share" not in extra:
        monkeypatch.setattr(rxrisk.quality.run, "measures", boom)
    before = _files(t)
    rc = main(_argv(t, *[a.replace("{t}", str(t)) for a in extra]))
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err), err
    assert needle.replace("{t}", str(t)) in err
    assert _files(t) == before


def test_missing_required_options(extract, capsys):
    rc = main(["measures", str(extract / "pharmacy.csv"), "--year", "2025", "--out", "s.csv"])
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err)
    assert "the following arguments are required: --eligibility, --members" in err


def test_bad_input_stops_before_any_output(extract, capsys):
    t = extract
    rows = ["member_id,start_date,end_date,product"] + [f"M{i},2025-13-01,," for i in range(20)]
    (t / "eligibility.csv").write_text("\n".join(rows) + "\n")
    before = _files(t)
    out = ["--out", str(t / "s.csv"), "--audit", str(t / "a.json"), "--report", str(t / "r")]
    rc = main(_argv(t, "--year", "2025", *out))
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err), err
    assert "start_date" in err and "eligibility.csv" in err
    assert _files(t) == before and not (t / "r").exists()


def test_missing_column_is_one_line(extract, capsys):
    t = extract
    (t / "members.csv").write_text("member_id,born\nA,05/01/1960\n")
    rc = main(_argv(t, "--year", "2025", "--out", str(t / "s.csv")))
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err) and "birth_date" in err
    assert not (t / "s.csv").exists()


def test_quarantine_and_streaming_give_the_same_outputs(extract, capsys):
    t = extract
    (t / "members.csv").write_text(MEMBERS_CSV + "A,05/01/1961\n")  # a duplicate of A
    common = ["--year", "2025", "--max-reject-share", "1"]
    assert main(_argv(t, *common, "--out", str(t / "a.parquet"), "--in-memory")) == 0
    rc = main(
        _argv(
            t,
            *common,
            "--out",
            str(t / "b.parquet"),
            "--quarantine",
            str(t / "q.csv"),
            "--stream",
            "--batch-rows",
            "2",
        )
    )
    assert rc == 0, capsys.readouterr().err
    assert (t / "a.parquet").read_bytes() == (t / "b.parquet").read_bytes()
    q = pacsv.read_csv(t / "q.csv").to_pylist()
    assert [(r["source"], r["row_number"], r["reject_reason"]) for r in q] == [
        ("members", 3, "duplicate")
    ]
    assert "members duplicate: 1 of 3" in capsys.readouterr().err  # the warning


def test_a_failed_report_leaves_no_output(extract, capsys, monkeypatch):
    t = extract

    def fail(out_dir, summary, detail, *, run=None, **kw):
        run.text("half", run.folder(out_dir) / "index.html")  # under a temporary name
        raise OSError("disk full")

    monkeypatch.setattr(rxrisk.quality.report, "write_measures_report", fail)
    before = _files(t)
    out = ["--out", str(t / "s.csv"), "--detail", str(t / "d.csv"), "--report", str(t / "report")]
    rc = main(_argv(t, "--year", "2025", *out))
    err = capsys.readouterr().err
    assert rc == 1 and "OSError: disk full" in err
    assert _files(t) == before and not (t / "report").exists()


def test_streaming_removes_spill_folders_of_killed_runs(extract, capsys):
    """A streamed run first removes the spill folders killed runs left where it spills (as
    ``score``, ``edits`` and ``report`` do), even when it spills nothing itself."""
    import subprocess
    import sys

    from rxrisk.io import runfiles

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    t = extract
    spill = t / "spill"
    spill.mkdir()
    dead = spill / f"rxrisk-spill-{runfiles._host()}-{proc.pid}-123-0-fills"
    dead.mkdir()
    (dead / "fills-00000.arrow").write_bytes(b"x")
    mine = spill / "notes"  # not a spill folder: stays
    mine.mkdir()
    argv = _argv(t, "--year", "2025", "--out", str(t / "s.parquet"), "--stream")
    assert main([*argv, "--spill-dir", str(spill), "--memory-budget", "1G"]) == 0, (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in spill.iterdir()) == ["notes"]

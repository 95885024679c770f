"""The command line: exit codes, one-line errors, atomic outputs, lazy imports."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from rxrisk.cli import main


@pytest.fixture
def book_files(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    return tmp_path


def _score(tmp, *extra):
    return main(
        [
            "score",
            str(tmp / "ph.parquet"),
            "--medical",
            str(tmp / "md.parquet"),
            "--as-of",
            "2025-12-31",
            *extra,
        ]
    )


def test_score_writes_every_output(book_files, capsys):
    out = book_files / "members.parquet"
    rc = _score(
        book_files,
        "--out",
        str(out),
        "--audit",
        str(book_files / "audit.json"),
        "--quarantine",
        str(book_files / "q.csv"),
        "--threads",
        "1",
    )
    assert rc == 0
    members = pq.read_table(out)
    assert members.column("member_id").to_pylist() == ["A", "C", "E"]
    audit = json.loads((book_files / "audit.json").read_text())
    assert audit["rows_out"] == 3 and audit["members_scored"] == 3
    assert set(audit["seconds"]) >= {"read", "validate", "encode", "kernels", "rules", "output"}
    assert (book_files / "q.csv").read_text().count("\n") == 5  # header + 4 rejected rows
    assert "scored 3 members" in capsys.readouterr().out
    assert not [p for p in os.listdir(book_files) if p.endswith(".tmp")]


@pytest.mark.parametrize("ext", [".csv", ".arrow", ".parquet"])
def test_output_formats(book_files, ext):
    assert _score(book_files, "--out", str(book_files / f"m{ext}"), "--quiet") == 0
    assert (book_files / f"m{ext}").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--as-of", "2025-13-01", "--out", "{t}/m.parquet"], "is not a date"),
        (["--as-of", "2025-12-31", "--out", "{t}/m.xlsx"], "unknown extension"),
        (["--as-of", "2025-12-31", "--out", "{t}/nowhere/m.parquet"], "does not exist"),
        (
            ["--as-of", "2025-12-31", "--out", "{t}/m.parquet", "--rules", "{t}/missing.toml"],
            "cannot be read",
        ),
        (["--as-of", "2025-12-31", "--out", "{t}/m.parquet", "--threads", "0"], "--threads 0"),
    ],
)
def test_usage_errors_exit_2_with_one_line(book_files, capsys, args, needle):
    args = [a.replace("{t}", str(book_files)) for a in args]
    rc = main(["score", str(book_files / "ph.parquet"), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (book_files / "m.parquet").exists()


def test_missing_column_exit_2(book_files, small_book, capsys):
    ph, _ = small_book
    pq.write_table(ph.drop_columns(["ndc"]), book_files / "bad.parquet")
    rc = main(
        [
            "score",
            str(book_files / "bad.parquet"),
            "--as-of",
            "2025-12-31",
            "--out",
            str(book_files / "m.parquet"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "missing required column 'ndc'" in err and "bad.parquet" in err


def test_help_imports_no_numba():
    code = "import sys; from rxrisk.cli.options import build_parser; build_parser().format_help(); print('numba' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_show_lists_flagged_members(book_files, capsys):
    out = book_files / "members.parquet"
    assert _score(book_files, "--out", str(out), "--quiet") == 0
    assert main(["show", str(out), "--flag", "high_dose"]) == 0
    text = capsys.readouterr().out
    assert "high_dose=1" in text and "\nA " in text

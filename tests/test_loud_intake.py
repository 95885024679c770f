"""Loud intake: the run summary on stderr, warnings in the audit, and the stop (exit 2,
nothing written) when one rejection reason takes too large a share of an input's in-scope
rows; the same for score (in memory and streaming), edits and report."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.edits import replay_edits
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError
from rxrisk.reports import write_reports

AS_OF = "2025-12-31"
BAD_DATES = ["03/15/2025", "03/16/2025", "03/15/2025", "04/01/2025", "05/01/2025"]


def _pharmacy(ndcs, *, good: int, bad: int = 0, untracked: int = 0, bad_values=BAD_DATES):
    """``good`` tracked rows with ISO dates, ``bad`` tracked rows with dates from
    ``bad_values`` (in turn), then ``untracked`` rows of an NDC not in the reference."""
    n = good + bad + untracked
    dates = [str(dt.date(2025, 6, 1) + dt.timedelta(days=i % 90)) for i in range(good)]
    dates += [bad_values[i % len(bad_values)] for i in range(bad)]
    dates += ["2025-07-01"] * untracked
    return pa.table(
        {
            "member_id": [f"SECRET{i:05d}" for i in range(n)],
            "fill_date": dates,
            "ndc": [ndcs["oxy30"]] * (good + bad) + [ndcs["untracked"]] * untracked,
            "quantity": [60.0] * n,
            "days_supply": [30] * n,
            "claim_id": [f"CLAIM{i:05d}" for i in range(n)],
        }
    )


def _medical(n: int, bad: int = 0):
    kinds = ["CPT"] * n + ["ICD9CM", "ICD-9", "X1", "X2"] * (bad // 4) + ["ICD9CM"] * (bad % 4)
    m = len(kinds)
    return pa.table(
        {
            "member_id": [f"SECRET{i:05d}" for i in range(m)],
            "service_date": ["2025-12-01"] * m,
            "code_type": kinds,
            "code": ["99284"] * m,
        }
    )


# ----------------------------------------------------------------------------- the stop


@pytest.mark.parametrize(
    "stream", [None, StreamOptions(batch_rows=7, partitions=2, claim_partitions=3)]
)
def test_stop_names_file_column_count_share_values_and_fix(ndcs, tmp_path, stream):
    ph = _pharmacy(ndcs, good=60, bad=40)
    pq.write_table(ph, tmp_path / "ph.parquet")
    with pytest.raises(InputError) as e:
        rxrisk.score(tmp_path / "ph.parquet", as_of=AS_OF, stream=stream)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"pharmacy input {tmp_path / 'ph.parquet'}: column fill_date: ")
    assert "40 of 100 in-scope rows (40.0%) rejected" in msg
    # the first three distinct values of the column, in input order; nothing else of the rows
    assert "(e.g. '03/15/2025', '03/16/2025', '04/01/2025')" in msg
    assert "05/01/2025" not in msg and "SECRET" not in msg and "CLAIM" not in msg
    assert ndcs["oxy30"] not in msg
    assert "dates must be YYYY-MM-DD or YYYYMMDD, or pass --date-format" in msg
    assert "--max-reject-share 1" in msg


def test_share_is_of_in_scope_rows(ndcs):
    # 30 of 100 tracked rows: a stop, though they are 1.4% of the rows read
    ph = _pharmacy(ndcs, good=70, bad=30, untracked=2_000)
    with pytest.raises(InputError, match=r"30 of 100 in-scope rows \(30\.0%\)"):
        rxrisk.score(ph, as_of=AS_OF)
    # 20 of 100: a warning only
    ph = _pharmacy(ndcs, good=80, bad=20, untracked=2_000)
    r = rxrisk.score(ph, as_of=AS_OF)
    assert r.audit["warnings"] == [
        "pharmacy fill_date: 20 of 100 in-scope rows (20.0%) rejected; dates must be "
        "YYYY-MM-DD or YYYYMMDD, or pass --date-format (API date_format=), "
        "e.g. --date-format '%m/%d/%Y'"
    ]


def test_fewer_than_ten_rows_never_stop(ndcs):
    r = rxrisk.score(_pharmacy(ndcs, good=3, bad=9), as_of=AS_OF)
    assert r.audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 9
    assert [w.split(":")[0] for w in r.audit["warnings"]] == ["pharmacy fill_date"]
    with pytest.raises(InputError, match="column fill_date: 10 of 13"):
        rxrisk.score(_pharmacy(ndcs, good=3, bad=10), as_of=AS_OF)


def test_max_reject_share(ndcs):
    ph = _pharmacy(ndcs, good=60, bad=40)
    r = rxrisk.score(ph, as_of=AS_OF, max_reject_share=1.0)
    assert r.audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 40
    assert r.audit["warnings"][0].startswith("pharmacy fill_date: 40 of 100")
    assert rxrisk.score(ph, as_of=AS_OF, max_reject_share=0.5).audit["warnings"]
    with pytest.raises(InputError, match="40.0%"):
        rxrisk.score(ph, as_of=AS_OF, max_reject_share=0.3)
    with pytest.raises(InputError, match="more than 10% of"):
        rxrisk.score(_pharmacy(ndcs, good=80, bad=20), as_of=AS_OF, max_reject_share=0.1)
    for bad in (-0.1, 1.5, "lots", float("nan"), True):
        with pytest.raises(InputError, match="give a share from 0 to 1"):
            rxrisk.score(ph, as_of=AS_OF, max_reject_share=bad)


def test_rule_file_sets_the_share_and_the_argument_overrides_it(ndcs, tmp_path):
    from rxrisk.config.resources import data_path

    ph = _pharmacy(ndcs, good=60, bad=40)
    text = data_path("rules", "default.toml").read_text(encoding="utf-8")
    assert "max_reject_share = 0.25" in text
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(text.replace("max_reject_share = 0.25", "max_reject_share = 0.5"))
    r = rxrisk.score(ph, as_of=AS_OF, rules=lenient)
    assert r.audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 40
    with pytest.raises(InputError, match="40.0%"):
        rxrisk.score(ph, as_of=AS_OF, rules=lenient, max_reject_share=0.3)
    with pytest.raises(InputError, match="40.0%"):
        replay_edits(ph, rules=lenient, max_reject_share=0.3)
    assert replay_edits(ph, rules=lenient).audit["warnings"]
    for bad in ("nan", "1.5", "-0.1"):
        broken = tmp_path / "broken.toml"
        broken.write_text(text.replace("max_reject_share = 0.25", f"max_reject_share = {bad}"))
        with pytest.raises(InputError, match="max_reject_share"):
            rxrisk.score(ph, as_of=AS_OF, rules=broken)


def test_medical_stop_names_code_type_and_the_accepted_values(ndcs):
    ph = _pharmacy(ndcs, good=20)
    md = _medical(20, bad=10)
    with pytest.raises(InputError) as e:
        rxrisk.score(ph, md, as_of=AS_OF)
    msg = str(e.value)
    assert msg.startswith("medical input: column code_type: 10 of 30 in-scope rows (33.3%)")
    assert "(e.g. 'ICD9CM', 'ICD-9', 'X1')" in msg
    assert "ICD10CM, CPT, HCPCS, REV or POS" in msg and "SECRET" not in msg
    r = rxrisk.score(ph, md, as_of=AS_OF, max_reject_share=1.0)
    assert r.audit["warnings"][0].startswith("medical code_type: 10 of 30 in-scope rows")


def test_streaming_stop_leaves_no_spill_file(ndcs, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    opts = StreamOptions(batch_rows=16, memory_bytes=0, spill_dir=str(spill))
    with pytest.raises(InputError, match="column fill_date"):
        rxrisk.score(_pharmacy(ndcs, good=200, bad=100), _medical(10), as_of=AS_OF, stream=opts)
    assert os.listdir(spill) == []


def test_audit_always_has_warnings(small_book, ndcs):
    ph, md = small_book
    assert rxrisk.score(_pharmacy(ndcs, good=50), as_of=AS_OF).audit["warnings"] == []
    for stream in (None, StreamOptions(batch_rows=3)):
        a = rxrisk.score(ph, md, as_of=AS_OF, stream=stream).audit
        assert list(a)[-1] == "warnings" and a["warnings"]  # a small book: shares above 1%
    assert replay_edits(_pharmacy(ndcs, good=50)).audit["warnings"] == []


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def files(ndcs, tmp_path):
    pq.write_table(_pharmacy(ndcs, good=80, bad=20, untracked=10), tmp_path / "warn.parquet")
    pq.write_table(_pharmacy(ndcs, good=60, bad=40), tmp_path / "stop.parquet")
    pq.write_table(_medical(30), tmp_path / "md.parquet")
    return tmp_path


def _score(files, ph, *extra):
    return main(
        ["score", str(files / ph), "--as-of", AS_OF, "--out", str(files / "m.parquet"), *extra]
    )


def test_summary_and_warning_on_stderr_when_not_a_terminal(files, capsys):
    audit = files / "a.json"
    rc = _score(
        files, "warn.parquet", "--medical", str(files / "md.parquet"), "--audit", str(audit)
    )
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"rxrisk: pharmacy {files / 'warn.parquet'}: 110 rows read, 100 in scope "
        "(10 untracked); rejected 20: fill_date 20 (20.0%)",
        f"rxrisk: medical {files / 'md.parquet'}: 30 rows read, 30 in scope; none rejected",
        "rxrisk: warning: pharmacy fill_date: 20 of 100 in-scope rows (20.0%) rejected; dates "
        "must be YYYY-MM-DD or YYYYMMDD, or pass --date-format (API date_format=), "
        "e.g. --date-format '%m/%d/%Y'",
    ]
    a = json.loads(audit.read_text())
    assert a["warnings"] == [err[2].removeprefix("rxrisk: warning: ")]


def test_summary_keeps_one_line_per_input_when_a_file_name_holds_a_line_break(files, capsys):
    odd = files / "warn\nrxrisk: forged.parquet"
    (files / "warn.parquet").rename(odd)
    assert _score(files, odd.name) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err  # the pharmacy line and the warning
    assert err[0].startswith("rxrisk: pharmacy ") and "warn\\nrxrisk: forged.parquet" in err[0]


def test_quiet_prints_no_summary(files, capsys):
    assert _score(files, "warn.parquet", "--quiet") == 0
    assert capsys.readouterr().err == ""


def test_stop_exit_2_one_line_nothing_written(files, capsys):
    audit = files / "a.json"
    assert _score(files, "stop.parquet", "--audit", str(audit)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{files / 'stop.parquet'}: column fill_date: 40 of 100" in err
    assert not (files / "m.parquet").exists() and not audit.exists()
    assert _score(files, "stop.parquet", "--max-reject-share", "1", "--quiet") == 0
    assert _score(files, "stop.parquet", "--max-reject-share", "0.5", "--quiet") == 0
    assert _score(files, "stop.parquet", "--max-reject-share", "x") == 2
    assert "give a share from 0 to 1" in capsys.readouterr().err


def test_stop_with_streaming_cli(files, capsys):
    assert _score(files, "stop.parquet", "--stream", "--batch-rows", "9") == 2
    assert "column fill_date: 40 of 100" in capsys.readouterr().err
    assert not (files / "m.parquet").exists()


def test_edits_stop_and_summary(files, capsys):
    out = files / "e.parquet"
    rc = main(["edits", str(files / "stop.parquet"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "column fill_date: 40 of 100" in err
    assert not out.exists()
    rc = main(
        ["edits", str(files / "stop.parquet"), "--out", str(out), "--date-format", "%m/%d/%Y"]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert f"rxrisk: pharmacy {files / 'stop.parquet'}: 100 rows read" in err
    assert pq.read_table(out).num_rows == 100
    rc = main(
        ["edits", str(files / "warn.parquet"), "--out", str(out), "--audit", str(files / "a")]
    )
    assert rc == 0 and "rxrisk: warning: pharmacy fill_date" in capsys.readouterr().err
    assert json.loads((files / "a").read_text())["warnings"][0].startswith("pharmacy fill_date")


def test_report_stop_and_summary(files, capsys):
    members = files / "members.parquet"
    us = ["--date-format", "%m/%d/%Y"]
    assert _score(files, "stop.parquet", *us, "--quiet") == 0
    (files / "m.parquet").rename(members)
    out = files / "report"
    args = ["report", str(members), "--pharmacy", str(files / "stop.parquet"), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column fill_date: 40 of 100" in err
    assert not out.exists()
    assert main([*args, *us]) == 0
    assert f"rxrisk: pharmacy {files / 'stop.parquet'}: 100 rows read" in capsys.readouterr().err
    assert (out / "index.html").exists()


def test_report_api_returns_the_blocks_and_warnings(files):
    members = rxrisk.score(files / "warn.parquet", as_of=AS_OF).members
    s = write_reports(members, files / "warn.parquet", out_dir=files / "r")
    assert s["pharmacy"]["rejected_by_reason"]["fill_date"] == 20
    assert s["warnings"][0].startswith("pharmacy fill_date: 20 of 100")
    with pytest.raises(InputError, match="column fill_date"):
        write_reports(members, files / "stop.parquet", out_dir=files / "r2")
    assert not (files / "r2").exists()


# ------------------------------------------------------------------- Spark executor side


def test_spark_partition_reports_counts_and_offending_values(ndcs):
    # The executor side of the Spark engine runs without Spark: a stage-A partition reads
    # dates with the shipped format and reports its offending values for the driver's stop.
    import msgspec

    from rxrisk.config.rules import load_rules
    from rxrisk.engines.spark import stages as rxspark
    from rxrisk.ingest.intake import Offenders

    ph = _pharmacy(ndcs, good=6, bad=5, bad_values=["2025-02-30", "13/01/2025", "03/15/2025"])
    ph = ph.append_column(rxspark.ROW, pa.array(range(ph.num_rows), pa.int64()))
    cfg = rxspark.Shipped(
        key="test-intake",
        as_of=(AS_OF,),
        reference=None,
        rules=("rules", msgspec.json.encode(load_rules(None))),
        codesets=None,
        has_medical=False,
        pharmacy_columns=tuple(c for c in ph.column_names if c != rxspark.ROW),
        medical_columns=(),
        output_schema=pa.schema([pa.field(rxspark.AUDIT, pa.string())]).serialize().to_pybytes(),
        date_format="%m/%d/%Y",
    )
    out = list(rxspark.stage_a(cfg, ph.to_batches()))
    report = json.loads(out[-1].column(rxspark.AUDIT)[0].as_py())
    assert report["pharmacy"]["rejected_by_reason"]["fill_date"] == 4  # 03/15/2025 is read
    # each value with the input row where it was first seen (rows 6 and 7)
    assert report["offenders"] == {"fill_date": [[6, "'2025-02-30'"], [7, "'13/01/2025'"]]}
    merged = Offenders()
    merged.merge("pharmacy", {"fill_date": [[9, "'13/01/2025'"], [2, "'x'"], [11, "'y'"]]})
    merged.merge("pharmacy", report["offenders"])
    # partitions merge into input order, whatever order they arrive in
    assert merged.values[("pharmacy", "fill_date")] == ["'x'", "'2025-02-30'", "'13/01/2025'"]


def test_offending_values_are_first_in_input_order_whatever_the_partition_order():
    from rxrisk.ingest.intake import Offenders

    t = pa.table({"fill_date": ["a", "b", "c", "d", "e", "f"]})
    reason = np.array([1, 1, 1, 1, 1, 1], np.int8)
    names = ("member_id", "fill_date")
    whole = Offenders()
    whole.add("pharmacy", t, reason, names)
    # two partitions holding the rows in another order, with their input row numbers
    parts = Offenders()
    for rows in ([5, 3, 1], [4, 2, 0]):
        part = Offenders()
        part.add("pharmacy", t.take(rows), reason[rows], names, row_numbers=np.array(rows))
        parts.merge("pharmacy", part.of("pharmacy"))
    assert whole.values == parts.values == {("pharmacy", "fill_date"): ["'a'", "'b'", "'c'"]}

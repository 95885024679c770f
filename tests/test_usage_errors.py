"""Usage errors: one line, exit 2 (InputError in the API), with the option and its range named.

Argument parsing, the bounds of the streaming and thread options, rule and edits files that
are nested too deep or hold nan / inf thresholds, and the argument types of ``rxrisk.score``.
"""

import datetime as dt
import math
import tomllib

import numpy as np
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.config.resources import data_path
from rxrisk.config.rules import load_rules
from rxrisk.edits import load_edits
from rxrisk.engines.partitions import partition_count
from rxrisk.engines.stream import StreamOptions, ingest_stream
from rxrisk.errors import InputError


@pytest.fixture
def book(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    return tmp_path


def _run(capsys, argv):
    """(exit code, stderr) of one CLI call; stdout must stay empty on an error."""
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err


# ------------------------------------------------------------------ argparse errors, one line


def test_missing_required_option_is_one_line(book, capsys):
    rc, err = _run(capsys, ["score", str(book / "ph.parquet"), "--as-of", "2025-12-31"])
    assert rc == 2
    assert err == (
        "rxrisk score: error: the following arguments are required: --out "
        "(see rxrisk score --help)\n"
    )


@pytest.mark.parametrize(
    ("argv", "start", "needle"),
    [
        (["score"], "rxrisk score: error:", "--as-of, --out"),
        (["scor"], "rxrisk: error:", "invalid choice: 'scor'"),
        (
            ["score", "x", "--as-of", "2025-12-31", "--out", "m.parquet", "--bogus", "1"],
            "rxrisk score: error:",
            "unrecognized arguments: --bogus 1",
        ),
        (
            ["edits", "x", "--out", "e.parquet", "--threads", "two"],
            "rxrisk edits: error:",
            "argument --threads: invalid int value: 'two'",
        ),
        (
            ["generate", "--members", "many", "--out", "g"],
            "rxrisk generate: error:",
            "invalid int value: 'many'",
        ),
        (["config"], "rxrisk config: error:", "required: ACTION"),
    ],
)
def test_argparse_errors_are_one_line(capsys, argv, start, needle):
    rc, err = _run(capsys, argv)
    assert rc == 2 and _one_line(err)
    assert err.startswith(start) and needle in err
    assert err.rstrip().endswith(f"(see {start.split(':')[0]} --help)")


# ------------------------------------------------------------------ bounds of the options


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--partitions", "0"],
            "--partitions 0: out of range; give a whole number between 1 and 4,096",
        ),
        (["--partitions", "10000"], "--partitions 10,000: out of range"),
        (["--partitions", "100000000"], "between 1 and 4,096"),
        (
            ["--batch-rows", "0"],
            "--batch-rows 0: out of range; give a whole number between 1 and 100,000,000",
        ),
        (["--batch-rows", "1000000000"], "--batch-rows 1,000,000,000: out of range"),
        (["--memory-budget", "inf"], "--memory-budget inf: give a size between 0 and 1T"),
        (["--memory-budget", "nan"], "--memory-budget nan: give a size between 0 and 1T"),
        (["--memory-budget", "2T"], "--memory-budget 2T: give a size between 0 and 1T"),
        (["--memory-budget", "-1"], "--memory-budget -1: give a size"),
        (["--threads", "0"], "--threads 0: out of range; give a whole number between 1 and 1,024"),
        (["--threads", "5000"], "--threads 5000: out of range"),
    ],
)
def test_stream_and_thread_options_have_ranges(book, capsys, extra, needle):
    out = book / "m.parquet"
    rc, err = _run(
        capsys,
        ["score", str(book / "ph.parquet"), "--as-of", "2025-12-31", "--out", str(out), *extra],
    )
    assert rc == 2 and _one_line(err) and needle in err
    assert not out.exists()


def test_threads_range_on_edits_too(book, capsys):
    rc, err = _run(
        capsys,
        ["edits", str(book / "ph.parquet"), "--out", str(book / "e.parquet"), "--threads", "0"],
    )
    assert rc == 2 and _one_line(err) and "--threads 0: out of range" in err


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"partitions": 0}, "partitions 0: out of range; give a whole number between 1 and 4,096"),
        ({"partitions": 10_000}, "partitions 10,000: out of range"),
        ({"claim_partitions": 5000}, "claim_partitions 5,000: out of range"),
        ({"batch_rows": 0}, "batch_rows 0: out of range"),
        ({"batch_rows": 2.5}, "batch_rows 2.5: give a whole number between 1 and 100,000,000"),
        ({"memory_bytes": math.inf}, "memory_bytes inf: give a whole number between 0 and 1T"),
        ({"memory_bytes": -1}, "memory_bytes -1: out of range"),
        ({"memory_bytes": 1 << 41}, "memory_bytes 2,199,023,255,552: out of range"),
        ({"min_partition_rows": 0}, "min_partition_rows 0: out of range"),
        ({"rows_per_partition": True}, "rows_per_partition True: give a whole number"),
    ],
)
def test_stream_options_ranges(kw, needle):
    with pytest.raises(InputError) as exc:
        StreamOptions(**kw)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_stream_options_bounds_are_allowed():
    StreamOptions(batch_rows=1, partitions=4096, claim_partitions=1, memory_bytes=0)
    StreamOptions(batch_rows=100_000_000, memory_bytes=1 << 40, partitions=np.int64(3))


def test_partitions_used_never_exceed_what_the_input_fills():
    assert partition_count(4_000, 4096, 100_000_000, 8, 10_000) == 1
    assert partition_count(45_000, 4096, 100_000_000, 8, 10_000) == 4
    assert partition_count(45_000, 3, 100_000_000, 8, 10_000) == 3
    assert partition_count(0, 16, 100_000_000, 8, 10_000) == 1
    assert partition_count(None, 16, 100_000_000, 8, 10_000) == 16  # row count not known
    assert partition_count(None, None, 100_000_000, 8, 10_000) == 8
    assert partition_count(350_000_000, None, 100_000_000, 8, 10_000) == 4


def test_streaming_run_caps_the_partitions(small_book):
    """4,096 partitions asked for a book of 14 rows: one partition is used, same output."""
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config

    ph, md = small_book
    cfg = load_config()
    for options, want in (
        (StreamOptions(partitions=4096, claim_partitions=4096), (1, 1)),
        (StreamOptions(partitions=3, claim_partitions=2, min_partition_rows=1), (3, 2)),
    ):
        book = ingest_stream(ph, md, cfg, options=options, clock=Clock())
        try:
            assert book.n_parts == want[0]
            assert book.fills.n_parts == want[0]
        finally:
            book.close()
    kw = {"as_of": "2025-12-31"}
    want = rxrisk.score(ph, md, **kw).members
    got = rxrisk.score(ph, md, stream=StreamOptions(partitions=4096), **kw).members
    assert got.equals(want)


# ------------------------------------------------------------------ rule and edits files


def _rules_file(tmp_path, text: str):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


DEEP = [
    "not " * 5000 + "high_dose",
    "not " * 900 + "mme_avg_180d >= 90",
    "high_dose or " + "(high_dose and " * 5000 + "high_dose" + ")" * 5000,
]


@pytest.mark.parametrize("when", DEEP, ids=["not-5000", "not-900", "parens-5000"])
def test_deeply_nested_rule_is_one_line_exit_2(book, capsys, tmp_path, when):
    default = data_path("rules", "default.toml").read_text()
    path = _rules_file(tmp_path, default + f'\n[[flags]]\nname = "deep"\nwhen = "{when}"\n')
    out = book / "m.parquet"
    argv = ["score", str(book / "ph.parquet"), "--as-of", "2025-12-31", "--out", str(out)]
    rc, err = _run(capsys, [*argv, "--rules", str(path)])
    assert rc == 2 and _one_line(err)
    assert "flag 'deep'" in err and "field when: nested more than 100 levels deep" in err
    assert len(err) < 400 and not out.exists()


def test_nesting_up_to_the_limit_is_fine():
    rules = load_rules({"flags": [{"name": "x", "when": "not " * 95 + "mme_avg_180d >= 90"}]})
    assert [f.name for f in rules.flags] == ["x"]


@pytest.mark.parametrize(
    ("metrics", "flag", "needle"),
    [
        ("high_dose_mme = nan", None, "[metrics] high_dose_mme nan must be a finite MME >= 0"),
        ("high_dose_mme = inf", None, "[metrics] high_dose_mme inf must be a finite MME >= 0"),
        ("tolerance = nan", None, "[metrics] tolerance nan must be >= 0 and < 1"),
        (None, "mme_avg_180d >= nan", "flag 'x' (flags[0]): field when: 'mme_avg_180d >= nan'"),
        (None, "mme_avg_180d >= inf", "flag 'x' (flags[0]): field when: 'mme_avg_180d >= inf'"),
        (None, "mme_avg_180d < 1e999", "flag 'x' (flags[0]): field when: 'mme_avg_180d < 1e309'"),
    ],
)
def test_nan_and_inf_thresholds_in_rules_are_refused(tmp_path, metrics, flag, needle):
    text = f"[metrics]\n{metrics}\n" if metrics else ""
    if flag:
        text += f'[[flags]]\nname = "x"\nwhen = "{flag}"\n'
    with pytest.raises(InputError) as exc:
        load_rules(_rules_file(tmp_path, text))
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg
    assert str(tmp_path / "rules.toml") in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[mme_hard_limit]\nthreshold = nan", "edit mme_hard_limit, field threshold: nan must be"),
        (
            "[mme_care_coordination]\nthreshold = inf",
            "edit mme_care_coordination, field threshold: inf",
        ),
        ("[config]\ntolerance = nan", "section config, field tolerance: nan must be"),
    ],
)
def test_nan_and_inf_thresholds_in_edits_are_refused(book, capsys, tmp_path, text, needle):
    path = tmp_path / "edits.toml"
    path.write_text(text + "\n")
    with pytest.raises(InputError, match="edits file .*" + needle.split(",")[0]):
        load_edits(path)
    rc, err = _run(
        capsys,
        ["edits", str(book / "ph.parquet"), "--out", str(book / "e.parquet"), "--edits", str(path)],
    )
    assert rc == 2 and _one_line(err) and needle in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_override_is_refused(book, capsys, value):
    argv = ["edits", str(book / "ph.parquet"), "--out", str(book / "e.parquet")]
    rc, err = _run(capsys, [*argv, "--set", f"mme_hard_limit.threshold={value}"])
    assert rc == 2 and _one_line(err)
    assert f"--set mme_hard_limit.threshold={value}: edit mme_hard_limit, field threshold" in err


def test_edits_as_dict_and_wrong_types():
    edits = load_edits({"mme_hard_limit": {"threshold": 150}})
    assert edits.mme_hard_limit.threshold == 150 and edits.source == "<edits dict>"
    assert (
        edits.sections()["mme_care_coordination"]
        == load_edits().sections()["mme_care_coordination"]
    )
    with pytest.raises(InputError, match=r"edits dict: edit mme_hard_limit, field threshold"):
        load_edits({"mme_hard_limit": {"threshold": "high"}})
    with pytest.raises(InputError, match="edits: cannot use an object of type int"):
        load_edits(5)


# ------------------------------------------------------------------ API argument types


def test_as_of_integer_is_an_input_error(small_book):
    ph, _ = small_book
    with pytest.raises(InputError) as exc:
        rxrisk.score(ph, as_of=20251231)
    msg = str(exc.value)
    assert msg.startswith("as_of 20251231 (int) is not a date") and "\n" not in msg
    with pytest.raises(InputError, match=r"as_of value 5 \(int\) is not a date"):
        rxrisk.score(ph, as_of=["2025-12-31", 5])
    with pytest.raises(InputError, match="as_of value NaT is not a date"):
        rxrisk.score(ph, as_of=np.datetime64("NaT"))


@pytest.mark.parametrize(
    "as_of",
    [
        np.datetime64("2025-12-31"),
        np.datetime64("2025-12-31T13:45:00"),
        np.array(["2025-06-30", "2025-12-31"], dtype="datetime64[D]"),
        np.array(["2025-12-31T00:00", "2025-06-30T08:00"], dtype="datetime64[ns]"),
        [np.datetime64("2025-06-30"), dt.date(2025, 12, 31)],
    ],
    ids=["scalar-D", "scalar-s", "array-D", "array-ns", "mixed-list"],
)
def test_numpy_datetime64_as_of(small_book, as_of):
    ph, md = small_book
    n_dates = np.asarray(as_of).size if not isinstance(as_of, list) else len(as_of)
    text = "2025-12-31" if n_dates == 1 else "2025-06-30,2025-12-31"
    want = rxrisk.score(ph, md, as_of=text)
    got = rxrisk.score(ph, md, as_of=as_of)
    assert got.members.equals(want.members)
    assert got.audit["as_of"] == want.audit["as_of"]


def _default_rules_dict() -> dict:
    return tomllib.loads(data_path("rules", "default.toml").read_text())


def test_rules_as_dict(small_book):
    ph, md = small_book
    rules = _default_rules_dict()
    want = rxrisk.score(ph, md, as_of="2025-12-31")
    got = rxrisk.score(ph, md, as_of="2025-12-31", rules=rules)
    assert got.members.equals(want.members)
    assert got.audit["config_digest"] == want.audit["config_digest"]
    rules["metrics"]["high_dose_mme"] = 50.0
    changed = rxrisk.score(ph, md, as_of="2025-12-31", rules=rules)
    assert changed.audit["config_digest"] != want.audit["config_digest"]
    with pytest.raises(InputError, match=r"rules file <rules dict>: field metrics.windows"):
        load_rules({"metrics": {"windows": "90"}})


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"rules": 5}, "rules= cannot be an object of type int; give a rule file path, a dict"),
        ({"rules": ["default.toml"]}, "rules= cannot be an object of type list"),
        ({"reference": {"ndc": []}}, "reference= cannot be an object of type dict; give a .csv"),
        ({"codesets": 1.5}, "codesets= cannot be an object of type float; give a code-set file"),
        ({"threads": "4"}, "threads '4': give a whole number between 1 and 1,024"),
        ({"threads": 0}, "threads 0: give a whole number between 1 and 1,024"),
    ],
)
def test_wrong_argument_types_are_input_errors(small_book, kw, needle):
    ph, _ = small_book
    with pytest.raises(InputError) as exc:
        rxrisk.score(ph, as_of="2025-12-31", **kw)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"reference": 5}, "reference= cannot be an object of type int"),
        ({"codesets": 5}, "codesets= cannot be an object of type int"),
        ({"rules": 5}, "rules= cannot be an object of type int"),
        ({"threads": 0}, "threads 0: give a whole number between 1 and 1,024"),
    ],
)
def test_wrong_argument_types_are_input_errors_for_edits_and_report(
    small_book, kw, needle, tmp_path
):
    from rxrisk.edits import replay_edits
    from rxrisk.reports import write_reports

    ph, md = small_book
    with pytest.raises(InputError) as exc:
        replay_edits(ph, **kw)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    if "threads" in kw:  # the report takes no thread count
        return
    members = rxrisk.score(ph, md, as_of="2025-12-31").members
    with pytest.raises(InputError) as exc:
        write_reports(members, ph, md, out_dir=tmp_path / "report", **kw)
    (name,) = kw
    assert str(exc.value).startswith(name) and "object of type int" in str(exc.value)
    assert "\n" not in str(exc.value)

"""rxrisk.spark (Spark engine) held to rxrisk.score (in-process): equal member tables, audits.

Needs the extra (pip install 'rxrisk[spark]') and Java; skipped otherwise. One local[2]
SparkSession for the module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip(
    "pyspark", reason="the Spark engine needs the extra: pip install 'rxrisk[spark]'"
)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("the Spark engine needs Java (java on PATH or JAVA_HOME)", allow_module_level=True)

import rxrisk
from rxrisk import spark as rxspark
from rxrisk.cli import main
from rxrisk.synthetic import generate_book

from cases import (
    CASES,
    Case,
    combined_book,
    day,
    fill,
    med,
    medical_table,
    pharmacy_table,
    reference_table,
    scenarios,
)
from test_score_vs_naive import rules_with

pytestmark = [
    pytest.mark.slow,
    # pyspark warns that it does not yet fully support pandas >= 3 (mapInArrow uses no pandas)
    pytest.mark.filterwarnings("ignore:.*does not yet fully support pandas:FutureWarning"),
    # pyspark 3.5: distutils' LooseVersion, and py4j/collect sockets closed by the collector
    pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

AUDIT_KEYS = ("pharmacy", "medical", "members_scored", "rows_out", "as_of", "version")
SEVERAL = [day(-200), day(-31), day(0), day(45), day(200)]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rxrisk-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("spark")


_n = 0


def _df(spark, table: pa.Table, folder, parts: int = 1):
    """A Spark DataFrame of ``table`` through Parquet (exact types on pyspark 3.5 and 4),
    split over ``parts`` files; with parts > 1 it is read by read_pharmacy-style order."""
    global _n
    _n += 1
    path = folder / f"t{_n}"
    path.mkdir()
    step = -(-table.num_rows // parts) if table.num_rows else 1
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), path / f"part-{i:03d}.parquet")
    return spark.read.parquet(str(path)), path


def assert_same(got: rxspark.SparkResult, want: rxrisk.Result):
    try:
        table = got.to_arrow()
        assert table.schema == want.members.schema
        assert table.equals(want.members), _first_difference(table, want.members)
        for key in AUDIT_KEYS:
            assert got.audit[key] == want.audit[key], key
        assert got.audit["config_digest"] == want.audit["config_digest"]
        assert list(got.audit) == list(want.audit)
    finally:
        got.unpersist()


def _first_difference(got: pa.Table, want: pa.Table) -> str:
    if got.num_rows != want.num_rows:
        return f"{got.num_rows} rows vs {want.num_rows}"
    for name in want.column_names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y and not (x != x and y != y):
                return f"row {i} column {name}: {x!r} vs {y!r}"
    return "equal values, different layout"


def _compare(spark, scratch, case: Case, *, parts: int = 1, **kw):
    ph = pharmacy_table(case.pharmacy, case.member_type)
    md = None if case.medical is None else medical_table(case.medical, case.member_type)
    want = rxrisk.score(ph, md, as_of=case.as_of, reference=reference_table(), **kw)
    ph_df, ph_path = _df(spark, ph, scratch, parts)
    md_df = None if md is None else _df(spark, md, scratch, parts)[0]
    if parts > 1:  # files in path order, then rows: the in-process order of the same table
        ph_df = rxspark.read_pharmacy(spark, ph_path)
    got = rxspark.score(ph_df, md_df, as_of=case.as_of, reference=reference_table(), **kw)
    assert_same(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_case_at_several_as_of_dates(spark, scratch, name):
    case = CASES[name]
    _compare(
        spark,
        scratch,
        Case(name, case.pharmacy, case.medical, case.as_of + SEVERAL, case.member_type),
    )


def test_all_hand_cases_in_one_book_over_several_files(spark, scratch):
    # Every string-keyed hand case at once, spread over 5 files (so a member's rows sit in
    # different files and partitions).
    _compare(spark, scratch, combined_book(), parts=5)


def test_average_mme_definitions(spark, scratch):
    # [metrics] mme_definitions adds columns: Spark plans and fills the same table
    rules = rules_with(["supply", "fill", "window"])
    _compare(spark, scratch, combined_book(), parts=3, rules=rules)


def test_claim_ids_across_members_and_files(spark, scratch):
    # Claim ids are global: a reversal under M2 reverses M1's paid claim (it comes first, in
    # another file), a claim id reused by another member is a duplicate of the first in input
    # order (here the M3 row, in an earlier file than M1's), whitespace around ids is trimmed.
    rows = [
        fill("M2", -5, claim_id="K1", status="R", quantity=-60.0, days_supply=-30),
        fill("M3", -20, claim_id=" K2"),
        fill("M3", -3, claim_id="K3", quantity=90.0),
        fill("M1", -9, claim_id="K1"),
        fill("M1", -9, claim_id="K2\t"),
        fill("M1", -8, claim_id="K3"),
        fill(" M1 ", -9, claim_id="K4", quantity=120.0),
        fill("M2", -9, claim_id="K4", status="reversed"),
        fill("M4", -1, claim_id="K5", quantity=0.0),  # rejected: does not hide the next K5
        fill("M5", -1, claim_id="K5"),
        fill("M1", -2, claim_id="K6", quantity=30.0),
        fill("M1", -2, claim_id=None, quantity=45.0),
        fill("M1", -2, claim_id="", quantity=45.0),
    ]
    # Same-day fills whose MME sum depends on the order they are added in (floating point):
    # stage B must see them in input order although stage A put them in different partitions.
    rows += [
        fill("M7", -3, quantity=q, days_supply=150, claim_id=f"Q{q}")
        for q in (1, 2, 3, 7, 11, 13, 17, 19, 23, 29)
    ]
    medical = [
        med("M1", -4, "REV", "450"),
        med("M9", -4, "ICD10CM", "F11.20"),
        med(None, -1, "CPT", "99284"),
    ]
    for parts in (1, 3, 13):
        _compare(spark, scratch, Case("claims", rows, medical, [day(0), day(-4)]), parts=parts)


def test_member_kinds_that_differ(spark, scratch):
    # Integer pharmacy ids, text medical ids: an error when both have used rows (as in-process),
    # text member ids when no pharmacy row is used.
    med_rows = [med("7", -5, "ICD10CM", "F11.20")]
    bad = Case("kinds", [fill(7, -9)], med_rows, [day(0)], "int64")
    ph = pharmacy_table(bad.pharmacy, "int64")
    md = medical_table(bad.medical, "string")
    with pytest.raises(rxrisk.InputError) as local_err:
        rxrisk.score(ph, md, as_of=day(0), reference=reference_table())
    with pytest.raises(rxrisk.InputError) as spark_err:
        rxspark.score(
            _df(spark, ph, scratch)[0],
            _df(spark, md, scratch)[0],
            as_of=day(0),
            reference=reference_table(),
        )
    assert str(spark_err.value) == str(local_err.value)

    ph = pharmacy_table([fill(7, -9, quantity=0.0)], "int64")
    want = rxrisk.score(ph, md, as_of=day(0), reference=reference_table())
    got = rxspark.score(
        _df(spark, ph, scratch)[0],
        _df(spark, md, scratch)[0],
        as_of=day(0),
        reference=reference_table(),
    )
    assert want.members.schema.field("member_id").type == pa.string()
    assert_same(got, want)

    ph = pharmacy_table([fill(7, -9)], "int64")
    md = medical_table([med("7", -5, "ICD10CM", "I10")], "string")  # unclassified: not used
    want = rxrisk.score(ph, md, as_of=day(0), reference=reference_table())
    got = rxspark.score(
        _df(spark, ph, scratch)[0],
        _df(spark, md, scratch)[0],
        as_of=day(0),
        reference=reference_table(),
    )
    assert want.members.schema.field("member_id").type == pa.int64()
    assert_same(got, want)


def test_schema_error_is_the_in_process_one(spark, scratch):
    ph = pharmacy_table([fill("M1", -9)]).drop_columns(["days_supply"])
    with pytest.raises(rxrisk.InputError) as local_err:
        rxrisk.score(ph, as_of=day(0))
    with pytest.raises(rxrisk.InputError) as spark_err:
        rxspark.score(_df(spark, ph, scratch)[0], as_of=day(0))
    assert str(spark_err.value) == str(local_err.value)


def test_loud_intake_and_date_format_are_the_in_process_ones(spark, scratch):
    """The driver stops on the summed counts with the in-process message; a warning lands
    in the audit alike; --date-format reads the same dates."""
    rows = [fill(f"M{i}", -9 - i, claim_id=f"C{i}") for i in range(12)]
    rows.append(fill("M12", -5, quantity=-1.0, claim_id="C12"))  # one bad quantity: a warning
    ph = pharmacy_table(rows)
    us = pc.strftime(ph["fill_date"], format="%m/%d/%Y")
    ph = ph.set_column(ph.schema.get_field_index("fill_date"), "fill_date", us)
    ref = reference_table()
    with pytest.raises(rxrisk.InputError) as local_err:
        rxrisk.score(ph, as_of=day(0), reference=ref)
    with pytest.raises(rxrisk.InputError) as spark_err:
        rxspark.score(_df(spark, ph, scratch)[0], as_of=day(0), reference=ref)
    assert "column fill_date" in str(spark_err.value)
    assert str(spark_err.value) == str(local_err.value)
    kw = {"as_of": day(0), "reference": ref, "date_format": "%m/%d/%Y"}
    want = rxrisk.score(ph, **kw)
    assert want.audit["warnings"] and want.members.num_rows == 12
    got = rxspark.score(_df(spark, ph, scratch)[0], **kw)
    assert_same(got, want)
    assert got.audit["warnings"] == want.audit["warnings"]


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenarios())
def test_random_books(spark, scratch, case):
    # random books: far more bad rows than the intake stop allows (tested on its own)
    _compare(spark, scratch, case, parts=2, max_reject_share=1.0)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A generated 2000-member book; its pharmacy rows also split over 4 files."""
    folder = tmp_path_factory.mktemp("book")
    generate_book(folder, members=2000, seed=11)
    table = pq.read_table(folder / "pharmacy.parquet")
    split = folder / "pharmacy_parts"
    split.mkdir()
    step = -(-table.num_rows // 4)
    for i in range(4):
        pq.write_table(table.slice(i * step, step), split / f"part-{i}.parquet")
    return folder


def test_generated_book(spark, book):
    as_of = ["2025-06-30", "2025-12-31"]
    want = rxrisk.score(book / "pharmacy.parquet", book / "medical.parquet", as_of=as_of)
    assert want.members.num_rows > 1000
    medical = rxspark.read_medical(spark, book / "medical.parquet")
    for source in (book / "pharmacy.parquet", book / "pharmacy_parts"):
        pharmacy = rxspark.read_pharmacy(spark, source)
        assert_same(rxspark.score(pharmacy, medical, as_of=as_of, partitions=3), want)
    # A DataFrame without _rx_row: its own order (one file, read in order) is the input order.
    plain = spark.read.parquet(str(book / "pharmacy.parquet"))
    assert_same(rxspark.score(plain, medical, as_of=as_of), want)


def test_config_files_are_shipped(spark, book, tmp_path):
    # Reference, rules and code sets given as paths: read on the driver, shipped with the tasks.
    from rxrisk.config.resources import data_path

    rules = tmp_path / "rules.toml"
    text = data_path("rules", "default.toml").read_text()
    rules.write_text(text.replace("high_dose_mme = 90.0", "high_dose_mme = 50.0"))
    codesets = tmp_path / "codes.toml"
    codesets.write_text(data_path("codesets", "default.toml").read_text())
    reference = tmp_path / "extra.csv"
    pacsv.write_csv(reference_table(), reference)
    kw = {"reference": str(reference), "rules": str(rules), "codesets": str(codesets)}
    want = rxrisk.score(
        book / "pharmacy.parquet", book / "medical.parquet", as_of="2025-12-31", **kw
    )
    got = rxspark.score(
        rxspark.read_pharmacy(spark, book / "pharmacy_parts"),
        rxspark.read_medical(spark, book / "medical.parquet"),
        as_of="2025-12-31",
        **kw,
    )
    assert_same(got, want)


def test_cli_engine_spark_writes_the_local_bytes(spark, book, tmp_path, capsys):
    args = ["score", str(book / "pharmacy_parts"), "--medical", str(book / "medical.parquet")]
    args += ["--as-of", "2025-06-30,2025-12-31", "--quiet"]
    local, remote = tmp_path / "local.parquet", tmp_path / "spark.parquet"
    assert main([*args, "--out", str(local), "--audit", str(tmp_path / "a1.json")]) == 0
    spark_args = ["--engine", "spark", "--master", "local[2]"]
    assert (
        main([*args, *spark_args, "--out", str(remote), "--audit", str(tmp_path / "a2.json")]) == 0
    )
    assert remote.read_bytes() == local.read_bytes()
    a1, a2 = (json.loads((tmp_path / n).read_text()) for n in ("a1.json", "a2.json"))
    assert {k: v for k, v in a1.items() if k != "seconds"} == {
        k: v for k, v in a2.items() if k != "seconds"
    }
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert spark.range(1).count() == 1  # the CLI left the session it reused running


def test_cli_engine_spark_reads_csv(spark, small_book, tmp_path):
    ph, md = small_book
    pacsv.write_csv(ph, tmp_path / "ph.csv")
    pacsv.write_csv(md, tmp_path / "md.csv")
    args = ["score", str(tmp_path / "ph.csv"), "--medical", str(tmp_path / "md.csv")]
    args += ["--as-of", "2025-12-31", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "l.csv")]) == 0
    assert main([*args, "--engine", "spark", "--out", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--quarantine", "q.csv"], "--quarantine is not available with --engine spark"),
        (["--all-members"], "--all-members is not available with --engine spark"),
        (["--master", "local[2]"], "--master is for --engine spark"),
        (["--stream", "--partitions", "3"], "are for --engine local"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, extra, needle):
    pq.write_table(pharmacy_table([fill("M1", -9)]), tmp_path / "ph.parquet")
    extra = [str(tmp_path / e) if e.endswith(".csv") else e for e in extra]
    engine = [] if "--master" in extra else ["--engine", "spark"]
    rc = main(
        [
            "score",
            str(tmp_path / "ph.parquet"),
            "--as-of",
            "2024-06-30",
            "--out",
            str(tmp_path / "o.parquet"),
            *engine,
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_cli_without_pyspark_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    pq.write_table(pharmacy_table([fill("M1", -9)]), tmp_path / "ph.parquet")
    rc = main(
        [
            "score",
            str(tmp_path / "ph.parquet"),
            "--as-of",
            "2024-06-30",
            "--out",
            str(tmp_path / "o.parquet"),
            "--engine",
            "spark",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "install rxrisk[spark]" in err and len(err.strip().splitlines()) == 1


def test_as_of_dates_are_dates(spark, scratch):
    # date objects, text and a comma list give the same result.
    ph = pharmacy_table([fill("M1", -9)])
    df = _df(spark, ph, scratch)[0]
    a = rxspark.score(df, as_of=[dt.date(2024, 6, 30), "2024-07-15"], reference=reference_table())
    b = rxspark.score(df, as_of="2024-07-15,2024-06-30", reference=reference_table())
    try:
        assert a.to_arrow().equals(b.to_arrow()) and a.to_arrow().num_rows == 2
    finally:
        a.unpersist()
        b.unpersist()

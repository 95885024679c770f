"""Reading sources robustly: Parquet folders whose parts differ, duplicate column names,
unsigned 64-bit member ids, ragged and non-UTF-8 CSV files, and the one-line messages of
reading and conforming. Every case runs on the in-memory and the streaming reader."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.engines.batches import open_batches
from rxrisk.engines.spark import read as spark
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs

AS_OF = "2025-12-31"
FILL = dt.date(2025, 12, 1)
MODES = ["memory", "stream"]
#: member ids of the tables below: a message must never show one
SECRET_MEMBERS = ("QXM0001", "QXM0002", "QXM0003", "QXM0004")


def _options(mode: str):
    return StreamOptions(batch_rows=2) if mode == "stream" else None


def _score(source, mode: str, **kw) -> rxrisk.Result:
    return rxrisk.score(source, as_of=AS_OF, stream=_options(mode), **kw)


def _error(source, mode: str, **kw) -> str:
    with pytest.raises(InputError) as exc:
        _score(source, mode, **kw)
    text = str(exc.value)
    assert "\n" not in text and "\r" not in text, text
    for member in SECRET_MEMBERS:
        assert member not in text, text
    return text


def _pharmacy(ndc: str, n: int = 3, start: int = 0, **override) -> dict:
    cols = {
        "member_id": [SECRET_MEMBERS[(start + i) % 4] for i in range(n)],
        "fill_date": [FILL] * n,
        "ndc": [ndc] * n,
        "quantity": [60.0] * n,
        "days_supply": [30] * n,
        "prescriber_id": [f"QXP{start + i:04d}" for i in range(n)],
        "pharmacy_id": [f"QXR{start + i:04d}" for i in range(n)],
        "claim_id": [f"QXC{start + i:04d}" for i in range(n)],
        "claim_status": ["paid"] * n,
    }
    cols.update(override)
    return cols


def _parts(folder, *tables) -> str:
    folder.mkdir()
    for i, t in enumerate(tables):
        pq.write_table(
            t if isinstance(t, pa.Table) else pa.table(t), folder / f"part-{i:05d}.parquet"
        )
    return str(folder)


def _buckets(result) -> dict:
    return result.audit["pharmacy"]["buckets"]


# --------------------------------------------------------------- Parquet folders of parts


@pytest.mark.parametrize("mode", MODES)
def test_optional_claim_columns_missing_from_the_first_part(tmp_path, ndcs, mode):
    """claim_id / claim_status missing from the first part are still read from later parts:
    the reversal reverses its paid row, and a repeated claim id is a duplicate."""
    first = {
        k: v
        for k, v in _pharmacy(ndcs["oxy30"], 2).items()
        if k not in ("claim_id", "claim_status")
    }
    later = _pharmacy(
        ndcs["oxy30"],
        3,
        start=2,
        claim_id=["QXC9", "QXC9", "QXC8"],
        claim_status=["paid", "R", "paid"],
    )
    dup = _pharmacy(ndcs["oxy30"], 1, start=3, claim_id=["QXC8"])
    folder = _parts(tmp_path / "ph", first, later, dup)
    got = _buckets(_score(folder, mode))
    assert got == {
        "rejected": 0,
        "reversal": 1,
        "reversed": 1,
        "duplicate": 1,
        "untracked": 0,
        "used": 3,
    }


@pytest.mark.parametrize("mode", MODES)
def test_a_later_part_without_a_required_column(tmp_path, ndcs, mode):
    later = {k: v for k, v in _pharmacy(ndcs["oxy30"], 3).items() if k != "ndc"}
    folder = _parts(tmp_path / "ph", _pharmacy(ndcs["oxy30"]), later)
    text = _error(folder, mode)
    assert "'ndc'" in text and "part-00001.parquet" in text and "required" in text


@pytest.mark.parametrize("mode", MODES)
def test_member_id_text_in_one_part_integer_in_another(tmp_path, ndcs, mode):
    folder = _parts(
        tmp_path / "ph",
        _pharmacy(ndcs["oxy30"]),
        _pharmacy(ndcs["oxy30"], member_id=pa.array([1, 2, 3], pa.int64())),
    )
    text = _error(folder, mode)
    assert "'member_id'" in text
    assert "part-00000.parquet" in text and "part-00001.parquet" in text
    assert "string" in text and "int64" in text


@pytest.mark.parametrize("mode", MODES)
def test_member_id_float_in_one_part_is_a_conflict_naming_the_parts(tmp_path, ndcs, mode):
    folder = _parts(
        tmp_path / "ph",
        _pharmacy(ndcs["oxy30"], member_id=pa.array([1, 2, 3], pa.int64())),
        _pharmacy(ndcs["oxy30"], member_id=pa.array([1.0, 2.0, 3.0])),
    )
    text = _error(folder, mode)
    assert "'member_id'" in text and "part-00001.parquet" in text


@pytest.mark.parametrize("mode", MODES)
def test_compatible_widths_unify(tmp_path, ndcs, mode):
    """int32 / int64, float32 / float64, integer / float quantities, an all-null column and
    integer member ids of two widths read as one table, in path order."""
    oxy = ndcs["oxy30"]
    a = _pharmacy(
        oxy,
        2,
        member_id=pa.array([11, 12], pa.int32()),
        days_supply=pa.array([30, 30], pa.int32()),
        quantity=pa.array([60.0, 60.0], pa.float32()),
        prescriber_id=pa.nulls(2),
    )
    b = _pharmacy(
        oxy,
        2,
        start=2,
        member_id=pa.array([13, 11], pa.int64()),
        days_supply=pa.array([30, 30], pa.int64()),
        quantity=pa.array([60, 60], pa.int64()),
    )
    folder = _parts(tmp_path / "ph", a, b)
    got = _score(folder, mode, all_members=True)
    assert _buckets(got)["used"] == 4
    assert got.members.schema.field("member_id").type == pa.int64()
    assert got.members.column("member_id").to_pylist() == [11, 12, 13]
    whole = pa.concat_tables([pa.table(a).cast(pa.table(b).schema), pa.table(b)])
    want = rxrisk.score(whole, as_of=AS_OF, all_members=True)
    assert got.members.equals(want.members)


def test_unified_schema_keeps_dictionary_columns_and_path_order(tmp_path, ndcs):
    """The low-cardinality text columns stay dictionaries in both readers, also when a part
    lacks one; parts are read in path order (subfolders included, marker files skipped)."""
    oxy = ndcs["oxy30"]
    folder = tmp_path / "ph"
    (folder / "b").mkdir(parents=True)
    no_status = {k: v for k, v in _pharmacy(oxy, 1, start=0).items() if k != "claim_status"}
    pq.write_table(pa.table(no_status), folder / "a.parquet")
    pq.write_table(pa.table(_pharmacy(oxy, 1, start=1)), folder / "b" / "x.parquet")
    pq.write_table(pa.table(_pharmacy(oxy, 1, start=2)), folder / "c.parquet")
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".c.parquet.crc").write_bytes(b"crc")
    table = inputs.read_source(str(folder), label="pharmacy").table
    src = open_batches(str(folder), label="pharmacy", batch_rows=1)
    batches = pa.concat_tables(list(src.batches))
    for t in (table, batches):
        for name in ("ndc", "claim_status"):
            assert pa.types.is_dictionary(t.schema.field(name).type), (name, t.schema)
        assert t.column("claim_id").to_pylist() == ["QXC0000", "QXC0001", "QXC0002"]
        assert t.column("claim_status").to_pylist() == [None, "paid", "paid"]


@pytest.mark.parametrize("mode", MODES)
def test_an_extra_column_of_two_types_is_read_as_text(tmp_path, ndcs, mode):
    oxy = ndcs["oxy30"]
    folder = _parts(
        tmp_path / "ph",
        {**_pharmacy(oxy, 2), "note": [1, 2]},
        {**_pharmacy(oxy, 2, start=2), "note": ["x", "y"]},
    )
    got = _score(folder, mode, quarantine=True)
    assert _buckets(got)["used"] == 4
    assert inputs.read_source(folder, label="pharmacy").table.column("note").to_pylist() == [
        "1",
        "2",
        "x",
        "y",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_part_that_is_not_parquet_is_named(tmp_path, ndcs, mode):
    folder = _parts(tmp_path / "ph", _pharmacy(ndcs["oxy30"]))
    (tmp_path / "ph" / "notes.txt").write_text("QXM0001 called\n")
    text = _error(folder, mode)
    assert "part notes.txt cannot be read as Parquet" in text and "remove it" in text


def test_spark_driver_checks_the_parts_before_any_job(tmp_path, ndcs):
    """The Spark engine runs the same footer check on the driver (no Spark needed for it)
    and, as Spark does not widen types between parts, asks for one type per column."""
    oxy = ndcs["oxy30"]
    missing = {k: v for k, v in _pharmacy(oxy).items() if k != "quantity"}
    folder = _parts(tmp_path / "a", _pharmacy(oxy), missing)
    with pytest.raises(InputError, match="part-00001.parquet has no column 'quantity'"):
        spark.check_source(folder, "pharmacy")
    widths = _parts(
        tmp_path / "b",
        _pharmacy(oxy),
        _pharmacy(oxy, days_supply=pa.array([30, 30, 30], pa.int32())),
    )
    with pytest.raises(InputError, match="'days_supply' is int32 and int64"):
        spark.check_source(widths, "pharmacy")
    optional = {k: v for k, v in _pharmacy(oxy).items() if k != "claim_status"}
    ok = _parts(tmp_path / "c", _pharmacy(oxy), optional)
    assert spark.check_source(ok, "pharmacy") == "parquet"
    assert spark._check_parts(ok, "pharmacy") is True  # read with Spark's schema merging


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_spark_engine_reads_parts_missing_optional_columns(tmp_path, ndcs, capsys):
    """With --engine spark, parts lacking claim_id / claim_status are merged, not dropped: the
    audit is the in-process one. Needs the extra (pyspark) and Java; skipped otherwise."""
    pytest.importorskip("pyspark", reason="the Spark engine needs the extra")
    import shutil

    if shutil.which("java") is None:
        pytest.skip("the Spark engine needs Java")
    first = {
        k: v
        for k, v in _pharmacy(ndcs["oxy30"], 2).items()
        if k not in ("claim_id", "claim_status")
    }
    later = _pharmacy(
        ndcs["oxy30"],
        3,
        start=2,
        claim_id=["QXC9", "QXC9", "QXC8"],
        claim_status=["paid", "R", "paid"],
    )
    folder = _parts(
        tmp_path / "ph", first, later, _pharmacy(ndcs["oxy30"], 1, start=3, claim_id=["QXC8"])
    )
    audits = []
    for engine in (["--engine", "spark", "--master", "local[1]"], []):
        out = tmp_path / f"out{len(engine)}"
        out.mkdir()
        argv = ["score", folder, "--as-of", AS_OF, "--out", str(out / "m.parquet")]
        rc = main([*argv, "--audit", str(out / "a.json"), "--quiet", *engine])
        assert rc == 0, capsys.readouterr().err
        audits.append(json.loads((out / "a.json").read_text())["pharmacy"])
    assert audits[0] == audits[1]
    assert audits[0]["buckets"]["reversed"] == 1 and audits[0]["buckets"]["duplicate"] == 1


# ------------------------------------------------------------------ duplicate column names


def _with_duplicate(cols: dict, name: str) -> pa.Table:
    t = pa.table(cols)
    return pa.Table.from_arrays([*t.columns, t.column(name)], names=[*t.column_names, name])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", ["table", "reader", "parquet", "folder", "arrow", "csv"])
def test_duplicate_column_names(tmp_path, ndcs, mode, fmt):
    t = _with_duplicate(_pharmacy(ndcs["oxy30"]), "ndc")
    path = tmp_path / f"ph.{fmt}"
    if fmt == "table":
        source = t
    elif fmt == "reader":
        source = pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
    elif fmt == "parquet":
        pq.write_table(t, path)
        source = str(path)
    elif fmt == "folder":
        source = _parts(path, _pharmacy(ndcs["oxy30"]), t)
    elif fmt == "arrow":
        with ipc.new_file(path, t.schema) as w:
            w.write_table(t)
        source = str(path)
    else:
        pacsv.write_csv(t, path)
        source = str(path)
    text = _error(source, mode)
    assert "column 'ndc' appears more than once" in text
    assert ("pharmacy input" in text) if fmt in ("table", "reader") else (path.name in text)
    if fmt == "folder":
        assert "part-00001.parquet" in text


def test_duplicate_column_cli_exit_2(tmp_path, ndcs, capsys):
    t = _with_duplicate(_pharmacy(ndcs["oxy30"]), "member_id")
    pacsv.write_csv(t, tmp_path / "ph.csv")
    rc = main(
        ["score", str(tmp_path / "ph.csv"), "--as-of", AS_OF, "--out", str(tmp_path / "m.csv")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "ph.csv" in err[0] and "'member_id'" in err[0]


# ------------------------------------------------------------------ uint64 member ids


@pytest.mark.parametrize("mode", MODES)
def test_uint64_member_ids_at_2_63_or_more(tmp_path, ndcs, mode):
    ids = pa.array([2**63, 2**64 - 1, 7], pa.uint64())
    path = tmp_path / "ph.parquet"
    pq.write_table(pa.table(_pharmacy(ndcs["oxy30"], member_id=ids)), path)
    for source in (str(path), pa.table(_pharmacy(ndcs["oxy30"], member_id=ids))):
        text = _error(source, mode)
        assert "'member_id'" in text and "uint64" in text and "2^63" in text
        assert "string" in text  # the fix
        assert not re.search(r"\d{10,}", text)  # no id value


@pytest.mark.parametrize("mode", MODES)
def test_uint64_member_ids_below_2_63_keep_their_integer_kind(ndcs, mode):
    ids = pa.array([2**63 - 1, 5, 7], pa.uint64())
    got = _score(pa.table(_pharmacy(ndcs["oxy30"], member_id=ids)), mode)
    assert got.members.schema.field("member_id").type == pa.int64()
    assert got.members.column("member_id").to_pylist() == [5, 7, 2**63 - 1]


# ------------------------------------------------------------------ ragged and non-UTF-8 CSV

_HEADER = "member_id,fill_date,ndc,quantity,days_supply,prescriber_id,pharmacy_id"


def _csv_lines(ndc: str, n: int = 6) -> list[bytes]:
    rows = [
        f"{SECRET_MEMBERS[i % 4]},2025-12-01,{ndc},60,30,QXP{i:04d},QXR{i:04d}".encode()
        for i in range(n)
    ]
    return [_HEADER.encode(), *rows]


def _write(path, lines: list[bytes]) -> str:
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return str(path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["ph.csv", "ph.csv.gz"])
@pytest.mark.parametrize("extra", [1, -2])
def test_ragged_csv_row(tmp_path, ndcs, mode, name, extra):
    lines = _csv_lines(ndcs["oxy30"])
    lines.insert(3, b"")  # an empty line: not a row, but a line
    cells = lines[5].split(b",")  # data row 4, file line 6
    cells = cells + [b"QXEXTRA"] * extra if extra > 0 else cells[:extra]
    lines[5] = b",".join(cells)
    text = _error(_write(tmp_path / name, lines), mode)
    assert name in text and "line 6" in text and "data row 4" in text
    assert f"has {7 + extra} fields where the header has 7" in text
    assert "QXP" not in text and "QXR" not in text and "QXEXTRA" not in text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("column", ["member_id", "ndc", "prescriber_id"])
def test_invalid_utf8_in_a_csv_column(tmp_path, ndcs, mode, column):
    lines = _csv_lines(ndcs["oxy30"])
    j = _HEADER.split(",").index(column)
    cells = lines[3].split(b",")  # data row 3, file line 4
    cells[j] = b"QXBAD\xff\xfe"
    lines[3] = b",".join(cells)
    text = _error(_write(tmp_path / "ph.csv", lines), mode)
    assert f"column '{column}'" in text and "line 4" in text and "data row 3" in text
    assert "ph.csv" in text and "save the file as UTF-8" in text
    assert "QXBAD" not in text and "QXP" not in text and "QXR" not in text


@pytest.mark.parametrize("mode", MODES)
def test_a_header_that_is_not_utf8(tmp_path, ndcs, mode):
    lines = _csv_lines(ndcs["oxy30"])
    lines[0] = lines[0].replace(b"fill_date", b"fill_d\xffte")
    text = _error(_write(tmp_path / "ph.csv", lines), mode)
    assert "ph.csv" in text and "header" in text and "UTF-8" in text


@pytest.mark.parametrize("flags", [[], ["--stream", "--batch-rows", "2"]])
def test_ragged_csv_cli_exit_2_one_line(tmp_path, ndcs, capsys, flags):
    lines = _csv_lines(ndcs["oxy30"])
    lines[2] += b",QXEXTRA"
    path = _write(tmp_path / "ph.csv", lines)
    rc = main(["score", path, "--as-of", AS_OF, "--out", str(tmp_path / "m.csv"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "line 3" in err[0] and "8 fields" in err[0] and "QX" not in err[0]
    assert not (tmp_path / "m.csv").exists()


# ------------------------------------------------------------ messages of reading / conforming


def _messages(tmp_path, ndcs) -> list[tuple[str, object, str]]:
    """(what, source, column) of bad inputs whose message must name the source and column."""
    oxy = ndcs["oxy30"]
    odd = tmp_path / "odd\nname.csv"
    odd.write_text("a,b\n1,2\n")
    return [
        ("missing", pa.table({k: v for k, v in _pharmacy(oxy).items() if k != "ndc"}), "ndc"),
        ("date type", pa.table(_pharmacy(oxy, fill_date=[True, False, True])), "fill_date"),
        ("member type", pa.table(_pharmacy(oxy, member_id=[1.5, 2.5, 3.5])), "member_id"),
        ("quantity type", pa.table(_pharmacy(oxy, quantity=[True] * 3)), "quantity"),
        ("days type", pa.table(_pharmacy(oxy, days_supply=[[1], [2], [3]])), "days_supply"),
        ("ndc integer", pa.table({**_pharmacy(oxy), "ndc": [1, 2, 3]}), "ndc"),
        ("newline names", _newline_names(oxy), "quantity"),
        ("csv missing", str(odd), "member_id"),
    ]


def _newline_names(oxy: str) -> pa.Table:
    cols = {k: v for k, v in _pharmacy(oxy).items() if k != "quantity"}
    cols["qty\nin tablets"] = [60.0] * 3
    return pa.table(cols)


@pytest.mark.parametrize("mode", MODES)
def test_reading_and_conforming_messages_are_one_line(tmp_path, ndcs, mode):
    for what, source, column in _messages(tmp_path, ndcs):
        text = _error(source, mode)
        assert f"'{column}'" in text, (what, text)
        name = "pharmacy" if isinstance(source, pa.Table) else "name.csv"
        assert name in text, (what, text)
        values = re.findall(r"QX[A-Z]\d+", text)
        assert len(values) <= 3, (what, text)

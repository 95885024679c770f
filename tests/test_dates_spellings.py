"""Date forms (text YYYY-MM-DD / YYYYMMDD, integer YYYYMMDD, timestamps, an explicit format),
impossible dates, and the claim_status / code_type spellings: one book written every way
scores to the very same member table and audit, in memory and streaming."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError
from rxrisk.ingest.conform import as_date
from rxrisk.ingest.dates import check_date_format
from rxrisk.ingest.sources import Source
from rxrisk.synthetic import generate_book

D = dt.date
STREAM = StreamOptions(batch_rows=4_000, partitions=3, claim_partitions=2)


def _dates(values, date_format=None, typ=None) -> list:
    col = pa.array(values, typ) if typ is not None else pa.array(values)
    return as_date(Source(pa.table({"d": col}), "t"), "d", date_format).to_pylist()


# ------------------------------------------------------------------------------ as_date


def test_text_forms_and_impossible_dates():
    got = _dates(
        [
            "2025-03-15",
            "20250315",
            " 2024-02-29\t",
            "2025-02-30",
            "2025-04-31",
            "20250230",
            "0000-01-01",
            "2025-13-01",
            "2023-02-29",
            "2025-3-15",
            "2025-0315",
            "03/15/2025",
            "",
            None,
            "9999-12-31",
            "1900-02-29",
            "2000-02-29",
        ]
    )
    assert got == [
        D(2025, 3, 15),
        D(2025, 3, 15),
        D(2024, 2, 29),
        None,  # 2025-02-30 is not rolled over to 2025-03-02
        None,
        None,
        None,  # year 0
        None,  # month 13
        None,  # not a leap year
        None,  # not zero-padded: only with an explicit format
        None,
        None,  # US dates only with an explicit format
        None,
        None,
        D(9999, 12, 31),
        None,  # 1900 is not a leap year
        D(2000, 2, 29),
    ]


@pytest.mark.parametrize("typ", [pa.int64(), pa.int32(), pa.uint32()])
def test_integer_yyyymmdd(typ):
    got = _dates([20250315, 20250230, None, 20251301, 101, 20240229, 19991231, 0], typ=typ)
    assert got == [D(2025, 3, 15), None, None, None, None, D(2024, 2, 29), D(1999, 12, 31), None]


def test_negative_integer_is_no_date():
    assert _dates([-20250315, 20250315], typ=pa.int64()) == [None, D(2025, 3, 15)]


def test_timestamps_and_date64_give_their_date_part():
    ts = [dt.datetime(2025, 3, 15, 23, 59), None, dt.datetime(2024, 2, 29, 0, 0)]
    assert _dates(ts, typ=pa.timestamp("us")) == [D(2025, 3, 15), None, D(2024, 2, 29)]
    assert _dates(ts, typ=pa.timestamp("s")) == [D(2025, 3, 15), None, D(2024, 2, 29)]
    assert _dates([D(2025, 3, 15), None], typ=pa.date64()) == [D(2025, 3, 15), None]


def test_explicit_format_checks_the_day_exists():
    got = _dates(
        ["03/15/2025", "3/5/2025", "02/30/2025", "04/31/2025", "13/01/2025", "12/31/2025"],
        "%m/%d/%Y",
    )
    assert got == [D(2025, 3, 15), D(2025, 3, 5), None, None, None, D(2025, 12, 31)]
    assert _dates(["15-MAR-2025", "31-apr-2025", "01-Jan-2025"], "%d-%b-%Y") == [
        D(2025, 3, 15),
        None,
        D(2025, 1, 1),
    ]
    assert _dates(["15.03.2025", "29.02.2024", "29.02.2025"], "%d.%m.%Y") == [
        D(2025, 3, 15),
        D(2024, 2, 29),
        None,
    ]


def test_explicit_format_first_then_the_standard_forms():
    # '%d%m%Y' reads 8 digits as DDMMYYYY before YYYYMMDD is tried
    assert _dates(["10111213", "2025-03-15", "20250315"], "%d%m%Y") == [
        D(1213, 11, 10),
        D(2025, 3, 15),
        D(2025, 3, 15),
    ]


def test_explicit_format_is_checked():
    assert check_date_format(None) is None
    assert check_date_format("%m/%d/%Y") == "%m/%d/%Y"
    for bad in ("", "%m/%d", "mm/dd/yyyy", 5):
        with pytest.raises(InputError, match="give a strptime format"):
            check_date_format(bad)
    ph = pa.table({"member_id": ["A"]})
    with pytest.raises(InputError, match="date format"):
        rxrisk.score(ph, as_of="2025-12-31", date_format="%d/%m")


# --------------------------------------------------------- impossible dates reject their row


def _impossible_book(ndcs):
    oxy = ndcs["oxy30"]
    dates = ["2025-06-01", "2025-02-30", "20250431", "2025-06-02", "0000-05-05", "20250601"]
    ph = pa.table(
        {
            "member_id": ["A", "B", "C", "D", "E", "F"],
            "fill_date": dates,
            "ndc": [oxy] * 6,
            "quantity": [60.0] * 6,
            "days_supply": [30] * 6,
        }
    )
    md = pa.table(
        {
            "member_id": ["A", "A", "B", "B"],
            "service_date": ["2025-06-01", "2025-04-31", "20250229", "2025-12-20"],
            "code_type": ["CPT", "CPT", "CPT", "CPT"],
            "code": ["99284"] * 4,
        }
    )
    return ph, md


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("stream", [None, STREAM])
def test_impossible_dates_reject_their_rows(ndcs, tmp_path, kind, stream):
    ph, md = _impossible_book(ndcs)
    if kind == "parquet":
        pq.write_table(ph, tmp_path / "ph.parquet")
        pq.write_table(md, tmp_path / "md.parquet")
    else:
        pacsv.write_csv(ph, tmp_path / "ph.csv")
        pacsv.write_csv(md, tmp_path / "md.csv")
    ext = ".parquet" if kind == "parquet" else ".csv"
    r = rxrisk.score(
        tmp_path / f"ph{ext}",
        tmp_path / f"md{ext}",
        as_of="2025-12-31",
        quarantine=True,
        stream=stream,
        max_reject_share=1.0,
    )
    assert r.audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 3
    assert r.audit["medical"]["rejected_by_reason"]["service_date"] == 2
    q = r.quarantine
    rejected = {
        (s, str(m), reason)
        for s, m, reason in zip(
            q.column("source").to_pylist(),
            q.column("member_id").to_pylist(),
            q.column("reject_reason").to_pylist(),
            strict=True,
        )
    }
    assert rejected == {
        ("pharmacy", "B", "fill_date"),
        ("pharmacy", "C", "fill_date"),
        ("pharmacy", "E", "fill_date"),
        ("medical", "A", "service_date"),
        ("medical", "B", "service_date"),
    }
    assert r.members.column("member_id").to_pylist() == ["A", "B", "D", "F"]


# ----------------------------------------------------------------------------- spellings


def test_claim_status_synonyms(ndcs):
    oxy = ndcs["oxy30"]
    statuses = ["B1", " b1 ", "P", "paid", "", None, "B2", "reversal", "R", " Reversed ", "X"]
    n = len(statuses)
    ph = pa.table(
        {
            "member_id": [f"M{i}" for i in range(n)],
            "fill_date": [D(2025, 6, 1)] * n,
            "ndc": [oxy] * n,
            "quantity": [60.0] * n,
            "days_supply": [30] * n,
            "claim_id": [f"C{i}" for i in range(n)],
            "claim_status": statuses,
        }
    )
    r = rxrisk.score(ph, as_of="2025-12-31", quarantine=True, max_reject_share=1.0)
    b = r.audit["pharmacy"]["buckets"]
    assert b["used"] == 6 and b["reversal"] == 4 and b["rejected"] == 1
    assert r.audit["pharmacy"]["rejected_by_reason"]["claim_status"] == 1
    assert r.quarantine.column("claim_status").to_pylist() == ["X"]


def test_a_b2_row_reverses_a_b1_row(ndcs):
    oxy = ndcs["oxy30"]
    ph = pa.table(
        {
            "member_id": ["A", "A", "B"],
            "fill_date": [D(2025, 6, 1)] * 3,
            "ndc": [oxy] * 3,
            "quantity": [60.0] * 3,
            "days_supply": [30] * 3,
            "claim_id": ["C1", "C1", "C2"],
            "claim_status": ["B1", "B2", "B1"],
        }
    )
    r = rxrisk.score(ph, as_of="2025-12-31")
    assert r.audit["pharmacy"]["buckets"]["reversed"] == 1
    assert r.members.column("member_id").to_pylist() == ["B"]


def test_code_type_spellings():
    kinds = {
        "icd-10-cm": "ICD10CM",
        "ICD10": "ICD10CM",
        "icd 10 cm": "ICD10CM",
        "Icd10Cm": "ICD10CM",
        "CPT4": "CPT",
        "cpt-4": "CPT",
        "RC": "REV",
        "revenue": "REV",
        "Rev": "REV",
        "h.c.p.c.s": "HCPCS",
        " pos ": "POS",
        "ICD9CM": None,
        "ICD-9": None,
        "CPT5": None,
        "": None,
    }
    from rxrisk.ingest.validate import CODE_TYPES, normalize_code_type

    norm = normalize_code_type(pa.array(list(kinds))).to_pylist()
    got = [v if v in CODE_TYPES else None for v in norm]
    assert got == list(kinds.values())


def test_code_type_spellings_classify(ndcs):
    # an ED visit spelled every way, and an overdose code under ICD-10 spellings
    oxy = ndcs["oxy30"]
    ph = pa.table(
        {
            "member_id": ["A"],
            "fill_date": [D(2025, 12, 1)],
            "ndc": [oxy],
            "quantity": [60.0],
            "days_supply": [30],
        }
    )
    rows = [
        ("cpt-4", "99284", 1),
        ("RC", "450", 2),
        ("revenue", "0981", 3),
        ("pos", "23", 4),
        ("icd-10-cm", "T40.2X1A", 5),
        ("ICD10", "T40.411A", 6),
        ("ICD9CM", "965.09", 7),
    ]
    md = pa.table(
        {
            "member_id": ["A"] * len(rows),
            "service_date": [D(2025, 12, d) for *_, d in rows],
            "code_type": [t for t, *_ in rows],
            "code": [c for _, c, _ in rows],
        }
    )
    r = rxrisk.score(ph, md, as_of="2025-12-31", max_reject_share=1.0)
    row = r.members.to_pylist()[0]
    assert row["ed_visits_90d"] == 4
    assert row["overdoses_365d"] == 2
    assert r.audit["medical"]["rejected_by_reason"]["code_type"] == 1


# ------------------------------------- one book, every date form and spelling, same scores


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    generate_book(out, members=600, seed=11)
    return pq.read_table(out / "pharmacy.parquet"), pq.read_table(out / "medical.parquet")


def _alternate(values, table: dict) -> list:
    """Each value mapped to one of its spellings in turn (values without one kept)."""
    seen: dict = {}
    out = []
    for v in values:
        key = v.strip().lower() if isinstance(v, str) else v
        options = table.get(key)
        if not options:
            out.append(v)
            continue
        k = seen.get(key, 0)
        seen[key] = k + 1
        out.append(options[k % len(options)])
    return out


STATUS_SPELLINGS = {"paid": ["B1", "b1", "P"], "p": ["B1"], "reversed": ["B2", "reversal", "R"]}
STATUS_SPELLINGS["r"] = ["B2", "reversal"]
CODE_TYPE_SPELLINGS = {
    "icd10cm": ["icd-10-cm", "ICD10", "ICD 10 CM"],
    "cpt": ["CPT4", "cpt-4", "Cpt"],
    "rev": ["RC", "revenue", "REV"],
    "hcpcs": ["hcpcs", "H.C.P.C.S."],
    "pos": ["P.O.S.", "pos"],
}


def _with_dates(table: pa.Table, name: str, values) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, name, values)


def _date_text(col, fmt: str) -> pa.ChunkedArray:
    return pc.strftime(col.cast(pa.timestamp("s")), format=fmt)


def _respell(ph: pa.Table, md: pa.Table) -> tuple[pa.Table, pa.Table]:
    status = _alternate(ph.column("claim_status").to_pylist(), STATUS_SPELLINGS)
    ph = ph.set_column(ph.column_names.index("claim_status"), "claim_status", pa.array(status))
    kinds = _alternate(md.column("code_type").to_pylist(), CODE_TYPE_SPELLINGS)
    md = md.set_column(md.column_names.index("code_type"), "code_type", pa.array(kinds))
    return ph, md


def _form(ph: pa.Table, md: pa.Table, form: str) -> tuple[pa.Table, pa.Table]:
    out = []
    for t, name in ((ph, "fill_date"), (md, "service_date")):
        col = t.column(name)
        if form == "yyyymmdd_text":
            v = _date_text(col, "%Y%m%d")
        elif form == "yyyymmdd_int":
            v = _date_text(col, "%Y%m%d").cast(pa.int64())
        elif form == "timestamp":
            v = col.cast(pa.timestamp("ms"))
        elif form == "us_text":
            v = _date_text(col, "%m/%d/%Y")
        elif form == "mixed_text":  # YYYY-MM-DD and YYYYMMDD rows in one column
            iso, compact = _date_text(col, "%Y-%m-%d"), _date_text(col, "%Y%m%d")
            odd = pa.array(np.arange(len(col)) % 2 == 1)
            v = pc.if_else(odd, compact, iso)
        else:
            raise AssertionError(form)
        out.append(_with_dates(t, name, v))
    return out[0], out[1]


FORMS = {
    "yyyymmdd_text": None,
    "yyyymmdd_int": None,
    "timestamp": None,
    "us_text": "%m/%d/%Y",
    "mixed_text": None,
}


def _strip(audit: dict) -> str:
    return json.dumps({k: v for k, v in audit.items() if k != "seconds"})


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("stream", [None, STREAM])
def test_every_form_and_spelling_scores_like_the_canonical_book(book, form, stream):
    ph, md = book
    want = rxrisk.score(ph, md, as_of=["2025-06-30", "2025-12-31"], stream=stream)
    assert want.members.num_rows > 100
    assert want.audit["pharmacy"]["buckets"]["reversal"] > 0
    ph2, md2 = _respell(*_form(ph, md, form))
    assert ph2.column("claim_status").to_pylist() != ph.column("claim_status").to_pylist()
    got = rxrisk.score(
        ph2, md2, as_of=["2025-06-30", "2025-12-31"], stream=stream, date_format=FORMS[form]
    )
    assert got.members.equals(want.members)
    assert _strip(got.audit) == _strip(want.audit)


def test_every_form_as_csv_scores_like_the_canonical_book(book, tmp_path):
    ph, md = book
    pacsv.write_csv(ph, tmp_path / "ph.csv")
    pacsv.write_csv(md, tmp_path / "md.csv")
    want = rxrisk.score(tmp_path / "ph.csv", tmp_path / "md.csv", as_of="2025-12-31")
    for form in ("yyyymmdd_text", "us_text", "mixed_text"):
        ph2, md2 = _respell(*_form(ph, md, form))
        pacsv.write_csv(ph2, tmp_path / f"ph_{form}.csv")
        pacsv.write_csv(md2, tmp_path / f"md_{form}.csv")
        for stream in (None, STREAM):
            got = rxrisk.score(
                tmp_path / f"ph_{form}.csv",
                tmp_path / f"md_{form}.csv",
                as_of="2025-12-31",
                date_format=FORMS[form],
                stream=stream,
            )
            assert got.members.equals(want.members), (form, stream)
            assert _strip(got.audit) == _strip(want.audit), (form, stream)


def test_us_date_csv_stops_then_scores_with_date_format(book, tmp_path, capsys):
    ph, md = book
    pacsv.write_csv(ph, tmp_path / "ph.csv")
    pacsv.write_csv(md, tmp_path / "md.csv")
    ph_us, md_us = _form(ph, md, "us_text")
    pacsv.write_csv(ph_us, tmp_path / "ph_us.csv")
    pacsv.write_csv(md_us, tmp_path / "md_us.csv")
    base = ["score", "--as-of", "2025-12-31", "--quiet"]
    assert main([*base, str(tmp_path / "ph.csv"), "--medical", str(tmp_path / "md.csv"),
                 "--out", str(tmp_path / "want.parquet")]) == 0  # fmt: skip
    capsys.readouterr()

    out = tmp_path / "got.parquet"
    audit = tmp_path / "got.json"
    args = [*base, str(tmp_path / "ph_us.csv"), "--medical", str(tmp_path / "md_us.csv")]
    args += ["--out", str(out), "--audit", str(audit)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    line = err.strip()
    scope = (
        ph.num_rows - rxrisk.score(ph, as_of="2025-12-31").audit["pharmacy"]["buckets"]["untracked"]
    )
    assert str(tmp_path / "ph_us.csv") in line
    assert "column fill_date" in line
    assert "YYYY-MM-DD or YYYYMMDD" in line and "--date-format" in line
    assert "%" in line  # the share
    n_bad = int(line.split("column fill_date: ")[1].split(" of ")[0].replace(",", ""))
    assert n_bad > 0.9 * scope
    shown = line.split("(e.g. ")[1].split(")")[0].split(", ")
    assert 1 <= len(shown) <= 3 and all("/" in v for v in shown)
    assert not out.exists() and not audit.exists()

    assert main([*args, "--date-format", "%m/%d/%Y"]) == 0
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "want.parquet"))

"""Intake of the standard measures: the measures config file, the periods, and the eligibility and
members inputs (buckets, reasons, loud intake, member-id types, alignment onto the claims'
members)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from rxrisk.days import day_of
from rxrisk.errors import InputError
from rxrisk.ingest import intake
from rxrisk.kernels.measures_containers import OPEN_END
from rxrisk.quality.enrollment import NO_BIRTH, read_enrollment
from rxrisk.quality.enrollment_join import lookup, seen_before, sort_spans
from rxrisk.quality.settings import MeasureSettings, load_measure_settings, parse_periods

STR = pa.string()


def day(text: str) -> int:
    return day_of(dt.date.fromisoformat(text))


def _members(ids, births=None):
    births = births if births is not None else ["1980-01-01"] * len(ids)
    return pa.table({"member_id": ids, "birth_date": births})


def _eligibility(ids, starts=None, ends=None, products=None):
    n = len(ids)
    cols = {
        "member_id": ids,
        "start_date": starts if starts is not None else ["2025-01-01"] * n,
        "end_date": ends if ends is not None else [None] * n,
    }
    if products is not None:
        cols["product"] = products
    return pa.table(cols)


def _read(el, mb, member_type=STR, **kw):
    kw.setdefault("max_reject_share", 1.0)
    return read_enrollment(el, mb, member_type=member_type, **kw)


def _reasons(block):
    return {r: n for r, n in block["rejected_by_reason"].items() if n}


# ------------------------------------------------------------------------- audit blocks


def test_every_eligibility_reason_and_the_block_shape():
    el = _eligibility(
        ["A", None, "", "  ", "B", "C", "D", "E", "F"],
        starts=[
            "2025-01-01",
            "2025-01-01",
            "2025-01-01",
            "2025-01-01",
            None,
            "not a date",
            "2025-03-01",
            "2025-03-01",
            "2025-03-01",
        ],
        ends=[None, None, None, None, None, None, "2025-02-28", "03/31/2025", "2025-03-01"],
    )
    e = _read(el, _members(["A"]))
    block = e.audit_blocks()["eligibility"]
    assert block == {
        "rows_read": 9,
        "buckets": {"rejected": 7, "used": 2},
        "rejected_by_reason": {"member_id": 3, "start_date": 2, "end_date": 2},
    }
    assert list(block) == ["rows_read", "buckets", "rejected_by_reason"]
    assert list(block["buckets"]) == ["rejected", "used"]
    q = e.quarantine()
    assert q.column("source").to_pylist() == ["eligibility"] * 7
    assert q.column("row_number").to_pylist() == [2, 3, 4, 5, 6, 7, 8]
    assert q.column("reject_reason").to_pylist()[-2:] == ["end_date", "end_date"]


def test_every_members_reason_and_the_first_row_kept():
    mb = _members(
        ["A", "", None, "B", "A", "C", "C", " A "],
        [
            "1980-01-01",
            "1980-01-01",
            "1980-01-01",
            "1980-13-01",
            "1990-01-01",
            "19700101",
            "",
            "1999-01-01",
        ],
    )
    e = _read(_eligibility(["A"]), mb)
    assert e.audit_blocks()["members"] == {
        "rows_read": 8,
        "buckets": {"rejected": 6, "used": 2},
        "rejected_by_reason": {"member_id": 2, "birth_date": 2, "duplicate": 2},
    }
    births = e.births_for(pa.array(["A", "B", "C"]))
    assert births.tolist() == [day("1980-01-01"), NO_BIRTH, day("1970-01-01")]
    assert births.dtype == np.int32


def test_first_failing_reason_order():
    el = _eligibility(
        ["", "A", "B"],
        starts=["bad", "bad", "2025-05-01"],
        ends=["bad", "bad", "2025-04-30"],
    )
    mb = _members(["", "A", "A", "A"], ["bad", "bad", "1970-01-01", "1971-01-01"])
    e = _read(el, mb)
    assert _reasons(e.audit_blocks()["eligibility"]) == {
        "member_id": 1,
        "start_date": 1,
        "end_date": 1,
    }
    # a row rejected for its birth date is not kept, so the next row of that id is the first
    assert _reasons(e.audit_blocks()["members"]) == {
        "member_id": 1,
        "birth_date": 1,
        "duplicate": 1,
    }
    assert e.births_for(pa.array(["A"])).tolist() == [day("1970-01-01")]


def test_open_ended_and_empty_end_dates():
    el = _eligibility(
        ["A", "A", "A", "A"],
        starts=["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"],
        ends=[None, "", "  ", "2025-04-01"],
    )
    e = _read(el, _members(["A"]))
    spans, _ = e.spans_for(pa.array(["A"]))
    assert _reasons(e.audit_blocks()["eligibility"]) == {}
    assert spans.span_end.tolist() == [OPEN_END, OPEN_END, OPEN_END, day("2025-04-01")]
    assert spans.span_start.tolist() == [
        day(d) for d in ("2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01")
    ]


def test_null_end_of_a_date_column_is_open_ended():
    el = pa.table(
        {
            "member_id": ["A", "A"],
            "start_date": pa.array([dt.date(2025, 1, 1), dt.date(2025, 2, 1)]),
            "end_date": pa.array([None, dt.date(2025, 5, 31)], pa.date32()),
        }
    )
    spans, _ = _read(el, _members(["A"])).spans_for(pa.array(["A"]))
    assert spans.span_end.tolist() == [OPEN_END, day("2025-05-31")]


def test_ids_are_trimmed_and_products_default_to_unspecified():
    el = _eligibility(
        [" A ", "A\t", "B", "B"],
        starts=["2025-01-01", "2025-02-01", "2025-01-01", "2025-01-01"],
        products=[" part_d ", None, "", "medicaid"],
    )
    e = _read(el, _members([" A", "B "]))
    spans, products = e.spans_for(pa.array(["A", "B"]))
    assert products == ("medicaid", "part_d", "unspecified")
    assert spans.span_offsets.tolist() == [0, 2, 4]
    assert [products[p] for p in spans.span_product] == [
        "part_d",
        "unspecified",
        "medicaid",
        "unspecified",
    ]
    assert e.births_for(pa.array(["A", "B"])).tolist() == [day("1980-01-01")] * 2


def test_no_product_column_is_unspecified():
    spans, products = _read(_eligibility(["A"]), _members(["A"])).spans_for(pa.array(["A"]))
    assert products == ("unspecified",)
    assert spans.span_product.tolist() == [0]


def test_date_forms_us_dates_yyyymmdd_and_impossible_dates():
    us = _eligibility(["A", "B"], starts=["03/15/2025", "02/30/2025"], ends=["12/31/2025", None])
    e = _read(us, _members(["A"], ["07/04/1976"]), date_format="%m/%d/%Y")
    spans, _ = e.spans_for(pa.array(["A", "B"]))
    assert spans.span_start.tolist() == [day("2025-03-15")]
    assert spans.span_end.tolist() == [day("2025-12-31")]
    assert _reasons(e.audit_blocks()["eligibility"]) == {"start_date": 1}  # 02/30 not rolled over
    assert e.births_for(pa.array(["A"])).tolist() == [day("1976-07-04")]
    ints = pa.table(
        {
            "member_id": ["A", "B", "C"],
            "start_date": pa.array([20250101, 20250230, 20250301], pa.int64()),
            "end_date": pa.array([20251231, None, 20250229], pa.int64()),
        }
    )
    e = _read(ints, _members(["A", "B"], ["20000229", "2025-02-29"]))
    assert _reasons(e.audit_blocks()["eligibility"]) == {"start_date": 1, "end_date": 1}
    assert _reasons(e.audit_blocks()["members"]) == {"birth_date": 1}
    spans, _ = e.spans_for(pa.array(["A"]))
    assert (spans.span_start.tolist(), spans.span_end.tolist()) == (
        [day("2025-01-01")],
        [day("2025-12-31")],
    )
    assert e.births_for(pa.array(["A"])).tolist() == [day("2000-02-29")]


@pytest.mark.parametrize(
    ("which", "drop"),
    [
        ("eligibility", "start_date"),
        ("eligibility", "end_date"),
        ("members", "birth_date"),
        ("members", "member_id"),
    ],
)
def test_a_missing_column_is_a_one_line_error(which, drop):
    el, mb = _eligibility(["A"]), _members(["A"])
    if which == "eligibility":
        el = el.drop_columns([drop])
    else:
        mb = mb.drop_columns([drop])
    with pytest.raises(InputError) as err:
        _read(el, mb)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{which} input is missing required column '{drop}'" in msg


# ------------------------------------------------------------------------- loud intake


def test_too_many_rejected_rows_stop_with_the_values_and_the_fix(tmp_path):
    path = tmp_path / "eligibility.csv"
    starts = ["2025-01-01"] * 20 + ["01/02/2025", "01/03/2025", "01/02/2025", "01/05/2025"] * 3
    pacsv.write_csv(_eligibility([f"M{i}" for i in range(len(starts))], starts=starts), path)
    with pytest.raises(InputError) as err:
        read_enrollment(path, _members(["M1"]), member_type=STR)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"eligibility input {path}: column start_date: 12 of 32 in-scope rows (37.5%)" in msg
    assert "(e.g. '01/02/2025', '01/03/2025', '01/05/2025')" in msg
    assert "--date-format" in msg and "--max-reject-share 1" in msg
    # the stop is off at 1, and a share under the stop is fine
    assert (
        _read(path, _members(["M1"]), max_reject_share=1.0).audit_blocks()["eligibility"][
            "buckets"
        ]["used"]
        == 20
    )
    _read(path, _members(["M1"]), max_reject_share=0.4)


def test_duplicate_members_stop_names_the_member_id_column():
    mb = _members([f"M{i % 10}" for i in range(30)])
    with pytest.raises(InputError) as err:
        read_enrollment(_eligibility(["M1"]), mb, member_type=STR)
    msg = str(err.value)
    assert (
        "members input: column member_id: 20 of 30 in-scope rows (66.7%) rejected as duplicate"
        in msg
    )
    assert "(e.g. 'M0', 'M1', 'M2')" in msg and "give each member_id once" in msg


def test_fewer_than_ten_rejected_rows_never_stop_and_a_share_above_one_percent_warns():
    el = _eligibility(["A"] * 9 + [""] * 9)
    e = read_enrollment(el, _members(["A"]), member_type=STR)  # 50% but only 9 rows
    assert _reasons(e.audit_blocks()["eligibility"]) == {"member_id": 9}
    first = intake.audit_warnings(e.audit_blocks())
    assert [w.split(";")[0] for w in first] == [
        "eligibility member_id: 9 of 18 in-scope rows (50.0%) rejected"
    ]
    mb = _members([f"M{i}" for i in range(100)], ["1980-01-01"] * 95 + ["x"] * 5)
    e = read_enrollment(_eligibility(["M1"]), mb, member_type=STR)
    warnings = intake.audit_warnings(e.audit_blocks())
    assert any(
        w.startswith("members birth_date: 5 of 100 in-scope rows (5.0%) rejected") for w in warnings
    )


# ------------------------------------------------------------------------- sources


def _write(table: pa.Table, path, kind: str):
    if kind == "csv":
        pacsv.write_csv(table, path)
    elif kind == "parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet", "arrow", "table", "reader"])
def test_every_source_kind_gives_the_same_enrollment(tmp_path, kind):
    el = _eligibility(
        ["A", "B", "", "A"],
        starts=["2025-01-01", "2025-02-01", "2025-01-01", "bad"],
        ends=["2025-06-30", "", None, None],
        products=["medicaid", "part_d", "x", "x"],
    )
    mb = _members(["B", "A", "B"], ["1970-01-01", "1980-02-29", "1999-01-01"])
    if kind in ("csv", "parquet", "arrow"):
        el = _write(el, tmp_path / f"el.{kind}", kind)
        mb = _write(mb, tmp_path / f"mb.{kind}", kind)
    elif kind == "reader":
        el = pa.RecordBatchReader.from_batches(el.schema, el.to_batches())
        mb = pa.RecordBatchReader.from_batches(mb.schema, mb.to_batches())
    e = _read(el, mb)
    assert _reasons(e.audit_blocks()["eligibility"]) == {"member_id": 1, "start_date": 1}
    assert _reasons(e.audit_blocks()["members"]) == {"duplicate": 1}
    spans, products = e.spans_for(pa.array(["A", "B"]))
    assert products == ("medicaid", "part_d")
    assert spans.span_offsets.tolist() == [0, 1, 2]
    assert spans.span_end.tolist() == [day("2025-06-30"), OPEN_END]
    assert e.births_for(pa.array(["A", "B"])).tolist() == [day("1980-02-29"), day("1970-01-01")]


# ------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("member_type", [pa.string(), pa.int64()])
def test_spans_and_births_align_onto_the_claims_members(member_type):
    def ids(values):
        return pa.array(values).cast(member_type)

    el = _eligibility(
        ids([30, 10, 30, 99, 10, 30]),
        starts=["2025-03-01", "2025-01-01", "2025-01-01", "2025-01-01", "2025-01-01", "2025-01-01"],
        ends=["", "2025-12-31", "2025-06-30", None, "2025-06-30", "2025-06-30"],
        products=["b", "a", "c", "a", "b", "a"],
    )
    mb = _members(ids([20, 30, 77]), ["1960-01-01", "1970-01-01", "1990-01-01"])
    e = _read(el, mb, member_type=member_type)
    claims_members = ids([10, 20, 30])  # 99 (spans only) and 77 (birth only) are not claims members
    spans, products = e.spans_for(claims_members)
    assert products == ("a", "b", "c")
    assert spans.span_offsets.tolist() == [0, 2, 2, 5]
    assert spans.span_offsets.dtype == np.intp
    # member 10: same start, ends 06-30 before 12-31; member 30: (01-01, 06-30) by product a < c
    assert spans.span_start.tolist() == [day("2025-01-01")] * 2 + [day("2025-01-01")] * 2 + [
        day("2025-03-01")
    ]
    assert spans.span_end.tolist() == [
        day("2025-06-30"),
        day("2025-12-31"),
        day("2025-06-30"),
        day("2025-06-30"),
        OPEN_END,
    ]
    assert spans.span_product.tolist() == [1, 0, 0, 2, 1]
    for a in spans[1:]:
        assert a.dtype == np.int32 and a.flags.c_contiguous
    assert e.births_for(claims_members).tolist() == [NO_BIRTH, day("1960-01-01"), day("1970-01-01")]
    assert e.births_for(ids([30, 5])).tolist() == [day("1970-01-01"), NO_BIRTH]
    empty, _ = e.spans_for(ids([]))
    assert empty.span_offsets.tolist() == [0] and len(empty.span_start) == 0
    assert e.births_for(ids([])).tolist() == []


# ------------------------------------------------------------------------- member-id types


def test_integer_ids_against_text_pharmacy_ids_compare_as_decimal_text():
    el = _eligibility(pa.array([123, 7], pa.int64()))
    mb = _members(pa.array([123, 7], pa.int32()))
    e = _read(el, mb, member_type=STR)
    spans, _ = e.spans_for(pa.array(["00123", "123", "7"]))
    assert spans.span_offsets.tolist() == [0, 0, 1, 2]  # "00123" is another id
    assert e.births_for(pa.array(["00123", "123"])).tolist() == [NO_BIRTH, day("1980-01-01")]


def test_text_ids_against_integer_pharmacy_ids_must_be_whole_numbers():
    el = _eligibility([" 0012 ", "-5", "", "12"])
    e = _read(el, _members(["12", "012"]), member_type=pa.int64())
    assert _reasons(e.audit_blocks()["eligibility"]) == {"member_id": 1}
    assert _reasons(e.audit_blocks()["members"]) == {"duplicate": 1}  # 012 is 12
    spans, _ = e.spans_for(pa.array([-5, 12], pa.int64()))
    assert spans.span_offsets.tolist() == [0, 1, 3]
    for bad in ("M12", "1.5", "99999999999999999999"):
        with pytest.raises(InputError) as err:
            _read(_eligibility(["12", bad]), _members(["12"]), member_type=pa.int64())
        msg = str(err.value)
        assert "eligibility input: column 'member_id'" in msg and repr(bad) in msg
        assert "int64" in msg and "one type in every input" in msg


# ------------------------------------------------------------------------- the joins


def _naive_lookup(values, keys):
    where = {k: i for i, k in enumerate(keys)}
    return [where.get(v, -1) for v in values]


@pytest.mark.parametrize(
    "values, keys",
    [
        ([5, 3, 9, 3], [3, 4, 5]),
        ([-(2**63), 2**63 - 1, 0], [0, 2**63 - 1]),  # too wide to pack: hash lookup
        (["b", "a", "zz"], ["a", "b"]),
        ([1, 2], []),
        ([], [1]),
    ],
)
def test_lookup(values, keys):
    typ = pa.string() if any(isinstance(v, str) for v in values + keys) else pa.int64()
    got = lookup(pa.array(values, typ), pa.array(keys, typ))
    assert got.tolist() == _naive_lookup(values, keys)


@pytest.mark.parametrize(
    "values", [[4, 1, 4, 4, 1, 7], [-(2**63), 2**63 - 1, -(2**63)], ["x", "y", "x"]]
)
def test_seen_before(values):
    seen, expected = set(), []
    for v in values:
        expected.append(v in seen)
        seen.add(v)
    assert seen_before(pa.array(values)).tolist() == expected


@pytest.mark.parametrize("wide", [False, True])
def test_sort_spans_packed_and_lexsort(wide):
    rng = np.random.default_rng(7)
    n = 200
    member = rng.integers(0, 20, n)
    start = rng.integers(-50, 50, n).astype(np.int32)
    end = (start + rng.integers(0, 40, n)).astype(np.int32)
    end[rng.random(n) < 0.3] = OPEN_END
    if wide:  # starts and ends spread over the whole int32 range: more than 64 bits
        start[0], end[1] = -(2**31) + 1, 2**31 - 3
    product = rng.integers(0, 3, n).astype(np.int32)
    got = sort_spans(member, start, end, product, 3)
    order = np.lexsort((product, end, start, member))
    for a, b in zip(got, (member, start, end, product), strict=True):
        assert a.tolist() == b[order].tolist()


# ------------------------------------------------------------------------- settings


def test_the_packaged_settings_are_the_defaults_and_every_key_is_commented():
    s = load_measure_settings()
    assert s.values() == MeasureSettings().values()
    assert s.digest() == MeasureSettings(high_dose_mme=90).digest()
    assert s.digest() != MeasureSettings(min_prescribers=5).digest()
    from rxrisk.config.resources import data_path

    lines = data_path("measures", "default.toml").read_text().splitlines()
    for key in s.values():
        line = next(x for x in lines if x.startswith(f"{key} ="))
        assert "#" in line, key


def test_a_user_file_replaces_only_the_keys_it_gives(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("[high_dose]\nhigh_dose_mme = 120\n[continued_use]\nmin_covered_30 = 20\n")
    s = load_measure_settings(path)
    assert (s.high_dose_mme, s.min_covered_30, s.min_prescribers) == (120.0, 20, 4)
    assert s.source == str(path)
    assert load_measure_settings({"eligible": {"min_age": 65}}).min_age == 65


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[high_dose]\nfoo = 1\n", "[high_dose]: unknown key 'foo'; valid keys: high_dose_mme,"),
        ("[foo]\n", "unknown table [foo]; valid tables: enrollment, eligible,"),
        ("max_gaps = 2\n", "key 'max_gaps' belongs in table [enrollment]"),
        (
            "[high_dose]\nmax_gaps = 2\n",
            "[high_dose]: key 'max_gaps' belongs in table [enrollment]",
        ),
        (
            '[high_dose]\nhigh_dose_mme = "90"\n',
            "[high_dose] high_dose_mme: Expected `float`, got `str`",
        ),
        ("[enrollment]\nmax_gaps = 1.5\n", "[enrollment] max_gaps: Expected `int`, got `float`"),
        (
            "[enrollment]\nmax_gaps = -1\n",
            "[enrollment] max_gaps = -1 must be a whole number from 0",
        ),
        (
            "[multiple_providers]\nmin_pharmacies = 0\n",
            "min_pharmacies = 0 must be a whole number from 1",
        ),
        ("[high_dose]\nhigh_dose_mme = 0\n", "high_dose_mme = 0.0 must be a finite number above 0"),
        (
            "[high_dose]\nhigh_dose_average_mme = inf\n",
            "high_dose_average_mme = inf must be a finite",
        ),
        (
            "[continued_use]\nmin_covered_62 = 63\n",
            "min_covered_62 = 63 must be a whole number from 1 to 62",
        ),
        ("[enrollment\n", "not valid TOML"),
    ],
)
def test_settings_errors_name_the_file_the_table_and_the_key(tmp_path, text, expected):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_measure_settings(path)
    msg = str(err.value)
    assert msg.startswith(f"measures config file {path}: ") and "\n" not in msg
    assert expected in msg


def test_settings_other_errors(tmp_path):
    with pytest.raises(InputError, match="cannot be read"):
        load_measure_settings(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="cannot use an object of type int"):
        load_measure_settings(3)
    with pytest.raises(InputError, match=r"min_age = -1 must be"):
        load_measure_settings(MeasureSettings(min_age=-1))


# ------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"years": 2025}, [("2025-01-01", "2025-12-31")]),
        ({"years": "2025,2024"}, [("2024-01-01", "2024-12-31"), ("2025-01-01", "2025-12-31")]),
        (
            {"years": ["2024", 2024, np.int64(2023)]},
            [("2023-01-01", "2023-12-31"), ("2024-01-01", "2024-12-31")],
        ),
        (
            {"periods": "2025-07-01:2025-12-31, 20250101:20250630"},
            [("2025-01-01", "2025-06-30"), ("2025-07-01", "2025-12-31")],
        ),
        (
            {
                "periods": [
                    (dt.date(2025, 1, 1), np.datetime64("2025-03-31")),
                    ("2024-02-29", "2024-02-29"),
                ]
            },
            [("2024-02-29", "2024-02-29"), ("2025-01-01", "2025-03-31")],
        ),
        ({"periods": ("2025-01-01", dt.datetime(2025, 1, 31, 12))}, [("2025-01-01", "2025-01-31")]),
    ],
)
def test_parse_periods(kw, expected):
    got = parse_periods(**kw)
    assert got.dtype == np.int32 and got.shape == (len(expected), 2) and got.flags.c_contiguous
    assert got.tolist() == [[day(a), day(b)] for a, b in expected]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "no period given"),
        ({"years": 2025, "periods": "2025-01-01:2025-12-31"}, "not both"),
        ({"years": ""}, "--year: no year given"),
        ({"years": "20x5"}, "--year '20x5' is not a year"),
        ({"years": 1899}, "from 1900 to 2199"),
        ({"years": [2025, 2200]}, "--year 2200 is not a year"),
        ({"years": True}, "is not a year"),
        ({"years": 2025.0}, "--year 2025.0 (float)"),
        ({"periods": ""}, "--period: no period given"),
        ({"periods": "2025-01-01"}, "write START:END"),
        ({"periods": "2025-02-30:2025-03-31"}, "--period date '2025-02-30' does not exist"),
        ({"periods": "2025/01/01:2025-03-31"}, "--period date '2025/01/01' is not a date"),
        (
            {"periods": "2025-03-01:2025-02-01"},
            "--period 2025-03-01:2025-02-01: the end is before the start",
        ),
        ({"periods": [(1, 2)]}, "--period value 1 (int) is not a date"),
        ({"periods": "1899-12-31:1900-01-31"}, "outside the years 1900 to 2199"),
    ],
)
def test_parse_periods_errors(kw, expected):
    with pytest.raises(InputError) as err:
        parse_periods(**kw)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_parquet_folder_part_without_a_required_column_is_named(tmp_path):
    folder = tmp_path / "eligibility"
    folder.mkdir()
    pq.write_table(_eligibility(["A"]), folder / "part-0.parquet")
    pq.write_table(_eligibility(["B"]).drop_columns(["end_date"]), folder / "part-1.parquet")
    with pytest.raises(InputError) as err:
        _read(folder, _members(["A"]))
    msg = str(err.value)
    assert "part part-1.parquet has no column 'end_date', which is required" in msg


def test_products_are_those_of_the_used_rows_trimmed_and_merged():
    products = pa.array(["b", " a", "a ", "rejected_only", "b"]).dictionary_encode()
    el = _eligibility(["A", "A", "B", "", "B"], products=products)
    spans, names = _read(el, _members(["A"])).spans_for(pa.array(["A", "B"]))
    assert names == ("a", "b")
    assert spans.span_product.tolist() == [0, 1, 0, 1]  # A: (a, b) by product; B: a, b

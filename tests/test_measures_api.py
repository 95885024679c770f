"""``rxrisk.measures``: its arguments (checked before anything is read), the forms of
``periods``, the shapes, types and order of the summary, detail and audit, the counts adding up,
and the measures file changing the results. The definitions themselves are checked against the
independent plain-Python reference in tests/test_measures_vs_naive.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rxrisk
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError
from rxrisk.quality.rates import MEASURES
from rxrisk.quality.run import periods_of
from rxrisk.quality.summary import SUMMARY_SCHEMA, summary_table

OXY30 = "00228287911"  # oxycodone 30 mg tablet (packaged reference), MME factor 1.5
d = dt.date


def _rx(member, fill, quantity=120.0, days=30, prescriber="P1", pharmacy="R1"):
    """An oxycodone 30 mg claim: 120 tablets over 30 days is 180 MME a day, 30 is 45."""
    return {
        "member_id": member,
        "fill_date": fill,
        "ndc": OXY30,
        "quantity": quantity,
        "days_supply": days,
        "prescriber_id": prescriber,
        "pharmacy_id": pharmacy,
        "claim_id": None,
        "claim_status": "paid",
    }


def _book():
    """A: high dose, part_d; B: low dose, medicaid; C: no members row; D: no eligibility;
    E: a child; F: cancer (excluded); G: enrolled only until June (not enrolled)."""
    fills = []
    for m, q in (("A", 120.0), ("B", 30.0), ("C", 120.0), ("D", 120.0), ("E", 120.0)):
        fills += [_rx(m, d(2025, 1, 10), q), _rx(m, d(2025, 2, 10), q)]
    fills += [_rx("F", d(2025, 3, 1)), _rx("F", d(2025, 4, 1)), _rx("G", d(2025, 1, 5))]
    fills += [_rx("G", d(2025, 2, 5))]
    pharmacy = pa.Table.from_pylist(fills)
    medical = pa.table(
        {
            "member_id": ["F"],
            "service_date": [d(2025, 5, 1)],
            "code_type": ["ICD10CM"],
            "code": ["C50.911"],
        }
    )
    span_rows = [
        ("A", d(2020, 1, 1), None, "part_d"),
        ("B", d(2024, 6, 1), d(2026, 12, 31), "medicaid"),
        ("C", d(2020, 1, 1), None, "part_d"),
        ("E", d(2020, 1, 1), None, "part_d"),
        ("F", d(2020, 1, 1), None, "medicaid"),
        ("G", d(2020, 1, 1), d(2025, 6, 30), "part_d"),
    ]
    eligibility = pa.table(
        {
            "member_id": [r[0] for r in span_rows],
            "start_date": pa.array([r[1] for r in span_rows], pa.date32()),
            "end_date": pa.array([r[2] for r in span_rows], pa.date32()),
            "product": [r[3] for r in span_rows],
        }
    )
    people = [("A", d(1960, 5, 1)), ("B", d(1980, 1, 1)), ("D", d(1970, 1, 1))]
    people += [("E", d(2015, 1, 1)), ("F", d(1950, 1, 1)), ("G", d(1970, 1, 1))]
    members = pa.table(
        {
            "member_id": [p[0] for p in people],
            "birth_date": pa.array([p[1] for p in people], pa.date32()),
        }
    )
    return pharmacy, medical, eligibility, members


@pytest.fixture(scope="module")
def book():
    return _book()


@pytest.fixture(scope="module")
def result(book):
    pharmacy, medical, eligibility, members = book
    return rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=members, periods=[2024, 2025]
    )


def _row(summary: pa.Table, measure: str, product: str = "all", year: int = 2025) -> dict:
    rows = [
        r
        for r in summary.to_pylist()
        if r["measure"] == measure and r["product"] == product and r["period_start"].year == year
    ]
    assert len(rows) == 1
    return rows[0]


# ------------------------------------------------------------------ public face


def test_exported_lazily():
    assert rxrisk.measures is rxrisk.quality.run.measures
    assert rxrisk.MeasureResult is rxrisk.quality.run.MeasureResult
    assert {"measures", "MeasureResult"} <= set(rxrisk.__all__)
    code = "import sys, rxrisk; assert 'numba' not in sys.modules and 'rxrisk.quality' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ who counts


def test_members_in_and_out_of_the_denominators(result):
    detail = result.detail
    assert detail.column("member_id").to_pylist() == ["A", "B", "F"]
    # C (no members row), D (no eligibility), E (17 years short of 18), G (left in June): none
    assert result.audit["members_eligible"] == 3
    a = _row(result.summary, "high_dose_average")
    assert (a["eligible"], a["excluded"], a["denominator"], a["numerator"]) == (3, 1, 2, 1)
    assert a["rate"] == 0.5
    f = detail.filter(pc.equal(detail.column("member_id"), "F")).to_pylist()[0]
    assert f["exclusion"] == "cancer" and not f["high_dose_average_denominator"]


def test_products_and_the_all_rows(result):
    s = result.summary
    assert _row(s, "high_dose_average", "part_d")["numerator"] == 1
    medicaid = _row(s, "high_dose_average", "medicaid")
    assert (medicaid["eligible"], medicaid["excluded"], medicaid["denominator"]) == (2, 1, 1)
    assert medicaid["numerator"] == 0 and medicaid["rate"] == 0.0


def test_a_period_without_detail_rows_has_its_all_rows(result):
    rows = [r for r in result.summary.to_pylist() if r["period_start"] == d(2024, 1, 1)]
    assert [r["measure"] for r in rows] == list(MEASURES)
    assert {r["product"] for r in rows} == {"all"}
    assert all(r["eligible"] == r["denominator"] == r["numerator"] == 0 for r in rows)
    assert all(r["rate"] is None for r in rows)


# ------------------------------------------------------------------ shapes, types, order


def test_summary_schema_order_and_counts_add_up(result):
    s = result.summary
    assert s.schema == SUMMARY_SCHEMA
    rows = s.to_pylist()
    order = {m: i for i, m in enumerate(MEASURES)}
    keys = [
        (
            r["period_start"],
            r["period_end"],
            order[r["measure"]],
            r["product"] != "all",
            r["product"],
        )
        for r in rows
    ]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert s.num_rows == len(MEASURES) * (1 + 3)  # 2024: all; 2025: all, medicaid, part_d
    for r in rows:
        assert r["denominator"] + r["excluded"] == r["eligible"]
        assert 0 <= r["numerator"] <= r["denominator"]
        want = r["numerator"] / r["denominator"] if r["denominator"] else None
        assert r["rate"] == want
    for (p0, m), group in _groups(rows).items():
        total = next(r for r in group if r["product"] == "all")
        for col in ("eligible", "excluded", "denominator", "numerator"):
            assert total[col] == sum(r[col] for r in group if r["product"] != "all"), (p0, m)


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["period_start"], r["measure"]), []).append(r)
    return out


def test_summary_matches_the_detail_flags(result):
    detail = result.detail.to_pylist()
    for m in MEASURES:
        r = _row(result.summary, m)
        assert r["denominator"] == sum(x[f"{m}_denominator"] for x in detail)
        assert r["numerator"] == sum(x[f"{m}_numerator"] for x in detail)


def test_detail_schema_and_order(result):
    t = result.detail
    types = dict(zip(t.schema.names, t.schema.types, strict=True))
    assert types["member_id"] == pa.string()
    assert types["period_start"] == types["ipsd"] == types["episode_start"] == pa.date32()
    assert types["avg_mme"] == pa.float64() and types["age"] == pa.int64()
    assert types["opioid_claims"] == types["covered_62"] == pa.int64()
    assert [n for n in t.schema.names if n.endswith(("_denominator", "_numerator"))] == [
        f"{m}_{part}" for m in MEASURES for part in ("denominator", "numerator")
    ]
    keys = list(
        zip(t.column("member_id").to_pylist(), t.column("period_start").to_pylist(), strict=True)
    )
    assert keys == sorted(keys)


def test_integer_member_ids_keep_their_type(book):
    pharmacy, medical, eligibility, members = book
    number = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7}

    def ints(t):
        ids = [number[m] for m in t.column("member_id").to_pylist()]
        return t.set_column(0, "member_id", pa.array(ids, pa.int64()))

    r = rxrisk.measures(
        ints(pharmacy), ints(medical), eligibility=ints(eligibility), members=ints(members),
        periods=2025,
    )  # fmt: skip
    assert r.detail.schema.field("member_id").type == pa.int64()
    assert r.detail.column("member_id").to_pylist() == [1, 2, 6]


def test_audit_shape_and_counts(result, book):
    a = result.audit
    assert list(a) == [
        "pharmacy",
        "medical",
        "eligibility",
        "members",
        "members_eligible",
        "periods",
        "settings",
        "seconds",
        "version",
        "config_digest",
        "warnings",
    ]
    pharmacy, medical, eligibility, members = book
    for label, table in (
        ("pharmacy", pharmacy),
        ("medical", medical),
        ("eligibility", eligibility),
        ("members", members),
    ):
        block = a[label]
        assert block["rows_read"] == table.num_rows == sum(block["buckets"].values())
    assert set(a["eligibility"]["buckets"]) == set(a["members"]["buckets"]) == {"rejected", "used"}
    assert list(a["eligibility"]["rejected_by_reason"]) == ["member_id", "start_date", "end_date"]
    assert list(a["members"]["rejected_by_reason"]) == ["member_id", "birth_date", "duplicate"]
    assert a["periods"] == [["2024-01-01", "2024-12-31"], ["2025-01-01", "2025-12-31"]]
    assert a["settings"]["high_dose_average_mme"] == 90.0
    assert a["version"] == rxrisk.__version__ and a["warnings"] == []
    assert {"read", "validate", "enrollment", "encode", "measures", "summary"} <= set(a["seconds"])


def test_absent_medical_has_a_zero_block(book):
    pharmacy, _, eligibility, members = book
    r = rxrisk.measures(pharmacy, eligibility=eligibility, members=members, periods=2025)
    assert r.audit["medical"]["rows_read"] == 0
    assert set(r.audit["medical"]["buckets"]) == {"rejected", "unclassified", "used"}
    assert _row(r.summary, "high_dose_average")["excluded"] == 0  # F's cancer code is gone


def test_rejected_rows_warn_and_go_to_the_quarantine(book):
    pharmacy, medical, eligibility, members = book
    bad = pa.concat_tables([members, members.slice(0, 1)])  # A twice: a duplicate
    r = rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=bad, periods=2025, quarantine=True,
        max_reject_share=1.0,
    )  # fmt: skip
    assert r.audit["members"]["rejected_by_reason"]["duplicate"] == 1
    assert any(w.startswith("members duplicate: 1 of 7") for w in r.audit["warnings"])
    q = r.quarantine.to_pylist()
    assert [(x["source"], x["row_number"], x["reject_reason"]) for x in q] == [
        ("members", 7, "duplicate")
    ]
    assert rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=members, periods=2025
    ).quarantine is None  # fmt: skip


def test_streamed_gives_the_same_outputs(book, result):
    pharmacy, medical, eligibility, members = book
    r = rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=members, periods=[2024, 2025],
        stream=StreamOptions(batch_rows=3, partitions=2),
    )  # fmt: skip
    assert r.detail.equals(result.detail) and r.summary.equals(result.summary)
    assert r.audit["members_eligible"] == result.audit["members_eligible"]
    for label in ("pharmacy", "medical", "eligibility", "members"):
        assert r.audit[label] == result.audit[label]


# ------------------------------------------------------------------ the measures file


def test_config_file_replaces_thresholds(book, result, tmp_path):
    pharmacy, medical, eligibility, members = book
    path = tmp_path / "measures.toml"
    path.write_text("[high_dose]\nhigh_dose_average_mme = 200\n\n[eligible]\nmin_age = 10\n")
    r = rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=members, periods=2025, config=path
    )
    assert r.detail.column("member_id").to_pylist() == ["A", "B", "E", "F"]  # E is 10
    assert _row(r.summary, "high_dose_average")["numerator"] == 0  # 180 < 200
    assert _row(r.summary, "high_dose_sustained") != _row(result.summary, "high_dose_sustained")
    assert r.audit["settings"]["high_dose_average_mme"] == 200.0
    assert r.audit["config_digest"] != result.audit["config_digest"]
    same = rxrisk.measures(
        pharmacy, medical, eligibility=eligibility, members=members, periods=2025,
        config={"high_dose": {"high_dose_average_mme": 200}, "eligible": {"min_age": 10}},
    )  # fmt: skip
    assert (
        same.summary.equals(r.summary) and same.audit["config_digest"] == r.audit["config_digest"]
    )


# ------------------------------------------------------------------ periods


Y2025 = [[d(2025, 1, 1), d(2025, 12, 31)]]


@pytest.mark.parametrize(
    ("periods", "want"),
    [
        (2025, Y2025),
        (np.int64(2025), Y2025),
        ("2025", Y2025),
        ([2025], Y2025),
        (("2025",), Y2025),
        ("2025-01-01:2025-12-31", Y2025),
        ("20250101:20251231", Y2025),
        (("2025-01-01", "2025-12-31"), Y2025),
        ([("2025-01-01", "2025-12-31")], Y2025),
        ([(d(2025, 1, 1), d(2025, 12, 31))], Y2025),
        (np.array(["2025-01-01", "2025-12-31"], "datetime64[D]"), Y2025),
        ("2025,2024", [[d(2024, 1, 1), d(2024, 12, 31)], *Y2025]),
        ([2025, "2024"], [[d(2024, 1, 1), d(2024, 12, 31)], *Y2025]),
        (
            ["2025-07-01:2025-12-31", "2025-01-01:2025-06-30"],
            [[d(2025, 1, 1), d(2025, 6, 30)], [d(2025, 7, 1), d(2025, 12, 31)]],
        ),
        (
            [("2025-01-01", "2025-03-31"), ("2025-01-01", "2025-03-31")],
            [[d(2025, 1, 1), d(2025, 3, 31)]],
        ),
    ],
)
def test_periods_forms(periods, want):
    days = periods_of(periods)
    assert days.dtype == np.int32 and days.shape == (len(want), 2)
    assert [[(d(1970, 1, 1) + dt.timedelta(int(x))) for x in row] for row in days] == want


@pytest.mark.parametrize(
    ("periods", "needle"),
    [
        (None, "periods= is required"),
        ([], "periods= is empty"),
        ("", "periods= is empty"),
        (2025.0, "periods 2025.0 (float)"),
        (True, "periods True (bool)"),
        (d(2025, 1, 1), "periods datetime.date(2025, 1, 1) (date)"),
        ({"2025": 1}, "(dict)"),
        (1850, "is not a year"),
        ("2025-12-31:2025-01-01", "the end is before the start"),
        ("2025-02-30:2025-12-31", "does not exist"),
        ("2025-01-01", "write START:END"),
    ],
)
def test_bad_periods_are_one_line(book, periods, needle):
    pharmacy, medical, eligibility, members = book
    with pytest.raises(InputError) as e:
        rxrisk.measures(
            "/no/such/file.parquet", eligibility=eligibility, members=members, periods=periods
        )
    assert needle in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"eligibility": None}, "eligibility= is required"),
        ({"members": None}, "members= is required"),
        ({"quarantine": "yes"}, "quarantine 'yes': give True or False"),
        ({"stream": "fast"}, "stream 'fast': give True, False or"),
        ({"config": 3}, "measures config: cannot use an object of type int"),
        ({"config": "/no/such/measures.toml"}, "cannot be read"),
        ({"config": {"high_dose": {"high_dose_mme": -1}}}, "[high_dose] high_dose_mme = -1"),
        ({"threads": 0}, "threads 0: give a whole number between 1 and 1,024"),
        ({"max_reject_share": 2}, "max reject share 2: give a share from 0 to 1"),
        ({"date_format": "%Y"}, "date format '%Y'"),
        ({"rules": 3}, "rules= cannot be an object of type int"),
    ],
)
def test_bad_arguments_are_refused_before_reading(book, kw, needle):
    _, _, eligibility, members = book
    args = {"eligibility": eligibility, "members": members, "periods": 2025, **kw}
    with pytest.raises(InputError) as e:
        rxrisk.measures("/no/such/file.parquet", **args)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_missing_eligibility_column_is_one_line(book):
    pharmacy, medical, eligibility, members = book
    with pytest.raises(InputError) as e:
        rxrisk.measures(
            pharmacy, eligibility=eligibility.drop(["start_date"]), members=members, periods=2025
        )
    assert "start_date" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ summary alone


def test_summary_of_an_empty_detail(result):
    empty = result.detail.slice(0, 0)
    days = periods_of("2025")
    s = summary_table(empty, days, rxrisk.quality.settings.load_measure_settings())
    assert s.schema == SUMMARY_SCHEMA and s.num_rows == len(MEASURES)
    assert s.column("rate").null_count == len(MEASURES)


def test_summary_counts_a_null_product_as_unspecified(result):
    detail = result.detail
    i = detail.schema.get_field_index("product")
    detail = detail.set_column(i, "product", pa.nulls(detail.num_rows, pa.string()))
    s = summary_table(
        detail, periods_of("2024,2025"), rxrisk.quality.settings.load_measure_settings()
    )
    assert sorted({r["product"] for r in s.to_pylist()}) == ["all", "unspecified"]


def test_quarantine_of_inputs_with_different_column_types():
    from rxrisk.quality.run import _rejected

    claims = pa.table(
        {
            "source": ["pharmacy"],
            "row_number": pa.array([1], pa.int64()),
            "reject_reason": ["ndc"],
            "member_id": ["X"],
        }
    )
    people = pa.table(
        {
            "source": ["members"],
            "row_number": pa.array([2], pa.int64()),
            "reject_reason": ["duplicate"],
            "member_id": pa.array([5], pa.int64()),
            "birth_date": ["1/1/1960"],
        }
    )
    q = _rejected(claims, people)
    assert q.schema.field("member_id").type == pa.string()
    assert q.column("member_id").to_pylist() == ["X", "5"]
    assert q.column("birth_date").to_pylist() == [None, "1/1/1960"]


@pytest.mark.parametrize("stream", [None, True])
def test_a_product_named_all_is_refused(book, stream):
    pharmacy, medical, eligibility, members = book
    i = eligibility.schema.get_field_index("product")
    renamed = eligibility.set_column(i, "product", pa.array(["all"] * eligibility.num_rows))
    with pytest.raises(InputError) as e:
        rxrisk.measures(pharmacy, eligibility=renamed, members=members, periods=2025, stream=stream)
    assert "column product has the value 'all'" in str(e.value) and "\n" not in str(e.value)


def test_periods_sharing_a_start_are_counted_apart(book):
    pharmacy, medical, eligibility, members = book
    r = rxrisk.measures(
        pharmacy,
        medical,
        eligibility=eligibility,
        members=members,
        periods="2025-01-01:2025-01-31,2025-01-01:2025-12-31",
    )
    january = [r for r in r.summary.to_pylist() if r["period_end"] == d(2025, 1, 31)]
    assert [x["eligible"] for x in january if x["product"] == "all"] == [0] * len(MEASURES)
    rows = r.summary.filter(pc.equal(r.summary.column("period_end"), d(2025, 12, 31)))
    year = _row(rows, "high_dose_average")
    assert (year["eligible"], year["denominator"], year["numerator"]) == (3, 2, 1)

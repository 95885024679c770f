"""Sources, schema checks and the row buckets of SPEC 1.4-1.5."""

import datetime as dt
import gzip

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.errors import InputError
from rxrisk.ingest.validate import normalize_ndc


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345678901", "12345678901"),
        ("12345-6789-01", "12345678901"),
        ("1234-5678-90", "01234567890"),
        ("12345-678-90", "12345067890"),
        ("12345-6789-0", "12345678900"),
        ("12 345 6789 01", "12345678901"),
        ("1234567890", None),
        ("123456789012", None),
        ("12345-67890-1", None),
        ("1234A678901", None),
        ("123-45678-90", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_ndc(raw, expected):
    assert normalize_ndc(pa.array([raw], pa.string())).to_pylist() == [expected]


def test_buckets_add_up_and_follow_spec(small_book):
    ph, md = small_book
    r = rxrisk.score(ph, md, as_of="2025-12-31", quarantine=True)
    a = r.audit["pharmacy"]
    assert a["rows_read"] == 10 == sum(a["buckets"].values())
    # c4 paid + c4 reversal (negated quantity is fine on the reversal) -> reversed + reversal;
    # untracked NDC; empty member; bad NDC; null fill date.
    assert a["buckets"] == {
        "rejected": 3,
        "reversal": 1,
        "reversed": 1,
        "duplicate": 0,
        "untracked": 1,
        "used": 4,
    }
    assert a["rejected_by_reason"] == {
        "member_id": 1,
        "fill_date": 1,
        "ndc": 1,
        "claim_status": 0,
        "quantity": 0,
        "days_supply": 0,
    }
    m = r.audit["medical"]
    assert m["buckets"] == {"rejected": 1, "unclassified": 1, "used": 2}
    assert m["rows_read"] == sum(m["buckets"].values())
    q = r.quarantine
    assert q.column("reject_reason").to_pylist() == ["member_id", "ndc", "fill_date", "member_id"]
    assert q.column("source").to_pylist() == ["pharmacy"] * 3 + ["medical"]
    assert q.column("row_number").to_pylist() == [8, 9, 10, 4]
    # rows as read: the empty member id is kept as it was
    assert q.column("member_id").to_pylist()[0] == ""


def test_reason_order_and_reversal_checks():
    d = dt.date(2025, 1, 1)
    ph = pa.table(
        {
            "member_id": [None, "A", "A", "A", "A", "A", "A"],
            "fill_date": [None, None, d, d, d, d, d],
            "ndc": [
                "bad",
                "bad",
                "bad",
                "00054466525",
                "00054466525",
                "00054466525",
                "00054466525",
            ],
            "quantity": [0.0, 0.0, 0.0, 0.0, float("nan"), 10.0, -5.0],
            "days_supply": [0, 0, 0, 0, 400, 0, -5],
            "claim_status": ["X", "X", "X", "X", "paid", "paid", "reversed"],
        }
    )
    r = rxrisk.score(ph, as_of="2025-12-31", quarantine=True)
    # the NDC is tested first: the first three rows are rejected for it
    assert r.quarantine.column("reject_reason").to_pylist() == [
        "ndc",
        "ndc",
        "ndc",
        "claim_status",
        "quantity",
        "days_supply",
    ]
    assert r.audit["pharmacy"]["buckets"]["reversal"] == 1


def test_duplicates_keep_first_and_reversal_matches_all_paid():
    d = dt.date(2025, 6, 1)
    ndc = "00054466525"
    ph = pa.table(
        {
            "member_id": ["A"] * 6,
            "fill_date": [d] * 6,
            "ndc": [ndc] * 6,
            "quantity": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "days_supply": [1, 1, 1, 1, 1, 1],
            "claim_id": ["x", "x", "y", "y", "y", None],
            "claim_status": ["paid", "paid", "paid", "paid", "reversed", "paid"],
        }
    )
    r = rxrisk.score(ph, as_of="2025-12-31")
    assert r.audit["pharmacy"]["buckets"] == {
        "rejected": 0,
        "reversal": 1,
        "reversed": 2,
        "duplicate": 1,
        "untracked": 0,
        "used": 2,
    }


class _Stream:
    """An object that only speaks the Arrow C stream protocol (like polars or pandas)."""

    def __init__(self, table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_every_source_kind_gives_the_same_members(small_book, tmp_path):
    ph, md = small_book
    expected = rxrisk.score(ph, md, as_of="2025-12-31").members
    pq.write_table(ph, tmp_path / "ph.parquet")
    (tmp_path / "folder").mkdir()
    pq.write_table(ph.slice(0, 4), tmp_path / "folder" / "part-0.parquet")
    pq.write_table(ph.slice(4), tmp_path / "folder" / "part-1.parquet")
    with ipc.new_file(tmp_path / "ph.arrow", ph.schema) as w:
        w.write_table(ph)
    pacsv.write_csv(ph, tmp_path / "ph.csv")
    with gzip.open(tmp_path / "ph.csv.gz", "wb") as f:
        f.write((tmp_path / "ph.csv").read_bytes())
    sources = [
        ph.to_reader(),
        _Stream(ph),
        tmp_path / "ph.parquet",
        str(tmp_path / "folder"),
        tmp_path / "ph.arrow",
        tmp_path / "ph.csv",
        tmp_path / "ph.csv.gz",
    ]
    for src in sources:
        got = rxrisk.score(src, md, as_of="2025-12-31").members
        assert got.equals(expected), src


def test_integer_member_ids_keep_their_type(small_book):
    ph, _ = small_book
    ph = ph.set_column(0, "member_id", pa.array([1, 1, 1, 2, 2, 3, 3, None, 4, 4], pa.int64()))
    r = rxrisk.score(ph, as_of="2025-12-31")
    assert r.members.schema.field("member_id").type == pa.int64()
    assert r.members.column("member_id").to_pylist() == [1, 3]  # member 2 only has a reversed claim


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda t: t.drop_columns(["days_supply"]), "missing required column 'days_supply'"),
        (
            lambda t: t.set_column(2, "ndc", pa.array(range(10), pa.int64())),
            "column 'ndc' has type int64; expected string",
        ),
        (
            lambda t: t.set_column(1, "fill_date", pa.array([True] * 10)),
            "column 'fill_date' has type bool; expected date",
        ),
        (
            lambda t: t.set_column(3, "quantity", pa.array([[1]] * 10)),
            "column 'quantity' has type list<item: int64>; expected float",
        ),
        (
            lambda t: t.set_column(0, "member_id", pa.array([1.5] * 10)),
            "column 'member_id' has type double; expected string or integer",
        ),
    ],
)
def test_schema_errors_name_column_and_types(small_book, change, needle):
    ph, _ = small_book
    with pytest.raises(InputError) as info:
        rxrisk.score(change(ph), as_of="2025-12-31")
    assert needle in str(info.value)


def test_text_columns_are_parsed_per_row(ndcs):
    ph = pa.table(
        {
            "member_id": ["A", "A", "A", "A"],
            "fill_date": ["2025-12-01", "2025-13-01", " 2025-12-02 ", "12/01/2025"],
            "ndc": [ndcs["oxy30"]] * 4,
            "quantity": ["10", "10", "ten", "10"],
            "days_supply": ["5", "5", "5", "5.0"],
        }
    )
    r = rxrisk.score(ph, as_of="2025-12-31")
    assert r.audit["pharmacy"]["rejected_by_reason"]["fill_date"] == 2
    assert r.audit["pharmacy"]["rejected_by_reason"]["quantity"] == 1
    assert r.audit["pharmacy"]["buckets"]["used"] == 1


def test_bad_as_of_is_a_usage_error(small_book):
    ph, _ = small_book
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        rxrisk.score(ph, as_of="2025-02-30")


def test_same_bytes_whatever_the_thread_count(small_book):
    import numba

    ph, md = small_book
    before = numba.get_num_threads()
    try:
        one = rxrisk.score(ph, md, as_of=["2025-06-30", "2025-12-31"], threads=1)
        two = rxrisk.score(ph, md, as_of=["2025-06-30", "2025-12-31"], threads=2)
    finally:
        numba.set_num_threads(before)
    assert one.members.equals(two.members)
    strip = lambda a: {k: v for k, v in a.items() if k != "seconds"}  # noqa: E731
    assert strip(one.audit) == strip(two.audit)


def test_all_members_adds_zero_rows_for_every_member_seen(small_book):
    ph, md = small_book
    r = rxrisk.score(ph, md, as_of="2025-12-31", all_members=True)
    # A, B (reversed only), C, D (bad ndc + null date rows), E (medical); not the empty id
    assert r.members.column("member_id").to_pylist() == ["A", "B", "C", "D", "E"]
    b = r.members.filter(pa.compute.equal(r.members["member_id"], "B")).to_pylist()[0]
    assert b["opioid_fills_365d"] == 0 and b["reasons"] == [] and b["mme_avg_180d"] == 0.0
    assert r.audit["members_scored"] == 5

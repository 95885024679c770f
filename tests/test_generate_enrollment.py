"""The synthetic book's eligibility spans and members (rxrisk.synthetic.enrollment).

The book writes ``eligibility.parquet`` and ``members.parquet`` beside the claims, from a random
stream of their own: the claims of a seed are the same with or without them (and the same as
before the tables existed). The mix of enrollment patterns is checked here by an independent
reading of the spans (gaps, joiners, leavers, switches, overlaps) for the measurement year.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import rxrisk.synthetic.writer as gen
from rxrisk.cli import main as cli_main
from rxrisk.config.reference import load_reference
from rxrisk.synthetic import ELIGIBILITY_SCHEMA, MEMBERS_SCHEMA, PHARMACY_SCHEMA, generate_book
from rxrisk.synthetic.enrollment import PATTERNS, ages_on_january_first, measurement_year

MEMBERS = 20_000
YEAR = 2025
P0, P1 = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)

#: Content digests of the claims of ``generate_book(members=2_000, seed=7)`` recorded before the
#: eligibility and members tables were added (see :func:`_digest`); the medical one again when
#: the medical rows of one event stopped depending on how numpy's sort breaks ties (it picks
#: its sort by the CPU's vector units: the old digest held only on machines without AVX-512).
CLAIMS_DIGESTS = {
    "pharmacy": "0cdc7a1965677234",
    "medical": "8ef70603aa5bc5f3",
}


def _digest(table: pa.Table) -> str:
    """A digest of a table's values, independent of the Parquet writer's version."""
    h = hashlib.sha256()
    for name in table.column_names:
        h.update(name.encode())
        h.update(repr(table[name].to_pylist()).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("enrolled")
    summary = generate_book(out, members=MEMBERS, seed=11)
    tables = {k: pq.read_table(out / f"{k}.parquet") for k in gen._SCHEMAS}
    return out, summary, tables


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _spans_by_member(elig: pa.Table) -> dict[str, list[tuple[int, int, str]]]:
    """member -> [(start, end, product)], end = a far day when open-ended."""
    start = elig["start_date"].cast(pa.int32()).to_numpy()
    end = pc.fill_null(elig["end_date"].cast(pa.int32()), 10**8).to_numpy()
    out: dict[str, list] = {}
    rows = zip(elig["member_id"].to_pylist(), start, end, elig["product"].to_pylist(), strict=True)
    for m, s, e, p in rows:
        out.setdefault(m, []).append((int(s), int(e), p))
    return out


def _year_reading(spans: list[tuple[int, int, str]]) -> dict:
    """Gaps (lengths, in order) of the year, whether p1 is covered, products, overlaps."""
    p0, p1 = _day(P0), _day(P1)
    cov = np.zeros(p1 - p0 + 1, bool)
    for s, e, _ in spans:
        lo, hi = max(s, p0), min(e, p1)
        if lo <= hi:
            cov[lo - p0 : hi - p0 + 1] = True
    edges = np.diff(np.concatenate([[1], cov.astype(np.int8), [1]]))
    gaps = (np.flatnonzero(edges == 1) - np.flatnonzero(edges == -1)).tolist()
    ordered = sorted(spans)
    overlap = any(b[0] <= a[1] for a, b in zip(ordered, ordered[1:], strict=False))
    touch = any(b[0] == a[1] + 1 for a, b in zip(ordered, ordered[1:], strict=False))
    in_year = {p for s, e, p in spans if s <= p1 and e >= p0}
    return {
        "gaps": gaps,
        "first_gap_at_start": bool(gaps) and not cov[0],
        "covers_p1": bool(cov[-1]),
        "products_in_year": in_year,
        "overlap": overlap,
        "touch": touch,
    }


@pytest.fixture(scope="module")
def readings(book):
    _, _, t = book
    return {m: _year_reading(s) for m, s in _spans_by_member(t["eligibility"]).items()}


def _ages(members: pa.Table) -> dict[str, int]:
    out = {}
    for m, b in zip(
        members["member_id"].to_pylist(), members["birth_date"].to_pylist(), strict=True
    ):
        out[m] = P0.year - b.year - ((P0.month, P0.day) < (b.month, b.day))
    return out


# ---------------------------------------------------------------------------------------------
def test_files_schemas_and_ids(book):
    out, summary, t = book
    elig, members, ph = t["eligibility"], t["members"], t["pharmacy"]
    assert elig.schema.equals(ELIGIBILITY_SCHEMA) and members.schema.equals(MEMBERS_SCHEMA)
    assert elig.schema.field("member_id").type == PHARMACY_SCHEMA.field("member_id").type
    assert (
        elig.schema.field("start_date").type
        == pa.date32()
        == members.schema.field("birth_date").type
    )
    assert elig["start_date"].null_count == 0 and members["birth_date"].null_count == 0
    assert 0.2 * elig.num_rows < elig["end_date"].null_count < 0.7 * elig.num_rows  # open-ended
    ends = elig.filter(pc.is_valid(elig["end_date"]))
    assert pc.all(pc.greater_equal(ends["end_date"], ends["start_date"])).as_py()
    assert set(elig["product"].unique().to_pylist()) == {"part_d", "medicaid", "commercial"}
    assert summary["measurement_year"] == YEAR
    assert summary["eligibility_rows"] == elig.num_rows == summary["rows"]["eligibility"]
    assert summary["members_rows"] == members.num_rows == summary["rows"]["members"]
    assert summary["paths"]["eligibility"] == str(out / "eligibility.parquet")
    # members: clean, one row per id; ids as in the claims
    ids = members["member_id"].to_pylist()
    assert len(set(ids)) == len(ids)
    claims_ids = {f"M{i:08d}" for i in range(1, MEMBERS + 1)}
    assert {x.strip() for x in ph["member_id"].drop_null().to_pylist() if x.strip()} <= claims_ids
    elig_ids = set(elig["member_id"].to_pylist())
    # a few claims members without eligibility, a few eligibility members without claims
    no_elig = claims_ids - elig_ids
    extra = elig_ids - claims_ids
    counts = summary["enrollment"]
    assert len(no_elig) == counts["no_eligibility"] and 0.005 < len(no_elig) / MEMBERS < 0.02
    assert len(extra) == counts["extra_members"] and 0.002 < len(extra) / MEMBERS < 0.01
    assert all(int(x[1:]) > MEMBERS for x in extra)
    # every eligibility member has a members row but a few
    no_row = elig_ids - set(ids)
    assert len(no_row) == counts["no_members_row"] and 0 < len(no_row) < 0.01 * MEMBERS
    assert set(ids) <= claims_ids | extra
    assert sum(counts[p] for p in PATTERNS) == MEMBERS + len(extra)


def test_enrollment_mix(book, readings):
    _, summary, _ = book
    n = len(readings)
    r = list(readings.values())
    all_year = sum(not x["gaps"] for x in r)
    assert 0.75 < all_year / n < 0.92, all_year / n
    one_gap = [x["gaps"][0] for x in r if len(x["gaps"]) == 1 and x["covers_p1"]]
    assert sum(g <= 45 for g in one_gap) > 0.03 * n and sum(g > 45 for g in one_gap) > 0.03 * n
    assert 45 in one_gap and 46 in one_gap  # the boundary cases
    assert sum(len(x["gaps"]) == 2 and x["covers_p1"] for x in r) > 0.01 * n
    joiners = [x["gaps"][0] for x in r if x["first_gap_at_start"] and x["covers_p1"]]
    assert sum(g <= 45 for g in joiners) > 0.005 * n and sum(g > 45 for g in joiners) > 0.01 * n
    assert sum(not x["covers_p1"] for x in r) > 0.02 * n  # leavers
    switches = sum(len(x["products_in_year"]) == 2 and not x["gaps"] for x in r)
    assert switches > 0.02 * n
    assert sum(x["overlap"] for x in r) > 0.01 * n and sum(x["touch"] for x in r) > 0.05 * n
    # the summary's pattern counts are what was drawn
    counts = summary["enrollment"]
    assert 0.65 < counts["full_year"] / n < 0.8 and counts["two_gaps"] > 0.01 * n


def test_ages_and_products(book):
    _, summary, t = book
    members, elig = t["members"], t["eligibility"]
    ages = _ages(members)
    values = np.array(list(ages.values()))
    assert 0.12 < (values < 18).mean() < 0.3 and (values > 85).sum() > 0.01 * len(values)
    assert values.min() >= 0 and values.max() <= 110
    births = members["birth_date"].to_pylist()
    feb29 = sum(b.month == 2 and b.day == 29 for b in births)
    assert feb29 > 0.002 * len(births)  # about three times the natural share
    assert summary["enrollment"]["feb_29"] > 0.002 * len(births)
    # around 18 on 1 January: born within three days of it, on both sides
    near = Counter(
        ages[m]
        for m, b in zip(members["member_id"].to_pylist(), births, strict=True)
        if abs((b - dt.date(YEAR - 18, 1, 1)).days) <= 3
    )
    assert near[17] > 10 and near[18] > 10
    # products follow age: part_d mostly 65 and over
    product = {}
    for m, p in zip(elig["member_id"].to_pylist(), elig["product"].to_pylist(), strict=True):
        product.setdefault(m, p)  # the first span's
    part_d = [ages[m] for m, p in product.items() if p == "part_d" and m in ages]
    assert np.mean(np.array(part_d) >= 65) > 0.8
    old = [p for m, p in product.items() if ages.get(m, 0) >= 65]
    assert Counter(old)["part_d"] / len(old) > 0.75
    young = [p for m, p in product.items() if ages.get(m, 99) < 65]
    assert Counter(young)["part_d"] / len(young) < 0.06
    children = {m for m, a in ages.items() if a < 18}
    rows = zip(elig["member_id"].to_pylist(), elig["product"].to_pylist(), strict=True)
    assert not [m for m, p in rows if p == "part_d" and m in children]


def test_opioid_users_are_adults(book):
    """Chronic users and shoppers are drawn as adults, so the measures' denominators hold them."""
    _, _, t = book
    ph, ages = t["pharmacy"], _ages(t["members"])
    ref = load_reference()
    opioid = set(ref.filter(pc.equal(ref["drug_class"], "opioid"))["ndc"].to_pylist())
    rows = zip(ph["member_id"].to_pylist(), ph["ndc"].to_pylist(), strict=True)
    fills = Counter(m.strip() for m, ndc in rows if m and ndc in opioid)
    heavy = [m for m, k in fills.items() if k >= 6 and m in ages]
    assert len(heavy) > 0.015 * MEMBERS
    assert np.mean([ages[m] < 18 for m in heavy]) < 0.03  # a fifth of all members are children


def test_claims_unchanged(tmp_path):
    """The claims of a seed are those written before the enrollment tables existed, and the
    same with the tables switched off."""
    on = generate_book(tmp_path / "on", members=2_000, seed=7)
    off = generate_book(tmp_path / "off", members=2_000, seed=7, enrollment=False)
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == [
        "medical.parquet",
        "pharmacy.parquet",
    ]
    for name in ("pharmacy.parquet", "medical.parquet"):
        assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes()
    for kind, digest in CLAIMS_DIGESTS.items():
        assert _digest(pq.read_table(tmp_path / "on" / f"{kind}.parquet")) == digest, kind
    assert off["enrollment"] is None and off["eligibility_rows"] is None
    assert on["rows"]["pharmacy"] == off["rows"]["pharmacy"]
    # another seed, other enrollment
    generate_book(tmp_path / "other", members=2_000, seed=8)
    for name in ("eligibility.parquet", "members.parquet"):
        assert (tmp_path / "other" / name).read_bytes() != (tmp_path / "on" / name).read_bytes()


def test_written_block_by_block(tmp_path, monkeypatch):
    """Each block of members is its own row group, its extra members after its claims members."""
    monkeypatch.setattr(gen, "BLOCK_MEMBERS", 1_000)
    generate_book(tmp_path, members=3_000, seed=4)
    for kind in ("eligibility", "members"):
        meta = pq.ParquetFile(tmp_path / f"{kind}.parquet").metadata
        assert meta.num_row_groups == 3, kind
    elig = pq.ParquetFile(tmp_path / "eligibility.parquet")
    for block in range(3):
        numbers = [int(x[1:]) for x in elig.read_row_group(block)["member_id"].to_pylist()]
        own = [x for x in numbers if x <= 3_000]
        extra = [x for x in numbers if x > 3_000]
        assert own == sorted(own) and block * 1_000 < min(own) and max(own) <= (block + 1) * 1_000
        assert extra and numbers[-len(extra) :] == sorted(extra)
        assert all(3_000 + block * 1_000 < x <= 3_000 + (block + 1) * 1_000 for x in extra)


@pytest.mark.parametrize(
    ("start", "end", "year"),
    [
        (dt.date(2025, 1, 1), dt.date(2025, 12, 31), 2025),
        (dt.date(2024, 3, 1), dt.date(2025, 12, 31), 2025),
        (dt.date(2024, 1, 1), dt.date(2025, 6, 30), 2024),
        (dt.date(2023, 7, 2), dt.date(2024, 7, 1), 2024),  # 183 days each: the latest
        (dt.date(2025, 5, 1), dt.date(2025, 5, 31), 2025),
    ],
)
def test_measurement_year(start, end, year):
    assert measurement_year(start, end) == year


def test_spans_follow_the_measurement_year(tmp_path):
    summary = generate_book(
        tmp_path, members=3_000, seed=2, start=dt.date(2023, 1, 1), end=dt.date(2024, 9, 30)
    )
    assert summary["measurement_year"] == 2023
    elig = pq.read_table(tmp_path / "eligibility.parquet")
    ends = [d for d in elig["end_date"].drop_null().to_pylist() if d < dt.date(2024, 9, 30)]
    # leavers and gaps end inside 2023; full-year members run past the book's end
    assert sum(d.year == 2023 for d in ends) > 50
    starts = elig["start_date"].to_pylist()
    assert sum(d.year == 2023 and d > dt.date(2023, 1, 1) for d in starts) > 50


def test_cli_generate_writes_enrollment(tmp_path, capsys):
    assert cli_main(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "eligibility.parquet" in text and "--year 2025" in text
    out = tmp_path / "b"
    assert (
        cli_main(["generate", "--members", "50", "--seed", "1", "--out", str(out), "--quiet"]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "eligibility.parquet",
        "medical.parquet",
        "members.parquet",
        "pharmacy.parquet",
    ]
    (tmp_path / "g" / "members.parquet").mkdir(parents=True)
    assert cli_main(["generate", "--members", "10", "--out", str(tmp_path / "g")]) == 2
    assert "is in the way" in capsys.readouterr().err


def test_ages_on_january_first():
    def day(y, m, d):
        return (dt.date(y, m, d) - dt.date(1970, 1, 1)).days

    births = np.array([day(2007, 1, 1), day(2007, 1, 2), day(2006, 12, 31), day(2024, 2, 29)])
    assert ages_on_january_first(births, 2025).tolist() == [18, 17, 18, 0]
    assert ages_on_january_first(np.array([day(2000, 2, 29)]), 2100).tolist() == [99]

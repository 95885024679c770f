"""The synthetic book of business (rxrisk.synthetic): schemas, determinism, rates, defects.

Two books are generated once per module: a small one (2,000 members) for schemas, determinism
and defects, and a 20,000-member one for rates and the rarer events (overdoses, MAT, shoppers).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import rxrisk.synthetic.writer as gen
from rxrisk import score
from rxrisk.cli import main as cli_main
from rxrisk.config.reference import DRUG_CLASSES, load_reference
from rxrisk.ingest.sources import read_source
from rxrisk.synthetic import (
    MEDICAL_SCHEMA,
    PHARMACY_DEFECTS,
    PHARMACY_ODDITIES,
    PHARMACY_SCHEMA,
    generate_book,
)

SMALL = 2_000
LARGE = 20_000
_KINDS = ["pharmacy", "medical", "eligibility", "members"]  # the tables, in summary order
_KINDS_SORTED = sorted(_KINDS)


def _read(out):
    return pq.read_table(out / "pharmacy.parquet"), pq.read_table(out / "medical.parquet")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    summary = generate_book(out, members=SMALL, seed=7)
    return out, summary, *_read(out)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    out = tmp_path_factory.mktemp("large")
    summary = generate_book(out, members=LARGE, seed=11)
    return out, summary, *_read(out)


@pytest.fixture(scope="module")
def reference():
    return load_reference()


def _strip(col):
    return pc.utf8_trim_whitespace(col)


def _status(ph):
    return pc.utf8_lower(_strip(ph["claim_status"])).to_pylist()


def _norm_ndc(x):
    """SPEC 1.4, independently of the engine's implementation."""
    if x is None:
        return None
    x = x.replace(" ", "")
    if re.fullmatch(r"\d{11}", x):
        return x
    m = re.fullmatch(r"(\d+)-(\d+)-(\d+)", x)
    if not m:
        return None
    a, b, c = m.groups()
    forms = {
        (4, 4, 2): "0" + a + b + c,
        (5, 3, 2): a + "0" + b + c,
        (5, 4, 1): a + b + "0" + c,
        (5, 4, 2): a + b + c,
    }
    return forms.get((len(a), len(b), len(c)))


def _valid_paid(ph):
    """Rows a scorer would use or count as untracked (SPEC 1.5), as a boolean numpy mask."""
    st = np.array(_status(ph), dtype=object)
    paid = np.isin(st, ["paid", "p", "", None]) | np.array([s is None for s in st])
    member = pc.fill_null(pc.not_equal(_strip(ph["member_id"]), ""), False).to_numpy(
        zero_copy_only=False
    )
    dated = ph["fill_date"].is_valid().to_numpy(zero_copy_only=False)
    ndc_ok = np.array([_norm_ndc(x) is not None for x in ph["ndc"].to_pylist()])
    q = ph["quantity"].to_numpy(zero_copy_only=False).astype(float)
    q_ok = np.isfinite(q) & (q > 0)
    d = ph["days_supply"].to_numpy(zero_copy_only=False).astype(float)
    d_ok = np.isfinite(d) & (d > 0) & (d <= 365)
    return paid & member & dated & ndc_ok & q_ok & d_ok


# ---------------------------------------------------------------------------------------------
def test_files_and_schemas(small):
    out, summary, ph, md = small
    assert sorted(p.name for p in out.iterdir()) == [
        "eligibility.parquet",
        "medical.parquet",
        "members.parquet",
        "pharmacy.parquet",
    ]
    assert ph.schema.equals(PHARMACY_SCHEMA)
    assert md.schema.equals(MEDICAL_SCHEMA)
    assert [f.name for f in ph.schema] == [
        "member_id", "fill_date", "ndc", "quantity", "days_supply",
        "prescriber_id", "pharmacy_id", "claim_id", "claim_status",
    ]  # fmt: skip
    assert ph.schema.field("fill_date").type == pa.date32()
    assert ph.schema.field("days_supply").type == pa.int32()
    assert md.schema.field("service_date").type == pa.date32()
    # plain strings (no dictionary), zstd
    meta = pq.ParquetFile(out / "pharmacy.parquet").metadata
    col = meta.row_group(0).column(0)
    assert col.compression == "ZSTD"
    assert "RLE_DICTIONARY" not in col.encodings and "PLAIN_DICTIONARY" not in col.encodings
    assert summary["members"] == SMALL
    assert summary["pharmacy_rows"] == ph.num_rows == summary["rows"]["pharmacy"]
    assert summary["medical_rows"] == md.num_rows == summary["rows"]["medical"]
    assert sum(summary["pharmacy_rows_by_class"].values()) == ph.num_rows
    assert set(summary["pharmacy_rows_by_class"]) == {"untracked", *DRUG_CLASSES}
    assert summary["seconds"] >= 0


def test_id_formats(small):
    _, _, ph, md = small
    ids = _strip(ph["member_id"]).drop_null().to_pylist()
    ids = [x for x in ids if x]
    assert all(re.fullmatch(r"M\d{8}", x) for x in ids)
    assert len(set(ids)) > SMALL * 0.9
    claims = _strip(ph["claim_id"]).to_pylist()
    assert all(re.fullmatch(r"RX\d{12}", x) for x in claims)
    presc = [x for x in _strip(ph["prescriber_id"]).drop_null().to_pylist() if x]
    assert all(re.fullmatch(r"[12]\d{9}", x) for x in presc)
    pharm = [x for x in _strip(ph["pharmacy_id"]).drop_null().to_pylist() if x]
    assert all(re.fullmatch(r"\d{7}", x) for x in pharm)
    lo, hi = pc.min_max(ph["fill_date"]).values()
    assert lo.as_py() >= dt.date(2025, 1, 1) and hi.as_py() <= dt.date(2025, 12, 31)
    lo, hi = pc.min_max(md["service_date"]).values()
    assert lo.as_py() >= dt.date(2025, 1, 1) and hi.as_py() <= dt.date(2025, 12, 31)


#: numpy's vector-unit levels switched off in turn (x86-64; names it does not know are ignored)
VECTOR_LEVELS_OFF = ("", "X86_V4 AVX512_ICL AVX512_SPR", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR")

SAME_BOOK_CHILD = """
import hashlib, sys, pyarrow.parquet as pq
from rxrisk.synthetic import generate_book
generate_book(sys.argv[1], members=2_000, seed=7)
for name in ("pharmacy", "medical", "eligibility", "members"):
    t = pq.read_table(f"{sys.argv[1]}/{name}.parquet")
    print(name, hashlib.sha256(repr(t.to_pydict()).encode()).hexdigest()[:16])
"""


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="switches off x86-64 vector units"
)
def test_same_book_whatever_numpy_vector_units(tmp_path):
    # numpy picks its sort (and other loops) by the CPU's vector units: a seed must give the
    # same book on every machine, so no result may depend on how a sort breaks ties
    digests = []
    for i, off in enumerate(VECTOR_LEVELS_OFF):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": off}
        done = subprocess.run(
            [sys.executable, "-c", SAME_BOOK_CHILD, str(tmp_path / f"book{i}")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        digests.append(done.stdout.split())
    assert len(digests[0]) == 8
    assert digests[1] == digests[0] and digests[2] == digests[0]


def test_deterministic(small, tmp_path):
    out, summary, _, _ = small
    again = generate_book(tmp_path / "again", members=SMALL, seed=7)
    for name in ("pharmacy.parquet", "medical.parquet", "eligibility.parquet", "members.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    assert {k: v for k, v in again.items() if k not in ("seconds", "paths")} == {
        k: v for k, v in summary.items() if k not in ("seconds", "paths")
    }
    # the row-group size changes the layout, not the rows
    generate_book(tmp_path / "groups", members=SMALL, seed=7, row_group_size=5_000)
    assert pq.ParquetFile(tmp_path / "groups" / "pharmacy.parquet").metadata.num_row_groups > 1
    a = pq.read_table(tmp_path / "groups" / "pharmacy.parquet")
    b = pq.read_table(out / "pharmacy.parquet")
    for name in a.column_names:
        if name == "quantity":  # NaN != NaN for Table.equals
            assert a[name].null_count == b[name].null_count
            np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy())
        else:
            assert a[name].equals(b[name]), name
    # another seed, another book
    generate_book(tmp_path / "other", members=SMALL, seed=8)
    assert (tmp_path / "other" / "pharmacy.parquet").read_bytes() != (
        out / "pharmacy.parquet"
    ).read_bytes()
    assert (tmp_path / "other" / "medical.parquet").read_bytes() != (
        out / "medical.parquet"
    ).read_bytes()


def test_progress_and_atomic_failure(tmp_path):
    calls = []
    generate_book(
        tmp_path / "ok", members=300, seed=1, progress=lambda stage, n: calls.append((stage, n))
    )
    assert calls and calls[-1][0] == "members 300/300" and calls[-1][1] > 0

    def boom(stage, n):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generate_book(tmp_path / "bad", members=300, seed=1, progress=boom)
    assert list((tmp_path / "bad").iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_book(tmp_path, members=0)
    with pytest.raises(ValueError):
        generate_book(tmp_path, members=10, start=dt.date(2025, 2, 1), end=dt.date(2025, 1, 1))


def test_rates(large):
    _, summary, ph, md = large
    per_member_year = ph.num_rows / LARGE
    assert 15 <= per_member_year <= 25
    ok = _valid_paid(ph)
    ref = load_reference()
    cls = dict(zip(ref["ndc"].to_pylist(), ref["drug_class"].to_pylist(), strict=True))
    ndcs = [_norm_ndc(x) for x in ph["ndc"].to_pylist()]
    members = _strip(ph["member_id"]).to_pylist()
    opioid_fills = Counter(
        m for m, n, v in zip(members, ndcs, ok, strict=True) if v and cls.get(n) == "opioid"
    )
    share = len(opioid_fills) / LARGE
    assert 0.12 <= share <= 0.25, share
    counts = np.array(list(opioid_fills.values()))
    assert (counts == 1).mean() > 0.5  # most users have one short fill
    chronic = (counts >= 6).sum() / LARGE
    assert 0.015 <= chronic <= 0.045, chronic
    # the archetype counts are in range too
    arche = summary["archetypes"]
    assert 0.015 * LARGE <= arche["chronic_members"] <= 0.045 * LARGE
    assert 0.0005 * LARGE <= arche["shopper_members"] <= 0.005 * LARGE
    assert 0.001 * LARGE <= arche["mat_members"] <= 0.006 * LARGE
    # acute fills are short
    ds = ph["days_supply"].to_numpy(zero_copy_only=False)
    single = {m for m, c in opioid_fills.items() if c == 1}
    acute_ds = [
        d
        for m, n, v, d in zip(members, ndcs, ok, ds, strict=True)
        if v and m in single and cls.get(n) == "opioid"
    ]
    assert np.median(acute_ds) <= 7
    # ED visits: distinct (member, date) with an ED code, per member-year
    code = pc.utf8_upper(pc.replace_substring(_strip(md["code"]), ".", ""))
    ctype = pc.utf8_upper(_strip(md["code_type"]))
    ed = pc.or_(
        pc.and_(
            pc.equal(ctype, "CPT"),
            pc.is_in(code, pa.array(["99281", "99282", "99283", "99284", "99285"])),
        ),
        pc.or_(
            pc.and_(
                pc.equal(ctype, "REV"),
                pc.is_in(code, pa.array(["0450", "450", "0451", "0456", "0459", "0981"])),
            ),
            pc.and_(pc.equal(ctype, "POS"), pc.equal(code, "23")),
        ),
    )
    visits = (
        md.filter(pc.fill_null(ed, False))
        .select(["member_id", "service_date"])
        .group_by(["member_id", "service_date"])
        .aggregate([])
    )
    assert 0.15 <= visits.num_rows / LARGE <= 0.5


def test_every_class_and_untracked(large, reference):
    _, summary, ph, _ = large
    ref_classes = set(reference["drug_class"].to_pylist())
    by_class = summary["pharmacy_rows_by_class"]
    for name in DRUG_CLASSES:
        if name in ref_classes:
            assert by_class[name] > 0, name
    assert by_class["untracked"] > 0.8 * ph.num_rows
    # class counts agree with the NDCs actually written (rows with a normalisable NDC)
    cls = dict(zip(reference["ndc"].to_pylist(), reference["drug_class"].to_pylist(), strict=True))
    seen = Counter(
        cls.get(_norm_ndc(x), "untracked") for x in ph["ndc"].to_pylist() if _norm_ndc(x)
    )
    for name, n in by_class.items():
        assert abs(seen[name] - n) <= max(5, 0.005 * n), (name, seen[name], n)
    # made-up NDCs: 11 digits and not in the reference
    untracked = [
        x for x in ph["ndc"].to_pylist() if x and re.fullmatch(r"\d{11}", x) and x not in cls
    ]
    assert len(untracked) == pytest.approx(by_class["untracked"], rel=0.01)


def test_locality(large):
    _, _, ph, _ = large
    t = ph.filter(pc.is_valid(ph["pharmacy_id"])).select(
        ["member_id", "pharmacy_id", "prescriber_id"]
    )
    pharmacies = t.group_by("member_id").aggregate(
        [("pharmacy_id", "count_distinct"), ("pharmacy_id", "count")]
    )
    n_ph = pharmacies["pharmacy_id_count_distinct"].to_numpy()
    n_rows = pharmacies["pharmacy_id_count"].to_numpy()
    busy = n_rows >= 10
    assert np.median(n_ph[busy] / n_rows[busy]) < 0.4  # members mostly use the same few pharmacies
    assert pc.count_distinct(ph["pharmacy_id"]).as_py() > 5


def test_reversals_and_duplicates(small):
    _, summary, ph, _ = small
    st = _status(ph)
    claims = _strip(ph["claim_id"]).to_pylist()
    qty = ph["quantity"].to_pylist()
    ds = ph["days_supply"].to_pylist()
    paid_seen: dict[str, tuple] = {}
    reversals = 0
    for c, s, q, d in zip(claims, st, qty, ds, strict=True):
        if s in ("reversed", "r"):
            reversals += 1
            assert c in paid_seen, c  # matches an earlier paid claim
            pq_, pd_ = paid_seen[c]
            assert q == -pq_ and d == -pd_
        elif s in ("paid", "p", "", None):
            paid_seen.setdefault(c, (q, d))
    assert reversals == summary["pharmacy_special"]["reversal_rows"] > 0
    paid_ids = Counter(c for c, s in zip(claims, st, strict=True) if s in ("paid", "p", "", None))
    dups = sum(v - 1 for v in paid_ids.values() if v > 1)
    assert dups == summary["pharmacy_special"]["duplicate_rows"] > 0
    # a duplicate is an exact copy apart from whitespace around the claim id
    raw = ph.to_pylist()
    first: dict[str, dict] = {}
    for row, c, s in zip(raw, claims, st, strict=True):
        if s not in ("paid", "p", "", None):
            continue
        if c in first:
            a = {k: v for k, v in first[c].items() if k != "claim_id"}
            b = {k: v for k, v in row.items() if k != "claim_id"}
            assert a == b
        else:
            first[c] = row


def test_defects_present(small, reference):
    _, summary, ph, md = small
    special = summary["pharmacy_special"]
    for kind in (*PHARMACY_DEFECTS, *PHARMACY_ODDITIES):
        assert special[kind] >= 1, kind
    rejected = sum(special[k] for k in PHARMACY_DEFECTS)
    assert 0.0005 <= rejected / ph.num_rows <= 0.003
    # and they are really in the data
    mid = ph["member_id"].to_pylist()
    assert None in mid and "" in mid and any(x and x.strip() == "" for x in mid)
    assert any(x and x != x.strip() and x.strip() for x in mid)
    assert ph["fill_date"].null_count > 0
    ndcs = ph["ndc"].to_pylist()
    assert None in ndcs
    assert any(x and re.fullmatch(r"\d{10}", x) for x in ndcs)
    assert any(x and re.search(r"[A-Za-z]", x) for x in ndcs)
    bad_hyphen = [x for x in ndcs if x and "-" in x and _norm_ndc(x) is None]
    assert bad_hyphen
    ref = set(reference["ndc"].to_pylist())
    forms = Counter()
    for x in ndcs:
        if x and re.fullmatch(r"\d+-\d+-\d+", x) and _norm_ndc(x):
            assert _norm_ndc(x) in ref, x  # valid hyphenated forms are reference NDCs
            forms[tuple(len(p) for p in x.split("-"))] += 1
    assert set(forms) == {(4, 4, 2), (5, 3, 2), (5, 4, 1), (5, 4, 2)}
    spaced = [x for x in ndcs if x and " " in x and x.strip()]
    assert spaced and all(_norm_ndc(x) for x in spaced)
    status = Counter(ph["claim_status"].to_pylist())
    for value in ("paid", "reversed", "P", "R", "PAID", "X", None):
        assert status[value] > 0, value
    q = ph["quantity"].to_numpy(zero_copy_only=False)
    assert ph["quantity"].null_count > 0 and np.isnan(q).sum() > ph["quantity"].null_count
    paid = np.array([s in ("paid", "p", "", None) for s in _status(ph)])
    assert ((q == 0) & paid).any() and ((q < 0) & paid).any()
    d = ph["days_supply"].to_numpy(zero_copy_only=False).astype(float)
    assert ph["days_supply"].null_count > 0 and ((d == 0) & paid).any() and ((d > 365) & paid).any()
    for col in ("prescriber_id", "pharmacy_id", "claim_id"):
        values = ph[col].to_pylist()
        assert any(x and x != x.strip() for x in values), col
    assert ph["prescriber_id"].null_count > 0 and "" in ph["prescriber_id"].to_pylist()
    # medical defects
    assert md["member_id"].null_count > 0 and md["service_date"].null_count > 0
    assert "XYZ" in md["code_type"].to_pylist()
    assert any(x is not None and x.strip() == "" for x in md["code"].to_pylist())
    ctypes = set(md["code_type"].drop_null().to_pylist())
    assert {"ICD10CM", "CPT", "HCPCS", "REV", "POS"} <= ctypes
    assert any(
        x.upper() in ("ICD10CM", "CPT", "HCPCS", "REV", "POS") and x != x.upper() for x in ctypes
    )


def test_medical_codes(large):
    _, summary, _, md = large
    pairs = Counter(zip(md["code_type"].to_pylist(), md["code"].to_pylist(), strict=True))
    codes = {c for (_, c) in pairs}

    def has(*alternatives):
        return any(a in codes for a in alternatives)

    for c in ("99213", "I10", "E11.9", "M54.5", "Z00.00"):
        assert c in codes, c
    assert has("99283") and has("99284") and has("99285")
    assert pairs[("REV", "0450")] and pairs[("REV", "450")] and pairs[("POS", "23")]
    overdose = re.compile(r"^T40\.?(0X|1X|2X|3X|4X|41|42|49|60|69)[1-4]A$")
    od = [c for c in codes if c and overdose.match(c)]
    assert any("." in c for c in od) and any("." not in c for c in od)
    assert summary["archetypes"]["overdose_events"] > 0
    assert has("T40.2X5A", "T402X5A") and has("T40.2X1D", "T402X1D")
    assert has("F11.20", "F1120") and has("F10.20", "F1020") and has("F12.90", "F1290")
    assert has("C50.911", "C50911") and has("C34.90", "C3490") and has("G89.3", "G893")
    assert has("D57.1", "D571") and has("D57.00", "D5700") and has("D57.3", "D573")
    assert has("Z51.5", "Z515") and pairs[("REV", "0651")] and pairs[("POS", "34")]


def test_date_range_scales(tmp_path):
    start, end = dt.date(2024, 1, 1), dt.date(2025, 12, 31)
    summary = generate_book(tmp_path, members=1_000, seed=3, start=start, end=end)
    ph = pq.read_table(tmp_path / "pharmacy.parquet")
    lo, hi = pc.min_max(ph["fill_date"]).values()
    assert lo.as_py() >= start and hi.as_py() <= end
    years = ((end - start).days + 1) / 365.25
    assert 15 <= summary["pharmacy_rows"] / (1_000 * years) <= 25


# ---------------------------------------------------------------------------------------------
# Books written in parts (part_members / --part-members)
# ---------------------------------------------------------------------------------------------
def _part_files(folder):
    return sorted(p.name for p in folder.iterdir())


def _assert_same_rows(a: pa.Table, b: pa.Table):
    a = pa.table(  # `score` reads some text columns as dictionaries
        {
            f.name: a[f.name].cast(f.type.value_type)
            if pa.types.is_dictionary(f.type)
            else a[f.name]
            for f in a.schema
        }
    )
    assert a.schema.equals(b.schema) and a.num_rows == b.num_rows
    for name in a.column_names:
        if name == "quantity":  # NaN != NaN for Table.equals
            assert a[name].null_count == b[name].null_count
            np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy())
        else:
            assert a[name].combine_chunks().equals(b[name].combine_chunks()), name


@pytest.fixture(scope="module")
def parts_book(tmp_path_factory):
    """3 parts of 2,000 members."""
    out = tmp_path_factory.mktemp("parts")
    summary = generate_book(out, members=6_000, seed=5, part_members=2_000)
    return out, summary


def test_parts_layout(parts_book):
    out, summary = parts_book
    kinds = ["eligibility", "medical", "members", "pharmacy"]
    assert sorted(p.name for p in out.iterdir()) == kinds  # no temporaries
    names = ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert all(_part_files(out / kind) == names for kind in kinds)
    assert summary["parts"] == 3 and summary["part_members"] == 2_000
    assert summary["paths"] == {kind: str(out / kind) for kind in sorted(kinds, key=_KINDS.index)}
    ph_rows = md_rows = 0
    for p, name in enumerate(names):
        ph = pq.read_table(out / "pharmacy" / name)
        md = pq.read_table(out / "medical" / name)
        assert ph.schema.equals(PHARMACY_SCHEMA) and md.schema.equals(MEDICAL_SCHEMA)
        ph_rows += ph.num_rows
        md_rows += md.num_rows
        # each part holds its own members, numbered as in a single-file book
        expected = {f"M{i:08d}" for i in range(p * 2_000 + 1, (p + 1) * 2_000 + 1)}
        for table in (ph, md):
            ids = {x for x in _strip(table["member_id"]).drop_null().to_pylist() if x}
            assert ids <= expected and len(ids) > 1_500
    assert ph_rows == summary["pharmacy_rows"] and md_rows == summary["medical_rows"]


def test_parts_claim_ids_across_the_book(parts_book):
    out, summary = parts_book
    seen_paid: dict[str, int] = {}  # claim id -> part of its first paid row
    dups = reversals = 0
    for p, f in enumerate(sorted((out / "pharmacy").iterdir())):
        ph = pq.read_table(f)
        claims = _strip(ph["claim_id"]).to_pylist()
        assert all(re.fullmatch(r"RX\d{12}", c) for c in claims)
        for c, s in zip(claims, _status(ph), strict=True):
            if s in ("reversed", "r"):
                reversals += 1
                assert seen_paid.get(c) == p, c  # reverses an earlier paid claim of its part
            elif s in ("paid", "p", "", None):
                if c in seen_paid:
                    dups += 1
                    assert seen_paid[c] == p, c  # duplicates stay within their part
                else:
                    seen_paid[c] = p
    special = summary["pharmacy_special"]
    assert reversals == special["reversal_rows"] > 0
    assert dups == special["duplicate_rows"] > 0


def test_parts_deterministic(parts_book, tmp_path):
    out, summary = parts_book
    again = generate_book(tmp_path, members=6_000, seed=5, part_members=2_000)
    for kind in ("pharmacy", "medical", "eligibility", "members"):
        for f in sorted((out / kind).iterdir()):
            assert (tmp_path / kind / f.name).read_bytes() == f.read_bytes(), (kind, f.name)
    skip = ("seconds", "paths")
    assert {k: v for k, v in again.items() if k not in skip} == {
        k: v for k, v in summary.items() if k not in skip
    }


def test_parts_are_the_single_file_book(tmp_path, monkeypatch):
    """With part_members a multiple of BLOCK_MEMBERS, the parts read in order are the one-file book."""
    monkeypatch.setattr(gen, "BLOCK_MEMBERS", 1_000)
    one = generate_book(tmp_path / "one", members=5_000, seed=9)
    parts = generate_book(tmp_path / "parts", members=5_000, seed=9, part_members=2_000)
    assert parts["parts"] == 3
    assert _part_files(tmp_path / "parts" / "pharmacy") == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    for kind in ("pharmacy", "medical", "eligibility", "members"):
        whole = pq.read_table(tmp_path / "one" / f"{kind}.parquet")
        folder = read_source(tmp_path / "parts" / kind, label=kind).table  # as `score` reads it
        _assert_same_rows(folder, whole)
    skip = ("seconds", "paths", "parts", "part_members")
    assert {k: v for k, v in parts.items() if k not in skip} == {
        k: v for k, v in one.items() if k not in skip
    }


def test_parts_uneven_and_progress(tmp_path):
    calls = []
    summary = generate_book(
        tmp_path,
        members=1_000,
        seed=2,
        part_members=400,
        progress=lambda stage, n: calls.append((stage, n)),
    )
    assert summary["parts"] == 3
    sizes = [pq.read_table(f).num_rows for f in sorted((tmp_path / "pharmacy").iterdir())]
    assert sum(sizes) == summary["pharmacy_rows"] and min(sizes) > 0
    # one call per part: part i/n, members so far, rows and rate of the part, total rows so far
    assert [c[0].split(" (")[0] for c in calls] == ["part 1/3", "part 2/3", "part 3/3"]
    assert "members 1,000/1,000;" in calls[-1][0] and "rows/s)" in calls[-1][0]
    assert calls[-1][1] == summary["pharmacy_rows"] + summary["medical_rows"]
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    # a last part of its own members: ids 801-1000
    last = pq.read_table(tmp_path / "medical" / "part-00002.parquet")
    ids = {x for x in _strip(last["member_id"]).drop_null().to_pylist() if x}
    assert ids <= {f"M{i:08d}" for i in range(801, 1_001)}


def test_parts_replace_and_failure(tmp_path):
    generate_book(tmp_path, members=900, seed=1, part_members=300)
    assert len(_part_files(tmp_path / "pharmacy")) == 3
    # a smaller book replaces the folders: no stale part is left to be read with the new ones
    generate_book(tmp_path, members=400, seed=1, part_members=300)
    assert _part_files(tmp_path / "pharmacy") == ["part-00000.parquet", "part-00001.parquet"]
    assert _part_files(tmp_path / "medical") == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == _KINDS_SORTED
    # a failure leaves the previous parts as they were and no temporary behind
    before = {f: f.read_bytes() for f in (tmp_path / "pharmacy").iterdir()}

    def boom(stage, n):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generate_book(tmp_path, members=900, seed=2, part_members=300, progress=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == _KINDS_SORTED
    assert {f: f.read_bytes() for f in (tmp_path / "pharmacy").iterdir()} == before
    # a folder holding anything else is not replaced
    (tmp_path / "medical" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="part-"):
        generate_book(tmp_path, members=400, seed=1, part_members=300)
    assert (tmp_path / "medical" / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError):
        generate_book(tmp_path / "x", members=10, part_members=0)


def test_parts_folder_scores(parts_book):
    """`score` reads the folders; buckets and members add up over the parts (members are
    disjoint, reversals and duplicates stay within a part)."""
    out, summary = parts_book
    whole = score(out / "pharmacy", out / "medical", as_of="2025-12-31").audit
    assert whole["pharmacy"]["rows_read"] == summary["pharmacy_rows"]
    assert whole["medical"]["rows_read"] == summary["medical_rows"]
    total = {"pharmacy": Counter(), "medical": Counter()}
    members_scored = 0
    for name in _part_files(out / "pharmacy"):
        audit = score(out / "pharmacy" / name, out / "medical" / name, as_of="2025-12-31").audit
        for kind in total:
            total[kind].update(audit[kind]["buckets"])
        members_scored += audit["members_scored"]
    for kind in total:
        assert sum(whole[kind]["buckets"].values()) == whole[kind]["rows_read"]
        assert dict(total[kind]) == whole[kind]["buckets"], kind
    assert members_scored == whole["members_scored"] > 0


def test_cli_generate_parts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rc = cli_main(
        ["generate", "--members", "500", "--seed", "4", "--out", str(tmp_path)]
        + ["--part-members", "200"]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "in 3 parts" in captured.out
    progress_lines = [x for x in captured.err.splitlines() if x.startswith("rxrisk: part ")]
    assert len(progress_lines) == 3 and "part 3/3" in progress_lines[-1]
    assert all("rows/s" in x for x in progress_lines)
    assert _part_files(tmp_path / "pharmacy") == [f"part-0000{i}.parquet" for i in range(3)]
    # --quiet prints nothing
    rc = cli_main(
        ["generate", "--members", "500", "--seed", "4", "--out", str(tmp_path / "q")]
        + ["--part-members", "200", "--quiet"]
    )
    assert rc == 0 and capsys.readouterr() == ("", "")
    assert (
        cli_main(
            ["generate", "--members", "5", "--out", str(tmp_path / "z")] + ["--part-members", "0"]
        )
        == 2
    )
    assert "--part-members 0" in capsys.readouterr().err

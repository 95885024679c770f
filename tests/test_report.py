"""Member profiles, prescriber bundles, outreach and lock-in lists (rxrisk.reports).

A hand-made book (real NDCs, every expected number worked out below) checks the content, the
ordering and tie rules and the escaping; a generated book checks the pages and lists against
the scored member table (the report recomputes the daily series from the claims, so its peak,
average and overlap days must equal the kernels' metrics).
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.errors import InputError
from rxrisk.reports import safe_stems, write_reports

OXY30 = "00054466525"  # ROXICODONE 30 mg tablet, factor 1.5
ALPRAZOLAM = "00009002901"  # XANAX 0.25 mg
AS_OF = dt.date(2025, 12, 31)
WINDOW_START = AS_OF - dt.timedelta(days=179)  # 2025-07-05
SCRIPT_ID = "<script>alert(1)</script>"
ODD_PRESCRIBER = 'p"&<u>'
ODD_PHARMACY = "<img src=x onerror=alert(1)>"
SAFE_FILE = re.compile(r"^[A-Za-z0-9._-]+\.html$")


def d(m, day, y=2025):
    return dt.date(y, m, day)


# member, fill date, ndc, quantity, days supply, prescriber, pharmacy, claim id, status
_FILLS = [
    # A: 180 MME every day (360 from 12-17), alprazolam Aug + Sep, overdose 11-15, ED 12-01
    ("A", d(6, 20), OXY30, 120, 30, "p1", "r1", "a0", "paid"),  # before the window, covers in
    ("A", d(7, 20), OXY30, 120, 30, "p1", "r1", "a1", "paid"),
    ("A", d(8, 19), OXY30, 120, 30, "p1", "r1", "a2", "paid"),
    ("A", d(9, 18), OXY30, 120, 30, "p1", "r1", "a3", "paid"),
    ("A", d(10, 18), OXY30, 120, 30, "p1", "r1", "a4", "paid"),
    ("A", d(11, 17), OXY30, 120, 30, "p1", "r1", "a5", "paid"),
    ("A", d(12, 17), OXY30, 240, 30, "p1", "r1", "a6", "paid"),
    ("A", d(8, 1), ALPRAZOLAM, 60, 30, "p2", "r2", "a7", "paid"),
    ("A", d(9, 1), ALPRAZOLAM, 60, 30, "p2", "r2", "a8", "paid"),
    ("A", d(10, 2), OXY30, 120, 30, "p9", "r9", "a9", "paid"),  # reversed below
    ("A", d(10, 2), OXY30, 120, 30, "p9", "r9", "a9", "reversed"),
    ("A", d(10, 3), "99999999999", 10, 10, "p9", "r9", "a10", "paid"),  # untracked
    ("A", d(10, 4), OXY30, -1, 30, "p9", "r9", "a11", "paid"),  # rejected (quantity)
    # B: 45 MME fills from 4 prescribers / 4 pharmacies; p1 and p2 tie on 2 fills (p2 more
    # recent), rB and rA tie on 2 fills and on the last date (rA by id); one fill unknown ids
    ("B", d(8, 1), OXY30, 30, 30, "p1", "rB", "b1", "paid"),
    ("B", d(8, 10), OXY30, 30, 30, "p2", "rA", "b2", "paid"),
    ("B", d(9, 1), OXY30, 30, 30, "p1", "rC", "b3", "paid"),
    ("B", d(9, 15), OXY30, 30, 30, "p3", "rD", "b4", "paid"),
    ("B", d(10, 10), OXY30, 30, 30, "p2", "rB", "b5", "paid"),
    ("B", d(10, 10), OXY30, 30, 30, "p4", "rA", "b6", "paid"),
    ("B", d(10, 20), OXY30, 30, 30, None, None, "b7", "paid"),
    # S: a member id that is markup, with odd prescriber and pharmacy ids; 180 MME
    (SCRIPT_ID, d(10, 1), OXY30, 120, 30, "p1", "r1", "s1", "paid"),
    (SCRIPT_ID, d(10, 31), OXY30, 120, 30, ODD_PRESCRIBER, ODD_PHARMACY, "s2", "paid"),
    (SCRIPT_ID, d(11, 30), OXY30, 120, 30, "p1", "r1", "s3", "paid"),
    # C: low dose, not flagged
    ("C", d(11, 1), OXY30, 10, 10, "p5", "r5", "c1", "paid"),
    # D: exactly 90 MME, ED 12-20; E: 180 MME, ED 12-20 (E before D in outreach)
    ("D", d(10, 1), OXY30, 60, 30, "p6", "r6", "d1", "paid"),
    ("D", d(10, 31), OXY30, 60, 30, "p6", "r6", "d2", "paid"),
    ("D", d(11, 30), OXY30, 60, 30, "p6", "r6", "d3", "paid"),
    ("E", d(11, 1), OXY30, 120, 30, "p6", "r6", "e1", "paid"),
    ("E", d(12, 1), OXY30, 120, 30, "p6", "r6", "e2", "paid"),
]
_MEDICAL = [
    ("A", d(11, 15), "ICD10CM", "T40.2X1A"),
    ("A", d(11, 15), "CPT", "99284"),
    ("A", d(12, 1), "REV", "450"),
    ("D", d(12, 20), "CPT", "99285"),
    ("E", d(12, 20), "POS", "23"),
]


def _tables():
    cols = list(zip(*_FILLS, strict=True))
    pharmacy = pa.table(
        {
            "member_id": pa.array(cols[0], pa.string()),
            "fill_date": pa.array(cols[1], pa.date32()),
            "ndc": pa.array(cols[2], pa.string()),
            "quantity": pa.array(cols[3], pa.float64()),
            "days_supply": pa.array(cols[4], pa.int32()),
            "prescriber_id": pa.array(cols[5], pa.string()),
            "pharmacy_id": pa.array(cols[6], pa.string()),
            "claim_id": pa.array(cols[7], pa.string()),
            "claim_status": pa.array(cols[8], pa.string()),
        }
    )
    m = list(zip(*_MEDICAL, strict=True))
    medical = pa.table(
        {
            "member_id": pa.array(m[0], pa.string()),
            "service_date": pa.array(m[1], pa.date32()),
            "code_type": pa.array(m[2], pa.string()),
            "code": pa.array(m[3], pa.string()),
        }
    )
    return pharmacy, medical


class Page(HTMLParser):
    """Tags, attributes and the few report structures the tests look at."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.fill_rows = 0
        self.sections: list[str] = []
        self.polylines: list[str] = []
        self.ref_lines: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        cls = (a.get("class") or "").split()
        if tag == "tr" and "fill" in cls:
            self.fill_rows += 1
        if tag == "section" and "member" in cls:
            self.sections.append(a["id"])
        if tag == "polyline" and "mme-line" in cls:
            self.polylines.append(a["points"])
        if tag == "line" and "ref" in cls:
            self.ref_lines.append(a["data-mme"])

    def handle_data(self, data):
        self.text.append(data)


def assert_self_contained(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    page = Page(text)
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "link", "iframe", "object", "embed", "image", "use")
        for name, value in attrs.items():
            assert name != "src" and not name.startswith("on"), (path, tag, name)
            if name in ("href", "xlink:href"):
                assert not value.startswith("//") and "://" not in value, (path, value)
                assert not value.startswith(("javascript:", "data:")), (path, value)
    assert "url(" not in text and "@import" not in text
    return page


def chart_values(page: Page, text: str, with_ymax: bool = False):
    """Invert the chart's y coordinates (0.1 px) back to MME (to ymax / 4800)."""
    ymax = float(re.search(r'data-ymax="([0-9.]+)"', text).group(1))
    ys = np.array([float(p.split(",")[1]) for p in page.polylines[0].split()])
    top, height = 16.0, 300 - 16 - 44
    values = ymax * (1.0 - (ys - top) / height)
    return (values, ymax) if with_ymax else values


# ------------------------------------------------------------------------ the hand book


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    pharmacy, medical = _tables()
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF)).members
    out = tmp_path_factory.mktemp("hand") / "report"
    summary = write_reports(members, pharmacy, medical, out_dir=out)
    return out, summary, members, pharmacy, medical


def _row(members, mid):
    return members.filter(pc.equal(members["member_id"], mid)).to_pylist()[0]


def _member_file(out, mid) -> Path:
    (stem,) = safe_stems([mid])
    return out / "members" / f"{stem}.html"


def test_hand_book_flags_as_designed(hand):
    _, _, members, _, _ = hand
    reasons = {r["member_id"]: r["reasons"] for r in members.to_pylist()}
    assert "concurrent_benzo" in reasons["A"] and "cms_oms" in reasons["A"]
    assert "emergency_outreach" in reasons["A"]
    assert "multi_provider" in reasons["B"] and "high_dose" in reasons[SCRIPT_ID]
    assert reasons["C"] == []
    assert "emergency_outreach" in reasons["D"] and "emergency_outreach" in reasons["E"]


def test_summary_and_files(hand):
    out, summary, *_ = hand
    assert summary["members_selected"] == summary["member_pages"] == 5  # A B S D E
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html",
        "lock_in.parquet",
        "members",
        "outreach.parquet",
        "prescribers",
    ]
    assert len(list((out / "members").glob("*.html"))) == 5
    assert summary["prescriber_pages"] == len(list((out / "prescribers").glob("*.html"))) == 6
    assert summary["outreach_rows"] == 3 and summary["lock_in_rows"] == 2
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for path in out.rglob("*.html"):
        assert SAFE_FILE.match(path.name), path
        assert_self_contained(path)


def test_markup_in_ids_renders_inert(hand):
    out, *_ = hand
    path = _member_file(out, SCRIPT_ID)
    assert path.exists() and SAFE_FILE.match(path.name) and "script" in path.name
    text = path.read_text()
    assert "<script" not in text and "<img" not in text and "<u>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = assert_self_contained(path)
    words = "".join(page.text)
    assert SCRIPT_ID in words and ODD_PRESCRIBER in words and ODD_PHARMACY in words
    bundle = out / "prescribers" / f"{safe_stems([ODD_PRESCRIBER])[0]}.html"
    assert SAFE_FILE.match(bundle.name)
    bundle_page = assert_self_contained(bundle)
    assert ODD_PRESCRIBER in "".join(bundle_page.text)
    index = (out / "index.html").read_text()
    assert "<script" not in index and "&lt;script&gt;" in index


def test_reasons_in_plain_words_first(hand):
    out, *_ = hand
    text = _member_file(out, "A").read_text()
    reasons_at = text.index("Why this member was flagged")
    assert reasons_at < text.index("<svg") < text.index('<table class="fills"')
    words = "".join(Page(text).text)
    # A: 180 MME every window day, 360 from 12-17 (15 days): (165 x 180 + 15 x 360) / 180
    assert "Average daily dose of 195 MME over the last 180 days (threshold 90)" in words
    assert "60 days of overlapping opioid and benzodiazepine use in the last 365 days" in words
    assert "(threshold 30)" in words
    assert "Opioid overdose on 1 date in the last 365 days; latest on 2025-11-15" in words
    assert "ICD10CM T40.2X1A" in words
    assert "ED visit 30 days ago, on 2025-12-01" in words
    b = "".join(Page(_member_file(out, "B").read_text()).text)
    assert "Opioids from 4 prescribers and 4 pharmacies in the last 180 days" in b
    assert "(threshold 4 prescribers and 4 pharmacies)" in b


def test_thresholds_come_from_the_rules(tmp_path):
    from rxrisk.config.resources import data_path

    rules = data_path("rules", "default.toml").read_text()
    rules = rules.replace(
        'when = "not excluded and mme_avg_180d >= 90"',
        'when = "not excluded and mme_avg_180d >= 150"',
    )
    assert "mme_avg_180d >= 150" in rules
    (tmp_path / "r.toml").write_text(rules)
    pharmacy, medical = _tables()
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF), rules=tmp_path / "r.toml").members
    write_reports(
        members,
        pharmacy,
        medical,
        out_dir=tmp_path / "out",
        rules=tmp_path / "r.toml",
        flags=(),
        reasons=["high_dose"],
    )
    words = "".join(Page(_member_file(tmp_path / "out", "A").read_text()).text)
    assert "Average daily dose of 195 MME over the last 180 days (threshold 150)" in words
    assert not _member_file(tmp_path / "out", "D").exists()  # 90 MME is not high with 150


def _expected_mme(member: str, first: dt.date, days: int) -> np.ndarray:
    out = np.zeros(days)
    pharmacy, _ = _tables()
    ok = {r["claim_id"] for r in pharmacy.to_pylist() if r["claim_status"] == "reversed"}
    for mid, day, ndc, qty, ds, *_, claim, status in _FILLS:
        if mid != member or ndc != OXY30 or qty <= 0 or status != "paid" or claim in ok:
            continue
        for k in range(ds):
            i = (day + dt.timedelta(days=k) - first).days
            if 0 <= i < days:
                out[i] += 30 * qty / ds * 1.5
    return out


def test_code_types_show_in_their_normalised_spelling(tmp_path):
    pharmacy, medical = _tables()
    spelled = pc.replace_substring(medical["code_type"], "ICD10CM", "icd-10-cm")
    medical = medical.set_column(medical.schema.get_field_index("code_type"), "code_type", spelled)
    assert "icd-10-cm" in medical["code_type"].to_pylist()
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF)).members
    write_reports(members, pharmacy, medical, out_dir=tmp_path / "report")
    words = "".join(Page(_member_file(tmp_path / "report", "A").read_text()).text)
    assert "ICD10CM T40.2X1A" in words and "ICD-10-CM" not in words


def test_chart_one_point_per_day_with_reference_lines(hand):
    out, *_ = hand
    text = _member_file(out, "A").read_text()
    page = Page(text)
    assert len(page.polylines) == 1 and len(page.polylines[0].split()) == 180
    assert sorted(page.ref_lines, key=float) == ["50", "90"]
    values = chart_values(page, text)
    np.testing.assert_allclose(values, _expected_mme("A", WINDOW_START, 180), atol=0.5)
    # benzodiazepine overlap shaded (08-01..08-30 and 09-01..09-30), ED and overdose marked
    assert text.count('class="benzo-overlap"') == 2
    assert text.count('class="event ed-marker"') == 2  # 11-15 and 12-01
    assert text.count('class="event od-marker"') == 1
    b = Page(_member_file(out, "B").read_text())
    np.testing.assert_allclose(
        chart_values(b, _member_file(out, "B").read_text()),
        _expected_mme("B", WINDOW_START, 180),
        atol=0.5,
    )


def test_lookback_days_sets_points_and_rows(tmp_path):
    pharmacy, medical = _tables()
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF)).members
    write_reports(members, pharmacy, medical, out_dir=tmp_path / "r", lookback_days=90)
    text = _member_file(tmp_path / "r", "A").read_text()
    page = Page(text)
    assert len(page.polylines[0].split()) == 90
    assert page.fill_rows == 3  # 10-18, 11-17, 12-17
    np.testing.assert_allclose(
        chart_values(page, text), _expected_mme("A", AS_OF - dt.timedelta(days=89), 90), atol=0.5
    )


def test_fill_table_rows_are_the_used_fills_in_the_lookback(hand):
    out, *_ = hand
    for mid in ("A", "B", SCRIPT_ID, "D", "E"):
        expected = sum(
            1
            for f in _FILLS
            if f[0] == mid
            and WINDOW_START <= f[1] <= AS_OF
            and f[2] != "99999999999"
            and f[3] > 0
            and f[7] != "a9"
        )
        assert Page(_member_file(out, mid).read_text()).fill_rows == expected, mid
    a = _member_file(out, "A").read_text()
    assert a.count("ROXICODONE") == 6 and a.count("XANAX") == 2
    assert "p9" not in a and "r9" not in a  # reversed, untracked and rejected rows
    assert "360.0" in a and "180.0" in a  # MME/day column


def test_prescriber_bundles_hold_exactly_their_patients(hand):
    out, *_ = hand
    expected = {
        "p1": {"A", "B", SCRIPT_ID},
        "p2": {"A", "B"},
        "p3": {"B"},
        "p4": {"B"},
        "p6": {"D", "E"},
        ODD_PRESCRIBER: {SCRIPT_ID},
    }
    stems = {}
    for mid in ("A", "B", SCRIPT_ID, "D", "E"):
        stems[f"m-{safe_stems([mid])[0]}"] = mid
    files = {p.name for p in (out / "prescribers").glob("*.html")}
    # p5 (C, not flagged) and p9 (reversed / untracked / rejected rows only) have no bundle
    assert "p5.html" not in files and "p9.html" not in files
    for presc, want in expected.items():
        path = out / "prescribers" / f"{safe_stems([presc])[0]}.html"
        page = Page(path.read_text())
        assert {stems[s] for s in page.sections} == want, presc
    assert len(files) == len(expected)


def test_bundle_highlights_the_prescribers_fills(hand):
    out, *_ = hand
    text = (out / "prescribers" / "p2.html").read_text()
    assert "Prescriber alert: p2" in text
    # A: 2 alprazolam fills by p2; B: 2 oxycodone fills by p2
    assert text.count('class="fill c-benzodiazepine mine"') == 2
    assert text.count('class="fill c-opioid mine"') == 2


def test_outreach_most_recent_emergency_first_then_dose(hand):
    out, *_ = hand
    t = pq.read_table(out / "outreach.parquet")
    assert t.column_names[:6] == [
        "member_id",
        "as_of",
        "last_emergency_date",
        "days_since_emergency",
        "reasons",
        "mme_avg_180d",
    ]
    assert t["member_id"].to_pylist() == ["E", "D", "A"]
    assert t["days_since_emergency"].to_pylist() == [11, 11, 30]
    assert t["profile"].to_pylist()[2] == "members/A.html"
    assert t.schema.field("last_emergency_date").type == pa.date32()


def test_lock_in_top_prescriber_and_pharmacy_with_ties(hand):
    out, *_ = hand
    t = pq.read_table(out / "lock_in.parquet")
    rows = {r["member_id"]: r for r in t.to_pylist()}
    assert set(rows) == {"A", "B"}  # A via cms_oms (overdose), B via multi_provider
    b = rows["B"]
    assert b["opioid_fills"] == 7 and b["distinct_prescribers"] == 4
    assert b["distinct_pharmacies"] == 4
    # p1 and p2 both wrote 2: p2 filled last (10-10 vs 09-01)
    assert b["top_prescriber_id"] == "p2" and b["top_prescriber_fills"] == 2
    # rB and rA both filled 2, both last on 10-10: the smaller id wins
    assert b["top_pharmacy_id"] == "rA" and b["top_pharmacy_fills"] == 2
    assert b["top_prescriber_share"] == pytest.approx(2 / 7)  # the unknown-id fill counts
    assert b["top_pharmacy_share"] == pytest.approx(2 / 7)
    a = rows["A"]
    assert a["top_prescriber_id"] == "p1" and a["top_prescriber_share"] == 1.0
    assert a["opioid_fills"] == 6 and a["window_start"] == WINDOW_START
    # more distinct prescribers first
    assert t["member_id"].to_pylist() == ["B", "A"]


def test_select_by_reason_and_stale_pages_removed(hand, tmp_path):
    _, _, members, pharmacy, medical = hand
    out = tmp_path / "r"
    write_reports(members, pharmacy, medical, out_dir=out)
    assert len(list((out / "members").glob("*.html"))) == 5
    s = write_reports(members, pharmacy, medical, out_dir=out, flags=(), reasons=["multi_provider"])
    assert s["member_pages"] == 1
    assert [p.name for p in (out / "members").glob("*.html")] == ["B.html"]
    assert {p.name for p in (out / "prescribers").glob("*.html")} == {
        "p1.html",
        "p2.html",
        "p3.html",
        "p4.html",
    }
    # the lists do not depend on the page selection
    assert s["outreach_rows"] == 3 and s["lock_in_rows"] == 2
    lock = pq.read_table(out / "lock_in.parquet")
    assert lock["profile"].to_pylist() == ["members/B.html", None]


def test_as_of_choice_and_csv(tmp_path):
    pharmacy, medical = _tables()
    members = rxrisk.score(pharmacy, medical, as_of="2025-09-30,2025-12-31").members
    s = write_reports(members, pharmacy, medical, out_dir=tmp_path / "latest")
    assert s["as_of"] == "2025-12-31"
    s = write_reports(
        members, pharmacy, medical, out_dir=tmp_path / "sep", as_of="2025-09-30", list_format="csv"
    )
    assert s["as_of"] == "2025-09-30" and s["outreach_rows"] == 0
    assert (tmp_path / "sep" / "outreach.csv").exists()
    assert (tmp_path / "sep" / "lock_in.csv").exists()
    with pytest.raises(InputError, match="no rows for it"):
        write_reports(members, pharmacy, medical, out_dir=tmp_path / "x", as_of="2025-01-01")
    with pytest.raises(InputError, match="no such flag"):
        write_reports(members, pharmacy, medical, out_dir=tmp_path / "x", flags=("nope",))


def test_csv_member_table_is_read_back(hand, tmp_path):
    _, _, _, pharmacy, medical = hand
    pq.write_table(pharmacy, tmp_path / "ph.parquet")
    pq.write_table(medical, tmp_path / "md.parquet")
    rc = main(
        [
            "score",
            str(tmp_path / "ph.parquet"),
            "--medical",
            str(tmp_path / "md.parquet"),
            "--as-of",
            str(AS_OF),
            "--out",
            str(tmp_path / "m.csv"),
            "--quiet",
        ]
    )
    assert rc == 0
    s = write_reports(
        tmp_path / "m.csv", tmp_path / "ph.parquet", tmp_path / "md.parquet", out_dir=tmp_path / "o"
    )
    assert s["member_pages"] == 5 and s["outreach_rows"] == 3 and s["lock_in_rows"] == 2
    assert pq.read_table(tmp_path / "o" / "outreach.parquet")["member_id"].to_pylist() == [
        "E",
        "D",
        "A",
    ]


def test_integer_member_ids_and_empty_selection(tmp_path):
    pharmacy, medical = _tables()
    number = {m: i for i, m in enumerate(sorted({f[0] for f in _FILLS}), start=1)}
    pharmacy = pharmacy.set_column(
        0, "member_id", pa.array([number[m] for m in pharmacy["member_id"].to_pylist()])
    )
    medical = medical.set_column(
        0, "member_id", pa.array([number[m] for m in medical["member_id"].to_pylist()])
    )
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF)).members
    s = write_reports(members, pharmacy, medical, out_dir=tmp_path / "i")
    assert s["member_pages"] == 5 and s["outreach_rows"] == 3 and s["lock_in_rows"] == 2
    outreach = pq.read_table(tmp_path / "i" / "outreach.parquet")
    assert outreach.schema.field("member_id").type == pa.int64()
    assert outreach["member_id"].to_pylist() == [number["E"], number["D"], number["A"]]
    assert (tmp_path / "i" / "members" / f"{number['A']}.html").exists()
    s = write_reports(members, pharmacy, medical, out_dir=tmp_path / "e", flags=("excluded",))
    assert s["member_pages"] == s["prescriber_pages"] == 0
    assert_self_contained(tmp_path / "e" / "index.html")


def test_safe_stems_are_safe_and_unique():
    ids = ["A", "a/b", "a_b", "Ab", "aB", ".x", "..", "", "x" * 200, "é", "a b", "a_b"[:3]]
    stems = safe_stems(ids)
    assert stems[0] == "A" and stems[2] == "a_b"
    for s in stems:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", s) and not s.startswith(".") and len(s) <= 75
    distinct = {i: s for i, s in zip(ids, stems, strict=True)}
    assert len({s.casefold() for s in distinct.values()}) == len(distinct)
    assert stems[1] != stems[2] and stems[3] != stems[4]


# ------------------------------------------------------------------------------- the CLI


@pytest.fixture
def hand_files(tmp_path):
    pharmacy, medical = _tables()
    pq.write_table(pharmacy, tmp_path / "ph.parquet")
    pq.write_table(medical, tmp_path / "md.parquet")
    members = rxrisk.score(pharmacy, medical, as_of=str(AS_OF)).members
    pq.write_table(members, tmp_path / "members.parquet")
    return tmp_path


def _report(t, *extra):
    return main(
        [
            "report",
            str(t / "members.parquet"),
            "--pharmacy",
            str(t / "ph.parquet"),
            "--medical",
            str(t / "md.parquet"),
            *extra,
        ]
    )


def test_cli_report_success(hand_files, capsys):
    rc = _report(hand_files, "--out", str(hand_files / "rep"))
    assert rc == 0
    out = capsys.readouterr().out
    assert "5 member profiles, 6 prescriber bundles, 3 outreach and 2 lock-in rows" in out
    assert (hand_files / "rep" / "index.html").exists()
    rc = _report(
        hand_files,
        "--out",
        str(hand_files / "rep2"),
        "--reason",
        "high_dose",
        "--lookback-days",
        "60",
        "--list-format",
        "csv",
        "--quiet",
    )
    assert rc == 0 and capsys.readouterr().out == ""
    names = {p.name for p in (hand_files / "rep2" / "members").glob("*.html")}
    assert names == {f"{safe_stems([m])[0]}.html" for m in ("A", SCRIPT_ID, "D", "E")}
    assert (hand_files / "rep2" / "outreach.csv").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--out", "{t}/rep", "--flag", "nope"], "no such flag"),
        (["--out", "{t}/rep", "--reason", "nope"], "no such flag"),
        (["--out", "{t}/rep", "--as-of", "2024-01-01"], "no rows for it"),
        (["--out", "{t}/rep", "--as-of", "2024-13-01"], "is not a date"),
        (["--out", "{t}/nowhere/rep"], "does not exist"),
        (["--out", "{t}/rep", "--lookback-days", "0"], "--lookback-days 0"),
        (["--out", "{t}/members.parquet"], "is a file"),
    ],
)
def test_cli_usage_errors_exit_2(hand_files, capsys, args, needle):
    args = [a.replace("{t}", str(hand_files)) for a in args]
    rc = _report(hand_files, *args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (hand_files / "rep").exists()


def test_cli_bad_inputs_exit_2(hand_files, capsys):
    pharmacy, _ = _tables()
    pq.write_table(pharmacy.drop_columns(["ndc"]), hand_files / "bad.parquet")
    rc = main(
        [
            "report",
            str(hand_files / "members.parquet"),
            "--pharmacy",
            str(hand_files / "bad.parquet"),
            "--out",
            str(hand_files / "rep"),
        ]
    )
    assert rc == 2 and "missing required column 'ndc'" in capsys.readouterr().err
    pq.write_table(pharmacy, hand_files / "notmembers.parquet")
    rc = main(
        [
            "report",
            str(hand_files / "notmembers.parquet"),
            "--pharmacy",
            str(hand_files / "ph.parquet"),
            "--out",
            str(hand_files / "rep"),
        ]
    )
    assert rc == 2 and "written by 'rxrisk score'" in capsys.readouterr().err


# -------------------------------------------------------------------------- a generated book


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from rxrisk.synthetic import generate_book

    root = tmp_path_factory.mktemp("book")
    generate_book(root, members=3000, seed=5)
    ph, md = root / "pharmacy.parquet", root / "medical.parquet"
    members = rxrisk.score(ph, md, as_of="2025-06-30,2025-12-31").members
    out = root / "report"
    summary = write_reports(members, ph, md, out_dir=out)
    latest = members.filter(pc.equal(members["as_of"], pa.scalar(AS_OF, pa.date32())))
    return out, summary, latest, ph, md


def _used_fills(ph, md):
    """Used pharmacy rows (member, day, prescriber), through the same validation as score."""
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.conform import clean_text
    from rxrisk.ingest.select import ingest

    data = ingest(
        ph,
        md,
        load_config(),
        clock=Clock(),
    )
    used = pa.array(data.used_pharmacy_rows(), pa.int64())
    return pa.table(
        {
            "member_id": clean_text(data.pharmacy.member_id.take(used)),
            "fill_date": data.pharmacy.fill_date.take(used),
            "prescriber_id": clean_text(data.pharmacy.prescriber_id.take(used)),
        }
    )


def test_book_pages_match_the_member_table(book):
    out, summary, latest, ph, md = book
    flagged = latest.filter(latest["at_risk"])
    assert summary["as_of"] == "2025-12-31"
    assert summary["member_pages"] == flagged.num_rows > 20
    fills = _used_fills(ph, md)
    in_window = fills.filter(
        pc.and_(
            pc.greater_equal(fills["fill_date"], pa.scalar(WINDOW_START, pa.date32())),
            pc.less_equal(fills["fill_date"], pa.scalar(AS_OF, pa.date32())),
        )
    )
    g = in_window.group_by("member_id").aggregate([("member_id", "count")])
    counts = dict(zip(g["member_id"].to_pylist(), g["member_id_count"].to_pylist(), strict=True))
    for row in flagged.to_pylist():
        path = _member_file(out, row["member_id"])
        text = path.read_text()
        page = assert_self_contained(path)
        assert page.fill_rows == counts.get(row["member_id"], 0), row["member_id"]
        assert len(page.polylines[0].split()) == 180
        assert sorted(page.ref_lines, key=float) == ["50", "90"]
        values, ymax = chart_values(page, text, with_ymax=True)
        assert values.max() == pytest.approx(row["mme_peak_180d"], abs=0.1 + ymax / 2000)


def test_the_package_face_imports_no_numba():
    """``rxrisk show`` reads member tables through ``rxrisk.reports.members``: no numba there;
    the claims work imports its kernels, which load numba only when first called compiled."""
    import subprocess
    import sys

    code = (
        "import sys, rxrisk.reports, rxrisk.reports.members, rxrisk.reports.pages\n"
        "assert 'numba' not in sys.modules\n"
        "from rxrisk.reports import write_reports\n"
        "assert write_reports.__module__ == 'rxrisk.reports.write'\n"
        "assert 'rxrisk.kernels.timeline' in sys.modules and 'numba' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_book_daily_series_equal_the_kernel_metrics(book):
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.days import day_of
    from rxrisk.ingest.select import ingest
    from rxrisk.reports.data import daily_series, member_fills

    _, _, latest, ph, md = book
    rows = latest.filter(latest["at_risk"])
    data = ingest(
        ph,
        md,
        load_config(),
        clock=Clock(),
    )
    wanted = rows["member_id"].combine_chunks()
    fills = member_fills(data, wanted)
    a = day_of(AS_OF)
    daily = daily_series(fills, len(wanted), a - 179, a)
    opioid_days = daily.opioid.sum(axis=1)
    np.testing.assert_allclose(daily.mme.max(axis=1), rows["mme_peak_180d"].to_numpy(), atol=1e-6)
    avg = np.where(opioid_days > 0, daily.mme.sum(axis=1) / np.maximum(opioid_days, 1), 0)
    np.testing.assert_allclose(avg, rows["mme_avg_180d"].to_numpy(), atol=1e-6)
    assert (daily.benzo_overlap.sum(axis=1) == rows["benzo_overlap_days_180d"].to_numpy()).all()
    assert (daily.cns_overlap.sum(axis=1) == rows["cns_overlap_days_180d"].to_numpy()).all()


def test_book_bundles_hold_exactly_the_treated_members(book):
    out, _, latest, ph, md = book
    flagged = set(latest.filter(latest["at_risk"])["member_id"].to_pylist())
    fills = _used_fills(ph, md).to_pylist()
    treats: dict[str, set] = {}
    for f in fills:
        if f["member_id"] in flagged and f["prescriber_id"] and WINDOW_START <= f["fill_date"]:
            if f["fill_date"] <= AS_OF:
                treats.setdefault(f["prescriber_id"], set()).add(f["member_id"])
    files = {p.name: p for p in (out / "prescribers").glob("*.html")}
    assert len(files) == len(treats)
    back = {f"m-{safe_stems([m])[0]}": m for m in flagged}
    for presc, want in treats.items():
        page = Page(files[f"{safe_stems([presc])[0]}.html"].read_text())
        assert {back[s] for s in page.sections} == want, presc


def test_book_lists(book):
    out, summary, latest, *_ = book
    outreach = pq.read_table(out / "outreach.parquet").to_pylist()
    assert len(outreach) == pc.sum(latest["emergency_outreach"]).as_py() > 0
    keys = [(-r["days_since_emergency"], r["mme_avg_180d"]) for r in outreach]
    for a, b in zip(keys, keys[1:], strict=False):
        assert a[0] > b[0] or (a[0] == b[0] and a[1] >= b[1])
    assert all(r["days_since_emergency"] <= 89 for r in outreach)
    lock = pq.read_table(out / "lock_in.parquet")
    cand = latest.filter(pc.or_(latest["multi_provider"], latest["cms_oms"]))
    assert lock.num_rows == cand.num_rows > 0
    by_id = {r["member_id"]: r for r in cand.to_pylist()}
    for r in lock.to_pylist():
        m = by_id[r["member_id"]]
        assert r["opioid_fills"] == m["opioid_fills_180d"]
        assert r["distinct_prescribers"] == m["opioid_prescribers_180d"]
        assert r["distinct_pharmacies"] == m["opioid_pharmacies_180d"]
        assert 0 < r["top_prescriber_share"] <= 1 and 0 < r["top_pharmacy_share"] <= 1
        assert r["top_prescriber_fills"] <= r["opioid_fills"]
    index = assert_self_contained(out / "index.html")
    hrefs = [a["href"] for t, a in index.tags if t == "a"]
    assert sum(h.startswith("members/") for h in hrefs) >= summary["member_pages"]
    assert sum(h.startswith("prescribers/") for h in hrefs) == summary["prescriber_pages"]
    for h in hrefs:
        assert (out / h).exists(), h

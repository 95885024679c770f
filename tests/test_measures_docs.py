"""The worked example of docs/measures.md, run: its three members give the quantities and the
summary rows the page states, and their report links every numerator to its members."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pytest

import rxrisk
from rxrisk.quality.report import measures_page

DOC = Path(__file__).resolve().parents[1] / "docs" / "measures.md"
OXYCODONE_30, ALPRAZOLAM_025, HYDROCODONE_10 = "00054466525", "00009002901", "00023602201"
d = dt.date


def _book() -> dict:
    """The example's pharmacy, medical, eligibility and members tables."""
    oxycodone = ((d(2025, 3, 1), 31), (d(2025, 4, 1), 30), (d(2025, 5, 1), 31), (d(2025, 6, 1), 30))
    rows = [
        (member, day, OXYCODONE_30, 120.0, ds, f"P{k}", f"F{k}")
        for member in ("M1", "M3")
        for k, (day, ds) in enumerate(oxycodone, 1)
    ]
    rows += [
        ("M1", day, ALPRAZOLAM_025, 30.0, 30, "P9", "F1")
        for day in (d(2025, 4, 10), d(2025, 5, 10))
    ]
    rows += [
        ("M2", day, HYDROCODONE_10, 60.0, 10, "P5", "F5") for day in (d(2025, 7, 1), d(2025, 7, 20))
    ]
    cols = list(zip(*rows, strict=True))
    names = ("member_id", "fill_date", "ndc", "quantity", "days_supply")
    types = (pa.string(), pa.date32(), pa.string(), pa.float64(), pa.int32())
    pharmacy = {n: pa.array(c, t) for n, c, t in zip(names, cols, types, strict=False)}
    pharmacy["prescriber_id"] = pa.array(cols[5])
    pharmacy["pharmacy_id"] = pa.array(cols[6])
    return {
        "pharmacy": pa.table(pharmacy),
        "medical": pa.table(
            {
                "member_id": ["M3"],
                "service_date": pa.array([d(2025, 6, 1)], pa.date32()),
                "code_type": ["ICD10CM"],
                "code": ["C50.911"],
            }
        ),
        "eligibility": pa.table(
            {
                "member_id": ["M1", "M2", "M3"],
                "start_date": pa.array([d(2020, 1, 1), d(2025, 2, 15), d(2019, 6, 1)]),
                "end_date": pa.array([None, None, d(2026, 5, 31)], pa.date32()),
                "product": ["part_d", "commercial", "part_d"],
            }
        ),
        "members": pa.table(
            {
                "member_id": ["M1", "M2", "M3"],
                "birth_date": pa.array([d(1960, 5, 1), d(1990, 2, 28), d(1950, 9, 12)]),
            }
        ),
    }


@pytest.fixture(scope="module")
def result():
    book = _book()
    return rxrisk.measures(
        book["pharmacy"],
        book["medical"],
        eligibility=book["eligibility"],
        members=book["members"],
        periods=2025,
    )


def test_the_quantities_are_those_of_the_page(result):
    rows = {r["member_id"]: r for r in result.detail.to_pylist()}
    assert list(rows) == ["M1", "M2", "M3"]
    m1, m2, m3 = rows["M1"], rows["M2"], rows["M3"]
    assert (m1["age"], m2["age"], m3["age"]) == (64, 34, 74)
    assert (m1["product"], m2["product"], m3["product"]) == ("part_d", "commercial", "part_d")
    assert m1["cumulative_days_supply"] == 122 and m1["treatment_days"] == 122
    assert round(m1["avg_mme"], 2) == 177.05 and m1["longest_high_dose_run"] == 122
    assert (m1["prescribers"], m1["pharmacies"]) == (4, 4)
    assert (m1["benzo_fill_dates"], m1["opioid_benzo_days"]) == (2, 60)
    assert m1["episode_start"] == d(2025, 3, 1) and (m1["covered_30"], m1["covered_62"]) == (30, 62)
    assert (m2["treatment_days"], round(m2["avg_mme"], 2)) == (29, 41.38)
    assert (m2["covered_30"], m2["covered_62"]) == (20, 20)
    assert m3["exclusion"] == "cancer" and m1["exclusion"] is None
    in_numerators = {
        m: [c[: -len("_numerator")] for c in r if c.endswith("_numerator") and r[c]]
        for m, r in rows.items()
    }
    assert len(in_numerators["M1"]) == 9
    assert in_numerators["M2"] == ["continued_use_15_of_30"] and in_numerators["M3"] == []


def test_the_summary_rows_are_those_of_the_page(result):
    text = DOC.read_text(encoding="utf-8")
    shown = re.findall(
        r"^\| `(\w+)` \| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|$", text, re.M
    )
    assert len(shown) == 5
    got = {(r["measure"], r["product"]): r for r in result.summary.to_pylist()}
    for measure, product, *counts, rate in shown:
        r = got[(measure, product)]
        assert [r["eligible"], r["excluded"], r["denominator"], r["numerator"]] == [
            int(c) for c in counts
        ]
        assert r["rate"] == float(rate)


def test_the_report_of_the_example_links_every_numerator(result):
    page = measures_page(result.summary, result.detail)
    ids = set(re.findall(r' id="([^"]+)"', page))
    links = re.findall(r'href="#([^"]+)"', page)
    assert links and set(links) <= ids
    # nine non-zero `all` numerators (M1 everywhere, M2 in one), each a link
    table = re.search(r'<table class="rates".*?</table>', page, re.S).group(0)
    assert len(re.findall(r'<a href="#n-p0-\w+">', table)) == 9

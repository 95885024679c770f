"""The measures report page: every measure and product, rates, n/a for no denominator, links
that resolve, escaping, the chart only with several periods, and atomic writing."""

from __future__ import annotations

import datetime as dt
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from measures_report_cases import (
    HOSTILE_ID,
    HOSTILE_PRODUCT,
    detail_from_rows,
    row,
    small_rows,
    tables,
)

from rxrisk.errors import InputError
from rxrisk.io.outputs import Commit
from rxrisk.quality.rates import MEASURES
from rxrisk.quality.report import (
    REPORT_PAGE,
    check_report_dir,
    measures_page,
    write_measures_report,
)
from rxrisk.quality.settings import MeasureSettings, parse_periods
from rxrisk.quality.summary import summary_table


class _Page(HTMLParser):
    """Ids, in-page links, rate-table cells and text of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.links: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
            if a["href"].startswith("#"):
                self.links.append(a["href"][1:])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def two_periods():
    summary, detail = tables(small_rows())
    return summary, detail, measures_page(summary, detail)


@pytest.fixture(scope="module")
def one_period():
    summary, detail = tables(small_rows(), years=(2025,))
    return summary, detail, measures_page(summary, detail)


def _period_tables(page: str) -> dict[str, str]:
    """Rate table markup by its period's first day."""
    found = re.findall(r'<table class="rates" data-period="([^"]+)">(.*?)</table>', page, re.S)
    return dict(found)


def _row(table: str, measure: str) -> list[str]:
    """The cells of a measure's row in a rate table, in column order."""
    row = re.search(rf'<tr data-measure="{measure}">(.*?)</tr>', table, re.S).group(1)
    return re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)


def test_every_measure_and_product_is_in_each_period(two_periods):
    summary, _, page = two_periods
    rates = _period_tables(page)
    assert sorted(rates) == ["2024-01-01", "2025-01-01"]
    for start, table in rates.items():
        rows = summary.filter(
            pa.compute.equal(summary["period_start"], pa.scalar(start).cast(pa.date32()))
        )
        products = list(dict.fromkeys(rows["product"].to_pylist()))
        head = re.findall(r'<th class="num">(.*?)</th>', table)
        assert [html.unescape(h) for h in head] == products
        assert products[0] == "all"
        assert re.findall(r'<tr data-measure="([^"]+)">', table) == list(MEASURES)
        for m in MEASURES:
            assert len(_row(table, m)) == len(products)
    assert [
        html.unescape(h) for h in re.findall(r'<th class="num">(.*?)</th>', rates["2025-01-01"])
    ] == ["all", "commercial", HOSTILE_PRODUCT, "medicaid", "part_d"]


def test_rates_are_percentages_with_their_counts(two_periods):
    summary, _, page = two_periods
    table = _period_tables(page)["2025-01-01"]
    want = {
        (r["measure"], r["product"]): r
        for r in summary.to_pylist()
        if str(r["period_start"]) == "2025-01-01"
    }
    products = ["all", "commercial", HOSTILE_PRODUCT, "medicaid", "part_d"]
    for m in MEASURES:
        for product, cell in zip(products, _row(table, m), strict=True):
            r = want[(m, product)]
            text = re.sub(r"<[^>]+>", " ", cell)
            if r["rate"] is not None:
                assert f"{r['rate'] * 100:.2f}%" in text
                assert re.search(rf"\b{r['numerator']}\s+of {r['denominator']}\b", text), text
    # part_d 2025: M1 (high dose, 5 prescribers, 4 pharmacies) and M3 in the denominator, M4
    # excluded: 1 of 2 for the high-dose measures
    cell = _row(table, "high_dose_average")[4]
    assert "<b>50.00%</b>" in cell and "1 excluded" in cell
    assert re.search(r">1</a> of 2<", cell)


def test_a_rate_without_denominator_is_shown_as_na(two_periods):
    summary, _, page = two_periods
    hmo = [r for r in summary.to_pylist() if r["product"] == HOSTILE_PRODUCT]
    assert hmo and all(r["rate"] is None and r["denominator"] == 0 for r in hmo)
    table = _period_tables(page)["2025-01-01"]
    for m in MEASURES:
        cell = _row(table, m)[2]  # the hostile product's column
        assert "<b>n/a</b>" in cell and "no denominator" in cell and "%" not in cell
    assert "<b>0.00%</b>" in page  # a zero rate is a rate, not n/a


def test_every_link_resolves_and_lists_every_numerator_member(two_periods):
    summary, detail, page = two_periods
    parsed = _Page(page)
    assert len(parsed.ids) == len(set(parsed.ids)), "duplicate anchors"
    assert parsed.links and set(parsed.links) <= set(parsed.ids)
    assert all(h.startswith("#") for h in parsed.hrefs), "a link leaves the page"
    # each non-zero numerator count links to a list of exactly that many members
    for j, start in enumerate(("2024-01-01", "2025-01-01")):
        for r in summary.to_pylist():
            if str(r["period_start"]) != start or not r["numerator"]:
                continue
            anchors = [a for a in parsed.links if a.startswith(f"n-p{j}-{r['measure']}")]
            assert anchors, (start, r["measure"], r["product"])
        for m in MEASURES:
            lst = re.search(
                rf'<table class="numerator" data-measure="{m}" data-period="{j}">(.*?)</table>',
                page,
                re.S,
            )
            members = (
                [html.unescape(x) for x in re.findall(r'<a href="#d\d+">(.*?)</a>', lst.group(1))]
                if lst
                else []
            )
            want = sorted(
                r["member_id"]
                for r in detail.to_pylist()
                if str(r["period_start"]) == start and r[f"{m}_numerator"]
            )
            assert sorted(members) == want, (start, m)


def test_member_links_lead_to_the_member_detail_row(two_periods):
    _, _, page = two_periods
    for anchor, member in re.findall(r'<a href="#(d\d+)">(.*?)</a>', page):
        row = re.search(rf'<tr id="{anchor}"><td class="nw">(.*?)</td>', page)
        assert row and row.group(1) == member


def test_hostile_ids_and_products_are_escaped(two_periods):
    _, _, page = two_periods
    parsed = _Page(page)
    assert "script" not in parsed.tags and "b" in parsed.tags  # tiles' <b>, never the product's
    assert "<script" not in page and HOSTILE_PRODUCT not in page
    assert html.escape(HOSTILE_ID, quote=True) in page
    text = "".join(parsed.text)
    assert HOSTILE_ID in text and HOSTILE_PRODUCT in text  # shown as text
    assert "http://" not in page and "https://" not in page and " src=" not in page
    assert "Content-Security-Policy" in page


def test_several_periods_draw_a_chart_per_measure(two_periods):
    _, _, page = two_periods
    charts = re.findall(r'<figure class="rate-chart" data-measure="([^"]+)">', page)
    assert charts == list(MEASURES)
    svg = re.search(
        r'<figure class="rate-chart" data-measure="high_dose_average">.*?</figure>', page, re.S
    ).group(0)
    assert 'data-periods="2"' in svg
    # "all" has a rate in both years: a line of two points
    line = re.search(r'<polyline class="rate-line" data-product="all" points="([^"]+)"', svg)
    assert line and len(line.group(1).split()) == 2
    # a product with no denominator draws nothing
    assert f'data-product="{html.escape(HOSTILE_PRODUCT)}"' not in svg


def test_one_period_draws_no_chart(one_period):
    _, _, page = one_period
    assert "<figure" not in page and "<svg" not in page
    assert list(_period_tables(page)) == ["2025-01-01"]


def test_write_is_atomic_and_joins_the_callers_run(two_periods, tmp_path: Path):
    summary, detail, page = two_periods
    out = tmp_path / "report"
    assert check_report_dir(out) == out / REPORT_PAGE
    with Commit() as run:
        path = write_measures_report(out, summary, detail, run=run)
        assert path == out / REPORT_PAGE and not path.exists()  # only once the run commits
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in out.iterdir()] == [REPORT_PAGE]
    # on its own: replaced in place, no temporary file left
    path = write_measures_report(out, *tables(small_rows(), years=(2025,)), title="Plan X")
    assert "<h1>Plan X</h1>" in path.read_text(encoding="utf-8")
    assert [p.name for p in out.iterdir()] == [REPORT_PAGE]


def test_a_failed_run_leaves_no_report(two_periods, tmp_path: Path):
    summary, detail, _ = two_periods
    out = tmp_path / "report"
    with pytest.raises(RuntimeError), Commit() as run:
        write_measures_report(out, summary, detail, run=run)
        raise RuntimeError("a later output failed")
    assert not out.exists()


def test_bad_folders_and_tables_are_input_errors(two_periods, tmp_path: Path):
    summary, detail, _ = two_periods
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(InputError, match="--report"):
        check_report_dir(afile)
    with pytest.raises(InputError, match="does not exist"):
        check_report_dir(tmp_path / "no" / "such")
    with pytest.raises(InputError, match="does not exist"):
        write_measures_report(tmp_path / "no" / "such", summary, detail)
    with pytest.raises(InputError, match="is a file"):
        write_measures_report(afile, summary, detail)
    with pytest.raises(InputError, match="summary has no column rate"):
        measures_page(summary.drop_columns(["rate"]), detail)
    with pytest.raises(InputError, match="detail has no column opioid_benzodiazepine_numerator"):
        measures_page(summary, detail.drop_columns(["opioid_benzodiazepine_numerator"]))


def test_empty_detail_still_reports_the_periods(tmp_path: Path):
    summary, detail = tables(small_rows(), years=(2023,))
    assert detail.num_rows == 0 and summary.num_rows == len(MEASURES)
    page = measures_page(summary, detail)
    assert "No member is in a numerator." in page
    cells = _row(_period_tables(page)["2023-01-01"], "high_dose_average")
    assert len(cells) == 1 and "n/a" in cells[0]


def test_default_title_names_the_years_or_the_span(two_periods):
    _, _, page = two_periods
    assert "<h1>Opioid safety measures, 2024, 2025</h1>" in page
    assert '<h2 id="p1">2025 <span class="sub">(2025-01-01 to 2025-12-31)</span></h2>' in page
    _, detail = tables(small_rows(), years=(2023,))
    halves = parse_periods(periods="2025-01-01:2025-06-30,2025-07-01:2025-12-31")
    page = measures_page(summary_table(detail, halves, MeasureSettings()), detail)
    assert "<h1>Opioid safety measures, 2025-01-01 to 2025-12-31 (2 periods)</h1>" in page
    assert '<h2 id="p0">2025-01-01 to 2025-06-30</h2>' in page
    assert page.count('<figure class="rate-chart"') == len(MEASURES)


def test_periods_sharing_a_first_day_keep_their_own_rates_lists_and_labels():
    """H1 and the whole year start on the same day: each table, chart point, numerator list and
    detail row belongs to its own period (keyed by start and end, not start alone)."""
    h1_end = dt.date(2025, 6, 30)
    heavy = {"avg_mme": 140.0, "longest_high_dose_run": 120}
    year = [row("M1", 2025, "part_d", **heavy), row("M2", 2025, "part_d")]
    half = [
        {**row("M1", 2025, "part_d"), "period_end": h1_end},
        {**row("M2", 2025, "part_d"), "period_end": h1_end},
    ]
    settings = MeasureSettings()
    detail = detail_from_rows(year + half, settings)
    periods = parse_periods(periods="2025-01-01:2025-06-30,2025-01-01:2025-12-31")
    summary = summary_table(detail, periods, settings)
    page = measures_page(summary, detail)
    tables = re.findall(r'<table class="rates"[^>]*>(.*?)</table>', page, re.S)
    assert len(tables) == 2
    h1_cell, year_cell = (_row(t, "high_dose_average")[0] for t in tables)
    assert "<b>0.00%</b>" in h1_cell and re.search(r"\b0\s+of 2\b", h1_cell)
    assert "<b>50.00%</b>" in year_cell and re.search(r">1</a> of 2<", year_cell)
    # the numerator member's detail row names the whole year, not the half
    detail_rows = re.findall(r'<tr id="d\d+">(.*?)</tr>', page, re.S)
    assert len(detail_rows) == 1 and ">2025<" in detail_rows[0]
    # chart labels tell the two periods apart
    assert "01/25-06/25" in page and ">2025<" in page

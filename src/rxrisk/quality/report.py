"""The measures report: one self-contained HTML page of rates, charts and numerator members."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.io.outputs import Commit, check_target, sweep_leftovers
from rxrisk.quality.rates import MEASURES
from rxrisk.quality.report_chart import CSS as CHART_CSS
from rxrisk.quality.report_chart import legend, rate_chart
from rxrisk.quality.report_members import (
    MEASURE_LABEL,
    MemberLists,
    definitions,
    fmt_count,
    period_label,
)
from rxrisk.quality.settings import MeasureSettings
from rxrisk.reports.markup import document, esc, tile

REPORT_PAGE = "index.html"
SUMMARY_COLUMNS = (
    "period_start",
    "period_end",
    "measure",
    "product",
    "eligible",
    "excluded",
    "denominator",
    "numerator",
    "rate",
)
FOOT = "member-level health information, for the plan's quality programme."
CSS = (
    CHART_CSS + "table.rates td,table.rates th{padding:6px 8px}table.rates td.num{min-width:7.5em}"
    "table.rates td b{display:block;font-size:17px;line-height:1.2}"
    "table.rates td small{display:block;color:#5b6570;font-size:11px}"
    "table.rates td.na b{color:#8a96a3;font-weight:500}table.rates th.m{width:30%}"
    "table.rates th small{display:block;font-weight:400;color:#5b6570;font-size:11px}"
    "table.rates tbody th,table.defs td:first-child{background:#fff}tr.grp th{background:#f7f8fa}"
    "section.cover h2{font-size:17px;margin-top:26px}.note{color:#5b6570;font-size:12px}"
    "table.detail{font-size:12px}table.detail td,table.detail th{padding:3px 4px}"
    "table.detail tr[id] td{border-bottom:none;padding-bottom:0}"
    "tr.in td{color:#5b6570;font-size:11px;padding-top:0}tr.in .chip{font-size:11px}"
)


def report_page(out_dir) -> Path:
    """The path of the report's page in ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The report folder.

    Returns
    -------
    pathlib.Path
        ``out_dir / "index.html"``.
    """
    return Path(out_dir) / REPORT_PAGE


def check_report_dir(out_dir, what: str = "--report") -> Path:
    """Check the report folder before anything is read.

    The folder exists or can be made (its parent is an existing folder this process can write
    in), and is not a file. Temporary files that killed runs left in it are removed.

    Parameters
    ----------
    out_dir : path
        The report folder.
    what : str
        The option named in errors.

    Returns
    -------
    pathlib.Path
        The page's path (:func:`report_page`), for the caller's collision check.

    Raises
    ------
    rxrisk.errors.InputError
        When the folder cannot be made or written.
    """
    check_target(Path(out_dir), what, folder=True)
    page = report_page(out_dir)
    if page.is_dir():
        raise InputError(
            f"{what} {out_dir}: {page} is a folder; remove it or choose another folder"
        )
    if Path(out_dir).is_dir():
        sweep_leftovers(page)
    return page


def write_measures_report(
    out_dir,
    summary: pa.Table,
    detail: pa.Table,
    *,
    title: str | None = None,
    settings: MeasureSettings | None = None,
    run: Commit | None = None,
) -> Path:
    """Write the measures report's page, ``out_dir/index.html``.

    Parameters
    ----------
    out_dir : path
        The report folder; made when missing (its parent must exist).
    summary : pyarrow.Table
        The summary of rates (``rxrisk.measures(...).summary``).
    detail : pyarrow.Table
        The member detail (``rxrisk.measures(...).detail``).
    title : str, optional
        The page's heading; default "Opioid safety measures" and the periods.
    settings : rxrisk.quality.settings.MeasureSettings, optional
        The thresholds quoted in the measures' descriptions (default: the packaged ones).
    run : rxrisk.io.outputs.Commit, optional
        The run's outputs: the page is written under a temporary name and renamed into place
        with the run's other outputs when ``run`` commits. Without it the page is written and
        renamed into place on its own.

    Returns
    -------
    pathlib.Path
        The page's final path.

    Raises
    ------
    rxrisk.errors.InputError
        When ``summary`` or ``detail`` lacks a column the page needs, or the folder cannot be
        made or written.

    Notes
    -----
    The page holds, top to bottom: count tiles; when there are several periods, a chart per
    measure of its rates over the periods (a line per product); a table per period (a row per
    measure, a column per product, ``all`` first: the rate, the numerator of the denominator,
    the exclusions; a rate with no denominator is shown as n/a); what each measure counts with
    the thresholds in force; the numerator members of every (period, measure), grouped by
    product, with the quantities that put them there; and the detail row of every numerator
    member. Every non-zero numerator links to its list and every member in a list to its
    detail row. Anchors are made of positions, never of data; every data value is escaped.
    The page loads nothing: inline CSS and SVG, no script, and a Content-Security-Policy.
    """
    html = measures_page(summary, detail, title=title, settings=settings)
    check_target(Path(out_dir), "--report", folder=True)
    page = report_page(out_dir)
    if run is not None:
        run.folder(out_dir)
        run.text(html, page)
        return page
    with Commit() as own:
        own.folder(out_dir)
        own.text(html, page)
    return page


def _need(table: pa.Table, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(
            f"measures report: the {what} has no column {', '.join(missing)}; give the {what} "
            "table that rxrisk.measures returned"
        )


def measures_page(
    summary: pa.Table,
    detail: pa.Table,
    *,
    title: str | None = None,
    settings: MeasureSettings | None = None,
) -> str:
    """The report's HTML page (see :func:`write_measures_report`).

    Parameters
    ----------
    summary, detail : pyarrow.Table
        The summary of rates and the member detail.
    title : str, optional
        The page's heading.
    settings : rxrisk.quality.settings.MeasureSettings, optional
        The thresholds quoted on the page.

    Returns
    -------
    str
        The HTML document.
    """
    _need(summary, SUMMARY_COLUMNS, "summary")
    needed = [
        "member_id",
        "period_start",
        "period_end",
        "product",
        *(f"{m}_numerator" for m in MEASURES),
    ]
    _need(detail, needed, "detail")
    settings = settings if settings is not None else MeasureSettings()
    rows = summary.select(list(SUMMARY_COLUMNS)).to_pylist()
    periods = sorted({(r["period_start"], r["period_end"]) for r in rows})
    products = {p: _products(rows, p) for p in periods}
    cells = {(r["period_start"], r["period_end"], r["measure"], r["product"]): r for r in rows}
    labels = [period_label(p0, p1) for p0, p1 in periods]
    lists = MemberLists.build(detail, periods, products, labels)
    title = title or _title(periods, labels)
    body = [
        f'<section class="cover"><h1>{esc(title)}</h1>',
        _intro(detail, periods, products, lists),
        _charts(periods, labels, products, cells),
        *(
            _period_table(j, periods[j], labels[j], products[periods[j]], cells, lists)
            for j in range(len(periods))
        ),
        definitions(settings),
        "</section>",
        lists.numerator_sections(),
        lists.detail_section(),
    ]
    return document(title, "".join(body), foot=FOOT, css=CSS)


def _title(periods: list, labels: list) -> str:
    """The default heading: the years when every period is a calendar year, else the span."""
    if not periods:
        return "Opioid safety measures"
    if all(label.isdigit() for label in labels) and len(labels) <= 4:
        return "Opioid safety measures, " + ", ".join(labels)
    if len(periods) == 1:
        return f"Opioid safety measures, {labels[0]}"
    return f"Opioid safety measures, {periods[0][0]} to {periods[-1][1]} ({len(periods)} periods)"


def _products(rows: list[dict], period: tuple) -> list[str]:
    """The products of a period (``(start, end)``) in the summary, ``all`` first then
    ascending."""
    names = sorted(
        {r["product"] for r in rows if (r["period_start"], r["period_end"]) == period} - {"all"}
    )
    return ["all", *names]


def _intro(detail: pa.Table, periods: list, products: dict, lists: MemberLists) -> str:
    """The line under the heading and the count tiles."""
    n_products = len({p for names in products.values() for p in names if p != "all"})
    members = pc.count_distinct(detail.column("member_id")).as_py() if detail.num_rows else 0
    tiles = "".join(
        [
            tile("members in the detail", fmt_count(members)),
            tile("numerator members", fmt_count(lists.n_members)),
            tile("periods", fmt_count(len(periods))),
            tile("products", fmt_count(n_products)),
        ]
    )
    return (
        '<p class="sub">Rates of the standard opioid-safety measures per period and product. '
        "Lower rates are better for every measure. Rate = numerator / denominator; the "
        "denominator is the eligible members less those excluded (hospice or palliative care, "
        "cancer, sickle cell disease).</p>"
        f'<div class="tiles">{tiles}</div>'
    )


def _cell(r: dict | None, anchor: str | None) -> str:
    """One rate cell: the rate large, then numerator of denominator (linked) and exclusions."""
    if r is None:
        return '<td class="num na"><b>-</b><small>no row</small></td>'
    n, d, x = r["numerator"], r["denominator"], r["excluded"]
    count = f'<a href="#{anchor}">{fmt_count(n)}</a>' if n and anchor else fmt_count(n)
    excluded = f"<small>{fmt_count(x)} excluded</small>" if x else ""
    tip = f"eligible {r['eligible']:,}, excluded {x:,}, denominator {d:,}, numerator {n:,}"
    if r["rate"] is None:
        return (
            f'<td class="num na" title="{esc(tip)}"><b>n/a</b>'
            f"<small>no denominator</small>{excluded}</td>"
        )
    return (
        f'<td class="num" title="{esc(tip)}"><b>{r["rate"] * 100:.2f}%</b>'
        f"<small>{count} of {fmt_count(d)}</small>{excluded}</td>"
    )


def _period_table(j: int, period, label: str, products: list, cells: dict, lists) -> str:
    """The rates of one period: a row per measure, a column per product."""
    p0, p1 = period
    dates = f' <span class="sub">({esc(p0)} to {esc(p1)})</span>' if label.isdigit() else ""
    head = "".join(f'<th class="num">{esc(p)}</th>' for p in products)
    body = []
    for m in MEASURES:
        tds = "".join(
            _cell(cells.get((p0, p1, m, p)), lists.anchor(j, m, p if p != "all" else None))
            for p in products
        )
        body.append(
            f'<tr data-measure="{esc(m)}"><th class="m">{esc(MEASURE_LABEL[m])}'
            f"<small>{esc(m)}</small></th>{tds}</tr>"
        )
    return (
        f'<h2 id="p{j}">{esc(label)}{dates}</h2>'
        f'<div class="scroll"><table class="rates" data-period="{esc(p0)}"><thead><tr>'
        f'<th class="m">Measure</th>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div>"
    )


def _charts(periods: list, labels: list, products: dict, cells: dict) -> str:
    """The charts of the rates over the periods (none for a single period)."""
    if len(periods) < 2:
        return ""
    names = ["all", *sorted({p for ps in products.values() for p in ps} - {"all"})]
    # a calendar year by its number, any other period by its months (01/25-06/25)
    short = [
        label if label.isdigit() else f"{p0:%m/%y}-{p1:%m/%y}"
        for label, (p0, p1) in zip(labels, periods, strict=True)
    ]
    figures = []
    for m in MEASURES:
        series = {}
        for product in names:
            points = []
            for p0, p1 in periods:
                r = cells.get((p0, p1, m, product))
                points.append(None if r is None else (r["rate"], r["numerator"], r["denominator"]))
            series[product] = points
        figures.append(rate_chart(MEASURE_LABEL[m], m, short, series))
    return (
        "<h2>Rates over the periods</h2>"
        + legend(names)
        + f'<div class="charts">{"".join(figures)}</div>'
        + '<p class="note">A point per period with a denominator; a line breaks where a '
        "product has no denominator.</p>"
    )

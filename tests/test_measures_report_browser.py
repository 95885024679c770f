"""The measures report in a real browser (headless Chromium, driven by its command line): a
book-like detail over three years renders to a non-trivial screenshot, the rate tables and the
nine charts are in the rendered DOM, and the console shows no error (the page carries no script
and a Content-Security-Policy that refuses every load, so any console line is a bug)."""

from __future__ import annotations

import re

import pytest
from test_report_browser import CHROMIUM, _chromium, _png_pixels

import rxrisk
from rxrisk.quality.rates import MEASURES
from rxrisk.quality.report import write_measures_report

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium); the browser check needs it",
    ),
]
WIDTH, HEIGHT = 1200, 1400
PERIODS = "2025-01-01:2025-06-30,2025-07-01:2025-12-31"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from rxrisk.synthetic import generate_book

    root = tmp_path_factory.mktemp("measures-browser")
    generate_book(root, members=3000, seed=5)
    result = rxrisk.measures(
        root / "pharmacy.parquet",
        root / "medical.parquet",
        eligibility=root / "eligibility.parquet",
        members=root / "members.parquet",
        periods=PERIODS,
    )
    products = set(result.summary["product"].to_pylist())
    assert {"all", "commercial", "medicaid", "part_d"} <= products
    assert sum(result.summary["numerator"].to_pylist()) > 0
    return root, write_measures_report(root / "report", result.summary, result.detail)


def test_report_screenshot(page):
    root, path = page
    png = root / "measures.png"
    run = _chromium(root, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", path.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 50_000
    width, height, raw = _png_pixels(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(set(raw)) > 100  # text, tiles and chart lines: not a blank page


def test_report_dom_and_console(page):
    root, path = page
    run = _chromium(root, "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    figures = re.findall(r'<figure class="rate-chart" data-measure="([^"]+)"><figcaption>', dom)
    assert figures == list(MEASURES)
    assert len(re.findall(r'<svg class="chart rates"[^>]*data-periods="2"', dom)) == len(MEASURES)
    assert len(re.findall(r'<table class="rates"', dom)) == 2
    assert 'class="numerator"' in dom and 'class="detail"' in dom
    for line in run.stderr.splitlines():
        assert "Uncaught" not in line, line
        assert "CONSOLE" not in line, line
        assert "Refused to" not in line, line

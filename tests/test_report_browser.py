"""A generated member profile in a real browser (headless Chromium, driven by its command
line: no selenium / playwright). Checks that the page renders to a non-trivial screenshot, that
the chart's SVG is in the rendered DOM, and that the console shows no error (the pages carry no
script and a Content-Security-Policy that refuses every load, so any console line is a bug).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib

import pyarrow.compute as pc
import pytest

import rxrisk
from rxrisk.reports import safe_stems, write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium); the browser check needs it",
    ),
]
WIDTH, HEIGHT = 1200, 1600


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """The generated book's most telling profile: most reasons, then highest average MME."""
    from rxrisk.synthetic import generate_book

    root = tmp_path_factory.mktemp("browser")
    generate_book(root, members=3000, seed=5)
    ph, md = root / "pharmacy.parquet", root / "medical.parquet"
    members = rxrisk.score(ph, md, as_of="2025-12-31").members
    write_reports(members, ph, md, out_dir=root / "report")
    flagged = members.filter(members["at_risk"]).to_pylist()
    flagged.sort(key=lambda r: (-len(r["reasons"]), -r["mme_avg_180d"], r["member_id"]))
    assert flagged and "concurrent_benzo" in pc.list_flatten(members["reasons"]).to_pylist()
    member = flagged[0]["member_id"]
    return root, root / "report" / "members" / f"{safe_stems([member])[0]}.html"


def _chromium(root, *args) -> subprocess.CompletedProcess:
    profile_dir = root / "chromium-profile"
    profile_dir.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        *args,
    ]
    env = {"HOME": str(root), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, check=False)


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the inflated image rows of a PNG (filters left in place)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_profile_screenshot(profile):
    root, page = profile
    png = root / "profile.png"
    run = _chromium(root, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 50_000
    width, height, raw = _png_pixels(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(set(raw)) > 100  # text, chart colours and shading: not a blank page


def test_profile_dom_and_console(profile):
    root, page = profile
    run = _chromium(root, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert "Why this member was flagged" in dom
    svg = re.search(r'<svg class="chart".*?</svg>', dom, re.S)
    assert svg, "the chart's SVG is not in the rendered DOM"
    points = re.search(r'<polyline class="mme-line" points="([^"]+)"', svg.group(0)).group(1)
    assert len(points.split()) == 180
    assert svg.group(0).count('class="ref ref-') == 2
    assert 'class="fills"' in dom
    for line in run.stderr.splitlines():
        assert "Uncaught" not in line, line
        assert "CONSOLE" not in line, line  # console.error / CSP "Refused to load ..." lines
        assert "Refused to" not in line, line

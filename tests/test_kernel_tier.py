"""The kernel tiers (kernels/_jit.py, config/kernel_tier.py): a small book runs its kernels as
Python without importing numba, a larger one compiled; both tiers write the same bytes for every
command; the tier a run picks ends with the run; a bad ``RXRISK_KERNELS`` is a one-line error."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys

import pytest

import rxrisk
from rxrisk.cli.main import main
from rxrisk.config import kernel_tier
from rxrisk.kernels._jit import python_tier
from rxrisk.synthetic import generate_book

MEMBERS = 300  # about 6,000 pharmacy and 3,500 medical rows


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tier-book")
    generate_book(folder, members=MEMBERS, seed=3)
    return folder


def _paths(book):
    return str(book / "pharmacy.parquet"), str(book / "medical.parquet")


def _strip(audit: dict) -> dict:
    return {k: v for k, v in audit.items() if k != "seconds"}


def test_score_writes_the_same_in_both_tiers(book, monkeypatch):
    ph, md = _paths(book)
    runs = {}
    for tier in ("python", "compiled"):
        monkeypatch.setenv(kernel_tier.TIER_ENV, tier)
        runs[tier] = rxrisk.score(
            ph, md, as_of=["2025-06-30", "2025-12-31"], all_members=True, quarantine=True
        )
    assert runs["python"].members.num_rows > MEMBERS
    assert runs["python"].members.equals(runs["compiled"].members)
    assert runs["python"].quarantine.equals(runs["compiled"].quarantine)
    assert _strip(runs["python"].audit) == _strip(runs["compiled"].audit)


def test_edits_and_measures_write_the_same_in_both_tiers(book, monkeypatch):
    ph, md = _paths(book)
    edits, measures = {}, {}
    for tier in ("python", "compiled"):
        monkeypatch.setenv(kernel_tier.TIER_ENV, tier)
        edits[tier] = rxrisk.replay_edits(ph, md)
        measures[tier] = rxrisk.measures(
            ph,
            md,
            eligibility=str(book / "eligibility.parquet"),
            members=str(book / "members.parquet"),
            periods=2025,
        )
    assert edits["python"].claims.num_rows > 0
    assert edits["python"].claims.equals(edits["compiled"].claims)
    assert _strip(edits["python"].audit) == _strip(edits["compiled"].audit)
    assert measures["python"].detail.num_rows > 0
    assert measures["python"].detail.equals(measures["compiled"].detail)
    assert measures["python"].summary.equals(measures["compiled"].summary)


def test_report_files_are_the_same_bytes_in_both_tiers(book, tmp_path, monkeypatch):
    ph, md = _paths(book)
    scores = tmp_path / "scores.parquet"
    assert main(["score", ph, "--medical", md, "--as-of", "2025-12-31", "--out", str(scores)]) == 0
    folders = {}
    for tier in ("python", "compiled"):
        monkeypatch.setenv(kernel_tier.TIER_ENV, tier)
        folders[tier] = tmp_path / f"report-{tier}"
        args = ["report", str(scores), "--pharmacy", ph, "--medical", md]
        assert main([*args, "--out", str(folders[tier]), "--quiet"]) == 0
    files = sorted(p.relative_to(folders["python"]) for p in folders["python"].rglob("*"))
    assert any(p.suffix == ".html" for p in files)
    assert files == sorted(
        p.relative_to(folders["compiled"]) for p in folders["compiled"].rglob("*")
    )
    for rel in files:
        a, b = folders["python"] / rel, folders["compiled"] / rel
        assert a.is_dir() or a.read_bytes() == b.read_bytes(), rel


_CHILD = """
import sys
import rxrisk
from rxrisk.config import kernel_tier

kernel_tier.PYTHON_TIER_MAX_ROWS = int(sys.argv[3])
result = rxrisk.score(sys.argv[1], sys.argv[2], as_of="2025-12-31")
assert result.members.num_rows > 0
print(int("numba" in sys.modules))
"""


@pytest.mark.parametrize(("max_rows", "numba_imported"), [(10**9, "0"), (5, "1")])
def test_auto_runs_a_small_book_as_python_without_numba(book, tmp_path, max_rows, numba_imported):
    """Under ``auto``, a book under the row limit never imports numba (no thread of the run
    loads a compiled kernel); one over it runs compiled."""
    ph, md = _paths(book)
    env = {k: v for k, v in os.environ.items() if k != kernel_tier.TIER_ENV}
    env["NUMBA_CACHE_DIR"] = os.environ.get("NUMBA_CACHE_DIR") or str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, ph, md, str(max_rows)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == numba_imported


def test_the_rows_read_pick_the_tier(monkeypatch):
    def check():
        monkeypatch.delenv(kernel_tier.TIER_ENV, raising=False)
        limit = kernel_tier.PYTHON_TIER_MAX_ROWS
        assert kernel_tier.choose_tier(limit - 1) == "python" and python_tier()
        assert kernel_tier.choose_tier(limit) == "compiled" and not python_tier()
        monkeypatch.setenv(kernel_tier.TIER_ENV, " Python ")
        assert kernel_tier.choose_tier(10**9) == "python"
        monkeypatch.setenv(kernel_tier.TIER_ENV, "compiled")
        assert kernel_tier.choose_tier(0) == "compiled"

    contextvars.copy_context().run(check)  # the tier set here stays out of the other tests


def test_the_tier_ends_with_the_run(book, monkeypatch):
    """A run's python tier does not leak into its caller (a later run, or a streaming run,
    would otherwise run a large book's kernels as Python)."""
    monkeypatch.setenv(kernel_tier.TIER_ENV, "python")
    ph, md = _paths(book)
    assert not python_tier()
    rxrisk.score(ph, md, as_of="2025-12-31")
    rxrisk.replay_edits(ph, md)
    assert not python_tier()


def test_a_bad_setting_is_a_one_line_error(book, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(kernel_tier.TIER_ENV, "fast")
    ph, md = _paths(book)
    out = tmp_path / "scores.parquet"
    code = main(["score", ph, "--medical", md, "--as-of", "2025-12-31", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and "RXRISK_KERNELS='fast'" in err[0] and "auto" in err[0], err

"""pytest-benchmark suite of the pipeline stages on a generated book (not part of ``pytest``).

    python -m pytest bench/test_bench_suite.py --benchmark-only
    RXRISK_BENCH_1M=1 python -m pytest bench/test_bench_suite.py --benchmark-only

Stages: ingest (read + validate), encode, kernels, rules (metric columns + flags) and
``rxrisk.score`` end to end, in memory and streaming (batch by batch, same output), at 100K members (and 1M when ``RXRISK_BENCH_1M=1``). Books are
generated once (seed 1) and cached under the temp dir (``rxrisk-bench-book-<members>-1``).

``rxrisk.replay_edits`` end to end runs on the same books and on the skewed book: the 100K
book plus one member with ``RXRISK_BENCH_SKEW_CLAIMS`` (default 1,000,000) overlapping claims
in one year (``bench/bench_edits.py``, cached as ``rxrisk-bench-book-100000-1-skew-<claims>``),
where ``test_edits_over_score_skewed`` also holds edits / score (interleaved rounds, median of
the per-round ratios) to its bound in ``bench/bounds.toml``.

``test_bench_start_plumbing`` runs ``bench/bench_start.py`` (start-up figures) once on a tiny
book with the kernels in Python (``NUMBA_DISABLE_JIT=1``: nothing compiles), checking only its
plumbing (about 10 s of CPU; not a benchmark, so ``--benchmark-only`` skips it):
``python -m pytest bench/test_bench_suite.py -k bench_start``. ``test_guard_cold_start_plumbing``
runs the guard's cold-start check the same way, under a loose bound and an impossible one;
``test_bench_pair_plumbing`` runs ``bench/bench_pair.py`` with this install as both installs
(with the floor of ``bench/scan_floor.py``, which ``test_scan_floor_reads_every_row`` checks,
its floor with selection, whose kept rows ``test_scan_floor_select_keeps_the_tracked_rows``
holds to the command's audit, and the read as a command). These five are marked ``slow`` and
CI runs them (``python -m pytest bench/test_bench_suite.py -m slow``, about 25 s).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest

import rxrisk
from rxrisk.clock import Clock
from rxrisk.config.rules import evaluate_flags
from rxrisk.config.settings import load_config, parse_as_of
from rxrisk.ingest.select import ingest
from rxrisk.scoring.columns import metric_columns
from rxrisk.scoring.encode import encode_used
from rxrisk.scoring.run import run_kernels
from rxrisk.synthetic import generate_book

AS_OF = "2025-12-31"
SEED = 1
SIZES = [100_000] + ([1_000_000] if os.environ.get("RXRISK_BENCH_1M") == "1" else [])
SKEW_CLAIMS = int(os.environ.get("RXRISK_BENCH_SKEW_CLAIMS", "1000000"))


def _book(members: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"rxrisk-bench-book-{members}-{SEED}"
    if not ((path / "pharmacy.parquet").exists() and (path / "medical.parquet").exists()):
        path.mkdir(parents=True, exist_ok=True)
        generate_book(path, members=members, seed=SEED)
    return path


class Stages:
    """Inputs of each stage, computed once per book size."""

    def __init__(self, members: int):
        self.members = members
        book = _book(members)
        self.pharmacy = str(book / "pharmacy.parquet")
        self.medical = str(book / "medical.parquet")
        self.config = load_config()
        self.ruleset = self.config.rules
        self.metrics = self.config.metrics
        self.days = parse_as_of(AS_OF)
        self.data = self.ingest()
        self.claims = encode_used(self.data)
        self.outputs = run_kernels(self.claims, self.days, self.metrics, None)

    def ingest(self):
        return ingest(self.pharmacy, self.medical, self.config, clock=Clock())

    def rules(self):
        k = len(self.days)
        rows = np.flatnonzero(self.outputs.present)
        cols, nulls = metric_columns(self.metrics, rows, self.days[rows % k], self.outputs)
        return evaluate_flags(self.ruleset, cols, nulls)

    def score(self):
        return rxrisk.score(self.pharmacy, self.medical, as_of=AS_OF)

    def score_stream(self):
        return rxrisk.score(self.pharmacy, self.medical, as_of=AS_OF, stream=True)


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1000}K")
def stages(request):
    return Stages(request.param)


def test_ingest(benchmark, stages):
    data = benchmark.pedantic(stages.ingest, rounds=3, iterations=1)
    assert len(data.pharmacy_rows.bucket) > stages.members


def test_encode(benchmark, stages):
    claims = benchmark.pedantic(encode_used, args=(stages.data,), rounds=5, iterations=1)
    assert len(claims.member_ids) == len(stages.claims.member_ids)


def test_kernels(benchmark, stages):
    outputs = benchmark.pedantic(
        run_kernels,
        args=(stages.claims, stages.days, stages.metrics, None),
        rounds=5,
        iterations=1,
    )
    assert outputs.present.sum() == stages.outputs.present.sum()
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["members_per_s"] = round(stages.members / benchmark.stats.stats.min)


def test_rules(benchmark, stages):
    flags = benchmark.pedantic(stages.rules, rounds=5, iterations=1)
    assert flags


def test_end_to_end(benchmark, stages):
    result = benchmark.pedantic(stages.score, rounds=3, iterations=1)
    assert result.members.num_rows == int(stages.present.sum())
    benchmark.extra_info["stages_s"] = result.audit["seconds"]


def test_end_to_end_streaming(benchmark, stages):
    result = benchmark.pedantic(stages.score_stream, rounds=3, iterations=1)
    assert result.members.num_rows == int(stages.present.sum())
    benchmark.extra_info["stages_s"] = result.audit["seconds"]


def test_edits_end_to_end(benchmark, stages):
    result = benchmark.pedantic(
        lambda: rxrisk.replay_edits(stages.pharmacy, stages.medical), rounds=3, iterations=1
    )
    assert result.audit["edits"]["claims_evaluated"] > 0
    benchmark.extra_info["stages_s"] = result.audit["seconds"]


@pytest.fixture(scope="module")
def skewed_book():
    from bench_edits import ensure_skewed_book

    base = _book(100_000)
    path = base.with_name(f"{base.name}-skew-{SKEW_CLAIMS}")
    ensure_skewed_book(path, base, SKEW_CLAIMS, SEED, same_day=False)
    ph, md = str(path / "pharmacy.parquet"), str(path / "medical.parquet")
    rxrisk.replay_edits(ph, md)  # warm: numba compile or cache load, page cache
    rxrisk.score(ph, md, as_of=AS_OF)
    return ph, md


def test_edits_skewed(benchmark, skewed_book):
    result = benchmark.pedantic(lambda: rxrisk.replay_edits(*skewed_book), rounds=3, iterations=1)
    assert result.audit["edits"]["claims_evaluated"] > SKEW_CLAIMS
    benchmark.extra_info["stages_s"] = result.audit["seconds"]


def test_score_skewed(benchmark, skewed_book):
    result = benchmark.pedantic(
        lambda: rxrisk.score(*skewed_book, as_of=AS_OF), rounds=3, iterations=1
    )
    assert result.members.num_rows > 0


def test_edits_over_score_skewed(benchmark, skewed_book):
    from bench_edits import edits_over_score

    figure = benchmark.pedantic(
        lambda: edits_over_score(*skewed_book, rounds=3, threads=None, warm=False),
        rounds=1,
        iterations=1,
    )
    with open(Path(__file__).with_name("bounds.toml"), "rb") as f:
        bound = tomllib.load(f)["edits_over_score_skewed"]["max"]
    benchmark.extra_info["edits_over_score"] = figure
    assert figure["value"] <= bound, figure


@pytest.mark.slow
def test_bench_start_plumbing(tmp_path, monkeypatch, capsys):
    from bench_start import COMMANDS, compile_seconds, main

    assert compile_seconds({"seconds": {"read": 1.0, "numba_compile": 2.5}}) == 2.5
    assert compile_seconds({"seconds": {"read": 1.0}, "members_scored": 3}) is None
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")  # inherited by the children: no compile
    book = tmp_path / "book"
    generate_book(book, members=50, seed=SEED)
    out = tmp_path / "start.json"
    argv = ["--book", str(book), "--start-members", "50", "--repeat", "1", "--json", str(out)]
    assert main([*argv, "--read-only-runs", "1", "--crossover", "30"]) == 0
    figures = json.loads(out.read_text())
    assert [start["tier"] for start in figures["start"]] == ["auto", "compiled"]
    for start in figures["start"]:
        for command in COMMANDS:
            runs = [start["cold"][command], *start["read_only"][command]]
            runs += start["warm"][command]["runs"]
            assert len(runs) == 3
            for run in runs:
                assert run["wall_s"] > 0 and run["cpu_s"] > 0 and run["load_1min"] >= 0, run
                assert {"kernels", "measures"} & set(run["stages_s"]), run  # the kernels' stage
                assert (run["compile_s"] or 0) >= 0, run
        assert start["help"]["wall_s"] > 0
    (crossover,) = figures["crossover"]
    assert crossover["members"] == 30 and crossover["claim_rows"] > 0
    assert crossover["python"]["wall_s"] > 0 and crossover["compiled"]["wall_s"] > 0
    read = figures["read"]
    assert read["input_rows"] > 0 and len(read["reads_s"]) == 1
    assert read["command_over_read"] > 0 and read["stages_over_read"] > 0
    text = capsys.readouterr().out
    assert "score, read-only install, run 1" in text and "command / read" in text
    assert "measures, cold (empty cache, 50 members)" in text
    assert "rxrisk start-up, kernels compiled" in text and "30 members" in text


@pytest.mark.slow
def test_guard_cold_start_plumbing(tmp_path, monkeypatch, capsys):
    """``guard.py --only cold_start_score_cpu`` on a tiny book, kernels in Python (nothing
    compiles): it passes under a loose bound and fails under one no run can meet."""
    import guard

    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")  # inherited by the children
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the cold book goes here
    with open(guard.BOUNDS, "rb") as f:
        bounds = tomllib.load(f)
    argv = ["--only", "cold_start_score_cpu", "--cold-members", "20", "--no-confirm"]
    for bound, code in ((1000.0, 0), (0.0, 1)):
        bounds["cold_start_score_cpu"]["max"] = bound
        path = tmp_path / f"bounds-{bound}.toml"
        path.write_text(
            "".join(f"[{name}]\n{k} = {v}\n" for name, b in bounds.items() for k, v in b.items())
        )
        out = tmp_path / f"guard-{bound}.json"
        assert guard.main([*argv, "--bounds", str(path), "--json", str(out)]) == code
        figure = json.loads(out.read_text())["checks"]["cold_start_score_cpu"][0]
        assert figure["value"] > 0 and figure["warm_cpu_s"] > 0, figure
    text = capsys.readouterr().out
    assert "PASS cold_start_score_cpu" in text and "FAIL cold_start_score_cpu" in text
    assert "1 of 1 checks not failing" in text and "engine checks" not in text


@pytest.mark.slow
def test_bench_pair_plumbing(tmp_path, monkeypatch, capsys):
    """``bench_pair.py`` with this install as both installs, one round on a tiny book, kernels
    in Python (nothing compiles): every figure is there, system seconds included."""
    from bench_pair import COMMANDS, INSTALLS, main

    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")  # inherited by the children
    book = tmp_path / "book"
    generate_book(book, members=50, seed=SEED)
    exe = str(Path(sys.executable).parent / "rxrisk")
    out = tmp_path / "pair.json"
    argv = ["--before", exe, "--after", exe, "--book", str(book), "--rounds", "1", "--floor"]
    assert main([*argv, "--select-floor", "--read-command", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    runs = [figures["warm"][k][c] for k in INSTALLS for c in COMMANDS]
    runs += [figures["end_to_end"][k] for k in INSTALLS]
    for run in runs:
        assert run["wall_s"] > 0 and run["cpu_s"] >= run["sys_s"] >= 0, run
    e2e = figures["end_to_end"]
    assert e2e["read_s"] > 0 and e2e["read_sys_s"] >= 0 and e2e["audits_equal"]
    assert all(e2e[k]["over_read"] > 0 for k in INSTALLS)
    assert e2e["floor"]["wall_s"] > 0 and e2e["floor"]["over_read"] > 0
    assert all(e2e[k]["over_floor"] > 0 for k in INSTALLS)
    assert e2e["select_floor"]["wall_s"] > 0 and e2e["select_floor"]["over_read"] > 0
    assert all(e2e[k]["over_select_floor"] > 0 for k in INSTALLS)
    assert e2e["read_command"]["wall_s"] > 0 and e2e["read_command"]["over_read"] > 0
    assert all(e2e[k]["over_read_command"] > 0 for k in INSTALLS)
    text = capsys.readouterr().out
    assert "round 1: read" in text and "(system " in text and "x the read" in text
    assert "x the floor" in text and '"rows"' not in text  # the floor's own line is discarded
    assert "x the floor with selection" in text and "round 1: read" in text
    assert "read as a command" in text and "x the read as a command" in text


@pytest.mark.slow
def test_scan_floor_reads_every_row(tmp_path):
    """``scan_floor.py`` pulls every row of both inputs through the engine's reader."""
    import subprocess

    import pyarrow.parquet as pq

    book = tmp_path / "book"
    generate_book(book, members=50, seed=SEED)
    ph, md = book / "pharmacy.parquet", book / "medical.parquet"
    script = Path(__file__).with_name("scan_floor.py")
    done = subprocess.run(
        [sys.executable, str(script), str(ph), str(md)], capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout)
    rows = {"pharmacy": pq.read_metadata(ph).num_rows, "medical": pq.read_metadata(md).num_rows}
    assert out["rows"] == rows and out["scan_s"] >= 0 and "kept" not in out


@pytest.mark.slow
def test_scan_floor_select_keeps_the_tracked_rows(tmp_path):
    """``scan_floor.py --select`` keeps the rows the command goes on with: the pharmacy rows
    of tracked NDCs (every row but the untracked ones and those of unreadable NDCs) and the
    medical rows the command uses, as the command's audit counts them."""
    import subprocess

    from rxrisk.cli.main import main

    book = tmp_path / "book"
    generate_book(book, members=300, seed=SEED)
    ph, md = book / "pharmacy.parquet", book / "medical.parquet"
    audit_path = tmp_path / "audit.json"
    score = ["score", str(ph), "--medical", str(md), "--as-of", "2025-12-31", "--quiet"]
    assert main([*score, "--out", str(tmp_path / "s.parquet"), "--audit", str(audit_path)]) == 0
    audit = json.loads(audit_path.read_text())
    script = Path(__file__).with_name("scan_floor.py")
    done = subprocess.run(
        [sys.executable, str(script), str(ph), str(md), "--select"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    pharmacy = audit["pharmacy"]
    tracked = (
        pharmacy["rows_read"]
        - pharmacy["buckets"]["untracked"]
        - pharmacy["rejected_by_reason"]["ndc"]
    )
    assert out["rows"]["pharmacy"] == pharmacy["rows_read"]
    assert out["kept"] == {"pharmacy": tracked, "medical": audit["medical"]["buckets"]["used"]}
    assert 0 < tracked < pharmacy["rows_read"] and out["kept"]["medical"] > 0

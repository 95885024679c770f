"""Performance guard for CI: ratios against references measured in the same run.

    python bench/guard.py                      # from the repo root; exit 0 pass, 1 fail
    python bench/guard.py --book DIR --rounds 7 --json guard.json

Absolute seconds mean little on a shared or unknown machine, so each check is a ratio of the
engine to a reference doing comparable work, measured in this one process with the two
measurements interleaved (round after round, alternating their order) so that a slow moment
of the machine hits both. A check's figure is the median over the rounds of the per-round
ratio (the two measurements of a round are adjacent in time), compared with a bound in
``bench/bounds.toml``:

- ``score_over_read`` (lower is better): ``rxrisk.score`` end to end over the pyarrow read of
  the same columns of the same files;
- ``peer_over_metric_stages`` (higher is better): the DuckDB peer query of the window metrics
  (``bench/peer_duckdb.py``, the engine's used fills as input) over the engine's metric stages
  (encode + kernels + rules, from the audit of the adjacent ``rxrisk.score`` run);
- ``edits_over_score_skewed`` (lower is better): ``rxrisk.replay_edits`` end to end over
  ``rxrisk.score`` end to end on the skewed book: the book plus one member with
  ``--skew-claims`` (default 1,000,000) heavily overlapping opioid and benzodiazepine claims in
  one year (``bench/bench_edits.py``; written once next to the book). The replay must stay
  O(n log n) per member: a quadratic one takes minutes on that member, ``score`` seconds.
- ``kernel_cpu_speedup_2v1`` (higher is better): the scoring kernels on the encoded claims,
  CPU seconds with 1 thread over the CPU seconds of the busier of the 2 threads (the calling
  thread is one of numba's team). When another process holds one of 2 cores, the wall-time
  speed-up of a parallel kernel is ~1x, the same as a serial kernel's; per-thread CPU time
  still tells them apart (it is what the 2-thread wall time would be on 2 free cores). The
  wall-time speed-up is printed beside it, not checked. Skipped when numba has < 2 threads.
  The guard sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before numba starts its threads:
  an idle OpenMP thread then sleeps instead of spinning (libgomp spins for some milliseconds
  by default), so a thread's CPU time is its work and a spinning thread cannot take a core
  from the measurement next to it.
- ``cold_start_score_cpu`` (lower is better): CPU seconds (user + system, from ``wait4``) of
  a first ``rxrisk score`` as a command in a child process with an empty, fresh
  ``NUMBA_CACHE_DIR``, on a generated 200-member book (``--cold-members``, seed 1): what a new
  user's first run costs, nearly all of it numba compiling the kernels. The one check that is
  not a ratio: no in-run reference does comparable work (the warm run of the same command is
  imports and cache loads, and halving it would move a cold / warm ratio towards its bound),
  and the CPU time of a single-threaded compile hardly moves with the machine's load (see
  ``bench/bounds.toml``). The warm CPU seconds of the same command, cache filled, are printed
  beside it, not checked. On another machine, measure the figure again before trusting it.

The first three checks run numba, DuckDB and Arrow on ``--threads`` threads, default 1: then
each side of a ratio is serial, and another process taking one core (the usual noise on a
shared machine) slows neither, where with 2 threads it slows the more parallel side (DuckDB,
the Arrow read) up to 2x more than the engine's serial parts and moves the ratio by as much.
It also makes the ratios mean the same on a CI machine with more cores (the cold-start child
runs with the command's default threads). The engine's
parallelism is what the last check is for. A failing check is measured again once
and fails only if the second measurement fails too (``--no-confirm`` to turn off): a real
regression is there every time, a burst of load is not. The books (100K and 200 members, seed 1)
are generated once and cached in the temp dir; ``--only`` runs some of the checks (for a
fault-injection run, say); the engine, DuckDB and the page cache are warmed
first, so numba's compile (or cache load) is never measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, ensure_book
from bench_edits import ensure_skewed_book

AS_OF = "2025-12-31"
BOUNDS = Path(__file__).with_name("bounds.toml")

#: check name -> (bound key: "max" lower is better / "min" higher is better, what it measures)
CHECKS = {
    "score_over_read": ("max", "rxrisk.score end to end / pyarrow read of the same columns"),
    "peer_over_metric_stages": ("min", "DuckDB peer query / engine encode+kernels+rules"),
    "edits_over_score_skewed": ("max", "rxrisk.replay_edits / rxrisk.score, skewed book"),
    "kernel_cpu_speedup_2v1": ("min", "kernel CPU s, 1 thread / busier of 2 threads"),
    "cold_start_score_cpu": ("max", "CPU s of a first rxrisk score, empty numba cache"),
}
#: which measurement produces each check (a confirm run repeats the measurement once)
GROUP = {
    "score_over_read": "engine",
    "peer_over_metric_stages": "engine",
    "edits_over_score_skewed": "skewed",
    "kernel_cpu_speedup_2v1": "kernels",
    "cold_start_score_cpu": "cold",
}


def numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def _ratio(num: list, den: list, num_name: str, den_name: str) -> dict:
    """Median of the per-round ratios, plus the raw seconds (for --json)."""
    per_round = [a / max(b, 1e-9) for a, b in zip(num, den, strict=True)]
    return {
        "value": round(statistics.median(per_round), 3),
        "per_round": [round(r, 3) for r in per_round],
        num_name: [round(x, 4) for x in num],
        den_name: [round(x, 4) for x in den],
    }


class Bench:
    """The book, the warmed engine and references; ``engine`` and ``kernels_scaling`` measure."""

    def __init__(self, book: Path, threads: int, skewed: Path | None = None):
        import duckdb
        import numba
        from peer_duckdb import peer_metrics, used_fills

        import rxrisk
        from rxrisk.clock import Clock
        from rxrisk.config.settings import load_config, parse_as_of
        from rxrisk.ingest.select import ingest
        from rxrisk.scoring.encode import encode_used
        from rxrisk.scoring.run import set_threads

        self.threads = set_threads(threads)
        pa.set_cpu_count(self.threads)
        self.ph, self.md = str(book / "pharmacy.parquet"), str(book / "medical.parquet")
        self._score, self._peer_metrics = rxrisk.score, peer_metrics

        t = time.perf_counter()
        self.score()  # compiles the kernels, or loads them from the numba cache
        self.warm_s = time.perf_counter() - t
        self.layer = numba.threading_layer()
        self.read()

        self.fills = used_fills(self.ph, self.md)
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {self.threads}")
        self.peer()

        self.skewed_book = skewed
        if skewed is not None:  # warm both on it (page cache; numba's replay kernel)
            self.skewed(1)

        cfg = load_config()
        self.metrics, self.days = cfg.metrics, parse_as_of(AS_OF)
        self.claims = encode_used(ingest(self.ph, self.md, cfg, clock=Clock()))
        self.two_threads = numba.config.NUMBA_NUM_THREADS >= 2
        if self.two_threads:
            self.kernels(1)
            self.kernels(2)
        set_threads(self.threads)

    # -- the measured calls --------------------------------------------------------------
    def read(self):
        a = pq.read_table(self.ph, columns=PHARMACY_COLUMNS)
        b = pq.read_table(self.md, columns=MEDICAL_COLUMNS)
        return a.num_rows + b.num_rows

    def score(self):
        return self._score(self.ph, self.md, as_of=AS_OF, threads=self.threads)

    def peer(self):
        return self._peer_metrics(self.fills, AS_OF, con=self.con).num_rows

    def kernels(self, threads: int):
        from rxrisk.scoring.run import run_kernels  # looked up per call: the engine's current one

        return run_kernels(self.claims, self.days, self.metrics, threads)

    # -- the measurements ----------------------------------------------------------------
    def engine(self, rounds: int) -> dict:
        """score_over_read and peer_over_metric_stages from the same interleaved rounds."""
        read_s, score_s, metric_s, peer_s = [], [], [], []
        for i in range(rounds):
            # the score run sits between its two references; their order alternates
            for what in ("read", "score", "peer") if i % 2 == 0 else ("peer", "score", "read"):
                gc.collect()
                t = time.perf_counter()
                if what == "read":
                    self.read()
                    read_s.append(time.perf_counter() - t)
                elif what == "peer":
                    self.peer()
                    peer_s.append(time.perf_counter() - t)
                else:
                    st = self.score().audit["seconds"]
                    score_s.append(time.perf_counter() - t)
                    metric_s.append(st["encode"] + st["kernels"] + st["rules"])
        return {
            "score_over_read": _ratio(score_s, read_s, "score_s", "read_s"),
            "peer_over_metric_stages": _ratio(peer_s, metric_s, "peer_s", "metric_stages_s"),
        }

    def skewed(self, rounds: int) -> dict:
        """edits_over_score_skewed: interleaved replay_edits and score on the skewed book."""
        from bench_edits import edits_over_score

        ph, md = (
            str(self.skewed_book / "pharmacy.parquet"),
            str(self.skewed_book / "medical.parquet"),
        )
        figure = edits_over_score(ph, md, rounds, self.threads, warm=False)
        return {"edits_over_score_skewed": figure}

    def kernels_scaling(self, rounds: int, calls: int) -> dict:
        """kernel_cpu_speedup_2v1 (CPU time) and, for information, the wall-time speed-up."""
        if not self.two_threads:
            n = numba_threads()
            return {"kernel_cpu_speedup_2v1": {"skipped": f"numba has {n} thread(s), needs 2"}}
        from rxrisk.scoring.run import set_threads

        one_cpu, two_busier, one_wall, two_wall = [], [], [], []
        try:
            for i in range(rounds):
                for n in (1, 2) if i % 2 == 0 else (2, 1):
                    gc.collect()
                    w, p, t = time.perf_counter(), time.process_time(), time.thread_time()
                    for _ in range(calls):
                        self.kernels(n)
                    w = time.perf_counter() - w
                    p, t = time.process_time() - p, time.thread_time() - t
                    if n == 1:
                        one_cpu.append(p)
                        one_wall.append(w)
                    else:  # this thread, and the rest of the process (numba's other thread)
                        two_busier.append(max(t, p - t))
                        two_wall.append(w)
        finally:
            set_threads(self.threads)
        out = _ratio(one_cpu, two_busier, "one_thread_cpu_s", "two_threads_busier_cpu_s")
        out["wall_speedup"] = _ratio(one_wall, two_wall, "one_thread_s", "two_threads_s")
        return {"kernel_cpu_speedup_2v1": out}


def cold_start(book: Path) -> dict:
    """cold_start_score_cpu: a first ``rxrisk score`` on ``book`` in a child process with an
    empty numba cache folder, then the same command once more with the cache it filled (the
    warm figures are printed, not checked). The kernels are held to the compiled tier: the
    book is small enough that ``auto`` would run them as Python and compile nothing."""
    from bench_start import run_cli

    with tempfile.TemporaryDirectory(prefix="rxrisk-guard-cold-") as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba-cache"))
        env["RXRISK_KERNELS"] = "compiled"
        args = ["score", str(book / "pharmacy.parquet"), "--medical", str(book / "medical.parquet")]
        args += ["--as-of", AS_OF, "--out", str(Path(tmp) / "members.parquet"), "--quiet"]
        cold = run_cli(args, env)
        warm = run_cli(args, env)
    figure = {"value": cold["cpu_s"], "per_round": [cold["cpu_s"]], "wall_s": cold["wall_s"]}
    figure |= {"load_1min": cold["load_1min"], "warm_cpu_s": warm["cpu_s"]}
    figure["warm_wall_s"] = warm["wall_s"]
    return {"cold_start_score_cpu": figure}


def load_bounds(path: Path) -> dict:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    bounds = {}
    for name, (key, _) in CHECKS.items():
        if key not in raw.get(name, {}):
            raise SystemExit(f"guard: {path} has no [{name}] {key} = ...")
        bounds[name] = float(raw[name][key])
    return bounds


def verdict(name: str, figure: dict, bound: float) -> tuple[str, str]:
    """('PASS' | 'FAIL' | 'SKIP', the check's report line)."""
    key, what = CHECKS[name]
    if "skipped" in figure:
        return "SKIP", f"SKIP {name:<24} {figure['skipped']}"
    v, rounds = figure["value"], figure["per_round"]
    status = "PASS" if (v <= bound if key == "max" else v >= bound) else "FAIL"
    line = f"{status} {name:<24} {v:6.2f} {'<=' if key == 'max' else '>='} {bound:<5.2f} ({what}"
    if len(rounds) > 1:
        line += f"; median of {len(rounds)} rounds, {min(rounds):.2f}-{max(rounds):.2f}"
    if "wall_speedup" in figure:
        line += f"; wall-time speed-up {figure['wall_speedup']['value']:.2f}, not checked"
    if "warm_cpu_s" in figure:
        line += (
            f"; wall {figure['wall_s']:.1f}s at load {figure['load_1min']:.1f}; warm run "
            f"CPU {figure['warm_cpu_s']:.2f}s, wall {figure['warm_wall_s']:.2f}s, not checked"
        )
    return status, line + ")"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--book", type=Path, default=None, help="book folder (generated if missing)")
    p.add_argument("--bounds", type=Path, default=BOUNDS)
    p.add_argument("--rounds", type=int, default=7, help="interleaved engine rounds")
    p.add_argument("--skew-rounds", type=int, default=3, help="edits/score rounds, skewed book")
    p.add_argument(
        "--skew-claims",
        type=int,
        default=1_000_000,
        help="claims of the skewed book's one crowded member",
    )
    p.add_argument("--kernel-rounds", type=int, default=5, help="rounds of 1 vs 2 threads")
    p.add_argument("--kernel-calls", type=int, default=10, help="kernel calls per measurement")
    p.add_argument("--cold-members", type=int, default=200, help="members of the cold-start book")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="numba, DuckDB and Arrow threads of the first three checks (bounds.toml is for 1)",
    )
    p.add_argument(
        "--only",
        default=None,
        metavar="CHECK[,CHECK...]",
        help=f"run only these checks (of {', '.join(CHECKS)})",
    )
    p.add_argument(
        "--no-confirm", dest="confirm", action="store_false", help="no second try of a failure"
    )
    p.add_argument("--json", type=Path, default=None, help="also write all figures here")
    args = p.parse_args(argv)
    args.checks = list(CHECKS) if args.only is None else args.only.split(",")
    unknown = [name for name in args.checks if name not in CHECKS]
    if unknown:
        p.error(f"--only: no check {', '.join(unknown)} (checks: {', '.join(CHECKS)})")
    return args


def measurements(args) -> tuple[dict, Bench | None, Path | None, Path | None]:
    """What measures each group of the checks to run, the warmed engine (None when only the
    cold start runs) and its two books."""
    cold_book = Path(tempfile.gettempdir()) / f"rxrisk-guard-book-{args.cold_members}-{args.seed}"
    measure = {"cold": lambda: cold_start(cold_book)}
    if "cold" in {GROUP[name] for name in args.checks}:
        ensure_book(cold_book, args.cold_members, args.seed)
    if not {GROUP[name] for name in args.checks} - {"cold"}:
        return measure, None, None, None
    book = (
        args.book or Path(tempfile.gettempdir()) / f"rxrisk-guard-book-{args.members}-{args.seed}"
    )
    ensure_book(book, args.members, args.seed)
    skewed = book.with_name(f"{book.name}-skew-{args.skew_claims}")
    ensure_skewed_book(skewed, book, args.skew_claims, args.seed, same_day=False)
    bench = Bench(book, args.threads, skewed)
    measure["engine"] = lambda: bench.engine(args.rounds)
    measure["skewed"] = lambda: bench.skewed(args.skew_rounds)
    measure["kernels"] = lambda: bench.kernels_scaling(args.kernel_rounds, args.kernel_calls)
    return measure, bench, book, skewed


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    # read by libgomp when numba's OpenMP layer loads (its first parallel call, or
    # set_num_threads): nothing before this line starts numba's threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    bounds = load_bounds(args.bounds)
    measure, bench, book, skewed = measurements(args)
    groups = [g for g in ("cold", "engine", "skewed", "kernels") if g in measure]
    groups = [g for g in groups if any(GROUP[name] == g for name in args.checks)]
    first = {}
    for group in groups:
        first.update(measure[group]())
    status = {name: verdict(name, first[name], bounds[name]) for name in args.checks}
    attempts = {name: [first[name]] for name in args.checks}
    if args.confirm:
        for group in {GROUP[n] for n, (s, _) in status.items() if s == "FAIL"}:
            again = measure[group]()
            for name in (n for n in args.checks if GROUP[n] == group and status[n][0] == "FAIL"):
                attempts[name].append(again[name])
                s, line = verdict(name, again[name], bounds[name])
                status[name] = (s, f"{line} [confirm run; first run {first[name]['value']:.2f}]")

    wall = time.perf_counter() - t0
    if bench is not None:
        print(
            f"guard: {args.members:,}-member book {book}; engine checks on {bench.threads} "
            f"thread(s); numba layer {bench.layer}, OMP_WAIT_POLICY="
            f"{os.environ.get('OMP_WAIT_POLICY')}; warm-up (numba compile or cache load) "
            f"{bench.warm_s:.1f}s, not measured; bounds {args.bounds}"
        )
    if "cold" in groups:
        print(f"guard: cold start on a {args.cold_members}-member book, {cold_seconds(attempts)}")
    for _, line in status.values():
        print(line)
    failed = sum(s == "FAIL" for s, _ in status.values())
    n = len(status)
    print(
        f"guard: {'FAILED' if failed else 'passed'} ({n - failed} of {n} checks not failing) "
        f"in {wall:.0f}s"
    )
    if args.json:
        out = {
            "book": None if book is None else str(book),
            "skewed_book": None if skewed is None else str(skewed),
            "members": args.members,
            "cold_members": args.cold_members,
            "threads": None if bench is None else bench.threads,
            "threading_layer": None if bench is None else bench.layer,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "warm_up_s": None if bench is None else round(bench.warm_s, 2),
            "wall_s": round(wall, 1),
            "bounds": bounds,
            "checks": attempts,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if failed else 0


def cold_seconds(attempts: dict) -> str:
    """How long the cold-start check's runs took (what it adds to the guard)."""
    runs = attempts["cold_start_score_cpu"]
    total = sum(r["wall_s"] + r["warm_wall_s"] for r in runs)
    return f"{len(runs)} run(s), {total:.0f}s of the guard's time"


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end benchmark of ``rxrisk score`` on a generated book, as ratios measured in one run.

    python bench/run_bench.py --members 1000000 --book /tmp/rxrisk-book-1m

Reports, all from this one process on this machine:
- pyarrow read time of the columns the engine reads (the floor any engine pays);
- end-to-end score time (read, validate, encode, kernels, rules, output table) and its ratio
  to the read time;
- kernel-only throughput (members per second);
- first-call compile time (fresh numba cache, tiny book, separate process) and cached
  start-up time (same, second process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, best, ensure_book


def _cli_seconds(args, env):
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rxrisk.cli", *args], check=True, env=env, capture_output=True
    )
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--book", type=Path, default=None, help="book folder (generated if missing)")
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    book = args.book or Path(tempfile.gettempdir()) / f"rxrisk-book-{args.members}-{args.seed}"
    ensure_book(book, args.members, args.seed)
    ph, md = book / "pharmacy.parquet", book / "medical.parquet"

    import rxrisk

    def read():
        a = pq.read_table(ph, columns=PHARMACY_COLUMNS)
        b = pq.read_table(md, columns=MEDICAL_COLUMNS)
        return a.num_rows + b.num_rows

    def run():
        return rxrisk.score(str(ph), str(md), as_of=args.as_of, threads=args.threads)

    rxrisk.score(
        str(ph), str(md), as_of=args.as_of, threads=args.threads
    )  # warm: compile / load cache
    read_s, rows = best(read, args.repeat)
    score_s, result = best(run, args.repeat)
    stages = result.audit["seconds"]
    n_members = result.audit["members_scored"]

    # compile and cached start-up in separate processes on a tiny book
    tiny = Path(tempfile.mkdtemp(prefix="rxrisk-tiny-"))
    from rxrisk.synthetic import generate_book

    generate_book(tiny, members=200, seed=3)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tiny / "cache"))
    cli = [
        "score",
        str(tiny / "pharmacy.parquet"),
        "--medical",
        str(tiny / "medical.parquet"),
        "--as-of",
        args.as_of,
        "--out",
        str(tiny / "m.parquet"),
        "--quiet",
    ]
    cold = _cli_seconds(cli, env)
    warm = min(_cli_seconds(cli, env) for _ in range(3))
    help_s = min(_cli_seconds(["--help"], env) for _ in range(3))

    import numba

    figures = {
        "members_in_book": args.members,
        "input_rows": rows,
        "members_scored": n_members,
        "threads": numba.get_num_threads(),
        "pyarrow_read_s": round(read_s, 3),
        "score_end_to_end_s": round(score_s, 3),
        "score_over_read": round(score_s / read_s, 2),
        "stages_s": stages,
        "kernel_members_per_s": round(result.members.num_rows / max(stages["kernels"], 1e-9)),
        "kernel_book_members_per_s": round(args.members / max(stages["kernels"], 1e-9)),
        "cli_first_call_with_compile_s": round(cold, 2),
        "cli_cached_start_s": round(warm, 2),
        "cli_help_s": round(help_s, 2),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

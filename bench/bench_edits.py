"""Benchmark of ``rxrisk edits`` (SPEC 7 safety-edit replay) on a generated book.

    python bench/bench_edits.py --members 1000000 --book /tmp/rxrisk-book-1000000-1

Prints JSON figures, all measured in this one process on this machine:
- pyarrow read time of the columns the engine reads (the floor any engine pays);
- end-to-end replay time (read, validate, encode, kernel, claim table) as claims evaluated per
  second, its stages, and its ratio to the read time;
- kernel-only throughput: the replay kernel alone over the already encoded claims, as claims
  evaluated per second (best of ``--kernel-repeat``);
- what the book's replay found: claims evaluated, members with an evaluated claim, and per edit
  the claims it would have stopped and the members they belong to.

The book is generated with ``rxrisk.generate.generate_book`` when the folder has no
pharmacy.parquet / medical.parquet yet (the same folder naming as bench/run_bench.py, so both
benchmarks share books).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, best, ensure_book


def _kernel_seconds(ph: Path, md: Path, threads, repeat: int) -> float:
    """Best time of the replay kernel alone over the encoded claims of the book."""
    from rxrisk.edits import drug_keys, load_edits, run_edits_kernel
    from rxrisk.pipeline import Clock, encode_used, ingest, load_config

    cfg = load_config()
    ref = cfg.reference
    data = ingest(str(ph), str(md), cfg, clock=Clock())
    claims = encode_used(data)
    ref_row = data.pharmacy_rows.ref_index[claims.row]
    keys = drug_keys(ref)
    edits = load_edits()
    seconds, _ = best(lambda: run_edits_kernel(claims, ref_row, keys, edits, threads), repeat)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--book", type=Path, default=None, help="book folder (generated if missing)")
    p.add_argument("--repeat", type=int, default=3, help="end-to-end runs (best is reported)")
    p.add_argument("--kernel-repeat", type=int, default=10, help="kernel-only runs (best)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="EDIT.FIELD=VALUE"
    )
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
        return rxrisk.replay_edits(str(ph), str(md), overrides=args.overrides, threads=args.threads)

    run()  # warm: compile or load the numba cache
    read_s, rows = best(read, args.repeat)
    total_s, result = best(run, args.repeat)
    kernel_s = _kernel_seconds(ph, md, args.threads, args.kernel_repeat)
    audit = result.audit
    evaluated = audit["edits"]["claims_evaluated"]

    import numba

    figures = {
        "members_in_book": args.members,
        "book": str(book),
        "input_rows": rows,
        "pharmacy_rows_used": audit["pharmacy"]["buckets"]["used"],
        "claims_evaluated": evaluated,
        "members_with_claims": audit["members_scored"],
        "threads": numba.get_num_threads(),
        "pyarrow_read_s": round(read_s, 3),
        "edits_end_to_end_s": round(total_s, 3),
        "edits_over_read": round(total_s / read_s, 2),
        "stages_s": audit["seconds"],
        "end_to_end_claims_per_s": round(evaluated / total_s),
        "kernel_s": round(kernel_s, 4),
        "kernel_claims_per_s": round(evaluated / max(kernel_s, 1e-9)),
        "kernel_book_members_per_s": round(args.members / max(kernel_s, 1e-9)),
        "overrides": args.overrides,
        "fired": audit["edits"]["fired"],
        "members_hit": audit["edits"]["members_hit"],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Book-of-business run: ``rxrisk score --stream`` on a (large) book, in a child process, with
its wall time, peak memory and the audit's stage seconds; optionally also the in-memory path
on the same book, checking the two member tables are byte-identical.

    python bench/bench_stream.py --book /tmp/book20m          # book written by
    rxrisk generate --members 20000000 --seed 1 --part-members 1000000 --out /tmp/book20m

``--book`` holds ``pharmacy`` and ``medical`` (files or folders of Parquet parts). Prints JSON.
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


def _input(book: Path, name: str) -> Path:
    for candidate in (book / name, book / f"{name}.parquet"):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{book}: no {name} or {name}.parquet")


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of ``rxrisk ARGS`` in a fresh child process."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "rxrisk.cli", *args], stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"rxrisk {' '.join(args)} failed:\n{err.read().decode()}")
    return wall, usage.ru_maxrss * 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--book", required=True, type=Path)
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--partitions", type=int, default=None)
    p.add_argument("--memory-budget", default=None)
    p.add_argument("--spill-dir", default=None)
    p.add_argument(
        "--compare-in-memory",
        action="store_true",
        help="also score in memory (needs the book to fit) and compare the member tables",
    )
    p.add_argument("--json", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)

    ph, md = _input(args.book, "pharmacy"), _input(args.book, "medical")
    out = {"book": str(args.book)}
    with tempfile.TemporaryDirectory(prefix="rxrisk-bench-stream-") as tmp:
        tmp = Path(tmp)
        common = [str(ph), "--medical", str(md), "--as-of", args.as_of, "--quiet"]
        if args.threads:
            common += ["--threads", str(args.threads)]
        stream = ["score", *common, "--stream", "--out", str(tmp / "s.parquet")]
        stream += ["--audit", str(tmp / "s.json")]
        for flag in ("partitions", "memory_budget", "spill_dir"):
            value = getattr(args, flag)
            if value is not None:
                stream += [f"--{flag.replace('_', '-')}", str(value)]
        wall, peak = run_cli(stream)
        audit = json.loads((tmp / "s.json").read_text())
        rows = audit["pharmacy"]["rows_read"] + audit["medical"]["rows_read"]
        out["stream"] = {
            "wall_s": round(wall, 1),
            "peak_rss_gib": round(peak / (1 << 30), 2),
            "pharmacy_rows": audit["pharmacy"]["rows_read"],
            "medical_rows": audit["medical"]["rows_read"],
            "rows_per_s": round(rows / wall),
            "members_scored": audit["members_scored"],
            "stages_s": audit["seconds"],
            "pharmacy_buckets": audit["pharmacy"]["buckets"],
        }
        print(json.dumps(out["stream"]), file=sys.stderr, flush=True)
        if args.compare_in_memory:
            mem = ["score", *common, "--in-memory", "--out", str(tmp / "m.parquet")]
            mem += ["--audit", str(tmp / "m.json")]
            wall_m, peak_m = run_cli(mem)
            m_audit = json.loads((tmp / "m.json").read_text())
            same_audit = {k: v for k, v in m_audit.items() if k != "seconds"} == {
                k: v for k, v in audit.items() if k != "seconds"
            }
            out["in_memory"] = {
                "wall_s": round(wall_m, 1),
                "peak_rss_gib": round(peak_m / (1 << 30), 2),
                "member_table_byte_identical": (tmp / "m.parquet").read_bytes()
                == (tmp / "s.parquet").read_bytes(),
                "audit_equal_but_seconds": same_audit,
            }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

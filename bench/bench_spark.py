"""The Spark engine (rxrisk.spark, local master) against the in-process engine on one book.

    python bench/bench_spark.py --members 1000000 --master local[2]

Prints JSON figures measured in this one process on this machine:
- in-process ``rxrisk.score`` end to end (read, validate, encode, kernels, rules, output),
  best of ``--repeat``, with all cores;
- Spark: session start-up, a warm-up run on a tiny book (Python workers start and load the
  numba cache), then ``rxrisk.spark.score`` on the book (read with ``read_pharmacy`` /
  ``read_medical``, both stages, audit) and the collect of the member table to Arrow;
- ``overhead_ratio``: Spark seconds (score + collect) over in-process seconds; and whether
  the two member tables and audits are equal (they must be).

The book is generated with ``rxrisk.synthetic.generate_book`` when the folder has no
pharmacy.parquet / medical.parquet yet (same folder naming as bench/run_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ensure_book


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--book", type=Path, default=None, help="book folder (generated if missing)")
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--partitions", type=int, default=16, help="partitions of both stages")
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--repeat", type=int, default=2, help="runs of each engine (best is kept)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)

    import pyarrow.parquet as pq

    import rxrisk
    from rxrisk import spark as rxspark

    book = args.book or Path(tempfile.gettempdir()) / f"rxrisk-book-{args.members}-{args.seed}"
    ensure_book(book, args.members, args.seed)
    ph, md = book / "pharmacy.parquet", book / "medical.parquet"
    rows = pq.ParquetFile(ph).metadata.num_rows + pq.ParquetFile(md).metadata.num_rows

    local_s, local = float("inf"), None
    for _ in range(args.repeat):
        t = time.perf_counter()
        local = rxrisk.score(str(ph), str(md), as_of=args.as_of)
        local_s = min(local_s, time.perf_counter() - t)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    t = time.perf_counter()
    spark = (
        SparkSession.builder.master(args.master)
        .appName("rxrisk bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.shuffle.partitions", str(args.partitions))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tiny:
        from rxrisk.synthetic import generate_book

        generate_book(tiny, members=200, seed=1)
        t = time.perf_counter()
        warm = rxspark.score(
            rxspark.read_pharmacy(spark, Path(tiny) / "pharmacy.parquet"),
            rxspark.read_medical(spark, Path(tiny) / "medical.parquet"),
            as_of=args.as_of,
        )
        warm.to_arrow()
        warm.unpersist()
        warmup_s = time.perf_counter() - t

    best = None
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = rxspark.score(
            rxspark.read_pharmacy(spark, ph), rxspark.read_medical(spark, md), as_of=args.as_of
        )
        score_s = time.perf_counter() - t
        members = result.to_arrow()
        total_s = time.perf_counter() - t
        result.unpersist()
        if best is None or total_s < best[0]:
            best = (total_s, score_s, total_s - score_s, members, result.audit)
    total_s, score_s, collect_s, members, audit = best
    same_audit = all(
        audit[k] == local.audit[k]
        for k in ("pharmacy", "medical", "members_scored", "rows_out", "config_digest")
    )
    import pyspark

    figures = {
        "members_in_book": args.members,
        "input_rows": rows,
        "members_scored": local.audit["members_scored"],
        "as_of": args.as_of,
        "cores": os.cpu_count(),
        "master": args.master,
        "partitions": args.partitions,
        "pyspark": pyspark.__version__,
        "local_s": round(local_s, 3),
        "spark_session_start_s": round(start_s, 3),
        "spark_warmup_s": round(warmup_s, 3),
        "spark_score_s": round(score_s, 3),
        "spark_collect_s": round(collect_s, 3),
        "spark_total_s": round(total_s, 3),
        "spark_audit_seconds": audit["seconds"],
        "overhead_ratio": round(total_s / local_s, 2),
        "equal_members": bool(members.equals(local.members)),
        "equal_audit": bool(same_audit),
    }
    spark.stop()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if figures["equal_members"] and figures["equal_audit"] else 1


if __name__ == "__main__":
    sys.exit(main())

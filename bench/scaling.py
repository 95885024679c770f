"""Scaling table of ``rxrisk.score``: book sizes x numba threads, end to end and per stage.

    python bench/scaling.py --sizes 100000,300000,1000000 --books-dir /tmp/books_scaling \\
        --book 1000000=/tmp/book1m --threads 1,2 --repeat 3 --json scaling.json

For each book size (generated with seed ``--seed`` into ``--books-dir/book-<members>-<seed>``
unless that folder, or a ``--book N=DIR`` folder, already holds one) the engine is warmed
once, then ``rxrisk.score`` runs ``--repeat`` times per thread count, the thread counts
alternating (1, 2, 2, 1, ...) so that a slow moment of the machine does not land on one of
them only. Reported per size and thread count: the best end-to-end seconds and the best
seconds of each stage over the repeats (audit ``seconds``), pharmacy rows per end-to-end
second, process CPU seconds / wall seconds of the fastest run (how much of a second core
was used) and the other processes' CPU during it in cores (Linux; the noise it carries), and
on the 2-thread rows the speed-up over 1 thread, end to end and kernels.

On a shared machine, ``--settle S`` waits before each run (at most S seconds) for a moment
when the other processes use under a quarter of a core.

Threads: numba's thread count is set before each call as well as passed as ``threads=``
(which itself takes effect at the kernel stage; validation's parallel hashing and sort use
the count already in force). Arrow's read uses its own thread pool (all cores) either way.
Prints a markdown table; ``--json`` also writes every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import ensure_book

STAGES = ("read", "validate", "select", "encode", "kernels", "rules", "output")


def machine_busy_s() -> float | None:
    """CPU seconds all processes of the machine have run (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _book_dirs(sizes, books_dir: Path, seed: int, given: list[str]) -> dict[int, Path]:
    dirs = {n: books_dir / f"book-{n}-{seed}" for n in sizes}
    for item in given:
        n, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--book {item!r}: write it as MEMBERS=DIR")
        dirs[int(n)] = Path(path)
    return dirs


def settle(max_s: float, below: float = 0.25, window: float = 2.0) -> None:
    """Wait (at most ``max_s``) until the other processes use fewer than ``below`` cores over
    ``window`` seconds: on a shared machine, start each run in a quiet moment if one comes."""
    deadline = time.perf_counter() + max_s
    while time.perf_counter() < deadline:
        busy, own = machine_busy_s(), time.process_time()
        if busy is None:
            return
        time.sleep(window)
        if (machine_busy_s() - busy - (time.process_time() - own)) / window < below:
            return


def measure(
    book: Path, threads: list[int], repeat: int, as_of: str, settle_s: float = 0.0
) -> list[dict]:
    import rxrisk
    from rxrisk.scoring.run import set_threads

    ph, md = str(book / "pharmacy.parquet"), str(book / "medical.parquet")
    runs = {n: [] for n in threads}

    def one(n):
        set_threads(n)
        gc.collect()
        if settle_s:
            settle(settle_s)
        busy = machine_busy_s()
        w, c = time.perf_counter(), time.process_time()
        result = rxrisk.score(ph, md, as_of=as_of, threads=n)
        w, c = time.perf_counter() - w, time.process_time() - c
        # other processes' CPU during the run, in cores (the noise this figure carries)
        other = None if busy is None else max(0.0, (machine_busy_s() - busy - c) / w)
        runs[n].append(
            {"wall_s": w, "cpu_s": c, "other_cores": other, "stages_s": result.audit["seconds"]}
        )
        return result

    warm = one(threads[0])  # compile or load the numba cache; not kept
    members_scored = warm.audit["members_scored"]
    del warm
    runs[threads[0]].clear()
    for r in range(repeat):
        for n in threads if r % 2 == 0 else threads[::-1]:
            one(n)
    set_threads(max(threads))

    rows = []
    for n in threads:
        fastest = min(runs[n], key=lambda x: x["wall_s"])
        rows.append(
            {
                "threads": n,
                "end_to_end_s": round(fastest["wall_s"], 3),
                "cpu_over_wall": round(fastest["cpu_s"] / fastest["wall_s"], 2),
                "other_cores": fastest["other_cores"],
                "stages_best_s": {
                    s: round(min(x["stages_s"][s] for x in runs[n]), 3) for s in STAGES
                },
                "members_scored": members_scored,
                "runs": runs[n],
            }
        )
    return rows


def table(results: list[dict]) -> str:
    cols = [
        "members",
        "pharmacy rows",
        "threads",
        "end to end s",
        "read",
        "validate",
        "select + encode",
        "kernels",
        "rules + output",
        "pharmacy rows/s",
        "CPU s / wall s",
        "other processes (cores)",
        "speed-up vs 1 thread: end to end / kernels",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for res in results:
        base = next((r for r in res["rows"] if r["threads"] == 1), None)
        for r in res["rows"]:
            st = r["stages_best_s"]
            speed = ""
            if base is not None and r is not base:
                speed = (
                    f"{base['end_to_end_s'] / r['end_to_end_s']:.2f}x / "
                    f"{base['stages_best_s']['kernels'] / max(st['kernels'], 1e-9):.2f}x"
                )
            cells = [
                f"{res['members']:,}",
                f"{res['pharmacy_rows']:,}",
                str(r["threads"]),
                f"{r['end_to_end_s']:.2f}",
                f"{st['read']:.2f}",
                f"{st['validate']:.2f}",
                f"{st.get('select', 0.0) + st['encode']:.2f}",
                f"{st['kernels']:.3f}",
                f"{st['rules'] + st['output']:.2f}",
                f"{res['pharmacy_rows'] / r['end_to_end_s'] / 1e6:.2f} M",
                f"{r['cpu_over_wall']:.2f}",
                "-" if r["other_cores"] is None else f"{r['other_cores']:.1f}",
                speed,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="100000,300000,1000000", help="members, comma-separated")
    p.add_argument("--books-dir", type=Path, default=Path("/tmp/books_scaling"))
    p.add_argument(
        "--book", action="append", default=[], metavar="N=DIR", help="use DIR for size N"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run wait up to S seconds for other processes to use < 0.25 cores",
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    threads = [int(x) for x in args.threads.split(",")]

    import numba

    if max(threads) > numba.config.NUMBA_NUM_THREADS:
        raise SystemExit(f"numba has {numba.config.NUMBA_NUM_THREADS} threads at most")
    results = []
    for n, book in _book_dirs(sizes, args.books_dir, args.seed, args.book).items():
        ensure_book(book, n, args.seed)
        t = time.perf_counter()
        rows = measure(book, threads, args.repeat, args.as_of, args.settle)
        print(f"{n:,} members: measured in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        results.append(
            {
                "members": n,
                "book": str(book),
                "pharmacy_rows": pq.ParquetFile(book / "pharmacy.parquet").metadata.num_rows,
                "medical_rows": pq.ParquetFile(book / "medical.parquet").metadata.num_rows,
                "rows": rows,
            }
        )
    load = os.getloadavg()
    print(table(results))
    print(
        f"\n{platform.node() or 'this machine'}: {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; "
        f"best of {args.repeat} per cell",
        file=sys.stderr,
    )
    if args.json:
        out = {
            "cores": os.cpu_count(),
            "loadavg_end": load,
            "repeat": args.repeat,
            "settle_s": args.settle,
        }
        args.json.write_text(json.dumps({**out, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

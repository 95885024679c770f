"""Benchmark of ``rxrisk edits`` (the point-of-sale safety-edit replay) on a generated book.

    python bench/bench_edits.py --members 1000000 --book /tmp/rxrisk-book-1000000-1

Prints JSON figures, all measured in this one process on this machine:
- pyarrow read time of the columns the engine reads (the floor any engine pays);
- end-to-end replay time (read, validate, encode, kernel, claim table) as claims evaluated per
  second, its stages, and its ratio to the read time;
- kernel-only throughput: the replay kernel alone over the already encoded claims, as claims
  evaluated per second (best of ``--kernel-repeat``);
- what the book's replay found: claims evaluated, members with an evaluated claim, and per edit
  the claims it would have stopped and the members they belong to.

The book is generated with ``rxrisk.synthetic.generate_book`` when the folder has no
pharmacy.parquet / medical.parquet yet (the same folder naming as bench/run_bench.py, so both
benchmarks share books).

The skewed book (``--skew-claims N``) is that book plus one member with N opioid and
benzodiazepine claims in one year (``--same-day``: all filled on one day), heavily overlapping:
the worst case of the replay, whose work per member must stay O(n log n). It also times
``rxrisk.score`` on the same files, and reports ``edits_over_score``: the median over
``--repeat`` rounds of the per-round ratio of the two end-to-end times (bench/guard.py checks
it).

    python bench/bench_edits.py --members 100000 --skew-claims 1000000
    python bench/bench_edits.py --members 1000 --skew-claims 100000 --same-day
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, best, ensure_book

AS_OF = "2025-12-31"
SKEW_MEMBER = "M-SKEWED-0000001"
#: The skewed member's drugs: (drug_class, ingredient, long_acting), one NDC of the packaged
#: reference each (the smallest with an MME factor for the opioids).
SKEW_DRUGS = (
    ("opioid", "oxycodone", False),
    ("opioid", "oxycodone", True),
    ("opioid", "morphine", True),
    ("opioid", "hydrocodone", False),
    ("opioid", "tramadol", False),
    ("opioid", "methadone", True),
    ("opioid", "fentanyl", True),
    ("benzodiazepine", "alprazolam", False),
    ("benzodiazepine", "lorazepam", False),
)


def skew_ndcs() -> list[str]:
    """One NDC of the packaged reference per entry of :data:`SKEW_DRUGS`."""
    from rxrisk.config.settings import load_config

    ref = load_config().reference
    out = []
    for cls, ingredient, long_acting in SKEW_DRUGS:
        mask = pc.and_(
            pc.and_(pc.equal(ref["drug_class"], cls), pc.equal(ref["ingredient"], ingredient)),
            pc.equal(ref["long_acting"], long_acting),
        )
        if cls == "opioid":
            mask = pc.and_(mask, pc.is_valid(ref["mme_factor"]))
        ndcs = sorted(ref.filter(mask)["ndc"].to_pylist())
        if not ndcs:
            raise SystemExit(f"no {cls} {ingredient} (long_acting={long_acting}) in the reference")
        out.append(ndcs[0])
    return out


def skewed_member(claims: int, seed: int = 1, same_day: bool = False, schema=None) -> pa.Table:
    """Pharmacy rows of one member with ``claims`` paid claims in 2025 (or all on 2025-03-01).

    80% opioids of seven drugs (long-acting and short-acting, several ingredients), 20%
    benzodiazepines; 500 prescribers, 30 pharmacies; 7 to 90 days' supply. Rows come in fill
    date order. ``schema``: cast to it (the normal book's pharmacy schema).
    """
    rng = np.random.default_rng(seed)
    ndcs = np.array(skew_ndcs())
    n_opioid = sum(cls == "opioid" for cls, _, _ in SKEW_DRUGS)
    opioid = rng.random(claims) < 0.8
    drug = np.where(
        opioid,
        rng.integers(0, n_opioid, claims),
        rng.integers(n_opioid, len(ndcs), claims),
    )
    if same_day:
        day = np.full(claims, 59, np.int32)
    else:
        day = np.sort(rng.integers(0, 365, claims)).astype(np.int32)
    first = (np.datetime64("2025-01-01") - np.datetime64("1970-01-01")).astype(int)
    supply = rng.choice(np.array([7, 14, 30, 30, 30, 90], np.int32), claims)
    table = pa.table(
        {
            "member_id": pa.array(np.full(claims, SKEW_MEMBER)),
            "fill_date": pa.array(day + np.int32(first), pa.int32()).cast(pa.date32()),
            "ndc": pa.array(ndcs[drug]),
            "quantity": pa.array(rng.choice([10.0, 30.0, 60.0, 90.0, 120.0], claims)),
            "days_supply": pa.array(supply, pa.int32()),
            "prescriber_id": pa.array(np.char.add("SKP", rng.integers(0, 500, claims).astype(str))),
            "pharmacy_id": pa.array(np.char.add("SKR", rng.integers(0, 30, claims).astype(str))),
            "claim_id": pa.array(np.char.add("SKEW", np.arange(claims).astype(str))),
            "claim_status": pa.array(np.full(claims, "paid")),
        }
    )
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    return table


def ensure_skewed_book(path: Path, base: Path, claims: int, seed: int, same_day: bool) -> None:
    """Write ``path/pharmacy.parquet`` (the ``base`` book's pharmacy rows, then the skewed
    member's) and ``path/medical.parquet`` (``base``'s) unless both exist."""
    if (path / "pharmacy.parquet").exists() and (path / "medical.parquet").exists():
        return
    path.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    normal = pq.read_table(base / "pharmacy.parquet")
    skew = skewed_member(claims, seed, same_day, normal.schema)
    pq.write_table(pa.concat_tables([normal, skew]), path / "pharmacy.parquet.tmp")
    (path / "pharmacy.parquet.tmp").replace(path / "pharmacy.parquet")
    pq.write_table(pq.read_table(base / "medical.parquet"), path / "medical.parquet")
    print(
        f"wrote the skewed book {path} ({claims:,} claims of one member) in "
        f"{time.perf_counter() - t:.1f}s",
        file=sys.stderr,
    )


def skewed_book_path(members: int, seed: int, claims: int, same_day: bool) -> Path:
    """Where the skewed book of these parameters is cached (temp dir)."""
    kind = "sameday" if same_day else "year"
    return Path(tempfile.gettempdir()) / f"rxrisk-skew-book-{members}-{seed}-{claims}-{kind}"


def edits_over_score(ph: str, md: str, rounds: int, threads, warm: bool = True) -> dict:
    """Interleaved end-to-end ``replay_edits`` and ``score`` runs on the same files: the median
    over the rounds of the per-round ratio (the two runs of a round are adjacent in time).
    ``warm``: run each once first, unmeasured (numba compile or cache load, page cache)."""
    import gc

    import rxrisk

    if warm:
        rxrisk.replay_edits(ph, md, threads=threads)
        rxrisk.score(ph, md, as_of=AS_OF, threads=threads)
    edits_s, score_s = [], []
    for i in range(max(1, rounds)):
        for what in ("edits", "score") if i % 2 == 0 else ("score", "edits"):
            gc.collect()
            t = time.perf_counter()
            if what == "edits":
                rxrisk.replay_edits(ph, md, threads=threads)
                edits_s.append(time.perf_counter() - t)
            else:
                rxrisk.score(ph, md, as_of=AS_OF, threads=threads)
                score_s.append(time.perf_counter() - t)
    per_round = [a / max(b, 1e-9) for a, b in zip(edits_s, score_s, strict=True)]
    return {
        "value": round(statistics.median(per_round), 3),
        "per_round": [round(r, 3) for r in per_round],
        "edits_s": [round(x, 3) for x in edits_s],
        "score_s": [round(x, 3) for x in score_s],
    }


def _kernel_seconds(ph: Path, md: Path, threads, repeat: int) -> float:
    """Best time of the replay kernel alone over the encoded claims of the book."""
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.edits import drug_keys, load_edits
    from rxrisk.edits.run import run_edits_kernel
    from rxrisk.ingest.select import ingest
    from rxrisk.scoring.encode import encode_used

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
    p.add_argument(
        "--skew-claims",
        type=int,
        default=0,
        metavar="N",
        help="add one member with N claims in one year to the book (the skewed book)",
    )
    p.add_argument("--same-day", action="store_true", help="the skewed member's claims: one day")
    args = p.parse_args(argv)
    book = args.book or Path(tempfile.gettempdir()) / f"rxrisk-book-{args.members}-{args.seed}"
    ensure_book(book, args.members, args.seed)
    if args.skew_claims > 0:
        base = book
        book = skewed_book_path(args.members, args.seed, args.skew_claims, args.same_day)
        ensure_skewed_book(book, base, args.skew_claims, args.seed, args.same_day)
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
    if args.skew_claims > 0:
        figures["skewed_member_claims"] = args.skew_claims
        figures["skewed_same_day"] = args.same_day
        figures["edits_over_score"] = edits_over_score(str(ph), str(md), args.repeat, args.threads)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A peer implementation of the core metrics in DuckDB SQL, to compare with ``rxrisk.score``.

Written the way an analyst would: the engine's validated *used* pharmacy fills go in as one Arrow
table (so that metrics, not validation, are compared), then plain SQL expands every fill to the days
it covers, aggregates per member-day (``mme(d)``, opioid / benzodiazepine / CNS coverage) and
computes the window metrics with filtered aggregates.

    python bench/peer_duckdb.py --members 1000000 --book /tmp/book1m

prints JSON: the peer query seconds, ``rxrisk.score`` end-to-end seconds and its metric stages
(encode + kernels + rules from the audit), and their ratios, all measured in this one process.
Both sides start from the same rows: the peer from the used fills as an Arrow table (built
outside its timing), the engine's metric stages from the used rows its ``select`` stage took
out of the book (also reported, with the ratio that counts it against the engine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from _common import best

WINDOWS = (90, 180, 365)
HIGH_DOSE_MME = 90.0
TOLERANCE = 1e-9
CNS_CLASSES = ("benzodiazepine", "gabapentinoid", "muscle_relaxant", "sedative_hypnotic")

#: the peer's output columns, in order (after ``member_id``)
PEER_COLUMNS = [
    f"{name}_{w}d"
    for w in WINDOWS
    for name in (
        "opioid_fills",
        "opioid_prescribers",
        "opioid_pharmacies",
        "opioid_days",
        "mme_total",
        "mme_avg",
        "mme_peak",
        "high_dose_days",
        "benzo_fills",
        "benzo_overlap_days",
        "cns_overlap_days",
    )
]


def used_fills(pharmacy, medical=None, *, max_days_supply: int | None = None) -> pa.Table:
    """The engine's validated used pharmacy rows as one Arrow table (input order).

    Columns: member_id, fill_date (date32), end_date (the last covered day), drug_class,
    daily_mme, prescriber_id, pharmacy_id. Built with :func:`rxrisk.ingest.select.ingest`,
    :func:`rxrisk.ingest.select.select_used` and the engine's encoder
    (:func:`rxrisk.scoring.encode.encode_selected`, the body of ``encode_used``), so the
    covered days and daily MME are the engine's own.
    """
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.select import ingest, select_used
    from rxrisk.scoring.encode import encode_selected

    data = ingest(pharmacy, medical, load_config(), clock=Clock(), max_days_supply=max_days_supply)
    selected = select_used(data)
    fills = selected.fills  # the used rows in input order, ids trimmed
    claims = encode_selected(selected, data.reference)
    # the claims are in member order: put each one back at its input row's place
    at = np.searchsorted(fills.column("row").to_numpy(), claims.row)
    end = np.empty(len(at), np.int32)
    mme = np.empty(len(at), np.float64)
    end[at], mme[at] = claims.end, claims.mme
    ref_index = pa.array(fills.column("ref_index").to_numpy())
    return pa.table(
        {
            "member_id": fills.column("member_id"),
            "fill_date": fills.column("fill_date").cast(pa.date32()),
            "end_date": pa.array(end, pa.int32()).cast(pa.date32()),
            "drug_class": data.reference.column("drug_class").combine_chunks().take(ref_index),
            "daily_mme": pa.array(mme, pa.float64()),
            "prescriber_id": fills.column("prescriber_id"),
            "pharmacy_id": fills.column("pharmacy_id"),
        }
    )


def peer_sql(as_of: dt.date, windows=WINDOWS) -> str:
    """The peer query over a relation named ``fills`` (see :func:`used_fills`)."""
    a = f"DATE '{as_of.isoformat()}'"
    h = max(windows)
    cns = ", ".join(f"'{c}'" for c in CNS_CLASSES)
    day_aggs, fill_aggs, outs = [], [], []
    for w in windows:
        lo = f"{a} - INTERVAL {w - 1} DAY"
        in_w = f"d >= {lo}"
        day_aggs += [
            f"count(*) FILTER (WHERE op AND {in_w}) AS opioid_days_{w}d",
            f"coalesce(sum(mme) FILTER (WHERE op AND {in_w}), 0.0) AS mme_total_{w}d",
            f"coalesce(max(mme) FILTER (WHERE op AND {in_w}), 0.0) AS mme_peak_{w}d",
            f"count(*) FILTER (WHERE mme >= {HIGH_DOSE_MME - TOLERANCE!r} AND {in_w})"
            f" AS high_dose_days_{w}d",
            f"count(*) FILTER (WHERE op AND bz AND {in_w}) AS benzo_overlap_days_{w}d",
            f"count(*) FILTER (WHERE op AND cns AND {in_w}) AS cns_overlap_days_{w}d",
        ]
        f_in_w = f"fill_date >= {lo}"
        fill_aggs += [
            f"count(*) FILTER (WHERE is_opioid AND {f_in_w}) AS opioid_fills_{w}d",
            f"count(DISTINCT prescriber_id) FILTER (WHERE is_opioid AND {f_in_w})"
            f" AS opioid_prescribers_{w}d",
            f"count(DISTINCT pharmacy_id) FILTER (WHERE is_opioid AND {f_in_w})"
            f" AS opioid_pharmacies_{w}d",
            f"count(*) FILTER (WHERE is_benzo AND {f_in_w}) AS benzo_fills_{w}d",
        ]
        outs += [
            f"coalesce(fa.opioid_fills_{w}d, 0) AS opioid_fills_{w}d",
            f"coalesce(fa.opioid_prescribers_{w}d, 0) AS opioid_prescribers_{w}d",
            f"coalesce(fa.opioid_pharmacies_{w}d, 0) AS opioid_pharmacies_{w}d",
            f"coalesce(da.opioid_days_{w}d, 0) AS opioid_days_{w}d",
            f"coalesce(da.mme_total_{w}d, 0.0) AS mme_total_{w}d",
            f"CASE WHEN coalesce(da.opioid_days_{w}d, 0) = 0 THEN 0.0"
            f" ELSE da.mme_total_{w}d / da.opioid_days_{w}d END AS mme_avg_{w}d",
            f"coalesce(da.mme_peak_{w}d, 0.0) AS mme_peak_{w}d",
            f"coalesce(da.high_dose_days_{w}d, 0) AS high_dose_days_{w}d",
            f"coalesce(fa.benzo_fills_{w}d, 0) AS benzo_fills_{w}d",
            f"coalesce(da.benzo_overlap_days_{w}d, 0) AS benzo_overlap_days_{w}d",
            f"coalesce(da.cns_overlap_days_{w}d, 0) AS cns_overlap_days_{w}d",
        ]
    nl = ",\n    "
    return f"""
WITH tracked AS (
  SELECT member_id, fill_date, end_date, daily_mme, prescriber_id, pharmacy_id,
         drug_class = 'opioid' AS is_opioid,
         drug_class = 'benzodiazepine' AS is_benzo,
         drug_class IN ({cns}) AS is_cns
  FROM fills
  WHERE drug_class = 'opioid' OR drug_class IN ({cns})
),
horizon AS (
  SELECT * FROM tracked
  WHERE fill_date <= {a} AND end_date >= {a} - INTERVAL {h - 1} DAY
),
member_days AS (
  SELECT member_id, d,
         sum(daily_mme) FILTER (WHERE is_opioid) AS mme,
         bool_or(is_opioid) AS op,
         bool_or(is_benzo) AS bz,
         bool_or(is_cns) AS cns
  FROM (
    SELECT member_id, daily_mme, is_opioid, is_benzo, is_cns,
           unnest(generate_series(
             greatest(fill_date, CAST({a} - INTERVAL {h - 1} DAY AS DATE)),
             least(end_date, {a}),
             INTERVAL 1 DAY)) AS d
    FROM horizon
  )
  GROUP BY member_id, d
),
day_aggs AS (
  SELECT member_id,
    {nl.join(day_aggs)}
  FROM member_days GROUP BY member_id
),
fill_aggs AS (
  SELECT member_id,
    {nl.join(fill_aggs)}
  FROM horizon WHERE fill_date >= {a} - INTERVAL {h - 1} DAY
  GROUP BY member_id
)
SELECT coalesce(da.member_id, fa.member_id) AS member_id,
    {nl.join(outs)}
FROM day_aggs da FULL OUTER JOIN fill_aggs fa ON da.member_id = fa.member_id
ORDER BY member_id
"""


def peer_metrics(fills_table: pa.Table, as_of, *, con=None) -> pa.Table:
    """The peer's per-member metrics at ``as_of`` (date or 'YYYY-MM-DD') as an Arrow table.

    One row per member with a tracked fill (opioid or CNS-active) touching the longest window.
    """
    import duckdb

    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    own = con is None
    con = con or duckdb.connect()
    try:
        con.register("fills", fills_table)
        rel = con.sql(peer_sql(as_of))
        # DuckDB 2 has to_arrow_table; DuckDB 1 returns a Table from arrow()
        out = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        con.unregister("fills")
    finally:
        if own:
            con.close()
    return out.select(["member_id", *PEER_COLUMNS])


def compare(peer: pa.Table, engine: pa.Table) -> dict:
    """Members in both tables and the number of differing values per column (ints exactly,
    floats within rel/abs 1e-9)."""
    import pyarrow.compute as pc

    at = pc.index_in(peer.column("member_id"), value_set=engine.column("member_id"))
    both = np.flatnonzero(at.is_valid().to_numpy(zero_copy_only=False))
    eng_rows = pa.array(at.to_numpy(zero_copy_only=False)[both].astype(np.int64))
    diffs = {}
    for col in PEER_COLUMNS:
        x = peer.column(col).to_numpy()[both]
        y = engine.column(col).take(eng_rows).to_numpy()
        if np.issubdtype(y.dtype, np.floating):
            bad = ~np.isclose(x, y, rtol=1e-9, atol=1e-9)
        else:
            bad = x != y
        if bad.any():
            diffs[col] = int(bad.sum())
    return {"members_compared": len(both), "columns_with_differences": diffs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--book", type=Path, required=True, help="book folder (generated if missing)")
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="numba and DuckDB threads")
    p.add_argument("--check", action="store_true", help="also compare peer and engine values")
    args = p.parse_args(argv)
    ph, md = args.book / "pharmacy.parquet", args.book / "medical.parquet"
    if not (ph.exists() and md.exists()):
        from rxrisk.synthetic import generate_book

        args.book.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate_book(args.book, members=args.members, seed=args.seed)
        print(
            f"generated {args.members:,} members in {time.perf_counter() - t:.1f}s", file=sys.stderr
        )

    import duckdb

    import rxrisk

    def engine():
        return rxrisk.score(str(ph), str(md), as_of=args.as_of, threads=args.threads)

    engine()  # warm: compile / load the numba cache
    engine_s, result = best(engine, args.repeat)
    stages = result.audit["seconds"]
    metric_stage = stages["encode"] + stages["kernels"] + stages["rules"]
    with_select = metric_stage + stages.get("select", 0.0)

    t = time.perf_counter()
    fills = used_fills(str(ph), str(md))
    prep_s = time.perf_counter() - t
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    peer_s, peer = best(lambda: peer_metrics(fills, args.as_of, con=con), args.repeat)
    duck_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.close()

    import numba

    figures = {
        "members_in_book": args.members,
        "as_of": args.as_of,
        "used_fills": fills.num_rows,
        "peer_members": peer.num_rows,
        "engine_members": result.members.num_rows,
        "numba_threads": numba.get_num_threads(),
        "duckdb_threads": duck_threads,
        "duckdb_version": duckdb.__version__,
        "peer_fill_table_prep_s": round(prep_s, 3),
        "peer_query_s": round(peer_s, 3),
        "engine_end_to_end_s": round(engine_s, 3),
        "engine_metric_stage_s": round(metric_stage, 3),
        "engine_stages_s": stages,
        "peer_query_over_engine_metric_stage": round(peer_s / max(metric_stage, 1e-9), 1),
        "peer_query_over_engine_select_and_metric_stages": round(
            peer_s / max(with_select, 1e-9), 1
        ),
        "peer_query_over_engine_end_to_end": round(peer_s / max(engine_s, 1e-9), 2),
    }
    if args.check:
        figures["check"] = compare(peer, result.members)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The standard measures on Spark: claims bucketed by claim id (stage A of ``score``), then used
claims, medical rows, eligibility and members partitioned together by member id, each partition
measured by the in-process code; the detail is collected and the summary made on the driver."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.clock import Clock
from rxrisk.days import date_of
from rxrisk.engines import local
from rxrisk.engines.spark import driver, stages
from rxrisk.engines.spark.read import ROW
from rxrisk.engines.spark.stages import AUDIT, KEY, ORD, SRC
from rxrisk.engines.stream import member_order
from rxrisk.engines.stream_measures import DETAIL_ORDER, measure_detail
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs
from rxrisk.ingest.intake import Offenders, audit_warnings, check
from rxrisk.quality.detail import detail_schema
from rxrisk.quality.enrollment import read_enrollment
from rxrisk.quality.enrollment_checks import ELIGIBILITY_REASONS, MEMBERS_REASONS
from rxrisk.quality.run import periods_of
from rxrisk.quality.settings import MeasureSettings, load_measure_settings
from rxrisk.quality.summary import summary_table
from rxrisk.scoring.run import set_threads
from rxrisk.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

DETAIL = "_rx_detail"
"""Output column of the measures stage: a slice of a partition's detail as Arrow IPC bytes."""
SRC_ELIGIBILITY, SRC_MEMBERS = 3, 4
_DETAIL_ROWS = 65536  # detail rows per output row
_ENROLLMENT = (
    ("eligibility", "e__", SRC_ELIGIBILITY, ELIGIBILITY_REASONS),
    ("members", "b__", SRC_MEMBERS, MEMBERS_REASONS),
)


@dataclass
class SparkMeasures:
    """What :func:`measures` returns; unpacks as ``summary, detail, audit``.

    Attributes
    ----------
    summary, detail : pyarrow.Table
        The summary of rates and the member detail, equal to :func:`rxrisk.measures`'s.
    audit : dict
        The audit blocks summed over partitions; ``seconds`` holds ``prepare`` (driver),
        ``run`` (the Spark job) and ``measures_tasks`` (task seconds summed).
    """

    summary: pa.Table
    detail: pa.Table
    audit: dict

    def __iter__(self):
        return iter((self.summary, self.detail, self.audit))


@dataclass(frozen=True)
class Measured:
    """What the measures stage needs besides :class:`~rxrisk.engines.spark.stages.Shipped`."""

    periods: tuple[tuple[int, int], ...]
    settings: bytes  # MeasureSettings as JSON
    eligibility_columns: tuple[str, ...]
    members_columns: tuple[str, ...]


# ------------------------------------------------------------------------------ executors


def _enrollment_part(table: pa.Table, src_code: int, prefix: str, columns) -> tuple:
    """The rows of one enrollment input in a partition (their columns unprefixed) and their
    input ordinals."""
    rows = table.filter(pc.equal(table.column(SRC), src_code))
    order = rows.column(ORD).to_numpy()
    rows = rows.select([f"{prefix}{c}" for c in columns]).rename_columns(list(columns))
    return rows, order


def _measure_partition(cfg, measured: Measured, ph, md, enrollment_rows) -> tuple:
    """The in-process measures of one partition: ``(detail, report entries)``."""
    env = stages._env(cfg)
    set_threads(1)
    setup = local.Setup(
        config=env.config,
        days=env.days,
        clock=Clock(),
        threads=1,
        date_format=cfg.date_format,
        max_reject_share=1.0,  # the driver decides on the summed counts
    )
    data, selected = local.ingest_book(ph, md, setup, all_members=False)
    claims = local.encode_book(selected, setup)
    (el, el_order), (mb, mb_order) = enrollment_rows
    enrollment = read_enrollment(
        el,
        mb,
        member_type=data.pharmacy.member_id.type,
        date_format=cfg.date_format,
        max_reject_share=1.0,
    )
    settings = msgspec.json.decode(measured.settings, type=MeasureSettings)
    periods = np.array(measured.periods, np.int32).reshape(-1, 2)
    detail = measure_detail(claims, enrollment, periods, settings, threads=1)
    blocks = {**data.audit_blocks(), **enrollment.audit_blocks()}
    offenders = Offenders()
    checked = (enrollment.eligibility, enrollment.members)
    for (label, _, _, names), rows, order, c in zip(
        _ENROLLMENT, (el, mb), (el_order, mb_order), checked, strict=True
    ):
        offenders.add(label, rows, c.reason, names, row_numbers=order)
    report = {
        "medical": blocks["medical"],
        "used_pharmacy": blocks["pharmacy"]["buckets"]["used"],
        "members_scored": 0,
        "rows_out": detail.num_rows,
        "config_digest": env.config.digest(),
        "eligibility": blocks["eligibility"],
        "members": blocks["members"],
        "enrollment_offenders": {lab: offenders.of(lab) for lab, *_ in _ENROLLMENT},
    }
    return detail, report


def stage_measures(cfg, measured: Measured, batches):
    """Measure one member partition: its detail as Arrow IPC slices, then one audit row."""
    table = stages._read_partition(batches)
    if table is None:
        return
    t0 = time.perf_counter()
    reports, ph, md, md_order = stages._split_partition(cfg, table)
    enrollment_rows = [
        _enrollment_part(table, code, prefix, cols)
        for (_, prefix, code, _), cols in zip(
            _ENROLLMENT, (measured.eligibility_columns, measured.members_columns), strict=True
        )
    ]
    del table
    report: dict = {"stage_a": reports}
    try:
        detail, entries = _measure_partition(cfg, measured, ph, md, enrollment_rows)
    except InputError as exc:
        report["error"] = str(exc)
    else:
        report.update(entries)
        for start in range(0, detail.num_rows, _DETAIL_ROWS):
            yield _row(None, _ipc(detail.slice(start, _DETAIL_ROWS)))
        if md is not None and any(entries["medical"]["rejected_by_reason"].values()):
            report["offenders"] = stages._medical_offenders(cfg, stages._env(cfg), md, md_order)
    report["seconds"] = time.perf_counter() - t0
    yield _row(json.dumps(report), None)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


OUTPUT_SCHEMA = pa.schema([pa.field(AUDIT, pa.string()), pa.field(DETAIL, pa.binary())])


def _row(audit: str | None, detail: bytes | None) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([audit], pa.string()), pa.array([detail], pa.binary())], schema=OUTPUT_SCHEMA
    )


# ------------------------------------------------------------------------------ driver


def _enrollment_columns(df: DataFrame, label: str) -> tuple[str, ...]:
    wanted = inputs.ELIGIBILITY_REQUIRED + inputs.ELIGIBILITY_OPTIONAL
    if label == "members":
        wanted = inputs.MEMBERS_REQUIRED
    return tuple(c for c in wanted if c in df.columns)


def _enrollment_key(df: DataFrame, member_kind: pa.DataType):
    """Spark expression: the member id of an eligibility or members row as the partition key
    of the pharmacy's member ids (text ids against integer pharmacy ids read as numbers, as
    the in-process intake compares them)."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.types import StringType  # lazy: pyspark when Spark runs

    dtype = df.schema["member_id"].dataType
    key = driver._trimmed(F.col("member_id"), dtype)
    if pa.types.is_integer(member_kind) and isinstance(dtype, StringType):
        key = key.cast("long").cast("string")
    return key


def _measures_frame(a_out, medical_df, enrollment, plan, cfg, measured: Measured) -> DataFrame:
    """The measures stage: used claims, medical rows, eligibility and members by member id."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.pandas.types import from_arrow_schema  # lazy: pyspark when Spark runs

    is_audit = F.col(AUDIT).isNotNull()
    member_key = driver._trimmed(F.col("member_id"), a_out.schema["member_id"].dataType)
    union = a_out.select(
        F.when(is_audit, driver._spread("\u0000a", F.col(ROW))).otherwise(member_key).alias(KEY),
        F.when(is_audit, F.lit(stages.SRC_AUDIT)).otherwise(F.lit(stages.SRC_PHARMACY)).alias(SRC),
        F.col(ROW).alias(ORD),
        F.col(AUDIT),
        *[F.col(c).alias(f"p__{c}") for c in plan.ph_cols],
    )
    frames = []
    if medical_df is not None:
        md = medical_df.select(*plan.md_cols).withColumn(ORD, F.monotonically_increasing_id())
        m_key = driver._trimmed(F.col("member_id"), md.schema["member_id"].dataType)
        frames.append((md, m_key, "\u0000m", stages.SRC_MEDICAL, "m__", plan.md_cols))
    for (label, prefix, code, _), (df, cols) in zip(_ENROLLMENT, enrollment, strict=True):
        df = df.select(*cols).withColumn(ORD, F.monotonically_increasing_id())
        key = _enrollment_key(df, plan.ph_kind)
        frames.append((df, key, f"\u0000{label[0]}", code, prefix, cols))
    for df, key, spread, code, prefix, cols in frames:
        part = df.select(
            F.coalesce(key, driver._spread(spread, F.col(ORD))).alias(KEY),
            F.lit(code).alias(SRC),
            F.col(ORD),
            F.lit(None).cast("string").alias(AUDIT),
            *[F.col(c).alias(f"{prefix}{c}") for c in cols],
        )
        union = union.unionByName(part, allowMissingColumns=True)
    with driver._quiet_pandas_warning():
        return (
            union.repartition(plan.n_parts, F.col(KEY))
            .sortWithinPartitions(SRC, KEY, ORD)
            .mapInArrow(
                functools.partial(stage_measures, cfg, measured), from_arrow_schema(OUTPUT_SCHEMA)
            )
        )


@dataclass
class _EnrollmentTotals:
    blocks: dict
    offenders: Offenders = field(default_factory=Offenders)


def _enrollment_totals(reports: list[dict], empty: dict) -> _EnrollmentTotals:
    totals = _EnrollmentTotals(blocks=json.loads(json.dumps(empty)))
    for r in reports:
        for label, *_ in _ENROLLMENT:
            if label in r:
                driver._add_blocks(totals.blocks[label], r[label])
                totals.offenders.merge(label, r["enrollment_offenders"].get(label, {}))
    return totals


def _empty_blocks(enrollment, plan, date_format) -> dict:
    """The in-process intake of no eligibility and members rows (column errors raised here,
    before any job, with the in-process messages): its audit blocks, all zeros."""
    el_df, el_cols = enrollment[0]
    mb_df, mb_cols = enrollment[1]
    empty = read_enrollment(
        driver._empty_arrow(el_df, el_cols),
        driver._empty_arrow(mb_df, mb_cols),
        member_type=plan.ph_kind,
        date_format=date_format,
    )
    return empty.audit_blocks()


def measures(
    pharmacy_df: DataFrame,
    medical_df: DataFrame | None = None,
    *,
    eligibility: DataFrame,
    members: DataFrame,
    periods,
    reference=None,
    rules=None,
    codesets=None,
    config=None,
    partitions: int | None = None,
    labels: tuple[str, str, str, str] = ("pharmacy", "medical", "eligibility", "members"),
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> SparkMeasures:
    """The standard measures on Spark: exactly :func:`rxrisk.measures` on the same rows.

    Parameters
    ----------
    pharmacy_df, medical_df : pyspark.sql.DataFrame
        As for :func:`rxrisk.spark.score` (input order: ``_rx_row`` or the frame's order).
    eligibility, members : pyspark.sql.DataFrame
        Enrollment spans and birth dates (input order: the frame's order, which decides the
        members row kept for a duplicated member id).
    periods, config
        The measured periods and the measures file, as for :func:`rxrisk.measures`.
    reference, rules, codesets, partitions, date_format, max_reject_share
        As for :func:`rxrisk.spark.score`; config files are read on the driver and shipped.
    labels : tuple of 4 str
        Names of the inputs in error messages.

    Returns
    -------
    SparkMeasures
        ``summary`` and ``detail`` (pyarrow Tables, collected to the driver) and ``audit``.
    """
    t0 = time.perf_counter()
    period_days = periods_of(periods)
    measure_settings = load_measure_settings(config)
    setup, n_parts = driver._settings(
        pharmacy_df.sparkSession,
        str(date_of(int(period_days[-1, 1]))),  # the claims' route takes an as-of date, unread
        reference,
        rules,
        codesets,
        partitions,
        date_format,
        max_reject_share,
    )
    plan = driver._plan(pharmacy_df, medical_df, setup, n_parts, labels[:2])
    enrollment = [
        (df, _enrollment_columns(df, label))
        for df, label in ((eligibility, "eligibility"), (members, "members"))
    ]
    empty_blocks = _empty_blocks(enrollment, plan, setup.date_format)
    cfg = driver._shipped(plan, reference, codesets, OUTPUT_SCHEMA)
    measured = Measured(
        periods=tuple((int(a), int(b)) for a, b in period_days),
        settings=msgspec.json.encode(measure_settings),
        eligibility_columns=enrollment[0][1],
        members_columns=enrollment[1][1],
    )
    a_out = driver._stage_a_frame(pharmacy_df, plan, cfg)
    out = _measures_frame(a_out, medical_df, enrollment, plan, cfg, measured)
    prepare_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = driver.collect_arrow(out)
    run_s = time.perf_counter() - t1
    times = (prepare_s, run_s)
    return _results(rows, plan, empty_blocks, labels, period_days, measure_settings, times)


def _results(rows: pa.Table, plan, empty_blocks, labels, days, settings, times) -> SparkMeasures:
    """The driver's side of the collected stage: the audit rows summed and checked (the stop on
    rejected rows), the detail in member order, the summary and the audit."""
    reports = [json.loads(t) for t in rows.column(AUDIT).drop_null().to_pylist()]
    totals = driver._sum_reports(reports, plan)
    driver._check_totals(totals, plan)
    enrolled = _enrollment_totals(reports, empty_blocks)
    check(
        enrolled.blocks,
        names=dict(zip(("eligibility", "members"), labels[2:], strict=True)),
        offenders=enrolled.offenders,
        max_reject_share=plan.setup.max_reject_share,
    )
    detail = _detail(rows.column(DETAIL).drop_null().to_pylist(), plan.ph_kind)
    summary = summary_table(detail, days, settings)
    blocks = {"pharmacy": totals.pharmacy, "medical": totals.medical, **enrolled.blocks}
    seconds = {
        "prepare": round(times[0], 6),
        "run": round(times[1], 6),
        "measures_tasks": round(totals.a_seconds + totals.b_seconds, 6),
    }
    return SparkMeasures(summary, detail, _audit(blocks, detail, days, seconds, plan, settings))


def _detail(blobs: list[bytes], member_kind: pa.DataType) -> pa.Table:
    """The partitions' detail slices as one table in member, period order."""
    tables = [pa.ipc.open_stream(pa.py_buffer(b)).read_all() for b in blobs]
    tables = [t for t in tables if t.num_rows] or [detail_schema(member_kind).empty_table()]
    return member_order(tables, DETAIL_ORDER).combine_chunks()


def _audit(blocks: dict, detail: pa.Table, days, seconds: dict, plan, settings) -> dict:
    """The audit of :func:`rxrisk.measures`, keys in its order."""
    members = detail.column("member_id")
    return {
        **blocks,
        "members_eligible": int(pc.count_distinct(members).as_py()) if len(members) else 0,
        "periods": [[str(date_of(a)), str(date_of(b))] for a, b in days],
        "settings": settings.values(),
        "seconds": seconds,
        "version": __version__,
        "config_digest": plan.setup.config.digest(settings.digest()),
        "warnings": audit_warnings(
            blocks,
            max_reject_share=plan.setup.max_reject_share,
            max_days_supply=plan.setup.config.metrics.max_days_supply,
        ),
    }

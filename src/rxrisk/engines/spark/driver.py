"""The driver side of the Spark engine: :func:`score` checks the settings and the input columns,
plans both stages, runs the job and sums the partitions' audit rows into the audit."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.settings import Config, check_max_reject_share, load_config, parse_as_of
from rxrisk.engines import local
from rxrisk.engines.spark import stages
from rxrisk.engines.spark.read import ROW
from rxrisk.engines.spark.stages import AUDIT, KEY, ORD, SRC
from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs
from rxrisk.ingest.conform import conform_medical, conform_pharmacy
from rxrisk.ingest.dates import check_date_format
from rxrisk.ingest.intake import Offenders, audit_warnings, check
from rxrisk.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

_TRIM_RE = r"^[ \t\r\n]+|[ \t\r\n]+$"  # trimming (space, tab, CR, LF), Java regex


# ------------------------------------------------------------------------------ result


@dataclass
class SparkResult:
    """What :func:`score` returns. Unpacks as ``members, audit = rxrisk.spark.score(...)``.

    Attributes
    ----------
    members : pyspark.sql.DataFrame
        The member table, ordered by member_id then as_of. It reads the persisted
        stage-B output: :meth:`unpersist` frees it when you are done.
    audit : dict
        The audit, equal to the in-process one apart from ``seconds``, which here
        holds ``prepare`` (driver: configuration, schema checks), ``run`` (wall time of the
        Spark job running both stages), and ``buckets_tasks`` / ``scoring_tasks`` (task
        seconds summed over partitions).
    schema : pyarrow.Schema
        The exact Arrow schema of the in-process member table (:meth:`to_arrow` casts to it).
    """

    members: DataFrame
    audit: dict
    schema: pa.Schema
    _cached: Any = field(default=None, repr=False)

    def __iter__(self):
        return iter((self.members, self.audit))

    def to_arrow(self) -> pa.Table:
        """Collect the member table to the driver with the in-process Arrow types."""
        return collect_arrow(self.members, self.schema)

    def unpersist(self) -> None:
        """Free the persisted stage-B output behind :attr:`members`."""
        if self._cached is not None:
            self._cached.unpersist()


def collect_arrow(df: DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Collect a DataFrame as a pyarrow Table (pyspark 4 ``toArrow``, 3.5 fallback), cast to ``schema``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The frame to collect.
    schema : pyarrow.Schema, optional
        The Arrow schema to cast to.

    Returns
    -------
    pyarrow.Table
    """
    if hasattr(df, "toArrow"):
        table = df.toArrow()
    else:  # pyspark 3.5
        batches = df._collect_as_arrow()
        if not batches:
            from pyspark.sql.pandas.types import to_arrow_schema  # lazy: pyspark when Spark runs

            return (schema or to_arrow_schema(df.schema)).empty_table()
        table = pa.Table.from_batches(batches)
    return (table.cast(schema) if schema is not None else table).combine_chunks()


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def _quiet_pandas_warning():
    """Silence pyspark's own version-check warnings when it builds an Arrow UDF: pandas >= 3
    (mapInArrow uses no pandas) and, on pyspark 3.5, distutils' LooseVersion."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*does not yet fully support pandas", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message="distutils Version classes", category=DeprecationWarning
        )
        yield


def _trimmed(col, dtype) -> Any:
    """Spark expression: the trimmed text of a column, null when blank."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.types import StringType  # lazy: pyspark when Spark runs

    if isinstance(dtype, StringType):
        t = F.regexp_replace(col, _TRIM_RE, "")
        return F.when(t == "", F.lit(None).cast("string")).otherwise(t)
    return col.cast("string")


def _spread(prefix: str, ordinal) -> Any:
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs

    return F.concat(F.lit(prefix), ordinal.cast("string"))


def _empty_arrow(df: DataFrame, columns) -> pa.Table:
    from pyspark.sql.pandas.types import to_arrow_schema  # lazy: pyspark when Spark runs
    from pyspark.sql.types import StructType  # lazy: pyspark when Spark runs

    sub = StructType([df.schema[c] for c in columns])
    try:
        schema = to_arrow_schema(sub, timezone="UTC")
    except TypeError:  # pyspark 3.5
        schema = to_arrow_schema(sub)
    return schema.empty_table()


def _add_blocks(total: dict, block: dict) -> None:
    total["rows_read"] += block["rows_read"]
    for part in ("buckets", "rejected_by_reason"):
        for k, v in block[part].items():
            total[part][k] += v


# ------------------------------------------------------------------------------ planning


@dataclass
class _Plan:
    """What the driver knows before the job: settings, columns, the in-process empty run."""

    setup: local.Setup
    n_parts: int
    labels: tuple[str, str]
    has_medical: bool
    ph_cols: tuple[str, ...]
    md_cols: tuple[str, ...]
    ph_kind: pa.DataType
    md_kind: pa.DataType
    empty: dict  # the in-process audit of no rows (all zeros, every key in order)
    member_schema: pa.Schema  # the in-process member table's schema

    @property
    def kinds_differ(self) -> bool:
        return self.ph_kind != self.md_kind

    def stage_b_schema(self) -> pa.Schema:
        """Arrow schema of the stage-B output: member rows, then the audit-row column."""
        member_schema = self.member_schema
        if self.kinds_differ:  # carried as text; the final type is decided from the counts
            member_schema = member_schema.set(0, pa.field("member_id", pa.string()))
        return pa.schema([*member_schema, pa.field(AUDIT, pa.string())])


def _settings(spark, as_of, reference, rules, codesets, partitions, date_format, share):
    """Settings checked on the driver, before any job: ``(setup, partitions)``."""
    date_format = check_date_format(date_format)
    if share is not None:  # fail fast; the rule file's share applies when None
        check_max_reject_share(share)
    days = parse_as_of(as_of)
    config = load_config(reference=reference, rules=rules, codesets=codesets)
    setup = local.Setup(
        config=config,
        days=days,
        clock=Clock(),
        date_format=date_format,
        max_reject_share=config.reject_share(share),
    )
    n_parts = int(partitions or int(spark.conf.get("spark.sql.shuffle.partitions")))
    if n_parts < 1:
        raise InputError(f"partitions={partitions}: give a whole number of at least 1")
    return setup, n_parts


def _plan(pharmacy_df, medical_df, setup: local.Setup, n_parts: int, labels) -> _Plan:
    """The columns the engine reads, their schema checked on empty tables (so column errors
    are the in-process messages, raised before any job runs), and the in-process run on no
    rows: output schema, as_of list, config digest (same code)."""
    ph_cols = tuple(
        c
        for c in (*inputs.PHARMACY_REQUIRED, *inputs.PHARMACY_OPTIONAL)
        if c in pharmacy_df.columns
    )
    ph_empty = _empty_arrow(pharmacy_df, ph_cols)
    ph_kind = conform_pharmacy(inputs.Source(ph_empty, labels[0])).member_id.type
    md_cols: tuple[str, ...] = ()
    md_empty = None
    md_kind = ph_kind
    if medical_df is not None:
        md_cols = tuple(c for c in inputs.MEDICAL_REQUIRED if c in medical_df.columns)
        md_empty = _empty_arrow(medical_df, md_cols)
        md_kind = conform_medical(inputs.Source(md_empty, labels[1])).member_id.type
    scored = local.score_book(ph_empty, md_empty, setup)
    return _Plan(
        setup=setup,
        n_parts=n_parts,
        labels=labels,
        has_medical=medical_df is not None,
        ph_cols=ph_cols,
        md_cols=md_cols,
        ph_kind=ph_kind,
        md_kind=md_kind,
        empty=local.audit_of(scored, setup),
        member_schema=scored.members.schema,
    )


def _shipped(plan: _Plan, reference, codesets, out_arrow: pa.Schema) -> stages.Shipped:
    """The configuration the executors get with the tasks."""
    as_of_text = tuple(plan.empty["as_of"])
    payload = (
        stages.pack_reference(reference),
        stages.pack_rules(plan.setup.config.rules),
        stages.pack_file(codesets) if codesets is not None else None,
    )
    return stages.Shipped(
        key=hashlib.sha256(repr((payload, as_of_text)).encode()).hexdigest(),
        as_of=as_of_text,
        reference=payload[0],
        rules=payload[1],
        codesets=payload[2],
        has_medical=plan.has_medical,
        pharmacy_columns=plan.ph_cols,
        medical_columns=plan.md_cols,
        output_schema=out_arrow.serialize().to_pybytes(),
        date_format=plan.setup.date_format,
    )


# ------------------------------------------------------------------------------ stages


def _stage_a_frame(pharmacy_df: DataFrame, plan: _Plan, cfg: stages.Shipped) -> DataFrame:
    """Stage A: buckets, partitioned by trimmed claim id, in input order."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.types import StringType, StructField, StructType  # lazy: pyspark

    ph = pharmacy_df
    if ROW not in ph.columns:
        ph = ph.withColumn(ROW, F.monotonically_increasing_id())
    ph = ph.select(*plan.ph_cols, F.col(ROW).cast("long").alias(ROW))
    if "claim_id" in plan.ph_cols:
        claim = _trimmed(F.col("claim_id"), ph.schema["claim_id"].dataType)
        claim_key = F.coalesce(claim, _spread("\u0000", F.col(ROW)))
    else:
        claim_key = _spread("\u0000", F.col(ROW))
    stage_a_schema = StructType([*ph.schema.fields, StructField(AUDIT, StringType())])
    with _quiet_pandas_warning():
        return (
            ph.repartition(plan.n_parts, claim_key)
            .sortWithinPartitions(ROW)
            .mapInArrow(functools.partial(stages.stage_a, cfg), stage_a_schema)
        )


def _stage_b_frame(
    a_out: DataFrame, medical_df, plan: _Plan, cfg: stages.Shipped, out_arrow: pa.Schema
) -> DataFrame:
    """Stage B: used rows and medical rows, partitioned by trimmed member id (persisted)."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.pandas.types import from_arrow_schema  # lazy: pyspark when Spark runs

    is_audit = F.col(AUDIT).isNotNull()
    member_key = _trimmed(F.col("member_id"), a_out.schema["member_id"].dataType)
    b_ph = a_out.select(
        F.when(is_audit, _spread("\u0000a", F.col(ROW))).otherwise(member_key).alias(KEY),
        F.when(is_audit, F.lit(stages.SRC_AUDIT)).otherwise(F.lit(stages.SRC_PHARMACY)).alias(SRC),
        F.col(ROW).alias(ORD),
        F.col(AUDIT),
        *[F.col(c).alias(f"p__{c}") for c in plan.ph_cols],
    )
    union = b_ph
    if medical_df is not None:
        md = medical_df.select(*plan.md_cols).withColumn(ORD, F.monotonically_increasing_id())
        m_key = _trimmed(F.col("member_id"), md.schema["member_id"].dataType)
        b_md = md.select(
            F.coalesce(m_key, _spread("\u0000m", F.col(ORD))).alias(KEY),
            F.lit(stages.SRC_MEDICAL).alias(SRC),
            F.col(ORD),
            F.lit(None).cast("string").alias(AUDIT),
            *[F.col(c).alias(f"m__{c}") for c in plan.md_cols],
        )
        union = b_ph.unionByName(b_md, allowMissingColumns=True)
    with _quiet_pandas_warning():
        return (
            union.repartition(plan.n_parts, F.col(KEY))
            .sortWithinPartitions(SRC, KEY, ORD)
            .mapInArrow(functools.partial(stages.stage_b, cfg), from_arrow_schema(out_arrow))
        ).persist()


# ------------------------------------------------------------------------------ audit


@dataclass
class _Totals:
    """The partitions' audit rows summed on the driver."""

    pharmacy: dict
    medical: dict
    offenders: Offenders = field(default_factory=Offenders)
    errors: list = field(default_factory=list)
    digests: set = field(default_factory=set)
    scored: int = 0
    rows_out: int = 0
    used_medical: int = 0
    used_pharmacy_b: int = 0
    a_seconds: float = 0.0
    b_seconds: float = 0.0


def _sum_reports(reports: list[dict], plan: _Plan) -> _Totals:
    totals = _Totals(
        pharmacy=copy.deepcopy(plan.empty["pharmacy"]),  # all zeros, every key in order
        medical=copy.deepcopy(plan.empty["medical"]),
    )
    for r in reports:
        for a in r["stage_a"]:
            _add_blocks(totals.pharmacy, a["pharmacy"])
            totals.offenders.merge("pharmacy", a.get("offenders", {}))
            totals.a_seconds += a["seconds"]
        totals.offenders.merge("medical", r.get("offenders", {}))
        totals.b_seconds += r["seconds"]
        if "error" in r:
            totals.errors.append(r["error"])
        if "medical" in r:
            _add_blocks(totals.medical, r["medical"])
            totals.used_medical += r["medical"]["buckets"]["used"]
            totals.used_pharmacy_b += r["used_pharmacy"]
            totals.scored += r["members_scored"]
            totals.rows_out += r["rows_out"]
            totals.digests.add(r["config_digest"])
    return totals


def _check_totals(totals: _Totals, plan: _Plan) -> None:
    """The driver's checks of the summed partitions: one configuration everywhere, one member-id
    type where both inputs are used, no partition error, the stop on rejected rows."""
    if totals.digests - {plan.empty["config_digest"]}:
        raise RuntimeError(
            "executors computed a different config digest than the driver: "
            "install the same rxrisk version on the driver and every executor"
        )
    used_pharmacy = totals.pharmacy["buckets"]["used"]
    if plan.kinds_differ and used_pharmacy and totals.used_medical:
        types = sorted({str(plan.ph_kind), str(plan.md_kind)})
        raise InputError(
            f"member_id has different types across inputs ({', '.join(types)}); "
            "give pharmacy and medical member_id the same type"
        )
    if totals.errors:
        raise InputError(totals.errors[0])
    check(
        {"pharmacy": totals.pharmacy, "medical": totals.medical},
        names={"pharmacy": plan.labels[0], "medical": plan.labels[1] if plan.has_medical else None},
        offenders=totals.offenders,
        max_reject_share=plan.setup.max_reject_share,
        max_days_supply=plan.setup.config.metrics.max_days_supply,
    )
    if totals.used_pharmacy_b != used_pharmacy:  # cannot happen: stage B re-validates used rows
        raise RuntimeError(
            f"stage B saw {totals.used_pharmacy_b} used pharmacy rows, stage A produced "
            f"{used_pharmacy}"
        )


def _audit(totals: _Totals, plan: _Plan, prepare_s: float, run_s: float) -> dict:
    config: Config = plan.setup.config
    blocks = {"pharmacy": totals.pharmacy, "medical": totals.medical}
    return {
        **blocks,
        "members_scored": totals.scored,
        "rows_out": totals.rows_out,
        "as_of": plan.empty["as_of"],
        "seconds": {
            "prepare": round(prepare_s, 6),
            "run": round(run_s, 6),
            "buckets_tasks": round(totals.a_seconds, 6),
            "scoring_tasks": round(totals.b_seconds, 6),
        },
        "version": __version__,
        "config_digest": plan.empty["config_digest"],
        "warnings": audit_warnings(
            blocks,
            max_reject_share=plan.setup.max_reject_share,
            max_days_supply=config.metrics.max_days_supply,
        ),
    }


def _members(b_out: DataFrame, totals: _Totals, plan: _Plan) -> tuple[DataFrame, pa.Schema]:
    """The member rows of the stage-B output, in their final type and order."""
    from pyspark.sql import functions as F  # lazy: pyspark when Spark runs
    from pyspark.sql.types import LongType  # lazy: pyspark when Spark runs

    members = b_out.filter(F.col(AUDIT).isNull()).drop(AUDIT)
    schema = plan.member_schema
    if plan.kinds_differ:
        used_pharmacy = totals.pharmacy["buckets"]["used"]
        only_medical = used_pharmacy == 0 and totals.used_medical > 0
        final_kind = plan.md_kind if only_medical else plan.ph_kind
        schema = schema.set(0, pa.field("member_id", final_kind))
        if final_kind == pa.int64():
            members = members.withColumn("member_id", F.col("member_id").cast(LongType()))
    return members.orderBy("member_id", "as_of"), schema


# ------------------------------------------------------------------------------ score


def score(
    pharmacy_df: DataFrame,
    medical_df: DataFrame | None = None,
    *,
    as_of,
    reference=None,
    rules=None,
    codesets=None,
    partitions: int | None = None,
    labels: tuple[str, str] = ("pharmacy", "medical"),
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> SparkResult:
    """Score members on Spark: exactly :func:`rxrisk.score` on the same rows.

    Parameters
    ----------
    pharmacy_df : pyspark.sql.DataFrame
        Pharmacy claims (columns; extra columns are ignored). Input order is the
        DataFrame's order, or its ``_rx_row`` column (unique integers) when present (see
        :func:`read_pharmacy`).
    medical_df : pyspark.sql.DataFrame, optional
        Medical events.
    as_of, reference, rules, codesets
        As for :func:`rxrisk.score`. ``reference`` (a CSV/Parquet path or a pyarrow Table),
        ``rules`` (a path or RuleSet) and ``codesets`` (a path) are read on the driver and
        shipped to the executors with the tasks: executors need no access to those paths.
    partitions : int, optional
        Partitions of both stages (default ``spark.sql.shuffle.partitions``). Each partition
        holds its rows in one Python worker's memory; see docs/spark.md for sizing.
    labels : (str, str)
        Names of the inputs in error messages (the CLI passes the paths).
    date_format, max_reject_share
        As for :func:`rxrisk.score`; the stop on rejected rows is decided on the driver
        from the counts of every partition, before the member table is handed back.

    Returns
    -------
    SparkResult
        ``.members`` (Spark DataFrame, schema, sorted by member_id then as_of),
        ``.audit`` (dict, summed over partitions), ``.schema`` and ``.to_arrow()``. Unpacks as
        ``members, audit``. The audit is computed eagerly: this call runs the Spark job.

    Raises
    ------
    InputError
        Bad as-of dates, rules, reference, code sets or input columns (checked on the driver
        before any job), or integer and text member ids that would meet in scoring.
    """
    t0 = time.perf_counter()
    spark = pharmacy_df.sparkSession
    setup, n_parts = _settings(
        spark, as_of, reference, rules, codesets, partitions, date_format, max_reject_share
    )
    plan = _plan(pharmacy_df, medical_df, setup, n_parts, labels)
    out_arrow = plan.stage_b_schema()
    cfg = _shipped(plan, reference, codesets, out_arrow)
    a_out = _stage_a_frame(pharmacy_df, plan, cfg)
    b_out = _stage_b_frame(a_out, medical_df, plan, cfg, out_arrow)
    prepare_s = time.perf_counter() - t0

    # run both stages (one job), then the audit from the per-partition audit rows
    t1 = time.perf_counter()
    try:
        is_audit = b_out[AUDIT].isNotNull()
        reports = [json.loads(r[0]) for r in b_out.filter(is_audit).select(AUDIT).collect()]
        run_s = time.perf_counter() - t1
        totals = _sum_reports(reports, plan)
        _check_totals(totals, plan)
    except BaseException:
        b_out.unpersist()
        raise
    members, schema = _members(b_out, totals, plan)
    audit = _audit(totals, plan, prepare_s, run_s)
    return SparkResult(members=members, audit=audit, schema=schema, _cached=b_out)

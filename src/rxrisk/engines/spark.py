"""The same engine on Apache Spark (optional extra ``rxrisk[spark]``; see docs/spark.md).

:func:`score` takes Spark DataFrames and returns the member table as a Spark DataFrame
plus the audit, equal row for row and value for value to :func:`rxrisk.score` on the same
data. No engine code is duplicated: each partition runs the in-process functions.

Two stages, because claim ids are global (reversal matching and duplicate
detection are on claim_id alone, across the whole book, first in input order):

* **Stage A (buckets)**: every pharmacy row gets an input ordinal ``_rx_row``; rows are
  hash-partitioned by the *trimmed* claim id (rows without one are spread by ordinal) and
  sorted by ordinal, and each partition runs :func:`rxrisk.ingest.sources.conform_pharmacy` and
  :func:`rxrisk.ingest.validate.validate_pharmacy`. All rows sharing a claim id meet in one
  partition, in input order, so every row gets its in-process bucket. Only ``used`` rows go
  on, with one audit row per partition (bucket and reason counts).
* **Stage B (scoring)**: used pharmacy rows and all medical rows are hash-partitioned together
  by the trimmed member id and sorted by input ordinal; each partition calls
  :func:`rxrisk.score` with one numba thread. Used rows validate to ``used`` again (paid,
  valid, tracked, not reversed, claim ids unique among them), a member's fills keep their
  input order, and medical validation is row-local, so per-member metrics, flags and the
  medical audit are exactly the in-process ones.

Input order for Spark is the DataFrame's order (partition, then row), as captured by
``monotonically_increasing_id`` when :func:`score` adds ``_rx_row``; if the pharmacy DataFrame
already has a ``_rx_row`` column (as :func:`read_pharmacy` adds: files in path order, then row
order, as the edits replay defines it for folders), that column is the order.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk import __version__
from rxrisk.errors import InputError
from rxrisk.ingest.intake import Offenders

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkResult", "read_medical", "read_pharmacy", "score"]

ROW = "_rx_row"
"""Input-ordinal column of the pharmacy DataFrame (int64; smaller = earlier)."""

_AUDIT = "_rx_audit"
_KEY = "_rx_key"
_SRC = "_rx_src"
_ORD = "_rx_ord"
_SRC_PHARMACY, _SRC_MEDICAL, _SRC_AUDIT = 0, 1, 2
_TRIM_RE = r"^[ \t\r\n]+|[ \t\r\n]+$"  # trimming (space, tab, CR, LF), Java regex
_FILE_BITS = 40  # read_pharmacy: ordinal = file rank << 40 | row index within the file
_OUT_CHUNK = 65536


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
    """Collect a DataFrame as a pyarrow Table (pyspark 4 ``toArrow``, 3.5 fallback), cast to ``schema``."""
    if hasattr(df, "toArrow"):
        table = df.toArrow()
    else:  # pyspark 3.5
        batches = df._collect_as_arrow()
        if not batches:
            from pyspark.sql.pandas.types import to_arrow_schema

            return (schema or to_arrow_schema(df.schema)).empty_table()
        table = pa.Table.from_batches(batches)
    return (table.cast(schema) if schema is not None else table).combine_chunks()


# ------------------------------------------------------------------------------ readers


def _path_kind(path: str, label: str) -> str:
    lower = path.lower().rstrip("/")
    if lower.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        return "csv"
    if lower.endswith((".parquet", ".pq")) or "://" in path or Path(path).is_dir():
        return "parquet"
    raise InputError(
        f"{label} input {path}: with --engine spark use .parquet (a file or a folder of them) "
        "or .csv/.csv.gz"
    )


def check_source(path, label: str) -> str:
    """``"parquet"`` or ``"csv"`` for a readable input path; InputError (exit 2) otherwise
    (for a local Parquet file or folder, the parts are checked: :func:`_check_parts`)."""
    return _check_source(str(path), label)[0]


def _check_source(path: str, label: str) -> tuple[str, bool]:
    """(kind, whether Spark must merge the parts' schemas)."""
    if "://" not in path and not Path(path).exists():
        raise InputError(f"{label} input {path}: no such file or folder; check the path")
    kind = _path_kind(path, label)
    merge = kind == "parquet" and "://" not in path and _check_parts(path, label)
    return kind, merge


def _read(spark: SparkSession, path, label: str) -> DataFrame:
    path = str(path)
    kind, merge = _check_source(path, label)
    if kind == "csv":
        # Everything as text, RFC 4180 quotes (like pyarrow); per-row parse failures become
        # rejected rows. Spark reads an empty field as null where pyarrow reads "": both end
        # in the same bucket (blank ids are null, an empty date/number is unparseable).
        return (
            spark.read.option("header", True)
            .option("inferSchema", False)
            .option("escape", '"')
            .option("mode", "PERMISSIVE")
            .csv(path)
        )
    # parts lacking some columns: Spark merges the parts' schemas (null where missing)
    return (spark.read.option("mergeSchema", "true") if merge else spark.read).parquet(path)


def _check_parts(path: str, label: str) -> bool:
    """The in-process check of a local Parquet file or folder's footers, on the driver: a
    part without a required column, conflicting types or a duplicate column is an
    InputError naming the parts. Spark does not widen types between parts, so here a
    column must also have one type in every part. True when some parts lack columns
    (Spark then merges the schemas, the column being null there)."""
    from rxrisk.ingest import sources as inputs

    _, schemas, unified = inputs.parquet_schema(Path(path), label)
    for name in unified.names:
        types = {s.field(name).type for s in schemas if name in s.names}
        types.discard(pa.null())
        if len(types) > 1:
            shown = " and ".join(sorted(str(t) for t in types))
            raise InputError(
                f"{label} input {path}: column '{name}' is {shown} in different parts; with "
                "--engine spark give the column one type in every part"
            )
    return any(s.names != unified.names for s in schemas)


def read_pharmacy(spark: SparkSession, path) -> DataFrame:
    """Read pharmacy claims (Parquet file or folder, or one CSV file) with the input ordinal.

    The ``_rx_row`` column follows input order: for a folder, files in path order, then
    rows in file order (``file rank << 40 | row index``, from Parquet's ``_metadata``); for a
    single CSV file, its row order.
    """
    from pyspark.sql import functions as F

    df = _read(spark, path, "pharmacy")
    if _path_kind(str(path), "pharmacy") == "csv":
        return df.withColumn(ROW, F.monotonically_increasing_id())
    meta = df.select("*", F.col("_metadata.file_path").alias("_rx_file"))
    meta = meta.withColumn("_rx_index", F.col("_metadata.row_index"))
    files = sorted(r[0] for r in df.select(F.col("_metadata.file_path")).distinct().collect())
    if len(files) >= 1 << (63 - _FILE_BITS):
        raise InputError(f"pharmacy input {path}: {len(files):,} files; merge them into fewer")
    if len(files) <= 1:
        return meta.withColumn(ROW, F.col("_rx_index")).drop("_rx_file", "_rx_index")
    ranks = spark.createDataFrame(list(enumerate(files)), "_rx_rank long, _rx_file string")
    out = meta.join(F.broadcast(ranks), on="_rx_file", how="inner")
    row = F.shiftleft(F.col("_rx_rank"), _FILE_BITS).bitwiseOR(F.col("_rx_index"))
    return out.withColumn(ROW, row).drop("_rx_file", "_rx_index", "_rx_rank")


def read_medical(spark: SparkSession, path) -> DataFrame:
    """Read medical events (Parquet file or folder, or one CSV file)."""
    return _read(spark, path, "medical")


# ------------------------------------------------------------------------ shipped config


@dataclass(frozen=True)
class _Shipped:
    """Everything the executors need, carried in the task closure (no driver paths)."""

    key: str
    as_of: tuple[str, ...]
    reference: tuple | None  # ("table", ipc) | ("file", name, bytes) | None
    rules: tuple  # ("rules", json)
    codesets: tuple | None  # ("file", name, bytes) | None
    has_medical: bool
    pharmacy_columns: tuple[str, ...]
    medical_columns: tuple[str, ...]
    output_schema: bytes  # serialized Arrow schema of the stage-B output
    date_format: str | None = None  # explicit format of text dates


def _pack_file(path) -> tuple:
    p = Path(path)
    return ("file", p.name, p.read_bytes())


def _pack_reference(reference) -> tuple | None:
    if reference is None:
        return None
    if isinstance(reference, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, reference.schema) as w:
            w.write_table(reference)
        return ("table", sink.getvalue().to_pybytes())
    return _pack_file(reference)


def _pack_rules(ruleset) -> tuple:
    """The loaded RuleSet as JSON (exact: msgspec writes floats in shortest round-trip form)."""
    import msgspec

    return ("rules", msgspec.json.encode(ruleset))


def _unpack(item):
    """Executor side: the argument to hand to the engine (None, a Table, a RuleSet or a path)."""
    if item is None:
        return None
    if item[0] == "table":
        return pa.ipc.open_stream(pa.py_buffer(item[1])).read_all()
    if item[0] == "rules":
        import msgspec

        from rxrisk.config.rules import RuleSet

        return msgspec.json.decode(item[1], type=RuleSet)
    _, name, data = item
    folder = Path(tempfile.gettempdir()) / f"rxrisk-spark-{hashlib.sha256(data).hexdigest()[:20]}"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return str(path)


@dataclass(frozen=True)
class _Env:
    reference: Any
    rules: Any
    codesets: Any
    drugs: Any  # rxrisk.scoring.encode.DrugTable
    max_days_supply: int


_ENVS: dict[str, _Env] = {}


def _env(cfg: _Shipped) -> _Env:
    """Executor side, once per Python worker and configuration."""
    env = _ENVS.get(cfg.key)
    if env is None:
        from rxrisk.config.reference import load_reference
        from rxrisk.config.rules import load_rules
        from rxrisk.scoring.encode import DrugTable

        reference, rules, codesets = map(_unpack, (cfg.reference, cfg.rules, cfg.codesets))
        m = load_rules(rules).metrics
        ref = load_reference(reference, edition=m.factor_edition)
        env = _Env(
            reference=reference,
            rules=rules,
            codesets=codesets,
            drugs=DrugTable.from_reference(ref),
            max_days_supply=m.max_days_supply,
        )
        _ENVS[cfg.key] = env
    return env


# --------------------------------------------------------------------- partition functions


def _read_partition(batches) -> pa.Table | None:
    batches = list(batches)
    if not batches:
        return None
    table = pa.Table.from_batches(batches)
    return table if table.num_rows else None


def _audit_row(schema: pa.Schema, text: str, row: int | None = None) -> pa.RecordBatch:
    cols = []
    for f in schema:
        if f.name == _AUDIT:
            cols.append(pa.array([text], f.type))
        elif f.name == ROW and row is not None:
            cols.append(pa.array([row], f.type))
        else:
            cols.append(pa.nulls(1, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _stage_a(cfg: _Shipped, batches):
    """Buckets of one claim-id partition: yield its used rows and one audit row."""
    from rxrisk.ingest import sources as inputs
    from rxrisk.ingest import validate

    table = _read_partition(batches)
    if table is None:
        return
    t0 = time.perf_counter()
    env = _env(cfg)
    src = inputs.Source(table.drop_columns([ROW]), "pharmacy")
    cols = inputs.conform_pharmacy(src, date_format=cfg.date_format)
    rows = validate.validate_pharmacy(cols, env.drugs, max_days_supply=env.max_days_supply)
    used = np.flatnonzero(rows.bucket == validate.PHARMACY_BUCKETS.index("used"))
    out = table.take(pa.array(used, pa.int64()))
    out = out.append_column(_AUDIT, pa.nulls(out.num_rows, pa.string()))
    yield from out.to_batches(max_chunksize=_OUT_CHUNK)
    first = int(pc.min(table.column(ROW)).as_py())
    offenders = Offenders()
    offenders.add(
        "pharmacy",
        src.table,
        rows.reason,
        validate.PHARMACY_REASONS,
        row_numbers=table.column(ROW).to_numpy(),
    )
    report = {
        "pharmacy": rows.counts(),
        "offenders": offenders.of("pharmacy"),
        "seconds": time.perf_counter() - t0,
    }
    # The audit row's ordinal is negative and unique per partition (it spreads audit rows).
    yield _audit_row(out.schema, json.dumps(report), row=-1 - first)


def _stage_b(cfg: _Shipped, batches):
    """Score one member partition with the in-process engine: members, then one audit row."""
    from rxrisk.api import score as score_local

    table = _read_partition(batches)
    if table is None:
        return
    t0 = time.perf_counter()
    schema = pa.ipc.read_schema(pa.py_buffer(cfg.output_schema))
    src = table.column(_SRC)
    report: dict = {
        "stage_a": [
            json.loads(t) for t in table.filter(pc.equal(src, _SRC_AUDIT))[_AUDIT].to_pylist()
        ]
    }
    ph = table.filter(pc.equal(src, _SRC_PHARMACY))
    ph = ph.select([f"p__{c}" for c in cfg.pharmacy_columns]).rename_columns(cfg.pharmacy_columns)
    md = None
    if cfg.has_medical:
        md = table.filter(pc.equal(src, _SRC_MEDICAL))
        md_order = md.column(_ORD).to_numpy()  # input order, for the offending values
        md = md.select([f"m__{c}" for c in cfg.medical_columns]).rename_columns(cfg.medical_columns)
    del table
    if ph.num_rows or (md is not None and md.num_rows):
        env = _env(cfg)
        try:
            res = score_local(
                ph,
                md,
                as_of=list(cfg.as_of),
                reference=env.reference,
                rules=env.rules,
                codesets=env.codesets,
                threads=1,
                date_format=cfg.date_format,
                max_reject_share=1.0,  # the driver decides on the summed counts
            )
        except InputError as exc:
            report["error"] = str(exc)
        else:
            members = res.members
            if members.num_rows:
                members = members.cast(pa.schema([f for f in schema if f.name != _AUDIT]))
                members = members.append_column(_AUDIT, pa.nulls(members.num_rows, pa.string()))
                yield from members.to_batches(max_chunksize=_OUT_CHUNK)
            a = res.audit
            report.update(
                medical=a["medical"],
                used_pharmacy=a["pharmacy"]["buckets"]["used"],
                members_scored=a["members_scored"],
                rows_out=a["rows_out"],
                config_digest=a["config_digest"],
            )
            if md is not None and any(a["medical"]["rejected_by_reason"].values()):
                report["offenders"] = _medical_offenders(cfg, env, md, md_order)
    report["seconds"] = time.perf_counter() - t0
    yield _audit_row(schema, json.dumps(report))


def _medical_offenders(cfg: _Shipped, env: _Env, md: pa.Table, order: np.ndarray) -> dict:
    """Offending values of the rejected medical rows of a partition (only run when it has
    some; ``order``: each row's input position): ``{reason: [[row, shown], ...]}``."""
    from rxrisk.config.codesets import load_codesets
    from rxrisk.ingest import sources as inputs
    from rxrisk.ingest import validate

    cols = inputs.conform_medical(inputs.Source(md, "medical"), date_format=cfg.date_format)
    rows = validate.validate_medical(cols, load_codesets(env.codesets))
    offenders = Offenders()
    offenders.add("medical", md, rows.reason, validate.MEDICAL_REASONS, row_numbers=order)
    return offenders.of("medical")


# ------------------------------------------------------------------------------ driver


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
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if isinstance(dtype, StringType):
        t = F.regexp_replace(col, _TRIM_RE, "")
        return F.when(t == "", F.lit(None).cast("string")).otherwise(t)
    return col.cast("string")


def _spread(prefix: str, ordinal) -> Any:
    from pyspark.sql import functions as F

    return F.concat(F.lit(prefix), ordinal.cast("string"))


def _empty_arrow(df: DataFrame, columns) -> pa.Table:
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

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
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    from rxrisk.api import score as score_local
    from rxrisk.config.codesets import load_codesets
    from rxrisk.config.reference import load_reference
    from rxrisk.config.rules import load_rules
    from rxrisk.config.settings import parse_as_of
    from rxrisk.ingest import sources as inputs
    from rxrisk.ingest.intake import audit_warnings, check, check_max_reject_share

    t0 = time.perf_counter()
    spark = pharmacy_df.sparkSession
    date_format = inputs.check_date_format(date_format)
    if max_reject_share is not None:  # fail fast; the rule file's share applies when None
        check_max_reject_share(max_reject_share)
    days = parse_as_of(as_of)
    as_of_text = tuple(str(np.datetime64(int(d), "D")) for d in days)
    ruleset = load_rules(rules)
    max_reject_share = check_max_reject_share(
        max_reject_share, default=ruleset.metrics.max_reject_share
    )
    load_reference(reference, edition=ruleset.metrics.factor_edition)  # fail fast, on the driver
    load_codesets(codesets)
    n_parts = int(partitions or int(spark.conf.get("spark.sql.shuffle.partitions")))
    if n_parts < 1:
        raise InputError(f"partitions={partitions}: give a whole number of at least 1")

    # Columns the engine reads; their schema is checked here, on empty tables, so column
    # errors are the in-process messages, raised before any job runs.
    ph_cols = tuple(
        c
        for c in (*inputs.PHARMACY_REQUIRED, *inputs.PHARMACY_OPTIONAL)
        if c in pharmacy_df.columns
    )
    ph_empty = _empty_arrow(pharmacy_df, ph_cols)
    ph_conf = inputs.conform_pharmacy(inputs.Source(ph_empty, labels[0]))
    md_cols: tuple[str, ...] = ()
    md_empty = None
    md_conf = None
    if medical_df is not None:
        md_cols = tuple(c for c in inputs.MEDICAL_REQUIRED if c in medical_df.columns)
        md_empty = _empty_arrow(medical_df, md_cols)
        md_conf = inputs.conform_medical(inputs.Source(md_empty, labels[1]))
    # The in-process run on no rows: output schema, as_of list, config digest (same code).
    empty = score_local(
        ph_empty, md_empty, as_of=as_of, reference=reference, rules=ruleset, codesets=codesets
    )
    ph_kind = ph_conf.member_id.type
    md_kind = md_conf.member_id.type if md_conf is not None else ph_kind
    kinds_differ = ph_kind != md_kind

    member_schema = empty.members.schema
    if kinds_differ:  # carried as text; the final type is decided from the counts below
        member_schema = member_schema.set(0, pa.field("member_id", pa.string()))
    out_arrow = pa.schema([*member_schema, pa.field(_AUDIT, pa.string())])
    from pyspark.sql.pandas.types import from_arrow_schema

    out_spark = from_arrow_schema(out_arrow)

    payload = (
        _pack_reference(reference),
        _pack_rules(ruleset),
        _pack_file(codesets) if codesets is not None else None,
    )
    key = hashlib.sha256(repr((payload, as_of_text)).encode()).hexdigest()
    cfg = _Shipped(
        key=key,
        as_of=as_of_text,
        reference=payload[0],
        rules=payload[1],
        codesets=payload[2],
        has_medical=medical_df is not None,
        pharmacy_columns=ph_cols,
        medical_columns=md_cols,
        output_schema=out_arrow.serialize().to_pybytes(),
        date_format=date_format,
    )

    # ---- stage A: buckets, partitioned by trimmed claim id, in input order
    ph = pharmacy_df
    if ROW not in ph.columns:
        ph = ph.withColumn(ROW, F.monotonically_increasing_id())
    ph = ph.select(*ph_cols, F.col(ROW).cast("long").alias(ROW))
    if "claim_id" in ph_cols:
        claim = _trimmed(F.col("claim_id"), ph.schema["claim_id"].dataType)
        claim_key = F.coalesce(claim, _spread("\u0000", F.col(ROW)))
    else:
        claim_key = _spread("\u0000", F.col(ROW))
    stage_a_schema = StructType([*ph.schema.fields, StructField(_AUDIT, StringType())])
    with _quiet_pandas_warning():
        a_out = (
            ph.repartition(n_parts, claim_key)
            .sortWithinPartitions(ROW)
            .mapInArrow(functools.partial(_stage_a, cfg), stage_a_schema)
        )

    # ---- stage B: used rows + medical rows, partitioned by trimmed member id
    is_audit = F.col(_AUDIT).isNotNull()
    member_key = _trimmed(F.col("member_id"), ph.schema["member_id"].dataType)
    b_ph = a_out.select(
        F.when(is_audit, _spread("\u0000a", F.col(ROW))).otherwise(member_key).alias(_KEY),
        F.when(is_audit, F.lit(_SRC_AUDIT)).otherwise(F.lit(_SRC_PHARMACY)).alias(_SRC),
        F.col(ROW).alias(_ORD),
        F.col(_AUDIT),
        *[F.col(c).alias(f"p__{c}") for c in ph_cols],
    )
    union = b_ph
    if medical_df is not None:
        md = medical_df.select(*md_cols).withColumn(_ORD, F.monotonically_increasing_id())
        m_key = _trimmed(F.col("member_id"), md.schema["member_id"].dataType)
        b_md = md.select(
            F.coalesce(m_key, _spread("\u0000m", F.col(_ORD))).alias(_KEY),
            F.lit(_SRC_MEDICAL).alias(_SRC),
            F.col(_ORD),
            F.lit(None).cast("string").alias(_AUDIT),
            *[F.col(c).alias(f"m__{c}") for c in md_cols],
        )
        union = b_ph.unionByName(b_md, allowMissingColumns=True)
    with _quiet_pandas_warning():
        b_out = (
            union.repartition(n_parts, F.col(_KEY))
            .sortWithinPartitions(_SRC, _KEY, _ORD)
            .mapInArrow(functools.partial(_stage_b, cfg), out_spark)
        ).persist()
    prepare_s = time.perf_counter() - t0

    # ---- run both stages (one job), then the audit from the per-partition audit rows
    t1 = time.perf_counter()
    try:
        reports = [json.loads(r[0]) for r in b_out.filter(is_audit).select(_AUDIT).collect()]
    except BaseException:
        b_out.unpersist()
        raise
    run_s = time.perf_counter() - t1

    ph_block = copy.deepcopy(empty.audit["pharmacy"])  # all zeros, every key in order
    md_block = copy.deepcopy(empty.audit["medical"])
    scored = rows_out = used_medical = used_pharmacy_b = 0
    a_seconds = b_seconds = 0.0
    errors = []
    offenders = Offenders()
    for r in reports:
        for a in r["stage_a"]:
            _add_blocks(ph_block, a["pharmacy"])
            offenders.merge("pharmacy", a.get("offenders", {}))
            a_seconds += a["seconds"]
        offenders.merge("medical", r.get("offenders", {}))
        b_seconds += r["seconds"]
        if "error" in r:
            errors.append(r["error"])
        if "medical" in r:
            _add_blocks(md_block, r["medical"])
            used_medical += r["medical"]["buckets"]["used"]
            used_pharmacy_b += r["used_pharmacy"]
            scored += r["members_scored"]
            rows_out += r["rows_out"]
            if r["config_digest"] != empty.audit["config_digest"]:
                b_out.unpersist()
                raise RuntimeError(
                    "executors computed a different config digest than the driver: "
                    "install the same rxrisk version on the driver and every executor"
                )
    used_pharmacy = ph_block["buckets"]["used"]
    if kinds_differ and used_pharmacy and used_medical:
        b_out.unpersist()
        types = sorted({str(ph_kind), str(md_kind)})
        raise InputError(
            f"member_id has different types across inputs ({', '.join(types)}); "
            "give pharmacy and medical member_id the same type"
        )
    if errors:
        b_out.unpersist()
        raise InputError(errors[0])
    max_days_supply = ruleset.metrics.max_days_supply
    try:
        check(
            {"pharmacy": ph_block, "medical": md_block},
            names={"pharmacy": labels[0], "medical": labels[1] if medical_df is not None else None},
            offenders=offenders,
            max_reject_share=max_reject_share,
            max_days_supply=max_days_supply,
        )
    except InputError:
        b_out.unpersist()
        raise
    if used_pharmacy_b != used_pharmacy:  # cannot happen: stage B re-validates used rows
        b_out.unpersist()
        raise RuntimeError(
            f"stage B saw {used_pharmacy_b} used pharmacy rows, stage A produced {used_pharmacy}"
        )

    members = b_out.filter(F.col(_AUDIT).isNull()).drop(_AUDIT)
    schema = empty.members.schema
    if kinds_differ:
        final_kind = md_kind if (used_pharmacy == 0 and used_medical > 0) else ph_kind
        schema = schema.set(0, pa.field("member_id", final_kind))
        if final_kind == pa.int64():
            members = members.withColumn("member_id", F.col("member_id").cast(LongType()))
    members = members.orderBy("member_id", "as_of")

    audit = {
        "pharmacy": ph_block,
        "medical": md_block,
        "members_scored": scored,
        "rows_out": rows_out,
        "as_of": empty.audit["as_of"],
        "seconds": {
            "prepare": round(prepare_s, 6),
            "run": round(run_s, 6),
            "buckets_tasks": round(a_seconds, 6),
            "scoring_tasks": round(b_seconds, 6),
        },
        "version": __version__,
        "config_digest": empty.audit["config_digest"],
        "warnings": audit_warnings(
            {"pharmacy": ph_block, "medical": md_block},
            max_reject_share=max_reject_share,
            max_days_supply=max_days_supply,
        ),
    }
    return SparkResult(members=members, audit=audit, schema=schema, _cached=b_out)

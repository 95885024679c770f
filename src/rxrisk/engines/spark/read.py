"""Reading the Spark engine's sources: path checks on the driver (kind, Parquet parts) and the
readers that give pharmacy rows their input ordinal (``_rx_row``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from rxrisk.errors import InputError
from rxrisk.ingest import sources as inputs

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

ROW = "_rx_row"
"""Input-ordinal column of the pharmacy DataFrame (int64; smaller = earlier)."""

_FILE_BITS = 40  # read_pharmacy: ordinal = file rank << 40 | row index within the file


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

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session to read with.
    path : str or path
        A ``.parquet`` file or folder of them, or one ``.csv`` / ``.csv.gz`` file.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns as read, plus ``_rx_row``.
    """
    from pyspark.sql import functions as F  # lazy: pyspark only when Spark runs

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
    """Read medical events (Parquet file or folder, or one CSV file).

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session to read with.
    path : str or path
        A ``.parquet`` file or folder of them, or one ``.csv`` / ``.csv.gz`` file.

    Returns
    -------
    pyspark.sql.DataFrame
    """
    return _read(spark, path, "medical")

"""rxrisk.spark.measures (Spark engine) held to the in-process measures: the same detail and
summary byte for byte, the same audit blocks.

Needs the extra (pip install 'rxrisk[spark]') and Java; skipped otherwise. One local[2]
SparkSession for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pyarrow.parquet as pq
import pytest

pytest.importorskip(
    "pyspark", reason="the Spark engine needs the extra: pip install 'rxrisk[spark]'"
)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("the Spark engine needs Java (java on PATH or JAVA_HOME)", allow_module_level=True)

from test_stream_measures import (
    HAND_PERIODS,
    _hand_book,
    _parquet_bytes,
    as_text_ids,
    in_memory,
    int_book,
)

from rxrisk import spark as rxspark
from rxrisk.errors import InputError
from rxrisk.quality.settings import MeasureSettings

from cases import reference_table

pytestmark = [
    pytest.mark.slow,
    # pyspark warns that it does not yet fully support pandas >= 3 (mapInArrow uses no pandas)
    pytest.mark.filterwarnings("ignore:.*does not yet fully support pandas:FutureWarning"),
    # pyspark 3.5: distutils' LooseVersion, and py4j/collect sockets closed by the collector
    pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rxrisk-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _frames(spark, folder, tables):
    """Each table as a Spark DataFrame read from one Parquet file (exact types, input order)."""
    frames = []
    for k, table in enumerate(tables):
        if table is None:
            frames.append(None)
            continue
        path = folder / f"t{k}.parquet"
        pq.write_table(table, path)
        frames.append(spark.read.parquet(str(path)))
    return frames


def assert_same(got: rxspark.SparkMeasures, want) -> None:
    for a, b in ((got.detail, want.detail), (got.summary, want.summary)):
        assert a.schema == b.schema
        assert a.equals(b)
        assert _parquet_bytes(a) == _parquet_bytes(b)
    assert list(got.audit) == list(want.audit)
    for key in want.audit:
        if key != "seconds":
            assert json.dumps(got.audit[key]) == json.dumps(want.audit[key]), key


def test_hand_book(spark, tmp_path):
    tables = _hand_book()
    settings = MeasureSettings(min_opioid_fill_dates=1, min_cumulative_days_supply=1, min_age=0)
    kw = dict(reference=reference_table(), max_reject_share=1.0)
    want = in_memory(*tables, HAND_PERIODS, settings, **kw)
    ph, md, el, mb = _frames(spark, tmp_path, tables)
    got = rxspark.measures(
        ph,
        md,
        eligibility=el,
        members=mb,
        periods=HAND_PERIODS,
        config=settings,
        partitions=3,
        **kw,
    )
    assert want.detail.num_rows > 20
    assert_same(got, want)


def test_generated_book(spark, tmp_path):
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=1500, seed=3)
    names = ("pharmacy", "medical", "eligibility", "members")
    inputs = [tmp_path / f"{n}.parquet" for n in names]
    want = in_memory(*inputs, 2025, MeasureSettings())
    assert want.detail.num_rows > 50
    ph = rxspark.read_pharmacy(spark, inputs[0])
    md, el, mb = (spark.read.parquet(str(p)) for p in inputs[1:])
    got = rxspark.measures(ph, md, eligibility=el, members=mb, periods=2025, partitions=3)
    assert_same(got, want)


def test_rejected_enrollment_stops_as_in_process(spark, tmp_path):
    import pyarrow as pa

    ph, md, el, mb = _hand_book()
    births = [str(d) for d in mb.column("birth_date").to_pylist()]
    half = len(births) // 2
    bad = mb.set_column(1, "birth_date", pa.array(["x"] * half + births[half:], pa.string()))
    kw = dict(reference=reference_table())
    with pytest.raises(InputError) as want:
        in_memory(ph, md, el, bad, HAND_PERIODS, MeasureSettings(), **kw)
    frames = _frames(spark, tmp_path, (ph, md, el, bad))
    with pytest.raises(InputError) as got:
        rxspark.measures(
            frames[0], frames[1], eligibility=frames[2], members=frames[3], periods=2024, **kw
        )
    assert "members input: column birth_date" in str(want.value)
    assert str(got.value) == str(want.value)


def test_integer_member_ids_against_text_enrollment_ids(spark, tmp_path):
    """Text eligibility and members ids meet integer pharmacy ids as numbers (``" 0123"`` is
    member 123), so they must share the member's partition."""
    ph, el, mb = int_book()
    el, mb = as_text_ids(el), as_text_ids(mb)
    settings = MeasureSettings(min_opioid_fill_dates=1, min_cumulative_days_supply=1, min_age=0)
    kw = dict(reference=reference_table(), max_reject_share=1.0)
    want = in_memory(ph, None, el, mb, HAND_PERIODS, settings, **kw)
    assert want.detail.num_rows > 10
    assert want.audit["eligibility"]["buckets"]["used"] > 20
    frames = _frames(spark, tmp_path, (ph, el, mb))
    got = rxspark.measures(
        frames[0],
        eligibility=frames[1],
        members=frames[2],
        periods=HAND_PERIODS,
        config=settings,
        partitions=4,
        **kw,
    )
    assert_same(got, want)

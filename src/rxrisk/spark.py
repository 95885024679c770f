"""``rxrisk.spark``: the public face of the Spark engine (optional extra ``rxrisk[spark]``).

The engine lives in :mod:`rxrisk.engines.spark`; this module only names what a user calls.
Importing it imports no pyspark until a function runs.
"""

from __future__ import annotations

from rxrisk.engines.spark.driver import SparkResult, collect_arrow, score
from rxrisk.engines.spark.measures import SparkMeasures, measures
from rxrisk.engines.spark.read import ROW, check_source, read_medical, read_pharmacy

__all__ = [
    "ROW",
    "SparkMeasures",
    "SparkResult",
    "check_source",
    "collect_arrow",
    "measures",
    "read_medical",
    "read_pharmacy",
    "score",
]

"""``rxrisk.spark``: the public face of the Spark engine (optional extra ``rxrisk[spark]``).

The engine lives in :mod:`rxrisk.engines.spark`; this module only names what a user calls.
Importing it imports no pyspark until a function runs.
"""

from __future__ import annotations

from rxrisk.engines.spark import SparkResult, collect_arrow, read_medical, read_pharmacy, score

__all__ = ["SparkResult", "collect_arrow", "read_medical", "read_pharmacy", "score"]

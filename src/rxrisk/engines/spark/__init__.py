"""The Spark engine (optional extra ``rxrisk[spark]``; see docs/spark.md): the same engine on Spark.

:func:`rxrisk.spark.score` takes Spark DataFrames and returns the member table as a Spark
DataFrame plus the audit, equal row for row and value for value to :func:`rxrisk.score` on the
same data. No engine code is duplicated: each partition runs the in-process functions.

Two stages, because claim ids are global (reversal matching and duplicate
detection are on claim_id alone, across the whole book, first in input order):

* **Stage A (buckets)**: every pharmacy row gets an input ordinal ``_rx_row``; rows are
  hash-partitioned by the *trimmed* claim id (rows without one are spread by ordinal) and
  sorted by ordinal, and each partition runs :func:`rxrisk.ingest.conform.conform_pharmacy` and
  :func:`rxrisk.ingest.validate.validate_pharmacy`. All rows sharing a claim id meet in one
  partition, in input order, so every row gets its in-process bucket. Only ``used`` rows go
  on, with one audit row per partition (bucket and reason counts).
* **Stage B (scoring)**: used pharmacy rows and all medical rows are hash-partitioned together
  by the trimmed member id and sorted by input ordinal; each partition runs the in-process
  engine (:func:`rxrisk.engines.local.score_book`) with one numba thread. Used rows validate
  to ``used`` again (paid, valid, tracked, not reversed, claim ids unique among them), a
  member's fills keep their input order, and medical validation is row-local, so per-member
  metrics, flags and the medical audit are exactly the in-process ones.

Input order for Spark is the DataFrame's order (partition, then row), as captured by
``monotonically_increasing_id`` when ``score`` adds ``_rx_row``; if the pharmacy DataFrame
already has a ``_rx_row`` column (as ``read_pharmacy`` adds: files in path order, then row
order, as the edits replay defines it for folders), that column is the order.

Modules: :mod:`~rxrisk.engines.spark.read` (sources, part checks, the input ordinal),
:mod:`~rxrisk.engines.spark.stages` (the shipped configuration and the partition functions of
both stages, run on the executors) and :mod:`~rxrisk.engines.spark.driver` (``score``: checks,
plan, job, audit). :mod:`~rxrisk.engines.spark.measures` runs the standard measures the same way
(stage A, then claims, medical, eligibility and members rows by member id). The public face is
:mod:`rxrisk.spark`. Importing these imports no pyspark.
"""

"""Engines: how a book is batched, partitioned and spilled, never what is computed.

``local`` runs a book in memory; ``stream`` (with ``batches``, ``partitions`` and ``spool``)
runs books larger than memory batch by batch and member partition by member partition;
``spark`` runs partitions on Apache Spark. Every engine calls the same ``ingest`` and
``scoring`` stages and gives byte-identical tables; none imports :mod:`rxrisk.api`.
"""

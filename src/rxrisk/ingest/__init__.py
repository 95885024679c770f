"""Ingestion: from the sources to the rows scoring uses, one direction of flow.

``sources`` (read any source to Arrow) -> ``conform`` (schema check, casts to working types;
``dates`` for date forms) -> ``checked`` (one batch conformed and checked row by row, with
``validate``: rejection reasons, reference lookup, status) -> the global step (claim-id
matching over the whole book, ``validate``) -> ``tracked`` (the rows encoding takes,
:class:`~rxrisk.ingest.tracked.TrackedRows`). ``select`` runs these in memory on a whole book;
the streaming engine runs them batch by batch. ``intake`` owns loud intake (summary,
warnings, the stop) and ``drugs`` the drug reference as arrays.
"""

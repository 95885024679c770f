"""Scoring: tracked rows to member metrics.

``encode`` turns :class:`~rxrisk.ingest.tracked.TrackedRows` into member-sorted claims,
``run`` is the wrapper beside the member-scoring kernel (one check of the typed containers,
one call), and ``columns`` decodes the kernel's named output slots into the member table.
The kernels themselves live in :mod:`rxrisk.kernels`.
"""

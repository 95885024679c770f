"""The ``rxrisk report`` product: from a scored member table and its claims, one folder of
member profiles, prescriber bundles, the outreach and lock-in lists and an index.

``members`` reads the member table and selects; ``claims`` reads the claims, in memory or
streamed, keeping the reported members' rows; ``data`` turns those into fills (the scoring
encode's), medical events and the daily MME timeline of the scoring kernels; ``lists``
makes the outreach and lock-in lists; ``wording`` puts the reasons into sentences; ``view``,
``chart``, ``markup`` and ``pages`` render the HTML; ``write`` writes the folder.
:func:`write_reports` and :func:`safe_stems` are re-exported here; importing the package does
not import numba (the claims work does, on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["safe_stems", "write_reports"]

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.reports.write import safe_stems, write_reports


def __getattr__(name: str):
    if name in __all__:
        from rxrisk.reports import write  # lazy: the report's claims work loads pyarrow

        return getattr(write, name)
    raise AttributeError(f"module 'rxrisk.reports' has no attribute {name!r}")

"""rxrisk: opioid-risk scoring of pharmacy and medical claims.

The public face is :func:`score` (Arrow in, Arrow out) and :class:`Result`. Importing
this package does not import numba: the kernels load on the first call that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["InputError", "Result", "__version__", "replay_edits", "score"]

from rxrisk.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.api import Result, score
    from rxrisk.edits.replay import replay_edits


def __getattr__(name: str):
    if name in ("score", "Result"):
        from rxrisk import api

        return getattr(api, name)
    if name == "replay_edits":
        from rxrisk.edits import replay as edits

        return edits.replay_edits
    raise AttributeError(f"module 'rxrisk' has no attribute {name!r}")

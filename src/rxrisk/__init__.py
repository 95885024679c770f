"""rxrisk: opioid-risk scoring of pharmacy and medical claims.

The public face is :func:`score` (Arrow in, Arrow out) and :class:`Result`, with
:func:`replay_edits` and :func:`measures` (:class:`MeasureResult`). Importing
this package does not import numba: the kernels load on the first call that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rxrisk.version import __version__

__all__ = [
    "InputError",
    "MeasureResult",
    "Result",
    "__version__",
    "measures",
    "replay_edits",
    "score",
]

from rxrisk.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from rxrisk.api import Result, score
    from rxrisk.edits import replay_edits
    from rxrisk.quality.run import MeasureResult, measures


def __getattr__(name: str):
    if name in ("score", "Result"):
        from rxrisk import api  # lazy: pyarrow and the engines load on the first call

        return getattr(api, name)
    if name == "replay_edits":
        from rxrisk import edits  # lazy: pyarrow and the engines load on the first call

        return edits.replay_edits
    if name in ("measures", "MeasureResult"):
        from rxrisk.quality import run  # lazy: pyarrow and the engines load on the first call

        return getattr(run, name)
    raise AttributeError(f"module 'rxrisk' has no attribute {name!r}")

"""The point-of-sale safety-edit replay (``rxrisk edits``, :func:`rxrisk.replay_edits`).

Owns the edit set (:mod:`rxrisk.edits.config`: the msgspec structs of ``data/rules/edits.toml``,
:func:`load_edits`, ``--set``), the run (:mod:`rxrisk.edits.run`: :func:`replay_edits`, in
memory or streaming), the wrapper of the replay kernel (:mod:`rxrisk.edits.replay`;
``kernels/edits.py``, whose contract is ``kernels/edits_containers.py``) and the claim table
out (:mod:`rxrisk.edits.table`).
Importing this package imports numba (the kernel); ``import rxrisk`` does not import it.
"""

from rxrisk.edits.config import EDIT_NAMES, SECTIONS, EditSet, apply_override, load_edits
from rxrisk.edits.replay import EXCLUSION_CATEGORIES, drug_keys
from rxrisk.edits.run import EditsResult, replay_edits

__all__ = [
    "EDIT_NAMES",
    "EXCLUSION_CATEGORIES",
    "SECTIONS",
    "EditSet",
    "EditsResult",
    "apply_override",
    "drug_keys",
    "load_edits",
    "replay_edits",
]

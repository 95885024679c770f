"""The drug reference as arrays: each reference row's role bits, strength, MME factor and days
per unit (:class:`DrugTable`), and the days-of-supply rule (:func:`supply_days`) that
validation (the daily MME must be finite) and the encoder share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.io.arrow import dict_codes, to_numpy
from rxrisk.kernels import roles

_ROLE_OF_CLASS = {
    "opioid": roles.OPIOID,
    "buprenorphine_mat": roles.MAT,
    "naltrexone": roles.MAT,
    "naloxone": roles.NALOXONE,
    "benzodiazepine": roles.BENZO | roles.CNS,
    "gabapentinoid": roles.CNS,
    "muscle_relaxant": roles.CNS,
    "sedative_hypnotic": roles.CNS,
    "stimulant": 0,
}


@dataclass(frozen=True)
class DrugTable:
    """Per-reference-row arrays validation and the encoder need (built once per reference)."""

    role: np.ndarray  # uint8
    strength: np.ndarray  # float64, NaN when null
    factor: np.ndarray  # float64, NaN when null
    days_per_unit: np.ndarray  # float64, NaN when null
    ndc: pa.Array

    @classmethod
    def from_reference(cls, ref: pa.Table) -> DrugTable:
        """The arrays of a drug reference table (one entry per reference row)."""
        codes, distinct = dict_codes(ref.column("drug_class"))
        role_of_distinct = np.array(
            [_ROLE_OF_CLASS[c] for c in distinct.to_pylist()] + [0], np.uint8
        )
        return cls(
            role=role_of_distinct[codes],
            strength=to_numpy(ref.column("strength_per_unit"), np.float64, np.nan),
            factor=to_numpy(ref.column("mme_factor"), np.float64, np.nan),
            days_per_unit=to_numpy(ref.column("days_per_unit"), np.float64, np.nan),
            ndc=ref.column("ndc").combine_chunks(),
        )


def supply_days(
    days_supply: np.ndarray, quantity: np.ndarray, days_per_unit: np.ndarray
) -> np.ndarray:
    """Days of supply (float64): days_supply, or max(1, round_half_up(quantity x
    days_per_unit)) for patches. Not capped: the daily MME divides by it."""
    patch = ~np.isnan(days_per_unit)
    out = days_supply.astype(np.float64, copy=True)
    if patch.any():
        with np.errstate(over="ignore", invalid="ignore"):
            rewritten = np.floor(quantity[patch] * days_per_unit[patch] + 0.5)
        out[patch] = np.maximum(1.0, rewritten)
    return out

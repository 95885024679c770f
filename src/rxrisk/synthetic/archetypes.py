"""Member archetypes of the synthetic book: who is a chronic opioid user, a shopper, on MAT, ...

:func:`draw_archetypes` flags each member of a block (chronic opioid user, shopper, MAT, cancer,
hospice, sickle cell, substance use, ...); the fill and event modules then draw each archetype's
rows (:func:`rxrisk.synthetic.writer.generate_block` calls them in the book's fixed order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rxrisk.synthetic.block import Block
from rxrisk.synthetic.rates import (
    P_CANCER,
    P_CANCER_HISTORY,
    P_CHRONIC,
    P_HOSPICE_OF_CANCER,
    P_HOSPICE_OTHER,
    P_MAT,
    P_OUD_GENERAL,
    P_SHOPPER,
    P_SICKLE,
    P_SICKLE_TRAIT,
    P_SUD_ALCOHOL,
    P_SUD_CANNABIS,
    P_SUD_OTHER,
    P_TOBACCO,
)


@dataclass
class Archetypes:
    """Member masks of one block (a member may have several archetypes)."""

    cancer: np.ndarray
    cancer_history: np.ndarray  # Z85.x only: no exclusion
    hospice: np.ndarray
    sickle: np.ndarray
    sickle_trait: np.ndarray
    chronic: np.ndarray  # chronic opioid therapy
    shopper: np.ndarray
    mat: np.ndarray  # buprenorphine (or naltrexone) medication for opioid use disorder
    oud: np.ndarray  # opioid use disorder diagnoses
    alcohol: np.ndarray
    cannabis: np.ndarray
    sud_other: np.ndarray
    tobacco: np.ndarray


def draw_archetypes(blk: Block) -> Archetypes:
    """Flag the block's members with their archetypes and count them in ``blk.counts``.

    Parameters
    ----------
    blk : Block
        The block (its random stream is advanced).

    Returns
    -------
    Archetypes
        The member masks.
    """
    cancer = blk.members_where(P_CANCER)
    cancer_history = blk.members_where(P_CANCER_HISTORY) & ~cancer
    hospice = (cancer & blk.members_where(P_HOSPICE_OF_CANCER)) | blk.members_where(P_HOSPICE_OTHER)
    sickle = blk.members_where(P_SICKLE)
    trait = blk.members_where(P_SICKLE_TRAIT) & ~sickle
    chronic = (
        blk.members_where(P_CHRONIC)
        | (cancer & blk.members_where(0.25))
        | (hospice & blk.members_where(0.7))
        | (sickle & blk.members_where(0.4))
    )
    shopper = blk.members_where(P_SHOPPER) & ~chronic
    mat = blk.members_where(P_MAT) & ~chronic & ~shopper
    oud = mat | (shopper & blk.members_where(0.3)) | (chronic & blk.members_where(0.04))
    oud |= blk.members_where(P_OUD_GENERAL)
    alcohol = blk.members_where(P_SUD_ALCOHOL)
    cannabis = blk.members_where(P_SUD_CANNABIS)
    sud_other = blk.members_where(P_SUD_OTHER) | (shopper & blk.members_where(0.2))
    tobacco = blk.members_where(P_TOBACCO) | (oud & blk.members_where(0.5))
    blk.counts.update(
        chronic_members=int(chronic.sum()),
        shopper_members=int(shopper.sum()),
        mat_members=int(mat.sum()),
        cancer_members=int(cancer.sum()),
        hospice_members=int(hospice.sum()),
        sickle_cell_members=int(sickle.sum()),
    )
    return Archetypes(
        cancer=cancer,
        cancer_history=cancer_history,
        hospice=hospice,
        sickle=sickle,
        sickle_trait=trait,
        chronic=chronic,
        shopper=shopper,
        mat=mat,
        oud=oud,
        alcohol=alcohol,
        cannabis=cannabis,
        sud_other=sud_other,
        tobacco=tobacco,
    )

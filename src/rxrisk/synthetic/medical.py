"""Medical events of the synthetic book: office, ED and hospice visits, overdoses, diagnoses.

Ordinary visits carry codes in no category; members of an archetype get its condition codes
(OUD and other SUD, cancer, sickle cell, hospice, chronic pain) on a share of their visits and on
at least one visit. Near-misses that must not count are drawn on purpose: adverse effects and
subsequent encounters of opioid poisoning, other poisonings, sickle-cell trait, cancer history.
"""

from __future__ import annotations

import numpy as np

from rxrisk.synthetic.archetypes import Archetypes
from rxrisk.synthetic.block import Block
from rxrisk.synthetic.draws import episode_members, refill_series
from rxrisk.synthetic.rates import ED_RATE, OVERDOSE_RATE


def medical_events(blk: Block, kinds: Archetypes) -> None:
    """All medical rows of a block, in the book's fixed order.

    Parameters
    ----------
    blk : Block
        The block (rows are appended to it).
    kinds : Archetypes
        Its members' archetypes.
    """
    _office_visits(blk, kinds)
    _condition_visits(blk, kinds)
    _opioid_adverse_effects(blk, kinds)
    _hospice_claims(blk, kinds)
    _ed_visits(blk, kinds)
    _overdoses(blk, kinds)


def _office_visits(blk: Block, k: Archetypes) -> None:
    """Ordinary office visits, with condition codes on a share of a flagged member's visits."""
    rng = blk.rng
    n, yrs = blk.n, blk.years
    lam = rng.gamma(0.8, 3.0 / 0.8, size=n) * yrs
    lam += np.where(k.chronic, 6.0, 0.0) * yrs + np.where(k.cancer, 6.0, 0.0) * yrs
    lam += np.where(k.mat, 8.0, 0.0) * yrs + np.where(k.sickle, 4.0, 0.0) * yrs
    mem = episode_members(rng, lam)
    day = blk.days(len(mem))
    key = blk.visit(mem, day, ["office_cpt", "office_dx"])
    blk.optional_rows(mem, day, key, "office_dx", 0.6)
    blk.optional_rows(mem, day, key, "office_pos", 0.45)
    blk.optional_rows(mem, day, key, "office_extra", 0.15)
    for flag, group, p in (
        (k.chronic, "pain_dx", 0.8),
        (k.oud, "oud", 0.7),
        (k.mat, "mat_service", 0.5),
        (k.alcohol, "sud_alcohol", 0.4),
        (k.cannabis, "sud_cannabis", 0.4),
        (k.sud_other, "sud_other", 0.4),
        (k.tobacco, "tobacco", 0.3),
        (k.cancer, "cancer", 0.85),
        (k.cancer, "cancer_service", 0.2),
        (k.cancer & (k.chronic | k.shopper), "cancer_pain", 0.35),
        (k.cancer_history, "cancer_history", 0.5),
        (k.sickle, "sickle", 0.8),
        (k.sickle_trait, "sickle_trait", 0.3),
        (k.hospice, "hospice_dx", 0.15),
    ):
        sel = flag[mem] & (rng.random(len(mem)) < p)
        blk.medical_rows(mem[sel], day[sel], blk.codes(group, int(sel.sum())), key[sel])


def _condition_visits(blk: Block, k: Archetypes) -> None:
    """An extra visit for each flagged member, so that each has at least one such code."""
    for flag, group in (
        (k.oud, "oud"),
        (k.alcohol, "sud_alcohol"),
        (k.cannabis, "sud_cannabis"),
        (k.sud_other, "sud_other"),
        (k.cancer, "cancer"),
        (k.cancer_history, "cancer_history"),
        (k.sickle, "sickle"),
        (k.sickle_trait, "sickle_trait"),
    ):
        m = np.flatnonzero(flag)
        d = blk.days(len(m))
        key = blk.visit(m, d, ["office_cpt", group])
        blk.optional_rows(m, d, key, "office_pos", 0.45)


def _opioid_adverse_effects(blk: Block, k: Archetypes) -> None:
    """Adverse effects of opioids (not overdoses) for a few opioid users."""
    ae = np.flatnonzero((k.chronic | k.shopper) & blk.members_where(0.04))
    d = blk.days(len(ae))
    blk.visit(ae, d, ["office_cpt", "adverse_effect"])


def _hospice_claims(blk: Block, k: Archetypes) -> None:
    """Monthly hospice claims from a start date to the end of the range (most start late)."""
    hm = np.flatnonzero(k.hospice)
    hstart = blk.days(len(hm), int(blk.n_days * 0.4), blk.n_days)
    sid, hd, _ = refill_series(
        blk.rng, hstart, np.full(len(hm), blk.n_days), np.full(len(hm), 30), 0.0, 0.0
    )
    m = hm[sid]
    key = blk.visit(m, hd, ["hospice_rev"])
    blk.optional_rows(m, hd, key, "hospice_dx", 0.6)
    blk.optional_rows(m, hd, key, "hospice_pos", 0.4)


def _ed_visits(blk: Block, k: Archetypes) -> None:
    """ED visits: sickle-cell crises, and rare non-opioid poisonings (not overdoses)."""
    rng = blk.rng
    lam = np.full(blk.n, ED_RATE["general"])
    lam = np.where(k.chronic, ED_RATE["chronic"], lam)
    lam = np.where(k.shopper, ED_RATE["shopper"], lam)
    lam = np.where(k.mat, ED_RATE["mat"], lam)
    lam = np.where(k.sickle, ED_RATE["sickle"], lam)
    lam = lam * rng.gamma(1.0, 1.0, size=blk.n) * blk.years
    mem = episode_members(rng, lam)
    day = blk.days(len(mem))
    key = blk.ed_visit(mem, day)
    sc = k.sickle[mem] & (rng.random(len(mem)) < 0.7)
    blk.medical_rows(mem[sc], day[sc], blk.codes("sickle_crisis", int(sc.sum())), key[sc])
    # cocaine, cannabis, benzodiazepine poisonings
    po = rng.random(len(mem)) < 0.004
    blk.medical_rows(mem[po], day[po], blk.codes("other_poisoning", int(po.sum())), key[po])


def _overdoses(blk: Block, k: Archetypes) -> None:
    """Opioid overdoses (ED or inpatient), half of them with a follow-up visit."""
    rng = blk.rng
    lam = np.full(blk.n, OVERDOSE_RATE["general"])
    lam = np.where(k.chronic, OVERDOSE_RATE["chronic"], lam)
    lam = np.where(k.shopper, OVERDOSE_RATE["shopper"], lam)
    lam = np.where(k.oud, np.maximum(lam, OVERDOSE_RATE["oud"]), lam)
    mem = episode_members(rng, lam * blk.years)
    n_events = len(mem)
    day = blk.days(n_events)
    inpatient = rng.random(n_events) < 0.1
    key = day + rng.random(n_events)
    ed = ~inpatient
    key[ed] = blk.ed_visit(mem[ed], day[ed], dx_group=None)
    blk.visit(mem[inpatient], day[inpatient], ["inpatient"], key=key[inpatient])
    blk.medical_rows(mem, day, blk.codes("overdose", n_events), key)
    blk.optional_rows(mem, day, key, "oud", 0.4)
    blk.optional_rows(mem, day, key, "other_poisoning", 0.1)
    fu = rng.random(n_events) < 0.5
    fday = day[fu] + rng.integers(7, 41, size=int(fu.sum()))
    keep = fday < blk.n_days
    fm = mem[fu][keep]
    fday = fday[keep]
    blk.visit(fm, fday, ["office_cpt", "overdose_followup"])
    blk.counts["overdose_events"] = blk.counts.get("overdose_events", 0) + n_events

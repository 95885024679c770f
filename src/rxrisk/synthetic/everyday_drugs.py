"""Everyday fills of the synthetic book: untracked drugs and the non-opioid tracked classes.

Everybody refills untracked maintenance drugs (made-up NDCs outside the reference) and has acute
fills of untracked drugs; part of the population, more of the chronic opioid users, fills
benzodiazepines, gabapentinoids, muscle relaxants, z-drugs and stimulants.
"""

from __future__ import annotations

import numpy as np

from rxrisk.synthetic.archetypes import Archetypes
from rxrisk.synthetic.block import Block
from rxrisk.synthetic.draws import draw_from_cdf, episode_members, refill_series, weighted_choice


def untracked_maintenance_fills(blk: Block) -> None:
    """Refills of 0-6 untracked maintenance drugs per member (30 or 90 days, some by mail).

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    """
    rng = blk.rng
    n, nd = blk.n, blk.n_days
    arange = np.arange(n)
    n_maint = weighted_choice(rng, np.arange(7), [38, 20, 15, 10, 8, 5, 4], n)
    smem = np.repeat(arange, n_maint)
    ns = len(smem)
    sds = np.where(rng.random(ns) < 0.22, 90, 30)
    new_start = rng.random(ns) < 0.15
    sstart = np.where(new_start, blk.days(ns, 0, int(nd * 0.85)), -rng.integers(0, sds))
    sstop = np.where(rng.random(ns) < 0.1, sstart + rng.integers(60, 300, size=ns), nd)
    sstop = np.minimum(sstop, nd)
    sndc = blk.catalog.maint_ids[draw_from_cdf(rng, blk.catalog.maint_cdf, ns)]
    sunits = weighted_choice(rng, [1, 2, 0.5, 3], [65, 28, 4, 3], ns)
    sprod_mail = (sds == 90) & (rng.random(ns) < 0.5)
    spresc = blk.prescriber(smem, p_own=0.75, p_region=0.24)
    sid, day, _ = refill_series(rng, sstart, sstop, sds, p_early=0.05, p_late=0.15)
    mem = smem[sid]
    qty = np.maximum(np.rint(sunits[sid] * sds[sid] * 2) / 2, 1)
    special = rng.random(len(sid)) < 0.04  # inhalers, creams, insulin: fractional amounts
    qty[special] = weighted_choice(
        rng, [8.5, 18.0, 6.7, 15.0, 30.0, 45.0, 10.0], [3, 2, 2, 2, 2, 1, 1], int(special.sum())
    )
    presc = np.where(rng.random(len(sid)) < 0.92, spresc[sid], blk.prescriber(mem))
    blk.emit(mem, day, sndc[sid], qty, sds[sid], presc, blk.pharmacy(mem, mail=sprod_mail[sid]))


def untracked_acute_fills(blk: Block) -> None:
    """Acute fills of untracked drugs (about 3.6 per member-year; a few compounds and liquids).

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    """
    rng = blk.rng
    n, yrs = blk.n, blk.years
    lam = rng.gamma(0.8, 3.6 / 0.8, size=n) * yrs
    mem = episode_members(rng, lam)
    k = len(mem)
    ndc = blk.catalog.acute_ids[draw_from_cdf(rng, blk.catalog.acute_cdf, k)]
    ndc[rng.random(k) < 0.003] = blk.catalog.compound_id
    ds = weighted_choice(rng, [10, 7, 5, 14, 30, 3, 1, 90], [30, 20, 15, 10, 14, 5, 4, 2], k)
    qty = ds * weighted_choice(rng, [1, 2, 3, 4], [45, 35, 12, 8], k).astype(np.float64)
    liquid = rng.random(k) < 0.05
    qty[liquid] = weighted_choice(
        rng, [100.0, 150.0, 200.0, 473.0, 5.0], [4, 4, 2, 1, 1], int(liquid.sum())
    )
    blk.emit(mem, blk.days(k), ndc, qty, ds, blk.prescriber(mem, 0.45, 0.5), blk.pharmacy(mem))


def other_tracked_classes(blk: Block, kinds: Archetypes) -> None:
    """Benzodiazepine, gabapentinoid, muscle-relaxant, z-drug and stimulant fills.

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    kinds : Archetypes
        Its members' archetypes (chronic opioid users co-use more).
    """
    rng, n = blk.rng, blk.n
    co = rng.random(n)
    class_series(
        blk,
        "benzodiazepine",
        (kinds.chronic & (co < 0.25)) | blk.members_where(0.025),
        [1, 2, 3, 4],
        [40, 35, 20, 5],
    )
    class_acute(
        blk,
        "benzodiazepine",
        0.025,
        [1, 2, 3],
        [50, 35, 15],
        [5, 7, 10, 14, 30],
        [15, 25, 25, 15, 20],
    )
    class_series(
        blk,
        "gabapentinoid",
        (kinds.chronic & (blk.rng.random(n) < 0.3)) | blk.members_where(0.035),
        [1, 2, 3],
        [15, 35, 50],
    )
    class_acute(blk, "gabapentinoid", 0.01, [2, 3], [50, 50], [10, 30], [40, 60])
    class_series(
        blk, "muscle_relaxant", kinds.chronic & blk.members_where(0.15), [1, 2, 3], [30, 40, 30]
    )
    class_acute(
        blk,
        "muscle_relaxant",
        0.045,
        [2, 3],
        [50, 50],
        [7, 10, 14, 30],
        [30, 35, 15, 20],
    )
    class_series(
        blk,
        "sedative_hypnotic",
        (kinds.chronic & blk.members_where(0.1)) | blk.members_where(0.02),
        [1],
        [1],
        dur=(60, 360),
    )
    class_series(blk, "stimulant", blk.members_where(0.025), [1, 2], [70, 30])


def class_series(blk: Block, template: str, who, units, weights, dur=None) -> None:
    """Refill series of ``template`` for the members in the mask ``who``.

    Each series keeps one NDC, 30 or 90 days supply and ``units`` a day (drawn with ``weights``);
    it lasts to the end of the range, or ``dur = (lo, hi)`` days when given.
    """
    rng = blk.rng
    prod = blk.catalog.products[template]
    mem = np.flatnonzero(who)
    c = len(mem)
    if prod is None or c == 0:
        return
    ds = np.where(rng.random(c) < 0.85, 30, 90)
    start = np.where(
        rng.random(c) < 0.7, -rng.integers(0, ds), blk.days(c, 0, int(blk.n_days * 0.85))
    )
    if dur is None:
        stop = np.where(rng.random(c) < 0.2, start + rng.integers(60, 300, size=c), blk.n_days)
    else:
        stop = start + rng.integers(dur[0], dur[1], size=c)
    sid, day, _ = refill_series(rng, start, np.minimum(stop, blk.n_days), ds, 0.1, 0.15)
    m = mem[sid]
    upd = weighted_choice(rng, units, weights, c)[sid]
    cand = prod.pick(rng, c)[sid]  # the same NDC for the whole series
    own = blk.prescriber(mem, 0.7, 0.28)
    presc = blk.prescriber(m, 0.9, 0.09, own=own[sid])
    qty = np.maximum(np.rint(upd * ds[sid]), 1)
    blk.emit(
        m,
        day,
        prod.ndc[cand],
        qty,
        ds[sid],
        presc,
        blk.pharmacy(m, mail=(ds[sid] == 90) & (rng.random(len(m)) < 0.4)),
    )


def class_acute(blk: Block, template: str, rate, units, uw, ds_values, dsw) -> None:
    """Acute episodes (``rate`` per member-year) of 1-3 consecutive fills."""
    rng = blk.rng
    ep_mem = episode_members(rng, np.full(blk.n, rate * blk.years))
    e = len(ep_mem)
    nfill = weighted_choice(rng, [1, 2, 3], [70, 22, 8], e)
    ep = np.repeat(np.arange(e), nfill)
    seq = np.arange(len(ep)) - np.repeat(np.cumsum(nfill) - nfill, nfill)
    ds = weighted_choice(rng, ds_values, dsw, e)[ep]
    day = blk.days(e)[ep] + seq * (ds + rng.integers(0, 10, size=len(ep)))
    keep = day < blk.n_days
    mem, ep, ds, day = ep_mem[ep][keep], ep[keep], ds[keep], day[keep]
    upd = weighted_choice(rng, units, uw, e)[ep]
    presc = blk.prescriber(ep_mem, 0.5, 0.45)[ep]
    blk.simple_fills(blk.catalog.products[template], mem, day, ds, upd, presc, blk.pharmacy(mem))

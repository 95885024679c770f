"""Opioid fills of the synthetic book: acute, chronic, shoppers, and the treatment drugs.

Chronic therapy is short-acting only or long-acting with short-acting breakthrough, with daily MME
drawn log-normally and escalated or tapered; shoppers spread overlapping fills over many
prescribers and pharmacies; MAT members fill buprenorphine (or naltrexone), and some members carry
naloxone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rxrisk.synthetic.archetypes import Archetypes
from rxrisk.synthetic.block import Block
from rxrisk.synthetic.draws import episode_members, refill_series, weighted_choice
from rxrisk.synthetic.rates import ACUTE_OPIOID_EPISODES

_ACUTE_NAMES = np.array(
    ["hydrocodone_sa", "oxycodone_acute", "tramadol_sa", "codeine_sa", "hydrocodone_liquid",
     "codeine_liquid", "oxycodone_liquid", "hydromorphone_sa", "morphine_sa", "tapentadol_sa"]
)  # fmt: skip
_LA_NAMES = np.array(
    ["oxycodone_la", "morphine_la", "fentanyl_patch", "methadone", "hydromorphone_la",
     "oxymorphone_la", "tapentadol_la", "tramadol_la", "buprenorphine_patch"]
)  # fmt: skip
_SA_NAMES = np.array(
    ["hydrocodone_sa", "oxycodone_sa", "tramadol_sa", "hydromorphone_sa", "morphine_sa",
     "tapentadol_sa"]
)  # fmt: skip


def opioid_fills(blk: Block, kinds: Archetypes) -> None:
    """All opioid fills of a block: acute episodes, chronic therapy and shoppers.

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    kinds : Archetypes
        Its members' archetypes.
    """
    rng, yrs = blk.rng, blk.years
    chronic, shopper, mat, sickle = kinds.chronic, kinds.shopper, kinds.mat, kinds.sickle
    acute_opioids(
        blk,
        episode_members(rng, np.where(chronic | shopper | mat, 0.0, ACUTE_OPIOID_EPISODES * yrs)),
    )
    acute_opioids(
        blk,
        np.repeat(
            np.flatnonzero(sickle & ~chronic),
            rng.poisson(4 * yrs, int((sickle & ~chronic).sum())),
        ),
    )
    acute_opioids(blk, np.flatnonzero(mat & blk.members_where(0.3)))
    chronic_opioids(blk, np.flatnonzero(chronic), kinds.cancer | kinds.hospice)
    # chronic users also get an occasional acute fill from another prescriber (ED, dentist)
    extra = np.flatnonzero(chronic & blk.members_where(0.15))
    acute_opioids(blk, extra, other_prescriber=True)
    shoppers(blk, np.flatnonzero(shopper))


def treatment_fills(blk: Block, kinds: Archetypes) -> None:
    """MAT (buprenorphine or naltrexone), naltrexone for alcohol use, and naloxone.

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    kinds : Archetypes
        Its members' archetypes.
    """
    rng, yrs = blk.rng, blk.years
    mmem = np.flatnonzero(kinds.mat)
    on_nal = rng.random(len(mmem)) < 0.15
    buprenorphine_mat(blk, mmem[~on_nal])
    alc_nal = np.flatnonzero(kinds.alcohol & blk.members_where(0.08))
    naltrexone(blk, np.concatenate([mmem[on_nal], alc_nal]))
    nalox = (
        (kinds.chronic & blk.members_where(0.15))
        | (kinds.mat & blk.members_where(0.4))
        | (kinds.shopper & blk.members_where(0.1))
        | blk.members_where(0.002)
    )
    mem = episode_members(rng, np.where(nalox, 1.3 * yrs, 0.0))
    k = len(mem)
    prod = blk.catalog.products["naloxone"]
    if prod is not None and k:
        # nasal spray two-packs (quantity 2) mostly, single units otherwise
        qty = weighted_choice(rng, [2.0, 1.0, 4.0], [80, 15, 5], k)
        ds = weighted_choice(rng, [1, 2, 15, 30], [55, 25, 10, 10], k)
        ndc = prod.ndc[prod.pick(rng, k)]
        blk.emit(mem, blk.days(k), ndc, qty, ds, blk.prescriber(mem), blk.pharmacy(mem))


def acute_opioids(blk: Block, mem: np.ndarray, other_prescriber: bool = False) -> None:
    """Acute opioid episodes of members ``mem`` (one per entry): a short fill, sometimes refilled.

    With ``other_prescriber`` the fills come from a regional prescriber (ED, dentist), not the
    member's usual ones.
    """
    rng = blk.rng
    if len(mem) == 0:
        return
    P = blk.catalog.products
    nfill = weighted_choice(rng, [1, 2, 3], [80, 16, 4], len(mem))
    first = blk.days(len(mem))
    ep = np.repeat(np.arange(len(mem)), nfill)
    seq = np.arange(len(ep)) - np.repeat(np.cumsum(nfill) - nfill, nfill)
    m = mem[ep]
    day = first[ep] + seq * rng.integers(3, 25, size=len(ep))
    keep = day < blk.n_days
    ep, m, day = ep[keep], m[keep], day[keep]
    k = len(ep)
    names = _ACUTE_NAMES
    w = [42, 16, 22, 10, 2, 2, 1, 3, 1, 1]
    prod_of_ep = weighted_choice(rng, np.arange(len(names)), w, len(mem))
    pi = prod_of_ep[ep]
    ds = weighted_choice(rng, [3, 4, 5, 7, 10, 14, 30], [24, 6, 30, 28, 6, 4, 2], len(mem))[ep]
    upd = weighted_choice(rng, [3, 4, 6], [30, 40, 30], len(mem))[ep].astype(np.float64)
    if other_prescriber:
        presc = blk.pools.region_prescriber(rng, blk.region[m])
    else:
        ep_presc = blk.prescriber(mem, 0.4, 0.55)
        presc = ep_presc[ep]
    pharm = blk.pharmacy(m)
    for j, name in enumerate(names):
        sel = pi == j
        if not sel.any():
            continue
        units = upd[sel]
        if name.endswith("liquid"):
            units = weighted_choice(rng, [15, 20, 30, 40], [20, 30, 30, 20], int(sel.sum())).astype(
                np.float64
            )
        elif name == "tramadol_sa":
            units = units + 1
        prod = P[name] or P["hydrocodone_sa"]
        blk.simple_fills(prod, m[sel], day[sel], ds[sel], units, presc[sel], pharm[sel])
    blk.counts["acute_opioid_fills"] = blk.counts.get("acute_opioid_fills", 0) + k


@dataclass
class _ChronicPlan:
    """Per chronic user: target MME, its yearly change, the refill window and the products."""

    mem: np.ndarray
    exc: np.ndarray  # excluded (cancer, hospice): higher doses, more long-acting
    base: np.ndarray  # daily MME at the start
    growth: np.ndarray  # multiplicative change per year
    ds: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    pain_doc: np.ndarray
    has_la: np.ndarray
    la_prod: np.ndarray
    sa_prod: np.ndarray
    sa_share: np.ndarray
    has_sa: np.ndarray


def _plan_chronic(blk: Block, mem: np.ndarray, excluded: np.ndarray) -> _ChronicPlan:
    rng = blk.rng
    nd = blk.n_days
    c = len(mem)
    exc = excluded[mem]
    base = np.exp(rng.normal(np.log(32.0), 0.7, size=c))
    base[exc] *= 2.0
    # escalation (40%), taper (10%) or stable: multiplicative change per year
    u = rng.random(c)
    growth = np.where(
        u < 0.4,
        rng.uniform(1.2, 2.2, size=c),
        np.where(u < 0.5, rng.uniform(0.4, 0.8, size=c), 1.0),
    )
    ongoing = rng.random(c) < 0.72
    ds = np.where(rng.random(c) < 0.65, 30, 28)
    start = np.where(ongoing, -rng.integers(0, 30, size=c), blk.days(c, 0, int(nd * 0.8)))
    stop = np.where(rng.random(c) < 0.2, start + rng.integers(60, 240, size=c), nd)
    stop = np.minimum(stop, nd)
    pain_doc = blk.pools.region_prescriber(rng, blk.region[mem])
    has_la = rng.random(c) < np.where(exc, 0.6, 0.33)
    la_prod = weighted_choice(rng, np.arange(len(_LA_NAMES)), [28, 28, 20, 8, 4, 3, 4, 2, 3], c)
    sa_prod = weighted_choice(rng, np.arange(len(_SA_NAMES)), [42, 36, 12, 5, 3, 2], c)
    sa_prod[exc & (rng.random(c) < 0.5)] = 1  # oxycodone for cancer pain
    # breakthrough SA for 70% of LA users; SA carries the whole target otherwise
    sa_share = np.where(has_la, 0.3, 1.0)
    has_sa = ~has_la | (rng.random(c) < 0.7)
    return _ChronicPlan(
        mem,
        exc,
        base,
        growth,
        ds,
        start,
        stop,
        pain_doc,
        has_la,
        la_prod,
        sa_prod,
        sa_share,
        has_sa,
    )


def _chronic_series(blk: Block, plan: _ChronicPlan, which, share, prods, long_acting, early, late):
    """Monthly refills of the long-acting (or short-acting) product of the users in ``which``."""
    rng = blk.rng
    P = blk.catalog.products
    names = _LA_NAMES if long_acting else _SA_NAMES
    mem, ds, start = plan.mem, plan.ds, plan.start
    sid, day, _ = refill_series(rng, start[which], plan.stop[which], ds[which], early, late)
    idx = np.flatnonzero(which)[sid]
    m = mem[idx]
    years_in = (day - start[idx]) / 365.25
    target = plan.base[idx] * share[idx] * plan.growth[idx] ** years_in
    target *= rng.uniform(0.9, 1.1, size=len(idx))
    presc = blk.prescriber(m, p_own=0.9, p_region=0.09, own=plan.pain_doc[idx])
    pharm = blk.pharmacy(m, p_home=0.9)
    for j, name in enumerate(names):
        sel = prods[idx] == j
        if not sel.any():
            continue
        prod = P[name]
        dsj = ds[idx][sel]
        if name == "buprenorphine_patch":
            if prod is not None:
                k = int(sel.sum())
                blk.emit(
                    m[sel],
                    day[sel],
                    prod.ndc[prod.pick(rng, k)],
                    np.full(k, 4.0),
                    np.full(k, 28),
                    presc[sel],
                    pharm[sel],
                )
            continue
        if prod is None:
            prod = P["oxycodone_sa"]
        u_pref = 3.0 if name == "methadone" else (2.0 if long_acting else 4.0)
        u_max = 6 if long_acting else 12
        blk.dosed_fills(
            prod, m[sel], day[sel], dsj, target[sel], presc[sel], pharm[sel], u_pref, u_max
        )


def _transmucosal_fentanyl(blk: Block, plan: _ChronicPlan) -> None:
    """Transmucosal fentanyl for some excluded (cancer) patients."""
    rng = blk.rng
    P = blk.catalog.products
    c = len(plan.mem)
    tm = plan.exc & (rng.random(c) < 0.05)
    if tm.any() and P["fentanyl_transmucosal"] is not None:
        sid, day, _ = refill_series(rng, plan.start[tm], plan.stop[tm], np.full(int(tm.sum()), 30))
        idx = np.flatnonzero(tm)[sid]
        m = plan.mem[idx]
        blk.simple_fills(
            P["fentanyl_transmucosal"],
            m,
            day,
            np.full(len(m), 30),
            rng.choice([2.0, 4.0], size=len(m)),
            plan.pain_doc[idx],
            blk.pharmacy(m),
        )


def chronic_opioids(blk: Block, mem: np.ndarray, excluded: np.ndarray) -> None:
    """Chronic opioid therapy: SA-only or LA + SA breakthrough, monthly refills.

    Parameters
    ----------
    blk : Block
        The block (fills are appended to it).
    mem : numpy.ndarray
        The chronic users (block-relative member indices).
    excluded : numpy.ndarray
        Member mask of cancer and hospice members (higher doses, more long-acting products).
    """
    if len(mem) == 0:
        return
    plan = _plan_chronic(blk, mem, excluded)
    _chronic_series(blk, plan, plan.has_la, np.full(len(mem), 0.7), plan.la_prod, True, 0.08, 0.08)
    _chronic_series(blk, plan, plan.has_sa, plan.sa_share, plan.sa_prod, False, 0.15, 0.12)
    _transmucosal_fentanyl(blk, plan)


def shoppers(blk: Block, mem: np.ndarray) -> None:
    """Doctor and pharmacy shoppers: many overlapping fills from 4-10 prescribers, 3-8 pharmacies."""
    rng = blk.rng
    s = len(mem)
    if s == 0:
        return
    n_presc = rng.integers(4, 11, size=s)
    n_pharm = rng.integers(3, 9, size=s)
    presc_set = blk.pools.region_prescriber(rng, np.repeat(blk.region[mem], 10)).reshape(s, 10)
    far = rng.random((s, 10)) < 0.3
    presc_set[far] = blk.pools.any_prescriber(rng, int(far.sum()))
    pharm_set = blk.pools.region_pharmacy(rng, np.repeat(blk.region[mem], 8)).reshape(s, 8)
    farp = rng.random((s, 8)) < 0.3
    pharm_set[farp] = blk.pools.any_pharmacy(rng, int(farp.sum()))
    k_each = rng.poisson(rng.uniform(15, 40, size=s) * blk.years)
    who = np.repeat(np.arange(s), k_each)
    k = len(who)
    m = mem[who]
    day = blk.days(k)
    presc = presc_set[who, (rng.random(k) * n_presc[who]).astype(np.int64)]
    pharm = pharm_set[who, (rng.random(k) * n_pharm[who]).astype(np.int64)]
    ds = weighted_choice(rng, [5, 7, 10, 15, 30], [15, 25, 20, 20, 20], k)
    target = rng.uniform(40, 180, size=k)
    P = blk.catalog.products
    prod = weighted_choice(rng, [0, 1, 2], [45, 45, 10], k)
    for j, name in enumerate(["oxycodone_sa", "hydrocodone_sa", "hydromorphone_sa"]):
        sel = prod == j
        blk.dosed_fills(
            P[name] or P["oxycodone_sa"],
            m[sel],
            day[sel],
            ds[sel],
            target[sel],
            presc[sel],
            pharm[sel],
        )


def buprenorphine_mat(blk: Block, mem: np.ndarray) -> None:
    """Buprenorphine medication for opioid use disorder: refill series, some monthly depots."""
    rng = blk.rng
    prod = blk.catalog.products["buprenorphine_mat"]
    c = len(mem)
    if prod is None or c == 0:
        return
    ds = weighted_choice(rng, [30, 28, 14, 7], [55, 15, 15, 15], c)
    start = np.where(
        rng.random(c) < 0.6, -rng.integers(0, ds), blk.days(c, 0, int(blk.n_days * 0.8))
    )
    stop = np.where(rng.random(c) < 0.3, start + rng.integers(30, 200, size=c), blk.n_days)
    doc = blk.pools.region_prescriber(rng, blk.region[mem])
    sid, day, _ = refill_series(rng, start, np.minimum(stop, blk.n_days), ds, 0.08, 0.2)
    m = mem[sid]
    wanted = weighted_choice(rng, [8.0, 2.0, 12.0, 4.0], [70, 15, 10, 5], c)[sid]
    cand = prod.pick_strength(rng, wanted)
    st = prod.strength[cand]
    mg_day = weighted_choice(rng, [8.0, 12.0, 16.0, 24.0], [15, 20, 50, 15], c)[sid]
    u = np.clip(np.rint(mg_day / np.maximum(st, 1e-9)), 1, 4)
    d = ds[sid]
    depot = st >= 50  # monthly injection
    qty = np.where(depot, 1.0, u * d)
    d = np.where(depot, 30, d)
    blk.emit(
        m,
        day,
        prod.ndc[cand],
        qty,
        d,
        blk.prescriber(m, 0.95, 0.05, own=doc[sid]),
        blk.pharmacy(m, 0.9),
    )


def naltrexone(blk: Block, mem: np.ndarray) -> None:
    """Naltrexone series (tablets or monthly depot injections) of members ``mem``."""
    rng = blk.rng
    prod = blk.catalog.products["naltrexone"]
    c = len(mem)
    if prod is None or c == 0:
        return
    start = blk.days(c, -30, int(blk.n_days * 0.7))
    stop = np.minimum(start + rng.integers(60, 365, size=c), blk.n_days)
    sid, day, _ = refill_series(rng, start, stop, np.full(c, 30))
    m = mem[sid]
    cand = prod.pick(rng, len(m))
    depot = np.nan_to_num(prod.strength[cand]) >= 300
    blk.emit(
        m,
        day,
        prod.ndc[cand],
        np.where(depot, 1.0, 30.0),
        np.where(depot, 28, 30),
        blk.prescriber(m),
        blk.pharmacy(m),
    )

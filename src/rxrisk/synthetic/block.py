"""One block of members of the synthetic book: its random stream and the rows it collects.

:class:`Block` holds what the archetype modules (:mod:`~rxrisk.synthetic.archetypes`,
:mod:`~rxrisk.synthetic.opioids`, :mod:`~rxrisk.synthetic.everyday_drugs`,
:mod:`~rxrisk.synthetic.medical`) share: the members' home prescriber and pharmacies and the
primitives that draw a prescriber, a pharmacy, a dose and append pharmacy fills or medical rows.
Every draw comes from the block's one random stream, in program order: the order of the calls is
part of the output.
"""

from __future__ import annotations

import numpy as np

from rxrisk.synthetic.catalog import Catalog, Product
from rxrisk.synthetic.draws import draw_from_cdf
from rxrisk.synthetic.medical_codes import GROUPS
from rxrisk.synthetic.pools import Pools


class Block:
    """Members ``first_member .. first_member + n - 1`` over ``n_days`` days, and their rows.

    Pharmacy fills collect in :attr:`ph` as column tuples ``(mem, day, ndc, qty, ds, presc,
    pharm)`` and medical rows in :attr:`md` as ``(mem, day, vocab, key)`` (rows of one event share
    the ordering ``key``); members are block-relative indices, NDCs catalog indices, codes
    vocabulary indices. :attr:`counts` gathers the archetype counts of the summary.
    """

    def __init__(
        self,
        rng,
        catalog: Catalog,
        pools: Pools,
        first_member: int,
        n: int,
        n_days: int,
        id_width: int,
    ):
        self.rng = rng
        self.catalog = catalog
        self.pools = pools
        self.n = n
        self.n_days = n_days
        self.years = n_days / 365.25
        self.first_member = first_member
        self.id_width = id_width
        i32, f64 = np.zeros(0, np.int32), np.zeros(0, np.float64)
        # (mem, day, ndc, qty, ds, presc, pharm); starts with an empty part so a block may be empty
        self.ph: list[tuple] = [(i32, i32, i32, f64, i32, i32, i32)]
        self.md: list[tuple] = [(i32, i32, i32, f64)]  # (mem, day, vocab, key)
        self.counts: dict[str, int] = {}

    def place_members(self) -> None:
        """Draw each member's region, primary prescriber, two regional pharmacies and mail order."""
        rng, n, pools = self.rng, self.n, self.pools
        self.region = rng.integers(0, pools.n_regions, size=n)
        self.pcp = pools.region_prescriber(rng, self.region)
        self.home_pharm = pools.region_pharmacy(rng, self.region)
        self.second_pharm = pools.region_pharmacy(rng, self.region)
        self.mail_choice = rng.integers(0, pools.n_mail, size=n)

    # ---- pharmacy fills ----
    def emit(self, mem, day, ndc, qty, ds, presc, pharm):
        """Append pharmacy fills (columns of equal length; nothing when empty)."""
        if len(mem):
            self.ph.append(
                (
                    np.asarray(mem, np.int32),
                    np.asarray(day, np.int32),
                    np.asarray(ndc, np.int32),
                    np.asarray(qty, np.float64),
                    np.asarray(ds, np.int32),
                    np.asarray(presc, np.int32),
                    np.asarray(pharm, np.int32),
                )
            )

    def prescriber(self, mem, p_own=0.6, p_region=0.35, own=None):
        """Prescriber per fill: the member's own (PCP, or ``own`` per fill), a regional or any."""
        rng = self.rng
        own = self.pcp[mem] if own is None else own
        u = rng.random(len(mem))
        out = np.where(u < p_own, own, self.pools.region_prescriber(rng, self.region[mem]))
        far = u >= p_own + p_region
        out[far] = self.pools.any_prescriber(rng, int(far.sum()))
        return out.astype(np.int32)

    def pharmacy(self, mem, p_home=0.82, mail=None):
        """Pharmacy per fill: home, second, another regional, any (travel) or mail order."""
        rng = self.rng
        u = rng.random(len(mem))
        out = np.where(u < p_home, self.home_pharm[mem], self.second_pharm[mem])
        other = u >= p_home + 0.12
        out[other] = self.pools.region_pharmacy(rng, self.region[mem[other]])
        travel = u >= 0.995
        out[travel] = self.pools.any_pharmacy(rng, int(travel.sum()))
        if mail is not None:
            out[mail] = self.pools.mail_first + self.mail_choice[mem[mail]]
        return out.astype(np.int32)

    def dosed_fills(self, prod: Product, mem, day, ds, target, presc, pharm, u_pref=4.0, u_max=12):
        """Fills of a dose-targeted product.

        The strength is the one nearest the target at ``u_pref`` units a day, the quantity such
        that the daily MME is close to ``target``.
        """
        if prod is None or len(mem) == 0:
            return
        rng = self.rng
        name = prod.name
        if name == "fentanyl_patch":
            per = np.where(np.isfinite(prod.dpu) & (prod.dpu > 0), prod.dpu, 3.0)
            # daily MME of one patch at a time: strength * factor / days_per_unit
            lvl_per = prod.level_factor / per[prod.level_start]
            cand = prod.pick_strength(rng, target / np.maximum(lvl_per[0], 1e-9))
            pp = prod.strength[cand] * prod.factor[cand] / per[cand]
            at_once = np.clip(np.rint(target / pp), 1, 3)
            q48 = rng.random(len(mem)) < 0.2  # changed every 48 hours
            ds = np.full(len(mem), 30, np.int64)
            qty = np.where(q48, 15, 10) * at_once
        else:
            cand = prod.pick_strength(rng, target / (prod.level_factor.max() * u_pref))
            per_unit = prod.strength[cand] * prod.factor[cand]
            u = np.clip(np.rint(target / per_unit), 1, u_max)
            qty = u * ds
        self.emit(mem, day, prod.ndc[cand], qty, ds, presc, pharm)

    def simple_fills(self, prod: Product | None, mem, day, ds, units_per_day, presc, pharm):
        """Fills of a random NDC of ``prod`` with ``units_per_day * ds`` units (at least one)."""
        if prod is None or len(mem) == 0:
            return
        cand = prod.pick(self.rng, len(mem))
        qty = np.maximum(np.rint(np.asarray(units_per_day) * ds), 1)
        self.emit(mem, day, prod.ndc[cand], qty, ds, presc, pharm)

    def members_where(self, p, base=None):
        """A random share ``p`` of the block's members (within ``base`` if given), as a mask."""
        m = self.rng.random(self.n) < p
        return m if base is None else (m & base)

    # ---- medical rows ----
    def medical_rows(self, mem, day, vocab, key):
        """Append medical rows (nothing when empty)."""
        if len(mem):
            self.md.append(
                (
                    np.asarray(mem, np.int32),
                    np.asarray(day, np.int32),
                    np.asarray(vocab, np.int32),
                    key,
                )
            )

    def codes(self, group, n):
        """``n`` codes (vocabulary indices) of the weighted code ``group``."""
        idx, cdf = GROUPS[group]
        return idx[draw_from_cdf(self.rng, cdf, n)]

    def visit(self, mem, day, groups, key=None):
        """One row per (group) for each event; all rows of an event share the ordering key."""
        if key is None:
            key = day + self.rng.random(len(mem))
        for g in groups:
            self.medical_rows(mem, day, self.codes(g, len(mem)), key)
        return key

    def optional_rows(self, mem, day, key, group, p):
        """A row of ``group`` for a random share ``p`` of the events."""
        m = self.rng.random(len(mem)) < p
        self.medical_rows(mem[m], day[m], self.codes(group, int(m.sum())), key[m])

    def ed_visit(self, mem, day, dx_group="ed_dx", cpt_p=0.9, rev_p=0.75):
        """Emergency-department visits: CPT, revenue and place-of-service rows, and a diagnosis."""
        rng = self.rng
        n = len(mem)
        key = day + rng.random(n)
        cpt = rng.random(n) < cpt_p
        rev = rng.random(n) < rev_p
        pos = (rng.random(n) < 0.4) | (~cpt & ~rev)
        for m, g in ((cpt, "ed_cpt"), (rev, "ed_rev"), (pos, "ed_pos")):
            self.medical_rows(mem[m], day[m], self.codes(g, int(m.sum())), key[m])
        if dx_group:
            self.medical_rows(mem, day, self.codes(dx_group, n), key)
        return key

    def days(self, n, lo=0, hi=None):
        """``n`` random days in ``[lo, hi)`` (``hi`` defaults to the end of the range)."""
        hi = self.n_days if hi is None else hi
        return self.rng.integers(lo, np.maximum(hi, lo + 1), size=n)

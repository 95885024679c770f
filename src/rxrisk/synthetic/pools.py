"""Prescriber and pharmacy pools of the synthetic book: regions, NPIs, NCPDP-like pharmacy ids."""

from __future__ import annotations

import numpy as np

from rxrisk.synthetic.strings import digit_strings


class Pools:
    """Regions with their own prescribers and pharmacies, plus national mail-order pharmacies."""

    def __init__(self, members: int, rng: np.random.Generator):
        self.n_regions = int(np.clip(members // 25_000, 1, 400))
        per_region = members / self.n_regions
        self.n_presc = int(max(40, round(per_region / 70)))  # per region
        self.n_pharm = int(max(8, round(per_region / 900)))  # per region
        self.n_mail = 3
        n_p = self.n_regions * self.n_presc
        n_h = self.n_regions * self.n_pharm + self.n_mail
        # NPI: 1 or 2, eight digits, Luhn check digit over the "80840" prefix.
        base = rng.choice(200_000_000, size=n_p, replace=False).astype(np.int64) + 100_000_000
        digits = np.stack([(base // 10**k) % 10 for k in range(9)], axis=1)  # [:,0] is rightmost
        dbl = digits[:, 0::2] * 2
        total = 24 + (dbl // 10 + dbl % 10).sum(axis=1) + digits[:, 1::2].sum(axis=1)
        check = (10 - total % 10) % 10
        self.prescriber_ids = digit_strings(b"", base * 10 + check, 10)
        # NCPDP-like 7 digits
        ph = rng.choice(9_000_000, size=n_h, replace=False).astype(np.int64) + 1_000_000
        self.pharmacy_ids = digit_strings(b"", ph, 7)
        self.mail_first = self.n_regions * self.n_pharm

    def region_prescriber(self, rng, region):
        """A random prescriber of each member's ``region``."""
        return (region * self.n_presc + rng.integers(0, self.n_presc, size=len(region))).astype(
            np.int32
        )

    def region_pharmacy(self, rng, region):
        """A random (non-mail) pharmacy of each member's ``region``."""
        return (region * self.n_pharm + rng.integers(0, self.n_pharm, size=len(region))).astype(
            np.int32
        )

    def any_prescriber(self, rng, n):
        """``n`` random prescribers of any region."""
        return rng.integers(0, self.n_regions * self.n_presc, size=n).astype(np.int32)

    def any_pharmacy(self, rng, n):
        """``n`` random (non-mail) pharmacies of any region."""
        return rng.integers(0, self.n_regions * self.n_pharm, size=n).astype(np.int32)

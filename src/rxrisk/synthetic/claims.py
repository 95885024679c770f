"""Claim rows of a synthetic block: reversals, re-bills, duplicates, file order and claim ids.

A block's fills become claim rows: some are reversed later (same claim id, negated quantity and
days supply), some reversals are re-billed (new claim id), some rows are sent twice (identical,
later). Rows are ordered by processing day, randomly within a day, and new claims are numbered in
that order. :class:`PharmacyRows` carries the result to the defect injection and the Arrow table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rxrisk.synthetic.block import Block
from rxrisk.synthetic.draws import weighted_choice
from rxrisk.synthetic.rates import (
    P_DUPLICATE,
    P_PHARMACY_NULL,
    P_PRESCRIBER_NULL,
    P_REBILL_OF_REVERSAL,
    P_REVERSAL,
)

#: ``claim_status`` spellings; a row's status is an index into this tuple (-1 = null).
STATUS_VALUES = ("paid", "reversed", "P", "R", "PAID", "REVERSED", "Reversed", "Paid", "X", "")
ST_PAID, ST_REVERSED, ST_P, ST_R, ST_PAID_UP, ST_REV_UP, ST_REV_CAP = range(7)
ST_PAID_CAP, ST_X, ST_EMPTY = 7, 8, 9
ST_NULL = -1

#: Row origins: a fill, its reversal, the re-bill of a reversal, a duplicate.
_BASE, _REVERSAL, _REBILL, _DUPLICATE = range(4)


class Replacements:
    """Replacement values for a few rows of the string columns (rows disjoint per column).

    A column is built with a single ``take`` from ``concat(table, replacements)``.
    """

    def __init__(self, n: int):
        self.n = n
        self.rows: dict[str, list[np.ndarray]] = {}
        self.vals: dict[str, list[pa.Array]] = {}

    def add(self, column: str, rows: np.ndarray, values):
        """Replace ``column`` at ``rows`` by ``values`` (a pyarrow array or a list of str/None)."""
        if len(rows) == 0:
            return
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=pa.string())
        self.rows.setdefault(column, []).append(np.asarray(rows, np.int64))
        self.vals.setdefault(column, []).append(values.cast(pa.string()))

    def build(self, column: str, table: pa.Array, index: np.ndarray) -> pa.Array:
        """``table[index]`` (negative index = null) with this column's replacements applied."""
        index = np.asarray(index, dtype=np.int64)
        if column in self.rows:
            rows = np.concatenate(self.rows[column])
            table = pa.concat_arrays([table.cast(pa.string()), *self.vals[column]])
            index = index.copy()
            index[rows] = len(table) - len(rows) + np.arange(len(rows))
        return table.take(pa.array(index, mask=index < 0))


@dataclass
class PharmacyRows:
    """The claim rows of a block in file order, as numpy columns (indices into the pools/catalog).

    ``role`` is 0 for a plain row (the only rows that may get a defect), 1 for a fill that was
    reversed or duplicated, 2 for a reversal and 3 for a duplicate. The null masks and
    :attr:`replacements` collect the defects.
    """

    mem: np.ndarray
    day: np.ndarray
    ndc: np.ndarray
    qty: np.ndarray
    ds: np.ndarray
    presc: np.ndarray  # -1 = null
    pharm: np.ndarray  # -1 = null
    claim: np.ndarray
    status: np.ndarray  # index into STATUS_VALUES
    role: np.ndarray
    cls: np.ndarray  # class code of the generated drug
    replacements: Replacements = field(init=False)
    date_null: np.ndarray = field(init=False)
    qty_null: np.ndarray = field(init=False)
    ds_null: np.ndarray = field(init=False)

    def __post_init__(self):
        n = len(self.mem)
        self.replacements = Replacements(n)
        self.date_null = np.zeros(n, bool)
        self.qty_null = np.zeros(n, bool)
        self.ds_null = np.zeros(n, bool)

    def __len__(self) -> int:
        return len(self.mem)


def _copies(rng, day: np.ndarray):
    """Draw reversals (and re-bills of some) and duplicates of the ``len(day)`` fills.

    "Later" is a processing day 1+ days after the fill. Returns ``(src, origin, sort_day,
    status, counts)``: the fill each row copies, its origin, its processing day and status, and
    the numbers of reversal, re-bill and duplicate rows.
    """
    n0 = len(day)
    rev = np.flatnonzero(rng.random(n0) < P_REVERSAL)
    dup = np.flatnonzero(rng.random(n0) < P_DUPLICATE)
    rebill_of = rng.random(len(rev)) < P_REBILL_OF_REVERSAL
    rebill = rev[rebill_of]
    rev_day = day[rev] + rng.integers(1, 11, size=len(rev))
    rebill_day = rev_day[rebill_of] + rng.integers(0, 4, size=len(rebill))
    dup_day = day[dup] + rng.integers(1, 6, size=len(dup))
    src = np.concatenate([np.arange(n0), rev, rebill, dup])
    origin = np.repeat(np.arange(4, dtype=np.int8), [n0, len(rev), len(rebill), len(dup)])
    sort_day = np.concatenate([day, rev_day, rebill_day, dup_day]).astype(np.int64)
    status = np.zeros(len(src), np.int16)
    status[n0 : n0 + len(rev)] = weighted_choice(
        rng, [ST_REVERSED, ST_R, ST_REV_UP, ST_REV_CAP], [88, 6, 4, 2], len(rev)
    )
    counts = {"reversal_rows": len(rev), "rebill_rows": len(rebill), "duplicate_rows": len(dup)}
    return src, origin, sort_day, status, counts


def _file_order(rng, sort_day: np.ndarray) -> np.ndarray:
    """Row order: by processing day, random within a day (permutation + stable radix sort)."""
    perm = rng.permutation(len(sort_day))
    sd = sort_day[perm]
    sd = sd.astype(np.int16) if sd.max(initial=0) < 2**15 and sd.min(initial=0) >= -(2**15) else sd
    return perm[np.argsort(sd, kind="stable")]


def _claim_numbers(src, origin, n0: int, claim_base: int):
    """Claim numbers in file order for new claims (fills and re-bills); copies share theirs.

    Returns ``(claim, role, next_claim)``.
    """
    n = len(src)
    new = (origin == _BASE) | (origin == _REBILL)
    claim = np.zeros(n, np.int64)
    claim[new] = claim_base + np.arange(int(new.sum()), dtype=np.int64)
    next_claim = claim_base + int(new.sum())
    claim_of_base = np.zeros(n0, np.int64)
    base_rows = origin == _BASE
    claim_of_base[src[base_rows]] = claim[base_rows]
    copies = (origin == _REVERSAL) | (origin == _DUPLICATE)
    claim[copies] = claim_of_base[src[copies]]
    involved = np.zeros(n0, bool)
    involved[src[copies]] = True
    role = np.where(base_rows & involved[src], 1, np.where(copies, 2, 0)).astype(np.int8)
    role[origin == _DUPLICATE] = 3
    return claim, role, next_claim


def claim_rows(blk: Block, rng, claim_base: int) -> tuple[PharmacyRows, dict, int]:
    """The block's fills as claim rows in file order, with reversals, re-bills and duplicates.

    Parameters
    ----------
    blk : Block
        A generated block.
    rng : numpy.random.Generator
        The block's random stream (after the block's generation).
    claim_base : int
        Claim number of the block's first new claim.

    Returns
    -------
    tuple
        ``(rows, counts, next_claim)``: the rows, the numbers of reversal, re-bill and duplicate
        rows, and the claim number of the next block's first claim.
    """
    cols = list(zip(*blk.ph, strict=True))
    mem, day, ndc, qty, ds, presc, pharm = (np.concatenate(c) for c in cols)
    n0 = len(mem)
    presc[rng.random(n0) < P_PRESCRIBER_NULL] = -1
    pharm[rng.random(n0) < P_PHARMACY_NULL] = -1
    src, origin, sort_day, status, counts = _copies(rng, day)
    order = _file_order(rng, sort_day)
    src, origin, status = src[order], origin[order], status[order]
    claim, role, next_claim = _claim_numbers(src, origin, n0, claim_base)
    sign = np.where(origin == _REVERSAL, -1, 1)
    rows = PharmacyRows(
        mem=mem[src],
        day=day[src],
        ndc=ndc[src],
        qty=qty[src] * sign,
        ds=ds[src] * sign,
        presc=presc[src],
        pharm=pharm[src],
        claim=claim,
        status=status,
        role=role,
        cls=blk.catalog.row_class[ndc[src]],
    )
    return rows, counts, next_claim

"""Bad rows injected on purpose into the synthetic book: every rejection reason, and oddities.

Defects are values the intake must reject (null or blank member ids, null dates, malformed NDCs,
status ``X``, zero/negative/NaN/null quantities and days supply); oddities are values it must
accept after cleaning (hyphenated 10-digit NDCs, NDCs with spaces, ``P``/``PAID``/null statuses,
ids wrapped in whitespace, lower-case code types, ...). Rates per row are in
:mod:`rxrisk.synthetic.rates`; a block of 2,000+ rows gets at least one of each kind. Only plain
claim rows are touched (not the fills that were reversed or duplicated, nor their copies), and
each row gets at most one kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.synthetic.catalog import Catalog
from rxrisk.synthetic.claims import (
    ST_EMPTY,
    ST_NULL,
    ST_P,
    ST_PAID_CAP,
    ST_PAID_UP,
    ST_X,
    PharmacyRows,
    Replacements,
)
from rxrisk.synthetic.draws import weighted_choice
from rxrisk.synthetic.pools import Pools
from rxrisk.synthetic.rates import (
    MEDICAL_DEFECTS,
    MEDICAL_ODDITIES,
    P_DUPLICATE_WHITESPACE,
    PHARMACY_DEFECTS,
    PHARMACY_ODDITIES,
)
from rxrisk.synthetic.strings import digit_strings, matrix_strings


class RowPicker:
    """Draws disjoint random rows for the defect kinds."""

    def __init__(self, rng, available: np.ndarray):
        self.rng = rng
        self.avail = available.copy()

    def take(self, rate: float, n_total: int, extra: np.ndarray | None = None) -> np.ndarray:
        """A binomial(``n_total``, ``rate``) number of available rows (within ``extra``), sorted.

        At least one when ``n_total >= 2000`` and a row is available; the rows are then taken.
        """
        cand = self.avail if extra is None else (self.avail & extra)
        pool = np.flatnonzero(cand)
        k = int(self.rng.binomial(n_total, rate))
        if n_total >= 2000:
            k = max(k, 1)
        k = min(k, len(pool))
        if k == 0:
            return np.zeros(0, np.int64)
        rows = np.sort(self.rng.choice(pool, size=k, replace=False))
        self.avail[rows] = False
        return rows


_WS_PRE = np.array([" ", "  ", "\t", "", ""], dtype=object)
_WS_POST = np.array(["", " ", "\t", "\r\n", "  ", "\n"], dtype=object)


def wrap_whitespace(rng, values: pa.Array) -> pa.Array:
    """``values`` with random leading and/or trailing whitespace (never neither)."""
    k = len(values)
    pre = _WS_PRE[rng.integers(0, len(_WS_PRE), size=k)]
    post = _WS_POST[rng.integers(0, len(_WS_POST), size=k)]
    both_empty = (pre == "") & (post == "")
    post[both_empty] = " "
    return pc.binary_join_element_wise(
        pa.array(pre, pa.string()), values, pa.array(post, pa.string()), ""
    )


# --------------------------------------------------------------------------------------------
# Pharmacy: one action per kind, ``act(ctx, rows)``; actions draw from ctx.rng in kind order.
# --------------------------------------------------------------------------------------------
@dataclass
class _Pharmacy:
    """What a pharmacy defect action works on."""

    rng: np.random.Generator
    rows: PharmacyRows
    catalog: Catalog
    pools: Pools
    member_ids: pa.Array

    @property
    def mods(self) -> Replacements:
        """The string replacements of the rows."""
        return self.rows.replacements

    def ndc_bytes(self, rows: np.ndarray) -> np.ndarray:
        """The 11 ASCII digits of the NDC of each of ``rows``."""
        return self.catalog.ndc_bytes[self.rows.ndc[rows]]


def _replace(column: str, values, weights=None):
    """Action: ``column`` := a null (``values`` None) or a random one of ``values``."""

    def act(ctx: _Pharmacy, rows: np.ndarray) -> None:
        k = len(rows)
        if values is None:
            ctx.mods.add(column, rows, pa.nulls(k, pa.string()))
        elif weights is None:
            ctx.mods.add(column, rows, list(values) * k)
        else:
            ctx.mods.add(column, rows, weighted_choice(ctx.rng, values, weights, k).tolist())

    return act


def _set(field_name: str, value):
    """Action: numpy column ``field_name`` := ``value`` (a mask column: True)."""

    def act(ctx: _Pharmacy, rows: np.ndarray) -> None:
        getattr(ctx.rows, field_name)[rows] = value

    return act


def _ndc_letters(ctx: _Pharmacy, rows: np.ndarray) -> None:
    rng, k = ctx.rng, len(rows)
    b = ctx.ndc_bytes(rows).copy()
    p = rng.integers(0, 11, size=k)
    b[np.arange(k), p] = np.frombuffer(b"OIABXZ", np.uint8)[rng.integers(0, 6, size=k)]
    vals = matrix_strings(b)
    junk = rng.random(k) < 0.3
    jv = weighted_choice(
        rng,
        ["UNKNOWN", "COMPOUND", "N/A", "NDC00406051201", "0x1F2E"],
        [1, 1, 1, 1, 1],
        int(junk.sum()),
    )
    vals = pc.replace_with_mask(vals, pa.array(junk), pa.array(jv.tolist(), pa.string()))
    ctx.mods.add("ndc", rows, vals)


def _ndc_10_bare_digits(ctx: _Pharmacy, rows: np.ndarray) -> None:
    ctx.mods.add("ndc", rows, matrix_strings(ctx.ndc_bytes(rows)[:, 1:]))


def _ndc_bad_hyphen_segments(ctx: _Pharmacy, rows: np.ndarray) -> None:
    b = ctx.ndc_bytes(rows)
    pat = ctx.rng.integers(0, 5, size=len(rows))
    out = []
    for j, (a, bb, c) in enumerate([(4, 5, 2), (5, 3, 1), (3, 4, 2), (6, 3, 2), (5, 4, 3)]):
        sel = pat == j
        if not sel.any():
            continue
        dig = np.concatenate([b[sel], b[sel][:, :1]], axis=1)  # 12 digits available
        dash = np.full((int(sel.sum()), 1), ord("-"), np.uint8)
        mat = np.concatenate(
            [dig[:, :a], dash, dig[:, a : a + bb], dash, dig[:, a + bb : a + bb + c]],
            axis=1,
        )
        out.append((rows[sel], matrix_strings(mat)))
    for r, v in out:
        ctx.mods.add("ndc", r, v)


def _negate(field_name: str):
    def act(ctx: _Pharmacy, rows: np.ndarray) -> None:
        col = getattr(ctx.rows, field_name)
        col[rows] = -np.abs(col[rows])

    return act


def _days_supply_over_365(ctx: _Pharmacy, rows: np.ndarray) -> None:
    ctx.rows.ds[rows] = weighted_choice(ctx.rng, [400, 366, 999], [6, 2, 2], len(rows))


_PHARMACY_DEFECT_ACTIONS = {
    "member_id_null": _replace("member_id", None),
    "member_id_empty": _replace("member_id", [""]),
    "member_id_blank": _replace("member_id", [" ", "  ", "\t", " \r\n"], [1, 1, 1, 1]),
    "fill_date_null": _set("date_null", True),
    "ndc_null": _replace("ndc", None),
    "ndc_empty": _replace("ndc", ["", " ", "-"], [3, 1, 1]),
    "ndc_letters": _ndc_letters,
    "ndc_10_bare_digits": _ndc_10_bare_digits,
    "ndc_bad_hyphen_segments": _ndc_bad_hyphen_segments,
    "claim_status_invalid": _set("status", ST_X),
    "quantity_zero": _set("qty", 0.0),
    "quantity_negative": _negate("qty"),
    "quantity_nan": _set("qty", np.nan),
    "quantity_null": _set("qty_null", True),
    "days_supply_zero": _set("ds", 0),
    "days_supply_over_365": _days_supply_over_365,
    "days_supply_negative": _negate("ds"),
    "days_supply_null": _set("ds_null", True),
}

#: Hyphenated NDC oddities: (byte that must be "0" or None, the three digit segments kept).
_NDC_HYPHENS = {
    "ndc_hyphen_4_4_2": (0, [(1, 5), (5, 9), (9, 11)]),
    "ndc_hyphen_5_3_2": (5, [(0, 5), (6, 9), (9, 11)]),
    "ndc_hyphen_5_4_1": (9, [(0, 5), (5, 9), (10, 11)]),
    "ndc_hyphen_5_4_2": (None, [(0, 5), (5, 9), (9, 11)]),
}


def _ndc_hyphens(segs):
    def act(ctx: _Pharmacy, rows: np.ndarray) -> int:
        b = ctx.ndc_bytes(rows)
        dash = np.full((len(rows), 1), ord("-"), np.uint8)
        parts = [b[:, segs[0][0] : segs[0][1]], dash, b[:, segs[1][0] : segs[1][1]], dash]
        mat = np.concatenate([*parts, b[:, segs[2][0] : segs[2][1]]], axis=1)
        ctx.mods.add("ndc", rows, matrix_strings(mat))
        return len(rows)

    return act


def _ndc_spaces(ctx: _Pharmacy, rows: np.ndarray) -> int:
    b = ctx.ndc_bytes(rows)
    k = len(rows)
    sp = np.full((k, 1), ord(" "), np.uint8)
    inner = ctx.rng.random(k) < 0.6
    mat_inner = np.concatenate([b[:, :5], sp, b[:, 5:9], sp, b[:, 9:]], axis=1)
    mat_outer = np.concatenate([sp, b, sp], axis=1)
    ctx.mods.add("ndc", rows[inner], matrix_strings(mat_inner[inner]))
    ctx.mods.add("ndc", rows[~inner], matrix_strings(mat_outer[~inner]))
    return k


def _status(code: int):
    def act(ctx: _Pharmacy, rows: np.ndarray) -> int:
        ctx.rows.status[rows] = code
        return len(rows)

    return act


def _member_id_whitespace(ctx: _Pharmacy, rows: np.ndarray) -> int:
    ids = ctx.member_ids.take(pa.array(ctx.rows.mem[rows]))
    ctx.mods.add("member_id", rows, wrap_whitespace(ctx.rng, ids))
    return len(rows)


def _prescriber_id_whitespace(ctx: _Pharmacy, rows: np.ndarray) -> int:
    rows = rows[ctx.rows.presc[rows] >= 0]
    ids = ctx.pools.prescriber_ids.take(pa.array(ctx.rows.presc[rows]))
    ctx.mods.add("prescriber_id", rows, wrap_whitespace(ctx.rng, ids))
    return len(rows)


def _prescriber_id_empty(ctx: _Pharmacy, rows: np.ndarray) -> int:
    _replace("prescriber_id", ["", " ", "  "], [6, 2, 1])(ctx, rows)
    return len(rows)


def _pharmacy_id_whitespace(ctx: _Pharmacy, rows: np.ndarray) -> int:
    rows = rows[ctx.rows.pharm[rows] >= 0]
    ids = ctx.pools.pharmacy_ids.take(pa.array(ctx.rows.pharm[rows]))
    ctx.mods.add("pharmacy_id", rows, wrap_whitespace(ctx.rng, ids))
    return len(rows)


def _claim_id_whitespace(ctx: _Pharmacy, rows: np.ndarray) -> int:
    r = ctx.rows
    dws = np.flatnonzero((r.role == 3) & (ctx.rng.random(len(r)) < P_DUPLICATE_WHITESPACE))
    rows = np.concatenate([rows, dws])
    ids = digit_strings(b"RX", r.claim[rows], 12)
    ctx.mods.add("claim_id", rows, wrap_whitespace(ctx.rng, ids))
    return len(rows)


#: Oddity actions return the number of rows they changed (the summary's count).
_PHARMACY_ODDITY_ACTIONS = {
    **{kind: _ndc_hyphens(segs) for kind, (_, segs) in _NDC_HYPHENS.items()},
    "ndc_spaces": _ndc_spaces,
    "status_P": _status(ST_P),
    "status_PAID": _status(ST_PAID_UP),
    "status_Paid": _status(ST_PAID_CAP),
    "status_null": _status(ST_NULL),
    "status_empty": _status(ST_EMPTY),
    "member_id_whitespace": _member_id_whitespace,
    "prescriber_id_whitespace": _prescriber_id_whitespace,
    "prescriber_id_empty": _prescriber_id_empty,
    "pharmacy_id_whitespace": _pharmacy_id_whitespace,
    "claim_id_whitespace": _claim_id_whitespace,
}


def pharmacy_defects(
    rng, rows: PharmacyRows, catalog: Catalog, pools: Pools, member_ids: pa.Array
) -> dict[str, int]:
    """Inject the pharmacy defects and oddities into the plain claim rows of a block.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream.
    rows : PharmacyRows
        The block's claim rows; changed in place (columns, null masks, replacements).
    catalog, pools : Catalog, Pools
        The NDC table and the prescriber/pharmacy ids.
    member_ids : pyarrow.Array
        The block's member ids.

    Returns
    -------
    dict
        Rows changed per kind, in the order of :data:`PHARMACY_DEFECTS` then
        :data:`PHARMACY_ODDITIES`.
    """
    ctx = _Pharmacy(rng, rows, catalog, pools, member_ids)
    n = len(rows)
    pick = RowPicker(rng, rows.role == 0)
    kinds: dict[str, int] = {}
    for kind, rate in PHARMACY_DEFECTS.items():
        taken = pick.take(rate, n)
        kinds[kind] = len(taken)
        _PHARMACY_DEFECT_ACTIONS[kind](ctx, taken)
    nb = catalog.ndc_bytes[rows.ndc]
    tracked = rows.cls > 0
    for kind, rate in PHARMACY_ODDITIES.items():
        if kind in _NDC_HYPHENS:
            zero_at = _NDC_HYPHENS[kind][0]
            where = tracked if zero_at is None else tracked & (nb[:, zero_at] == 48)
            taken = pick.take(rate, n, where)
        else:
            taken = pick.take(rate, n)
        kinds[kind] = _PHARMACY_ODDITY_ACTIONS[kind](ctx, taken)
    return kinds


# --------------------------------------------------------------------------------------------
# Medical
# --------------------------------------------------------------------------------------------
def medical_defects(
    rng,
    voc: np.ndarray,
    mem: np.ndarray,
    mods: Replacements,
    date_null: np.ndarray,
    vocabulary: tuple[pa.Array, pa.Array],
    member_ids: pa.Array,
) -> dict[str, int]:
    """Inject the medical defects and oddities into the rows of a block.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's random stream.
    voc, mem : numpy.ndarray
        Vocabulary index and member of each row.
    mods : Replacements
        Collects the replaced string values.
    date_null : numpy.ndarray
        Null mask of ``service_date`` (set in place).
    vocabulary : tuple of pyarrow.Array
        The code types and codes of the vocabulary.
    member_ids : pyarrow.Array
        The block's member ids.

    Returns
    -------
    dict
        Rows changed per kind, in the order of :data:`MEDICAL_DEFECTS` then
        :data:`MEDICAL_ODDITIES`.
    """
    types, codes = vocabulary
    n = len(voc)
    pick = RowPicker(rng, np.ones(n, bool))
    kinds: dict[str, int] = {}
    for kind, rate in {**MEDICAL_DEFECTS, **MEDICAL_ODDITIES}.items():
        rows = pick.take(rate, n)
        k = len(rows)
        kinds[kind] = k
        if kind == "member_id_null":
            mods.add("member_id", rows, pa.nulls(k, pa.string()))
        elif kind == "member_id_empty":
            mods.add("member_id", rows, weighted_choice(rng, ["", " "], [3, 1], k).tolist())
        elif kind == "service_date_null":
            date_null[rows] = True
        elif kind == "code_type_invalid":
            values = weighted_choice(rng, ["XYZ", "ICD9CM", "NDC", ""], [5, 2, 2, 1], k)
            mods.add("code_type", rows, values.tolist())
        elif kind == "code_empty":
            mods.add("code", rows, weighted_choice(rng, ["", " "], [3, 1], k).tolist())
        elif kind == "code_null":
            mods.add("code", rows, pa.nulls(k, pa.string()))
        elif kind == "code_type_lowercase":
            t = types.take(pa.array(voc[rows]))
            low = pc.utf8_lower(t)
            cap = pc.utf8_capitalize(t)
            mods.add("code_type", rows, pc.if_else(pa.array(rng.random(k) < 0.7), low, cap))
        elif kind == "code_whitespace":
            mods.add("code", rows, wrap_whitespace(rng, codes.take(pa.array(voc[rows]))))
        elif kind == "member_id_whitespace":
            ids = member_ids.take(pa.array(mem[rows]))
            mods.add("member_id", rows, wrap_whitespace(rng, ids))
    return kinds

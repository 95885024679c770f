"""Arrow tables of a synthetic block: the pharmacy and medical schemas, and finishing a block.

Finishing turns a generated :class:`~rxrisk.synthetic.block.Block` into its two tables: claim
rows with reversals, re-bills and duplicates (:mod:`~rxrisk.synthetic.claims`), medical rows in
event order with some ICD-10-CM codes written without the dot, both with their defects
(:mod:`~rxrisk.synthetic.defects`), and the counts of the summary.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rxrisk.config.reference import DRUG_CLASSES
from rxrisk.synthetic.block import Block
from rxrisk.synthetic.claims import STATUS_VALUES, Replacements, claim_rows
from rxrisk.synthetic.defects import medical_defects, pharmacy_defects
from rxrisk.synthetic.medical_codes import IS_ICD, IS_T40, NODOT, VOCAB_CODES, VOCAB_TYPES
from rxrisk.synthetic.rates import P_ICD_NODOT, P_T40_NODOT
from rxrisk.synthetic.strings import digit_strings

PHARMACY_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("fill_date", pa.date32()),
        pa.field("ndc", pa.string()),
        pa.field("quantity", pa.float64()),
        pa.field("days_supply", pa.int32()),
        pa.field("prescriber_id", pa.string()),
        pa.field("pharmacy_id", pa.string()),
        pa.field("claim_id", pa.string()),
        pa.field("claim_status", pa.string()),
    ]
)
"""Schema of the book's pharmacy claims."""

MEDICAL_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("service_date", pa.date32()),
        pa.field("code_type", pa.string()),
        pa.field("code", pa.string()),
    ]
)
"""Schema of the book's medical events."""


def finish_pharmacy(
    blk: Block, rng, claim_base: int, epoch_start: int, member_ids: pa.Array
) -> tuple[pa.Table, dict, int]:
    """The pharmacy table of a generated block.

    Parameters
    ----------
    blk : Block
        The generated block.
    rng : numpy.random.Generator
        The block's random stream.
    claim_base : int
        Claim number of the block's first new claim.
    epoch_start : int
        Day number (days since 1970-01-01) of the book's first day.
    member_ids : pyarrow.Array
        The block's member ids.

    Returns
    -------
    tuple
        ``(table, stats, next_claim)``; ``stats`` holds ``rows``, ``by_class`` (rows per class
        code), the reversal, re-bill and duplicate row counts and ``kinds`` (defect counts).
    """
    rows, counts, next_claim = claim_rows(blk, rng, claim_base)
    kinds = pharmacy_defects(rng, rows, blk.catalog, blk.pools, member_ids)
    mods, n = rows.replacements, len(rows)
    day = (rows.day + epoch_start).astype(np.int32)
    st_values = pa.array(list(STATUS_VALUES), pa.string())
    columns = [
        mods.build("member_id", member_ids, rows.mem),
        pa.array(day, type=pa.date32(), mask=rows.date_null),
        mods.build("ndc", blk.catalog.ndc_table, rows.ndc),
        pa.array(rows.qty.astype(np.float64), type=pa.float64(), mask=rows.qty_null),
        pa.array(rows.ds.astype(np.int32), type=pa.int32(), mask=rows.ds_null),
        mods.build("prescriber_id", blk.pools.prescriber_ids, rows.presc),
        mods.build("pharmacy_id", blk.pools.pharmacy_ids, rows.pharm),
        mods.build("claim_id", digit_strings(b"RX", rows.claim, 12), np.arange(n)),
        st_values.take(pa.array(rows.status.astype(np.int32), mask=rows.status < 0)),
    ]
    table = pa.Table.from_arrays(columns, schema=PHARMACY_SCHEMA)
    stats = {
        "rows": n,
        "by_class": np.bincount(rows.cls, minlength=len(DRUG_CLASSES) + 1),
        **counts,
        "kinds": kinds,
    }
    return table, stats, next_claim


def finish_medical(
    blk: Block, rng, epoch_start: int, member_ids: pa.Array
) -> tuple[pa.Table, dict]:
    """The medical table of a generated block.

    Parameters
    ----------
    blk : Block
        The generated block.
    rng : numpy.random.Generator
        The block's random stream (after :func:`finish_pharmacy`).
    epoch_start : int
        Day number (days since 1970-01-01) of the book's first day.
    member_ids : pyarrow.Array
        The block's member ids.

    Returns
    -------
    tuple
        ``(table, stats)``; ``stats`` holds ``rows`` and ``kinds`` (defect counts).
    """
    cols = list(zip(*blk.md, strict=True))
    mem, day, voc = (np.concatenate(c) for c in cols[:3])
    key = np.concatenate(cols[3])
    # stable: rows of one event share a key and keep their order on every machine (an unstable
    # sort breaks the ties by its own algorithm, which numpy picks by the CPU's vector units)
    order = np.argsort(key, kind="stable")
    mem, day, voc = mem[order], day[order], voc[order]
    n = len(mem)
    # ICD codes without the dot
    u = rng.random(n)
    nodot = (IS_ICD[voc] & (u < P_ICD_NODOT)) | (IS_T40[voc] & (u < P_T40_NODOT))
    voc = np.where(nodot, NODOT[voc], voc)

    mods = Replacements(n)
    date_null = np.zeros(n, bool)
    types = pa.array(VOCAB_TYPES, pa.string())
    codes = pa.array(VOCAB_CODES, pa.string())
    kinds = medical_defects(rng, voc, mem, mods, date_null, (types, codes), member_ids)
    tcol = mods.build("code_type", types, voc)
    ccol = mods.build("code", codes, voc)
    mcol = mods.build("member_id", member_ids, mem)
    dates = pa.array((day + epoch_start).astype(np.int32), type=pa.date32(), mask=date_null)
    table = pa.Table.from_arrays([mcol, dates, tcol, ccol], schema=MEDICAL_SCHEMA)
    return table, {"rows": n, "kinds": kinds}

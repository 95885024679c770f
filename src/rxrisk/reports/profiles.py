"""Member medication profiles, prescriber alert bundles, outreach and lock-in lists (issue 6).

A flag helps nobody until it reaches a person. :func:`write_reports` takes the scored member
table and the same claim inputs ``score`` took, and writes into one folder:

* ``members/<id>.html``: one self-contained profile page per selected member;
* ``prescribers/<id>.html``: per prescriber, the profiles of every selected member the
  prescriber wrote a tracked fill for in the lookback, behind a cover summary;
* ``outreach.parquet``: ``emergency_outreach`` members, most urgent first;
* ``lock_in.parquet``: ``multi_provider`` / ``cms_oms`` members with the prescriber and the
  pharmacy that account for most of their opioid fills;
* ``index.html`` linking everything.

The claim work is vectorised: the book is read and validated by :func:`rxrisk.ingest.select.ingest`
(the same buckets as ``score``), the used rows are cut down to the members needed, and the
daily MME / overlap series, provider counts and lock-in picks are numpy over those rows. Only
the HTML rendering loops per selected member. This module also words the reasons (one
sentence per flag with the member's numbers and the rule file's thresholds);
:mod:`rxrisk.reports.pages` turns it all into markup. See docs/report.md.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.codesets import CATEGORIES
from rxrisk.errors import InputError
from rxrisk.ingest.validate import normalize_code_type

_EPOCH = dt.date(1970, 1, 1)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 64
LIST_FORMATS = ("parquet", "csv")
OUTREACH_FLAG = "emergency_outreach"
LOCK_IN_FLAGS = ("multi_provider", "cms_oms")


# ----------------------------------------------------------------------------- file names


def safe_stems(ids: list[str]) -> list[str]:
    """File-name stems for ids: ``[A-Za-z0-9._-]`` only, unique even on case-insensitive disks.

    An id that is already safe (and does not start with a dot) is used as it is. Otherwise
    every other character becomes ``_``, the result is cut to 64 characters, and the first
    10 hex digits of the id's sha256 are appended (``a/b`` -> ``a_b-5c3a...``). Ids whose
    stems still meet case-insensitively (``Ab`` and ``aB``) all get the hash too.
    """

    def hashed(s: str) -> str:
        base = _SAFE.sub("_", s).lstrip(".")[:_MAX_STEM] or "id"
        return f"{base}-{hashlib.sha256(s.encode()).hexdigest()[:10]}"

    stems = []
    for s in ids:
        ok = s and len(s) <= _MAX_STEM and not s.startswith(".") and not _SAFE.search(s)
        stems.append(s if ok else hashed(s))
    seen: dict[str, list[int]] = {}
    for i, s in enumerate(stems):
        seen.setdefault(s.casefold(), []).append(i)
    for group in seen.values():
        if len({ids[i] for i in group}) > 1:
            for i in group:
                if stems[i] == ids[i]:
                    stems[i] = hashed(ids[i])
    return stems


# ---------------------------------------------------------------------------- member table


def _day(d) -> int:
    return (d - _EPOCH).days


def date_of(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(day))


def load_members(members) -> pa.Table:
    """The scored member table (Table or path) with types (CSV text is converted)."""
    from rxrisk.ingest.sources import read_source

    table = read_source(members, label="members").table
    for col in ("member_id", "as_of", "reasons"):
        if col not in table.column_names:
            raise InputError(
                f"members input: no '{col}' column; give a member table written by 'rxrisk score'"
            )
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = _from_text(name, col)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _from_text(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column of a CSV member table back to its member-table type."""
    if name == "member_id":
        return col
    empty = pc.fill_null(pc.equal(col, ""), True)
    col = pc.if_else(empty, pa.scalar(None, col.type), col)
    if name == "reasons":
        return pc.if_else(
            pc.is_null(col),
            pa.scalar([], pa.list_(pa.string())),
            pc.split_pattern(col, ";"),
        )
    try:
        if name in ("as_of", "last_emergency_date"):
            return pc.strptime(col, format="%Y-%m-%d", unit="s").cast(pa.date32())
        low = pc.utf8_lower(col)
        if pc.all(pc.is_in(pc.drop_null(low), value_set=pa.array(["true", "false"]))).as_py():
            return pc.equal(low, "true")
        return col.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"members input: column '{name}' holds values that are not of its member-table type"
        ) from None


def pick_as_of(table: pa.Table, as_of) -> tuple[pa.Table, int]:
    """Rows of one as-of date: ``as_of`` when given, else the latest in the table."""
    col = pc.drop_null(pc.unique(table.column("as_of"))).cast(pa.int32())
    days = np.sort(col.to_numpy(zero_copy_only=False).astype(np.int64))
    if as_of is None:
        if not len(days):
            raise InputError("members input: the member table is empty; nothing to report")
        day = int(days[-1])
    else:
        from rxrisk.config.settings import parse_as_of

        parsed = parse_as_of(as_of)
        if len(parsed) != 1:
            raise InputError("--as-of: give one date for a report")
        day = int(parsed[0])
        if day not in set(days.tolist()):
            have = ", ".join(str(date_of(d)) for d in days[-5:]) or "none"
            raise InputError(
                f"--as-of {date_of(day)}: the member table has no rows for it (as-of dates: {have})"
            )
    keep = pc.equal(table.column("as_of").cast(pa.int32()), day)
    return table.filter(keep), day


def _flag_column(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    if name not in table.column_names or not pa.types.is_boolean(table.schema.field(name).type):
        flags = [f.name for f in table.schema if pa.types.is_boolean(f.type)]
        flags = [f for f in flags if not f.endswith("_dx")]
        raise InputError(
            f"{what} {name}: no such flag in the member table; use one of {', '.join(flags)}"
        )
    return pc.fill_null(table.column(name), False)


def selection_mask(table: pa.Table, flags, reasons) -> np.ndarray:
    """Rows where any of ``flags`` is true or ``reasons`` holds any of ``reasons``."""
    n = table.num_rows
    out = np.zeros(n, bool)
    for name in flags or ():
        out |= np.asarray(_flag_column(table, name, "flag"), bool)
    if reasons:
        for name in reasons:
            _flag_column(table, name, "reason")  # the name must be a flag of the table
        col = table.column("reasons")
        flat = pc.list_flatten(col)
        parent = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        hit = np.asarray(pc.fill_null(pc.is_in(flat, value_set=pa.array(list(reasons))), False))
        out[parent[hit]] = True
    return out


# ------------------------------------------------------------------------------ claim data


@dataclass
class Fills:
    """Used pharmacy rows of the wanted members, sorted by (member, fill day, input row)."""

    member: np.ndarray  # int64 position in the wanted-id list
    start: np.ndarray  # int32 fill day
    end: np.ndarray  # int64 last covered day
    role: np.ndarray  # uint8 role bits
    covered: np.ndarray  # int64 covered days
    mme: np.ndarray  # float64 daily MME
    quantity: np.ndarray
    days_supply: np.ndarray
    prescriber: np.ndarray  # int32 code into prescriber_ids, -1 null
    pharmacy: np.ndarray  # int32 code into pharmacy_ids, -1 null
    prescriber_ids: pa.Array
    pharmacy_ids: pa.Array
    ndc: pa.Array
    drug_name: pa.Array
    drug_class: pa.Array
    strength: pa.Array
    unit: pa.Array
    offsets: np.ndarray  # per wanted member
    py: dict = field(default_factory=dict)  # Python lists of the text columns (renderer cache)

    def rows(self, m: int) -> slice:
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))


@dataclass
class MedicalEvents:
    """Classified medical rows of the wanted members, sorted by (member, day)."""

    member: np.ndarray
    day: np.ndarray
    mask: np.ndarray  # uint8 category bits (rxrisk.config.codesets.CATEGORIES)
    code_type: list
    code: list
    offsets: np.ndarray

    def rows(self, m: int) -> slice:
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))


def _offsets(member: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(member, minlength=n), out=out[1:])
    return out


def _ids_like(ids: pa.Array, like: pa.DataType) -> pa.Array:
    if ids.type == like:
        return ids
    try:
        return ids.cast(like)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"member_id is {ids.type} in the member table but {like} in the claims; "
            "give the claims the member table was scored from"
        ) from None


def member_fills(data, wanted: pa.Array) -> Fills:
    """The used pharmacy rows of the ``wanted`` members (vectorised; no loop over the book)."""
    from rxrisk.ingest.sources import clean_text
    from rxrisk.io.arrow import date_days, dict_codes, to_numpy
    from rxrisk.scoring.encode import DrugTable, covered_days, daily_mme, supply_days

    ph = data.pharmacy
    used = data.used_pharmacy_rows()
    ids = clean_text(ph.member_id.take(pa.array(used, pa.int64())))
    wanted = _ids_like(wanted, ids.type)
    pos = pc.index_in(ids, value_set=wanted)
    keep = np.asarray(pc.is_valid(pos))
    rows = used[keep]
    member = np.asarray(pos.filter(pa.array(keep)).to_numpy(zero_copy_only=False), np.int64)
    take = pa.array(rows, pa.int64())
    start = date_days(ph.fill_date.take(take)).astype(np.int32)
    order = np.lexsort((rows, start, member))
    rows, member, start = rows[order], member[order], start[order]
    take = pa.array(rows, pa.int64())
    ref_index = data.pharmacy_rows.ref_index[rows]
    drugs = DrugTable.from_reference(data.reference)
    ref = data.reference
    rtake = pa.array(ref_index, pa.int64())
    role = drugs.role[ref_index]
    qty = to_numpy(ph.quantity.take(take), np.float64, np.nan)
    ds_in = to_numpy(ph.days_supply.take(take), np.int64, 0)
    cov = covered_days(ds_in, qty, drugs.days_per_unit[ref_index])
    supply = supply_days(ds_in, qty, drugs.days_per_unit[ref_index])
    mme = daily_mme(role, drugs.strength[ref_index], qty, supply, drugs.factor[ref_index])
    presc, presc_ids = dict_codes(clean_text(ph.prescriber_id.take(take)))
    pharm, pharm_ids = dict_codes(clean_text(ph.pharmacy_id.take(take)))
    return Fills(
        member=member,
        start=start,
        end=start.astype(np.int64) + cov - 1,
        role=role,
        covered=cov,
        mme=mme,
        quantity=qty,
        days_supply=ds_in,
        prescriber=presc,
        pharmacy=pharm,
        prescriber_ids=presc_ids,
        pharmacy_ids=pharm_ids,
        ndc=data.pharmacy_rows.normalized_ndc(rows),
        drug_name=ref.column("drug_name").take(rtake),
        drug_class=ref.column("drug_class").take(rtake),
        strength=ref.column("strength_per_unit").take(rtake),
        unit=ref.column("unit").take(rtake),
        offsets=_offsets(member, len(wanted)),
    )


def medical_events(data, wanted: pa.Array, first_day: int, last_day: int) -> MedicalEvents:
    """Used medical rows with a category, of the wanted members, dated first_day..last_day."""
    from rxrisk.ingest import validate
    from rxrisk.ingest.sources import clean_text
    from rxrisk.io.arrow import date_days

    n = len(wanted)
    empty = MedicalEvents(
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        np.zeros(0, np.uint8),
        [],
        [],
        np.zeros(n + 1, np.int64),
    )
    if data.medical is None:
        return empty
    md = data.medical
    rows = np.flatnonzero(data.medical_rows.bucket == validate.MEDICAL_BUCKETS.index("used"))
    day = date_days(md.service_date.take(pa.array(rows, pa.int64())))
    inside = (day >= first_day) & (day <= last_day)
    rows, day = rows[inside], day[inside]
    ids = clean_text(md.member_id.take(pa.array(rows, pa.int64())))
    pos = pc.index_in(ids, value_set=_ids_like(wanted, ids.type))
    keep = np.asarray(pc.is_valid(pos))
    rows, day = rows[keep], day[keep]
    member = np.asarray(pos.filter(pa.array(keep)).to_numpy(zero_copy_only=False), np.int64)
    order = np.lexsort((rows, day, member))
    rows, day, member = rows[order], day[order], member[order]
    take = pa.array(rows, pa.int64())
    return MedicalEvents(
        member=member,
        day=day.astype(np.int32),
        mask=data.medical_rows.mask[rows],
        code_type=normalize_code_type(clean_text(md.code_type.take(take))).to_pylist(),
        code=clean_text(md.code.take(take)).to_pylist(),
        offsets=_offsets(member, n),
    )


@dataclass
class Daily:
    """Per member (rows) and lookback day (columns): mme(d) and overlap days."""

    first_day: int
    mme: np.ndarray  # float64 (n, L)
    opioid: np.ndarray  # bool (n, L): covered by an opioid fill (mme may be 0: no factor)
    benzo_overlap: np.ndarray  # bool (n, L): opioid and benzodiazepine
    cns_overlap: np.ndarray  # bool (n, L): opioid and any CNS depressant


def daily_series(fills: Fills, n: int, first_day: int, last_day: int) -> Daily:
    """mme(d) and overlap days over first_day..last_day, by difference arrays."""
    from rxrisk.kernels import roles

    length = last_day - first_day + 1
    s = np.maximum(fills.start.astype(np.int64), first_day) - first_day
    e = np.minimum(fills.end, last_day) - first_day
    hit = s <= e

    def cover(weight_mask: np.ndarray, weights=None) -> np.ndarray:
        k = hit & weight_mask
        diff = np.zeros((n, length + 1), np.float64 if weights is not None else np.int64)
        w = weights[k] if weights is not None else 1
        np.add.at(diff, (fills.member[k], s[k]), w)
        np.add.at(diff, (fills.member[k], e[k] + 1), -w if weights is not None else -1)
        return np.cumsum(diff[:, :length], axis=1)

    opioid = (fills.role & roles.OPIOID) != 0
    covered = cover(opioid) > 0
    mme = np.where(covered, cover(opioid, fills.mme), 0.0)
    benzo = cover((fills.role & roles.BENZO) != 0) > 0
    cns = cover((fills.role & roles.CNS) != 0) > 0
    return Daily(first_day, mme, covered, covered & benzo, covered & cns)


# ------------------------------------------------------------------------------ the lists


def _top_provider(member, code, day, ids: pa.Array, n: int):
    """Per member: the provider with most fills (ties: latest fill, then smallest id).

    Returns (top id array, top count, distinct count) over rows with a non-null code.
    """
    ok = code >= 0
    p = max(1, len(ids))
    rank = np.empty(len(ids), np.int64)
    rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
    key = member[ok] * p + code[ok]
    uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    last = np.full(len(uniq), np.iinfo(np.int64).min)
    np.maximum.at(last, inv, day[ok].astype(np.int64))
    gm, gp = uniq // p, uniq % p
    order = np.lexsort((rank[gp], -last, -counts, gm))
    first = order[np.r_[True, gm[order][1:] != gm[order][:-1]]] if len(order) else order
    top = np.full(n, -1, np.int64)
    top_n = np.zeros(n, np.int64)
    top[gm[first]] = gp[first]
    top_n[gm[first]] = counts[first]
    distinct = np.bincount(gm, minlength=n)
    top_ids = pc.take(ids, pa.array(top, mask=top < 0)) if len(ids) else pa.nulls(n, ids.type)
    return top_ids, top_n, distinct


def lock_in_table(
    cand: pa.Table, fills: Fills, positions: np.ndarray, first_day: int, last_day: int
) -> pa.Table:
    """Lock-in candidates with their top prescriber and pharmacy over first_day..last_day.

    ``positions`` maps each candidate row to its member position in ``fills``.
    """
    from rxrisk.kernels import roles

    n = cand.num_rows
    local = np.full(int(fills.offsets.shape[0]), -1, np.int64)
    local[positions] = np.arange(n)
    k = (
        ((fills.role & roles.OPIOID) != 0)
        & (fills.start >= first_day)
        & (fills.start <= last_day)
        & (local[fills.member] >= 0)
    )
    member = local[fills.member[k]]
    day = fills.start[k]
    total = np.bincount(member, minlength=n)
    p_ids, p_n, p_distinct = _top_provider(
        member, fills.prescriber[k], day, fills.prescriber_ids, n
    )
    r_ids, r_n, r_distinct = _top_provider(member, fills.pharmacy[k], day, fills.pharmacy_ids, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_share = np.where(p_n > 0, p_n / np.maximum(total, 1), np.nan)
        r_share = np.where(r_n > 0, r_n / np.maximum(total, 1), np.nan)
    i32 = pa.int32()
    out = pa.table(
        {
            "member_id": cand.column("member_id"),
            "as_of": cand.column("as_of"),
            "reasons": cand.column("reasons"),
            "window_start": pa.array(np.full(n, first_day, np.int32)).view(pa.date32()),
            "opioid_fills": pa.array(total.astype(np.int32), i32),
            "distinct_prescribers": pa.array(p_distinct.astype(np.int32), i32),
            "distinct_pharmacies": pa.array(r_distinct.astype(np.int32), i32),
            "top_prescriber_id": p_ids,
            "top_prescriber_fills": pa.array(p_n.astype(np.int32), i32),
            "top_prescriber_share": pa.array(p_share, mask=np.isnan(p_share)),
            "top_pharmacy_id": r_ids,
            "top_pharmacy_fills": pa.array(r_n.astype(np.int32), i32),
            "top_pharmacy_share": pa.array(r_share, mask=np.isnan(r_share)),
            "mme_avg_180d": _float_col(cand, "mme_avg_180d"),
        }
    )
    return out.sort_by(
        [
            ("distinct_prescribers", "descending"),
            ("distinct_pharmacies", "descending"),
            ("mme_avg_180d", "descending"),
            ("member_id", "ascending"),
        ]
    )


def _float_col(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name in table.column_names:
        return table.column(name).cast(pa.float64())
    return pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])


def outreach_table(rows: pa.Table) -> pa.Table:
    """``emergency_outreach`` members, most recent emergency first, then highest mme_avg_180d."""
    n = rows.num_rows

    def col(name, typ):
        if name in rows.column_names:
            return rows.column(name).cast(typ)
        return pa.chunked_array([pa.nulls(n, typ)])

    out = pa.table(
        {
            "member_id": rows.column("member_id"),
            "as_of": rows.column("as_of"),
            "last_emergency_date": col("last_emergency_date", pa.date32()),
            "days_since_emergency": col("days_since_emergency", pa.int32()),
            "reasons": rows.column("reasons"),
            "mme_avg_180d": _float_col(rows, "mme_avg_180d"),
        }
    )
    return out.sort_by(
        [
            ("last_emergency_date", "descending"),
            ("mme_avg_180d", "descending"),
            ("member_id", "ascending"),
        ]
    )


CATEGORY_BIT = {name: 1 << i for i, name in enumerate(CATEGORIES)}
CATEGORY_LABEL = {
    "ed_visit": "ED visit",
    "opioid_overdose": "Opioid overdose",
    "oud": "Opioid use disorder",
    "sud_other": "Other substance use disorder",
    "cancer": "Cancer",
    "sickle_cell": "Sickle cell disease",
    "hospice_palliative": "Hospice / palliative care",
}


def num(x) -> str:
    """A threshold or count: no decimals when whole."""
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if x == round(x) else f"{x:,.2f}".rstrip("0").rstrip(".")


def mme_text(x) -> str:
    """An MME value: whole numbers from 10 up, one decimal below."""
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 10 or x == 0 else f"{x:.1f}"


def fmt_date(day) -> str:
    return "" if day is None else str(date_of(day) if isinstance(day, (int, np.integer)) else day)


# ------------------------------------------------------------- reasons in plain words


def rule_thresholds(ruleset) -> dict:
    """Per flag: ``{"cmp": {column: [numbers]}, "refs": {names}, "anchor", "when"}``."""
    from rxrisk.config.rules import compile_flags
    from rxrisk.config.schema import metric_fields

    m = ruleset.metrics
    kinds = {
        f.name: "bool" if pa.types.is_boolean(f.type) else "number"
        for f in metric_fields(m.windows, m.ed_lookback_days, m.dx_lookback_days)
    }
    meta = {f.name: f for f in ruleset.flags}
    out = {}
    for name, tree in compile_flags(ruleset, kinds):
        cmp: dict[str, list[float]] = {}
        refs = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                cmp.setdefault(node.left.id, []).append(float(node.comparators[0].value))
            elif isinstance(node, ast.Name):
                refs.add(node.id)
        out[name] = {
            "cmp": {k: sorted(v) for k, v in cmp.items()},
            "refs": refs,
            "anchor": meta[name].anchor,
            "when": " ".join(meta[name].when.split()),
        }
    return out


class _Row:
    """Values and thresholds for one flag's sentence; KeyError means: use the generic one."""

    def __init__(self, row: dict, rule: dict, tol: float):
        self.row, self.rule, self.tol = row, rule, tol

    def col(self, prefix: str, default: str) -> str:
        for c in self.rule.get("cmp", {}):
            if c.startswith(prefix):
                return c
        return default

    def v(self, col: str):
        value = self.row[col]
        if value is None:
            raise KeyError(col)
        return value

    def t(self, col: str, default: float, pick=min) -> float:
        values = self.rule.get("cmp", {}).get(col)
        return pick(values) if values else default

    def ge(self, col: str, default: float, pick=min) -> bool:
        return float(self.v(col)) >= self.t(col, default, pick) - self.tol


def _window(col: str) -> str:
    m = re.search(r"_(\d+)d$", col)
    return f"the last {m.group(1)} days" if m else "the window"


def plural(n, word: str, many: str | None = None) -> str:
    return f"{num(n)} {word if float(n) == 1 else (many or word + 's')}"


def _latest_event(view, bits: int):
    """(day, codes of those categories) of the latest event with any of ``bits``."""
    for day, mask, codes, masks in reversed(view.events):
        if mask & bits:
            return day, [c for c, m in zip(codes, masks, strict=True) if m & bits]
    return None, []


def reason_sentences(view, ctx) -> list[tuple[str, str, str]]:
    """``[(flag, sentence, anchor)]`` for the member's reasons, in rule order."""
    out = []
    tol = ctx.ruleset.metrics.tolerance
    dx_days = ctx.ruleset.metrics.dx_lookback_days
    shown = [r for r in view.reasons if r != "at_risk"] or list(view.reasons)
    for flag in shown:
        rule = ctx.thresholds.get(flag, {})
        r = _Row(view.row, rule, tol)
        try:
            text = _SENTENCES[flag](r, view, ctx, dx_days) if flag in _SENTENCES else None
        except (KeyError, TypeError, ValueError, IndexError):
            text = None
        if not text:
            text = _generic(flag, r)
        out.append((flag, text, rule.get("anchor", "")))
    return out


def _generic(flag: str, r: _Row) -> str:
    when = r.rule.get("when")
    if not when:
        return f"Flag {flag} is set"
    vals = [f"{c} = {_value(r.row.get(c))}" for c in sorted(r.rule.get("refs", ())) if c in r.row]
    return f"Rule {flag}: {when}" + (f" (here: {', '.join(vals)})" if vals else "")


def _value(x) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return mme_text(x)
    return "n/a" if x is None else str(x)


def _s_high_dose(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    return (
        f"Average daily dose of {mme_text(r.v(c))} MME over {_window(c)} "
        f"(threshold {num(r.t(c, 90))})"
    )


def _s_multi_provider(r, view, ctx, dx):
    p = r.col("opioid_prescribers_", "opioid_prescribers_180d")
    q = r.col("opioid_pharmacies_", "opioid_pharmacies_180d")
    return (
        f"Opioids from {plural(r.v(p), 'prescriber')} and "
        f"{plural(r.v(q), 'pharmacy', 'pharmacies')} in {_window(p)} "
        f"(threshold {num(r.t(p, 4))} prescribers and {num(r.t(q, 4))} pharmacies)"
    )


def _s_cms_oms(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    p = r.col("opioid_prescribers_", "opioid_prescribers_180d")
    q = r.col("opioid_pharmacies_", "opioid_pharmacies_180d")
    od = r.col("overdoses_", "overdoses_365d")
    fl = r.col("opioid_fills_", "opioid_fills_180d")
    tp_low, tp_high = r.t(p, 3, min), r.t(p, 5, max)
    tq = r.t(q, 3)
    parts = []
    pv, qv = float(r.v(p)), float(r.v(q))
    dose = r.ge(c, 90) and ((pv >= tp_low and qv >= tq) or pv >= tp_high)
    if dose:
        parts.append(
            f"average daily dose of {mme_text(r.v(c))} MME (threshold {num(r.t(c, 90))}) with "
            f"opioids from {num(pv)} prescribers and {num(qv)} pharmacies in {_window(p)} "
            f"(criteria: {num(tp_low)} prescribers and {num(tq)} pharmacies, "
            f"or {num(tp_high)} prescribers)"
        )
    if r.ge(od, 1) and r.ge(fl, 1):
        day, _ = _latest_event(view, CATEGORY_BIT["opioid_overdose"])
        when = f", latest {fmt_date(day)}" if day is not None else ""
        parts.append(
            f"opioid overdose in {_window(od)} ({plural(r.v(od), 'date')}{when}) while still "
            f"filling opioids ({plural(r.v(fl), 'opioid fill')} in {_window(fl)})"
        )
    if not parts:
        return None
    return "CMS opioid overutilization criteria met: " + "; and ".join(parts)


def _s_concurrent_benzo(r, view, ctx, dx):
    c = r.col("benzo_overlap_days_", "benzo_overlap_days_365d")
    o = r.col("opioid_fills_", "opioid_fills_365d")
    b = r.col("benzo_fills_", "benzo_fills_365d")
    return (
        f"{plural(r.v(c), 'day')} of overlapping opioid and benzodiazepine use in {_window(c)} "
        f"(threshold {num(r.t(c, 30))}), from {plural(r.v(o), 'opioid fill')} and "
        f"{plural(r.v(b), 'benzodiazepine fill')}"
    )


def _s_dose_with_cns(r, view, ctx, dx):
    c = r.col("mme_avg_", "mme_avg_180d")
    x = r.col("cns_overlap_days_", "cns_overlap_days_180d")
    return (
        f"Average daily dose of {mme_text(r.v(c))} MME (threshold {num(r.t(c, 50))}) together "
        f"with {plural(r.v(x), 'day')} of other CNS depressants (benzodiazepines, "
        f"gabapentinoids, muscle relaxants, sleep drugs) in {_window(x)} "
        f"(threshold {num(r.t(x, 30))} days)"
    )


def _s_overdose_history(r, view, ctx, dx):
    od = r.col("overdoses_", f"overdoses_{dx}d")
    day, codes = _latest_event(view, CATEGORY_BIT["opioid_overdose"])
    latest = f"; latest on {fmt_date(day)} ({', '.join(codes)})" if day is not None else ""
    return f"Opioid overdose on {plural(r.v(od), 'date')} in {_window(od)}{latest}"


def _s_substance_use(r, view, ctx, dx):
    oud = bool(view.row.get("oud_dx"))
    label = "opioid use disorder" if oud else "substance use disorder"
    day, codes = _latest_event(view, CATEGORY_BIT["oud"] | CATEGORY_BIT["sud_other"])
    latest = f" ({', '.join(codes)} on {fmt_date(day)})" if day is not None else ""
    return f"Diagnosis of {label} in the last {dx} days{latest}"


def _s_excluded(r, view, ctx, dx):
    which = [
        label
        for col, label in (
            ("cancer_dx", "cancer"),
            ("sickle_cell_dx", "sickle cell disease"),
            ("hospice_dx", "hospice or palliative care"),
        )
        if view.row.get(col)
    ]
    return (
        f"Exempt from the dose and provider criteria: {' and '.join(which)} diagnosis in the "
        f"last {dx} days"
    )


def _s_emergency_outreach(r, view, ctx, dx):
    d = r.v("days_since_emergency")
    limit = r.t("days_since_emergency", 89, max)
    day = view.row.get("last_emergency_date")
    kinds = [
        CATEGORY_LABEL[k]
        for k in ("ed_visit", "opioid_overdose")
        if any(e[1] & CATEGORY_BIT[k] for e in view.events if fmt_date(e[0]) == fmt_date(day))
    ]
    what = " and ".join(kinds) if kinds else "Emergency visit"
    return (
        f"{what} {plural(d, 'day')} ago, on {fmt_date(day)}: outreach within "
        f"{num(limit + 1)} days of an emergency"
    )


def _s_at_risk(r, view, ctx, dx):
    met = [n for n in r.rule.get("refs", ()) if view.row.get(n) is True and n in ctx.thresholds]
    return f"At risk of opioid harm: {plural(len(met), 'risk criterion', 'risk criteria')} met"


_SENTENCES = {
    "excluded": _s_excluded,
    "high_dose": _s_high_dose,
    "multi_provider": _s_multi_provider,
    "cms_oms": _s_cms_oms,
    "concurrent_benzo": _s_concurrent_benzo,
    "dose_with_cns": _s_dose_with_cns,
    "overdose_history": _s_overdose_history,
    "substance_use_history": _s_substance_use,
    "at_risk": _s_at_risk,
    "emergency_outreach": _s_emergency_outreach,
}


# ---------------------------------------------------------------------------------- writing


def check_report_paths(out, *, members=None, pharmacy=None, medical=None, **config) -> None:
    """Check the report folder before anything is read: it can be made or written, and no
    input is one of the files the report writes or replaces (``index.html``, the lists in
    either format, anything in ``members/`` and ``prescribers/``), nor is the folder inside
    an input folder. ``config`` holds the other inputs by option name (reference, rules,
    codesets). Also removes temporary files that killed runs left in the folder."""
    from rxrisk.io.outputs import check_collisions, check_target, sweep_leftovers

    out = Path(out)
    files = [("--out", out / "index.html")] + [
        ("--out", out / f"{name}.{fmt}") for name in ("outreach", "lock_in") for fmt in LIST_FORMATS
    ]
    inputs = [("MEMBERS", members), ("--pharmacy", pharmacy), ("--medical", medical)]
    inputs += [(f"--{name}", path) for name, path in config.items()]
    check_collisions(inputs, files, [("--out", out / "members"), ("--out", out / "prescribers")])
    check_target(out, "--out", folder=True)
    sweep_leftovers(out / "index.html", out / "members" / "x", out / "prescribers" / "x")


@dataclass
class ReportContext:
    """What the renderer needs besides one member's data."""

    as_of: int
    lookback_days: int
    first_day: int
    ruleset: object
    thresholds: dict
    stems: dict = field(default_factory=dict)  # member position -> file stem


def write_reports(
    members,
    pharmacy,
    medical=None,
    *,
    out_dir,
    as_of=None,
    flags=("at_risk",),
    reasons=None,
    reference=None,
    rules=None,
    codesets=None,
    lookback_days: int = 180,
    list_format: str = "parquet",
    progress=None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> dict:
    """Write member profiles, prescriber bundles, the outreach and lock-in lists and an index.

    Parameters
    ----------
    members : pyarrow.Table or path
        The scored member table (``rxrisk score`` output; Parquet, Arrow or CSV).
    pharmacy, medical : pyarrow.Table, path or any ``score`` input
        The claims the member table was scored from.
    out_dir : path
        Report folder; created when its parent exists.
    as_of : date or str, optional
        The as-of date to report; default the latest in the member table.
    flags, reasons : sequences of flag names
        A member gets a profile when any of ``flags`` is true or its ``reasons`` holds any of
        ``reasons``. Pass ``flags=()`` to select by ``reasons`` only.
    reference, rules, codesets :
        As for :func:`rxrisk.score`; the rules give the thresholds quoted on the pages.
    lookback_days : int
        Days of history on the pages (fills, chart) and the lock-in window (default 180, the
        window of the ``multi_provider`` and ``cms_oms`` flags).
    list_format : {"parquet", "csv"}
        Format of ``outreach`` and ``lock_in``.
    date_format, max_reject_share :
        As for :func:`rxrisk.score`: the format of text dates in another form, and the
        share of rejected rows that stops the run before anything is written.

    Returns
    -------
    dict
        Counts of pages and list rows, paths, notes, seconds, and the claims' audit blocks
        (``pharmacy``, ``medical``) with their ``warnings``.
    """
    from rxrisk.clock import Clock
    from rxrisk.config.rules import load_rules
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.intake import audit_warnings
    from rxrisk.ingest.select import ingest
    from rxrisk.io.outputs import Commit
    from rxrisk.reports import pages as report_html

    t0 = time.perf_counter()
    clock = Clock(progress)
    if list_format not in LIST_FORMATS:
        raise InputError(f"list format {list_format!r}: use one of {', '.join(LIST_FORMATS)}")
    if not isinstance(lookback_days, int) or not 1 <= lookback_days <= 3660:
        raise InputError(f"--lookback-days {lookback_days}: give whole days between 1 and 3660")
    out = Path(out_dir)
    if not out.parent.exists():
        raise InputError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder for the report")
    check_report_paths(
        out,
        members=members,
        pharmacy=pharmacy,
        medical=medical,
        reference=reference,
        rules=rules,
        codesets=codesets,
    )
    ruleset = load_rules(rules)
    table, a = pick_as_of(load_members(members), as_of)
    selected = selection_mask(table, flags, reasons)
    notes = []
    if OUTREACH_FLAG in table.column_names:
        outreach_mask = np.asarray(_flag_column(table, OUTREACH_FLAG, "flag"), bool)
    else:
        outreach_mask = np.zeros(table.num_rows, bool)
        notes.append(f"no '{OUTREACH_FLAG}' flag in the member table: the outreach list is empty")
    lock_mask = np.zeros(table.num_rows, bool)
    present = [f for f in LOCK_IN_FLAGS if f in table.column_names]
    for name in present:
        lock_mask |= np.asarray(_flag_column(table, name, "flag"), bool)
    if not present:
        notes.append("no multi_provider or cms_oms flag in the member table: lock-in is empty")
    clock.lap("members")

    cfg = load_config(reference=reference, rules=ruleset, codesets=codesets)
    max_reject_share = cfg.reject_share(max_reject_share)
    data = ingest(
        pharmacy,
        medical,
        cfg,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    need = np.flatnonzero(selected | lock_mask)
    wanted = table.column("member_id").take(pa.array(need, pa.int64())).combine_chunks()
    fills = member_fills(data, wanted)
    first = a - lookback_days + 1
    n_sel = int(selected.sum())
    sel_pos = np.flatnonzero(selected[need])  # positions in `wanted` of the selected members
    event_days = max(lookback_days, ruleset.metrics.dx_lookback_days)
    events = medical_events(data, wanted, a - event_days + 1, a)
    daily = daily_series(fills, len(wanted), first, a)
    clock.lap("claims")

    # every file is written under a temporary name and renamed into place once all were
    # written: a failed or interrupted run leaves the previous report as it was
    with Commit() as run:
        run.folder(out)
        run.folder(out / "members")
        run.folder(out / "prescribers")
        rows = table.take(pa.array(need, pa.int64())).to_pylist()
        ids = [str(r["member_id"]) for r in rows]
        stems = dict(zip(sel_pos.tolist(), safe_stems([ids[i] for i in sel_pos]), strict=True))
        ctx = ReportContext(
            as_of=a,
            lookback_days=lookback_days,
            first_day=first,
            ruleset=ruleset,
            thresholds=rule_thresholds(ruleset),
            stems=stems,
        )
        in_window = (fills.start >= first) & (fills.start <= a)
        sections = {}
        written = {"members": set(), "prescribers": set()}
        for m in sel_pos.tolist():
            view = report_html.MemberView.build(m, rows[m], fills, daily, events, ctx, in_window)
            sections[m] = view
            name = f"{stems[m]}.html"
            run.text(report_html.member_page(view, ctx), out / "members" / name)
            written["members"].add(name)
        clock.lap("member pages")

        # prescriber -> selected members with a tracked fill they wrote in the lookback
        is_sel = np.zeros(len(wanted), bool)
        is_sel[sel_pos] = True
        k = in_window & (fills.prescriber >= 0) & is_sel[fills.member]
        pairs = np.unique(np.stack([fills.prescriber[k].astype(np.int64), fills.member[k]]), axis=1)
        presc_ids = fills.prescriber_ids.to_pylist()
        p_codes = np.unique(pairs[0]) if pairs.size else np.zeros(0, np.int64)
        p_stems = safe_stems([str(presc_ids[p]) for p in p_codes])
        bundles = []
        for p, stem in zip(p_codes.tolist(), p_stems, strict=True):
            ms = pairs[1][pairs[0] == p].tolist()
            ms.sort(key=lambda m: ids[m])
            name = f"{stem}.html"
            run.text(
                report_html.prescriber_page(str(presc_ids[p]), p, [sections[m] for m in ms], ctx),
                out / "prescribers" / name,
            )
            written["prescribers"].add(name)
            bundles.append((str(presc_ids[p]), name, len(ms)))
        clock.lap("prescriber pages")

        profile = {ids[m]: f"members/{stems[m]}.html" for m in sel_pos.tolist()}
        ext = "." + list_format
        outreach = outreach_table(table.filter(pa.array(outreach_mask)))
        outreach = _with_profile(outreach, profile)
        run.table(outreach, out / f"outreach{ext}")
        lock_rows = np.flatnonzero(lock_mask[need])
        lock = lock_in_table(
            table.take(pa.array(need[lock_rows], pa.int64())), fills, lock_rows, first, a
        )
        lock = _with_profile(lock, profile)
        run.table(lock, out / f"lock_in{ext}")
        summary = {
            "out_dir": str(out),
            "as_of": str(date_of(a)),
            "lookback_days": lookback_days,
            "members_in_table": int(table.num_rows),
            "members_selected": n_sel,
            "member_pages": len(written["members"]),
            "prescriber_pages": len(written["prescribers"]),
            "outreach_rows": int(outreach.num_rows),
            "lock_in_rows": int(lock.num_rows),
            "files": {
                "index": "index.html",
                "outreach": f"outreach{ext}",
                "lock_in": f"lock_in{ext}",
            },
            "notes": notes,
            **data.audit_blocks(),
            "warnings": audit_warnings(
                data.audit_blocks(),
                max_reject_share=max_reject_share,
                max_days_supply=cfg.metrics.max_days_supply,
            ),
        }
        run.text(
            report_html.index_page(
                summary,
                [(ids[m], stems[m], rows[m]) for m in sel_pos.tolist()],
                bundles,
                outreach,
                lock,
                ctx,
            ),
            out / "index.html",
        )
    for sub, names in written.items():  # pages of an earlier run that are not in this one
        for old in (out / sub).glob("*.html"):
            if old.name not in names:
                old.unlink()
    for other in LIST_FORMATS:
        if other != list_format:
            for stale in ("outreach", "lock_in"):
                (out / f"{stale}.{other}").unlink(missing_ok=True)
    clock.lap("lists")
    summary["seconds"] = {**clock.seconds, "total": round(time.perf_counter() - t0, 6)}
    return summary


def _with_profile(table: pa.Table, profile: dict) -> pa.Table:
    ids = [str(v) for v in table.column("member_id").to_pylist()]
    return table.append_column("profile", pa.array([profile.get(i) for i in ids], pa.string()))

"""Loud intake: bad input is never dropped quietly.

Every run states, per input, the rows read, the rows in scope (pharmacy: read minus
untracked; medical: read minus unclassified) and each rejection reason with its count and
share of the in-scope rows (:func:`summary_lines`). A reason that rejects more than
``max_reject_share`` of an input's in-scope rows (and at least :data:`MIN_STOP_ROWS` rows)
stops the run before anything is written (:func:`check`: one line naming the file, the
column, the count and share, up to three offending values of that column and the fix); a
reason above :data:`WARN_SHARE` that does not stop the run is a warning (:func:`audit_warnings`,
the audit's ``warnings`` list).

Every path (in memory, streaming, Spark) counts the same buckets, so the summary, the
warnings and the stop are functions of the audit blocks alone; only the offending values
are gathered on the way (:class:`Offenders`, at most three per reason, first in input
order).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.settings import check_max_reject_share
from rxrisk.errors import InputError

#: a reason above this share of the in-scope rows is a warning
WARN_SHARE = 0.01
#: a reason rejecting fewer rows never stops a run
MIN_STOP_ROWS = 10
#: offending values shown in a stop message
MAX_VALUES = 3

_DATES = (
    "dates must be YYYY-MM-DD or YYYYMMDD, or pass --date-format (API date_format=), "
    "e.g. --date-format '%m/%d/%Y'"
)
_FIXES = {
    "member_id": "member_id must not be empty",
    "fill_date": _DATES,
    "service_date": _DATES,
    "ndc": "NDCs must be 11 digits, or hyphenated 5-4-2, 4-4-2, 5-3-2 or 5-4-1",
    "claim_status": "claim_status must be paid (paid, P, B1, or empty) or reversed "
    "(reversed, R, reversal, B2)",
    "quantity": "quantity must be a number above 0",
    "days_supply": "days_supply must be a whole number of days from 1 to {max_days_supply}",
    "code_type": "code_type must be ICD10CM, CPT, HCPCS, REV or POS (also ICD10, CPT4, "
    "REVENUE, RC; case, dots, dashes and spaces are ignored)",
    "code": "code must not be empty",
    "start_date": _DATES,
    "end_date": _DATES + "; end_date must not be before start_date",
    "birth_date": _DATES,
    "duplicate": "give each member_id once",
}
#: the column whose values a reason shows, when not the column of its own name
_COLUMNS = {"duplicate": "member_id"}


# ----------------------------------------------------------------------- offending values


def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        v = v if len(v) <= 40 else v[:37] + "..."
        return repr(v)
    return str(v)


def _take_sorted(col, rows: np.ndarray) -> pa.Array:
    """Values of ascending ``rows`` of a (chunked) column, chunk by chunk (no whole-column copy)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    starts = np.cumsum([0] + [len(c) for c in chunks])
    parts = []
    for k, c in enumerate(chunks):
        lo, hi = np.searchsorted(rows, [starts[k], starts[k + 1]])
        if hi > lo:
            idx = pa.array(rows[lo:hi] - starts[k], pa.int64())
            try:
                parts.append(c.take(idx))
            except pa.ArrowNotImplementedError:  # e.g. string_view: no take kernel
                parts.append(c.cast(pa.large_string()).take(idx))
    if not parts:
        return pa.array([], pa.null())
    out = pa.chunked_array(parts)
    if pa.types.is_dictionary(out.type):
        out = out.cast(out.type.value_type)
    return out.combine_chunks()


class Offenders:
    """Up to :data:`MAX_VALUES` distinct raw values of the column of each rejection reason,
    first in input order, gathered batch by batch or partition by partition.

    Each value is kept with the input row number where it was first seen, so values
    gathered in any order (Spark partitions) merge into the same first three as one pass
    over the input would give.
    """

    def __init__(self):
        self._first: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._offset: dict[str, int] = {}

    @property
    def values(self) -> dict[tuple[str, str], list[str]]:
        """``{(input, reason): [shown values]}``, first in input order."""
        return {key: [v for _, v in pairs] for key, pairs in self._first.items()}

    def add(self, label: str, table: pa.Table, reason: np.ndarray, names, row_numbers=None) -> None:
        """Gather from one batch (or a whole input): ``reason`` indexes ``names`` per row of
        ``table`` as read, -1 when the row is not rejected. ``row_numbers`` (int array, one
        per row) gives each row's position in the whole input; without it, batches count as
        following each other in input order."""
        base = self._offset.get(label, 0)
        self._offset[label] = base + table.num_rows
        counts = np.bincount(reason[reason >= 0], minlength=len(names))
        for i in np.flatnonzero(counts):
            name = names[i]
            have = self._first.setdefault((label, name), [])
            column = _COLUMNS.get(name, name)
            if len(have) >= MAX_VALUES or column not in table.column_names:
                continue
            rows = np.flatnonzero(reason == i)
            if row_numbers is None:
                number = rows + base
            else:
                number = np.asarray(row_numbers, np.int64)[rows]
                order = np.argsort(number, kind="stable")
                rows, number = rows[order], number[order]
            col = table.column(column)
            shown_now = {v for _, v in have}
            start, size = 0, 64
            while start < len(rows) and len(have) < MAX_VALUES:
                chunk = rows[start : start + size]
                if row_numbers is None:
                    values = _take_sorted(col, chunk)
                else:
                    values = _take_sorted(col, np.sort(chunk))
                    values = values.take(pa.array(np.argsort(np.argsort(chunk)), pa.int64()))
                distinct = pc.unique(values)
                first = pc.index_in(distinct, value_set=values).to_pylist()
                for v, k in zip(distinct.to_pylist(), first, strict=True):
                    shown = _show(v)
                    if shown not in shown_now:
                        shown_now.add(shown)
                        have.append((int(number[start + k]), shown))
                        if len(have) == MAX_VALUES:
                            break
                start, size = start + size, size * 8

    def merge(self, label: str, values: dict) -> None:
        """Add values gathered elsewhere (``{reason: [[row, shown], ...]}`` from
        :meth:`of`, e.g. of a Spark partition), keeping the first :data:`MAX_VALUES`
        distinct ones in input order."""
        for name, pairs in values.items():
            key = (label, name)
            merged = sorted([*self._first.get(key, []), *((int(r), v) for r, v in pairs)])
            out, seen = [], set()
            for r, v in merged:
                if v not in seen and len(out) < MAX_VALUES:
                    seen.add(v)
                    out.append((r, v))
            self._first[key] = out

    def of(self, label: str) -> dict:
        """``{reason: [[row, shown], ...]}`` of one input (JSON-ready, for :meth:`merge`)."""
        return {
            name: [list(p) for p in pairs]
            for (lab, name), pairs in self._first.items()
            if lab == label and pairs
        }


# ----------------------------------------------------------------------------- findings


def in_scope(block: dict) -> int:
    """Rows of an audit block the engine looks at: read minus untracked / unclassified."""
    b = block["buckets"]
    return int(block["rows_read"]) - int(b.get("untracked", 0)) - int(b.get("unclassified", 0))


def _blocks(audit: dict):
    for label, block in audit.items():
        if isinstance(block, dict) and "rejected_by_reason" in block:
            yield label, block


def _pct(share: float) -> str:
    p = 100.0 * share
    return "<0.1%" if 0 < p < 0.05 else f"{p:.1f}%"


def _stops(count: int, scope: int, max_share: float) -> bool:
    return max_share < 1.0 and count >= MIN_STOP_ROWS and count > max_share * scope


def _fix(reason: str, max_days_supply) -> str:
    text = _FIXES.get(reason, f"check the {reason} column")
    return text.format(max_days_supply=max_days_supply if max_days_supply else "the maximum")


def audit_warnings(audit: dict, *, max_reject_share=None, max_days_supply=None) -> list[str]:
    """The audit's ``warnings``: each reason above :data:`WARN_SHARE` of its input's in-scope
    rows that does not stop the run (inputs and reasons in audit order)."""
    share = check_max_reject_share(max_reject_share)
    out = []
    for label, block in _blocks(audit):
        scope = in_scope(block)
        for reason, n in block["rejected_by_reason"].items():
            if n and n > WARN_SHARE * scope and not _stops(n, scope, share):
                out.append(
                    f"{label} {reason}: {n:,} of {scope:,} in-scope rows ({_pct(n / scope)}) "
                    f"rejected; {_fix(reason, max_days_supply)}"
                )
    return out


def check(
    audit: dict,
    *,
    names: dict,
    offenders: Offenders | None = None,
    max_reject_share=None,
    max_days_supply=None,
) -> None:
    """Stop the run (:class:`InputError`) when a reason rejects more than
    ``max_reject_share`` of an input's in-scope rows and at least :data:`MIN_STOP_ROWS`.

    Parameters
    ----------
    audit : dict
        The audit blocks (``pharmacy``, ``medical``, ...).
    names : dict
        Input label to the name shown (the file path, or the label for in-memory tables).
    offenders : Offenders, optional
        The offending values gathered while validating.
    """
    share = check_max_reject_share(max_reject_share)
    for label, block in _blocks(audit):
        scope = in_scope(block)
        worst = [(n, r) for r, n in block["rejected_by_reason"].items() if _stops(n, scope, share)]
        if not worst:
            continue
        n, reason = max(worst, key=lambda x: x[0])
        name = str(names.get(label) or label)
        where = f"{label} input" if name == label else f"{label} input {name}"
        shown = offenders.values.get((label, reason), []) if offenders is not None else []
        eg = f" (e.g. {', '.join(shown)})" if shown else ""
        column = _COLUMNS.get(reason, reason)
        eg = eg if column == reason else f" as {reason}{eg}"
        raise InputError(
            f"{where}: column {column}: {n:,} of {scope:,} in-scope rows ({_pct(n / scope)}) "
            f"rejected{eg}; {_fix(reason, max_days_supply)}. A reason rejecting more than "
            f"{100 * share:g}% of an input's in-scope rows stops the run: fix the input, or "
            "pass --max-reject-share 1 (API max_reject_share=1.0) to go on anyway"
        )


def summary_lines(audit: dict, names: dict | None = None) -> list[str]:
    """The run summary: one line per input given, then one per warning.

    ``names`` maps an input label to its file (an input whose block read no rows and that
    has no name, such as an absent medical input, is left out).
    """
    names = names or {}
    lines = []
    for label, block in _blocks(audit):
        name = names.get(label)
        if not block["rows_read"] and name is None and label != "pharmacy":
            continue
        scope = in_scope(block)
        out_of = block["rows_read"] - scope
        kind = "untracked" if "untracked" in block["buckets"] else "unclassified"
        head = f"rxrisk: {label}" + (f" {name}" if name is not None else "")
        text = f"{head}: {block['rows_read']:,} rows read, {scope:,} in scope"
        if out_of:
            text += f" ({out_of:,} {kind})"
        hits = [(r, n) for r, n in block["rejected_by_reason"].items() if n]
        if hits:
            total = sum(n for _, n in hits)
            parts = ", ".join(f"{r} {n:,} ({_pct(n / scope)})" for r, n in hits)
            text += f"; rejected {total:,}: {parts}"
        else:
            text += "; none rejected"
        lines.append(text)
    lines.extend(f"rxrisk: warning: {w}" for w in audit.get("warnings", []))
    return lines

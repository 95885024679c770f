"""``rxrisk report``: the report folder written step by step (member table, claims, member
pages, prescriber bundles, lists, index), every file under a temporary name until all are
written, and the file names of ids (:func:`safe_stems`). See docs/report.md."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.rules import load_rules
from rxrisk.config.settings import load_config
from rxrisk.days import date_of
from rxrisk.errors import InputError
from rxrisk.io.outputs import Commit, check_collisions, check_target, sweep_leftovers
from rxrisk.kernels._jit import own_context
from rxrisk.reports import pages
from rxrisk.reports.claims import read_claims
from rxrisk.reports.data import (
    Daily,
    Fills,
    MedicalEvents,
    MemberClaims,
    claims_fills,
    daily_series,
    medical_events,
)
from rxrisk.reports.lists import list_members, lock_in_table, outreach_table, with_profile
from rxrisk.reports.members import load_members, pick_as_of, selection_mask
from rxrisk.reports.view import MemberView, ReportContext
from rxrisk.reports.wording import rule_thresholds

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 64
LIST_FORMATS = ("parquet", "csv")


def safe_stems(ids: list[str]) -> list[str]:
    """File-name stems for ids: ``[A-Za-z0-9._-]`` only, unique even on case-insensitive disks.

    An id that is already safe (and does not start with a dot) is used as it is. Otherwise
    every other character becomes ``_``, the result is cut to 64 characters, and the first
    10 hex digits of the id's sha256 are appended (``a/b`` -> ``a_b-5c3a...``). Ids whose
    stems still meet case-insensitively (``Ab`` and ``aB``) all get the hash too.

    Parameters
    ----------
    ids : list of str
        Distinct ids (member or prescriber).

    Returns
    -------
    list of str
        One stem per id, in the order of ``ids``.
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


def check_report_paths(out, *, members=None, pharmacy=None, medical=None, **config) -> None:
    """Check the report folder before anything is read.

    The folder can be made or written, and no input is one of the files the report writes
    or replaces (``index.html``, the lists in either format, anything in ``members/`` and
    ``prescribers/``), nor is the folder inside an input folder. Also removes temporary files
    that killed runs left in the folder.

    Parameters
    ----------
    out : path
        The report folder.
    members, pharmacy, medical : path or other input, optional
        The inputs.
    **config :
        The other inputs by option name (reference, rules, codesets).

    Raises
    ------
    rxrisk.errors.InputError
        When the folder cannot be written or would overwrite an input.
    """
    out = Path(out)
    files = [("--out", out / "index.html")] + [
        ("--out", out / f"{name}.{fmt}") for name in ("outreach", "lock_in") for fmt in LIST_FORMATS
    ]
    inputs = [("MEMBERS", members), ("--pharmacy", pharmacy), ("--medical", medical)]
    inputs += [(f"--{name}", path) for name, path in config.items()]
    check_collisions(inputs, files, [("--out", out / "members"), ("--out", out / "prescribers")])
    check_target(out, "--out", folder=True)
    sweep_leftovers(out / "index.html", out / "members" / "x", out / "prescribers" / "x")


@own_context
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
    stream=None,
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
    date_format, max_reject_share, stream :
        As for :func:`rxrisk.score` (text dates of another form; the rejected share that stops
        the run; streaming, keeping only the reported members' rows: the same folder).

    Returns
    -------
    dict
        Counts of pages and list rows, paths, notes, seconds, and the claims' audit blocks
        (``pharmacy``, ``medical``) with their ``warnings``.
    """
    t0 = time.perf_counter()
    clock = Clock(progress)
    out = _check_options(out_dir, list_format, lookback_days)
    inputs = {"members": members, "pharmacy": pharmacy, "medical": medical}
    check_report_paths(out, **inputs, reference=reference, rules=rules, codesets=codesets)
    ruleset = load_rules(rules)
    table, a, selected, outreach, lock_in, notes = _pick_members(members, as_of, flags, reasons)
    clock.lap("members")
    cfg = load_config(reference=reference, rules=ruleset, codesets=codesets)
    need = np.flatnonzero(selected | lock_in)  # the members whose claims the report needs
    rows, blocks = read_claims(
        pharmacy,
        medical,
        cfg,
        _ids(table, need),
        stream=stream,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    book = _Book.gather(table, a, lookback_days, selected, (outreach, lock_in), rows, cfg, need)
    clock.lap("claims")
    tail = {"notes": notes, **blocks}
    with Commit() as run:  # the files take their names only once all were written
        summary, written = _write_folder(run, out, book, ruleset, list_format, tail, clock)
    _remove_stale(out, written, list_format)
    clock.lap("lists")
    summary["seconds"] = {**clock.seconds, "total": round(time.perf_counter() - t0, 6)}
    return summary


def _pick_members(members, as_of, flags, reasons) -> tuple:
    """The member table at the as-of date (read, picked), its day number, the selection
    mask, the outreach and lock-in masks and the notes on the lists."""
    table, a = pick_as_of(load_members(members), as_of)
    selected = selection_mask(table, flags, reasons)
    outreach, lock_in, notes = list_members(table)
    return table, a, selected, outreach, lock_in, notes


def _ids(table: pa.Table, rows: np.ndarray) -> pa.Array:
    """The member ids of ``rows`` of ``table``."""
    return table.column("member_id").take(pa.array(rows, pa.int64())).combine_chunks()


def _check_options(out_dir, list_format: str, lookback_days: int) -> Path:
    """The report folder as a Path, once the options are checked."""
    if list_format not in LIST_FORMATS:
        raise InputError(f"list format {list_format!r}: use one of {', '.join(LIST_FORMATS)}")
    if not isinstance(lookback_days, int) or not 1 <= lookback_days <= 3660:
        raise InputError(f"--lookback-days {lookback_days}: give whole days between 1 and 3660")
    out = Path(out_dir)
    if not out.parent.exists():
        raise InputError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder for the report")
    return out


@dataclass
class _Book:
    """The member table of the as-of date and the claims of the members the report needs
    (selected, or on the lock-in list).

    Positions ``m`` index ``need`` (rows of ``table``), ``rows``, ``ids`` and the members of
    ``fills``, ``events`` and ``daily``.
    """

    table: pa.Table
    as_of: int
    lookback_days: int
    first_day: int
    outreach: np.ndarray  # bool per row of table
    lock_in: np.ndarray  # bool per row of table
    need: np.ndarray  # rows of table
    selected: list  # positions of the selected members
    rows: list  # rows of table as dicts
    ids: list  # member ids as text
    fills: Fills
    events: MedicalEvents
    daily: Daily
    in_window: np.ndarray  # bool per fill: filled first_day .. as_of

    @classmethod
    def gather(
        cls, table, a, lookback_days, selected, lists, claims: MemberClaims, cfg, need
    ) -> _Book:
        """The book of the ``need`` rows of ``table`` (the ``selected`` rows and those on
        the ``lists``, outreach and lock-in), from their members' used rows ``claims``."""
        outreach, lock_in = lists
        wanted = _ids(table, need)
        fills = claims_fills(claims, cfg.reference, wanted)
        first = a - lookback_days + 1
        event_days = max(lookback_days, cfg.metrics.dx_lookback_days)
        rows = table.take(pa.array(need, pa.int64())).to_pylist()
        return cls(
            table=table,
            as_of=a,
            lookback_days=lookback_days,
            first_day=first,
            outreach=outreach,
            lock_in=lock_in,
            need=need,
            selected=np.flatnonzero(selected[need]).tolist(),
            rows=rows,
            ids=[str(r["member_id"]) for r in rows],
            fills=fills,
            events=medical_events(claims, wanted, a - event_days + 1, a),
            daily=daily_series(fills, len(wanted), first, a),
            in_window=(fills.start >= first) & (fills.start <= a),
        )


def _write_folder(run: Commit, out: Path, book: _Book, ruleset, list_format, tail, clock):
    """Write the pages, the lists and the index; returns the summary (``tail`` last) and the
    names of the pages written per folder.

    Every file is written under a temporary name and renamed into place once all were
    written (``run``): a failed or interrupted run leaves the previous report as it was.
    """
    run.folder(out)
    run.folder(out / "members")
    run.folder(out / "prescribers")
    stems = safe_stems([book.ids[m] for m in book.selected])
    ctx = ReportContext(
        as_of=book.as_of,
        lookback_days=book.lookback_days,
        first_day=book.first_day,
        ruleset=ruleset,
        thresholds=rule_thresholds(ruleset),
        stems=dict(zip(book.selected, stems, strict=True)),
    )
    views = _member_pages(run, out, book, ctx)
    clock.lap("member pages")
    bundles = _prescriber_pages(run, out, book, views, ctx)
    clock.lap("prescriber pages")
    profile = {book.ids[m]: f"members/{ctx.stems[m]}.html" for m in book.selected}
    ext = "." + list_format
    outreach, lock = _lists(run, out, book, profile, ext)
    written = {
        "members": {f"{ctx.stems[m]}.html" for m in views},
        "prescribers": {name for _, name, _ in bundles},
    }
    counts = (len(written["members"]), len(written["prescribers"]))
    summary = _summary(out, book, counts + (outreach.num_rows, lock.num_rows), ext)
    summary.update(tail)
    members = [(book.ids[m], ctx.stems[m], book.rows[m]) for m in book.selected]
    run.text(pages.index_page(summary, members, bundles, outreach, lock, ctx), out / "index.html")
    return summary, written


def _lists(run: Commit, out: Path, book: _Book, profile: dict, ext: str):
    """Write the outreach and the lock-in list; returns both."""
    table = book.table
    outreach = with_profile(outreach_table(table.filter(pa.array(book.outreach))), profile)
    run.table(outreach, out / f"outreach{ext}")
    lock_rows = np.flatnonzero(book.lock_in[book.need])
    lock = lock_in_table(
        table.take(pa.array(book.need[lock_rows], pa.int64())),
        book.fills,
        lock_rows,
        book.first_day,
        book.as_of,
    )
    lock = with_profile(lock, profile)
    run.table(lock, out / f"lock_in{ext}")
    return outreach, lock


def _member_pages(run: Commit, out: Path, book: _Book, ctx: ReportContext) -> dict:
    """Write ``members/<stem>.html`` of every selected member; their views by position."""
    views = {}
    for m in book.selected:
        view = MemberView.build(
            m, book.rows[m], book.fills, book.daily, book.events, ctx, book.in_window
        )
        views[m] = view
        run.text(pages.member_page(view, ctx), out / "members" / f"{ctx.stems[m]}.html")
    return views


def _prescriber_pages(run: Commit, out: Path, book: _Book, views: dict, ctx) -> list:
    """Write ``prescribers/<stem>.html``: per prescriber, the selected members with a tracked
    fill the prescriber wrote in the lookback. Returns (prescriber id, file name, members)."""
    fills = book.fills
    is_sel = np.zeros(len(book.ids), bool)
    is_sel[book.selected] = True
    k = book.in_window & (fills.prescriber >= 0) & is_sel[fills.member]
    pairs = np.unique(np.stack([fills.prescriber[k].astype(np.int64), fills.member[k]]), axis=1)
    presc_ids = fills.prescriber_ids.to_pylist()
    p_codes = np.unique(pairs[0]) if pairs.size else np.zeros(0, np.int64)
    p_stems = safe_stems([str(presc_ids[p]) for p in p_codes])
    bundles = []
    for p, stem in zip(p_codes.tolist(), p_stems, strict=True):
        ms = pairs[1][pairs[0] == p].tolist()
        ms.sort(key=lambda m: book.ids[m])
        name = f"{stem}.html"
        run.text(
            pages.prescriber_page(str(presc_ids[p]), p, [views[m] for m in ms], ctx),
            out / "prescribers" / name,
        )
        bundles.append((str(presc_ids[p]), name, len(ms)))
    return bundles


def _summary(out: Path, book: _Book, counts: tuple, ext: str) -> dict:
    """The run summary but the claims' audit and the seconds; ``counts`` are the numbers of
    member pages, prescriber pages, outreach rows and lock-in rows."""
    member_pages, prescriber_pages, outreach_rows, lock_in_rows = counts
    return {
        "out_dir": str(out),
        "as_of": str(date_of(book.as_of)),
        "lookback_days": book.lookback_days,
        "members_in_table": int(book.table.num_rows),
        "members_selected": len(book.selected),
        "member_pages": member_pages,
        "prescriber_pages": prescriber_pages,
        "outreach_rows": int(outreach_rows),
        "lock_in_rows": int(lock_in_rows),
        "files": {
            "index": "index.html",
            "outreach": f"outreach{ext}",
            "lock_in": f"lock_in{ext}",
        },
    }


def _remove_stale(out: Path, written: dict, list_format: str) -> None:
    """Remove the pages of an earlier run that are not in this one (``written`` holds this
    run's file names per folder), and the lists in the other format."""
    for sub, names in written.items():
        for old in (out / sub).glob("*.html"):
            if old.name not in names:
                old.unlink()
    for other in LIST_FORMATS:
        if other != list_format:
            for stale in ("outreach", "lock_in"):
                (out / f"{stale}.{other}").unlink(missing_ok=True)

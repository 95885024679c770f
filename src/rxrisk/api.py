"""``rxrisk.score``: the in-process pipeline, one direction of flow.

source -> inputs (Arrow, schema) -> validate (buckets) -> encode (Claims) -> kernels
(metrics) -> rules (flags) -> outputs (member table, audit, quarantine).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rxrisk import __version__
from rxrisk.errors import InputError

_EPOCH = dt.date(1970, 1, 1)


@dataclass
class Result:
    """What :func:`score` returns.

    Attributes
    ----------
    members : pyarrow.Table
        The SPEC 4 member table.
    audit : dict
        Bucket counts, rejection reasons, stage seconds, version and config digest.
    quarantine : pyarrow.Table or None
        Rejected rows of both inputs as read, with ``source``, ``row_number`` and
        ``reject_reason`` (None unless asked for).
    """

    members: pa.Table
    audit: dict
    quarantine: pa.Table | None = None


@dataclass
class _Clock:
    progress: Callable[[str], None] | None = None
    seconds: dict = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._t, 6)
        self._t = now
        if self.progress is not None:
            self.progress(stage)


def parse_as_of(as_of) -> np.ndarray:
    """As-of dates (date, datetime, 'YYYY-MM-DD' text, or a list of them) to sorted unique day numbers."""
    if as_of is None:
        raise InputError("as_of is required: give one or more dates, e.g. as_of='2025-12-31'")
    items = [as_of] if isinstance(as_of, (str, dt.date)) else list(as_of)
    if isinstance(as_of, str):
        items = [s for s in as_of.split(",")]
    if not items:
        raise InputError("as_of is empty: give one or more dates, e.g. as_of='2025-12-31'")
    days = []
    for item in items:
        if isinstance(item, dt.datetime):
            item = item.date()
        if isinstance(item, str):
            try:
                item = dt.date.fromisoformat(item.strip())
            except ValueError:
                raise InputError(f"as_of value {item!r} is not a date; write it as YYYY-MM-DD") from None
        if not isinstance(item, dt.date):
            raise InputError(f"as_of value {item!r} is not a date; write it as YYYY-MM-DD")
        days.append((item - _EPOCH).days)
    return np.unique(np.array(days, np.int32))


def score(
    pharmacy,
    medical=None,
    *,
    as_of,
    reference=None,
    rules=None,
    codesets=None,
    all_members: bool = False,
    quarantine: bool = False,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Score members: metrics of SPEC 2 and flags of SPEC 3 for each as-of date.

    Parameters
    ----------
    pharmacy : pyarrow.Table, RecordBatchReader, Arrow C stream object or path
        Pharmacy claims (SPEC 1.1).
    medical : same kinds, optional
        Medical events (SPEC 1.2).
    as_of : date, str or list
        One or more as-of dates.
    reference : path or pyarrow.Table, optional
        NDC rows merged over the packaged drug reference (same schema, SPEC 1.3).
    rules : path or RuleSet, optional
        Rule file; default ``data/rules/default.toml``.
    codesets : path, optional
        Medical code-set file; default ``data/codesets/default.toml``.
    all_members : bool
        Add a row for every member seen in any input, not only members with recent data.
    quarantine : bool
        Also return the rejected rows.
    threads : int, optional
        Numba threads (default: all cores).
    progress : callable, optional
        Called with each stage name as it completes.

    Returns
    -------
    Result
    """
    from rxrisk import inputs, validate
    from rxrisk.codesets import load_codesets
    from rxrisk.reference import load_reference, reference_digest
    from rxrisk.rules import load_rules

    clock = _Clock(progress)
    ruleset = load_rules(rules)
    m = ruleset.metrics
    days = parse_as_of(as_of)
    ref = load_reference(reference, edition=m.factor_edition)
    cs = load_codesets(codesets)

    ph_src = inputs.read_source(pharmacy, label="pharmacy")
    md_src = inputs.read_source(medical, label="medical") if medical is not None else None
    clock.lap("read")

    ph = inputs.conform_pharmacy(ph_src)
    ph_rows = validate.validate_pharmacy(ph, ref.column("ndc").combine_chunks(), max_days_supply=m.max_days_supply)
    if md_src is not None:
        md = inputs.conform_medical(md_src)
        md_rows = validate.validate_medical(md, cs)
    clock.lap("validate")

    from rxrisk.encode import DrugTable, encode

    used = np.flatnonzero(ph_rows.bucket == validate.PHARMACY_BUCKETS.index("used"))
    take = pa.array(used, pa.int64())
    med_args = {"medical_member": None, "service_date": None, "medical_mask": None}
    if md_src is not None:
        mused = np.flatnonzero(md_rows.bucket == validate.MEDICAL_BUCKETS.index("used"))
        mtake = pa.array(mused, pa.int64())
        med_args = {
            "medical_member": md.member_id.take(mtake),
            "service_date": md.service_date.take(mtake),
            "medical_mask": md_rows.mask[mused],
        }
    extra = None
    if all_members:
        seen = [ph.member_id.filter(pa.array(ph_rows.reason != 0))]
        if md_src is not None:
            seen.append(md.member_id.filter(pa.array(md_rows.reason != 0)))
        extra = pa.chunked_array([c for s in seen for c in s.chunks], type=seen[0].type) if len({str(s.type) for s in seen}) == 1 else None
        if extra is None:
            raise InputError("member_id has different types in pharmacy and medical; give both the same type")
    claims = encode(
        pharmacy_member=ph.member_id.take(take),
        fill_date=ph.fill_date.take(take),
        quantity=ph.quantity.take(take),
        days_supply=ph.days_supply.take(take),
        prescriber=ph.prescriber_id.take(take),
        pharmacy=ph.pharmacy_id.take(take),
        ref_index=ph_rows.ref_index[used],
        input_row=used.astype(np.int64),
        drugs=DrugTable.from_reference(ref),
        extra_members=extra,
        **med_args,
    )
    clock.lap("encode")

    raw, present = run_kernels(claims, days, m, threads)
    clock.lap("kernels")

    from rxrisk.outputs import member_table, metric_columns, quarantine_table
    from rxrisk.rules import evaluate_flags

    k = len(days)
    rows = np.flatnonzero(np.ones_like(present) if all_members else present)
    row_days = days[rows % k]
    cols, nulls = metric_columns(m, rows, row_days, raw)
    flags = evaluate_flags(ruleset, cols, nulls)
    clock.lap("rules")

    members = member_table(claims.member_ids.take(pa.array(rows // k)), row_days, m, cols, nulls, flags)
    q = None
    if quarantine:
        parts = [("pharmacy", ph_src.table, np.flatnonzero(ph_rows.reason >= 0), ph_rows.reason[ph_rows.reason >= 0], validate.PHARMACY_REASONS)]
        if md_src is not None:
            parts.append(("medical", md_src.table, np.flatnonzero(md_rows.reason >= 0), md_rows.reason[md_rows.reason >= 0], validate.MEDICAL_REASONS))
        q = quarantine_table(parts)
    clock.lap("output")

    digest = hashlib.sha256(
        "|".join([ruleset.digest(), reference_digest(ref), cs.digest()]).encode()
    ).hexdigest()
    audit = {
        "pharmacy": ph_rows.counts(),
        "medical": md_rows.counts() if md_src is not None else validate.empty_medical_counts(),
        "members_scored": int(len(np.unique(rows // k))) if len(rows) else 0,
        "rows_out": int(members.num_rows),
        "as_of": [str(_EPOCH + dt.timedelta(days=int(d))) for d in days],
        "seconds": clock.seconds,
        "version": __version__,
        "config_digest": digest,
    }
    return Result(members=members, audit=audit, quarantine=q)


def run_kernels(claims, days: np.ndarray, metrics, threads: int | None):
    """Allocate outputs and run the parallel member kernel. Returns (raw arrays, present)."""
    import numba

    from rxrisk.kernels.member_scores import N_COUNTS, N_MME, score_members

    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: give a whole number of at least 1")
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    n_threads = numba.get_num_threads()
    n_members = len(claims.member_ids)
    k = len(days)
    windows = np.asarray(metrics.windows, np.int64)
    n = n_members * k
    raw = {
        "counts": np.zeros((n, len(windows), N_COUNTS), np.int32),
        "mmes": np.zeros((n, len(windows), N_MME), np.float64),
        "scalars_f": np.zeros((n, 2), np.float64),
        "scalars_i": np.zeros((n, 7), np.int32),
    }
    present = np.zeros(n, np.bool_)
    from rxrisk.codesets import CATEGORIES

    n_chunks = max(1, min(n_members, n_threads * 8))
    if n_members:
        score_members(
            claims.fill_offsets, claims.start, claims.end, claims.role, claims.mme,
            claims.prescriber, claims.pharmacy,
            claims.med_offsets, claims.med_day, claims.med_mask,
            days, windows,
            float(metrics.high_dose_mme - metrics.tolerance),
            int(metrics.rolling_days), int(metrics.ed_lookback_days), int(metrics.dx_lookback_days),
            1 << CATEGORIES.index("ed_visit"), 1 << CATEGORIES.index("opioid_overdose"),
            claims.n_prescribers, claims.n_pharmacies, n_chunks,
            raw["counts"], raw["mmes"], raw["scalars_f"], raw["scalars_i"], present,
        )
    return raw, present

"""The safety-edit replay run: :func:`replay_edits`, in memory or streaming, and its audit.

Same front half as :func:`rxrisk.score` (read, validate, encode: the very same buckets and
claims), then one numba pass per member (``kernels/edits.py``, through its wrapper
:mod:`rxrisk.edits.replay`) that evaluates every used opioid and benzodiazepine claim, in
adjudication order, against the member's claims paid before it. Streaming
(:mod:`rxrisk.engines.stream_edits`) replays one member partition at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.settings import load_config
from rxrisk.edits.config import EditSet, load_edits
from rxrisk.edits.replay import drug_keys, run_edits_kernel
from rxrisk.edits.table import BookText, edits_table
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError, shown
from rxrisk.ingest.intake import audit_warnings
from rxrisk.ingest.select import ingest
from rxrisk.kernels._jit import own_context
from rxrisk.scoring.encode import encode_used
from rxrisk.version import __version__


@dataclass
class EditsResult:
    """What :func:`replay_edits` returns.

    Attributes
    ----------
    claims : pyarrow.Table
        One row per evaluated claim, sorted by member_id then evaluation order.
    audit : dict
        The audit (``members_scored`` / ``rows_out`` count this table) plus ``edits``:
        ``claims_evaluated``, ``fired`` and ``members_hit`` per edit, and the settings used.
    """

    claims: pa.Table
    audit: dict


@own_context
def replay_edits(
    pharmacy,
    medical=None,
    *,
    reference=None,
    rules=None,
    codesets=None,
    edits=None,
    overrides: Iterable[str] = (),
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
    stream=None,
) -> EditsResult:
    """Replay the point-of-sale safety edits over a claims history.

    Parameters
    ----------
    pharmacy : pyarrow.Table, RecordBatchReader, Arrow C stream object or path
        Pharmacy claims.
    medical : same kinds, optional
        Medical events; their cancer, sickle-cell and hospice/palliative codes
        exclude claims from the MME and naive edits.
    reference : path or pyarrow.Table, optional
        NDC rows merged over the packaged drug reference.
    rules : path or RuleSet, optional
        Scoring rule file; its ``[metrics]`` ``max_days_supply`` and ``factor_edition`` shape
        the claims exactly as in ``score``. Default ``data/rules/default.toml``.
    codesets : path, optional
        Medical code-set file; default ``data/codesets/default.toml``.
    edits : path or EditSet, optional
        Edits file; default ``data/rules/edits.toml``.
    overrides : iterable of str
        ``EDIT.FIELD=VALUE`` items applied over the edits file (like ``--set``).
    threads : int, optional
        Numba threads (default: all cores).
    progress : callable, optional
        Called with each stage name as it completes.
    date_format, max_reject_share :
        As for :func:`rxrisk.score`: the format of text dates in another form, and the
        share of rejected rows that stops the run (warnings go to the audit).
    stream : bool or rxrisk.engines.stream.StreamOptions, optional
        Read the claims batch by batch with bounded memory and replay one member partition
        at a time (:mod:`rxrisk.engines.stream_edits`): same claim table and audit (but for
        ``seconds``), byte for byte. True uses the default
        :class:`~rxrisk.engines.stream.StreamOptions`.

    Returns
    -------
    EditsResult
    """
    options = _stream_options(stream)
    clock = Clock(progress)
    cfg = load_config(reference=reference, rules=rules, codesets=codesets)
    max_reject_share = cfg.reject_share(max_reject_share)
    edit_set = load_edits(edits, overrides)
    run = dict(clock=clock, threads=threads, date_format=date_format)
    if options is None:
        table, counts, blocks = _in_memory(
            pharmacy, medical, cfg, edit_set, max_reject_share=max_reject_share, **run
        )
    else:
        from rxrisk.engines.stream_edits import replay_stream  # lazy: only streamed runs load it

        table, counts, blocks = replay_stream(
            pharmacy,
            medical,
            config=cfg,
            edit_set=edit_set,
            options=options,
            max_reject_share=max_reject_share,
            **run,
        )
    audit = _audit(blocks, cfg, edit_set, table, counts, clock, max_reject_share)
    return EditsResult(claims=table, audit=audit)


def _stream_options(stream) -> StreamOptions | None:
    """The streaming options of ``stream=`` (None: in memory)."""
    if stream is None or stream is False:
        return None
    if stream is True:
        return StreamOptions()
    if isinstance(stream, StreamOptions):
        return stream
    raise InputError(
        f"stream {shown(stream)}: give True, False or rxrisk.engines.stream.StreamOptions"
    )


def _in_memory(
    pharmacy, medical, cfg, edit_set: EditSet, *, clock, threads, date_format, max_reject_share
) -> tuple[pa.Table, dict, dict]:
    """The whole book read, encoded and replayed at once: ``(claim table, counts of
    :func:`~rxrisk.edits.table.edits_table`, audit blocks of the inputs)``."""
    ref = cfg.reference
    data = ingest(
        pharmacy,
        medical,
        cfg,
        clock=clock,
        date_format=date_format,
        max_reject_share=max_reject_share,
    )
    claims = encode_used(data)
    ref_row = data.pharmacy_rows.ref_index[claims.row]
    clock.lap("encode")

    out = run_edits_kernel(claims, ref_row, drug_keys(ref), edit_set, threads)
    clock.lap("kernels")

    table, counts = edits_table(claims, BookText(data), ref, ref_row, out)
    clock.lap("output")
    return table, counts, data.audit_blocks()


def _audit(
    blocks: dict,
    cfg,
    edit_set: EditSet,
    table: pa.Table,
    counts: dict,
    clock: Clock,
    max_reject_share,
) -> dict:
    """The audit of a replay: the intake blocks, the table's counts, the edits block."""
    return {
        **blocks,
        "members_scored": counts.pop("members"),
        "rows_out": int(table.num_rows),
        "edits": {**counts, "settings": edit_set.sections()},
        "seconds": clock.seconds,
        "version": __version__,
        "config_digest": cfg.digest(edit_set.digest()),
        "warnings": audit_warnings(
            blocks,
            max_reject_share=max_reject_share,
            max_days_supply=cfg.metrics.max_days_supply,
        ),
    }

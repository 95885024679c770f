"""The in-process engine: one book in memory, from its sources to the member table and the audit.

The steps, each its own function: :func:`configure` (threads, clock, rules, reference, code
sets, as-of dates), :func:`ingest_book` (read, validate, select the used rows), :func:`encode_book`
(claims as arrays), :func:`score_book` (kernels, flags, member table, via
:func:`~rxrisk.scoring.run.score_claims`) and :func:`audit_of` (the audit of a run, for this
engine and the streaming one alike). :func:`rxrisk.score` picks the engine;
the Spark engine runs :func:`score_book` on each member partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.clock import Clock
from rxrisk.config.settings import DEFAULT_MAX_REJECT_SHARE, Config, load_config, parse_as_of
from rxrisk.days import date_of
from rxrisk.ingest import intake
from rxrisk.ingest.select import Ingested, ingest, select_used
from rxrisk.scoring.run import score_claims, set_threads
from rxrisk.version import __version__


@dataclass
class Setup:
    """Everything a run needs besides its claims: settings loaded, dates read, clock started."""

    config: Config
    days: np.ndarray  # as-of dates, sorted unique day numbers
    clock: Clock
    threads: int | None = None
    date_format: str | None = None
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE  # in force (argument or rule file)


@dataclass
class Scored:
    """What an engine hands back: member table, audit blocks, members scored, rejected rows."""

    members: pa.Table
    blocks: dict  # the audit's "pharmacy" and "medical" blocks
    members_scored: int
    quarantine: pa.Table | None = None


def configure(
    *,
    as_of,
    reference=None,
    rules=None,
    codesets=None,
    threads: int | None = None,
    progress: Callable[..., None] | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> Setup:
    """Step "config": numba threads, the clock, the settings and the as-of dates of a run.

    Parameters
    ----------
    as_of, reference, rules, codesets, threads, progress, date_format
        As for :func:`rxrisk.score` (arguments already checked; ``date_format`` as
        :func:`~rxrisk.ingest.dates.check_date_format` returns it).
    max_reject_share : float, optional
        The argument; None takes the rule file's ``max_reject_share``.

    Returns
    -------
    Setup
    """
    set_threads(threads)  # before validation: its hashing and sorting use the numba threads
    clock = Clock(progress)
    config = load_config(reference=reference, rules=rules, codesets=codesets)
    share = config.reject_share(max_reject_share)
    return Setup(
        config=config,
        days=parse_as_of(as_of),
        clock=clock,
        threads=threads,
        date_format=date_format,
        max_reject_share=share,
    )


def ingest_book(pharmacy, medical, setup: Setup, *, all_members: bool) -> tuple[Ingested, dict]:
    """Step "ingest": read and validate both inputs (stopping on too many rejected rows), then
    select the rows scoring uses: ``(ingested book, selected columns)``."""
    data = ingest(
        pharmacy,
        medical,
        setup.config,
        clock=setup.clock,
        date_format=setup.date_format,
        max_reject_share=setup.max_reject_share,
    )
    selected = select_used(data, all_members=all_members)
    setup.clock.lap("select")
    return data, selected


def encode_book(selected: dict, setup: Setup):
    """Step "encode": the selected rows as :class:`~rxrisk.scoring.encode.Claims` arrays."""
    from rxrisk.scoring.encode import encode_selected  # lazy: kernels on first use

    claims = encode_selected(selected, setup.config.reference)
    setup.clock.lap("encode")
    return claims


def score_book(
    pharmacy, medical, setup: Setup, *, all_members: bool = False, quarantine: bool = False
) -> Scored:
    """Score one book in memory: ingest, encode, then kernels, flags and the member table.

    Parameters
    ----------
    pharmacy, medical
        As for :func:`rxrisk.score` (``medical`` may be None).
    setup : Setup
        From :func:`configure`.
    all_members, quarantine : bool
        As for :func:`rxrisk.score`.

    Returns
    -------
    Scored
    """
    data, selected = ingest_book(pharmacy, medical, setup, all_members=all_members)
    claims = encode_book(selected, setup)
    del selected
    members, n_scored = score_claims(
        claims,
        setup.days,
        setup.config,
        all_members=all_members,
        threads=setup.threads,
        clock=setup.clock,
    )
    blocks = data.audit_blocks()
    rejected = data.quarantine() if quarantine else None
    setup.clock.lap("output")
    return Scored(members=members, blocks=blocks, members_scored=n_scored, quarantine=rejected)


def audit_of(scored: Scored, setup: Setup) -> dict:
    """Step "audit": bucket counts, rejection reasons, rows, as-of dates, stage seconds, version,
    config digest and warnings of a run (of this engine or the streaming one)."""
    blocks = scored.blocks
    return {
        **blocks,
        "members_scored": scored.members_scored,
        "rows_out": int(scored.members.num_rows),
        "as_of": [str(date_of(d)) for d in setup.days],
        "seconds": setup.clock.seconds,
        "version": __version__,
        "config_digest": setup.config.digest(),
        "warnings": intake.audit_warnings(
            blocks,
            max_reject_share=setup.max_reject_share,
            max_days_supply=setup.config.metrics.max_days_supply,
        ),
    }

"""The shared front half of every command: read, validate and encode.

``score`` (metrics and flags) and ``edits`` (point-of-sale replay) both run
:func:`ingest` then :func:`encode_used`, so they see the very same buckets, reference
lookups and sorted claims.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rxrisk import inputs, validate
from rxrisk.arrowutil import keep_rows
from rxrisk.errors import InputError, shown


@dataclass
class Clock:
    """Seconds per stage, and an optional progress callback.

    The callback is called as ``progress(stage)`` when a stage ends; on long streaming runs
    its ``tick(what, n)`` method, if it has one, gets running counts (rows read, partitions
    done).
    """

    progress: Callable[..., None] | None = None
    seconds: dict = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str, *, quiet: bool = False) -> None:
        """Add the time since the last lap to ``stage`` (and report it unless ``quiet``)."""
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._t, 6)
        self._t = now
        if self.progress is not None and not quiet:
            self.progress(stage)

    def tick(self, what: str, n: int) -> None:
        """Report a running count to the callback's ``tick(what, n)`` method, if it has one
        (the CLI's progress line; it decides how often to redraw)."""
        tick = getattr(self.progress, "tick", None)
        if tick is not None:
            tick(what, n)


@dataclass(frozen=True)
class Config:
    """Everything that shapes results besides the claims: rules, drug reference, code sets."""

    rules: object  # rxrisk.rules.RuleSet
    reference: pa.Table
    codesets: object  # rxrisk.codesets.CodeSets

    @property
    def metrics(self):
        return self.rules.metrics

    def reject_share(self, value) -> float:
        """The stop share in force: ``value`` (API argument or ``--max-reject-share``) when
        given, else the rule file's ``[metrics] max_reject_share``."""
        from rxrisk.intake import check_max_reject_share

        return check_max_reject_share(value, default=self.metrics.max_reject_share)

    def digest(self, *extra: str) -> str:
        """The audit's ``config_digest``: rules, reference and code sets (plus ``extra``)."""
        from rxrisk.reference import reference_digest

        return config_digest(
            self.rules.digest(), reference_digest(self.reference), self.codesets.digest(), *extra
        )


#: --threads / ``threads=`` range (numba uses no more threads than there are cores)
MAX_THREADS = 1024


def check_arguments(*, reference=None, rules=None, codesets=None, threads=None) -> None:
    """Refuse argument types that :func:`score` cannot use, with one line naming the
    argument and the types it takes (before anything is read)."""
    from os import PathLike

    from rxrisk.rules import RuleSet

    path = (str, PathLike)
    checks = (
        (
            "reference",
            reference,
            (*path, pa.Table),
            "a .csv or .parquet file path or a pyarrow Table",
        ),
        (
            "rules",
            rules,
            (*path, dict, RuleSet),
            "a rule file path, a dict of the same structure as the file, or a RuleSet",
        ),
        ("codesets", codesets, path, "a code-set file path (TOML)"),
    )
    for name, value, types, wanted in checks:
        if value is not None and not isinstance(value, types):
            raise InputError(
                f"{name}= cannot be an object of type {type(value).__name__}; give {wanted}"
            )
    if threads is not None and (
        isinstance(threads, bool)
        or not isinstance(threads, (int, np.integer))
        or not 1 <= threads <= MAX_THREADS
    ):
        raise InputError(
            f"threads {shown(threads)}: give a whole number between 1 and {MAX_THREADS:,} "
            "(or None for all cores)"
        )


def load_config(*, reference=None, rules=None, codesets=None) -> Config:
    """Load and validate the rules, the reference (in the rules' factor edition, with the
    user's rows merged over the default) and the code sets, as every command does."""
    from rxrisk.codesets import load_codesets
    from rxrisk.reference import load_reference
    from rxrisk.rules import load_rules

    check_arguments(reference=reference, rules=rules, codesets=codesets)
    ruleset = load_rules(rules)
    return Config(
        rules=ruleset,
        reference=load_reference(reference, edition=ruleset.metrics.factor_edition),
        codesets=load_codesets(codesets),
    )


@dataclass
class Ingested:
    """Validated inputs: the conformed columns and the bucket of every row."""

    reference: pa.Table
    pharmacy_source: inputs.Source
    pharmacy: inputs.PharmacyColumns
    pharmacy_rows: validate.PharmacyRows
    medical_source: inputs.Source | None = None
    medical: inputs.MedicalColumns | None = None
    medical_rows: validate.MedicalRows | None = None

    def audit_blocks(self) -> dict:
        """The ``pharmacy`` and ``medical`` blocks of the audit."""
        return {
            "pharmacy": self.pharmacy_rows.counts(),
            "medical": self.medical_rows.counts()
            if self.medical_rows is not None
            else validate.empty_medical_counts(),
        }

    def used_pharmacy_rows(self) -> np.ndarray:
        """Input row numbers (0-based) of the ``used`` pharmacy rows, in input order."""
        return np.flatnonzero(self.pharmacy_rows.bucket == validate.PHARMACY_BUCKETS.index("used"))

    def quarantine(self) -> pa.Table:
        """Rejected rows of both inputs as read (see :func:`rxrisk.outputs.quarantine_table`)."""
        from rxrisk.outputs import quarantine_table

        r = self.pharmacy_rows.reason
        parts = [
            (
                "pharmacy",
                self.pharmacy_source.table,
                np.flatnonzero(r >= 0),
                r[r >= 0],
                validate.PHARMACY_REASONS,
            )
        ]
        if self.medical_rows is not None:
            m = self.medical_rows.reason
            parts.append(
                (
                    "medical",
                    self.medical_source.table,
                    np.flatnonzero(m >= 0),
                    m[m >= 0],
                    validate.MEDICAL_REASONS,
                )
            )
        return quarantine_table(parts)


def ingest(
    pharmacy,
    medical,
    config: Config,
    *,
    clock: Clock,
    max_days_supply: int | None = None,
    date_format: str | None = None,
    max_reject_share: float | None = None,
) -> Ingested:
    """Read both inputs, check their schemas and put every row in its bucket.

    ``max_days_supply`` defaults to the rules' ``[metrics] max_days_supply``;
    ``date_format`` reads text dates of another form (:func:`rxrisk.inputs.as_date`). A
    rejection reason above ``max_reject_share`` (default: the rule file's ``[metrics]
    max_reject_share``) of an input's in-scope rows stops here (:func:`rxrisk.intake.check`).
    """
    from rxrisk import intake

    date_format = inputs.check_date_format(date_format)
    max_reject_share = config.reject_share(max_reject_share)
    reference = config.reference
    codesets = config.codesets
    if max_days_supply is None:
        max_days_supply = config.metrics.max_days_supply
    ph_src = inputs.read_source(pharmacy, label="pharmacy")
    md_src = inputs.read_source(medical, label="medical") if medical is not None else None
    clock.lap("read")
    ph = inputs.conform_pharmacy(ph_src, date_format=date_format)
    from rxrisk.encode import DrugTable

    ph_rows = validate.validate_pharmacy(
        ph, DrugTable.from_reference(reference), max_days_supply=max_days_supply
    )
    out = Ingested(reference=reference, pharmacy_source=ph_src, pharmacy=ph, pharmacy_rows=ph_rows)
    if md_src is not None:
        out.medical_source = md_src
        out.medical = inputs.conform_medical(md_src, date_format=date_format)
        out.medical_rows = validate.validate_medical(out.medical, codesets)
    offenders = intake.Offenders()
    offenders.add("pharmacy", ph_src.table, ph_rows.reason, validate.PHARMACY_REASONS)
    if out.medical_rows is not None:
        offenders.add("medical", md_src.table, out.medical_rows.reason, validate.MEDICAL_REASONS)
    intake.check(
        out.audit_blocks(),
        names={"pharmacy": ph_src.name, "medical": md_src.name if md_src else None},
        offenders=offenders,
        max_reject_share=max_reject_share,
        max_days_supply=max_days_supply,
    )
    clock.lap("validate")
    return out


def select_used(data: Ingested, *, all_members: bool = False) -> dict:
    """The used rows of both inputs, ready for :func:`rxrisk.encode.encode`: filtered out of
    the book and with ids trimmed, plus the members seen (``--all-members``).

    This is the end of validation (from buckets to the rows that count); the streaming path
    does the same per batch. Returns the keyword arguments of ``encode`` but ``drugs``.
    """
    ph, rows = data.pharmacy, data.pharmacy_rows
    used = data.used_pharmacy_rows()
    kept = keep_rows(
        {
            "member_id": ph.member_id,
            "fill_date": ph.fill_date,
            "quantity": ph.quantity,
            "days_supply": ph.days_supply,
            "prescriber_id": ph.prescriber_id,
            "pharmacy_id": ph.pharmacy_id,
        },
        rows.bucket == validate.PHARMACY_BUCKETS.index("used"),
    )
    med_args = {"medical_member": None, "service_date": None, "medical_mask": None}
    if data.medical is not None:
        is_used = data.medical_rows.bucket == validate.MEDICAL_BUCKETS.index("used")
        mkept = keep_rows(
            {"member_id": data.medical.member_id, "service_date": data.medical.service_date},
            is_used,
        )
        med_args = {
            "medical_member": inputs.clean_text(mkept["member_id"]),
            "service_date": mkept["service_date"],
            "medical_mask": data.medical_rows.mask[is_used],
        }
    extra = None
    if all_members:
        # every non-blank member id of any row, whatever its bucket (untracked and rejected
        # rows too); blank ids become null here and are no member
        seen = [inputs.clean_text(ph.member_id)]
        if data.medical is not None:
            seen.append(inputs.clean_text(data.medical.member_id))
        if len({str(s.type) for s in seen}) != 1:
            raise InputError(
                "member_id has different types in pharmacy and medical; give both the same type"
            )
        extra = pa.chunked_array([c for s in seen for c in s.chunks], type=seen[0].type)
    return {
        "pharmacy_member": inputs.clean_text(kept["member_id"]),
        "fill_date": kept["fill_date"],
        "quantity": kept["quantity"],
        "days_supply": kept["days_supply"],
        "prescriber": inputs.clean_text(kept["prescriber_id"]),
        "pharmacy": inputs.clean_text(kept["pharmacy_id"]),
        "ref_index": rows.ref_index[used],
        "input_row": used.astype(np.int64),
        "extra_members": extra,
        **med_args,
    }


def encode_selected(selected: dict, reference: pa.Table):
    """Encode the rows of :func:`select_used` into sorted :class:`rxrisk.encode.Claims`."""
    from rxrisk.encode import DrugTable, encode

    return encode(drugs=DrugTable.from_reference(reference), **selected)


def encode_used(data: Ingested, *, all_members: bool = False):
    """Encode the used rows of both inputs into sorted :class:`rxrisk.encode.Claims`."""
    return encode_selected(select_used(data, all_members=all_members), data.reference)


def config_digest(*parts: str) -> str:
    """sha256 over the digests of everything that shapes the output (rules, reference, code sets)."""
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` to numba and return the thread count in force."""
    import numba

    check_arguments(threads=threads)
    if threads is not None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()

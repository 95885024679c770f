"""Point-of-sale safety-edit replay: ``rxrisk.replay_edits`` and its config.

Same front half as :func:`rxrisk.score` (read, validate, encode: the very same buckets and
claims), then one numba pass per member (``kernels/edits.py``) that evaluates every used
opioid and benzodiazepine claim, in adjudication order, against the member's claims paid
before it. Thresholds and lookbacks are data (``data/rules/edits.toml``), decoded by msgspec
into the typed structs below; ``--set EDIT.FIELD=VALUE`` overrides are validated the same
way. Every error is one line naming the file (or the override), the edit and the field.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.resources import data_path
from rxrisk.errors import TOML_TOO_DEEP, InputError

#: The edits in the documented table order: the order of the bool columns and of ``edits``.
EDIT_NAMES = (
    "mme_care_coordination",
    "mme_hard_limit",
    "opioid_naive_days_limit",
    "opioid_benzo_concurrent",
    "duplicate_long_acting",
)
#: Medical categories whose codes exclude a claim from the MME and naive edits.
EXCLUSION_CATEGORIES = ("cancer", "sickle_cell", "hospice_palliative")


# --------------------------------------------------------------------------- config structs


class EditsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings shared by the edits ([config])."""

    dx_lookback_days: int = 365
    tolerance: float = 1e-9


class MmeCareCoordination(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Soft edit: cumulative MME >= threshold with min_prescribers or more opioid prescribers."""

    threshold: float = 90.0
    min_prescribers: int = 2


class MmeHardLimit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Hard edit: cumulative MME >= threshold."""

    threshold: float = 200.0


class OpioidNaiveDaysLimit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Naive patient (no opioid covering f-lookback_days .. f-1), more than max_covered_days."""

    lookback_days: int = 90
    max_covered_days: int = 7


class OpioidBenzoConcurrent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Opioid with an active benzodiazepine, or the reverse (no parameters)."""


class DuplicateLongActing(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Long-acting opioid with an active long-acting opioid of another ingredient (no parameters)."""


class _Sections(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The tables of an edits file (what a file may contain)."""

    config: EditsConfig = msgspec.field(default_factory=EditsConfig)
    mme_care_coordination: MmeCareCoordination = msgspec.field(default_factory=MmeCareCoordination)
    mme_hard_limit: MmeHardLimit = msgspec.field(default_factory=MmeHardLimit)
    opioid_naive_days_limit: OpioidNaiveDaysLimit = msgspec.field(
        default_factory=OpioidNaiveDaysLimit
    )
    opioid_benzo_concurrent: OpioidBenzoConcurrent = msgspec.field(
        default_factory=OpioidBenzoConcurrent
    )
    duplicate_long_acting: DuplicateLongActing = msgspec.field(default_factory=DuplicateLongActing)


class EditSet(_Sections, frozen=True):
    """A complete, validated edit configuration and where it came from."""

    source: str = "<edits>"

    def sections(self) -> dict:
        """The configuration as plain data (no ``source``), in file order."""
        return {name: msgspec.to_builtins(getattr(self, name)) for name in SECTIONS}

    def digest(self) -> str:
        """Stable sha256 of the content (not of the file name)."""
        return hashlib.sha256(msgspec.json.encode(self.sections())).hexdigest()


#: Section names an edits file and ``--set`` accept: ``config`` and the edits.
SECTIONS = ("config", *EDIT_NAMES)


def _fields(section: str) -> tuple[str, ...]:
    typ = next(f.type for f in msgspec.structs.fields(_Sections) if f.name == section)
    return tuple(f.name for f in msgspec.structs.fields(typ))


def _label(section: str) -> str:
    return "section config" if section == "config" else f"edit {section}"


def _valid_fields(section: str) -> str:
    names = _fields(section)
    return f"valid fields: {', '.join(names)}" if names else "it has no fields"


# --------------------------------------------------------------------------- loading


def load_edits(source=None, overrides: Iterable[str] = ()) -> EditSet:
    """Load and validate an edits file, then apply ``--set`` overrides.

    Parameters
    ----------
    source : None, str, os.PathLike, dict or EditSet
        None for the packaged default (``data/rules/edits.toml``); a TOML file path; a dict of
        the same structure as the file (``{"mme_hard_limit": {"threshold": 150}}``); or an
        already-built :class:`EditSet` (validated again).
    overrides : iterable of str
        ``EDIT.FIELD=VALUE`` items applied in order, e.g. ``mme_hard_limit.threshold=150``.
        ``EDIT`` may also be ``config``. VALUE is read as a TOML value.

    Returns
    -------
    EditSet

    Raises
    ------
    InputError
        One line naming the file or override, the edit and the field at fault.
    """
    if isinstance(source, EditSet):
        edits = source
    elif isinstance(source, dict):
        try:
            sections = msgspec.convert(source, type=_Sections)
        except msgspec.ValidationError as exc:
            raise InputError(f"edits dict: {_explain(exc)}") from None
        edits = EditSet(**msgspec.structs.asdict(sections), source="<edits dict>")
    elif source is not None and not isinstance(source, (str, os.PathLike)):
        raise InputError(
            f"edits: cannot use an object of type {type(source).__name__}; give an edits file "
            "path, a dict of the same structure as the file, or an EditSet"
        )
    else:
        path = Path(source) if source is not None else data_path("rules", "edits.toml")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(
                f"edits file {path}: cannot be read ({exc.strerror}); check the path"
            ) from None
        try:
            sections = msgspec.toml.decode(raw, type=_Sections)
        except msgspec.ValidationError as exc:
            raise InputError(f"edits file {path}: {_explain(exc)}") from None
        except msgspec.DecodeError as exc:
            raise InputError(f"edits file {path}: not valid TOML ({exc})") from None
        except RecursionError:
            raise InputError(f"edits file {path}: {TOML_TOO_DEEP}") from None
        edits = EditSet(**msgspec.structs.asdict(sections), source=str(path))
    _check(edits, f"edits file {edits.source}")
    for item in overrides or ():
        edits = apply_override(edits, item)
    return edits


def apply_override(edits: EditSet, item: str) -> EditSet:
    """Apply one ``EDIT.FIELD=VALUE`` override and validate the result."""
    where = f"--set {item}"
    name, sep, text = str(item).partition("=")
    section, dot, field = name.strip().partition(".")
    if not sep or not dot or not section or not field:
        raise InputError(
            f"{where}: write EDIT.FIELD=VALUE, e.g. --set mme_hard_limit.threshold=150"
        )
    if section not in SECTIONS:
        raise InputError(f"{where}: unknown edit {section!r}; valid edits: {', '.join(SECTIONS)}")
    if field not in _fields(section):
        raise InputError(
            f"{where}: {_label(section)} has no field {field!r}; {_valid_fields(section)}"
        )
    text = text.strip()
    try:
        value = msgspec.toml.decode(f"v = {text}".encode())["v"]
    except (msgspec.DecodeError, RecursionError):
        value = text  # not a TOML value: let the type check name the expected type
    data = edits.sections()
    data[section][field] = value
    try:
        sections = msgspec.convert(data, type=_Sections)
    except msgspec.ValidationError as exc:
        raise InputError(f"{where}: {_explain(exc)}") from None
    out = EditSet(**msgspec.structs.asdict(sections), source=edits.source)
    _check(out, where)
    return out


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec's message with the edit and field named the way the file spells them."""
    text = str(exc)
    msg, _, at = text.partition(" - at `$")
    path = at.rstrip("`").lstrip(".")
    section, _, field = path.partition(".")
    if msg.startswith("Object contains unknown field"):
        unknown = msg.split("`")[1] if "`" in msg else "?"
        if not section:
            return f"unknown edit [{unknown}]; valid edits: {', '.join(SECTIONS)}"
        return f"{_label(section)}: unknown field {unknown!r}; {_valid_fields(section)}"
    if section and field:
        return f"{_label(section)}, field {field}: {msg}"
    if section:
        return f"{_label(section)}: {msg}"
    return msg


def _check(edits: EditSet, where: str) -> None:
    """Range checks that the types cannot express."""

    def need(ok: bool, section: str, field: str, rule: str) -> None:
        if not ok:
            value = getattr(getattr(edits, section), field)
            raise InputError(f"{where}: {_label(section)}, field {field}: {value!r} must be {rule}")

    c = edits.config
    need(
        1 <= c.dx_lookback_days <= 3660,
        "config",
        "dx_lookback_days",
        "a whole number of days between 1 and 3660",
    )
    need(math.isfinite(c.tolerance) and 0 <= c.tolerance < 1, "config", "tolerance", ">= 0 and < 1")
    for section in ("mme_care_coordination", "mme_hard_limit"):
        t = getattr(edits, section).threshold
        need(math.isfinite(t) and t >= 0, section, "threshold", "a finite MME >= 0")
    need(
        0 <= edits.mme_care_coordination.min_prescribers <= 1000,
        "mme_care_coordination",
        "min_prescribers",
        "a whole number between 0 and 1000",
    )
    n = edits.opioid_naive_days_limit
    need(
        1 <= n.lookback_days <= 3660,
        "opioid_naive_days_limit",
        "lookback_days",
        "a whole number of days between 1 and 3660",
    )
    need(
        0 <= n.max_covered_days <= 3660,
        "opioid_naive_days_limit",
        "max_covered_days",
        "a whole number of days between 0 and 3660",
    )


# --------------------------------------------------------------------------- replay


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


def drug_keys(reference: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per reference row: dense ingredient code and long-acting flag for the duplicate edit.

    Returns
    -------
    ingredient : int32 array
        Code of the trimmed, lower-cased ingredient (equal text = equal code); -1 when null or
        empty.
    long_acting : int8 array
        1 long-acting, 0 not, -1 null.
    """
    from rxrisk.io.arrow import dict_codes, is_null, to_bool

    text = pc.utf8_lower(pc.utf8_trim_whitespace(reference.column("ingredient").cast(pa.string())))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    codes, _ = dict_codes(text)
    la = reference.column("long_acting")
    long_acting = np.where(is_null(la), -1, to_bool(la).astype(np.int8)).astype(np.int8)
    return codes.astype(np.int32), long_acting


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

    Returns
    -------
    EditsResult
    """
    from rxrisk import __version__
    from rxrisk.clock import Clock
    from rxrisk.config.settings import load_config
    from rxrisk.ingest.intake import audit_warnings
    from rxrisk.ingest.select import ingest
    from rxrisk.scoring.encode import encode_used

    clock = Clock(progress)
    cfg = load_config(reference=reference, rules=rules, codesets=codesets)
    max_reject_share = cfg.reject_share(max_reject_share)
    edit_set = load_edits(edits, overrides)
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

    table, counts = edits_table(claims, data, ref, ref_row, out)
    clock.lap("output")

    audit = {
        **data.audit_blocks(),
        "members_scored": counts.pop("members"),
        "rows_out": int(table.num_rows),
        "edits": {**counts, "settings": edit_set.sections()},
        "seconds": clock.seconds,
        "version": __version__,
        "config_digest": cfg.digest(edit_set.digest()),
        "warnings": audit_warnings(
            data.audit_blocks(),
            max_reject_share=max_reject_share,
            max_days_supply=cfg.metrics.max_days_supply,
        ),
    }
    return EditsResult(claims=table, audit=audit)


def run_edits_kernel(
    claims, ref_row: np.ndarray, keys, edit_set: EditSet, threads: int | None
) -> dict:
    """Allocate the outputs and run the parallel replay kernel over every member.

    Returns the per-fill outputs (``evaluated``, ``cumulative``, ``prescribers``, ``excluded``,
    ``fired``) and ``work``, the kernel's count of elementary steps (O(n log n) per member).
    """
    from rxrisk.config.codesets import CATEGORIES
    from rxrisk.kernels.edits import SEQUENTIAL_MAX, replay_members_work
    from rxrisk.kernels.roles import BENZO, OPIOID
    from rxrisk.scoring.run import set_threads

    n_threads = set_threads(threads)
    n = len(claims.start)
    n_members = len(claims.member_ids)
    ingredient_of_ref, la_of_ref = keys
    ingredient = ingredient_of_ref[ref_row] if n else np.zeros(0, np.int32)
    long_acting = la_of_ref[ref_row] if n else np.zeros(0, np.int8)
    out = {
        "evaluated": (claims.role & np.uint8(OPIOID | BENZO)) != 0,
        "cumulative": np.zeros(n, np.float64),
        "prescribers": np.zeros(n, np.int32),
        "excluded": np.zeros(n, np.bool_),
        "fired": np.zeros(n, np.uint8),
        "work": 0,
    }
    if n:
        c = edit_set.config
        tol = c.tolerance
        exclusion_bits = 0
        for name in EXCLUSION_CATEGORIES:
            exclusion_bits |= 1 << CATEGORIES.index(name)
        n_chunks = max(1, min(n_members, n_threads * 8))
        work = np.zeros(n_chunks, np.int64)
        replay_members_work(
            claims.fill_offsets, claims.start, claims.end, claims.role, claims.mme, claims.prescriber,
            ingredient.astype(np.int32, copy=False), long_acting.astype(np.int8, copy=False),
            claims.med_offsets, claims.med_day, claims.med_mask,
            exclusion_bits, int(c.dx_lookback_days),
            float(edit_set.mme_care_coordination.threshold - tol),
            int(edit_set.mme_care_coordination.min_prescribers),
            float(edit_set.mme_hard_limit.threshold - tol),
            int(edit_set.opioid_naive_days_limit.lookback_days),
            int(edit_set.opioid_naive_days_limit.max_covered_days),
            int(claims.n_prescribers), max(0, int(ingredient.max()) + 1), SEQUENTIAL_MAX, n_chunks,
            out["cumulative"], out["prescribers"], out["excluded"], out["fired"], work,
        )  # fmt: skip
        out["work"] = int(work.sum())
    return out


def _distinct_sorted(values: np.ndarray) -> int:
    """Number of distinct values of a sorted array (the evaluated rows' member codes)."""
    return int(len(values) > 0) + int(np.count_nonzero(values[1:] != values[:-1]))


def edits_table(
    claims, data, ref: pa.Table, ref_row: np.ndarray, out: dict
) -> tuple[pa.Table, dict]:
    """Assemble the claim table and the per-edit counts of the audit."""
    from rxrisk.ingest.sources import clean_text
    from rxrisk.io.arrow import take_rows
    from rxrisk.io.outputs import reasons_array
    from rxrisk.kernels.edits import EDIT_BITS

    sel = np.flatnonzero(out["evaluated"])
    n_members = len(claims.member_ids)
    member_of_fill = np.repeat(np.arange(n_members, dtype=np.int64), np.diff(claims.fill_offsets))
    member = member_of_fill[sel]
    fired = out["fired"][sel]
    flags = {
        name: (fired & np.uint8(bit)) != 0 for name, bit in zip(EDIT_NAMES, EDIT_BITS, strict=True)
    }
    columns = {
        "member_id": claims.member_ids.take(pa.array(member, pa.int64())),
        "claim_id": clean_text(take_rows(data.pharmacy.claim_id, claims.row[sel])).combine_chunks(),
        "fill_date": pa.array(claims.start[sel].astype(np.int32), pa.int32()).view(pa.date32()),
        "ndc": data.pharmacy_rows.normalized_ndc(claims.row[sel]),
        "drug_class": ref.column("drug_class")
        .take(pa.array(ref_row[sel], pa.int64()))
        .combine_chunks(),
        "claim_mme": pa.array(claims.mme[sel], pa.float64()),
        "cumulative_mme": pa.array(out["cumulative"][sel], pa.float64()),
        "active_opioid_prescribers": pa.array(out["prescribers"][sel], pa.int32()),
        "excluded_at_fill": pa.array(out["excluded"][sel], pa.bool_()),
        **{name: pa.array(values, pa.bool_()) for name, values in flags.items()},
        "edits": reasons_array(flags, len(sel)),
    }
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    counts = {
        "members": _distinct_sorted(member),
        "claims_evaluated": int(len(sel)),
        "fired": {name: int(v.sum()) for name, v in flags.items()},
        "members_hit": {name: _distinct_sorted(member[v]) for name, v in flags.items()},
    }
    return table, counts

"""The edit set of ``rxrisk edits``: its msgspec structs, :func:`load_edits` and ``--set``.

Thresholds and lookbacks are data (``data/rules/edits.toml``), decoded by msgspec into the
typed structs below; ``--set EDIT.FIELD=VALUE`` overrides are validated the same way. Every
error is one line naming the file (or the override), the edit and the field.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from rxrisk.config.resources import data_path
from rxrisk.config.toml_file import convert_settings, decode_settings_file, split_validation_error
from rxrisk.errors import InputError
from rxrisk.kernels.edits_containers import EDIT_BITS

#: The edits in the documented table order: the order of the bool columns and of ``edits``
#: (the names of the kernel's ``fired`` bits).
EDIT_NAMES = tuple(EDIT_BITS)


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
        sections = convert_settings(source, _Sections, "edits dict", explain=_explain)
        edits = EditSet(**msgspec.structs.asdict(sections), source="<edits dict>")
    elif source is not None and not isinstance(source, (str, os.PathLike)):
        raise InputError(
            f"edits: cannot use an object of type {type(source).__name__}; give an edits file "
            "path, a dict of the same structure as the file, or an EditSet"
        )
    else:
        path = Path(source) if source is not None else data_path("rules", "edits.toml")
        sections = decode_settings_file(path, _Sections, "edits file", explain=_explain)
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
    sections = convert_settings(data, _Sections, where, explain=_explain)
    out = EditSet(**msgspec.structs.asdict(sections), source=edits.source)
    _check(out, where)
    return out


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec's message with the edit and field named the way the file spells them."""
    msg, section, field, unknown = split_validation_error(exc)
    if unknown is not None:
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

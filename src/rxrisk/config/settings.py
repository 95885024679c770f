"""Everything that shapes results besides the claims: loading and checking the run's settings.

:func:`load_config` gives the rules, the drug reference (in the rules' factor edition, with the
user's rows merged) and the code sets; :func:`check_arguments` refuses argument types early;
:func:`parse_as_of` reads as-of dates; :func:`config_digest` fingerprints a run's settings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from os import PathLike

import numpy as np
import pyarrow as pa

from rxrisk.config.codesets import CodeSets, load_codesets
from rxrisk.config.reference import load_reference, reference_digest
from rxrisk.config.rules import RuleSet, load_rules
from rxrisk.days import date_of, day_of
from rxrisk.errors import InputError, shown

#: default share of an input's in-scope rows that one rejection reason may take
DEFAULT_MAX_REJECT_SHARE = 0.25


def check_max_reject_share(value, default: float = DEFAULT_MAX_REJECT_SHARE) -> float:
    """The share in force: ``None`` gives ``default`` (the rule file's ``[metrics]
    max_reject_share``, else 0.25); otherwise a number from 0 to 1."""
    if value is None:
        return default
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if isinstance(value, bool) or not 0.0 <= share <= 1.0:
        raise InputError(
            f"max reject share {value!r}: give a share from 0 to 1, e.g. 0.25 "
            "(--max-reject-share 1 never stops a run)"
        )
    return share


@dataclass(frozen=True)
class Config:
    """Everything that shapes results besides the claims: rules, drug reference, code sets."""

    rules: RuleSet
    reference: pa.Table
    codesets: CodeSets

    @property
    def metrics(self):
        return self.rules.metrics

    def reject_share(self, value) -> float:
        """The stop share in force: ``value`` (API argument or ``--max-reject-share``) when
        given, else the rule file's ``[metrics] max_reject_share``."""
        return check_max_reject_share(value, default=self.metrics.max_reject_share)

    def digest(self, *extra: str) -> str:
        """The audit's ``config_digest``: rules, reference and code sets (plus ``extra``)."""
        return config_digest(
            self.rules.digest(), reference_digest(self.reference), self.codesets.digest(), *extra
        )


#: --threads / ``threads=`` range (numba uses no more threads than there are cores)
MAX_THREADS = 1024


def check_arguments(*, reference=None, rules=None, codesets=None, threads=None) -> None:
    """Refuse argument types that :func:`score` cannot use, with one line naming the
    argument and the types it takes (before anything is read)."""
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
    check_arguments(reference=reference, rules=rules, codesets=codesets)
    ruleset = load_rules(rules)
    return Config(
        rules=ruleset,
        reference=load_reference(reference, edition=ruleset.metrics.factor_edition),
        codesets=load_codesets(codesets),
    )


def config_digest(*parts: str) -> str:
    """sha256 over the digests of everything that shapes the output (rules, reference, code sets)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def parse_as_of(as_of) -> np.ndarray:
    """As-of dates to sorted unique day numbers (days since 1970-01-01).

    Accepts a date or datetime, ``'YYYY-MM-DD'`` text (several comma-separated), a
    ``numpy.datetime64``, or a list, tuple or array of those (a ``datetime64`` array, a
    pyarrow date array). Anything else is an :class:`~rxrisk.errors.InputError`.
    """
    if as_of is None:
        raise InputError("as_of is required: give one or more dates, e.g. as_of='2025-12-31'")
    if isinstance(as_of, str):
        items = as_of.split(",")
    elif isinstance(as_of, (dt.date, np.datetime64)):
        items = [as_of]
    elif isinstance(as_of, np.ndarray):
        items = list(as_of.ravel())
    elif isinstance(as_of, (bytes, bytearray, dict)) or not hasattr(as_of, "__iter__"):
        raise InputError(
            f"as_of {shown(as_of)} ({type(as_of).__name__}) is not a date; give a date, "
            "'YYYY-MM-DD' text, a numpy.datetime64 or a list of them, e.g. as_of='2025-12-31'"
        )
    else:
        items = list(as_of)
    if not items:
        raise InputError("as_of is empty: give one or more dates, e.g. as_of='2025-12-31'")
    days = []
    for item in items:
        if hasattr(item, "as_py"):  # a pyarrow scalar
            item = item.as_py()
        if isinstance(item, np.datetime64):
            if np.isnat(item):
                raise InputError("as_of value NaT is not a date; give a date, e.g. '2025-12-31'")
            item = (item.astype("datetime64[D]") - np.datetime64(0, "D")).astype(np.int64)
            item = date_of(item)
        if isinstance(item, dt.datetime):
            item = item.date()
        if isinstance(item, str):
            try:
                item = dt.date.fromisoformat(item.strip())
            except ValueError:
                raise InputError(
                    f"as_of value {shown(item)} is not a date; write it as YYYY-MM-DD"
                ) from None
        if not isinstance(item, dt.date):
            raise InputError(
                f"as_of value {shown(item)} ({type(item).__name__}) is not a date; write it as "
                "YYYY-MM-DD"
            )
        days.append(day_of(item))
    return np.unique(np.array(days, np.int32))

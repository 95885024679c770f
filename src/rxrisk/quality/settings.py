"""The thresholds of the standard measures (:class:`MeasureSettings`, read from a TOML file) and
the measured periods (:func:`parse_periods`).

The packaged file ``data/measures/default.toml`` groups the keys in tables (``[enrollment]``,
``[eligible]``, ``[high_dose]``, ``[multiple_providers]``, ``[opioid_benzodiazepine]``,
``[continued_use]``); a user's file has the same layout, and a table or key it leaves out keeps
its default. Every error is one line naming the file, the table and the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from pathlib import Path

import msgspec
import numpy as np

from rxrisk.config.resources import data_path
from rxrisk.config.toml_file import convert_settings, decode_settings_file, split_validation_error
from rxrisk.days import day_of
from rxrisk.errors import InputError, shown

# --------------------------------------------------------------------------- the file's tables


class Enrollment(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[enrollment]``: continuous enrolment in the period."""

    max_gaps: int = 1
    max_gap_days: int = 45


class Eligible(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[eligible]``: the population of the opioid-use measures."""

    min_age: int = 18
    min_opioid_fill_dates: int = 2
    min_cumulative_days_supply: int = 15


class HighDose(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[high_dose]``: high-dose days, average and run thresholds."""

    high_dose_mme: float = 90.0
    high_dose_average_mme: float = 90.0
    high_dose_run_days: int = 90


class MultipleProviders(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[multiple_providers]``: prescriber and pharmacy counts."""

    min_prescribers: int = 4
    min_pharmacies: int = 4


class OpioidBenzodiazepine(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[opioid_benzodiazepine]``: concurrent opioid and benzodiazepine use."""

    min_benzo_fill_dates: int = 2
    min_opioid_benzo_days: int = 30


class ContinuedUse(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[continued_use]``: new episodes and their covered days."""

    negative_history_days: int = 60
    min_covered_30: int = 15
    min_covered_62: int = 31


class _Tables(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a measures file may contain."""

    enrollment: Enrollment = msgspec.field(default_factory=Enrollment)
    eligible: Eligible = msgspec.field(default_factory=Eligible)
    high_dose: HighDose = msgspec.field(default_factory=HighDose)
    multiple_providers: MultipleProviders = msgspec.field(default_factory=MultipleProviders)
    opioid_benzodiazepine: OpioidBenzodiazepine = msgspec.field(
        default_factory=OpioidBenzodiazepine
    )
    continued_use: ContinuedUse = msgspec.field(default_factory=ContinuedUse)


def _table_keys() -> dict[str, tuple[str, ...]]:
    out = {}
    for f in msgspec.structs.fields(_Tables):
        out[f.name] = tuple(g.name for g in msgspec.structs.fields(f.type))
    return out


#: table name -> its keys, in file order
TABLES = _table_keys()
#: key -> the table it belongs to
TABLE_OF = {key: table for table, keys in TABLES.items() for key in keys}

#: (lowest, highest) allowed value of every key; floats must also be finite and above 0
_LIMITS = {
    "max_gaps": (0, 366),
    "max_gap_days": (0, 3660),
    "min_age": (0, 150),
    "min_opioid_fill_dates": (1, 3660),
    "min_cumulative_days_supply": (0, 1_000_000),
    "high_dose_mme": (0.0, 1e9),
    "high_dose_average_mme": (0.0, 1e9),
    "high_dose_run_days": (1, 3660),
    "min_prescribers": (1, 100_000),
    "min_pharmacies": (1, 100_000),
    "min_benzo_fill_dates": (1, 3660),
    "min_opioid_benzo_days": (1, 3660),
    "negative_history_days": (0, 3660),
    "min_covered_30": (1, 30),
    "min_covered_62": (1, 62),
}


# --------------------------------------------------------------------------- the settings


class MeasureSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The thresholds of the standard measures, flat (the file groups them in tables).

    Attributes
    ----------
    max_gaps, max_gap_days : int
        Continuous enrolment: at most ``max_gaps`` gaps of at most ``max_gap_days`` days.
    min_age : int
        Completed years on the first day of the period.
    min_opioid_fill_dates, min_cumulative_days_supply : int
        The opioid-use population: distinct opioid fill dates and summed days supply.
    high_dose_mme : float
        Daily MME from which a day is high-dose (longest run).
    high_dose_average_mme : float
        ``high_dose_average``: average daily MME threshold.
    high_dose_run_days : int
        ``high_dose_sustained``: longest high-dose run threshold.
    min_prescribers, min_pharmacies : int
        ``multiple_prescribers`` / ``multiple_pharmacies`` thresholds.
    min_benzo_fill_dates, min_opioid_benzo_days : int
        ``opioid_benzodiazepine`` thresholds.
    negative_history_days : int
        Days before an episode start that no opioid may cover.
    min_covered_30, min_covered_62 : int
        ``continued_use_15_of_30`` / ``continued_use_31_of_62`` thresholds.
    source : str
        The file the settings came from (not part of :meth:`digest`).
    """

    max_gaps: int = 1
    max_gap_days: int = 45
    min_age: int = 18
    min_opioid_fill_dates: int = 2
    min_cumulative_days_supply: int = 15
    high_dose_mme: float = 90.0
    high_dose_average_mme: float = 90.0
    high_dose_run_days: int = 90
    min_prescribers: int = 4
    min_pharmacies: int = 4
    min_benzo_fill_dates: int = 2
    min_opioid_benzo_days: int = 30
    negative_history_days: int = 60
    min_covered_30: int = 15
    min_covered_62: int = 31
    source: str = "<measures>"

    def values(self) -> dict:
        """The thresholds by key, in file order (floats as float), without ``source``."""
        out = {}
        for key in TABLE_OF:
            value = getattr(self, key)
            out[key] = float(value) if isinstance(_LIMITS[key][0], float) else int(value)
        return out

    def digest(self) -> str:
        """Stable sha256 of the thresholds (not of the file name)."""
        payload = msgspec.json.encode(dict(sorted(self.values().items())))
        return hashlib.sha256(payload).hexdigest()


def load_measure_settings(path=None) -> MeasureSettings:
    """Load and validate a measures file.

    Parameters
    ----------
    path : None, str, os.PathLike, dict or MeasureSettings
        None for the packaged default (``data/measures/default.toml``); a TOML file path; a
        dict of the same structure as the file (``{"high_dose": {"high_dose_mme": 120}}``);
        or :class:`MeasureSettings` (validated again).

    Returns
    -------
    MeasureSettings

    Raises
    ------
    InputError
        One line naming the file, the table and the key at fault.
    """
    if isinstance(path, MeasureSettings):
        _check(path, f"measures config {path.source}")
        return path
    if isinstance(path, dict):
        tables = convert_settings(path, _Tables, "measures config <dict>", explain=_explain)
        return _settings(tables, "<dict>")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise InputError(
            f"measures config: cannot use an object of type {type(path).__name__}; give a "
            "measures file path (TOML), a dict of the same structure as the file, or "
            "MeasureSettings"
        )
    file = Path(path) if path is not None else data_path("measures", "default.toml")
    tables = decode_settings_file(file, _Tables, "measures config file", explain=_explain)
    return _settings(tables, str(file))


def _settings(tables: _Tables, source: str) -> MeasureSettings:
    flat = {key: getattr(getattr(tables, TABLE_OF[key]), key) for key in TABLE_OF}
    settings = MeasureSettings(**flat, source=source)
    _check(
        settings,
        f"measures config file {source}" if source != "<dict>" else "measures config <dict>",
    )
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec's message with the table and key named the way the file spells them."""
    msg, table, key, unknown = split_validation_error(exc)
    if unknown is not None:
        if not table:
            if unknown in TABLE_OF:
                return f"key {unknown!r} belongs in table [{TABLE_OF[unknown]}]; write it there"
            return f"unknown table [{unknown}]; valid tables: {', '.join(TABLES)}"
        valid = ", ".join(TABLES.get(table, ()))
        if unknown in TABLE_OF:
            return (
                f"[{table}]: key {unknown!r} belongs in table [{TABLE_OF[unknown]}]; write it there"
            )
        return f"[{table}]: unknown key {unknown!r}; valid keys: {valid}"
    if table and key:
        return f"[{table}] {key}: {msg}"
    if table:
        return f"[{table}]: {msg}; write it as a table of keys"
    return msg


def _check(settings: MeasureSettings, where: str) -> None:
    """Types and ranges that decoding alone does not check."""
    for key, (low, high) in _LIMITS.items():
        value = getattr(settings, key)
        table = TABLE_OF[key]
        if isinstance(low, float):
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and low < value <= high
            )
            rule = "a finite number above 0, e.g. 90"
        else:
            ok = (
                isinstance(value, (int, np.integer))
                and not isinstance(value, bool)
                and low <= value <= high
            )
            rule = f"a whole number from {low:,} to {high:,}"
        if not ok:
            raise InputError(f"{where}: [{table}] {key} = {shown(value)} must be {rule}")


# --------------------------------------------------------------------------- periods

#: calendar years a period may fall in
FIRST_YEAR, LAST_YEAR = 1900, 2199


def parse_periods(*, years=None, periods=None) -> np.ndarray:
    """The measured periods as day numbers.

    Parameters
    ----------
    years : int, str or sequence, optional
        Calendar years: ``2025``, ``"2025"``, ``"2025,2024"`` or a list of ints or strings.
    periods : str or sequence, optional
        ``"A:B[,A:B...]"`` with dates ``YYYY-MM-DD`` or ``YYYYMMDD`` (both ends inclusive), or
        a list of ``(start, end)`` pairs of dates, date text or ``numpy.datetime64`` (a single
        pair may be given alone).

    Exactly one of the two is given.

    Returns
    -------
    numpy.ndarray of int32, shape (n_periods, 2)
        First and last day (days since 1970-01-01) of each period, sorted, without repeats.

    Raises
    ------
    InputError
        One line naming ``--year`` or ``--period``, the value and the fix.
    """
    if years is None and periods is None:
        raise InputError(
            "no period given: pass --year (e.g. --year 2025) or --period (e.g. "
            "--period 2025-01-01:2025-12-31); API periods="
        )
    if years is not None and periods is not None:
        raise InputError("give --year or --period, not both")
    pairs = _year_pairs(years) if years is not None else _period_pairs(periods)
    out = np.unique(np.array(pairs, np.int32).reshape(-1, 2), axis=0)
    return np.ascontiguousarray(out, dtype=np.int32)


def _year_pairs(years) -> list[tuple[int, int]]:
    if isinstance(years, str) and not years.strip("," + " "):
        raise InputError("--year: no year given; give calendar years, e.g. --year 2025")
    if isinstance(years, (str, int, np.integer)):
        items = str(years).split(",") if isinstance(years, str) else [years]
    elif isinstance(years, (list, tuple, np.ndarray)):
        items = []
        for y in years:
            items += y.split(",") if isinstance(y, str) else [y]
    else:
        raise InputError(
            f"--year {shown(years)} ({type(years).__name__}): give calendar years, e.g. --year "
            "2025 or --year 2024,2025 (API: an int, text or a list)"
        )
    if not items:
        raise InputError("--year: no year given; give calendar years, e.g. --year 2025")
    out = []
    for item in items:
        year = _year(item)
        out.append((day_of(dt.date(year, 1, 1)), day_of(dt.date(year, 12, 31))))
    return out


def _year(item) -> int:
    bad = InputError(
        f"--year {shown(item)} is not a year; give calendar years from {FIRST_YEAR} to "
        f"{LAST_YEAR}, e.g. --year 2025 or --year 2024,2025"
    )
    if isinstance(item, bool):
        raise bad
    if isinstance(item, str):
        text = item.strip()
        if not (text.isascii() and text.isdigit()):
            raise bad
        item = int(text)
    if not isinstance(item, (int, np.integer)) or not FIRST_YEAR <= item <= LAST_YEAR:
        raise bad
    return int(item)


def _period_pairs(periods) -> list[tuple[int, int]]:
    if isinstance(periods, str) and not periods.strip(", "):
        items = []
    elif isinstance(periods, str):
        items = periods.split(",")
    elif isinstance(periods, (list, tuple, np.ndarray)):
        items = list(periods)
        if len(items) == 2 and not any(_is_pair(p) for p in items):
            items = [tuple(items)]  # a single (start, end) pair
    else:
        raise InputError(
            f"--period {shown(periods)} ({type(periods).__name__}): give periods as "
            "START:END, e.g. --period 2025-01-01:2025-12-31 (API: text or a list of "
            "(start, end) pairs)"
        )
    if not items:
        raise InputError(
            "--period: no period given; give START:END, e.g. --period 2025-01-01:2025-12-31"
        )
    out = []
    for item in items:
        if isinstance(item, str):
            start, sep, end = item.partition(":")
            if not sep:
                raise InputError(
                    f"--period {shown(item.strip())}: write START:END, e.g. "
                    "--period 2025-01-01:2025-12-31"
                )
        elif _is_pair(item):
            start, end = item
        else:
            raise InputError(
                f"--period {shown(item)}: give a (start, end) pair or START:END text, e.g. "
                "('2025-01-01', '2025-12-31')"
            )
        first, last = _day(start), _day(end)
        if last < first:
            raise InputError(
                f"--period {_show_pair(start, end)}: the end is before the start; give "
                "START:END with START on or before END"
            )
        out.append((first, last))
    return out


def _is_pair(item) -> bool:
    return isinstance(item, (str, list, tuple, np.ndarray)) and (
        (isinstance(item, str) and ":" in item) or (not isinstance(item, str) and len(item) == 2)
    )


def _show_pair(start, end) -> str:
    def text(v):
        return v.strip() if isinstance(v, str) else str(v)

    return shown(f"{text(start)}:{text(end)}").strip("'\"")


def _day(value) -> int:
    """A period end (date, datetime, numpy.datetime64, pyarrow scalar or text) as a day number."""
    if hasattr(value, "as_py"):  # a pyarrow scalar
        value = value.as_py()
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InputError("--period value NaT is not a date; give dates as YYYY-MM-DD")
        value = str(value.astype("datetime64[D]"))
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        value = _date_text(value.strip())
    if not isinstance(value, dt.date):
        raise InputError(
            f"--period value {shown(value)} ({type(value).__name__}) is not a date; give dates "
            "as YYYY-MM-DD, e.g. --period 2025-01-01:2025-12-31"
        )
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InputError(
            f"--period date {value.isoformat()} is outside the years {FIRST_YEAR} to {LAST_YEAR}; "
            "give dates within them"
        )
    return day_of(value)


def _date_text(text: str) -> dt.date:
    digits = text.replace("-", "")
    shaped = (len(text) == 10 and text[4] == "-" and text[7] == "-") or len(text) == 8
    if shaped and len(digits) == 8 and digits.isascii() and digits.isdigit():
        try:
            return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            raise InputError(
                f"--period date {shown(text)} does not exist (no such day in that month); "
                "give a real date, e.g. 2025-02-28"
            ) from None
    raise InputError(
        f"--period date {shown(text)} is not a date; write dates as YYYY-MM-DD or YYYYMMDD, "
        "e.g. --period 2025-01-01:2025-12-31"
    )

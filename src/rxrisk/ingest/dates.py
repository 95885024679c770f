"""Date forms: which text and integers are dates, and their day numbers.

Accepted without asking: ``YYYY-MM-DD`` and ``YYYYMMDD`` text and ``YYYYMMDD`` integers; any
other text form only through an explicit ``strptime`` format (:func:`check_date_format`).
Nothing is guessed, and impossible dates (2025-02-30, month 13, year 0) are invalid rather
than rolled over. :func:`rxrisk.ingest.conform.as_date` applies these to an input column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.errors import InputError
from rxrisk.io.arrow import dict_codes, to_bool, to_numpy

#: date directives an explicit date format must contain: a year, a month and a day
_FORMAT_PARTS = (("%Y", "%y"), ("%m", "%b", "%B", "%h"), ("%d", "%e"))


def check_date_format(date_format) -> str | None:
    """Check an explicit date format (``--date-format`` / ``date_format=``); None passes."""
    if date_format is None:
        return None
    fmt = date_format if isinstance(date_format, str) else None
    if not fmt or any(not any(p in fmt for p in part) for part in _FORMAT_PARTS):
        raise InputError(
            f"date format {date_format!r}: give a strptime format with a year, a month and a "
            "day, e.g. '%m/%d/%Y' (03/15/2025) or '%d.%m.%Y' (15.03.2025)"
        )
    return fmt


def ymd_days(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``YYYYMMDD`` to (days since 1970-01-01 as int32, valid mask).

    Valid: year 1-9999, month 1-12 and a day that exists in that month (leap years
    included); anything else is invalid (its day number is 0).
    """
    v = np.asarray(v, np.int64)
    y, m, d = v // 10000, (v // 100) % 100, v % 100
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)[
        np.clip(m, 0, 12)
    ] + ((m == 2) & leap)
    ok = (y >= 1) & (y <= 9999) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= dim)
    y, m, d = np.where(ok, y, 1970), np.where(ok, m, 1), np.where(ok, d, 1)
    # days from the civil date (proleptic Gregorian), as in H. Hinnant's date algorithms
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468).astype(np.int32), ok


_CANONICAL_DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8})$"
_DAY_MIN, _DAY_MAX = -719162, 2932896  # 0001-01-01 and 9999-12-31


def text_days(text: pa.Array, date_format: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed date text (typically distinct values) to (int32 day numbers, valid mask).

    ``date_format`` is tried first; text it does not read (or when there is none) is read as
    ``YYYY-MM-DD`` or ``YYYYMMDD``. A format-read value counts only when writing the date
    back in the format gives the text again (leading zeros and case aside), so the days a
    ``strptime`` rolls over (02/30 -> 03/02) are invalid.
    """
    n = len(text)
    days = np.zeros(n, np.int32)
    ok = np.zeros(n, bool)
    if date_format is not None and n:
        ts = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
        back = pc.strftime(ts, format=date_format)
        same = pc.equal(_date_text_key(back), _date_text_key(text))
        d = to_numpy(ts.cast(pa.date32()).cast(pa.int32()), np.int64, 0)
        ok = to_bool(same) & (d >= _DAY_MIN) & (d <= _DAY_MAX)
        days = np.where(ok, d, 0).astype(np.int32)
    canonical = to_bool(pc.match_substring_regex(text, _CANONICAL_DATE_RE)) & ~ok
    if canonical.any():
        digits = pc.replace_substring(text, "-", "")
        v = to_numpy(pc.if_else(pa.array(canonical), digits, "0").cast(pa.int64()), np.int64, 0)
        cd, cok = ymd_days(v)
        cok &= canonical
        days = np.where(cok, cd, days)
        ok |= cok
    return days, ok


def _date_text_key(text):
    """Date text compared without case, whitespace and leading zeros of its numbers."""
    low = pc.utf8_lower(text)
    unpadded = pc.replace_substring_regex(low, r"(^|[^0-9])0+([0-9])", r"\1\2")
    return pc.replace_substring_regex(unpadded, r"\s+", "")


def date_column(col: pa.ChunkedArray, date_format: str | None = None) -> pa.ChunkedArray:
    """An integer (``YYYYMMDD``) or trimmed text column as date32, null where the value is
    not a date (:func:`ymd_days`, :func:`text_days`). Decided on the distinct values (a
    book has a few thousand distinct dates)."""
    codes, distinct = dict_codes(col)
    if pa.types.is_integer(col.type):
        days, ok = ymd_days(to_numpy(distinct, np.int64, 0))
    else:
        days, ok = text_days(distinct, date_format)
    ok = np.append(ok, False)[codes]
    days = np.append(days, 0)[codes]
    return pa.chunked_array([pa.array(days, pa.int32(), mask=~ok)]).cast(pa.date32())

"""Day numbers: every engine holds a date as the days since 1970-01-01 (Arrow's date32)."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.date(1970, 1, 1)
"""Day number 0."""


def date_of(day: int) -> dt.date:
    """The calendar date of day number ``day``."""
    return EPOCH + dt.timedelta(days=int(day))


def day_of(date: dt.date) -> int:
    """The day number of ``date``."""
    return (date - EPOCH).days

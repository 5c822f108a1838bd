"""Dates of the simulation: extract (quarter-end) dates, school census dates, ages."""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

DAY = np.timedelta64(1, "D")
NEVER = np.datetime64("9999-12-31", "D")   # "no date yet": compares after every real date
DAYS_PER_YEAR = 365.25


def as_day(value) -> np.datetime64:
    return np.datetime64(value, "D")


def quarter_ends(start: dt.date, quarters: int) -> list[dt.date]:
    """The start date and the same point 3, 6, ... months later (month ends stay month ends)."""
    start_is_month_end = start.day == calendar.monthrange(start.year, start.month)[1]
    dates = []
    for k in range(quarters + 1):
        month0 = start.month - 1 + 3 * k
        year, month = start.year + month0 // 12, month0 % 12 + 1
        last = calendar.monthrange(year, month)[1]
        dates.append(dt.date(year, month, last if start_is_month_end else min(start.day, last)))
    return dates


def census_dates(start: dt.date, end: dt.date) -> list[dt.date]:
    """School census days in (start, end]: spring (3rd Thursday of January), summer (3rd
    Thursday of May), autumn (1st Thursday of October)."""
    found = []
    for year in range(start.year, end.year + 1):
        for month, nth in ((1, 3), (5, 3), (10, 1)):
            day = _nth_thursday(year, month, nth)
            if start < day <= end:
                found.append(day)
    return sorted(found)


def _nth_thursday(year: int, month: int, nth: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (calendar.THURSDAY - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 7 * (nth - 1))


def date_parts(days: np.ndarray):
    """Year, month, day arrays of datetime64[D] values."""
    years = days.astype("M8[Y]").astype(np.int64) + 1970
    months = days.astype("M8[M]").astype(np.int64) % 12 + 1
    mdays = (days - days.astype("M8[M]").astype("M8[D]")).astype(np.int64) + 1
    return years, months, mdays


def age_on(dob: np.ndarray, on) -> np.ndarray:
    """Completed years of age on date(s) `on` (exact, birthdays included)."""
    y, m, d = date_parts(np.asarray(dob, dtype="M8[D]"))
    oy, om, od = date_parts(np.atleast_1d(np.asarray(on, dtype="M8[D]")))
    before_birthday = (om < m) | ((om == m) & (od < d))
    return (oy - y - before_birthday).astype(np.int64)


def random_days_between(rng: np.random.Generator, t0, t1, n: int) -> np.ndarray:
    """Uniform dates in (t0, t1]."""
    span = int((as_day(t1) - as_day(t0)) / DAY)
    return as_day(t0) + rng.integers(1, span + 1, n) * DAY


def days_to_offset(days: np.ndarray) -> np.ndarray:
    """Float day counts (lags) to timedelta64[D], rounded."""
    return np.round(days).astype(np.int64) * DAY


def years_between(t0, t1) -> float:
    return float((as_day(t1) - as_day(t0)) / DAY) / DAYS_PER_YEAR

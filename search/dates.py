"""Dates in search filters (--after/--before): ISO 8601 prefixes that must be real dates.

A filter date is compared as a prefix with the stored `taken_at`, so `2019-13` would match
nothing and `2019-02-30` the wrong photos, silently: both are refused here instead.

And dates in a query's words (`date_phrase`, for search/understand.py, whose docstring gives
the rules): "last summer", "March 2021", "2019" -> a [start, end) range of days.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from indexer.errors import UsageError

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


def parse_date(value: str | None, option: str) -> str | None:
    """Validate a --after/--before value: YYYY, YYYY-MM, YYYY-MM-DD (or a longer ISO prefix).
    It is compared as a prefix with the stored ISO 8601 `taken_at`, so it must be a real date:
    `2019-13` or `2019-02-30` would silently match nothing (or the wrong year) as a string."""
    if value is None:
        return None
    v = value.strip().replace(" ", "T")
    if not _DATE.match(v):
        raise UsageError(f"{option} {value!r}: use YYYY, YYYY-MM or YYYY-MM-DD")
    from datetime import datetime

    # Complete the prefix with the earliest value of each missing part, then let datetime judge
    # the month, the day of that month, the hour and the minute.
    full = v + "0001-01-01T00:00:00"[len(v) :]
    try:
        datetime.fromisoformat(full)
    except ValueError as e:
        raise UsageError(f"{option} {value!r} is not a real date ({e})") from None
    return v


def date_range_warning(after: str | None, before: str | None) -> str | None:
    """A warning when --after is not before --before: such a range can match nothing."""
    if after is None or before is None:
        return None
    # Compare as instants, each prefix completed with its earliest moment.
    a = after + "0001-01-01T00:00:00"[len(after) :]
    b = before + "0001-01-01T00:00:00"[len(before) :]
    if a >= b:
        return f"--after {after} is not before --before {before}: no photo can match"
    return None


# ------------------------------------------------------------------- dates in a query
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month


def _month_start(year: int, month: int) -> date:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1)


def _season(year: int, first_month: int) -> tuple[date, date]:
    start = _month_start(year, first_month)
    return start, _month_start(year, first_month + 3)


def _latest_ended(make: Callable[[int], tuple[date, date]], today: date) -> tuple[date, date]:
    """The latest occurrence (by year) of a yearly period that ended on or before today."""
    for year in range(today.year, today.year - 3, -1):
        start, end = make(year)
        if end <= today:
            return start, end
    raise AssertionError("a yearly period ends within two years")


def _containing_or_this_year(
    make: Callable[[int], tuple[date, date]], today: date
) -> tuple[date, date]:
    for year in (today.year - 1, today.year):
        start, end = make(year)
        if start <= today < end:
            return start, end
    return make(today.year)


def _yearly(make: Callable[[int], tuple[date, date]], last: bool, today: date):
    return _latest_ended(make, today) if last else _containing_or_this_year(make, today)


def _is_year(word: str) -> bool:
    return len(word) == 4 and word.isdigit() and 1800 <= int(word) <= 2199


_ISO = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
_YEARS = re.compile(r"^(\d{4})[-–](\d{4})$")  # 2018-2020, 2018–2020
_DECADE = re.compile(r"^(\d{3})0s$")
_N_AGO = re.compile(r"^\d{1,3}$")


def date_phrase(
    words: Sequence[str], raw: str, today: date, has_photos: Callable[[str, str], bool]
) -> tuple[int, date, date] | None:
    """(words used, start, end: exclusive) of a date phrase at the start of `words` (folded,
    as search/understand.py compares them; `raw`: the first one as typed), or None.
    `has_photos(after, before)` says whether a bare year or decade is a date in this index."""
    a, b, c = (list(words[:3]) + ["", "", ""])[:3]
    if a == "yesterday":
        return 1, today - timedelta(days=1), today
    if a == "today":
        return 1, today, today + timedelta(days=1)
    if a == "past" and b in ("year", "month", "week"):
        days = {"year": 365, "month": 30, "week": 7}[b]  # a rolling window, unlike "last"
        return 2, today - timedelta(days=days), today + timedelta(days=1)
    if a in ("last", "this", "past") and b:
        last = a != "this"
        if b == "year":
            y = today.year - 1 if last else today.year
            return 2, date(y, 1, 1), date(y + 1, 1, 1)
        if b == "month":
            start = _month_start(today.year, today.month - (1 if last else 0))
            return 2, start, _month_start(start.year, start.month + 1)
        if b == "week":
            monday = today - timedelta(days=today.weekday()) - timedelta(weeks=1 if last else 0)
            return 2, monday, monday + timedelta(weeks=1)
        if b in SEASONS:
            return 2, *_yearly(lambda y: _season(y, SEASONS[b]), last, today)
        if b in MONTHS and (len(b) > 3 or b == "may") and a != "past":
            m = MONTHS[b]
            return 2, *_yearly(lambda y: (date(y, m, 1), _month_start(y, m + 1)), last, today)
        if last and _N_AGO.match(b) and c in ("days", "weeks", "months", "years") and int(b) > 0:
            n = int(b)
            if c == "days":
                start = today - timedelta(days=n)
            elif c == "weeks":
                start = today - timedelta(weeks=n)
            elif c == "months":
                start = _month_start(today.year, today.month - n).replace(day=min(today.day, 28))
            else:
                start = date(today.year - n, today.month, min(today.day, 28))
            return 3, start, today + timedelta(days=1)
    if _N_AGO.match(a) and b in ("year", "years") and c == "ago" and int(a) > 0:
        y = today.year - int(a)
        return 3, date(y, 1, 1), date(y + 1, 1, 1)
    years = _YEARS.match(raw.strip(".,;:!?()"))
    span = (1, years[1], years[2]) if years else None
    if _is_year(a) and b in ("to", "until", "through") and _is_year(c):
        span = (3, a, c)
    if span and _is_year(span[1]) and _is_year(span[2]) and span[1] < span[2]:
        start, end = date(int(span[1]), 1, 1), date(int(span[2]) + 1, 1, 1)
        if has_photos(start.isoformat(), end.isoformat()):
            return span[0], start, end
    if a in SEASONS and _is_year(b):
        start, end = _season(int(b), SEASONS[a])
        return 2, start, end
    if a in MONTHS and _is_year(b):
        m = MONTHS[a]
        return 2, date(int(b), m, 1), _month_start(int(b), m + 1)
    m = _ISO.match(raw.strip(".,;:!?()"))
    if m:
        year, month, day = int(m[1]), int(m[2]), m[3]
        try:
            if day is None:
                return 1, date(year, month, 1), _month_start(year, month + 1)
            d = date(year, month, int(day))
            return 1, d, d + timedelta(days=1)
        except ValueError:
            return None  # "2019-13": not a date; stays text
    if _is_year(a):
        start, end = date(int(a), 1, 1), date(int(a) + 1, 1, 1)
        return (1, start, end) if has_photos(start.isoformat(), end.isoformat()) else None
    m = _DECADE.match(a)
    if m:
        start = date(int(m[1]) * 10, 1, 1)
        end = date(start.year + 10, 1, 1)
        return (1, start, end) if has_photos(start.isoformat(), end.isoformat()) else None
    return None

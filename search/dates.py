"""Dates in search filters (--after/--before): ISO 8601 prefixes that must be real dates.

A filter date is compared as a prefix with the stored `taken_at`, so `2019-13` would match
nothing and `2019-02-30` the wrong photos, silently: both are refused here instead.
"""

from __future__ import annotations

import re

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

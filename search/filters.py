"""A search's filters from what a person typed: the CLI's --in/--after/--before/--camera/--tag/
--place options and the gallery's query parameters of the same names become one FileFilter."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from indexer.errors import UsageError
from indexer.store.queries import FileFilter
from search.dates import date_range_warning, parse_date

# Most tags or place names one filter may hold. Each adds one condition to the SQL query, and
# SQLite refuses a query deeper than 1,000 ("Expression tree is too large"); a photo carries a
# handful of tags and a place has three names, so 100 is far past any real search.
MAX_VALUES = 100


def file_filter(
    folder: str | os.PathLike | None = None,
    after: str | None = None,
    before: str | None = None,
    camera: str | None = None,
    tags: Iterable[str] | None = None,
    place: str | None = None,
    *,
    prefix: str = "--",
    warn: Callable[[str], None] | None = None,
) -> FileFilter:
    """The filter; UsageError for a date that is not one, or more than MAX_VALUES tags or place
    names. `prefix` + a field's name is how messages name it (`--after` on the command line,
    `after` in a URL). `warn`, when given, gets what is allowed but likely a mistake: a folder
    that does not exist, a date range that can match nothing."""
    if warn is not None and folder is not None and not os.path.isdir(folder):
        warn(f"{prefix}in {os.fspath(folder)}: no such folder")
    tags = tuple(t.strip() for t in tags or () if t.strip())
    # "Paris, France": a place called both (the city, its country)
    places = tuple(p.strip() for p in (place or "").split(",") if p.strip())
    for name, values in ((f"{prefix}tag", tags), (f"{prefix}place", places)):
        if len(values) > MAX_VALUES:
            raise UsageError(f"{name} takes at most {MAX_VALUES} values (got {len(values)})")
    flt = FileFilter(
        # abspath, not resolve: stored paths are absolute with symlinks kept, as the user typed.
        folder=os.path.abspath(folder) if folder is not None else None,
        after=parse_date(after, f"{prefix}after"),
        before=parse_date(before, f"{prefix}before"),
        camera=camera.strip() if camera and camera.strip() else None,
        tags=tags,
        place=places,
    )
    if warn is not None:
        warning = date_range_warning(flt.after, flt.before)
        if warning:
            warn(warning)
    return flt

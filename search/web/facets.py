"""The gallery's ways in: the library's folders, places, tags, cameras and years, each with how
many photos it holds and the filter-only search that shows them (a gallery URL's query
parameters, the CLI's --in, --place, --tag, --camera, --after/--before)."""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field

from indexer.store import facets as counts
from indexer.store.roots import root_folders

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Way:
    """One way in: what it is called, how many photos it holds, its search's parameters."""

    label: str
    count: int
    params: tuple[tuple[str, str], ...]
    depth: int = 0  # a folder's depth below its root (0: the root)
    title: str = ""  # what a tooltip says: a root's full path


@dataclass
class Facets:
    folders: list[Way] = field(default_factory=list)
    places: list[Way] = field(default_factory=list)
    tags: list[Way] = field(default_factory=list)
    cameras: list[Way] = field(default_factory=list)
    years: list[Way] = field(default_factory=list)
    months: list[Way] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.folders or self.places or self.tags or self.cameras or self.years)


def facets(conn: sqlite3.Connection) -> Facets:
    """Every way into the library the database at `conn` holds."""
    # (a hand-edited or foreign row's taken_at that is no ISO date is in no month)
    months = [(m, n) for m, n in counts.month_counts(conn) if MONTH.fullmatch(m)]
    years: dict[str, int] = {}
    for month, n in months:
        years[month[:4]] = years.get(month[:4], 0) + n
    return Facets(
        folders=folder_ways(counts.folder_counts(conn), root_folders(conn)),
        places=[Way(label, n, (("place", label),)) for label, _, n in counts.place_counts(conn)],
        tags=[Way(tag, n, (("tag", tag),)) for tag, n in counts.tag_counts(conn)],
        cameras=[_camera(make, model, n) for make, model, n in counts.camera_counts(conn)],
        years=[Way(y, n, (("after", y), ("before", str(int(y) + 1)))) for y, n in years.items()],
        months=[Way(m, n, month_range(m)) for m, n in months],
    )


def month_range(month: str) -> tuple[tuple[str, str], ...]:
    """The after/before parameters of one month ("2019-12": after 2019-12, before 2020-01)."""
    year, m = int(month[:4]), int(month[5:7])
    following = f"{year + 1:04d}-01" if m == 12 else f"{year:04d}-{m + 1:02d}"
    return (("after", month), ("before", following))


def _camera(make: str | None, model: str | None, n: int) -> Way:
    # Models often repeat the make ("Canon" "Canon EOS 80D"): shown once, as the camera filter
    # (a substring of "make model") still finds it.
    name = (
        model
        if make and model and model.startswith(make)
        else " ".join(x for x in (make, model) if x)
    )
    return Way(name, n, (("camera", name),))


def folder_ways(direct: list[tuple[str, int]], roots: list[str]) -> list[Way]:
    """Every folder from a root down to each folder holding photos, with the photos anywhere
    below it, in path order, each labelled by its own name (a root's full path in its title;
    depth says where a folder is). Folders under no root are listed by full path."""
    below: dict[str, int] = {}
    top: dict[str, str] = {}  # folder -> its root (itself when under none)
    for folder, n in direct:
        root = _root_of(folder, roots)
        f = folder
        while True:
            below[f] = below.get(f, 0) + n
            top[f] = root if root is not None else folder
            if root is None or f == root:
                break
            parent = os.path.dirname(f)
            if parent == f:  # a root that is no prefix of its folder's path (cannot happen)
                break
            f = parent
    ways = []
    for folder in sorted(below, key=lambda f: f.split(os.sep)):
        root = top[folder]
        n = below[folder]
        if folder == root:
            name = os.path.basename(folder.rstrip(os.sep)) or folder
            ways.append(Way(name, n, (("in", folder),), title=folder))
        else:
            depth = folder[len(root.rstrip(os.sep)) :].count(os.sep)
            ways.append(Way(os.path.basename(folder), n, (("in", folder),), depth))
    return ways


def _root_of(folder: str, roots: list[str]) -> str | None:
    found = [r for r in roots if folder == r or folder.startswith(r.rstrip(os.sep) + os.sep)]
    return max(found, key=len) if found else None

"""The library's facets: how many indexed files each folder, place, tag, camera and month holds,
for the gallery's ways in (browse by folder, place, tag, camera, date). Read-only.

Counts are of files (a video once, copies each), as `imgcap status` counts photos. Each count is
one GROUP BY over an indexed column (folder, place_id, camera, taken_at) or, for tags, over the
tags table: a few ms at 10,000 photos (BENCHMARKS.md). Databases from before the tag and place
tables (schemas 4, 5) have no tags or places: those counts are empty.
"""

from __future__ import annotations

import sqlite3

from indexer.store.errors import translated


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]
        ).fetchone()
    )


@translated
def folder_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(folder, files directly in it), by folder."""
    rows = conn.execute(
        "SELECT folder, count(*) FROM files WHERE folder IS NOT NULL"
        " GROUP BY folder ORDER BY folder"
    )
    return [(f, n) for f, n in rows]


@translated
def place_counts(conn: sqlite3.Connection) -> list[tuple[str, str | None, int]]:
    """(label, city, files) of every place some file is in, most files first."""
    if "place_id" not in {r[1] for r in conn.execute("PRAGMA table_info(files)")}:
        return []
    rows = conn.execute(
        "SELECT p.label, p.city, count(*) AS n FROM files f JOIN places p ON p.id = f.place_id"
        " GROUP BY p.id ORDER BY n DESC, p.label"
    )
    return [(label, city, n) for label, city, n in rows]


@translated
def tag_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(tag, files carrying it) most files first; tags that differ only in case count as one,
    under the spelling most files use (capitals first in a tie: "Grandma", not "grandma")."""
    if not _has_table(conn, "photo_tags"):
        return []
    rows = conn.execute(
        "SELECT j.value, count(*) FROM photo_tags t JOIN files f ON f.path = t.path,"
        " json_each(t.tags) j GROUP BY j.value"
    )
    counts: dict[str, int] = {}
    spelling: dict[str, tuple[int, str]] = {}  # (-files, tag): the least is the one shown
    for tag, n in rows:
        if not isinstance(tag, str) or not tag.strip():
            continue
        key = tag.casefold()
        counts[key] = counts.get(key, 0) + n
        spelling[key] = min(spelling.get(key, (-n, tag)), (-n, tag))
    return sorted(((spelling[k][1], n) for k, n in counts.items()), key=lambda x: (-x[1], x[0]))


@translated
def camera_counts(conn: sqlite3.Connection) -> list[tuple[str | None, str | None, int]]:
    """(make, model, files) of every camera, most files first."""
    rows = conn.execute(
        "SELECT camera_make, camera_model, count(*) AS n FROM files"
        " WHERE camera_make IS NOT NULL OR camera_model IS NOT NULL"
        " GROUP BY camera_make, camera_model ORDER BY n DESC, camera_make, camera_model"
    )
    return [(make, model, n) for make, model, n in rows]


@translated
def month_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """("2019-06", files taken that month), newest first; undated files are in none."""
    rows = conn.execute(
        "SELECT substr(taken_at, 1, 7) AS m, count(*) FROM files"
        " WHERE taken_at IS NOT NULL AND taken_at >= '0001' GROUP BY m ORDER BY m DESC"
    )
    return [(m, n) for m, n in rows]

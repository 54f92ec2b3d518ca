"""What the index holds, in the words a query may use (search/understand.py): whether photos
were taken in a date range, the indexed folders, the cameras, the media types. Read-only."""

from __future__ import annotations

import sqlite3

from indexer.store.errors import translated


@translated
def has_photos_between(conn: sqlite3.Connection, after: str, before: str) -> bool:
    """Whether some photo was taken in [after, before) (ISO prefixes); an index probe on
    files.taken_at from schema 5 on."""
    row = conn.execute(
        "SELECT 1 FROM files WHERE taken_at >= ? AND taken_at < ? LIMIT 1", [after, before]
    ).fetchone()
    return row is not None


@translated
def folders(conn: sqlite3.Connection) -> list[str]:
    """Every folder that holds an indexed photo. A skip scan of the folder index (one probe per
    distinct folder) instead of reading all its entries: 1,500 folders of 100k photos cost a
    few ms, not a scan of 100k."""
    rows = conn.execute(
        "WITH RECURSIVE d(x) AS (SELECT min(folder) FROM files"
        " UNION ALL SELECT (SELECT min(folder) FROM files WHERE folder > d.x) FROM d"
        " WHERE d.x IS NOT NULL) SELECT x FROM d WHERE x IS NOT NULL"
    )
    return [f for (f,) in rows if f]


@translated
def cameras(conn: sqlite3.Connection) -> list[tuple[str | None, str | None]]:
    """Every (make, model) of the indexed photos: one probe per distinct pair of the
    (camera_make, camera_model) index (schema 5), as for folders."""
    if not _has_index(conn, "idx_files_camera_make_camera_model"):
        return conn.execute(
            "SELECT DISTINCT camera_make, camera_model FROM files"
            " WHERE camera_make IS NOT NULL OR camera_model IS NOT NULL"
        ).fetchall()
    out: list[tuple[str | None, str | None]] = []
    # models of photos without a make: the index's NULL-make prefix
    out += conn.execute(
        "SELECT DISTINCT camera_model FROM files"
        " WHERE camera_make IS NULL AND camera_model IS NOT NULL"
    ).fetchall()
    out = [(None, m) for (m,) in out]
    first = (
        "SELECT camera_make, camera_model FROM files WHERE {}"
        " ORDER BY camera_make, camera_model LIMIT 1"
    )
    row = conn.execute(first.format("camera_make IS NOT NULL")).fetchone()
    while row is not None:
        out.append(row)
        make, model = row
        # the make's next model (NULL sorts first), else the next make's first pair
        same = (
            "camera_make = ? AND camera_model IS NOT NULL"
            if model is None
            else ("camera_make = ? AND camera_model > ?")
        )
        args = [make] if model is None else [make, model]
        row = conn.execute(first.format(same), args).fetchone()
        if row is None:
            row = conn.execute(first.format("camera_make > ?"), [make]).fetchone()
    return out


def _has_index(conn: sqlite3.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [name]).fetchone())


@translated
def media_types(conn: sqlite3.Connection) -> set[str]:
    """{"video"} when the index holds videos (keyframes, schema 7), else empty."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'video_frames'").fetchone():
        return set()
    return {"video"} if conn.execute("SELECT 1 FROM video_frames LIMIT 1").fetchone() else set()

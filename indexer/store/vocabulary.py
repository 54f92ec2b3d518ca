"""What the index holds, in the words a query may use (search/understand.py): whether photos
were taken in a date range, the indexed folders, the cameras, the media types. Read-only."""

from __future__ import annotations

import sqlite3

from indexer.store.connection import translated


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
    """Every folder that holds an indexed photo (from the folder index)."""
    return [f for (f,) in conn.execute("SELECT DISTINCT folder FROM files") if f]


@translated
def cameras(conn: sqlite3.Connection) -> list[tuple[str | None, str | None]]:
    """Every (make, model) of the indexed photos."""
    return conn.execute(
        "SELECT DISTINCT camera_make, camera_model FROM files"
        " WHERE camera_make IS NOT NULL OR camera_model IS NOT NULL"
    ).fetchall()


@translated
def media_types(conn: sqlite3.Connection) -> set[str]:
    """{"video"} when the index holds videos (keyframes, schema 7), else empty."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'video_frames'").fetchone():
        return set()
    return {"video"} if conn.execute("SELECT 1 FROM video_frames LIMIT 1").fetchone() else set()

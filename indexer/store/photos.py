"""Reads by file id for `imgcap serve`: one photo, ids of search hits, stored vectors, failures.

The web gallery names photos by their `files.id` only (never by a path from a URL), so every
lookup here starts from an id the database handed out. Read-only connections, like queries.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.store import frames
from indexer.store.errors import translated
from indexer.store.records import rows_in
from indexer.store.user_captions import caption_review

_PHOTO_KEYS = (
    "id", "path", "size", "mtime_ns", "content_hash", "width", "height", "taken_at",
    "camera_make", "camera_model", "gps_lat", "gps_lon", "indexed_at",
)  # fmt: skip


def user_caption_columns(conn: sqlite3.Connection) -> bool:
    """Whether the database has the user-caption columns (schema version 3 and later)."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    return "generated_caption" in cols


@translated
def photo(conn: sqlite3.Connection, file_id: int, model: str) -> dict[str, Any] | None:
    """One indexed file and its result for `model` (caption fields None when it has none)."""
    cols = ", ".join(f"f.{k}" for k in _PHOTO_KEYS)
    row = conn.execute(f"SELECT {cols} FROM files f WHERE f.id = ?", [int(file_id)]).fetchone()
    if row is None:
        return None
    out = dict(zip(_PHOTO_KEYS, row, strict=True))
    extra = ", r.generated_caption" if user_caption_columns(conn) else ", NULL"
    res = conn.execute(
        f"SELECT r.id, r.caption{extra} FROM results r WHERE r.content_hash = ? AND r.model = ?",
        [out["content_hash"], model],
    ).fetchone()
    if res is None and frames.exists(conn):
        # A video: its first keyframe stands for it (a person's caption is on every keyframe).
        res = conn.execute(
            f"SELECT r.id, r.caption{extra} FROM video_frames vf CROSS JOIN results r"
            " ON r.content_hash = vf.frame_key WHERE vf.video_hash = ? AND r.model = ?"
            " ORDER BY vf.at_ms LIMIT 1",
            [out["content_hash"], model],
        ).fetchone()
    out["model"] = model
    out["result_id"] = res[0] if res else None
    out["caption"] = res[1] if res else None
    # An edited result keeps the model's own caption aside; NULL there means it was never edited.
    out["generated_caption"] = (res[2] if res[2] is not None else res[1]) if res else None
    out["caption_source"] = None if res is None else ("user" if res[2] is not None else "generated")
    out["caption_review"] = caption_review(conn, out["result_id"])  # pixels changed since
    return out


@translated
def keyframes(conn: sqlite3.Connection, content_hash: str, model: str) -> list[dict[str, Any]]:
    """The keyframes of the video with this content that have `model`'s result, in time order:
    at_ms, result_id, caption (what search shows: the person's when they captioned the video)
    and generated_caption (the model's own for that moment). Empty for a photo."""
    if not frames.exists(conn):
        return []
    generated = "r.generated_caption" if user_caption_columns(conn) else "NULL"
    rows = conn.execute(
        f"SELECT vf.at_ms, r.id, r.caption, {generated} FROM video_frames vf CROSS JOIN results r"
        " ON r.content_hash = vf.frame_key WHERE vf.video_hash = ? AND r.model = ?"
        " ORDER BY vf.at_ms",
        [content_hash, model],
    )
    return [
        {"at_ms": at, "result_id": rid, "caption": cap, "generated_caption": gen or cap}
        for at, rid, cap, gen in rows
    ]


@translated
def file_ids(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, tuple[int, str]]:
    """path -> (file id, content hash) for the given indexed paths (missing ones are left out)."""
    sql = "SELECT path, id, content_hash FROM files WHERE path IN ({marks})"
    return {p: (int(i), h) for p, i, h in rows_in(conn, sql, paths)}


@translated
def caption_sources(conn: sqlite3.Connection, hashes: Sequence[str], model: str) -> dict[str, str]:
    """content hash -> "generated" | "user" for the model's results of these contents (all
    "generated" before schema version 3)."""
    if not user_caption_columns(conn):
        return {h: "generated" for h in hashes}
    sql = (
        "SELECT content_hash, generated_caption IS NOT NULL FROM results"
        " WHERE model = ? AND content_hash IN ({marks})"
    )
    rows = list(rows_in(conn, sql, hashes, before=[model]))
    if frames.exists(conn):  # a video's caption is the person's when its keyframes' are
        sql = (
            "SELECT vf.video_hash, max(r.generated_caption IS NOT NULL) FROM video_frames vf"
            " CROSS JOIN results r ON r.content_hash = vf.frame_key AND r.model = ?"
            " WHERE vf.video_hash IN ({marks}) GROUP BY vf.video_hash"
        )
        rows += rows_in(conn, sql, hashes, before=[model])
    return {h: "user" if edited else "generated" for h, edited in rows}


@translated
def image_vector(conn: sqlite3.Connection, result_id: int) -> np.ndarray | None:
    """The stored raw CLIP image vector (D,) of one result (for "more like this")."""
    row = conn.execute("SELECT image_vec FROM results WHERE id = ?", [int(result_id)]).fetchone()
    return None if row is None else np.frombuffer(row[0], dtype="<f4").copy()


@translated
def failures(conn: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """Recorded failures by path (at most `limit`), for the status page."""
    keys = ("path", "reason", "size", "mtime_ns", "failed_at", "model")
    rows = conn.execute(
        f"SELECT {', '.join(keys)} FROM failures ORDER BY path LIMIT ?", [int(limit)]
    ).fetchall()
    return [dict(zip(keys, r, strict=True)) for r in rows]


@translated
def failure_reason(conn: sqlite3.Connection, path: str) -> str | None:
    """Why the file at `path` could not be indexed (None when no failure is recorded)."""
    row = conn.execute("SELECT reason FROM failures WHERE path = ?", [path]).fetchone()
    return None if row is None else row[0]


@translated
def running_since(conn: sqlite3.Connection) -> str | None:
    """When the index run in progress started (None when no run is in progress)."""
    row = conn.execute(
        "SELECT started_at FROM runs WHERE status = 'running' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


@translated
def edited_result_ids(conn: sqlite3.Connection, model: str) -> set[int]:
    """Ids of the model's results whose caption a person wrote (export's `source` column)."""
    if not user_caption_columns(conn):
        return set()
    rows = conn.execute(
        "SELECT id FROM results WHERE model = ? AND generated_caption IS NOT NULL", [model]
    )
    return {int(i) for (i,) in rows}

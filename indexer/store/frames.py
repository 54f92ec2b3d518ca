"""Video keyframes (schema 7: `video_frames`, `videos`).

A video is one `files` row (its path, size, mtime and content hash, like a photo) whose pictures
are its keyframes. Each keyframe is a `results` row like a photo's, under a content key of its
own, "<video hash>@<milliseconds>" (`frame_key`), so FAISS, FTS, user captions and reuse by
content treat it as one more picture. `video_frames` maps a keyframe's key to its video and
time; a search or export reaches the video's file through it.

`videos` has one row per (video content hash, model) once EVERY keyframe has that model's result:
change detection counts such a video as done (`done_hashes`). Keyframes are stored batch by batch
with the video's `files` row, so a run killed half-way through a long video keeps the keyframes
it captioned; the next run decodes the video again and skips their model work.

Keyframe rows and keyframe results go when no file has their video's content any more
(`collect`, called by Store.collect_garbage).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from indexer.store.records import rows_in


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One keyframe of a video, as the pipeline writes it."""

    video_hash: str  # files.content_hash of the video
    at_ms: int  # time in the video, milliseconds from its start

    @property
    def key(self) -> str:
        return frame_key(self.video_hash, self.at_ms)


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """A video whose keyframes all have a result for the batch's model."""

    content_hash: str
    keyframes: int
    duration: float | None  # seconds, from the container


def frame_key(video_hash: str, at_ms: int) -> str:
    """The content key a keyframe's result is stored under."""
    return f"{video_hash}@{int(at_ms)}"


# Joins from a video's keyframes to their results are written `video_frames vf CROSS JOIN
# results r`: SQLite keeps that order, keyframes by video_hash first, then each result by its
# (content_hash, model) key. Left to choose without statistics, it walked every result of the
# model instead (~40 ms at 100,000 photos on each gallery page, for libraries with no video).


def create(db: Database) -> None:
    """The tables (called by the schema migration); nothing where they exist."""
    if not db["video_frames"].exists():
        db["video_frames"].create(
            {"frame_key": str, "video_hash": str, "at_ms": int},
            pk="frame_key",
            not_null={"video_hash", "at_ms"},
        )
        db["video_frames"].create_index(["video_hash"])
    if not db["videos"].exists():
        db["videos"].create(
            {
                "content_hash": str,
                "model": str,
                "keyframes": int,
                "duration": float,
                "indexed_at": str,
            },
            pk=("content_hash", "model"),
            not_null={"keyframes"},
        )


def exists(conn: sqlite3.Connection) -> bool:
    """Whether the database has the video tables (readers accept older databases)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'video_frames'").fetchone()
    return row is not None


def write(
    conn: sqlite3.Connection,
    model: str,
    frames: Sequence[FrameRecord],
    videos: Sequence[VideoRecord],
    stamp: str,
) -> None:
    """Keyframes and finished videos of one batch (the caller holds its transaction)."""
    conn.executemany(
        "INSERT INTO video_frames (frame_key, video_hash, at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (frame_key) DO NOTHING",
        [(f.key, f.video_hash, int(f.at_ms)) for f in frames],
    )
    conn.executemany(
        "INSERT INTO videos (content_hash, model, keyframes, duration, indexed_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (content_hash, model) DO UPDATE SET"
        " keyframes = excluded.keyframes, duration = excluded.duration,"
        " indexed_at = excluded.indexed_at",
        [(v.content_hash, model, v.keyframes, v.duration, stamp) for v in videos],
    )


def done_hashes(conn: sqlite3.Connection, model: str) -> set[str]:
    """Content hashes of videos whose every keyframe has `model`'s result."""
    rows = conn.execute("SELECT content_hash FROM videos WHERE model = ?", [model])
    return {h for (h,) in rows}


def is_video(conn: sqlite3.Connection, content_hash: str) -> bool:
    """Whether this content is a video with keyframes stored."""
    row = conn.execute(
        "SELECT 1 FROM video_frames WHERE video_hash = ? LIMIT 1", [content_hash]
    ).fetchone()
    return row is not None


def keyframe_times(conn: sqlite3.Connection, video_hash: str) -> set[int]:
    """The stored keyframe times (ms) of the video with this content, any model."""
    if not exists(conn):
        return set()
    rows = conn.execute("SELECT at_ms FROM video_frames WHERE video_hash = ?", [video_hash])
    return {int(at) for (at,) in rows}


def models_of_videos(conn: sqlite3.Connection, hashes: Iterable[str]) -> set[str]:
    """Models with results for keyframes of these videos (whose searchable files changed)."""
    sql = (
        "SELECT DISTINCT r.model FROM video_frames vf CROSS JOIN results r"
        " ON r.content_hash = vf.frame_key WHERE vf.video_hash IN ({marks})"
    )
    return {m for (m,) in rows_in(conn, sql, hashes)}


def collect(conn: sqlite3.Connection) -> None:
    """Forget the keyframes and finished-marks of videos no file has any more (the caller
    holds the transaction, then deletes results no file or keyframe references)."""
    conn.execute(
        "DELETE FROM video_frames WHERE video_hash NOT IN (SELECT content_hash FROM files)"
    )
    conn.execute("DELETE FROM videos WHERE content_hash NOT IN (SELECT content_hash FROM files)")


# SQL pieces for the read side (indexer/store/queries.py): a result reaches its file directly
# (a photo) or through its keyframe row (a video).
RESULT_FILE_JOIN = (
    "LEFT JOIN video_frames vf ON vf.frame_key = r.content_hash"
    " JOIN files f ON f.content_hash = coalesce(vf.video_hash, r.content_hash)"
)
FILE_RESULT_JOIN = (
    "LEFT JOIN video_frames vf ON vf.video_hash = f.content_hash"
    " JOIN results r ON r.content_hash = coalesce(vf.frame_key, f.content_hash)"
)


def hashes_sql(where: str, params: list) -> tuple[str, list]:
    """A SELECT of the result content keys of the files passing `where` (on `files f`): the
    files' own hashes and their keyframes' keys."""
    return (
        f"SELECT f.content_hash FROM files f WHERE {where} UNION ALL"
        " SELECT vf.frame_key FROM video_frames vf JOIN files f"
        f" ON f.content_hash = vf.video_hash WHERE {where}",
        [*params, *params],
    )


def video_condition(alias: str = "f") -> str:
    """SQL condition: the `files` row `alias` is a video indexed by keyframe."""
    return f"EXISTS (SELECT 1 FROM video_frames vf2 WHERE vf2.video_hash = {alias}.content_hash)"

"""Captions written by the user: they win over the generated ones, which are kept beside them.

An edited result holds the user's text in `results.caption` and its CLIP text vector in
`results.caption_vec`, so everything that reads captions (keyword FTS through the table's
triggers, the caption signal of the FAISS cache, search output, export) sees the edit at once
with no second code path. The model's own caption and vector move to `generated_caption` and
`generated_caption_vec` (NULL = never edited), so clearing the edit restores them exactly.

Edits survive every later `imgcap index`: a result is never rewritten once stored (the pipeline
inserts with ON CONFLICT DO NOTHING), and it is keyed by content hash, so a moved, renamed or
duplicated photo keeps the caption (byte-identical copies share one result, so one caption: one
photo in two places). New bytes with the same pixels (tags edited elsewhere) get a copy of the
result, caption included (Store.reuse_by_pixels). When the pixels of an indexed path change,
the caption stays with the photo, the new generated caption is stored beneath it, and
`caption_review` records when, until a person sets or clears the caption again
(Store.write_batch; `imgcap status` and the gallery show it). An edit applies to one model's
result: the caption vector must come from the CLIP text tower that model's index uses, which
the caller computes (the store never loads models).

Used by `imgcap serve` (edit caption) and `imgcap caption-set`. The columns come from
schema.m003_user_captions and m009_pixel_hash (caption_review).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import StoreError, UsageError
from indexer.store.errors import store_error, translated
from indexer.store.records import now_iso, vec_to_blob

Target = str | int  # an indexed file's path (as stored: absolute) or its files.id

# The results that are a file's caption, given its content hash twice: a photo's own, or every
# keyframe's of a video. A person's caption of a video describes the whole video, so it goes on
# each keyframe: search shows it whichever moment matched, export's one row per video is that
# caption once, and clearing restores each keyframe's own generated caption.
_RESULTS_OF = (
    "content_hash IN (SELECT ? UNION ALL SELECT frame_key FROM video_frames WHERE video_hash = ?)"
)


def _translated_writes(fn):
    """sqlite3 errors of a write -> StoreError naming the database (first argument)."""
    import functools

    @functools.wraps(fn)
    def wrapper(db_path, *args, **kwargs):
        try:
            return fn(db_path, *args, **kwargs)
        except sqlite3.Error as e:
            raise store_error(e, db_path) from None

    return wrapper


@_translated_writes
def set_user_caption(
    db_path: Path, target: Target, model: str, text: str, caption_vec: np.ndarray
) -> str:
    """Make `text` the caption of the photo `target` for `model`; returns its content hash.

    `caption_vec` (D,) is the raw CLIP text vector of `text` from the model's own text tower.
    One short transaction: safe while `imgcap index` runs (SQLite serialises the writers)."""
    text = text.strip()
    if not text:
        raise UsageError("an empty caption: clear the edit instead to restore the generated one")
    vec = np.asarray(caption_vec, dtype=np.float32).reshape(-1)
    with _open(db_path) as s:
        h = _content_hash(s, target)
        row = s.db.execute(
            f"SELECT dim FROM results WHERE {_RESULTS_OF} AND model = ? LIMIT 1", [h, h, model]
        ).fetchone()
        if row is None:
            raise StoreError(f"{_name(target)} has no caption from model {model!r} to replace")
        if int(row[0]) != len(vec):
            raise StoreError(
                f"the caption vector has {len(vec)} values but {model!r} stores {row[0]}"
            )
        with s.db.atomic():
            s.db.execute(
                "UPDATE results SET generated_caption = coalesce(generated_caption, caption),"
                " generated_caption_vec = coalesce(generated_caption_vec, caption_vec),"
                " caption = ?, caption_vec = ?, caption_edited_at = ?, caption_review = NULL"
                f" WHERE {_RESULTS_OF} AND model = ?",
                [text, vec_to_blob(vec), now_iso(), h, h, model],
            )
            s._bump({model})  # new generation; the FAISS cache replaces this one vector
    return h


@_translated_writes
def clear_user_caption(db_path: Path, target: Target, model: str | None = None) -> bool:
    """Restore the generated caption (and vector) of `target` for `model` (None: every model).
    Returns whether there was an edit to clear."""
    with _open(db_path) as s:
        h = _content_hash(s, target)
        where, params = f"{_RESULTS_OF} AND generated_caption IS NOT NULL", [h, h]
        if model is not None:
            where, params = where + " AND model = ?", [h, h, model]
        with s.db.atomic():
            models = {
                m for (m,) in s.db.execute(f"SELECT model FROM results WHERE {where}", params)
            }
            s.db.execute(
                "UPDATE results SET caption = generated_caption,"
                " caption_vec = generated_caption_vec, generated_caption = NULL,"
                " generated_caption_vec = NULL, caption_edited_at = NULL,"
                f" caption_review = NULL WHERE {where}",
                params,
            )
            s._bump(models)
    return bool(models)


@translated
def user_captions(conn: sqlite3.Connection, model: str | None = None) -> list[dict[str, Any]]:
    """Every edited caption (one row per file), by path: path, model, caption,
    generated_caption, edited_at. Empty for databases older than schema version 3."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    if "generated_caption" not in cols:
        return []
    where, params = "r.generated_caption IS NOT NULL", []
    if model is not None:
        where, params = where + " AND r.model = ?", [model]
    rows = conn.execute(
        "SELECT f.path, r.model, r.caption, r.generated_caption, r.caption_edited_at"
        " FROM results r JOIN files f ON f.content_hash = r.content_hash"
        f" WHERE {where} ORDER BY f.path, r.model",
        params,
    ).fetchall()
    keys = ("path", "model", "caption", "generated_caption", "edited_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


@translated
def kept_caption_count(conn: sqlite3.Connection) -> int:
    """Captions a person wrote for content no indexed file has now (kept by collect_garbage,
    back when the same photo is indexed again)."""
    if "caption_edited_at" not in {row[1] for row in conn.execute("PRAGMA table_info(results)")}:
        return 0
    frame_keys = " AND content_hash NOT IN (SELECT frame_key FROM video_frames)"
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'video_frames'").fetchone():
        frame_keys = ""  # a database from before videos (schema 7)
    return conn.execute(
        "SELECT count(*) FROM results WHERE caption_edited_at IS NOT NULL"
        f" AND content_hash NOT IN (SELECT content_hash FROM files){frame_keys}"
    ).fetchone()[0]


@translated
def caption_review(conn: sqlite3.Connection, result_id: int | None) -> str | None:
    """When the pixels changed under the person's caption of result `result_id` (ISO time), or
    None: not marked, no result, or a database before schema version 9."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    if result_id is None or "caption_review" not in cols:
        return None
    row = conn.execute("SELECT caption_review FROM results WHERE id = ?", [result_id]).fetchone()
    return row[0] if row else None


@translated
def captions_to_review(conn: sqlite3.Connection, limit: int = 10) -> tuple[int, list[str]]:
    """(how many indexed photos have a person's caption whose pixels changed since it was
    written, the first `limit` of their paths). (0, []) before schema version 9."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    if "caption_review" not in cols:
        return 0, []
    marked = (
        "SELECT f.path FROM files f WHERE EXISTS (SELECT 1 FROM results r"
        " WHERE r.content_hash = f.content_hash AND r.caption_review IS NOT NULL)"
    )
    count = conn.execute(f"SELECT count(*) FROM ({marked})").fetchone()[0]
    paths = [p for (p,) in conn.execute(f"{marked} ORDER BY f.path LIMIT ?", [int(limit)])]
    return int(count), paths


# ------------------------------------------------------------------------------------ helpers
def _open(db_path: Path):
    from indexer.store.database import Store

    if not Path(db_path).is_file():
        raise StoreError(f"no database at {db_path} (run `imgcap index PATH` first)")
    return Store.open(Path(db_path))  # migrates an older database (adds the columns above)


def _name(target: Target) -> str:
    return f"photo {target}" if isinstance(target, int) else str(target)


def _content_hash(s, target: Target) -> str:
    try:
        if isinstance(target, int):
            row = s.db.execute("SELECT content_hash FROM files WHERE id = ?", [target]).fetchone()
        else:
            path = os.path.abspath(os.fspath(target))
            row = s.db.execute("SELECT content_hash FROM files WHERE path = ?", [path]).fetchone()
    except sqlite3.Error as e:
        raise store_error(e, s.path) from None
    if row is None:
        raise UsageError(f"{_name(target)} is not in the index")
    return row[0]

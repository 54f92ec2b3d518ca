"""Captions written by the user: they win over the generated ones, which are kept beside them.

An edited result holds the user's text in `results.caption` and its CLIP text vector in
`results.caption_vec`, so everything that reads captions (keyword FTS through the table's
triggers, the caption signal of the FAISS cache, search output, export) sees the edit at once
with no second code path. The model's own caption and vector move to `generated_caption` and
`generated_caption_vec` (NULL = never edited), so clearing the edit restores them exactly.

Edits survive every later `imgcap index`: a result is never rewritten once stored (the pipeline
inserts with ON CONFLICT DO NOTHING), and it is keyed by content hash, so a moved, renamed or
duplicated photo keeps the caption. A photo whose pixels change is new content and gets a new
generated caption. An edit applies to one model's result: the caption vector must come from the
CLIP text tower that model's index uses, which the caller computes (the store never loads
models).

Used by `imgcap serve` (edit caption) and `imgcap caption-set`. The columns come from
schema.m003_user_captions.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import StoreError, UsageError
from indexer.store import frames
from indexer.store.errors import store_error, translated
from indexer.store.records import now_iso, vec_to_blob

Target = str | int  # an indexed file's path (as stored: absolute) or its files.id


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
            "SELECT dim FROM results WHERE content_hash = ? AND model = ?", [h, model]
        ).fetchone()
        if row is None:
            if frames.exists(s.db.conn) and frames.is_video(s.db.conn, h):
                raise UsageError(
                    f"{_name(target)} is a video: its captions belong to its keyframes, and"
                    " editing them is not supported"
                )
            raise StoreError(f"{_name(target)} has no caption from model {model!r} to replace")
        if int(row[0]) != len(vec):
            raise StoreError(
                f"the caption vector has {len(vec)} values but {model!r} stores {row[0]}"
            )
        with s.db.atomic():
            s.db.execute(
                "UPDATE results SET generated_caption = coalesce(generated_caption, caption),"
                " generated_caption_vec = coalesce(generated_caption_vec, caption_vec),"
                " caption = ?, caption_vec = ?, caption_edited_at = ?"
                " WHERE content_hash = ? AND model = ?",
                [text, vec_to_blob(vec), now_iso(), h, model],
            )
            s._bump({model})  # new generation; the FAISS cache replaces this one vector
    return h


@_translated_writes
def clear_user_caption(db_path: Path, target: Target, model: str | None = None) -> bool:
    """Restore the generated caption (and vector) of `target` for `model` (None: every model).
    Returns whether there was an edit to clear."""
    with _open(db_path) as s:
        h = _content_hash(s, target)
        where, params = "content_hash = ? AND generated_caption IS NOT NULL", [h]
        if model is not None:
            where, params = where + " AND model = ?", [h, model]
        with s.db.atomic():
            models = {
                m for (m,) in s.db.execute(f"SELECT model FROM results WHERE {where}", params)
            }
            s.db.execute(
                "UPDATE results SET caption = generated_caption,"
                " caption_vec = generated_caption_vec, generated_caption = NULL,"
                f" generated_caption_vec = NULL, caption_edited_at = NULL WHERE {where}",
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

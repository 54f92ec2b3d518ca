"""What `imgcap write-back` reads and records: each photo's caption to write, and after an
embedded write, the photo's new size, mtime and content hash.

A photo rewritten by `--embed` has new bytes, so a new content hash; its results (every model's
caption and vectors, and a person's edit) move to that hash in the same transaction as the file
row, so the next `imgcap index` finds the file unchanged and re-captions nothing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from indexer.store.errors import translated


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def path_condition(paths: Sequence[str], alias: str = "f") -> tuple[str, list[Any]]:
    """SQL condition: the file is one of `paths` or below one of them (absolute paths)."""
    conds: list[str] = []
    params: list[Any] = []
    for p in paths:
        base = p.rstrip(os.sep) + os.sep
        # '0' is the character after '/', so [dir/, dir0) is exactly "below dir".
        conds.append(f"({alias}.path = ? OR ({alias}.path >= ? AND {alias}.path < ?))")
        params += [p, base, base[:-1] + chr(ord(os.sep) + 1)]
    return ("(" + " OR ".join(conds) + ")") if conds else "1", params


@translated
def captions_to_write(
    conn: sqlite3.Connection, model: str, paths: Sequence[str]
) -> list[dict[str, Any]]:
    """path, content_hash, size, mtime_ns, caption, source ("user" | "generated"), date (when
    the caption was made) of every indexed file
    under `paths` (all files when empty) that has a result for `model`, by path."""
    where, params = path_condition(paths)
    # Schema 3 (user captions) marks an edit by keeping the generated caption aside.
    has_edits = _has_column(conn, "results", "generated_caption")
    edited = "r.generated_caption IS NOT NULL" if has_edits else "0"
    date = "coalesce(r.caption_edited_at, r.created_at)" if has_edits else "r.created_at"
    # A result still waiting for its caption (pending_captions.py) has none to write yet.
    captioned = "1"
    if _has_column(conn, "results", "caption_pending"):
        captioned = f"(r.caption_pending IS NULL OR {edited})"
    rows = conn.execute(
        f"SELECT f.path, f.content_hash, f.size, f.mtime_ns, r.caption, {edited}, {date}"
        " FROM files f"
        " JOIN results r ON r.content_hash = f.content_hash AND r.model = ?"
        f" WHERE {where} AND {captioned} ORDER BY f.path",
        [model, *params],
    ).fetchall()
    keys = ("path", "content_hash", "size", "mtime_ns", "caption", "user", "date")
    out = [dict(zip(keys, row, strict=True)) for row in rows]
    for row in out:
        row["source"] = "user" if row.pop("user") else "generated"
    return out


@translated
def indexed_paths(conn: sqlite3.Connection, paths: Sequence[str]) -> set[str]:
    """Which files under `paths` are indexed at all (with any model's result or none)."""
    where, params = path_condition(paths)
    return {p for (p,) in conn.execute(f"SELECT f.path FROM files f WHERE {where}", params)}


def record_rewritten(
    store, path: str, old_hash: str, size: int, mtime_ns: int, new_hash: str
) -> None:
    """The file at `path` was rewritten by write-back (metadata only, pixels verified equal):
    its results move to `new_hash`, its row gets the new size/mtime/hash; one transaction."""
    db = store.db
    try:
        with db.atomic():
            cols = [row[1] for row in db.execute("PRAGMA table_info(results)") if row[1] != "id"]
            picked = ", ".join("?" if c == "content_hash" else c for c in cols)
            db.execute(
                f"INSERT INTO results ({', '.join(cols)}) SELECT {picked} FROM results"
                " WHERE content_hash = ? ON CONFLICT (content_hash, model) DO NOTHING",
                [new_hash, old_hash],
            )
            db.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, content_hash = ? WHERE path = ?",
                [size, mtime_ns, new_hash, path],
            )
            # The old content's results go unless another file (a copy) still has it.
            db.execute(
                "DELETE FROM results WHERE content_hash = ?"
                " AND NOT EXISTS (SELECT 1 FROM files WHERE content_hash = ?)",
                [old_hash, old_hash],
            )
            models = {
                m
                for (m,) in db.execute(
                    "SELECT model FROM results WHERE content_hash = ?", [new_hash]
                )
            }
            store._bump(models)  # result ids changed: the FAISS cache must be rebuilt
    except sqlite3.Error as e:
        from indexer.store.errors import store_error

        raise store_error(e, store.path) from None

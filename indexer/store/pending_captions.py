"""Pending captions: results that have their image vector but no caption yet.

`imgcap index --captions after|later` stores each new picture's result with its CLIP image
vector (searchable at once), the caption "" and an all-zero caption vector (cosine 0: never a
caption hit, never a NaN), and `caption_pending = 1` (schema.m013_caption_later). The captioning
phase (indexer/run/pending_captions.py) reads them back in id order, captions the stored vectors
and fills each row in place with `fill_captions`, which clears the mark in the same transaction:
a phase killed at any moment leaves every row either captioned or still pending, never both, and
the next phase starts where it stopped. A caption a person wrote meanwhile stays; the generated
one goes beneath it (as indexer/store/user_captions.py keeps it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.store.database import Store
from indexer.store.errors import translated
from indexer.store.records import blob_to_vec, vec_to_blob


@dataclass(slots=True)
class PendingBatch:
    """Results waiting for a caption, row i for result ids[i]."""

    ids: list[int]
    image_vecs: np.ndarray  # (B, D) float32, the stored raw CLIP image vectors, bit for bit


def has_column(conn: sqlite3.Connection) -> bool:
    """Whether the database can hold pending captions (schema.m013_caption_later ran)."""
    return any(row[1] == "caption_pending" for row in conn.execute("PRAGMA table_info(results)"))


@translated
def pending_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """model -> how many of its results wait for a caption (models with none left out)."""
    if not has_column(conn):
        return {}
    rows = conn.execute(
        "SELECT model, count(*) FROM results WHERE caption_pending IS NOT NULL GROUP BY model"
    )
    return dict(rows.fetchall())


@translated
def pending_batch(conn: sqlite3.Connection, model: str, limit: int, after_id: int = 0):
    """The next `limit` pending results of `model` with an id above `after_id`, by id."""
    rows = conn.execute(
        "SELECT id, image_vec, dim FROM results WHERE model = ? AND caption_pending IS NOT NULL"
        " AND id > ? ORDER BY id LIMIT ?",
        [model, after_id, limit],
    ).fetchall()
    if not rows:
        return PendingBatch([], np.zeros((0, 0), dtype=np.float32))
    vecs = np.stack([blob_to_vec(blob) for _, blob, _ in rows]).astype(np.float32, copy=False)
    return PendingBatch([r[0] for r in rows], vecs)


def fill_captions(
    store: Store, model: str, ids: Sequence[int], captions: Sequence[str], caption_vecs: np.ndarray
) -> int:
    """Give pending results their captions, ONE transaction; returns how many were filled (a row
    filled meanwhile, by a merge or another run, is left as it is). A result a person captioned
    while it waited keeps that caption, the generated one stored beneath it."""
    rows = [
        (cap, vec_to_blob(vec), rid)
        for rid, cap, vec in zip(ids, captions, caption_vecs, strict=True)
    ]
    with store.db.atomic():
        cur = store.db.conn.executemany(
            "UPDATE results SET"
            " caption = CASE WHEN caption_edited_at IS NULL THEN ?1 ELSE caption END,"
            " caption_vec = CASE WHEN caption_edited_at IS NULL THEN ?2 ELSE caption_vec END,"
            " generated_caption = CASE WHEN caption_edited_at IS NULL THEN generated_caption"
            " ELSE ?1 END,"
            " generated_caption_vec = CASE WHEN caption_edited_at IS NULL"
            " THEN generated_caption_vec ELSE ?2 END,"
            " caption_pending = NULL WHERE id = ?3 AND caption_pending IS NOT NULL",
            rows,
        )
        filled = max(cur.rowcount, 0)  # summed over the rows (triggers' changes not counted)
        if filled:
            store._bump({model})  # new generation; the FAISS cache replaces these vectors
    return filled

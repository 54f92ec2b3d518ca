"""The near-duplicate groups table and the rows grouping reads (issue 22 §2).

Interface for search (collapsing hits, "+N similar"): `groups_for(conn, content_hashes)` returns
{content_hash: group_key} for the given contents that belong to a group of near-duplicates; the
group key is the content hash of the group's original (the file that looks like the original:
largest pixel count, then oldest taken_at / mtime, then shortest path). A content absent from
the answer is alone: its group key is its own content hash, and files sharing one content hash
(exact copies) always share a group. One indexed query per page of hits; groups are rebuilt at
the end of each completed `imgcap index` (indexer/run/similar.py), so a search never computes
them. `members(conn, group_key)` gives the contents of one group, original first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import numpy as np
from sqlite_utils import Database

from indexer.store.records import blob_to_vec, rows_in

SCAN_ABOVE = 5_000  # contents asked for at once above which image_vectors reads them all


def groups_for(conn: sqlite3.Connection, content_hashes: Iterable[str]) -> dict[str, str]:
    """content_hash -> group key, for those of `content_hashes` in a group (see the docstring)."""
    sql = "SELECT content_hash, group_key FROM similar_groups WHERE content_hash IN ({marks})"
    return dict(rows_in(conn, sql, content_hashes))


def members(conn: sqlite3.Connection, group_key: str) -> list[str]:
    """The contents of the group `group_key`, its original first."""
    rows = conn.execute(
        "SELECT content_hash FROM similar_groups WHERE group_key = ?"
        " ORDER BY content_hash != group_key, content_hash",
        [group_key],
    )
    return [h for (h,) in rows]


def count_groups(conn: sqlite3.Connection) -> int:
    """How many groups the table holds."""
    return conn.execute("SELECT count(DISTINCT group_key) FROM similar_groups").fetchone()[0]


def replace_groups(db: Database, groups: dict[str, str]) -> None:
    """Make `groups` (content_hash -> group key) the whole table, in one transaction."""
    with db.atomic():
        db.execute("DELETE FROM similar_groups")
        db.conn.executemany(
            "INSERT INTO similar_groups (content_hash, group_key) VALUES (?, ?)",
            sorted(groups.items()),
        )


def files_by_content(conn: sqlite3.Connection) -> list[tuple]:
    """Every indexed file as (content_hash, path, width, height, taken_at, mtime_ns,
    perceptual_hash), by content hash then path."""
    return conn.execute(
        "SELECT content_hash, path, width, height, taken_at, mtime_ns, perceptual_hash"
        " FROM files ORDER BY content_hash, path"
    ).fetchall()


def paths_without_perceptual_hash(conn: sqlite3.Connection) -> set[str]:
    """Indexed paths whose perceptual hash is not known (videos among them: the caller decides)."""
    return {p for (p,) in conn.execute("SELECT path FROM files WHERE perceptual_hash IS NULL")}


def image_vectors(
    conn: sqlite3.Connection, model: str, content_hashes: list[str]
) -> tuple[list[str], np.ndarray]:
    """(the contents of `content_hashes` with a `model` result, their image vectors (N, D) float32
    raw as stored), in the order given."""
    sql = "SELECT content_hash, image_vec FROM results WHERE model = ?"
    if len(content_hashes) > SCAN_ABOVE:  # most of the library: one scan beats chunked IN lists
        wanted = set(content_hashes)
        rows = conn.execute(sql, [model])
        found = {h: blob for h, blob in rows if h in wanted}
    else:
        sql += " AND content_hash IN ({marks})"
        found = {h: blob for h, blob in rows_in(conn, sql, content_hashes, before=[model])}
    keys = [h for h in content_hashes if h in found]
    if not keys:
        return [], np.zeros((0, 0), dtype=np.float32)
    return keys, np.stack([blob_to_vec(found[h]) for h in keys])


def exists(conn: sqlite3.Connection) -> bool:
    """Whether the database has the groups table (search reads databases indexed before it)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'similar_groups'").fetchone()
    return row is not None


def latest_model(conn: sqlite3.Connection) -> str | None:
    """The model of the most recent index run that finished, or None."""
    row = conn.execute(
        "SELECT model FROM runs WHERE status = 'completed' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None

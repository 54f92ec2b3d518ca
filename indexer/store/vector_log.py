"""The vector change log: which results' vectors changed since a point, for the FAISS cache.

Triggers on `results` append one row (model, result id) whenever a row is inserted, deleted, or
has its vectors (or model) updated, in the same transaction as the change. So every writer is
covered without knowing about the cache: index batches, garbage collection, caption edits, and
whatever later writes results (a Ray merge, video frames). `seq` is AUTOINCREMENT so positions
only grow, even after the log was emptied by pruning.

The FAISS cache (search/vectors/cache.py) remembers the last position it applied; catching up reads
the distinct result ids logged after it and the current vectors of those ids (a missing row means
"deleted"). The writer prunes old positions at the end of each run (`prune`); a cache further
behind than what is kept cannot tell what changed and is rebuilt from the results table, which
costs about the same as replaying that many changes.

Created by schema.m008_vector_log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from indexer.store.errors import translated
from indexer.store.records import rows_in

# Positions kept by `prune`: at least this many, or as many as there are results. A cache
# behind by more changes than there are rows gains nothing from replaying them.
KEEP_MIN = 100_000


def create(db) -> None:
    """The log table and its triggers (a sqlite_utils Database, inside the migration)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS vector_log ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL,"
        " result_id INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS vector_log_model_seq ON vector_log (model, seq)")
    log = "INSERT INTO vector_log (model, result_id) VALUES"
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS results_vector_log_insert AFTER INSERT ON results"
        f" BEGIN {log} (new.model, new.id); END"
    )
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS results_vector_log_delete AFTER DELETE ON results"
        f" BEGIN {log} (old.model, old.id); END"
    )
    # A caption edit rewrites caption_vec in place (same id): logged so the cache replaces it.
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS results_vector_log_update"
        " AFTER UPDATE OF image_vec, caption_vec, model, id ON results"
        f" BEGIN {log} (old.model, old.id); {log} (new.model, new.id); END"
    )


def _exists(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vector_log'"
    ).fetchone()
    return row is not None


@translated
def head(conn: sqlite3.Connection) -> int | None:
    """The newest log position ever written (0 before any), None before schema 8."""
    if not _exists(conn):
        return None
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'vector_log'").fetchone()
    return int(row[0]) if row else 0


@translated
def changed_since(conn: sqlite3.Connection, model: str, after: int) -> tuple[int, list[int]] | None:
    """(log head, ids of `model`'s results changed after position `after`), or None when the
    log cannot tell: no log (older schema), pruned past `after`, or `after` lies ahead of it
    (a different database file took this one's place)."""
    top = head(conn)
    if top is None or after > top:
        return None
    if after < top:
        first = conn.execute("SELECT min(seq) FROM vector_log").fetchone()[0]
        if first is None or first > after + 1:
            return None  # positions after `after` were pruned
    rows = conn.execute(
        "SELECT DISTINCT result_id FROM vector_log WHERE model = ? AND seq > ? AND seq <= ?",
        [model, after, top],
    ).fetchall()
    return top, sorted(r for (r,) in rows)


@translated
def changed_after(conn: sqlite3.Connection, model: str, after: int | None) -> bool:
    """Whether `model`'s vectors may have changed after log position `after` (cheap: one
    index probe; True whenever the log cannot tell)."""
    top = head(conn)
    if top is None or after is None:
        return top is not None or after is not None  # fresh only when neither has a log
    if after == top:
        return False
    if after > top:
        return True
    first = conn.execute("SELECT min(seq) FROM vector_log").fetchone()[0]
    if first is None or first > after + 1:
        return True
    row = conn.execute(
        "SELECT 1 FROM vector_log WHERE model = ? AND seq > ? LIMIT 1", [model, after]
    ).fetchone()
    return row is not None


@translated
def result_vectors(
    conn: sqlite3.Connection, model: str, ids: Iterable[int]
) -> list[tuple[int, bytes, bytes]]:
    """(id, image_vec, caption_vec) of those ids that are `model`'s results now, by id."""
    sql = "SELECT id, image_vec, caption_vec FROM results WHERE model = ? AND id IN ({marks})"
    return sorted(rows_in(conn, sql, ids, before=[model]))


def prune(conn: sqlite3.Connection, keep_min: int = KEEP_MIN) -> int:
    """Drop positions older than what a lagging cache may still replay (the writer, inside its
    transaction). Returns how many went."""
    top = head(conn)
    if not top:
        return 0
    (results,) = conn.execute("SELECT count(*) FROM results").fetchone()
    keep = max(keep_min, int(results))
    return conn.execute("DELETE FROM vector_log WHERE seq <= ?", [top - keep]).rowcount

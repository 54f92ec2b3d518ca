"""Keyword matches through a photo's own full-text tables (its tags, its place names): the
results whose photo an FTS5 query matches, with their BM25, for the keyword signal."""

from __future__ import annotations

import sqlite3


def photo_matches(
    conn: sqlite3.Connection,
    fts: str,
    to_files: str,
    model: str,
    fts_query: str,
    limit: int,
    where: str,
    params: list,
    join: str,
) -> list[tuple[int, float]]:
    """(result id, BM25; higher = better) of `model`'s results whose photo matches `fts_query`
    in the FTS5 table `fts`, best first (ties by result id). `to_files` joins the matches `m` to
    `files f`; `where`/`params` restrict the files; `join` goes from `files f` to `results r` (a
    video's through its keyframes). `fts`, `to_files` and `join` are this package's own SQL."""
    rows = conn.execute(
        # Materialised first: bm25() can't be evaluated inside the GROUP BY below.
        f"WITH m AS MATERIALIZED (SELECT rowid, bm25({fts}) AS rank"
        f" FROM {fts} WHERE {fts} MATCH ?)"
        f" SELECT r.id, min(m.rank) AS best FROM m {to_files} {join}"
        f" WHERE r.model = ? AND {where} GROUP BY r.id ORDER BY best, r.id LIMIT ?",
        [fts_query, model, *params, limit],
    ).fetchall()
    return [(int(i), -float(s)) for i, s in rows]  # FTS5's bm25() is negated: flip it back

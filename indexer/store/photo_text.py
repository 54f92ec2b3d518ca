"""The text read in photos (schema 12: `text_reads`, `text_lines`, `text_reads_fts`).

Per content key, like `results` (a photo's content hash, a video keyframe's frame key), so
copies, moves and renames share one read and are never read again. `text_reads` has one row per
content key read: its lines joined by newlines in `text` ('' when the picture shows none), the
reader that read it, and `problem` (why it could not be read: the picture then has no text, and
the reason is shown; it is not read again until its content changes). `text_lines` holds the
lines, with each one's confidence and box (four corners as fractions of the picture's width and
height, JSON). `text_reads_fts` indexes `text` for keyword search and `--text`.

Rows go when no result has their content key any more (`collect`). Readers accept databases from
before schema 12 (no text: every function returns nothing).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from indexer.store.cjk import fts_text
from indexer.store.errors import conn_path, store_error, translated
from indexer.store.records import now_iso, rows_in

# One line as the run hands it over: (text, confidence, box of 8 floats).
Line = tuple[str, float, Sequence[float]]


def create(db: Database) -> None:
    """Tables, FTS and indexes (called by migration m012). Does nothing where they exist."""
    if db["text_reads"].exists():
        return
    db.execute(
        "CREATE TABLE text_reads (content_hash TEXT PRIMARY KEY, text TEXT NOT NULL,"
        " words TEXT NOT NULL DEFAULT '', lines INTEGER NOT NULL, reader TEXT, problem TEXT,"
        " read_at TEXT)"
    )
    db.execute(
        "CREATE TABLE text_lines (content_hash TEXT NOT NULL, line INTEGER NOT NULL,"
        " text TEXT NOT NULL, confidence REAL NOT NULL, box TEXT NOT NULL,"
        " PRIMARY KEY (content_hash, line))"
    )
    # The index reads `words`: the text plus its CJK bigrams (indexer/store/cjk.py), so Chinese
    # read on a sign is found by a word inside a line with no spaces.
    db["text_reads"].enable_fts(["words"], create_triggers=True, tokenize="unicode61")


def exists(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_reads'").fetchone())


# ------------------------------------------------------------------------------------ writes
@translated
def unread(conn: sqlite3.Connection) -> list[tuple[str, str, int | None]]:
    """Content keys with a result but no read yet, each with a path to read it from: (key,
    path, None) for a photo, (key, the video's path, milliseconds) for a keyframe. Keys no file
    has (a result kept for a person's caption) are left out."""
    if not exists(conn):
        return []
    rows = conn.execute(
        "SELECT k.content_hash,"
        " (SELECT f.path FROM files f WHERE f.content_hash = k.content_hash LIMIT 1),"
        " (SELECT f.path FROM video_frames v JOIN files f ON f.content_hash = v.video_hash"
        "  WHERE v.frame_key = k.content_hash LIMIT 1),"
        " (SELECT v.at_ms FROM video_frames v WHERE v.frame_key = k.content_hash)"
        " FROM (SELECT DISTINCT content_hash FROM results) k"
        " WHERE k.content_hash NOT IN (SELECT content_hash FROM text_reads)"
        " ORDER BY k.content_hash"
    ).fetchall()
    out: list[tuple[str, str, int | None]] = []
    for key, photo, video, at_ms in rows:
        if photo is not None:
            out.append((key, photo, None))
        elif video is not None and at_ms is not None:
            out.append((key, video, int(at_ms)))
    return out


def save(
    db: Database,
    reads: Sequence[tuple[str, Sequence[Line], str | None]],
    reader: str,
) -> None:
    """Store each (content key, lines top to bottom, problem or None); one transaction. A key
    stored before is replaced."""
    now = now_iso()
    try:
        with db.atomic():
            conn = db.conn
            keys = [(k,) for k, _, _ in reads]
            conn.executemany("DELETE FROM text_lines WHERE content_hash = ?", keys)
            conn.executemany("DELETE FROM text_reads WHERE content_hash = ?", keys)
            conn.executemany(
                "INSERT INTO text_reads (content_hash, text, words, lines, reader, problem,"
                " read_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (k, text, fts_text(text), len(lines), reader, problem, now)
                    for k, lines, problem in reads
                    for text in ["\n".join(t for t, _, _ in lines)]
                ],
            )
            conn.executemany(
                "INSERT INTO text_lines (content_hash, line, text, confidence, box)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (k, i, t, float(c), json.dumps([round(float(v), 4) for v in box]))
                    for k, lines, _ in reads
                    for i, (t, c, box) in enumerate(lines)
                ],
            )
    except sqlite3.Error as e:
        raise store_error(e, conn_path(db.conn)) from None


def collect(conn: sqlite3.Connection) -> None:
    """Drop reads of content no result has any more (inside Store.collect_garbage's
    transaction)."""
    if not exists(conn):
        return
    gone = "content_hash NOT IN (SELECT content_hash FROM results)"
    conn.execute(f"DELETE FROM text_lines WHERE {gone}")
    conn.execute(f"DELETE FROM text_reads WHERE {gone}")


# ------------------------------------------------------------------------------------- reads
@translated
def keyword_matches(
    conn: sqlite3.Connection,
    model: str,
    fts_query: str,
    limit: int,
    hashes: str | None = None,
    params: Sequence[Any] = (),
) -> list[tuple[int, float]]:
    """(result id, BM25; higher = better) of `model`'s results whose picture's text matches the
    FTS5 query, best first. `hashes`: a SELECT of the content keys allowed (None: all), with
    its `params`."""
    if not exists(conn):
        return []
    restrict = f" AND r.content_hash IN ({hashes})" if hashes else ""
    rows = conn.execute(
        "WITH m AS MATERIALIZED (SELECT rowid, bm25(text_reads_fts) AS rank FROM text_reads_fts"
        " WHERE text_reads_fts MATCH ?)"
        " SELECT r.id, m.rank FROM m JOIN text_reads t ON t.rowid = m.rowid"
        " JOIN results r ON r.content_hash = t.content_hash"
        f" WHERE r.model = ?{restrict} ORDER BY m.rank, r.id LIMIT ?",
        [fts_query, model, *params, limit],
    ).fetchall()
    return [(int(i), -float(s)) for i, s in rows]  # FTS5's bm25() is negated: flip it back


@translated
def has_text(conn: sqlite3.Connection) -> bool:
    """Whether any picture was read with some text (else search leaves the text signal out)."""
    if not exists(conn):
        return False
    return conn.execute("SELECT 1 FROM text_reads WHERE lines > 0 LIMIT 1").fetchone() is not None


@translated
def texts_for_results(conn: sqlite3.Connection, result_ids: Sequence[int]) -> dict[int, str]:
    """result id -> the text read in its picture (results without text left out)."""
    if not exists(conn):
        return {}
    sql = (
        "SELECT r.id, t.text FROM results r JOIN text_reads t ON t.content_hash = r.content_hash"
        " WHERE t.lines > 0 AND r.id IN ({marks})"
    )
    return dict(rows_in(conn, sql, [int(i) for i in result_ids]))


@translated
def lines_for_key(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    """The lines of one content key, top to bottom: {"text", "confidence", "box"}."""
    if not exists(conn):
        return []
    rows = conn.execute(
        "SELECT text, confidence, box FROM text_lines WHERE content_hash = ? ORDER BY line",
        [key],
    ).fetchall()
    return [{"text": t, "confidence": c, "box": json.loads(b)} for t, c, b in rows]


def condition(fts_query: str, alias: str = "f") -> tuple[str, list[Any]]:
    """SQL condition on the `files` row `alias`: its picture's text, or one of its keyframes'
    (a video), matches the FTS5 query (a quoted phrase for --text)."""
    matches = (
        "SELECT t.content_hash FROM text_reads_fts JOIN text_reads t"
        " ON t.rowid = text_reads_fts.rowid WHERE text_reads_fts MATCH ?"
    )
    sql = (
        f"({alias}.content_hash IN ({matches}) OR {alias}.content_hash IN"
        f" (SELECT v.video_hash FROM video_frames v WHERE v.frame_key IN ({matches})))"
    )
    return sql, [fts_query, fts_query]

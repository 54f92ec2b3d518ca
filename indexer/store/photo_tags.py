"""The user's own tags and descriptions per photo (schema: `photo_tags`, `photo_tags_fts`).

Per path, not per content hash: two copies of one photo can carry different tags. A row
remembers the photo's size/mtime and its sidecars' signature when it was read, so an index run
re-reads exactly the photos whose file or sidecar changed (a sidecar edit never re-captions).
Rows go with their file (a trigger on `files`), whatever removes it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from indexer.store import cjk
from indexer.store.errors import conn_path, store_error, translated
from indexer.store.fts import photo_matches
from indexer.store.records import now_iso, rows_in


def create(db: Database) -> None:
    """The tables, FTS index and clean-up trigger (called by the schema migration). Does
    nothing where they exist (a database whose version stamp was lowered by hand)."""
    if db["photo_tags"].exists():
        return
    db["photo_tags"].create(
        {
            "path": str,  # files.path
            "tags": str,  # JSON list, spelled as the user wrote them
            "folded": str,  # JSON list, casefolded: what --tag compares
            "description": str,  # the user's description (dc:description), or NULL
            "words": str,  # tags and description (+ CJK bigrams): what keywords search
            "size": int,  # the photo's size and mtime when read
            "mtime_ns": int,
            "sidecars": str,  # photo_tags.sidecar_signature() when read
            "problems": str,  # JSON list of skipped sources, with reasons
            "read_at": str,
        },
        pk="path",
        not_null={"path", "tags", "folded", "words", "sidecars"},
    )
    db["photo_tags"].enable_fts(["words"], create_triggers=True)
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS photo_tags_file_gone AFTER DELETE ON files"
        " BEGIN DELETE FROM photo_tags WHERE path = old.path; END"
    )


def add_cjk_bigrams(db: Database) -> int:
    """Rewrite `words` of the rows whose tags or description hold CJK text, so the FTS index
    (kept in step by its triggers) gets their bigrams (migration m011); returns how many."""
    rows = db.conn.execute("SELECT rowid, tags, description, words FROM photo_tags").fetchall()
    changed = [
        (new, rowid)
        for rowid, tags, description, old in rows
        if (new := words(json.loads(tags), description)) != old
    ]
    db.conn.executemany("UPDATE photo_tags SET words = ? WHERE rowid = ?", changed)
    return len(changed)


def exists(conn: sqlite3.Connection) -> bool:
    """Whether the database has the tag tables (readers accept older databases)."""
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'photo_tags'").fetchone())


@dataclass(frozen=True, slots=True)
class TagRow:
    path: str
    tags: list[str]
    description: str | None
    size: int
    mtime_ns: int
    sidecars: str
    problems: list[str]


@translated
def states(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, tuple[int, int, str]]:
    """path -> (size, mtime_ns, sidecars) as last read, for the given paths."""
    sql = "SELECT path, size, mtime_ns, sidecars FROM photo_tags WHERE path IN ({marks})"
    return {p: (s, m, c) for p, s, m, c in rows_in(conn, sql, paths)}


@translated
def file_states(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every indexed file."""
    return {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime_ns FROM files")}


def save(db: Database, rows: Sequence[TagRow]) -> None:
    """Store what was read, one transaction; rows of paths no longer indexed are skipped."""
    if not rows:
        return
    try:
        _save(db, rows)
    except sqlite3.Error as e:
        raise store_error(e, conn_path(db.conn)) from None


def _save(db: Database, rows: Sequence[TagRow]) -> None:
    stamp = now_iso()
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO photo_tags (path, tags, folded, description, words, size, mtime_ns,"
            " sidecars, problems, read_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE EXISTS (SELECT 1 FROM files WHERE path = ?)"
            " ON CONFLICT (path) DO UPDATE SET tags = excluded.tags, folded = excluded.folded,"
            " description = excluded.description, words = excluded.words,"
            " size = excluded.size, mtime_ns = excluded.mtime_ns, sidecars = excluded.sidecars,"
            " problems = excluded.problems, read_at = excluded.read_at",
            [
                (
                    r.path,
                    json.dumps(r.tags, ensure_ascii=False),
                    json.dumps([t.casefold() for t in r.tags], ensure_ascii=False),
                    r.description,
                    words(r.tags, r.description),
                    r.size,
                    r.mtime_ns,
                    r.sidecars,
                    json.dumps(r.problems, ensure_ascii=False) if r.problems else None,
                    stamp,
                    r.path,
                )
                for r in rows
            ],
        )


def words(tags: Sequence[str], description: str | None) -> str:
    """What the keyword signal searches for a photo: its tags and description, one a line,
    with the bigrams of any CJK text (indexer/store/cjk.py)."""
    return cjk.fts_text("\n".join([*tags, description or ""]).strip())


def tag_condition(tags: Sequence[str], alias: str = "f") -> tuple[str, list[Any]]:
    """SQL condition on the `files` row `alias`: the photo carries every tag in `tags`
    (case-insensitive, whole tags)."""
    conds = [
        "EXISTS (SELECT 1 FROM photo_tags t, json_each(t.folded) j"
        f" WHERE t.path = {alias}.path AND j.value = ?)"
        for _ in tags
    ]
    return " AND ".join(conds) or "1", [t.strip().casefold() for t in tags]


@translated
def keyword_matches(
    conn: sqlite3.Connection,
    model: str,
    fts_query: str,
    limit: int,
    where: str,
    params: list,
    join: str = "JOIN results r ON r.content_hash = f.content_hash",
) -> list[tuple[int, float]]:
    """(result id, BM25) of `model`'s results whose photo's tags or description match the FTS5
    query, best first; `where`/`params` restrict the files (alias f); `join` goes from `files f`
    to `results r` (a video's through its keyframes)."""
    if not exists(conn):
        return []
    to_files = "JOIN photo_tags t ON t.rowid = m.rowid JOIN files f ON f.path = t.path"
    return photo_matches(
        conn, "photo_tags_fts", to_files, model, fts_query, limit, where, params, join
    )


@translated
def tags_for_paths(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, list[str]]:
    """path -> its tags (paths without any are left out)."""
    if not exists(conn):
        return {}
    sql = "SELECT path, tags FROM photo_tags WHERE path IN ({marks}) AND tags != '[]'"
    return {p: json.loads(t) for p, t in rows_in(conn, sql, paths)}


@translated
def matching_paths(conn: sqlite3.Connection, fts_query: str, paths: Sequence[str]) -> set[str]:
    """Which of `paths` have tags or a description matching the FTS5 query."""
    if not exists(conn):
        return set()
    sql = (
        "SELECT t.path FROM photo_tags_fts JOIN photo_tags t ON t.rowid = photo_tags_fts.rowid"
        " WHERE photo_tags_fts MATCH ? AND t.path IN ({marks})"
    )
    return {p for (p,) in rows_in(conn, sql, paths, before=[fts_query])}


@translated
def tags_and_descriptions(
    conn: sqlite3.Connection, paths: Sequence[str]
) -> dict[str, tuple[list[str], str]]:
    """path -> (its tags, its description or ""), for paths with either."""
    if not exists(conn):
        return {}
    sql = (
        "SELECT path, tags, coalesce(description, '') FROM photo_tags"
        " WHERE path IN ({marks}) AND (tags != '[]' OR coalesce(description, '') != '')"
    )
    return {p: (json.loads(t), d) for p, t, d in rows_in(conn, sql, paths)}

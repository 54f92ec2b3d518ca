"""Connections to one database file, and SQLite errors turned into StoreErrors that name it.

Readers open the file read-only. A database on read-only media (or in a folder the user cannot
write) in WAL mode cannot be opened that way when its -shm file is missing, because SQLite must
create it; such a file cannot have a live writer either, so the reader falls back to
`immutable=1`, which needs neither -wal nor -shm.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import StoreError
from indexer.store import path_text, roots, schema
from indexer.store.errors import error_kind, store_error

BUSY_TIMEOUT_MS = 10_000  # wait for a writer's commit instead of failing with "database is locked"


def connect_readwrite(path: Path) -> sqlite3.Connection:
    conn = path_text.prepare(sqlite3.connect(str(path)))
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def connect_readonly_raw(path: Path) -> tuple[sqlite3.Connection, bool]:
    """(connection, immutable): read-only, falling back to immutable when SQLite cannot open
    the file's -shm (read-only folder or media). Raises sqlite3.Error, or StoreError when
    the fallback would miss commits still in the -wal file."""
    uri = Path(path).resolve().as_uri()
    try:
        conn = _open_uri(f"{uri}?mode=ro")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError as e:
        if error_kind(e) not in ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR"):
            raise
    wal = Path(f"{path}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        # immutable=1 would silently ignore the commits in the log: stale results, or none.
        raise StoreError(
            f"{path} is read-only here, and its write-ahead log {wal.name} holds changes that"
            " SQLite can only read where it may write: copy both files to a writable folder"
            " (or copy the database again after `imgcap index` has finished)"
        )
    conn = _open_uri(f"{uri}?immutable=1")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn, True


def _open_uri(uri: str) -> sqlite3.Connection:
    conn = path_text.prepare(sqlite3.connect(uri, uri=True))
    conn.isolation_level = None  # explicit BEGIN/COMMIT for snapshot reads
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


@contextlib.contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction on a reader's connection: every query inside sees the same commit,
    even while a writer commits meanwhile (WAL)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (no migrations, no lock, nothing written); StoreError if there is
    no imgcap database at `path`, or one this imgcap cannot read."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no database at {path} (run `imgcap index PATH` first)")
    try:
        conn, _ = connect_readonly_raw(path)
    except sqlite3.Error as e:
        raise store_error(e, path) from None
    try:
        if schema.check(conn, path) == 0:
            raise StoreError(f"{path} holds no imgcap index yet (run `imgcap index PATH` first)")
        conn.execute("SELECT 1 FROM files LIMIT 1").fetchall()
        _follow_moved_roots(conn, path)  # kept inside its root, opened from a new place
    except sqlite3.Error as e:
        conn.close()
        raise store_error(e, path) from None
    except StoreError:
        conn.close()
        raise
    return conn


def _follow_moved_roots(conn: sqlite3.Connection, db_path: Path | str) -> None:
    """Readers' open: when a database kept inside its root was opened from a new place, rewrite
    its paths through a short read-write connection, so every reader sees paths that exist.
    On read-only media (a drive mounted read-only) nothing can be written: this connection then
    reads the tables through TEMP views with the paths rewritten (`shadow`)."""
    moves = roots.moves_needed(conn, db_path)
    if not moves:
        return
    try:
        rw = connect_readwrite(Path(db_path))
    except sqlite3.Error:
        roots.shadow(conn, moves)
        return
    try:
        rw.execute("BEGIN IMMEDIATE")
        for root_id, old, new in roots.moves_needed(rw, db_path):  # again, under the write lock
            roots.repoint(rw, root_id, old, new)
        rw.execute("COMMIT")
    except sqlite3.Error as e:
        if error_kind(e) not in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR"):
            raise store_error(e, db_path) from None
        roots.shadow(conn, moves)
    finally:
        rw.close()

"""Connections to one database file, and SQLite errors turned into StoreErrors that name it.

Readers open the file read-only. A database on read-only media (or in a folder the user cannot
write) in WAL mode cannot be opened that way when its -shm file is missing, because SQLite must
create it; such a file cannot have a live writer either, so the reader falls back to
`immutable=1`, which needs neither -wal nor -shm.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from indexer.errors import StoreError

BUSY_TIMEOUT_MS = 10_000  # wait for a writer's commit instead of failing with "database is locked"

T = TypeVar("T", bound=Callable)


def _kind(e: sqlite3.Error) -> str:
    """SQLITE_FULL, SQLITE_READONLY, ... (the primary result code's name)."""
    name = getattr(e, "sqlite_errorname", "") or ""
    if name:
        return "_".join(name.split("_")[:2])  # SQLITE_READONLY_DBMOVED -> SQLITE_READONLY
    msg = str(e).lower()
    for needle, kind in (
        ("disk is full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("read-only", "SQLITE_READONLY"),
        ("malformed", "SQLITE_CORRUPT"),
        ("not a database", "SQLITE_NOTADB"),
        ("unable to open", "SQLITE_CANTOPEN"),
        ("locked", "SQLITE_BUSY"),
    ):
        if needle in msg:
            return kind
    return "SQLITE_ERROR"


def store_error(e: sqlite3.Error, path: Path | str) -> StoreError:
    """One clear message per cause, naming the database file and what the user can do."""
    kind = _kind(e)
    if kind == "SQLITE_FULL":
        return StoreError(
            f"the disk holding {path} is full ({e}). Everything committed before this is kept:"
            " free some space and run the same command again to continue"
        )
    if kind == "SQLITE_READONLY":
        return StoreError(
            f"{path} is read-only ({e}): it can be searched, but to index pass --db with a"
            " writable location"
        )
    if kind == "SQLITE_CORRUPT":
        return StoreError(
            f"{path} is damaged ({e}). Restore it from a backup, or move it away and run"
            " `imgcap index` again to rebuild it"
        )
    if kind == "SQLITE_NOTADB":
        return StoreError(f"{path} is not an imgcap database (it is not an SQLite file at all)")
    if kind == "SQLITE_IOERR":
        return StoreError(f"cannot read or write {path}: input/output error ({e})")
    if kind in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return StoreError(f"{path} is locked by another process ({e}); try again in a moment")
    if kind == "SQLITE_CANTOPEN":
        return StoreError(f"cannot open database {path} ({e})")
    return StoreError(f"database {path}: {e}")


def conn_path(conn: sqlite3.Connection) -> str:
    """The file behind a connection (for messages); reads no page, so works on damaged files."""
    try:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return file or "(memory)"
    except sqlite3.Error:
        pass
    return "the database"


def translated(fn: T) -> T:
    """Decorate a function whose first argument is a connection: sqlite3 errors -> StoreError."""

    @functools.wraps(fn)
    def wrapper(conn, *args, **kwargs):
        try:
            return fn(conn, *args, **kwargs)
        except sqlite3.Error as e:
            raise store_error(e, conn_path(conn)) from None

    return wrapper  # type: ignore[return-value]


def connect_readwrite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path))
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
        if _kind(e) not in ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR"):
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
    conn = sqlite3.connect(uri, uri=True)
    conn.isolation_level = None  # explicit BEGIN/COMMIT for snapshot reads
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (no migrations, no lock, nothing written); StoreError if there is
    no imgcap database at `path`, or one this imgcap cannot read."""
    from indexer.store import schema

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
        from indexer.store import roots

        roots.follow_from_reader(conn, path)  # kept inside its root, opened from a new place
    except sqlite3.Error as e:
        conn.close()
        raise store_error(e, path) from None
    except StoreError:
        conn.close()
        raise
    return conn

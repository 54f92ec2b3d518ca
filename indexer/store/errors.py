"""SQLite errors turned into StoreErrors that name the database file and say what to do."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from indexer.errors import StoreError

T = TypeVar("T", bound=Callable)


def error_kind(e: sqlite3.Error) -> str:
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
    kind = error_kind(e)
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

"""Index roots by database file: list them, move one, and where `--db-here` keeps a database.

The SQL lives in indexer/store/roots.py; this module opens the database the way each job needs
(read-only to list, under the writer lock to move).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from indexer.config import DB_HERE
from indexer.errors import UsageError
from indexer.store.roots import Root


def db_here(paths: list[Path], db: Path | None) -> Path:
    """The database `imgcap index --db-here FOLDER` uses: FOLDER/.imgcap/imgcap.db."""
    if db is not None:
        raise UsageError(
            "--db-here and --db cannot be combined: --db-here puts the database in the folder"
        )
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        raise UsageError("--db-here takes exactly one folder: the database goes inside it")
    return Path(os.path.abspath(os.path.expanduser(paths[0]))) / DB_HERE


def list_roots(db_path: Path) -> tuple[list[Root], int]:
    """The roots of the database, and how many indexed files lie under none."""
    from indexer.store.connection import connect_readonly
    from indexer.store.roots import list_roots as read

    conn = connect_readonly(db_path)
    try:
        return read(conn)
    finally:
        conn.close()


def move_root(db_path: Path, old: Path | str, new: Path | str) -> dict:
    """Repoint the root `old` at the folder `new` (no model work); see store.roots.move_root."""
    from indexer.store.database import Store
    from indexer.store.errors import store_error
    from indexer.store.lock import writer_lock
    from indexer.store.roots import move_root as move

    old = os.path.abspath(os.path.expanduser(old))
    new = os.path.abspath(os.path.expanduser(new))
    if not Path(db_path).is_file():
        raise UsageError(f"no database at {db_path} (run `imgcap index PATH` first)")
    with writer_lock(db_path), Store.open(db_path) as store:
        try:
            return move(store.db, db_path, old, new)
        except sqlite3.Error as e:
            raise store_error(e, db_path) from None

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

    if "" in (os.fspath(old), os.fspath(new)):  # abspath("") would be the current folder
        raise UsageError("an empty path was given: name the root and the folder it moved to")
    old = os.path.abspath(os.path.expanduser(old))
    new = os.path.abspath(os.path.expanduser(new))
    if not Path(db_path).is_file():
        raise UsageError(f"no database at {db_path} (run `imgcap index PATH` first)")
    with writer_lock(db_path), Store.open(db_path) as store:
        try:
            return move(store.db, db_path, old, new)
        except sqlite3.Error as e:
            raise store_error(e, db_path) from None


def remove_root(
    db_path: Path, root: Path | str, dry_run: bool = False, purge: bool = False
) -> dict:
    """Drop the root `root` and its photos from the index: its files, failures and photo tags;
    results no photo uses any more are then collected. A caption a person wrote stays with its
    content (Store.collect_garbage), so the same photos indexed again get it back, unless
    `purge`. `dry_run`: only count (the database is opened read-only)."""
    from indexer.store.database import Store
    from indexer.store.errors import store_error
    from indexer.store.lock import writer_lock
    from indexer.store.roots import drop_root, find_root, root_contents, root_paths

    if os.fspath(root) == "":  # abspath("") would be the current folder
        raise UsageError("an empty path was given: name the root to remove (`imgcap roots`)")
    root = os.path.normpath(os.path.abspath(os.path.expanduser(root)))
    if not Path(db_path).is_file():
        raise UsageError(f"no database at {db_path} (run `imgcap index PATH` first)")
    report: dict = {"root": root, "dry_run": dry_run, "purge": purge}
    if dry_run:
        with Store.open(db_path, create=False) as store:
            try:
                root_id = find_root(store.db.conn, root)
                return report | root_contents(store.db.conn, root_id, root) | {"results": 0}
            except sqlite3.Error as e:
                raise store_error(e, db_path) from None
    with writer_lock(db_path), Store.open(db_path) as store:
        try:
            root_id = find_root(store.db.conn, root)
            report |= root_contents(store.db.conn, root_id, root)
            rows = root_paths(store.db.conn, root_id)
            with store.db.atomic():
                store.remove_paths([p for p, _ in rows])
                drop_root(store.db, root_id, root)
                purged = {h for _, h in rows} if purge else set()
                report["results"] = store.collect_garbage(purge=purged)
        except sqlite3.Error as e:
            raise store_error(e, db_path) from None
    return report

"""Schema versions: new, older (migrated), newer and foreign (refused), damaged files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlite_utils import Database
from typer.testing import CliRunner

from cli import app
from indexer.errors import StoreError
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.queries import model_sources
from indexer.store.records import FileRecord, ResultRecord
from indexer.store.schema import APPLICATION_ID, SCHEMA_VERSION, migrations


def _write_one(store: Store, h: str = "h1") -> None:
    vec = np.ones(4, np.float32)
    store.write_batch(
        "m", [ResultRecord(h, "a dog", vec, vec)], [FileRecord(f"/p/{h}.jpg", 1, 1, h)]
    )


def _header(path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        return app_id, conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def _tables(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def test_new_database_records_its_schema_version(tmp_path):
    db = tmp_path / "new.db"
    with Store.open(db) as store:
        assert store.db["models"].exists()
    assert _header(db) == (APPLICATION_ID, SCHEMA_VERSION)
    Store.open(db).close()  # reopening is a no-op
    assert _header(db) == (APPLICATION_ID, SCHEMA_VERSION)


def test_older_database_is_migrated_and_keeps_its_data(tmp_path):
    db = tmp_path / "old.db"
    legacy = Database(db)  # exactly what imgcap wrote before schema versions: m001 only
    legacy.enable_wal()
    migrations.apply(legacy)
    legacy.close()
    with Store.open(db) as store:  # the pre-migration file is readable without writing to it
        pass
    assert _header(db)[1] == SCHEMA_VERSION
    db2 = tmp_path / "old2.db"
    legacy = Database(db2)
    migrations.apply(legacy)
    legacy.execute(
        "INSERT INTO files (path, size, mtime_ns, content_hash) VALUES ('/p/a.jpg', 1, 1, 'h')"
    )
    legacy.conn.commit()
    legacy.close()
    conn = connect_readonly(db2)  # a reader does not migrate, and copes with the old schema
    assert model_sources(conn) == {}
    conn.close()
    assert _header(db2) == (0, 0)
    with Store.open(db2) as store:
        assert store.counts()["files"] == 1
        assert [r["name"] for r in store.db["_sqlite_migrations"].rows] == ["m001_initial"]
    assert _header(db2) == (APPLICATION_ID, SCHEMA_VERSION)


def test_newer_database_is_refused_by_writers_and_readers(tmp_path):
    db = tmp_path / "future.db"
    with Store.open(db) as store:
        _write_one(store)
        store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer imgcap") as e:
        Store.open(db)
    assert str(db) in str(e.value) and e.value.exit_code == 4
    with pytest.raises(StoreError, match="newer imgcap"):
        connect_readonly(db)
    assert db.read_bytes() == before


def test_foreign_database_is_refused_and_left_untouched(tmp_path):
    db = tmp_path / "contacts.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not an imgcap database.*contacts"):
        Store.open(db)
    with pytest.raises(StoreError, match="not an imgcap database"):
        connect_readonly(db)
    assert db.read_bytes() == before and _tables(db) == {"contacts"}
    assert not (tmp_path / "contacts.db-wal").exists()


def test_empty_sqlite_file_becomes_an_imgcap_database(tmp_path):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    with Store.open(db) as store:
        _write_one(store)
    assert _header(db) == (APPLICATION_ID, SCHEMA_VERSION)


def test_not_sqlite_at_all(tmp_path):
    db = tmp_path / "photo.jpg"
    db.write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 5000)
    for opener in (Store.open, connect_readonly):
        with pytest.raises(StoreError, match="not an SQLite file") as e:
            opener(db)
        assert str(db) in str(e.value)
    assert db.read_bytes()[:4] == b"\xff\xd8\xff\xe0"


def _damage(db) -> None:
    """Overwrite the root pages of `files` and its indexes with garbage: malformed pages."""
    with Store.open(db) as store:
        for i in range(50):
            _write_one(store, f"h{i}")
        roots = store.db.execute(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'files' AND rootpage > 0"
        ).fetchall()
        page = store.db.execute("PRAGMA page_size").fetchone()[0]
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        for (root,) in roots:
            f.seek((root - 1) * page)
            f.write(b"\x0d\xff" * (page // 2))


def test_malformed_page_is_a_clear_error_naming_the_file(tmp_path):
    db = tmp_path / "bad.db"
    _damage(db)
    with pytest.raises(StoreError, match="is damaged") as e:
        connect_readonly(db)
    assert str(db) in str(e.value) and "backup" in str(e.value)


def test_cli_refuses_foreign_and_damaged_databases(tmp_path):
    runner = CliRunner()
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    r = runner.invoke(app, ["index", str(tmp_path / "nothing"), "--db", str(foreign)])
    assert r.exit_code in (2, 4), r.output  # the missing folder may be refused first
    photos = tmp_path / "photos"
    photos.mkdir()
    r = runner.invoke(app, ["index", str(photos), "--db", str(foreign), "--model", "x/none"])
    assert r.exit_code == 4 and "not an imgcap database" in r.output, r.output
    assert _tables(foreign) == {"t"}
    bad = tmp_path / "bad.db"
    _damage(bad)
    for args in (["status", "--db", str(bad)], ["search", "dog", "--db", str(bad)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 4 and "is damaged" in r.output, (args, r.output)
        assert "Traceback" not in r.output

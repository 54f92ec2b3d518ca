"""Schema 6 on an existing database: absolute paths become root-relative in place, no row lost,
roots inferred per top-level folder (issue 13 §4)."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from sqlite_utils import Database

from indexer.store import connection, schema
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord, vec_to_blob
from indexer.store.roots import infer_roots, list_roots

OLD_PATHS = [
    "/home/ann/Photos/2019/a.jpg",
    "/home/ann/Photos/2020/trip/b.jpg",
    "/home/ann/Photos/2020/c.jpg",
    "/home/bob/pics/d.jpg",
    "/media/ann/USB/pics/e.jpg",
    "/media/ann/USB/f.jpg",
    "/srv/x/y/g.jpg",
]


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def make_v4(path) -> None:
    """A database as imgcap wrote it at schema 4: the schema's own migration functions, rows
    in plain SQL (today's store code writes today's schema)."""
    db = Database(path)
    try:
        orig = schema.SCHEMA_VERSION
        schema.SCHEMA_VERSION = 4
        schema.migrate(db, path)
    finally:
        schema.SCHEMA_VERSION = orig
    with db.atomic():
        for i in range(6):
            db.execute(
                "INSERT INTO results (content_hash, model, caption, image_vec, caption_vec, dim)"
                " VALUES (?, 'm', ?, ?, ?, 8)",
                [f"h{i}", f"caption {i}", vec_to_blob(_vec(i)), vec_to_blob(_vec(100 + i))],
            )
        for i, p in enumerate(OLD_PATHS):
            db.execute(
                "INSERT INTO files (path, folder, size, mtime_ns, content_hash, indexed_at)"
                " VALUES (?, ?, ?, ?, ?, 'then')",
                [p, os.path.dirname(p), 10 + i, 1000 + i, f"h{min(i, 5)}"],
            )
        db.execute(
            "INSERT INTO failures (path, reason, size, mtime_ns)"
            " VALUES ('/home/ann/Photos/bad.jpg', 'empty file', 0, 1)"
        )
        db.execute(
            "INSERT INTO photo_tags (path, tags, folded, words, sidecars)"
            " VALUES ('/home/ann/Photos/2019/a.jpg', '[\"beach\"]', '[\"beach\"]', 'beach', '')"
        )
        db.execute("INSERT INTO vector_state (model, generation, count) VALUES ('m', 1, 6)")
    db.close()


def _dump(conn, sql):
    return sorted(conn.execute(sql).fetchall())


def test_infer_roots_per_top_level_folder():
    folders = [os.path.dirname(p) for p in OLD_PATHS]
    assert infer_roots(folders) == [
        "/home/ann/Photos",
        "/home/bob/pics",
        "/media/ann/USB",
        "/srv/x/y",
    ]
    assert infer_roots([]) == []
    assert infer_roots(["/a/b", "/a/b/c", "/a/d"]) == ["/a"]


def test_v4_database_migrates_in_place_with_no_lost_rows(tmp_path):
    path = tmp_path / "old.db"
    make_v4(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    tables = ("files", "results", "failures", "photo_tags", "runs", "vector_state")
    columns = {t: [c[1] for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    before = {t: _dump(conn, f"SELECT {', '.join(columns[t])} FROM {t}") for t in tables}
    conn.close()

    with Store.open(path) as store:  # a writer migrates
        conn = store.db.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        roots, loose = list_roots(conn)
        assert loose == 0
        assert [r.path for r in roots] == infer_roots(os.path.dirname(p) for p in OLD_PATHS)
        rows = conn.execute(
            "SELECT f.path, r.path, f.rel_path FROM files f JOIN roots r ON r.id = f.root_id"
        ).fetchall()
        assert len(rows) == len(OLD_PATHS)
        for path_, root, rel in rows:  # the derived absolute path is the one stored before
            assert path_ == root + os.sep + rel
        assert dict((p, rel) for p, _, rel in rows)["/home/ann/Photos/2020/trip/b.jpg"] == (
            "2020/trip/b.jpg"
        )
        for table, old in before.items():  # nothing lost, nothing else changed
            now = _dump(conn, f"SELECT {', '.join(columns[table])} FROM {table}")
            assert now == old, table
    # Opening again changes nothing (the migration ran once).
    with Store.open(path) as store:
        assert len(list_roots(store.db.conn)[0]) == 4


def test_legacy_rows_with_no_root_join_a_root_indexed_later(tmp_path):
    path = tmp_path / "db.db"
    with Store.open(path) as store:
        # A library caller that writes without recording a root: path kept, no root.
        store.write_batch("m", [ResultRecord("h", "c", _vec(1), _vec(2))], [])
        store.write_batch("m", [], [FileRecord("/data/p/a.jpg", 1, 1, "h")])
        assert list_roots(store.db.conn) == ([], 1)
        from indexer.store.roots import add_roots

        add_roots(store.db, ["/data"], path)
        roots, loose = list_roots(store.db.conn)
        assert (loose, [(r.path, r.photos) for r in roots]) == (0, [("/data", 1)])
        rel = store.db.execute("SELECT rel_path FROM files").fetchone()[0]
        assert rel == os.path.join("p", "a.jpg")


@pytest.mark.parametrize("order", ["inner_first", "outer_first"])
def test_roots_stay_disjoint(tmp_path, order):
    from indexer.store.roots import add_roots

    path = tmp_path / "db.db"
    with Store.open(path) as store:
        store.write_batch("m", [ResultRecord("h", "c", _vec(1), _vec(2))], [])
        first, second = ["/p/2019"], ["/p"]
        if order == "outer_first":
            first, second = second, first
        add_roots(store.db, first, path)
        store.write_batch("m", [], [FileRecord("/p/2019/a.jpg", 1, 1, "h")])
        add_roots(store.db, second, path)
        store.write_batch("m", [], [FileRecord("/p/2019/b.jpg", 1, 1, "h")])
        roots, _ = list_roots(store.db.conn)
        assert [(r.path, r.photos) for r in roots] == [("/p", 2)]
        rels = _dump(store.db.conn, "SELECT rel_path FROM files")
        assert rels == [("2019/a.jpg",), ("2019/b.jpg",)]


def test_only_a_db_here_database_travels(tmp_path):
    from indexer.store.roots import db_relative

    assert db_relative("/drive/photos", "/drive/photos/.imgcap/imgcap.db") == ".."
    assert db_relative("/drive", "/drive/photos/.imgcap/imgcap.db") == os.path.join("..", "..")
    # A default database under an indexed home folder stays where it is when copied.
    assert db_relative("/home/ann", "/home/ann/.local/share/imgcap/imgcap.db") is None
    assert db_relative("/elsewhere", "/drive/photos/.imgcap/imgcap.db") is None


@pytest.mark.parametrize("opener", ["writer", "reader"])
def test_a_travelling_database_follows_its_folder(tmp_path, opener):
    import shutil

    from indexer.store.connection import connect_readonly
    from indexer.store.records import FailureRecord
    from indexer.store.roots import add_roots

    root = tmp_path / "a" / "photos"
    db = root / ".imgcap" / "imgcap.db"
    with Store.open(db) as s:
        add_roots(s.db, [str(root)], db)
        s.write_batch("m", [ResultRecord("h", "c", _vec(1), _vec(2))], [])
        s.write_batch("m", [], [FileRecord(str(root / "x" / "p.jpg"), 1, 1, "h")])
        s.record_failures("m", [FailureRecord(str(root / "bad.jpg"), "empty file", 0, 1)])
    new = tmp_path / "b" / "moved"
    shutil.copytree(root, new)
    if opener == "writer":
        with Store.open(new / ".imgcap" / "imgcap.db") as s:
            conn = s.db.conn
            rows = conn.execute("SELECT path, folder, rel_path FROM files").fetchall()
            failures = [f["path"] for f in s.failures()]
    else:
        conn = connect_readonly(new / ".imgcap" / "imgcap.db")
        rows = conn.execute("SELECT path, folder, rel_path FROM files").fetchall()
        failures = [p for (p,) in conn.execute("SELECT path FROM failures")]
        conn.close()
    assert rows == [(str(new / "x" / "p.jpg"), str(new / "x"), os.path.join("x", "p.jpg"))]
    assert failures == [str(new / "bad.jpg")]
    conn = sqlite3.connect(db)  # the original is where it was, untouched
    assert conn.execute("SELECT path FROM files").fetchall() == [(str(root / "x" / "p.jpg"),)]
    conn.close()


def test_a_travelling_database_on_read_only_media_is_read_at_its_new_place(tmp_path, monkeypatch):
    import shutil

    from indexer.store import photo_tags as tags
    from indexer.store import roots as roots_mod
    from indexer.store.connection import connect_readonly
    from indexer.store.queries import FileFilter, export_rows
    from indexer.store.records import FailureRecord

    root = tmp_path / "a" / "photos"
    db = root / ".imgcap" / "imgcap.db"
    with Store.open(db) as s:
        roots_mod.add_roots(s.db, [str(root)], db)
        s.write_batch("m", [ResultRecord("h", "c", _vec(1), _vec(2))], [])
        s.write_batch("m", [], [FileRecord(str(root / "x" / "it's.jpg"), 1, 1, "h")])
        s.record_failures("m", [FailureRecord(str(root / "bad.jpg"), "empty file", 0, 1)])
        tags.save(s.db, [tags.TagRow(str(root / "x" / "it's.jpg"), ["beach"], None, 1, 1, "", [])])
    new = tmp_path / "b" / "moved"
    shutil.copytree(root, new)
    before = (new / ".imgcap" / "imgcap.db").read_bytes()

    def read_only(path):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(connection, "connect_readwrite", read_only)  # read-only media, as root
    conn = connect_readonly(new / ".imgcap" / "imgcap.db")
    photo = str(new / "x" / "it's.jpg")
    assert conn.execute("SELECT path, folder FROM files").fetchall() == [(photo, str(new / "x"))]
    assert [p for (p,) in conn.execute("SELECT path FROM failures")] == [str(new / "bad.jpg")]
    assert tags.matching_paths(conn, "beach", [photo]) == {photo}
    assert [r["path"] for r in export_rows(conn, "m", FileFilter())] == [photo]
    assert [(r.path, r.exists) for r in roots_mod.list_roots(conn)[0]] == [(str(new), True)]
    conn.close()
    assert (new / ".imgcap" / "imgcap.db").read_bytes() == before  # nothing written


def test_moving_a_root_onto_a_root_already_indexed_there_merges_them(tmp_path):
    """`roots move OLD NEW` after NEW was indexed: a photo at both places keeps NEW's rows
    (files, failures), OLD's other rows are repointed, one root is left."""
    from indexer.store.records import FailureRecord
    from indexer.store.roots import add_roots, move_root

    old, new = str(tmp_path / "A"), str(tmp_path / "B")
    os.mkdir(new)
    path = tmp_path / "db.db"
    with Store.open(path) as store:
        store.write_batch("m", [ResultRecord("h", "c", _vec(1), _vec(2))], [])
        add_roots(store.db, [old, new], path)
        rows = [FileRecord(f"{old}/a.jpg", 1, 1, "h"), FileRecord(f"{old}/b.jpg", 1, 1, "h")]
        store.write_batch("m", [], [*rows, FileRecord(f"{new}/a.jpg", 1, 2, "h")])
        store.record_failures(
            "m", [FailureRecord(f"{old}/x.jpg", "old"), FailureRecord(f"{new}/x.jpg", "new")]
        )
        moved = move_root(store.db, path, old, new)
        assert moved["photos"] == 1  # b.jpg; a.jpg was indexed at NEW already
        files = _dump(store.db.conn, "SELECT path, mtime_ns FROM files ORDER BY path")
        assert files == [(f"{new}/a.jpg", 2), (f"{new}/b.jpg", 1)]
        assert [(f["path"], f["reason"]) for f in store.failures()] == [(f"{new}/x.jpg", "new")]
        roots, loose = list_roots(store.db.conn)
        assert ([(r.path, r.photos) for r in roots], loose) == ([(new, 2)], 0)

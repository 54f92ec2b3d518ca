"""Read-only databases: searchable without -wal/-shm, the FAISS cache kept in memory, and a clear
exit-4 error (not an OSError traceback) when `index` cannot write there.

Tests run as root, which ignores permission bits, so a chmod'ed folder proves nothing. The
failures a read-only medium gives are reproduced exactly where they happen instead: SQLite's
"unable to open database file" for a `mode=ro` open that cannot create the -shm, and EROFS from
the lock file and the cache writes (`_read_only_medium`). Where the machine allows a read-only
bind mount (root with CAP_SYS_ADMIN), `test_real_read_only_mount` checks the real thing too.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import StoreError
from indexer.store import connection
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.lock import writer_lock
from search import query
from search.cli.options import Services
from search.query import SearchRequest
from search.status import status
from search.vectors import cache, files

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

PHOTOS = [Photo("a/dog.png", "a dog on a park bench"), Photo("b/car.png", "a red car")]


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "photos", PHOTOS, tmp_path / "lib" / "photos.db")


def _erofs(*_a, **_k):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.fixture
def read_only_medium(monkeypatch, capsys):
    """What a read-only medium answers: a `mode=ro` open of a WAL database whose -shm is
    missing fails (SQLite cannot create it), and every file write gets EROFS."""
    real_open = connection._open_uri

    def open_uri(uri: str):
        if "mode=ro" in uri:
            raise sqlite3.OperationalError("unable to open database file")
        return real_open(uri)

    import filelock

    monkeypatch.setattr(connection, "_open_uri", open_uri)
    monkeypatch.setattr(filelock.FileLock, "acquire", _erofs)
    monkeypatch.setattr(files, "write_atomic", _erofs)
    monkeypatch.setattr(cache, "_warned", set())  # once per process: this test's process
    return lambda: [line for line in capsys.readouterr().err.splitlines() if "Warning" in line]


def test_read_only_database_is_searchable_from_memory(db, read_only_medium):
    settings = Settings(db_path=db)
    for _ in range(2):
        hits = query.search(db, SearchRequest(text="dog"), settings, fake_loader())
        assert hits[0].path.endswith("dog.png")
    warnings = read_only_medium()
    assert len(warnings) == 1, "warned once, not per search"
    assert "read-only" in warnings[0] and "from memory" in warnings[0]
    assert not list(files.index_dir(db).glob("*")), "nothing written"
    info = status(db)
    assert info["files"] == 2 and info["models"]["fake-clip"]["index"]["state"] == "missing"
    with Store.open(db, create=False) as store:  # `imgcap failures` reads through this
        assert store.counts()["files"] == 2


def test_read_only_copy_with_a_pending_write_ahead_log_is_refused(db, read_only_medium):
    with Store.open(db) as store:  # a copy taken while a writer had commits in its -wal
        store.db.execute("PRAGMA wal_autocheckpoint = 0")
        store.db.execute("UPDATE files SET width = 1")
        store.db.conn.commit()
        with pytest.raises(StoreError, match="write-ahead log photos.db-wal") as e:
            connect_readonly(db)
        assert "copy both files to a writable folder" in str(e.value)


def test_index_into_a_read_only_folder_is_a_clear_error(db, read_only_medium):
    with pytest.raises(StoreError, match="not writable.*Read-only file system") as e:
        with writer_lock(db):
            pass
    assert e.value.exit_code == 4 and str(db) in str(e.value) and "--db" in str(e.value)


def test_cli_on_a_read_only_medium(db, read_only_medium, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    r = runner.invoke(cli.app, ["search", "dog", "--db", str(db), "--json"], obj=FAKE_CLIP)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["path"].endswith("dog.png")
    for args in (["status"], ["export", "-"], ["failures"]):
        r = runner.invoke(cli.app, [*args, "--db", str(db)], obj=FAKE_CLIP)
        assert r.exit_code == 0 and "not a readable" not in r.output, (args, r.output)
    r = runner.invoke(cli.app, ["index", str(tmp_path / "photos"), "--db", str(db)], obj=FAKE_CLIP)
    assert r.exit_code == 4 and "not writable" in r.output, r.output
    assert "Traceback" not in r.output


def test_full_disk_while_saving_the_cache_searches_from_memory(db, monkeypatch, capsys):
    import faiss

    def full(index, path):
        raise RuntimeError(
            "Error in faiss::FileIOWriter::operator()(const void*, size_t, size_t) at"
            f" impl/io.cpp:98: write error in {path}: 0 != 1 (No space left on device)"
        )

    monkeypatch.setattr(faiss, "write_index", full)
    monkeypatch.setattr(cache, "_warned", set())
    settings = Settings(db_path=db)
    for _ in range(2):
        hits = query.search(db, SearchRequest(text="car"), settings, fake_loader())
        assert hits[0].path.endswith("car.png")
    err = capsys.readouterr().err
    assert err.count("Warning:") == 1 and "disk is full" in err and "from memory" in err
    assert not any(p.suffix == ".tmp" for p in files.index_dir(db).glob("*"))


def _mount_read_only(src, dst) -> bool:
    dst.mkdir()
    try:
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(dst)], timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_real_read_only_mount(db, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    if not _mount_read_only(db.parent, ro):
        pytest.skip("no read-only bind mount here (needs root with CAP_SYS_ADMIN)")
    try:
        ro_db = ro / db.name
        conn = connect_readonly(ro_db)  # mode=ro fails here for real; immutable=1 works
        assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 2
        conn.close()
        monkeypatch.setattr(cache, "_warned", set())
        hits = query.search(
            ro_db, SearchRequest(text="dog"), Settings(db_path=ro_db), fake_loader()
        )
        assert hits[0].path.endswith("dog.png")
        with pytest.raises(StoreError, match="not writable"):
            with writer_lock(ro_db):
                pass
    finally:
        subprocess.run(["umount", "-l", str(ro)], timeout=30, check=False)  # -l: even if busy

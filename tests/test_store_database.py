"""The database module: migrations, batch writes, content-hash reuse, garbage, generations, lock."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.errors import StoreError
from indexer.store.database import Store
from indexer.store.lock import writer_lock
from indexer.store.records import FailureRecord, FileRecord, ResultRecord, blob_to_vec


def _result(h: str, caption: str = "a dog on a beach", dim: int = 8) -> ResultRecord:
    rng = np.random.default_rng(abs(hash(h)) % 2**32)
    return ResultRecord(
        h, caption, rng.standard_normal(dim, dtype=np.float32), np.ones(dim, np.float32)
    )


def _file(path: str, h: str, size: int = 10, mtime: int = 1) -> FileRecord:
    return FileRecord(path=path, size=size, mtime_ns=mtime, content_hash=h, width=4, height=3)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "sub" / "imgcap.db") as s:
        yield s


def test_open_creates_schema_in_wal_mode(store, tmp_path):
    assert store.db.journal_mode == "wal"
    for table in ("files", "results", "results_fts", "failures", "runs", "vector_state"):
        assert store.db[table].exists(), table
    applied = [r["name"] for r in store.db["_sqlite_migrations"].rows]
    assert applied == ["m001_initial"]
    # Re-opening applies nothing twice.
    Store.open(store.path).close()
    assert store.db["_sqlite_migrations"].count == 1


def test_open_without_create_refuses_missing_db(tmp_path):
    with pytest.raises(StoreError, match="no database"):
        Store.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_write_batch_stores_vectors_and_fts(store):
    r = _result("h1", "a red car parked")
    store.write_batch("m", [r], [_file("/p/a.jpg", "h1")])
    row = store.db.execute("SELECT caption, image_vec, dim FROM results").fetchone()
    assert row[0] == "a red car parked" and row[2] == 8
    np.testing.assert_array_equal(blob_to_vec(row[1]), r.image_vec)
    hits = store.db.execute(
        "SELECT caption FROM results_fts WHERE results_fts MATCH ?", ["car"]
    ).fetchall()
    assert hits == [("a red car parked",)]
    f = next(store.db["files"].rows)
    assert f["folder"] == "/p" and f["width"] == 4 and f["indexed_at"]
    assert store.vector_state() == {"m": (1, 1)}


def test_duplicate_result_is_kept_not_redone(store):
    store.write_batch("m", [_result("h1", "first")], [_file("/p/a.jpg", "h1")])
    store.write_batch("m", [_result("h1", "second")], [_file("/p/b.jpg", "h1")])
    assert [r["caption"] for r in store.db["results"].rows] == ["first"]
    assert store.counts() == {"files": 2, "results": 1, "failures": 0}


def test_models_side_by_side_and_metadata_copy(store):
    store.write_batch("m1", [_result("h1")], [_file("/p/a.jpg", "h1")])
    store.write_batch("m2", [_result("h1")], [_file("/p/a.jpg", "h1")])
    assert store.result_hashes("m1") == {"h1"} == store.result_hashes("m2")
    assert store.metadata_for_hashes(["h1", "nope"]) == {
        "h1": {
            "width": 4,
            "height": 3,
            "taken_at": None,
            "camera_make": None,
            "camera_model": None,
            "gps_lat": None,
            "gps_lon": None,
            "perceptual_hash": None,
        }
    }


def test_edit_and_remove_collect_garbage_and_bump_generations(store):
    store.write_batch("m1", [_result("h1")], [_file("/p/a.jpg", "h1")])
    store.write_batch("m2", [_result("h1")], [_file("/p/a.jpg", "h1")])
    gen = store.vector_state()
    # Editing a.jpg (new content h2, model m1): h1 is no longer referenced by any file.
    store.write_batch("m1", [_result("h2")], [_file("/p/a.jpg", "h2", mtime=2)])
    # Garbage is kept until the end of the run, so reuse routed meanwhile stays valid.
    assert store.result_hashes("m2") == {"h1"}
    assert store.collect_garbage() == 2
    assert store.result_hashes("m1") == {"h2"}
    assert store.result_hashes("m2") == set()
    state = store.vector_state()
    assert state["m1"] == (gen["m1"][0] + 2, 1) and state["m2"] == (gen["m2"][0] + 2, 0)
    store.remove_paths(["/p/a.jpg"])
    assert store.collect_garbage() == 1
    assert store.counts() == {"files": 0, "results": 0, "failures": 0}
    assert store.vector_state()["m1"][1] == 0
    assert store.db.execute("SELECT count(*) FROM results_fts").fetchone()[0] == 0


def test_garbage_collection_keeps_a_persons_caption_until_purged(store):
    store.write_batch("m", [_result("h1"), _result("h2")], [_file("/p/a.jpg", "h1")])
    store.write_batch("m", [], [_file("/p/b.jpg", "h2")])
    store.db.execute(
        "UPDATE results SET generated_caption = caption, caption = 'Grandma',"
        " caption_edited_at = '2026-01-01' WHERE content_hash = 'h1'"
    )
    store.remove_paths(["/p/a.jpg", "/p/b.jpg"])
    assert store.collect_garbage() == 1  # h2 went; h1 holds a person's caption
    assert store.result_hashes("m") == {"h1"}
    store.write_batch("m", [], [_file("/q/a.jpg", "h1")])  # the same photo, indexed again
    assert store.db.execute("SELECT caption FROM results").fetchall() == [("Grandma",)]
    store.remove_paths(["/q/a.jpg"])
    assert store.collect_garbage(purge=["h9"]) == 0
    assert store.collect_garbage(purge=["h1"]) == 1


def test_failures_replace_an_indexed_file_and_clear_on_success(store):
    store.write_batch("m", [_result("h1")], [_file("/p/a.jpg", "h1")])
    store.record_failures("m", [FailureRecord("/p/a.jpg", "truncated JPEG", 5, 9)])
    store.collect_garbage()
    assert store.counts() == {"files": 0, "results": 0, "failures": 1}
    assert store.failure_states() == {"/p/a.jpg": (5, 9, "truncated JPEG")}
    store.write_batch("m", [_result("h3")], [_file("/p/a.jpg", "h3")])
    assert store.failures() == []


def test_runs_mark_killed_runs_abandoned(store):
    first = store.start_run("m")
    second = store.start_run("m")
    store.finish_run(second, "completed", {"new": 1})
    statuses = {r["id"]: r["status"] for r in store.db["runs"].rows}
    assert statuses == {first: "abandoned", second: "completed"}


def test_writer_lock_refuses_second_writer(tmp_path):
    db = tmp_path / "imgcap.db"
    with writer_lock(db):
        with pytest.raises(StoreError, match="already writing"):
            with writer_lock(db):
                pass
    with writer_lock(db):  # released after the first holder is done
        pass


def test_reads_work_while_a_write_transaction_is_open(store):
    store.write_batch("m", [_result("h1")], [_file("/p/a.jpg", "h1")])
    with store.db.atomic():
        store.db.execute("DELETE FROM files")
        with Store.open(store.path, create=False) as reader:
            assert reader.counts()["files"] == 1  # WAL: the reader sees the last commit

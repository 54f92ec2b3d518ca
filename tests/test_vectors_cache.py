"""The FAISS cache: built from SQLite, rebuilt when stale, exact and HNSW, filtered search."""

from __future__ import annotations

import hashlib
import json

import faiss
import numpy as np
import pytest

from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord
from search.vectors import cache, files
from search.vectors.limits import Limits

DIM = 32


def _write(db_path, n, start=0, seed=0, model="m"):
    rng = np.random.default_rng(seed)
    results, files = [], []
    for i in range(start, start + n):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        img = rng.standard_normal(DIM).astype(np.float32) * 3  # raw, not unit length
        cap = rng.standard_normal(DIM).astype(np.float32)
        results.append(ResultRecord(h, f"caption {i}", img, cap))
        files.append(FileRecord(path=f"/photos/{i}.jpg", size=1, mtime_ns=1, content_hash=h))
    with Store.open(db_path) as s:
        s.write_batch(model, results, files)


def _all_vectors(db_path, kind, model="m"):
    conn = connect_readonly(db_path)
    rows = conn.execute(
        f"SELECT id, {kind}_vec FROM results WHERE model = ? ORDER BY id", [model]
    ).fetchall()
    ids = np.array([r[0] for r in rows])
    mat = np.stack([np.frombuffer(r[1], "<f4") for r in rows])
    return ids, mat / np.linalg.norm(mat, axis=1, keepdims=True)


def _load(db_path, model="m", limits: Limits = Limits()):
    conn = connect_readonly(db_path)
    try:
        return cache.load_model(db_path, conn, model, limits=limits)
    finally:
        conn.close()


def test_build_normalises_and_writes_pointer(tmp_path):
    db = tmp_path / "p.db"
    _write(db, 50)
    idx = _load(db)
    assert set(idx) == {"image", "caption"}
    assert idx["image"].ntotal == 50 and idx["image"].index_type == "flat"
    _, vecs = idx["image"].vectors(idx["image"].ids)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    pointer = json.loads(next(files.index_dir(db).glob("*.json")).read_text())
    assert (pointer["generation"], pointer["count"], pointer["vectors"]) == (1, 50, 50)


def test_fresh_index_is_reused_and_stale_one_rebuilt(tmp_path):
    db = tmp_path / "p.db"
    _write(db, 20)
    assert cache.sync_indexes(db)["m"]["rebuilt"] is True
    assert cache.sync_indexes(db)["m"]["rebuilt"] is False  # generation unchanged: no work
    _write(db, 5, start=20, seed=1)  # a new batch bumps the generation
    state = cache.sync_indexes(db)["m"]
    # Issue 11: new rows are added to the cache, not rebuilt (tests/test_vectors_update.py).
    assert state["action"] == "update" and state["rebuilt"] is False and state["count"] == 25
    assert _load(db)["caption"].ntotal == 25
    (pointer_file,) = files.index_dir(db).glob("*.json")
    named = set(json.loads(pointer_file.read_text())["files"].values())
    names = {p.name for p in files.index_dir(db).iterdir()}
    assert names == named | {pointer_file.name}, "files the pointer no longer names are removed"


def test_damaged_cache_is_rebuilt(tmp_path):
    db = tmp_path / "p.db"
    _write(db, 10)
    cache.sync_indexes(db)
    for p in files.index_dir(db).glob("*.faiss"):
        p.write_bytes(b"garbage")
    assert _load(db)["image"].ntotal == 10
    assert cache.sync_indexes(db)["m"]["rebuilt"] is False  # rewritten by the load above


def test_unwritable_cache_location_serves_from_memory(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    _write(db, 10)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setattr(files, "index_dir", lambda _db: blocker / "cache")
    assert _load(db)["image"].ntotal == 10


@pytest.mark.parametrize("exact_max", [10**9, 0])  # exact subset path, then the selector path
def test_filtered_search_matches_brute_force(tmp_path, exact_max):
    db = tmp_path / "p.db"
    _write(db, 300)
    vi = _load(db)["image"]
    ids, mat = _all_vectors(db, "image")
    q = mat[7] + 0.1
    allowed = ids[::3]
    got_ids, got_sims = vi.search(q, 10, allowed, exact_max=exact_max)
    sims = mat[::3] @ q
    want = allowed[np.argsort(-sims)[:10]]
    assert list(got_ids) == list(want)
    np.testing.assert_allclose(got_sims, np.sort(sims)[::-1][:10], rtol=1e-4)
    # Asking for more than the subset holds returns the whole subset.
    assert len(vi.search(q, 1000, allowed, exact_max=exact_max)[0]) == len(allowed)
    assert len(vi.search(q, 5, np.array([], dtype=np.int64), exact_max=exact_max)[0]) == 0


def test_hnsw_above_threshold_has_high_recall(tmp_path):
    limits = Limits(hnsw_min=100)
    db = tmp_path / "p.db"
    _write(db, 2000)
    vi = _load(db, limits=limits)["image"]
    assert vi.index_type == "hnsw"
    ids, mat = _all_vectors(db, "image")
    rng = np.random.default_rng(3)
    recalls = []
    for _ in range(50):
        q = mat[rng.integers(len(mat))] + 0.3 * rng.standard_normal(DIM).astype(np.float32)
        got, _ = vi.search(q, 10)
        want = ids[np.argsort(-(mat @ q))[:10]]
        recalls.append(len(set(got) & set(want)) / 10)
    assert np.mean(recalls) >= 0.99
    # Filtered HNSW (selector path) only returns allowed ids, and as many as asked.
    allowed = ids[ids % 2 == 0]
    faiss.cvar.hnsw_stats.reset()
    got, _ = vi.search(mat[0], 20, allowed, exact_max=0)
    assert faiss.cvar.hnsw_stats.ndis > 0, "searched the graph, not the gathered subset"
    assert len(got) == 20 and set(got) <= set(allowed)
    # Reloaded from disk, it is still HNSW and answers the same.
    again = _load(db, limits=limits)["image"]
    assert again.index_type == "hnsw"
    assert list(again.search(mat[5], 10)[0]) == list(vi.search(mat[5], 10)[0])


def test_scores_are_exact_cosines(tmp_path):
    db = tmp_path / "p.db"
    _write(db, 30)
    vi = _load(db)["caption"]
    ids, mat = _all_vectors(db, "caption")
    q = mat[3]
    got = vi.scores(q, ids[:5])
    np.testing.assert_allclose([got[int(i)] for i in ids[:5]], mat[:5] @ q, rtol=1e-5)
    assert vi.scores(q, np.array([10**9])) == {}  # unknown ids are skipped


def test_models_get_separate_indexes(tmp_path):
    db = tmp_path / "p.db"
    _write(db, 10, model="a")
    _write(db, 4, start=100, model="b/with slash")
    state = cache.sync_indexes(db)
    assert {m: s["count"] for m, s in state.items()} == {"a": 10, "b/with slash": 4}
    assert _load(db, "b/with slash")["image"].ntotal == 4

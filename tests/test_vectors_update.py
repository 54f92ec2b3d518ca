"""The FAISS cache grows without rebuilding (issue 11): rows added, deleted, replaced and
caption-edited are applied from the store's change log; after every step the cache answers
exactly like a cache rebuilt from scratch (ids and scores), a deleted photo never comes back,
and tombstones past the threshold compact the index."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from indexer.store import vector_log
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord
from indexer.store.user_captions import clear_user_caption, set_user_caption
from search.vectors import cache, files
from search.vectors.index import EXACT_SUBSET_MAX
from search.vectors.kinds import KINDS
from search.vectors.limits import Limits

DIM = 32


def _h(i: int) -> str:
    return hashlib.sha256(f"photo {i}".encode()).hexdigest()


def _vecs(i: int, version: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 * version + i)
    return (rng.standard_normal(DIM) * 3).astype(np.float32), rng.standard_normal(DIM).astype(
        np.float32
    )


def _add(db, ids, version: int = 0, model: str = "m") -> None:
    """Photos `ids` (path /p/<i>.jpg); `version` > 0 gives a path new content (a replacement)."""
    results, files = [], []
    for i in ids:
        h = _h(i) if version == 0 else _h(10_000 * version + i)
        img, cap = _vecs(i, version)
        results.append(ResultRecord(h, f"caption {i}", img, cap))
        files.append(FileRecord(path=f"/p/{i}.jpg", size=1, mtime_ns=version, content_hash=h))
    with Store.open(db) as s:
        s.write_batch(model, results, files)


def _delete(db, ids) -> None:
    with Store.open(db) as s:
        s.remove_paths([f"/p/{i}.jpg" for i in ids])
        s.collect_garbage()


def _result_id(db, i: int) -> int:
    conn = connect_readonly(db)
    try:
        row = conn.execute(
            "SELECT r.id FROM results r JOIN files f ON f.content_hash = r.content_hash"
            " WHERE f.path = ?",
            [f"/p/{i}.jpg"],
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def _sync(db, limits: Limits = Limits()) -> dict:
    return cache.sync_indexes(db, memory_gb=8, limits=limits)["m"]


def _load(db, limits: Limits = Limits()):
    conn = connect_readonly(db)
    try:
        return cache.load_model(db, conn, "m", memory_gb=8, limits=limits)
    finally:
        conn.close()


def _from_scratch(db, tmp_path, monkeypatch, limits: Limits = Limits()):
    """What a full rebuild gives, in a separate cache folder."""
    conn = connect_readonly(db)
    try:
        with monkeypatch.context() as m:
            m.setattr(files, "index_dir", lambda _db: tmp_path / "scratch.faiss")
            return cache.build_model(db, conn, "m", memory_gb=8, limits=limits)
    finally:
        conn.close()


def _sql_vectors(db, kind: str) -> tuple[np.ndarray, np.ndarray]:
    conn = connect_readonly(db)
    try:
        rows = conn.execute(
            f"SELECT id, {kind}_vec FROM results WHERE model = 'm' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    mat = np.stack([np.frombuffer(r[1], "<f4") for r in rows])
    return np.array([r[0] for r in rows]), mat / np.linalg.norm(mat, axis=1, keepdims=True)


def assert_same_answers(got, want, db, queries=6, exact_max=EXACT_SUBSET_MAX) -> None:
    """Every kind, several queries, unfiltered and filtered, k small and k = everything.
    Filtered searches gather the subset exactly up to `exact_max` vectors, else go through a
    FAISS ID selector; either way they must equal brute force over the subset."""
    rng = np.random.default_rng(7)
    for kind in KINDS:
        g, w = got[kind], want[kind]
        assert g.ntotal == w.ntotal and list(g.ids) == list(w.ids)
        ids, mat = _sql_vectors(db, kind)
        assert list(ids) == list(g.ids), "the cache holds exactly SQLite's rows"
        for _ in range(queries):
            q = mat[rng.integers(len(mat))] + 0.2 * rng.standard_normal(DIM).astype(np.float32)
            for k in (5, len(ids) + 3):
                gi, gs = g.search(q, k)
                wi, ws = w.search(q, k)
                assert list(gi) == list(wi)
                np.testing.assert_allclose(gs, ws, rtol=1e-5, atol=1e-6)
            allowed = ids[::3]
            gi, gs = g.search(q, 7, allowed, exact_max=exact_max)
            wi, ws = w.search(q, 7, allowed, exact_max=exact_max)
            assert list(gi) == list(wi)
            np.testing.assert_allclose(gs, ws, rtol=1e-5, atol=1e-6)
            assert list(gi) == list(allowed[np.argsort(-(mat[::3] @ q))[:7]]), "brute force"
        probe = ids[:9]
        assert g.scores(q, probe) == pytest.approx(w.scores(q, probe), rel=1e-5)


@pytest.fixture(params=["exact-subset", "selector"])
def exact_max(request) -> int:
    """Filtered searches both ways: gathered exactly, or (no subset is small enough) through a
    FAISS ID selector."""
    return EXACT_SUBSET_MAX if request.param == "exact-subset" else 0


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_add_delete_replace_edit_equal_a_rebuild(tmp_path, monkeypatch, exact_max, index_type):
    # 75 vectors at most: small enough that HNSW with efSearch 256 is exact.
    limits = Limits(hnsw_min=10) if index_type == "hnsw" else Limits()
    db = tmp_path / "p.db"

    def same_answers(got):
        want = _from_scratch(db, tmp_path, monkeypatch, limits)
        assert_same_answers(got, want, db, exact_max=exact_max)

    _add(db, range(60))
    assert _sync(db, limits)["action"] == "rebuild"
    pointer0 = json.loads(next(files.index_dir(db).glob("*.json")).read_text())

    _add(db, range(60, 75))  # add
    state = _sync(db, limits)
    assert (state["action"], state["vectors"], state["delta"]) == ("update", 75, 15)
    assert state["type"] == index_type
    same_answers(_load(db, limits))

    _delete(db, [3, 61])  # delete: one from the base, one from the delta
    state = _sync(db, limits)
    assert (state["action"], state["vectors"], state["masked"]) == ("update", 73, 2)
    same_answers(_load(db, limits))

    _add(db, [5, 62], version=1)  # replace: new content at the same paths
    _delete(db, [])
    state = _sync(db, limits)
    assert (state["action"], state["vectors"], state["masked"]) == ("update", 73, 4)
    same_answers(_load(db, limits))

    set_user_caption(db, "/p/7.jpg", "m", "a user's caption", _vecs(999)[1])  # edit in place
    state = _sync(db, limits)
    assert (state["action"], state["masked"]) == ("update", 5)
    got = _load(db, limits)
    same_answers(got)
    edited = _vecs(999)[1] / np.linalg.norm(_vecs(999)[1])
    assert got["caption"].search(edited, 1)[0][0] == _result_id(db, 7)
    clear_user_caption(db, "/p/7.jpg")
    assert _sync(db, limits)["action"] == "update"
    same_answers(_load(db, limits))

    pointer = json.loads(next(files.index_dir(db).glob("*.json")).read_text())
    assert pointer["base_generation"] == pointer0["base_generation"], "never rebuilt"
    assert pointer["files"]["image"] == pointer0["files"]["image"], "base file reused"
    assert pointer["updates"] == 5


def test_a_deleted_photo_never_appears(tmp_path, exact_max):
    db = tmp_path / "p.db"
    _add(db, range(40))
    _sync(db)
    gone = [_result_id(db, i) for i in (0, 1, 2, 39)]
    _delete(db, [0, 1, 2, 39])
    idx = _load(db)  # a search after the change, without a sync between
    for kind in KINDS:
        vi = idx[kind]
        assert not set(gone) & set(vi.ids)
        ids, _ = vi.search(np.ones(DIM, np.float32), 100)
        assert len(ids) == 36 and not set(gone) & set(ids)
        _, mat = vi.vectors(vi.ids)
        for q in mat[:5]:  # near a deleted vector, asked for as much as exists
            assert not set(gone) & set(vi.search(q, 36)[0])
        allowed = np.array(gone + [int(vi.ids[0])])  # a filter that names deleted ids too
        assert list(vi.search(mat[0], 10, allowed, exact_max=exact_max)[0]) == [vi.ids[0]]
        assert vi.scores(mat[0], np.array(gone)) == {}


def test_a_reused_result_id_is_the_new_row(tmp_path):
    """SQLite hands the largest deleted rowid out again: the cache must not confuse them."""
    db = tmp_path / "p.db"
    _add(db, range(10))
    _sync(db)
    last = _result_id(db, 9)
    _delete(db, [9])
    _add(db, [9], version=2)
    assert _result_id(db, 9) == last, "SQLite reused the id (the case under test)"
    assert _sync(db)["action"] == "update"
    vi = _load(db)["image"]
    img = _vecs(9, 2)[0] / np.linalg.norm(_vecs(9, 2)[0])
    ids, sims = vi.search(img, 1)
    assert ids[0] == last and sims[0] == pytest.approx(1.0, abs=1e-5)
    assert vi.ntotal == 10


def test_compaction_past_the_masked_share(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    _add(db, range(50))
    _sync(db)
    _delete(db, range(9))  # 9 / 50 = 18 %: masked, kept
    state = _sync(db)
    assert (state["action"], state["masked"]) == ("update", 9)
    _delete(db, [9, 10])  # 11 / 50 = 22 % > 20 %: compacted
    state = _sync(db)
    assert (state["action"], state["rebuilt"], state["masked"], state["vectors"]) == (
        "compact", True, 0, 39,
    )  # fmt: skip
    assert_same_answers(_load(db), _from_scratch(db, tmp_path, monkeypatch), db)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_delta_is_folded_into_the_base(tmp_path, monkeypatch, index_type):
    hnsw_min = 10 if index_type == "hnsw" else Limits().hnsw_min
    limits = Limits(hnsw_min=hnsw_min, delta_max=20)
    db = tmp_path / "p.db"
    _add(db, range(40))
    _sync(db, limits)
    _add(db, range(40, 55))
    _sync(db, limits)
    _delete(db, [41])
    state = _sync(db, limits)
    assert (state["delta"], state["masked"]) == (15, 1)
    _add(db, range(55, 70))  # delta 30 > 20: added into the base with the base's own add()
    state = _sync(db, limits)
    assert (state["action"], state["delta"], state["masked"], state["type"]) == (
        "update", 0, 1, index_type,
    )  # fmt: skip
    got = _load(db, limits)
    assert got["image"].base_count == 70 and got["image"].index_type == index_type
    assert_same_answers(got, _from_scratch(db, tmp_path, monkeypatch, limits), db)


def test_flat_grown_past_the_hnsw_threshold_is_rebuilt_as_hnsw(tmp_path):
    limits = Limits(hnsw_min=30)
    db = tmp_path / "p.db"
    _add(db, range(20))
    assert _sync(db, limits)["type"] == "flat"
    _add(db, range(20, 35))
    state = _sync(db, limits)
    assert (state["action"], state["type"]) == ("rebuild", "hnsw")


def test_a_pruned_or_missing_log_means_a_rebuild(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(10))
    _sync(db)
    _add(db, range(10, 12))
    for n in range(10):  # churn: 2 log rows per edit, more than the 12 results
        set_user_caption(db, "/p/0.jpg", "m", f"edit {n}", _vecs(n, 5)[1])
    # The log pruned past what the cache applied: without its 100,000 floor, `prune` keeps as
    # many positions as there are results (12).
    with Store.open(db) as s, s.db.atomic():
        assert vector_log.prune(s.db.conn, keep_min=0) > 0
    assert _sync(db)["action"] == "rebuild"
    assert _load(db)["image"].ntotal == 12
    with Store.open(db) as s:  # a database whose log is gone (as before schema 8)
        for t in ("insert", "delete", "update"):
            s.db.execute(f"DROP TRIGGER results_vector_log_{t}")
        s.db.execute("DROP TABLE vector_log")
    _add(db, [12])
    assert _sync(db)["action"] == "rebuild"
    assert _load(db)["image"].ntotal == 13


def test_only_the_changed_model_is_touched(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(10))
    _add(db, range(100, 105), model="other")
    cache.sync_indexes(db)
    _add(db, range(10, 12))
    states = cache.sync_indexes(db)
    assert (states["m"]["action"], states["other"]["action"]) == ("update", "none")

"""The compressed index (issue 11): chosen when float32 vectors would not fit the memory budget;
IVF-PQ codes in RAM, full vectors memory-mapped for exact re-ranking; it grows and masks like the
others, and its answers stay close to exact search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_vectors_update import DIM, _add, _delete, _result_id, _sql_vectors, _vecs

from indexer.config import Settings
from indexer.store.connection import connect_readonly
from search.vectors import cache, files, kinds
from search.vectors.limits import Limits

TINY_BUDGET = 1e-4  # GB: 100 kB, so even a test collection is "too big for RAM"


def _sync(db, memory_gb=TINY_BUDGET, limits: Limits = Limits()) -> dict:
    return cache.sync_indexes(db, memory_gb=memory_gb, limits=limits)["m"]


def _load(db, memory_gb=TINY_BUDGET, limits: Limits = Limits()):
    conn = connect_readonly(db)
    try:
        return cache.load_model(db, conn, "m", memory_gb=memory_gb, limits=limits)
    finally:
        conn.close()


def _recall(vi, db, kind: str, k: int = 10, queries: int = 40) -> float:
    ids, mat = _sql_vectors(db, kind)
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(queries):
        q = mat[rng.integers(len(mat))] + 0.3 * rng.standard_normal(DIM).astype(np.float32)
        want = set(ids[np.argsort(-(mat @ q))[:k]])
        hits += len(want & set(vi.search(q, k)[0]))
    return hits / (k * queries)


def test_the_memory_budget_chooses_the_type():
    n, dim = 1_000_000, 512
    # float32 of both kinds at 1M x 512: 4.1 GB exact, ~4.7 GB HNSW; IVF-PQ ~0.16 GB.
    assert kinds.choose_type(n, dim, 8, 300_000) == "hnsw"
    assert kinds.choose_type(n, dim, 4, 300_000) == "ivfpq"
    assert kinds.choose_type(10_000, dim, 8, 300_000) == "flat"
    assert kinds.memory_bytes("ivfpq", n, dim) < 0.05 * kinds.memory_bytes("flat", n, dim)
    assert Settings().vector_memory_gb == 8.0


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMGCAP_VECTOR_MEMORY_GB", "0.5")
    assert Settings.from_env().vector_memory_gb == 0.5
    assert cache.default_memory_gb() == 0.5


def test_compressed_index_is_close_to_exact_and_scores_exactly(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(3000))
    state = _sync(db)
    assert (state["type"], state["action"]) == ("ivfpq", "rebuild")
    pointer = json.loads(next(files.index_dir(db).glob("*.json")).read_text())
    assert {"image.raw", "caption.raw"} <= set(pointer["files"])
    idx = _load(db)
    vi = idx["image"]
    assert vi.index_type == "ivfpq" and isinstance(vi.raw, np.memmap), "vectors stay on disk"
    assert _recall(vi, db, "image") >= 0.9
    ids, mat = _sql_vectors(db, "image")
    q = mat[17]
    got_ids, got_sims = vi.search(q, 10)
    np.testing.assert_allclose(got_sims, mat[np.searchsorted(ids, got_ids)] @ q, rtol=1e-5)
    assert got_ids[0] == ids[17] and got_sims[0] == pytest.approx(1.0, abs=1e-5)
    # Filtered: exact over the subset, or an ID selector inside IVF.
    allowed = ids[::5]
    want = allowed[np.argsort(-(mat[::5] @ q))[:10]]
    assert list(vi.search(q, 10, allowed)[0]) == list(want)
    assert list(vi.search(q, 10, allowed, exact_max=0)[0]) == list(want)


def test_compressed_index_grows_masks_and_folds(tmp_path):
    import faiss

    limits = Limits(delta_max=150)
    db = tmp_path / "p.db"
    _add(db, range(2000))
    _sync(db, limits=limits)
    _add(db, range(2000, 2100))
    gone = [_result_id(db, i) for i in (5, 2050)]
    state = _sync(db, limits=limits)
    assert (state["action"], state["type"], state["delta"]) == ("update", "ivfpq", 100)
    _delete(db, [5, 2050])
    assert _sync(db, limits=limits)["masked"] == 2
    vi = _load(db, limits=limits)["image"]
    ids, mat = _sql_vectors(db, "image")
    assert not set(gone) & set(vi.ids) and vi.ntotal == 2098
    for q in (mat[np.searchsorted(ids, 2100)], _vecs(5)[0]):  # near a new one, a deleted one
        got, _ = vi.search(q, 20)
        assert not set(gone) & set(got)
        faiss.cvar.indexIVF_stats.reset()
        got = vi.search(q, 20, ids[::2], exact_max=0)[0]  # filters through the IVF selector
        assert faiss.cvar.indexIVF_stats.nq == 1, "searched the IVF lists, not the subset"
        assert not set(gone) & set(got)
        assert len(got) == 20 and set(got) <= set(ids[::2])
    new_id = _result_id(db, 2080)
    assert vi.search(mat[np.searchsorted(ids, new_id)], 1)[0][0] == new_id
    _add(db, range(2100, 2160))  # delta 160 > 150: folded into the IVF-PQ base
    state = _sync(db, limits=limits)
    assert (state["delta"], state["type"], state["masked"]) == (0, "ivfpq", 2)
    vi = _load(db, limits=limits)["image"]
    assert vi.base_count == 2160 and vi.raw.shape == (2160, DIM)
    assert _recall(vi, db, "image") >= 0.9
    assert not set(gone) & set(vi.search(_vecs(5)[0], 50)[0])

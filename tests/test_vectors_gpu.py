"""The FAISS GPU path (issue 11): with faiss-gpu and a visible CUDA device, the cache's exact
indexes are searched on the GPU; the answers equal the CPU's (ids, scores to 1e-4), tombstones
and filters included. The `gpu` tests are deselected by default (`pytest -m gpu`, run by
benchmarks/gpu_check.sh) and skipped when FAISS has no GPU support or no GPU is visible; the same
checks run everywhere against a stand-in GPU (a CPU index that, like GPU flat, takes no search
parameters), so the GPU-side logic cannot rot on CPU-only CI."""

from __future__ import annotations

import numpy as np
import pytest
from test_vectors_update import _add, _delete, _result_id

from indexer.store.connection import connect_readonly
from search.vectors import cache, kinds
from search.vectors.index import VectorIndex
from search.vectors.kinds import KINDS
from search.vectors.limits import Limits


@pytest.fixture
def gpu():
    if not kinds.gpu_available():
        pytest.skip("needs a GPU build of FAISS (pip install 'imgcap[gpu]') and a CUDA device")


class _NoParams:
    """Stands in for a GPU flat index: search(q, k) only, no selector."""

    def __init__(self, index):
        import faiss

        self.index = faiss.IndexFlatIP(index.d)
        self.index.add(index.reconstruct_n(0, index.ntotal))
        self.calls = 0

    def search(self, q, k):
        assert k <= kinds.GpuFlat.MAX_K
        self.calls += 1
        return self.index.search(q, k)


@pytest.fixture
def stand_in_gpu(monkeypatch):
    import faiss

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(cache, "_gpu_resources", None)  # not kept for a real GPU later
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(
        faiss, "index_cpu_to_gpu", lambda res, dev, ix: _NoParams(ix), raising=False
    )


def _load(db, limits: Limits = Limits()):
    conn = connect_readonly(db)
    try:
        return cache.load_model(db, conn, "m", memory_gb=8, limits=limits)
    finally:
        conn.close()


def _cpu_twin(vi: VectorIndex) -> VectorIndex:
    """The same state, searched on the CPU only."""
    unwrap = lambda ix: ix.cpu if isinstance(ix, kinds.GpuFlat) else ix  # noqa: E731
    delta = unwrap(vi.delta) if vi.delta is not None else None
    return VectorIndex(
        vi.model, vi.kind, unwrap(vi.index), vi.position_ids, delta, vi.masked, vi.raw
    )


@pytest.mark.gpu
@pytest.mark.parametrize("exact_max", [10**9, 0])  # filters gathered exactly / by selector
def test_gpu_search_equals_cpu(tmp_path, gpu, exact_max):
    _compare_with_cpu(tmp_path, exact_max)


@pytest.mark.parametrize("exact_max", [10**9, 0])
def test_stand_in_gpu_search_equals_cpu(tmp_path, stand_in_gpu, exact_max):
    assert kinds.gpu_available()
    searched_on_gpu = _compare_with_cpu(tmp_path, exact_max)
    assert searched_on_gpu > 0, "the GPU copies were searched (tombstones: k + masked)"


def assert_same_ranking(g_ids, g_sims, c_ids, c_sims, tol=1e-4) -> None:
    """Equal lists, except that GPU float rounding (~1e-7) may swap neighbours whose scores
    differ by less than that: then each differing id scores (on the CPU) what the CPU list has
    at that rank, within tol."""
    assert len(g_ids) == len(c_ids)
    np.testing.assert_allclose(g_sims, c_sims, atol=tol)
    cpu_score = dict(zip(c_ids.tolist(), c_sims.tolist(), strict=True))
    for rank, (g, c) in enumerate(zip(g_ids.tolist(), c_ids.tolist(), strict=True)):
        if g != c:
            assert abs(cpu_score.get(g, g_sims[rank]) - c_sims[rank]) <= tol, (rank, g, c)


def _compare_with_cpu(tmp_path, exact_max) -> int:
    limits = Limits(hnsw_min=100)  # ignored on GPU: exact at every size
    db = tmp_path / "p.db"
    _add(db, range(3000))
    cache.sync_indexes(db, memory_gb=8, limits=limits)
    _add(db, range(3000, 3200))  # a delta
    gone = [_result_id(db, i) for i in (1, 2, 3050)]
    cache.sync_indexes(db, memory_gb=8, limits=limits)
    _delete(db, [1, 2, 3050])  # tombstones in the base and in the delta
    idx = _load(db, limits)
    rng = np.random.default_rng(0)
    for kind in KINDS:
        vi = idx[kind]
        assert isinstance(vi.index, kinds.GpuFlat) and vi.index_type == "flat"
        assert isinstance(vi.delta, kinds.GpuFlat) and vi.masked_count == 3
        cpu = _cpu_twin(vi)
        _, mat = vi.vectors(vi.ids)
        for _ in range(10):
            q = mat[rng.integers(len(mat))] + 0.1 * rng.standard_normal(mat.shape[1])
            q = (q / np.linalg.norm(q)).astype(np.float32)
            for k, allowed in ((10, None), (1000, None), (2500, None), (10, vi.ids[::7])):
                g_ids, g_sims = vi.search(q, k, allowed, exact_max=exact_max)
                c_ids, c_sims = cpu.search(q, k, allowed, exact_max=exact_max)
                assert_same_ranking(g_ids, g_sims, c_ids, c_sims)
                assert not set(gone) & set(g_ids)
                if allowed is not None:  # brute force over the subset, whichever path ran
                    found, vecs = vi.vectors(allowed)
                    top = np.argsort(-(vecs @ q))[:k]
                    assert_same_ranking(g_ids, g_sims, found[top], (vecs @ q)[top])
    return sum(getattr(vi.index.gpu, "calls", 0) for vi in idx.values())


@pytest.mark.gpu
def test_gpu_copy_reconstructs_and_scores_from_the_cpu_original(tmp_path, gpu):
    db = tmp_path / "p.db"
    _add(db, range(200))
    vi = _load(db)["image"]
    cpu = _cpu_twin(vi)
    q = vi.vectors(vi.ids[:1])[1][0]
    assert vi.scores(q, vi.ids[:20]) == pytest.approx(cpu.scores(q, vi.ids[:20]), abs=1e-6)

"""One model's vectors of one kind as a searchable index: base + delta positions, tombstones
excluded inside FAISS, filtered searches exact when small. Built and kept up to date by
search/vectors/cache.py."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from search.vectors.kinds import IVF_NPROBE, RERANK, GpuFlat, type_of

# Beam width per query. Measured at 1M clustered 512-d vectors (bench_search.py): recall@10
# 0.9865 at 128, 0.9915 at 192, 0.9965 at 256 (p95 0.85 ms on 2 cores). Raised to k when a
# caller asks for more neighbours than this.
HNSW_EF_SEARCH = 256

# A filtered search over at most this many vectors is done exactly (gather + matmul): cheaper than
# a selector scan and, unlike HNSW with a selector, it cannot miss anything.
EXACT_SUBSET_MAX = 50_000


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.float32)


@dataclass(eq=False)
class VectorIndex:
    """One model's vectors of one kind, searchable by cosine similarity.

    Positions 0..B-1 are the base index, B.. the delta; `position_ids` says which result each
    position holds. A masked position is a tombstone: never returned, never counted."""

    model: str
    kind: str  # "image" | "caption"
    index: object  # the base: faiss IndexFlatIP, IndexHNSWFlat or IndexIVFPQ (or a GpuFlat)
    position_ids: np.ndarray  # (P,) int64
    delta: object | None = None  # IndexFlatIP of the rows added since the base was built
    masked: np.ndarray | None = None  # (P,) bool; None = nothing masked
    raw: np.ndarray | None = None  # (B, D) float32 full vectors of an IVF-PQ base (memory map)
    _live: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def base_count(self) -> int:
        return int(self.index.ntotal)

    @property
    def delta_count(self) -> int:
        return int(self.delta.ntotal) if self.delta is not None else 0

    @property
    def masked_count(self) -> int:
        return int(self.masked.sum()) if self.masked is not None else 0

    @property
    def index_type(self) -> str:
        return type_of(self.index)

    def _live_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(live result ids ascending, their positions)."""
        if self._live is None:
            pos = np.arange(len(self.position_ids), dtype=np.int64)
            if self.masked is not None:
                pos = pos[~self.masked]
            ids = self.position_ids[pos]
            # Usually sorted already (a build is by id, new rows have new ids): skip the sort,
            # which costs ~0.1 s per cold search at 1M.
            if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
                order = np.argsort(ids, kind="stable")
                ids, pos = ids[order], pos[order]
            self._live = (ids, pos)
        return self._live

    @property
    def ids(self) -> np.ndarray:
        """(N,) result ids in the index (tombstones left out), ascending."""
        return self._live_sorted()[0]

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def positions(self, result_ids: np.ndarray) -> np.ndarray:
        """Positions of the given result ids (ids not in the index are dropped)."""
        result_ids = np.asarray(result_ids, dtype=np.int64)
        ids, pos = self._live_sorted()
        if len(ids) == 0 or len(result_ids) == 0:
            return np.empty(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(ids, result_ids), len(ids) - 1)
        return pos[at[ids[at] == result_ids]]

    def reconstruct(self, pos: np.ndarray) -> np.ndarray:
        """(n, D) normalised vectors at these positions (exact, whatever the base type)."""
        import faiss

        pos = np.asarray(pos, dtype=np.int64)
        out = np.empty((len(pos), self.index.d), dtype=np.float32)
        nb = self.base_count
        inb = pos < nb
        if inb.any():
            if self.raw is not None:
                out[inb] = self.raw[pos[inb]]
            else:
                base = self.index
                if hasattr(base, "hnsw"):
                    base = faiss.downcast_index(base.storage)
                out[inb] = base.reconstruct_batch(pos[inb])
        if not inb.all():
            out[~inb] = self.delta.reconstruct_batch(pos[~inb] - nb)
        return out

    def vectors(self, result_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, (n, D) normalised vectors) for the given result ids."""
        pos = self.positions(result_ids)
        if len(pos) == 0:
            return np.empty(0, np.int64), np.empty((0, self.index.d), np.float32)
        return self.position_ids[pos], self.reconstruct(pos)

    def scores(self, query: np.ndarray, result_ids: np.ndarray) -> dict[int, float]:
        """Exact cosine of `query` (D,) with each given result id present in the index."""
        found, vecs = self.vectors(result_ids)
        sims = vecs @ query.astype(np.float32)
        return {int(i): float(s) for i, s in zip(found, sims, strict=True)}

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        exact_max: int = EXACT_SUBSET_MAX,
        ef_search: int = HNSW_EF_SEARCH,
        nprobe: int = IVF_NPROBE,
        rerank: int = RERANK,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (result ids, cosines), best first; `allowed` restricts to those result ids.

        The restriction (and the tombstones) apply inside the search (exact over the subset
        when it holds at most `exact_max` vectors, else a FAISS selector), so k hits come back
        whenever k allowed vectors exist. `ef_search` (HNSW beam), `nprobe` (IVF lists) and
        `rerank` (compressed candidates re-scored exactly) trade speed for recall."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if self.ntotal == 0 or k <= 0:
            return _empty()
        valid = None
        if allowed is not None:
            pos = np.unique(self.positions(allowed))
            if len(pos) == 0:
                return _empty()
            if len(pos) <= exact_max:
                sims = self.reconstruct(pos) @ q[0]
                return self._best(pos, sims, k)
            valid = np.zeros(len(self.position_ids), dtype=bool)
            valid[pos] = True
        elif self.masked is not None and self.masked.any():
            valid = ~self.masked
        nb = self.base_count
        base_k = max(rerank, 10 * k) if self.raw is not None else k
        base_valid = None if valid is None else valid[:nb]
        pos, sims = self._search_part(self.index, q, base_k, base_valid, ef_search, nprobe)
        if self.raw is not None and len(pos):  # PQ scores are approximate: re-score exactly
            sims = self.reconstruct(pos) @ q[0]
        if self.delta_count:
            dv = None if valid is None else valid[nb:]
            dpos, dsims = self._search_part(self.delta, q, k, dv, ef_search, nprobe)
            pos, sims = np.concatenate([pos, dpos + nb]), np.concatenate([sims, dsims])
        return self._best(pos, sims, k)

    def _best(self, pos: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((pos, -sims))[:k]  # best first; equal scores by position
        return self.position_ids[pos[order]], sims[order].astype(np.float32)

    def _search_part(
        self, index, q: np.ndarray, k: int, valid: np.ndarray | None, ef_search: int, nprobe: int
    ):
        """Top-k positions (local to this part) and scores of one FAISS index; `valid` (bool per
        position) excludes the rest inside the search."""
        import faiss

        nt = int(index.ntotal)
        nvalid = nt if valid is None else int(valid.sum())
        if nt == 0 or nvalid == 0:
            return _empty()
        k = min(k, nvalid)
        if nvalid == nt:
            valid = None
        if isinstance(index, GpuFlat) and k > GpuFlat.MAX_K:
            index = index.cpu  # deeper than GPU search goes
        if valid is not None and isinstance(index, GpuFlat) and k + nt - nvalid <= GpuFlat.MAX_K:
            # GPU flat has no selector: ask for as many more as are excluded, then drop them.
            D, idx = index.gpu.search(q, k + nt - nvalid)
            keep = (idx[0] >= 0) & valid[np.maximum(idx[0], 0)]
            return idx[0][keep][:k].astype(np.int64), D[0][keep][:k]
        sel = bitmap = None
        widen = 1
        if valid is not None:
            bitmap = np.packbits(valid, bitorder="little")
            sel = faiss.IDSelectorBitmap(nt, faiss.swig_ptr(bitmap))
            # A selective filter leaves HNSW fewer valid nodes per hop; widen the beam to match.
            widen = max(1, nt // nvalid)
        params = _params(index, k, sel, widen, ef_search, nprobe)
        with _one_thread(faiss):
            D, idx = index.search(q, k, params=params)
        del bitmap  # kept alive until the search returned (the selector holds a raw pointer)
        ok = idx[0] >= 0
        return idx[0][ok].astype(np.int64), D[0][ok]


def _params(index, k: int, sel, widen: int, ef_search: int, nprobe: int):
    import faiss

    if hasattr(index, "hnsw"):
        p = faiss.SearchParametersHNSW()
        p.efSearch = max(ef_search * widen, k)
    elif hasattr(index, "nprobe"):
        p = faiss.SearchParametersIVF()
        p.nprobe = min(int(index.nlist), nprobe * widen)
    else:
        p = faiss.SearchParameters()
    if sel is not None:
        p.sel = sel
    return p


@contextlib.contextmanager
def _one_thread(faiss):
    """One query is one memory scan: splitting it over OpenMP threads cost more than it saved
    (1M vectors exact, 2 cores: p95 137 ms on 2 threads, 70 ms on 1). Builds keep all threads."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)

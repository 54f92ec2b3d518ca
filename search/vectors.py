"""The FAISS cache: per-model vector indexes built from SQLite, never the source of truth.

Layout beside the database `photos.db` (every file written once, temp + rename, never changed):

    photos.db.faiss/<slug>.json                       the pointer: which files hold the cache
    photos.db.faiss/<slug>.g<gen>.<tok>.ids.npy       (P,) int64 result id at each position
    photos.db.faiss/<slug>.g<gen>.<tok>.masked.npy    (P,) bool, positions deleted or replaced
    photos.db.faiss/<slug>.g<gen>.<tok>.<kind>.faiss  the base index (flat / HNSW / IVF-PQ)
    photos.db.faiss/<slug>.g<gen>.<tok>.<kind>.delta.faiss  exact index of rows added since
    photos.db.faiss/<slug>.g<gen>.<tok>.<kind>.raw.npy      full vectors of an IVF-PQ base

The pointer is renamed last, so a reader sees the old set of files or the new one, never a mix.
Vectors are L2-normalised here, so inner product = cosine.

Growing without rebuilding: the cache is stale when the store's `vector_state` (generation,
count) differs from the pointer's, or its change log (indexer/store/vector_log.py) has entries for
the model after the pointer's position. Any writer of results brings it up to date with
`sync_indexes(db_path)` after committing (`imgcap index` at the end of a run, the Ray driver
after its merge); a search that finds it behind does the same first.
It is then brought up to date from the log: the ids that changed since the pointer's log
position are masked where they were (a tombstone: deleted, replaced, or a caption edited) and
their current rows, if any, are appended to the delta. The delta is exact and small; past
`DELTA_MAX` rows it is folded into the base with the base's own incremental `add` (HNSW links the
new nodes into the existing graph; nothing is rebuilt). Searches run over base and delta with the
tombstones excluded inside FAISS (an ID selector), so a deleted photo is never returned. When
tombstones pass `COMPACT_MASKED_SHARE` of the positions, the next update compacts: a full
rebuild from SQLite, which also re-chooses the index type. A rebuild also happens when the log
cannot tell what changed (a database from before schema 8, or one pruned past the pointer).

Index type (search/faiss_index.py): exact up to `HNSW_MIN_VECTORS`, HNSW above it, IVF-PQ when
the float32 vectors would not fit `Settings.vector_memory_gb`; with a GPU build of FAISS and a
visible GPU, exact search runs on the GPU at every size instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import store
from search import index_cache
from search.faiss_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    IVF_NPROBE,
    KINDS,
    RERANK,
    GpuFlat,
    choose_type,
    gpu_available,
    make_compressed,
    make_index,
    to_gpu,
    type_of,
)
from search.index_cache import Part

__all__ = [
    "HNSW_EF_CONSTRUCTION",
    "HNSW_M",
    "KINDS",
    "VectorIndex",
    "build_model",
    "cache_state",
    "gpu_available",
    "index_dir",
    "load_model",
    "sync_indexes",
]

# Exact flat search on 2 CPU cores costs ~10 ms per 100k vectors (memory bound), so it stays the
# default until it nears the 100 ms budget; HNSW takes over above this size.
HNSW_MIN_VECTORS = 300_000
# Beam width per query. Measured at 1M clustered 512-d vectors (bench_search.py): recall@10
# 0.9865 at 128, 0.9915 at 192, 0.9965 at 256 (p95 0.85 ms on 2 cores). Raised to k when a
# caller asks for more neighbours than this.
HNSW_EF_SEARCH = 256

# A filtered search over at most this many vectors is done exactly (gather + matmul): cheaper than
# a selector scan and, unlike HNSW with a selector, it cannot miss anything.
EXACT_SUBSET_MAX = 50_000

# Rows the exact delta may hold before they are folded into the base: searching 50k exact costs
# ~5 ms on 2 cores, and folding 50k into a 1M HNSW takes about a minute (BENCHMARKS.md).
DELTA_MAX = 50_000
# Tombstones past this share of the positions make the next update a full rebuild (compaction):
# below it a masked search wastes < 20 % of its scan / graph walk; above it the rebuild pays off.
COMPACT_MASKED_SHARE = 0.20

_BUILD_CHUNK = 8192  # rows per SQLite fetch while building
_write_atomic = index_cache.write_atomic  # every cache file goes through this (tests replace it)


def default_memory_gb() -> float:
    from indexer.config import Settings

    return Settings.from_env().vector_memory_gb


def index_dir(db_path: Path) -> Path:
    return Path(str(db_path) + ".faiss")


def model_slug(model: str) -> str:
    """File-safe name for a model (a model can be a directory path): readable part + short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model)[:40]
    return f"{readable}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"


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
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (result ids, cosines), best first; `allowed` restricts to those result ids.

        The restriction (and the tombstones) apply inside the search (exact over the subset, or
        a FAISS selector), so k hits come back whenever k allowed vectors exist."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if self.ntotal == 0 or k <= 0:
            return _empty()
        valid = None
        if allowed is not None:
            pos = np.unique(self.positions(allowed))
            if len(pos) == 0:
                return _empty()
            if len(pos) <= EXACT_SUBSET_MAX:
                sims = self.reconstruct(pos) @ q[0]
                return self._best(pos, sims, k)
            valid = np.zeros(len(self.position_ids), dtype=bool)
            valid[pos] = True
        elif self.masked is not None and self.masked.any():
            valid = ~self.masked
        nb = self.base_count
        base_k = max(RERANK, 10 * k) if self.raw is not None else k
        pos, sims = self._search_part(self.index, q, base_k, None if valid is None else valid[:nb])
        if self.raw is not None and len(pos):  # PQ scores are approximate: re-score exactly
            sims = self.reconstruct(pos) @ q[0]
        if self.delta_count:
            dv = None if valid is None else valid[nb:]
            dpos, dsims = self._search_part(self.delta, q, k, dv)
            pos, sims = np.concatenate([pos, dpos + nb]), np.concatenate([sims, dsims])
        return self._best(pos, sims, k)

    def _best(self, pos: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((pos, -sims))[:k]  # best first; equal scores by position
        return self.position_ids[pos[order]], sims[order].astype(np.float32)

    def _search_part(self, index, q: np.ndarray, k: int, valid: np.ndarray | None):
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
        with _one_thread(faiss):
            D, idx = index.search(q, k, params=_params(index, k, sel, widen))
        del bitmap  # kept alive until the search returned (the selector holds a raw pointer)
        ok = idx[0] >= 0
        return idx[0][ok].astype(np.int64), D[0][ok]


def _params(index, k: int, sel, widen: int = 1):
    import faiss

    if hasattr(index, "hnsw"):
        p = faiss.SearchParametersHNSW()
        p.efSearch = max(HNSW_EF_SEARCH * widen, k)
    elif hasattr(index, "nprobe"):
        p = faiss.SearchParametersIVF()
        p.nprobe = min(int(index.nlist), IVF_NPROBE * widen)
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


def _make_index(mat: np.ndarray, hnsw: bool):  # the name benchmarks/bench_search.py uses
    return make_index(mat, hnsw)


# ----------------------------------------------------------------------------------- build
def build_model(
    db_path: Path, conn: sqlite3.Connection, model: str, memory_gb: float | None = None
) -> dict[str, VectorIndex]:
    """Rebuild one model's indexes from SQLite, write them beside the DB, return them loaded.

    When the directory is not writable (a read-only photo library) or the disk is full, the
    indexes are returned in memory only (one warning per process) and rebuilt on the next
    search."""
    memory_gb = default_memory_gb() if memory_gb is None else memory_gb
    d, slug = index_dir(db_path), model_slug(model)
    conn.execute("BEGIN")  # one read snapshot: state and rows agree even while an index run writes
    try:
        snap = index_cache.snapshot(conn, model)
        n, dim = store.result_vector_shape(conn, model)
        kind_type = choose_type(n, dim, memory_gb, HNSW_MIN_VECTORS)
        mats = _matrices(d, slug, kind_type, n, dim)
        ids = np.empty(n, dtype=np.int64)
        at = 0
        for rows in store.iter_result_vectors(conn, model, _BUILD_CHUNK):
            ids[at : at + len(rows)] = [r[0] for r in rows]
            index_cache.decode_rows(rows, at, mats, dim)
            at += len(rows)
    finally:
        conn.execute("COMMIT")
    parts = {}
    for kind in KINDS:
        if kind_type == "ivfpq":
            parts[kind] = Part(make_compressed(mats[kind]), None, mats[kind])
        else:
            parts[kind] = Part(make_index(mats[kind], kind_type == "hnsw"))
    built = _assemble(model, ids, None, parts)
    _save(db_path, model, snap, ids, None, parts, built)
    return built


def _matrices(d: Path, slug: str, kind_type: str, n: int, dim: int) -> dict[str, np.ndarray]:
    if kind_type == "ivfpq":
        try:
            return index_cache.scratch_matrices(d, slug, n, dim)
        except OSError as e:
            _cache_not_saved(d, e)
    return {kind: np.zeros((n, dim), dtype=np.float32) for kind in KINDS}


def _assemble(model: str, ids, masked, parts: dict[str, Part]) -> dict[str, VectorIndex]:
    return {
        kind: VectorIndex(model, kind, p.base, ids, p.delta, masked, p.raw)
        for kind, p in parts.items()
    }


def _save(db_path, model, snap, ids, masked, parts, built, previous=None, reuse=None) -> None:
    """Write one cache state and its pointer (`previous`: the pointer an update started from;
    `reuse`: its files kept as they are); on a read-only folder or full disk, warn once."""
    d = index_dir(db_path)
    try:
        vi = built["image"]
        summary = {
            "model": model,
            "vectors": vi.ntotal,
            "masked": vi.masked_count,
            "delta": vi.delta_count,
            "dim": int(vi.index.d),
            "type": vi.index_type,
        }
        slug = model_slug(model)
        index_cache.save_state(
            d, slug, snap, ids, masked, parts, summary, previous, reuse, _write_atomic
        )
    except (OSError, RuntimeError) as e:  # faiss.write_index raises RuntimeError (disk full)
        _cache_not_saved(d, e)  # serve from memory


# ------------------------------------------------------------------------------ load / sync
def _load(db_path: Path, pointer: dict) -> dict[str, VectorIndex] | None:
    try:
        ids, masked, parts = index_cache.load_set(index_dir(db_path), pointer)
    except (OSError, KeyError, RuntimeError, ValueError):
        return None  # deleted under us by a newer writer, or damaged: caller rebuilds
    return _assemble(pointer["model"], ids, masked, parts)


def _current(
    db_path: Path, conn: sqlite3.Connection, model: str, memory_gb: float | None
) -> tuple[dict[str, VectorIndex], str]:
    """(the model's indexes, up to date; what it took: "none" | "update" | "compact" |
    "rebuild")."""
    memory_gb = default_memory_gb() if memory_gb is None else memory_gb
    d, slug = index_dir(db_path), model_slug(model)
    pointer = index_cache.read_pointer(d, slug)
    loaded = _load(db_path, pointer) if pointer is not None else None
    if loaded is None and pointer is not None:  # a writer may have replaced the set meanwhile
        again = index_cache.read_pointer(d, slug)
        if again is not None and again != pointer:
            pointer, loaded = again, _load(db_path, again)
    if loaded is not None:
        if index_cache.is_fresh(pointer, conn, model):
            return loaded, "none"
        from search import index_update

        limits = index_update.Limits(HNSW_MIN_VECTORS, DELTA_MAX, COMPACT_MASKED_SHARE)
        try:
            updated = index_update.update(db_path, conn, pointer, loaded, memory_gb, limits)
        except (OSError, RuntimeError) as e:  # a fold's scratch file on a full disk
            _cache_not_saved(d, e)
            updated = "rebuild"
        if not isinstance(updated, str):
            return updated, "update"
        if updated == "compact":
            return build_model(db_path, conn, model, memory_gb), "compact"
    return build_model(db_path, conn, model, memory_gb), "rebuild"


def load_model(
    db_path: Path, conn: sqlite3.Connection, model: str, memory_gb: float | None = None
) -> dict[str, VectorIndex]:
    """The model's {kind: VectorIndex}, brought up to date first if stale (incrementally when
    the change log allows, else rebuilt). `memory_gb`: Settings.vector_memory_gb (None: from
    the environment)."""
    return _maybe_gpu(_current(Path(db_path), conn, model, memory_gb)[0])


_gpu_resources = None


def _maybe_gpu(indexes: dict[str, VectorIndex]) -> dict[str, VectorIndex]:
    if not gpu_available():
        return indexes
    global _gpu_resources
    if _gpu_resources is None:  # one per process: creating it costs more than a search
        import faiss

        _gpu_resources = faiss.StandardGpuResources()
    res = _gpu_resources
    for vi in indexes.values():
        vi.index = to_gpu(vi.index, res)
        if vi.delta is not None:
            vi.delta = to_gpu(vi.delta, res)
    return indexes


def sync_indexes(db_path: Path, memory_gb: float | None = None) -> dict:
    """Bring every model's FAISS files in line with SQLite, as `imgcap index` does at the end
    of a run (and any other writer of results should after committing). Incremental when the
    change log allows. Returns, per model: generation, count, type, action ("none" | "update" |
    "compact" | "rebuild"), rebuilt (a full build), fresh, vectors, masked, delta."""
    db_path = Path(db_path)
    conn = store.connect_readonly(db_path)
    try:
        out = {}
        for model in store.models_with_results(conn):
            indexes, action = _current(db_path, conn, model, memory_gb)
            snap = index_cache.snapshot(conn, model)
            pointer = index_cache.read_pointer(index_dir(db_path), model_slug(model))
            vi = indexes["image"]
            out[model] = {
                "generation": snap.state[0],
                "count": snap.state[1],
                "type": vi.index_type,
                "action": action,
                "rebuilt": action in ("rebuild", "compact"),
                "fresh": index_cache.is_fresh(pointer, conn, model),
                "vectors": vi.ntotal,
                "masked": vi.masked_count,
                "delta": vi.delta_count,
            }
        return out
    finally:
        conn.close()


def cache_state(db_path: Path, conn: sqlite3.Connection) -> dict:
    """Without building anything: per model, whether the cache is present and fresh (for status)."""
    out = {}
    for model in store.models_with_results(conn):
        pointer = index_cache.read_pointer(index_dir(db_path), model_slug(model))
        if pointer is None:
            out[model] = {"state": "missing"}
        else:
            out[model] = {
                "state": "fresh" if index_cache.is_fresh(pointer, conn, model) else "stale",
                "type": pointer.get("type"),
                "vectors": pointer.get("vectors"),
                "masked": pointer.get("masked"),
                "generation": pointer.get("generation"),
            }
    return out


# -------------------------------------------------------------------------------- warnings
def _default_warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)  # as the CLI prints its warnings


# Where "the cache could not be saved" goes (one line on stderr unless a caller replaces it).
warn: Callable[[str], None] = _default_warn
_warned: set[str] = set()


def _cache_not_saved(d: Path, e: Exception) -> None:
    """Say once per process and folder why the cache stays in memory: it explains why every
    search rebuilds it (slower), and a full disk is something the user wants to know about."""
    if str(d) in _warned:
        return
    _warned.add(str(d))
    no_space = getattr(e, "errno", None) == errno.ENOSPC or "no space" in str(e).lower()
    if no_space:
        why = "the disk is full"
    elif getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "its folder is read-only"
    else:
        why = str(getattr(e, "strerror", None) or e).strip().splitlines()[-1]
    warn(f"search index cache not saved to {d} ({why}); searching from memory")

"""The FAISS cache: per-model vector indexes built from SQLite, never the source of truth.

Layout beside the database `photos.db`:

    photos.db.faiss/<model-slug>.json                    which generation the files below hold
    photos.db.faiss/<model-slug>.g<gen>.ids.npy          (N,) int64 result ids, ascending
    photos.db.faiss/<model-slug>.g<gen>.image.faiss      image vectors, L2-normalised
    photos.db.faiss/<model-slug>.g<gen>.caption.faiss    caption vectors, L2-normalised

Files of one generation are written once (temp + rename) and never modified; the JSON pointer is
renamed last, so a reader sees either the old generation or the new one, never a mix. An index is
stale when the store's `vector_state` (generation, count) for the model differs from the pointer's;
it is then rebuilt from SQLite. Vectors are L2-normalised here, so inner product = cosine.

Index type: exact (IndexFlatIP) up to `HNSW_MIN_VECTORS`, HNSW above it (recall@10 measured in
benchmarks/bench_search.py). With a GPU build of FAISS and a visible GPU, exact search runs on the
GPU at every size instead (faster than CPU HNSW and exact).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import store

KINDS = ("image", "caption")

# Exact flat search on 2 CPU cores costs ~10 ms per 100k vectors (memory bound), so it stays the
# default until it nears the 100 ms budget; HNSW takes over above this size.
HNSW_MIN_VECTORS = 300_000
HNSW_M = 32  # graph degree: 32 keeps recall@10 >= 0.99 on 512-d CLIP-like data
HNSW_EF_CONSTRUCTION = 80
# Beam width per query. Measured at 1M clustered 512-d vectors (bench_search.py): recall@10
# 0.9865 at 128, 0.9915 at 192, 0.9965 at 256 (p95 0.85 ms on 2 cores). Raised to k when a
# caller asks for more neighbours than this.
HNSW_EF_SEARCH = 256

# A filtered search over at most this many vectors is done exactly (gather + matmul): cheaper than
# a selector scan and, unlike HNSW with a selector, it cannot miss anything.
EXACT_SUBSET_MAX = 50_000

_BUILD_CHUNK = 8192  # rows per SQLite fetch while building


def index_dir(db_path: Path) -> Path:
    return Path(str(db_path) + ".faiss")


def model_slug(model: str) -> str:
    """File-safe name for a model (a model can be a directory path): readable part + short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model)[:40]
    return f"{readable}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@dataclass
class VectorIndex:
    """One model's vectors of one kind, searchable by cosine similarity."""

    model: str
    kind: str  # "image" | "caption"
    index: object  # faiss.Index: IndexFlatIP or IndexHNSWFlat
    ids: np.ndarray  # (N,) int64 result ids; position i in the index holds result ids[i]

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    @property
    def index_type(self) -> str:
        return "hnsw" if hasattr(self.index, "hnsw") else "flat"

    def _flat(self):
        """The exact vector storage (for HNSW, the graph's own flat storage)."""
        import faiss

        if hasattr(self.index, "hnsw"):
            return faiss.downcast_index(self.index.storage)
        return self.index

    def positions(self, result_ids: np.ndarray) -> np.ndarray:
        """Index positions of the given result ids (ids not in the index are dropped)."""
        result_ids = np.asarray(result_ids, dtype=np.int64)
        if len(self.ids) == 0 or len(result_ids) == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.searchsorted(self.ids, result_ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        return pos[self.ids[pos] == result_ids]

    def vectors(self, result_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, (n, D) normalised vectors) for the given result ids."""
        pos = self.positions(result_ids)
        if len(pos) == 0:
            return np.empty(0, np.int64), np.empty((0, self.index.d), np.float32)
        return self.ids[pos], self._flat().reconstruct_batch(pos.astype(np.int64))

    def scores(self, query: np.ndarray, result_ids: np.ndarray) -> dict[int, float]:
        """Exact cosine of `query` (D,) with each given result id present in the index."""
        found, vecs = self.vectors(result_ids)
        sims = vecs @ query.astype(np.float32)
        return {int(i): float(s) for i, s in zip(found, sims, strict=True)}

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (result ids, cosines), best first; `allowed` restricts to those result ids.

        The restriction happens inside the search (exact over the subset, or a FAISS selector), so
        k hits come back whenever k allowed vectors exist.
        """
        import faiss

        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        n = self.ntotal
        if n == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if allowed is None:
            k = min(k, n)
            with _one_thread(faiss):
                D, idx = self.index.search(q, k, params=self._params(k, None))
        else:
            pos = np.unique(self.positions(allowed))
            if len(pos) == 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            k = min(k, len(pos))
            if len(pos) <= EXACT_SUBSET_MAX:
                sims = self._flat().reconstruct_batch(pos) @ q[0]
                top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
                top = top[np.argsort(-sims[top], kind="stable")]
                return self.ids[pos[top]], sims[top].astype(np.float32)
            mask = np.zeros(n, dtype=bool)
            mask[pos] = True
            bitmap = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
            # A selective filter leaves HNSW fewer valid nodes per hop; widen the beam to match.
            widen = max(1, int(n / len(pos)))
            with _one_thread(faiss):
                D, idx = self.index.search(q, k, params=self._params(k, sel, widen))
            del bitmap  # kept alive until the search returned (the selector holds a raw pointer)
        idx, D = idx[0], D[0]
        ok = idx >= 0
        return self.ids[idx[ok]], D[ok]

    def _params(self, k: int, sel, widen: int = 1):
        import faiss

        if hasattr(self.index, "hnsw"):
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(HNSW_EF_SEARCH * widen, k)
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


# --------------------------------------------------------------------------------- build / sync
def _pointer_path(db_path: Path, model: str) -> Path:
    return index_dir(db_path) / f"{model_slug(model)}.json"


def _read_pointer(db_path: Path, model: str) -> dict | None:
    try:
        return json.loads(_pointer_path(db_path, model).read_text())
    except (OSError, ValueError):
        return None  # missing, unreadable or half-written: treat as no cache


def _is_fresh(pointer: dict | None, state: tuple[int, int]) -> bool:
    return (
        pointer is not None
        and (pointer.get("generation"), pointer.get("count")) == state
        and pointer.get("version") == 1
    )


def _build_arrays(
    conn: sqlite3.Connection, model: str
) -> tuple[tuple[int, int], np.ndarray, dict[str, np.ndarray]]:
    """One consistent snapshot of a model's vectors: (state, ids, {kind: (N, D) normalised})."""
    import faiss

    conn.execute("BEGIN")  # one read snapshot: state and rows agree even while an index run writes
    try:
        state = store.vector_state_for(conn, model)
        n, dim = store.result_vector_shape(conn, model)
        ids = np.empty(n, dtype=np.int64)
        mats = {kind: np.zeros((n, dim), dtype=np.float32) for kind in KINDS}
        at = 0
        for rows in store.iter_result_vectors(conn, model, _BUILD_CHUNK):
            m = len(rows)
            ids[at : at + m] = [r[0] for r in rows]
            for j, kind in enumerate(KINDS):
                blobs = [r[1 + j] for r in rows]
                if all(b is not None for b in blobs):
                    mats[kind][at : at + m] = np.frombuffer(b"".join(blobs), "<f4").reshape(m, dim)
                else:  # a result without this vector stays all-zero: cosine 0, never a top hit
                    for i, b in enumerate(blobs):
                        if b is not None:
                            mats[kind][at + i] = np.frombuffer(b, "<f4")
            at += m
    finally:
        conn.execute("COMMIT")
    ids, mats = ids[:at], {k: v[:at] for k, v in mats.items()}
    for mat in mats.values():
        faiss.normalize_L2(mat)  # zero rows stay zero (faiss skips zero norms)
    return state, ids, mats


def _make_index(mat: np.ndarray, hnsw: bool):
    import faiss

    dim = mat.shape[1] if mat.ndim == 2 and mat.shape[1] else 1
    if hnsw:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = faiss.IndexFlatIP(dim)
    if len(mat):
        index.add(mat)
    return index


def _use_hnsw(n: int) -> bool:
    return n >= HNSW_MIN_VECTORS and not gpu_available()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_model(db_path: Path, conn: sqlite3.Connection, model: str) -> dict[str, VectorIndex]:
    """Rebuild one model's indexes from SQLite, write them beside the DB, return them loaded.

    When the directory is not writable (a read-only photo library) or the disk is full, the
    indexes are returned in memory only (one warning per process) and rebuilt on the next
    search.
    """
    import faiss

    state, ids, mats = _build_arrays(conn, model)
    hnsw = _use_hnsw(len(ids))
    built = {kind: VectorIndex(model, kind, _make_index(mats[kind], hnsw), ids) for kind in KINDS}
    try:
        d = index_dir(db_path)
        d.mkdir(exist_ok=True)
        slug, gen = model_slug(model), state[0]
        files = {kind: f"{slug}.g{gen}.{kind}.faiss" for kind in KINDS}
        files["ids"] = f"{slug}.g{gen}.ids.npy"

        def save_ids(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, ids)

        _write_atomic(d / files["ids"], save_ids)
        for kind in KINDS:
            index = built[kind].index
            _write_atomic(d / files[kind], lambda t, ix=index: faiss.write_index(ix, str(t)))
        pointer = {
            "version": 1,
            "model": model,
            "generation": state[0],
            "count": state[1],
            "vectors": len(ids),
            "dim": int(mats["image"].shape[1]),
            "type": "hnsw" if hnsw else "flat",
            "files": files,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _write_atomic(_pointer_path(db_path, model), lambda t: t.write_text(json.dumps(pointer)))
        _remove_old_generations(d, slug, keep=set(files.values()))
    except (OSError, RuntimeError) as e:  # faiss.write_index raises RuntimeError (disk full)
        _cache_not_saved(index_dir(db_path), e)  # serve from memory
    return built


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


def _remove_old_generations(d: Path, slug: str, keep: set[str]) -> None:
    for p in d.glob(f"{slug}.g*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)  # open readers keep their mapping on POSIX


def _load_files(db_path: Path, pointer: dict) -> dict[str, VectorIndex] | None:
    import faiss

    d = index_dir(db_path)
    try:
        ids = np.load(d / pointer["files"]["ids"])
        out = {}
        for kind in KINDS:
            path = str(d / pointer["files"][kind])
            # Vector storage (flat, and HNSW's flat storage) is memory-mapped: opening costs no
            # read of N x D floats, and HNSW then pages in only the vectors its walk visits.
            index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC)
            if index.ntotal != len(ids):
                return None
            out[kind] = VectorIndex(pointer["model"], kind, index, ids)
        return out
    except (OSError, KeyError, RuntimeError, ValueError):
        return None  # deleted under us by a newer build, or damaged: caller rebuilds


def load_model(db_path: Path, conn: sqlite3.Connection, model: str) -> dict[str, VectorIndex]:
    """The model's {kind: VectorIndex}, rebuilt first if missing or stale."""
    state = store.vector_state_for(conn, model)
    pointer = _read_pointer(db_path, model)
    if _is_fresh(pointer, state):
        loaded = _load_files(db_path, pointer)
        if loaded is not None:
            return _maybe_gpu(loaded)
    return _maybe_gpu(build_model(db_path, conn, model))


def _maybe_gpu(indexes: dict[str, VectorIndex]) -> dict[str, VectorIndex]:
    if not gpu_available():
        return indexes
    import faiss

    res = faiss.StandardGpuResources()
    for vi in indexes.values():
        if vi.index_type == "flat" and vi.ntotal:
            vi.index = _GpuFlat(faiss.index_cpu_to_gpu(res, 0, vi.index), vi.index, res)
    return indexes


class _GpuFlat:
    """A GPU copy for searching, the CPU original for reconstruct_batch (GPU flat lacks it)."""

    def __init__(self, gpu, cpu, res):
        self.gpu, self.cpu, self.res, self.d = gpu, cpu, res, cpu.d

    @property
    def ntotal(self) -> int:
        return self.cpu.ntotal

    def reconstruct_batch(self, pos):
        return self.cpu.reconstruct_batch(pos)

    def search(self, q, k, params=None):
        if params is not None and getattr(params, "sel", None) is not None:
            return self.cpu.search(q, k, params=params)  # GPU flat has no selector support
        return self.gpu.search(q, k)


def sync_indexes(db_path: Path) -> dict:
    """Bring every model's FAISS files in line with SQLite; returns {model: state} for status."""
    db_path = Path(db_path)
    conn = store.connect_readonly(db_path)
    try:
        out = {}
        for model in store.models_with_results(conn):
            state = store.vector_state_for(conn, model)
            pointer = _read_pointer(db_path, model)
            rebuilt = not _is_fresh(pointer, state) or _load_files(db_path, pointer) is None
            if rebuilt:
                build_model(db_path, conn, model)
                pointer = _read_pointer(db_path, model) or {}
            out[model] = {
                "generation": state[0],
                "count": state[1],
                "type": pointer.get("type", "flat" if not _use_hnsw(state[1]) else "hnsw"),
                "rebuilt": rebuilt,
                "fresh": _is_fresh(pointer, state),
            }
        return out
    finally:
        conn.close()


def cache_state(db_path: Path, conn: sqlite3.Connection) -> dict:
    """Without building anything: per model, whether the cache is present and fresh (for status)."""
    out = {}
    for model in store.models_with_results(conn):
        state = store.vector_state_for(conn, model)
        pointer = _read_pointer(db_path, model)
        if pointer is None:
            out[model] = {"state": "missing"}
        else:
            out[model] = {
                "state": "fresh" if _is_fresh(pointer, state) else "stale",
                "type": pointer.get("type"),
                "vectors": pointer.get("vectors"),
                "generation": pointer.get("generation"),
            }
    return out

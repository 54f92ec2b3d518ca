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
their current rows, if any, are appended to the delta (search/vectors/update.py). The delta is
exact and small; past `Limits.delta_max` rows (search/vectors/limits.py) it is folded into the
base with the base's own incremental `add` (HNSW links the new nodes into the existing graph;
nothing is rebuilt). Searches run over base and delta with the tombstones excluded inside FAISS
(an ID selector), so a deleted photo is never returned. When tombstones pass
`Limits.compact_share` of the positions, the next update compacts: a full rebuild from SQLite,
which also re-chooses the index type. A rebuild also happens when the log cannot tell what
changed (a database from before schema 8, or one pruned past the pointer).

Index type (search/vectors/kinds.py): exact up to `Limits.hnsw_min`, HNSW above it, IVF-PQ when
the float32 vectors would not fit `Settings.vector_memory_gb`; with a GPU build of FAISS and a
visible GPU, exact search runs on the GPU at every size instead.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from pathlib import Path

import numpy as np

from indexer.store.connection import connect_readonly, read_snapshot
from indexer.store.queries import iter_result_vectors, models_with_results, result_vector_shape
from search.vectors import files, update
from search.vectors.files import Part
from search.vectors.index import VectorIndex
from search.vectors.kinds import (
    KINDS,
    choose_type,
    gpu_available,
    make_compressed,
    make_index,
    to_gpu,
)
from search.vectors.limits import Limits

_BUILD_CHUNK = 8192  # rows per SQLite fetch while building


def default_memory_gb() -> float:
    from indexer.config import Settings

    return Settings.from_env().vector_memory_gb


# ----------------------------------------------------------------------------------- build
def build_model(
    db_path: Path,
    conn: sqlite3.Connection,
    model: str,
    memory_gb: float | None = None,
    *,
    limits: Limits = Limits(),
) -> dict[str, VectorIndex]:
    """Rebuild one model's indexes from SQLite, write them beside the DB, return them loaded.

    When the directory is not writable (a read-only photo library) or the disk is full, the
    indexes are returned in memory only (one warning per process) and rebuilt on the next
    search."""
    memory_gb = default_memory_gb() if memory_gb is None else memory_gb
    d, slug = files.index_dir(db_path), files.model_slug(model)
    with read_snapshot(conn):  # state and rows agree even while an index run writes
        snap = files.snapshot(conn, model)
        n, dim = result_vector_shape(conn, model)
        kind_type = choose_type(n, dim, memory_gb, limits.hnsw_min)
        mats = _matrices(d, slug, kind_type, n, dim)
        ids = np.empty(n, dtype=np.int64)
        at = 0
        for rows in iter_result_vectors(conn, model, _BUILD_CHUNK):
            ids[at : at + len(rows)] = [r[0] for r in rows]
            files.decode_rows(rows, at, mats, dim)
            at += len(rows)
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
            return files.scratch_matrices(d, slug, n, dim)
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
    d = files.index_dir(db_path)
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
        slug = files.model_slug(model)
        files.save_state(d, slug, snap, ids, masked, parts, summary, previous, reuse)
    except (OSError, RuntimeError) as e:  # faiss.write_index raises RuntimeError (disk full)
        _cache_not_saved(d, e)  # serve from memory


# ------------------------------------------------------------------------------ load / sync
def _load(db_path: Path, pointer: dict) -> dict[str, VectorIndex] | None:
    try:
        ids, masked, parts = files.load_set(files.index_dir(db_path), pointer)
    except (OSError, KeyError, RuntimeError, ValueError):
        return None  # deleted under us by a newer writer, or damaged: caller rebuilds
    return _assemble(pointer["model"], ids, masked, parts)


def _current(
    db_path: Path, conn: sqlite3.Connection, model: str, memory_gb: float | None, limits: Limits
) -> tuple[dict[str, VectorIndex], str]:
    """(the model's indexes, up to date; what it took: "none" | "update" | "compact" |
    "rebuild")."""
    memory_gb = default_memory_gb() if memory_gb is None else memory_gb
    d, slug = files.index_dir(db_path), files.model_slug(model)
    pointer = files.read_pointer(d, slug)
    loaded = _load(db_path, pointer) if pointer is not None else None
    if loaded is None and pointer is not None:  # a writer may have replaced the set meanwhile
        again = files.read_pointer(d, slug)
        if again is not None and again != pointer:
            pointer, loaded = again, _load(db_path, again)
    if loaded is not None:
        if files.is_fresh(pointer, conn, model):
            return loaded, "none"
        try:
            updated = update.update(db_path, conn, pointer, loaded, memory_gb, limits)
        except (OSError, RuntimeError) as e:  # a fold's scratch file on a full disk
            _cache_not_saved(d, e)
            updated = "rebuild"
        if isinstance(updated, update.Update):
            u = updated
            indexes = _assemble(model, u.ids, u.masked, u.parts)
            _save(db_path, model, u.snap, u.ids, u.masked, u.parts, indexes, pointer, u.reuse)
            return indexes, "update"
        if updated == "compact":
            return build_model(db_path, conn, model, memory_gb, limits=limits), "compact"
    return build_model(db_path, conn, model, memory_gb, limits=limits), "rebuild"


def load_model(
    db_path: Path,
    conn: sqlite3.Connection,
    model: str,
    memory_gb: float | None = None,
    *,
    limits: Limits = Limits(),
) -> dict[str, VectorIndex]:
    """The model's {kind: VectorIndex}, brought up to date first if stale (incrementally when
    the change log allows, else rebuilt). `memory_gb`: Settings.vector_memory_gb (None: from
    the environment); `limits`: when the cache changes index type, folds, compacts."""
    return _maybe_gpu(_current(Path(db_path), conn, model, memory_gb, limits)[0])


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


def sync_indexes(
    db_path: Path, memory_gb: float | None = None, *, limits: Limits = Limits()
) -> dict:
    """Bring every model's FAISS files in line with SQLite, as `imgcap index` does at the end
    of a run (and any other writer of results should after committing). Incremental when the
    change log allows. Returns, per model: generation, count, type, action ("none" | "update" |
    "compact" | "rebuild"), rebuilt (a full build), fresh, vectors, masked, delta."""
    db_path = Path(db_path)
    conn = connect_readonly(db_path)
    try:
        out = {}
        for model in models_with_results(conn):
            indexes, action = _current(db_path, conn, model, memory_gb, limits)
            snap = files.snapshot(conn, model)
            pointer = files.read_pointer(files.index_dir(db_path), files.model_slug(model))
            vi = indexes["image"]
            out[model] = {
                "generation": snap.state[0],
                "count": snap.state[1],
                "type": vi.index_type,
                "action": action,
                "rebuilt": action in ("rebuild", "compact"),
                "fresh": files.is_fresh(pointer, conn, model),
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
    for model in models_with_results(conn):
        pointer = files.read_pointer(files.index_dir(db_path), files.model_slug(model))
        if pointer is None:
            out[model] = {"state": "missing"}
        else:
            out[model] = {
                "state": "fresh" if files.is_fresh(pointer, conn, model) else "stale",
                "type": pointer.get("type"),
                "vectors": pointer.get("vectors"),
                "masked": pointer.get("masked"),
                "generation": pointer.get("generation"),
            }
    return out


# -------------------------------------------------------------------------------- warnings
_warned: set[str] = set()  # folders already warned about in this process


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
    message = f"search index cache not saved to {d} ({why}); searching from memory"
    print(f"Warning: {message}", file=sys.stderr)  # as the CLI prints its warnings

"""Incremental updates of the FAISS cache from the store's change log (search/vectors/cache.py
has the design: tombstones, an exact delta folded into the base, compaction by full rebuild)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.store import vector_log
from indexer.store.connection import read_snapshot
from search.vectors import files
from search.vectors.files import Part, Snapshot
from search.vectors.kinds import KINDS, GpuFlat, choose_type, memory_bytes
from search.vectors.limits import Limits


@dataclass
class Update:
    """The cache state an update computed, for the cache to load and save: the store's
    snapshot it matches, position ids (P,), tombstones (P,) bool or None, {kind: Part}."""

    snap: Snapshot
    ids: np.ndarray
    masked: np.ndarray | None
    parts: dict[str, Part]
    reuse: dict[str, str] | None  # files of the pointer updated from that stay as they are


def update(
    db_path: Path,
    conn: sqlite3.Connection,
    pointer: dict,
    old: dict,
    memory_gb: float,
    limits: Limits,
) -> Update | str:
    """Bring a loaded cache ({kind: VectorIndex}) up to date from the change log: tombstones
    for the ids that changed, their current rows appended to the delta (folded into the base
    past `limits.delta_max`). Returns the new state, for the cache to load and save, or why a
    full rebuild is due instead: "compact" (tombstones past the share), "log" (the log cannot
    tell), "count" (the rows do not add up), "type" (grown past this index type or the memory
    budget)."""
    import faiss

    model = pointer["model"]
    with read_snapshot(conn):  # the log, the state and the rows from one commit
        snap = files.snapshot(conn, model)
        if pointer.get("seq") is None or snap.seq is None or snap.state[0] < pointer["generation"]:
            return "log"
        changed = vector_log.changed_since(conn, model, int(pointer["seq"]))
        if changed is None:
            return "log"
        rows = vector_log.result_vectors(conn, model, changed[1])
        dim = old["image"].index.d
        if any(len(r[1]) != 4 * dim for r in rows):
            return "type"  # vectors of another size: the files must be rebuilt
    vi = old["image"]
    total = len(vi.position_ids) + len(rows)
    masked = np.zeros(total, dtype=bool)
    if vi.masked is not None:
        masked[: len(vi.masked)] = vi.masked
    masked[vi.positions(np.asarray(changed[1], dtype=np.int64))] = True
    live = total - int(masked.sum())
    if live != snap.state[1]:
        return "count"
    if masked.sum() > limits.compact_share * total:
        return "compact"
    kind_type = vi.index_type
    if kind_type == "flat" and choose_type(live, dim, memory_gb, limits.hnsw_min) != "flat":
        return "type"  # grown past exact search (or the budget): rebuild as HNSW / IVF-PQ
    if kind_type != "ivfpq" and memory_bytes(kind_type, live, dim) > memory_gb * 1e9:
        return "type"
    ids = np.concatenate([vi.position_ids, np.array([r[0] for r in rows], dtype=np.int64)])
    new = {kind: np.zeros((len(rows), dim), dtype=np.float32) for kind in KINDS}
    if rows:
        files.decode_rows(rows, 0, new, dim)
    parts, folded = {}, False
    for kind in KINDS:
        o = old[kind]
        delta = faiss.IndexFlatIP(dim)
        if o.delta_count:
            delta.add(_cpu(o.delta).reconstruct_n(0, o.delta_count))
        delta.add(new[kind])
        parts[kind] = Part(_cpu(o.index), delta, o.raw)
        if delta.ntotal > limits.delta_max:
            d, slug = files.index_dir(db_path), files.model_slug(model)
            parts[kind] = files.fold(d, slug, pointer, kind, parts[kind])
            folded = True
    reuse = None
    if not folded:  # the base files (and compressed vectors) stay as they are
        reuse = {r: f for r, f in pointer["files"].items() if r in KINDS or r.endswith(".raw")}
    return Update(snap, ids, masked if masked.any() else None, parts, reuse)


def _cpu(index):
    return index.cpu if isinstance(index, GpuFlat) else index

"""The FAISS cache's files: one pointer per model naming a set of write-once files.

Every file is written under a temporary name and renamed into place (indexer.atomic_file);
the pointer is renamed last, so a reader that read a pointer finds a complete set (or, if a
newer writer removed it meanwhile, a missing file: the caller then rebuilds). File names carry
the generation and a random token, so two writers never produce the same name with different
contents. The layout is described in search/vectors/cache.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.atomic_file import atomic_path, create_temp, replace_with
from indexer.store import vector_log
from indexer.store.queries import vector_state_for
from search.vectors.kinds import KINDS

POINTER_VERSION = 2
_STALE_TMP_S = 600  # temp files of a writer killed mid-write are removed after this long
_COPY_ROWS = 65_536  # rows per chunk when a compressed index's full vectors are copied


@dataclass
class Part:
    """One kind's FAISS objects as stored: base index, delta index (or None), raw vectors of a
    compressed base (or None)."""

    base: object
    delta: object | None = None
    raw: np.ndarray | None = None


def index_dir(db_path: Path) -> Path:
    """The cache's folder, beside the database: photos.db -> photos.db.faiss."""
    return Path(str(db_path) + ".faiss")


def model_slug(model: str) -> str:
    """File-safe name for a model (a model can be a directory path): readable part + short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model)[:40]
    return f"{readable}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def pointer_path(d: Path, slug: str) -> Path:
    return d / f"{slug}.json"


def read_pointer(d: Path, slug: str) -> dict | None:
    try:
        pointer = json.loads(pointer_path(d, slug).read_text())
    except (OSError, ValueError):
        return None  # missing, unreadable or half-written: treat as no cache
    if not isinstance(pointer, dict) or pointer.get("version") != POINTER_VERSION:
        return None  # an older layout: rebuilt once
    return pointer


def write_atomic(path: Path, write) -> None:
    """Every cache file is written through this: `write(tmp)` fills a fresh temporary file
    beside `path` (created exclusively under a random name), which then replaces `path`. No
    fsync: the cache is rebuilt from the store."""
    with atomic_path(path, durable=False) as tmp:
        write(tmp)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    write_atomic(path, save)


def _save_index(path: Path, index) -> None:
    import faiss

    write_atomic(path, lambda t: faiss.write_index(index, str(t)))


def write_set(
    d: Path,
    slug: str,
    generation: int,
    ids: np.ndarray,
    masked: np.ndarray | None,
    parts: dict[str, Part],
    reuse: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write the files of one cache state; returns {role: file name} for the pointer.

    `reuse` names files of the previous state that are unchanged (a base the update did not
    touch): they are referenced again, not rewritten."""
    d.mkdir(exist_ok=True)
    prefix = f"{slug}.g{generation}.{os.urandom(3).hex()}"
    files: dict[str, str] = {"ids": f"{prefix}.ids.npy"}
    _save_npy(d / files["ids"], ids)
    if masked is not None and masked.any():
        files["masked"] = f"{prefix}.masked.npy"
        _save_npy(d / files["masked"], masked)
    for kind, part in parts.items():
        if reuse and kind in reuse:
            files[kind] = reuse[kind]
            if f"{kind}.raw" in reuse:
                files[f"{kind}.raw"] = reuse[f"{kind}.raw"]
        else:
            files[kind] = f"{prefix}.{kind}.faiss"
            _save_index(d / files[kind], part.base)
            if part.raw is not None:
                files[f"{kind}.raw"] = f"{prefix}.{kind}.raw.npy"
                if _scratch(part.raw, d):  # a build's memory map: renamed, not copied
                    part.raw.flush()
                    replace_with(part.raw.filename, d / files[f"{kind}.raw"], durable=False)
                else:
                    _save_npy(d / files[f"{kind}.raw"], np.asarray(part.raw))
        if part.delta is not None and part.delta.ntotal:
            files[f"{kind}.delta"] = f"{prefix}.{kind}.delta.faiss"
            _save_index(d / files[f"{kind}.delta"], part.delta)
    return files


def _scratch(arr, d: Path) -> bool:
    return (
        isinstance(arr, np.memmap)
        and Path(str(arr.filename)).parent == d
        and Path(str(arr.filename)).name.endswith(".tmp")
    )


def publish(d: Path, slug: str, pointer: dict) -> None:
    """Make `pointer` current, then remove the files only the pointer it replaced named. Other
    unnamed files (a killed writer's, or a concurrent writer's superseded set) go once they
    are _STALE_TMP_S old: younger ones may belong to a writer still at work."""
    replaced = read_pointer(d, slug)
    write_atomic(pointer_path(d, slug), lambda t: t.write_text(json.dumps(pointer)))
    keep = set(pointer["files"].values())
    for name in set((replaced or {}).get("files", {}).values()) - keep:
        (d / name).unlink(missing_ok=True)  # open readers keep their mapping on POSIX
    for p in [*d.glob(f"{slug}.g*"), *d.glob(f".{slug}.*.tmp")]:
        try:
            if p.name not in keep and time.time() - p.stat().st_mtime > _STALE_TMP_S:
                p.unlink(missing_ok=True)
        except OSError:
            pass


def load_set(d: Path, pointer: dict) -> tuple[np.ndarray, np.ndarray | None, dict[str, Part]]:
    """(position ids, tombstones, {kind: Part}) of a pointer; OSError/RuntimeError/ValueError/
    KeyError when a file is missing or damaged."""
    import faiss

    files = pointer["files"]
    ids = np.load(d / files["ids"])
    masked = np.load(d / files["masked"]) if "masked" in files else None
    if masked is not None and masked.shape != ids.shape:
        raise ValueError("tombstones do not match the ids")
    parts = {}
    for kind in KINDS:
        # Vector storage (flat, and HNSW's flat storage) is memory-mapped: opening costs no
        # read of N x D floats, and HNSW then pages in only the vectors its walk visits.
        base = faiss.read_index(str(d / files[kind]), faiss.IO_FLAG_MMAP_IFC)
        delta = None
        if f"{kind}.delta" in files:
            delta = faiss.read_index(str(d / files[f"{kind}.delta"]), faiss.IO_FLAG_MMAP_IFC)
        raw = None
        if f"{kind}.raw" in files:
            raw = np.load(d / files[f"{kind}.raw"], mmap_mode="r")
            if raw.shape[0] != base.ntotal:
                raise ValueError("compressed vectors do not match their index")
        if base.ntotal + (delta.ntotal if delta is not None else 0) != len(ids):
            raise ValueError("index sizes do not match the ids")
        parts[kind] = Part(base, delta, raw)
    return ids, masked, parts


# ------------------------------------------------------------------------- state and pointer
def decode_rows(rows, at: int, mats: dict[str, np.ndarray], dim: int) -> None:
    """Decode (id, image_vec, caption_vec) rows into mats[kind][at:at+len(rows)], normalised."""
    import faiss

    m = len(rows)
    for j, kind in enumerate(KINDS):
        blobs = [r[1 + j] for r in rows]
        block = np.zeros((m, dim), dtype=np.float32)
        if all(b is not None for b in blobs):
            block[:] = np.frombuffer(b"".join(blobs), "<f4").reshape(m, dim)
        else:  # a result without this vector stays all-zero: cosine 0, never a top hit
            for i, b in enumerate(blobs):
                if b is not None:
                    block[i] = np.frombuffer(b, "<f4")
        faiss.normalize_L2(block)  # zero rows stay zero (faiss skips zero norms)
        mats[kind][at : at + m] = block


@dataclass
class Snapshot:
    state: tuple[int, int]  # vector_state (generation, count)
    seq: int | None  # change-log head (None: no log, schema < 8)


def snapshot(conn: sqlite3.Connection, model: str) -> Snapshot:
    return Snapshot(vector_state_for(conn, model), vector_log.head(conn))


def is_fresh(pointer: dict | None, conn: sqlite3.Connection, model: str) -> bool:
    """Whether the pointer's files hold the model's vectors as the store has them now. The log
    head moves with every model's changes: only this model's entries after it count."""
    return (
        pointer is not None
        and (pointer.get("generation"), pointer.get("count")) == vector_state_for(conn, model)
        and not vector_log.changed_after(conn, model, pointer.get("seq"))
    )


def scratch_matrices(d: Path, slug: str, n: int, dim: int) -> dict[str, np.ndarray]:
    """Float32 files a compressed build decodes the vectors into (they do not fit in RAM, by
    definition): they become its memory-mapped re-ranking store (renamed by write_set)."""
    d.mkdir(exist_ok=True)
    tok = os.urandom(3).hex()
    return {
        kind: np.lib.format.open_memmap(
            create_temp(d / f"{slug}.g-{tok}.{kind}.raw"), "w+", np.float32, (n, dim)
        )
        for kind in KINDS
    }


def save_state(
    d: Path,
    slug: str,
    snap: Snapshot,
    ids: np.ndarray,
    masked: np.ndarray | None,
    parts: dict[str, Part],
    summary: dict,
    previous: dict | None = None,
    reuse: dict[str, str] | None = None,
) -> None:
    """Write one cache state's files, then its pointer. `previous`: the pointer an update
    started from (None: a full build); `reuse`: its files kept unchanged."""
    files = write_set(d, slug, snap.state[0], ids, masked, parts, reuse)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    before = previous or {}
    pointer = {
        "version": POINTER_VERSION,
        **summary,
        "generation": snap.state[0],
        "count": snap.state[1],
        "seq": snap.seq,
        "positions": len(ids),
        "files": files,
        # The last full build, and the incremental updates applied since.
        "built_at": before.get("built_at", now),
        "base_generation": before.get("base_generation", snap.state[0]),
        "updates": int(before.get("updates", -1)) + 1,
        "updated_at": now,
    }
    publish(d, slug, pointer)


def fold(d: Path, slug: str, pointer: dict, kind: str, part: Part) -> Part:
    """The delta added into the base with the base's own `add` (HNSW links the new nodes into
    its graph). The base is read again without memory-mapping: FAISS cannot grow a mapped one.
    A compressed base's full vectors are copied in chunks into a new file (they do not fit in
    RAM, by definition)."""
    import faiss

    base = faiss.read_index(str(d / pointer["files"][kind]))
    vecs = part.delta.reconstruct_n(0, part.delta.ntotal)
    base.add(vecs)
    raw = None
    if part.raw is not None:
        nb = len(part.raw)
        raw = np.lib.format.open_memmap(
            create_temp(d / f"{slug}.g-{os.urandom(3).hex()}.{kind}.raw"),
            "w+",
            np.float32,
            (nb + len(vecs), part.raw.shape[1]),
        )
        for at in range(0, nb, _COPY_ROWS):
            end = min(nb, at + _COPY_ROWS)
            raw[at:end] = part.raw[at:end]
        raw[nb:] = vecs
    return Part(base, None, raw)

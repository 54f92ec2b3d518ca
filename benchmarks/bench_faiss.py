"""The FAISS cache that grows (issue 11): incremental add vs full rebuild, the compressed index.

    python benchmarks/bench_faiss.py grow --n 1000000 --add 1000
    python benchmarks/bench_faiss.py compressed --n 1000000
    python benchmarks/bench_faiss.py sync --rows 100000 --add 1000 --workdir /tmp/imgcap-faiss

grow: a full HNSW build of n vectors (what the first search after an index run paid before
issue 11, SQLite decoding not included) against what adding `--add` vectors costs now: the
exact delta (built and written, the path every update takes) and folding them into the HNSW
graph with its own add() (what happens once the delta passes Limits.delta_max). Also query
latency with the delta and 1,000 tombstones against the plain index.

compressed: IVF-PQ as the cache builds it past the memory budget (trained on a sample, full
vectors memory-mapped for exact re-ranking): build time, RAM (codes + lists, from the serialised
index) against flat/HNSW, recall@10 against exact search, query p50/p95.

sync: the real `sync_indexes` on a SQLite database of `--rows` results after `--add` more: the
incremental update against a rebuild of the same database.

Vectors: synthetic clustered 512-d, as benchmarks/bench_search.py (L2-normalised, 2,000 centres).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import DIM, clustered, percentiles, time_queries  # noqa: E402


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    return clustered(n, rng, centres), clustered(200, rng, centres)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def grow(n: int, add: int, seed: int) -> dict:
    import faiss

    from search.vectors.index import VectorIndex
    from search.vectors.kinds import make_index

    data, queries = _data(n + add, seed)
    base_vecs, new = data[:n], data[n:]
    hnsw, build_s = _timed(lambda: make_index(base_vecs, hnsw=True))
    ids = np.arange(n + add, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:

        def delta_path():  # what every update does: the delta index + its files
            delta = faiss.IndexFlatIP(DIM)
            delta.add(new)
            faiss.write_index(delta, os.path.join(tmp, "delta.faiss"))
            np.save(os.path.join(tmp, "ids.npy"), ids)
            return delta

        delta, delta_s = _timed(delta_path)
        plain = VectorIndex("bench", "image", hnsw, ids[:n])
        plain_ms, _ = time_queries(plain, queries)
        masked = np.zeros(n + add, dtype=bool)
        masked[np.random.default_rng(seed).choice(n, 1000, replace=False)] = True
        grown = VectorIndex("bench", "image", hnsw, ids, delta, masked)
        grown_ms, _ = time_queries(grown, queries)
        _, fold_s = _timed(lambda: hnsw.add(new))
        _, write_s = _timed(lambda: faiss.write_index(hnsw, os.path.join(tmp, "base.faiss")))
    return {
        "n": n,
        "added": add,
        "full_rebuild_hnsw_s": round(build_s, 1),
        "incremental_delta_s": round(delta_s, 3),
        "fold_into_hnsw_add_s": round(fold_s, 2),
        "fold_write_base_s": round(write_s, 1),
        "rebuild_over_delta": round(build_s / delta_s),
        "rebuild_over_fold_add": round(build_s / fold_s),
        "query_p95_ms_plain": round(percentiles(plain_ms)[1], 2),
        "query_p95_ms_delta_and_1000_tombstones": round(percentiles(grown_ms)[1], 2),
    }


def compressed(n: int, seed: int, rerank: list[int], nprobe: list[int]) -> dict:
    import faiss

    from search.vectors import kinds
    from search.vectors.index import VectorIndex

    data, queries = _data(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw = np.lib.format.open_memmap(Path(tmp) / "raw.npy", "w+", np.float32, data.shape)
        raw[:] = data
        raw.flush()
        del raw
        raw = np.load(Path(tmp) / "raw.npy", mmap_mode="r")
        index, build_s = _timed(lambda: kinds.make_compressed(raw))
        faiss.write_index(index, str(Path(tmp) / "ivfpq.faiss"))
        ram = os.path.getsize(Path(tmp) / "ivfpq.faiss") + 8 * n  # + position ids
        want = []
        for q in queries:  # exact top-10, the reference
            want.append(np.argpartition(-(data @ q), 10)[:10])
        del data
        out = {
            "n": n,
            "nlist": int(index.nlist),
            "pq_bytes_per_vector": int(index.pq.code_size),
            "nprobe": kinds.IVF_NPROBE,
            "build_s (train on sample + add)": round(build_s, 1),
            "ram_mb_one_kind": round(ram / 1e6, 1),
            "ram_mb_flat_one_kind": round(kinds.memory_bytes("flat", n, DIM) / 2e6, 1),
            "ram_mb_hnsw_one_kind": round(kinds.memory_bytes("hnsw", n, DIM) / 2e6, 1),
            "rerank": {},
        }
        ids = np.arange(n, dtype=np.int64)
        vi = VectorIndex("bench", "image", index, ids, raw=raw)
        for p in nprobe:
            for r in rerank:
                # the lists VectorIndex.search scans, the candidates it re-scores exactly
                ms, got = time_queries(vi, queries, nprobe=p, rerank=r)
                recall = statistics.mean(
                    len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)
                )
                p50, p95 = percentiles(ms)
                out["rerank"][f"nprobe {p}, rerank {r}"] = {
                    "recall@10": round(recall, 4),
                    "p50_ms": round(p50, 2),
                    "p95_ms": round(p95, 2),
                }
    return out


def sync(rows: int, add: int, workdir: Path, seed: int) -> dict:
    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord
    from search.vectors import cache, files

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    db = workdir / "photos.db"
    data, _ = _data(rows + add, seed)
    caps, _ = _data(rows + add, seed + 1)

    def write(lo: int, hi: int) -> None:
        with Store.open(db) as s:
            for at in range(lo, hi, 5000):
                batch = range(at, min(hi, at + 5000))
                hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in batch]
                s.write_batch(
                    "bench",
                    [
                        ResultRecord(h, f"c {i}", data[i], caps[i])
                        for h, i in zip(hashes, batch, strict=True)
                    ],
                    [
                        FileRecord(f"/p/{i}.jpg", 1, 1, h)
                        for h, i in zip(hashes, batch, strict=True)
                    ],
                )

    write(0, rows)
    _, first_s = _timed(lambda: cache.sync_indexes(db))
    write(rows, rows + add)
    state, update_s = _timed(lambda: cache.sync_indexes(db))
    assert state["bench"]["action"] == "update", state
    shutil.rmtree(files.index_dir(db))
    state, rebuild_s = _timed(lambda: cache.sync_indexes(db))
    assert state["bench"]["action"] == "rebuild", state
    return {
        "rows": rows,
        "added": add,
        "type": state["bench"]["type"],
        "first_build_s": round(first_s, 2),
        "sync_update_s": round(update_s, 2),
        "sync_rebuild_s": round(rebuild_s, 2),
        "rebuild_over_update": round(rebuild_s / update_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grow")
    g.add_argument("--n", type=int, default=1_000_000)
    g.add_argument("--add", type=int, default=1000)
    c = sub.add_parser("compressed")
    c.add_argument("--n", type=int, default=1_000_000)
    c.add_argument("--rerank", type=int, nargs="+", default=[100, 200, 400])
    c.add_argument("--nprobe", type=int, nargs="+", default=[32, 64, 128])
    s = sub.add_parser("sync")
    s.add_argument("--rows", type=int, default=100_000)
    s.add_argument("--add", type=int, default=1000)
    s.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-faiss"))
    for p in (g, c, s):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: all)")
    a = ap.parse_args()
    if a.threads:
        import faiss

        faiss.omp_set_num_threads(a.threads)
    if a.cmd == "grow":
        out = grow(a.n, a.add, a.seed)
    elif a.cmd == "compressed":
        out = compressed(a.n, a.seed, a.rerank, a.nprobe)
    else:
        out = sync(a.rows, a.add, a.workdir, a.seed)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

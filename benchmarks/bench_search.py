"""Search speed: in-process query latency (exact vs HNSW, recall@10) and a cold `imgcap search`.

    python benchmarks/bench_search.py latency --sizes 10000 100000 1000000
    python benchmarks/bench_search.py cold --photos 100000 --workdir /tmp/imgcap-bench
    python benchmarks/bench_search.py cold --compare-tree /tmp/imgcap-before  # A/B, one run

Vectors are synthetic, L2-normalised, 512-d, drawn around 2,000 centres (CLIP embeddings of a
photo collection cluster by subject; uniform random vectors would be an unrealistically hard case
for HNSW). Queries are fresh draws around random centres, never copies of stored vectors.
The latency numbers go through search/vectors/index.py's VectorIndex, i.e. the code
`imgcap search` runs, one query at a time, after one warm-up query.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM = 512


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, spread: float = 0.9):
    out = np.empty((n, DIM), dtype=np.float32)
    for i in range(0, n, 100_000):  # chunked: 1M x 512 floats is 2 GB already
        m = min(100_000, n - i)
        pick = centres[rng.integers(0, len(centres), m)]
        out[i : i + m] = pick + spread * rng.standard_normal((m, DIM), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def time_queries(
    vi, queries: np.ndarray, k: int = 10, **search_params
) -> tuple[list[float], list[np.ndarray]]:
    """Per-query ms and ids of `vi.search(q, k, **search_params)` (ef_search, nprobe, rerank)."""
    vi.search(queries[0], k, **search_params)  # warm-up (page-in, OpenMP threads)
    ms, got = [], []
    for q in queries:
        t = time.perf_counter()
        ids, _ = vi.search(q, k, **search_params)
        ms.append((time.perf_counter() - t) * 1e3)
        got.append(ids)
    return ms, got


def latency(
    sizes: list[int], n_queries: int, seed: int, ef_search: list[int], hnsw_too: bool = True
) -> list[dict]:
    import faiss

    from search.vectors.index import HNSW_EF_SEARCH, VectorIndex
    from search.vectors.kinds import HNSW_EF_CONSTRUCTION, HNSW_M, make_index

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    rows = []
    for n in sizes:
        data = clustered(n, rng, centres)
        queries = clustered(n_queries, rng, centres)
        ids = np.arange(n, dtype=np.int64)
        flat = VectorIndex("bench", "image", make_index(data, hnsw=False), ids)
        ms, exact = time_queries(flat, queries)
        p50, p95 = percentiles(ms)
        rows.append({"n": n, "index": "exact", "p50_ms": p50, "p95_ms": p95, "recall@10": 1.0})
        print(json.dumps(rows[-1]), flush=True)
        del flat
        if not hnsw_too:
            continue
        t = time.perf_counter()
        hnsw_index = make_index(data, hnsw=True)
        build_s = time.perf_counter() - t
        hnsw = VectorIndex("bench", "image", hnsw_index, ids)
        for ef in ef_search or [HNSW_EF_SEARCH]:
            ms, got = time_queries(hnsw, queries, ef_search=ef)
            recall = float(
                np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)])
            )
            p50, p95 = percentiles(ms)
            rows.append(
                {
                    "n": n,
                    "index": f"hnsw M={HNSW_M} efC={HNSW_EF_CONSTRUCTION} efS={ef}",
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "recall@10": recall,
                    "build_s": build_s,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        del hnsw, hnsw_index, data
    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}", flush=True)
    return rows


# ----------------------------------------------------------------------------------- cold run
WORDS = (
    "dog cat car bus bench park street beach cake table kitchen bike train man woman child "
    "red blue green yellow white black snow tree field water boat plane bird horse pizza"
).split()


def make_db(workdir: Path, n: int, model: str, seed: int) -> Path:
    """n photo files (empty files: only their existence matters) + results with random vectors."""
    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord

    db_path = workdir / "photos.db"
    if db_path.exists():
        return db_path
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    root = workdir / "photos"
    batch = 5000
    with Store.open(db_path) as s:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            img = clustered(m, rng, centres)
            cap = clustered(m, rng, centres)
            results, files = [], []
            for j in range(m):
                i = start + j
                folder = root / f"{2010 + i % 15}" / f"{i // 1000:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"IMG_{i:06d}.jpg"
                path.touch()
                words = rng.choice(WORDS, 4)
                caption = f"a {words[0]} and a {words[1]} near a {words[2]} {words[3]}"
                h = f"{i:064x}"
                results.append(ResultRecord(h, caption, img[j], cap[j]))
                files.append(
                    FileRecord(
                        str(path),
                        0,
                        0,
                        h,
                        4032,
                        3024,
                        f"{2010 + i % 15}-06-01T12:00:00",
                        "Apple",
                        "iPhone 12",
                    )
                )
            s.write_batch(model, results, files)
    return db_path


STAGES = r"""
import json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `imgcap search` does
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - t0, 3)
import cli  # typer, Settings
mark("import cli")
from pathlib import Path
from indexer.config import Settings
from indexer.store.connection import connect_readonly
from search import query
from search.query_encoder import load_encoder, resolve_model
from search.vectors.cache import load_model
mark("import search")
db, model, text = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = Settings.from_env(db_path=db, device="cpu")
conn = connect_readonly(db)
indexes = load_model(db, conn, resolve_model(conn, model, settings))
mark("open db + load FAISS (mmap)")
enc = load_encoder(model, settings)
mark("load NumPy text tower")
enc.encode_texts([text])
mark("encode query")
hits = query.search(db, query.SearchRequest(text=text, model=model), settings, lambda m, s: enc)
mark("search (3 signals, fuse, rows)")
import torch
mark("(not in a text search) import torch")
enc.encode_images  # --like loads the torch CLIP on first use
enc._torch_encoder()
mark("(not in a text search) load torch CLIP")
print(json.dumps(marks))
"""


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cold(photos: int, workdir: Path, runs: int, seed: int, compare: Path | None = None) -> dict:
    """Median wall and CPU of cold `imgcap search` processes. With `compare` (another checkout of
    imgcap, e.g. a `git worktree` of an older commit) both trees answer the same query on their
    own copy of the same database, run after run in turn, so load on the machine hits both."""
    from indexer.models.random_weights import write_random_model

    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "model"
    if not (model_dir / "imgcap-model.json").is_file():
        write_random_model(model_dir, "clipcap-coco", seed=seed)
    spec = json.loads((model_dir / "imgcap-model.json").read_text())
    t = time.perf_counter()
    db = make_db(workdir, photos, spec["name"], seed)
    print(f"database ready in {time.perf_counter() - t:.1f} s: {db}", flush=True)
    trees = {"this tree": (ROOT, db)}
    if compare is not None:
        other = workdir / "compare" / db.name  # its own FAISS cache beside its own copy
        other.parent.mkdir(exist_ok=True)
        shutil.copyfile(db, other)
        trees[str(compare)] = (compare.resolve(), other)
    imgcap = [sys.executable, "-c", "import cli; cli.app()"]
    base = ["search", "dog on a park bench", "--model", str(model_dir), "--paths", "-n", "20"]

    def run(tree: Path, db_path: Path, extra: list[str]) -> None:
        env = {**os.environ, "IMGCAP_DB": str(db_path), "IMGCAP_DEVICE": "cpu"}
        env["PYTHONPATH"] = str(tree)  # the tree's cli.py, indexer/ and search/
        subprocess.run(imgcap + base + extra, env=env, cwd=tree, check=True, capture_output=True)

    for tree, db_path in trees.values():
        # The first search builds the FAISS cache beside the database (index-time work, not cold).
        t = time.perf_counter()
        run(tree, db_path, [])
        print(f"{tree}: first search (builds FAISS cache): {time.perf_counter() - t:.2f} s")
    out: dict = {"photos": photos}
    for label, extra in (("hybrid", []), ("keyword", ["--mode", "keyword"])):
        walls: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(runs):
            for name, (tree, db_path) in trees.items():
                t, before = time.perf_counter(), _children_cpu()
                run(tree, db_path, extra)
                walls[name].append(time.perf_counter() - t)
                cpus[name].append(_children_cpu() - before)  # less sensitive to load than wall
        for name in trees:
            prefix = f"cold {label}" if compare is None else f"{name}: cold {label}"
            out[f"{prefix} wall s (median of {runs})"] = round(statistics.median(walls[name]), 2)
            out[f"{prefix} cpu s (median of {runs})"] = round(statistics.median(cpus[name]), 2)
            print(name, label, "wall", [round(w, 2) for w in walls[name]], flush=True)
        if compare is not None:
            ours, theirs = (statistics.median(walls[n]) for n in trees)
            out[f"cold {label} wall ratio, this tree / {compare}"] = round(ours / theirs, 3)
    r = subprocess.run(
        [sys.executable, "-c", STAGES, str(db), str(model_dir), "dog on a park bench"],
        env={**os.environ, "IMGCAP_DB": str(db), "IMGCAP_DEVICE": "cpu"},
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    out["stages (cumulative s)"] = json.loads(r.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("latency")
    a.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    a.add_argument("--queries", type=int, default=200)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--ef-search", type=int, nargs="*", default=[], help="HNSW efSearch values")
    a.add_argument("--exact-only", action="store_true", help="skip building HNSW (minutes at 1M)")
    c = sub.add_parser("cold")
    c.add_argument("--photos", type=int, default=100_000)
    c.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench"))
    c.add_argument("--runs", type=int, default=3)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--compare-tree", type=Path, help="another imgcap checkout to time alongside")
    args = ap.parse_args()
    if args.cmd == "latency":
        latency(args.sizes, args.queries, args.seed, args.ef_search, not args.exact_only)
    else:
        cold(args.photos, args.workdir, args.runs, args.seed, args.compare_tree)


if __name__ == "__main__":
    main()

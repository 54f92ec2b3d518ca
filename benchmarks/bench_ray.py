"""`imgcap index --engine ray` against the local engine on the same machine: the overhead of
going through Ray Data (task scheduling, the object store, a second model copy in an actor).

    python benchmarks/bench_ray.py --images 32

What is measured (full-size random-weight `--arch`, greedy captions fixed at `--tokens` tokens,
as in bench_index.py; the same phone-sized 4032×3024 JPEGs):
- local: `index_paths` with the local engine (worker processes), fresh database;
- ray: the same with `--engine ray` on a local Ray instance (`ray.init(num_cpus=cores)`) that is
  already running: steady-state cost of the engine; Ray's start-up is reported on its own;
- decode rate per core: decode_for_model alone in worker processes (bench_index.py's ceiling),
  the figure the scaling model in BENCHMARKS.md rests on.
Runs alternate local/ray `--repeats` times; medians are reported. The overhead ratio is local
images/s over Ray images/s (end to end, model load excluded on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_index.py: see there

import bench_index  # noqa: E402
from bench_index import bench_decode_ceiling, load_random, make_phone_photos  # noqa: E402

from indexer.config import Settings  # noqa: E402
from indexer.run.pipeline import index_paths  # noqa: E402


def one_run(folder: Path, db: Path, model, settings: Settings) -> dict:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    t = time.perf_counter()
    s = index_paths([folder], replace(settings, db_path=db), model=model)
    dt = time.perf_counter() - t
    assert s.captioned == len(list(folder.iterdir())) and not s.failed, s
    return {"seconds": round(dt, 2), "images_per_s": round(s.captioned / dt, 2)}


def bench_hash(paths: list[Path]) -> dict:
    """The driver's content hash (it reads every new file in full), one thread."""
    from indexer.media.walk import content_hash

    t = time.perf_counter()
    size = sum(p.stat().st_size for p in paths)
    for p in paths:
        content_hash(p)
    dt = time.perf_counter() - t
    return {"files_per_s": round(len(paths) / dt, 1), "mb_per_s": round(size / dt / 1e6)}


def bench_merge(db: Path, rows: int = 4096, batch: int = 256) -> dict:
    """The driver's single SQLite writer: result + file rows (two 512-d vectors) per second, in
    transactions of `batch` rows as merged blocks arrive."""
    import numpy as np

    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord

    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((rows, 512)).astype(np.float32)
    with Store.open(db) as store:
        t = time.perf_counter()
        for i in range(0, rows, batch):
            res, files = [], []
            for j in range(i, min(rows, i + batch)):
                h = f"{j:064x}"
                res.append(ResultRecord(h, "a caption of twenty tokens or so", vecs[j], vecs[j]))
                files.append(FileRecord(f"/photos/{j // 1000}/IMG_{j:06d}.jpg", 3_000_000, j, h))
            store.write_batch("bench", res, files)
        dt = time.perf_counter() - t
    return {"rows_per_s": round(rows / dt), "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--arch", default="clipcap-coco")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgcap-bench"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import ray
    import ray.cloudpickle

    model_dir = args.work / f"model-{args.arch}"
    if not (model_dir / "imgcap-model.json").exists():
        from indexer.models.random_weights import write_random_model

        write_random_model(model_dir, args.arch)
    paths = make_phone_photos(args.work / "phone", args.images)
    folder = args.work / f"ray-phone-{args.images}"
    folder.mkdir(exist_ok=True)
    for p in paths:
        link = folder / p.name
        if not link.exists():
            os.link(p, link)
    cores = os.cpu_count() or 1
    settings = Settings(model=str(model_dir), device="cpu", workers=cores)
    model = load_random(model_dir, settings, args.tokens)
    # The fixed-length captioner lives in bench_index.py, which Ray's workers cannot import.
    ray.cloudpickle.register_pickle_by_value(bench_index)

    out: dict = {"cores": cores, "images": args.images, "arch": args.arch, "tokens": args.tokens}
    out["decode_per_core"] = round(
        bench_decode_ceiling(paths, cores, model.encoder.image_size)["images_per_s"] / cores, 2
    )
    out["hash_one_thread"] = bench_hash(paths)
    out["sqlite_merge"] = bench_merge(args.work / "bench-ray-merge.db")
    print(json.dumps(out), file=sys.stderr, flush=True)
    t = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, address="local")
    out["ray_start_s"] = round(time.perf_counter() - t, 2)
    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    for _ in range(args.repeats):
        for engine in ("local", "ray"):
            db = args.work / f"bench-ray-{engine}.db"
            runs[engine].append(one_run(folder, db, model, replace(settings, engine=engine)))
            print(engine, runs[engine][-1], file=sys.stderr, flush=True)
    ray.shutdown()
    for engine, rs in runs.items():
        out[engine] = {
            "images_per_s": statistics.median(r["images_per_s"] for r in rs),
            "seconds": statistics.median(r["seconds"] for r in rs),
            "runs": rs,
        }
    out["overhead_ratio"] = round(out["local"]["images_per_s"] / out["ray"]["images_per_s"], 2)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""`imgcap serve` speed: warm /api/search latency, thumbnails (cached and first-time), server
memory, and the cold CLI search on the same database in the same run.

    python benchmarks/bench_serve.py --photos 100000 --workdir /tmp/imgcap-bench-serve

The database is bench_search.py's: n photos with clustered random 512-d vectors and generated
captions, made with a full-size ViT-B/32 + GPT-2 architecture with random weights
(`write_random_model`), so the NumPy text tower does the real amount of work per query. A few
real 12 MP JPEGs (4000 x 3000, noise + gradients, EXIF-less) are added for the thumbnails.
The server runs as `imgcap serve` in its own process; requests go over one keep-alive HTTP
connection, one at a time, after one warm-up query (which loads the text tower and, the first
time, builds the FAISS cache).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_search import WORDS, make_db, percentiles  # noqa: E402

TEMPLATES = (
    "{a} on a {b}",
    "a {a} and a {b}",
    "{a} {b} near the {c}",
    "a photo of a {a}",
    "{a} in the {b} at night",
)


def queries(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b, c = rng.choice(WORDS, 3, replace=False)
        out.append(TEMPLATES[i % len(TEMPLATES)].format(a=a, b=b, c=c))
    return out


def add_big_jpegs(workdir: Path, db: Path, model: str, count: int) -> list[str]:
    """`count` 12 MP JPEGs indexed into db (random vectors); returns their paths."""
    from PIL import Image

    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord

    folder = workdir / "big"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:3000, 0:4000]
    base = np.stack([x * 255 // 3999, y * 255 // 2999, (x + y) % 256], -1)
    results, files = [], []
    for i in range(count):
        path = folder / f"BIG_{i:03d}.jpg"
        if not path.exists():
            noise = rng.integers(-20, 21, size=base.shape)
            pixels = np.clip(base + noise + 17 * i, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, "JPEG", quality=90)
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        vec = rng.standard_normal(512).astype(np.float32)
        results.append(ResultRecord(h, f"a big test photo number {i}", vec, vec))
        st = path.stat()
        files.append(FileRecord(str(path), st.st_size, st.st_mtime_ns, h, 4000, 3000))
    with Store.open(db) as s:
        s.write_batch(model, results, files)
    return [str(f.path) for f in files]


class Server:
    def __init__(self, db: Path, model_dir: Path):
        env = {**os.environ, "IMGCAP_DB": str(db), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-c", "import cli; cli.app()", "serve", "--port", "0"]
        self.proc = subprocess.Popen(
            cmd + ["--model", str(model_dir)], stdout=subprocess.PIPE, text=True, env=env
        )
        line = self.proc.stdout.readline()
        self.hostport = re.search(r"http://([^/]+)/", line).group(1)
        self.conn = http.client.HTTPConnection(self.hostport, timeout=600)

    def get(self, path: str) -> tuple[float, int, bytes]:
        t = time.perf_counter()
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        return (time.perf_counter() - t) * 1e3, r.status, body

    def memory_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        out = {}
        for key in ("VmRSS", "VmHWM"):
            m = re.search(rf"{key}:\s+(\d+) kB", status)
            out[key] = round(int(m.group(1)) / 1024, 1)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run(photos: int, workdir: Path, n_queries: int, big: int, cold_runs: int, seed: int) -> dict:
    from indexer.models.random_weights import write_random_model

    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "model"
    if not (model_dir / "imgcap-model.json").is_file():
        write_random_model(model_dir, "clipcap-coco", seed=seed)
    model = json.loads((model_dir / "imgcap-model.json").read_text())["name"]
    t = time.perf_counter()
    db = make_db(workdir, photos, model, seed)
    big_paths = add_big_jpegs(workdir, db, model, big)
    print(f"database ready in {time.perf_counter() - t:.1f} s: {db}", flush=True)
    out: dict = {"photos": photos + big, "queries": n_queries}

    srv = Server(db, model_dir)
    try:
        out["server memory at start MB"] = srv.memory_mb()
        ms, status, _ = srv.get("/api/search?" + urlencode({"q": "warm up", "n": 48}))
        assert status == 200
        out["first query ms (loads text tower, FAISS cache)"] = round(ms, 1)
        for mode in ("hybrid", "keyword"):
            times = []
            for q in queries(n_queries, seed + 1):
                ms, status, _ = srv.get("/api/search?" + urlencode({"q": q, "mode": mode, "n": 48}))
                assert status == 200
                times.append((ms, q))
            slow = sorted(times, reverse=True)[:3]
            print(mode, "slowest:", [(round(m), q) for m, q in slow], flush=True)
            times = [m for m, _ in times]
            p50, p95 = percentiles(times)
            out[f"warm /api/search {mode} p50 / p95 ms"] = [round(p50, 1), round(p95, 1)]
        ms, status, body = srv.get("/?" + urlencode({"q": "dog on a park bench"}))
        assert status == 200
        out["search page (HTML, 48 cards) ms"] = round(ms, 1)

        # Thumbnails of the 12 MP JPEGs: ids through the API (they are the only 'big test' ones).
        _, _, body = srv.get("/api/search?" + urlencode({"q": "big test photo", "mode": "keyword",
                                                         "n": big}))  # fmt: skip
        ids = [h["id"] for h in json.loads(body)["hits"]]
        assert len(ids) == big, len(ids)
        thumbs = Path(str(db) + ".thumbs")
        for p in thumbs.rglob("*.jpg"):
            p.unlink()
        first = []
        t = time.perf_counter()
        for i in ids:
            ms, status, _ = srv.get(f"/thumb/{i}")
            assert status == 200
            first.append(ms)
        wall = time.perf_counter() - t
        out["first-time thumbnails, 12 MP JPEG, one at a time: per s"] = round(len(ids) / wall, 2)
        out["first-time thumbnail ms p50"] = round(statistics.median(first), 1)
        for p in thumbs.rglob("*.jpg"):
            p.unlink()
        t = time.perf_counter()
        threads = [threading.Thread(target=_fetch, args=(srv.hostport, i)) for i in ids]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        out["first-time thumbnails, all requested at once: per s"] = round(len(ids) / wall, 2)
        cached = [srv.get(f"/thumb/{ids[k % len(ids)]}")[0] for k in range(200)]
        p50, p95 = percentiles(cached)
        out["cached thumbnail p50 / p95 ms"] = [round(p50, 2), round(p95, 2)]
        out["server memory after MB"] = srv.memory_mb()
    finally:
        srv.stop()

    env = {**os.environ, "IMGCAP_DB": str(db), "OPENBLAS_NUM_THREADS": "1"}
    cli = [sys.executable, "-c", "import cli; cli.app()", "search", "--model", str(model_dir)]
    walls = []
    for q in queries(cold_runs, seed + 2):
        t = time.perf_counter()
        subprocess.run(cli + [q, "--paths", "-n", "48"], env=env, check=True, capture_output=True)
        walls.append((time.perf_counter() - t) * 1e3)
    out[f"cold CLI search hybrid ms (median of {cold_runs})"] = round(statistics.median(walls))
    out["big JPEGs"] = len(big_paths)
    print(json.dumps(out, indent=1), flush=True)
    return out


def _fetch(hostport: str, file_id: int) -> None:
    conn = http.client.HTTPConnection(hostport, timeout=600)
    conn.request("GET", f"/thumb/{file_id}")
    assert conn.getresponse().read()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-serve"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--big", type=int, default=12, help="12 MP JPEGs for the thumbnail numbers")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    run(a.photos, a.workdir, a.queries, a.big, a.cold_runs, a.seed)


if __name__ == "__main__":
    main()

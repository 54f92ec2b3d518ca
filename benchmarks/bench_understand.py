"""Query understanding and places at 100,000 photos: a cold `imgcap search` with parsing on
(nothing to parse, and dates + place + folder to parse) against `--literal`; where the parsing
time goes; naming places for the photos with GPS at index time; the import cost of the date
libraries that were considered.

    python benchmarks/bench_understand.py --photos 100000 --workdir /tmp/imgcap-bench-understand

The database is bench_search.py's (100k files, random 512-d vectors, years 2010-2024, folders
YEAR/NNN, camera Apple iPhone 12), with GPS on a third of the photos (around five cities).
Fresh process per search, FAISS cache built by a first search, page cache warm.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CITIES = [(48.8566, 2.3522), (40.7128, -74.006), (35.6762, 139.6503), (51.5074, -0.1278),
          (-33.8688, 151.2093)]  # fmt: skip

STAGES = r"""
import json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = round((time.perf_counter() - t0) * 1000, 1)
from indexer import store
mark("import store")
from search import understand
mark("import search.understand (ms)")
conn = store.connect_readonly(sys.argv[1])
v = understand.IndexVocabulary(conn)
mark("open db")
v.places(); mark("places in the index")
v.cameras(); mark("cameras in the index")
v.folders(); mark("folder names in the index")
v.has_photos("2019-01-01", "2020-01-01"); mark("any photo from 2019?")
v.media_types(); mark("videos?")
got = understand.understand(sys.argv[2], v)
mark("parse")
print(json.dumps({"marks_ms": marks, "understood": got.label(), "text": got.text}))
"""


def add_gps(db: Path) -> int:
    conn = sqlite3.connect(db)
    with conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM files WHERE id % 3 = 0")]
        conn.executemany(
            "UPDATE files SET gps_lat = ?, gps_lon = ? WHERE id = ?",
            [
                (CITIES[i % 5][0] + (i % 97) * 1e-4, CITIES[i % 5][1] + (i % 89) * 1e-4, i)
                for i in ids
            ],
        )
    conn.close()
    return len(ids)


def import_cost(module: str, path: str | None) -> float | None:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return round(float(r.stdout), 3) if r.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-understand"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--libs", default=None, help="a --target folder with dateparser installed")
    args = ap.parse_args()

    from bench_search import make_db

    from indexer.metadata.places import refresh_places
    from indexer.models.random_weights import write_random_model
    from indexer.store.database import Store

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model"
    if not (model_dir / "imgcap-model.json").is_file():
        write_random_model(model_dir, "clipcap-coco", seed=args.seed)
    spec = json.loads((model_dir / "imgcap-model.json").read_text())
    fresh = not (work / "photos.db").exists()
    db = make_db(work, args.photos, spec["name"], args.seed)
    out: dict = {"photos": args.photos}
    if fresh:
        n = add_gps(db)
        t = time.perf_counter()
        with Store.open(db) as s:
            got = refresh_places(s)
        out[f"name places of {n} photos (s, incl. gazetteer load)"] = round(
            time.perf_counter() - t, 2
        )
        assert got.geocoded == n, got
    env = {**os.environ, "IMGCAP_DB": str(db), "IMGCAP_DEVICE": "cpu"}
    imgcap = [sys.executable, "-c", "import cli; cli.app()"]
    common = ["--model", str(model_dir), "--paths", "-n", "20"]
    subprocess.run(imgcap + ["search", "dog", *common], env=env, check=True, capture_output=True)
    cases = {
        "plain words, --literal": ["dog on a park bench", "--literal"],
        "plain words, parsing on": ["dog on a park bench"],
        "'dog in Paris 2024 from the 2024 folder', parsing on": [
            "dog in Paris 2024 from the 2024 folder"
        ],
        "same, --literal": ["dog in Paris 2024 from the 2024 folder", "--literal"],
    }
    for label, words in cases.items():
        walls, cpus = [], []
        for _ in range(args.runs):
            import resource

            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(
                imgcap + ["search", *words, *common], env=env, check=True, capture_output=True
            )
            walls.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        out[f"cold search wall s: {label}"] = round(statistics.median(walls), 3)
        out[f"cold search cpu s: {label}"] = round(statistics.median(cpus), 3)
        print(label, [round(w, 2) for w in walls], flush=True)
    r = subprocess.run(
        [sys.executable, "-c", STAGES, str(db), "dog in Paris 2024 from the 2024 folder"],
        env={**env, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        text=True,
    )
    out["parsing stages (cumulative ms)"] = json.loads(r.stdout.strip().splitlines()[-1])
    out["import s: dateparser"] = import_cost("dateparser", args.libs)
    out["import s: parsedatetime"] = import_cost("parsedatetime", args.libs)
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

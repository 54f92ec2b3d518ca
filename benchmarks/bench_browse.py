"""The gallery without a query: how long its ways in (facet counts) and its timeline take.

    python benchmarks/bench_browse.py --sizes 10000 100000 --workdir /tmp/imgcap-bench-browse

A synthetic library of N photos, store rows written directly (empty files: the timeline checks
that each shown file exists): 15 years of dates (5% undated), 3 levels of folders (year /
month / event), 8 cameras, tags on every fifth photo (200 distinct), places on a third (60
distinct). Timed, median of `--runs`, alternating: search/web/facets.py `facets` (every count the
landing page shows, one connection), Library.facets (what `/` pays while the database is
unchanged: remembered), each store count alone, and Library.timeline pages 1 and 10 of 48
photos (what `/` and its 10th scroll cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM = 16  # no vector is searched
MODEL = "bench-clip"
CAMERAS = [("Canon", "Canon EOS 80D"), ("Apple", "iPhone 11"), ("Apple", "iPhone 14 Pro"),
           ("SONY", "ILCE-7M3"), ("FUJIFILM", "X-T3"), ("Google", "Pixel 7"),
           ("NIKON CORPORATION", "NIKON D750"), (None, None)]  # fmt: skip


def make_library(workdir: Path, n: int) -> Path:
    from indexer.store import photo_tags, places
    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord
    from indexer.store.roots import add_roots

    folder = workdir / f"n{n}"
    db_path = folder / "photos.db"
    if db_path.exists():
        return db_path
    rng = np.random.default_rng(0)
    root = folder / "photos"
    vec = np.ones(DIM, dtype=np.float32)
    with Store.open(db_path) as s:
        batch = 5000
        for start in range(0, n, batch):
            results, files = [], []
            for i in range(start, min(n, start + batch)):
                year, month = 2010 + int(rng.integers(15)), 1 + int(rng.integers(12))
                taken = None if rng.random() < 0.05 else f"{year}-{month:02d}-15T12:00:00"
                path = root / str(year) / f"{month:02d}" / f"event {i % 7}" / f"IMG_{i:06d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                make, model = CAMERAS[i % len(CAMERAS)]
                h = f"{i:064x}"
                results.append(ResultRecord(h, f"photo {i}", vec, vec))
                files.append(FileRecord(str(path), 0, 0, h, 4032, 3024, taken, make, model))
            s.write_batch(MODEL, results, files)
        add_roots(s.db, [str(root)], db_path)
        ids = [i for (i,) in s.db.execute("SELECT id FROM files ORDER BY id")]
        rows = [
            photo_tags.TagRow(p, [f"tag {int(rng.integers(200))}", "family"], None, 0, 0, "", [])
            for (p,) in s.db.execute("SELECT path FROM files WHERE id % 5 = 0")
        ]
        photo_tags.save(s.db, rows)
        spots = [places.Place(f"City {k}", f"Region {k % 9}", "Country", "CC") for k in range(60)]
        places.save(s.db, [(i, 0.0, 0.0, spots[i // 3 % 60]) for i in ids if i % 3 == 0], "bench")
    return db_path


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def measure(db_path: Path, runs: int) -> dict:
    from indexer.config import Settings
    from indexer.store import facets as counts
    from indexer.store.connection import connect_readonly
    from search.web.facets import facets
    from search.web.library import Library

    lib = Library(Settings(db_path=db_path), model=MODEL)
    conn = connect_readonly(db_path)
    steps = {
        "facets (every count, counted)": lambda: facets(conn),
        "facets (landing page: unchanged database)": lib.facets,
        "folder_counts": lambda: counts.folder_counts(conn),
        "place_counts": lambda: counts.place_counts(conn),
        "tag_counts": lambda: counts.tag_counts(conn),
        "camera_counts": lambda: counts.camera_counts(conn),
        "month_counts": lambda: counts.month_counts(conn),
        "timeline page 1": lambda: lib.timeline(1, 48),
        "timeline page 10": lambda: lib.timeline(10, 48),
    }
    got = facets(conn)
    sizes = {k: len(getattr(got, k)) for k in ("folders", "places", "tags", "cameras", "years")}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(runs):  # alternate, so a busy moment of the shared box hits every step
        for name, fn in steps.items():
            times[name].append(median_ms(fn, 1))
    conn.close()
    return {"sizes": sizes, "ms": {k: statistics.median(v) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-browse"))
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    for n in args.sizes:
        db = make_library(args.workdir, n)
        print(json.dumps({"photos": n, **measure(db, args.runs)}))


if __name__ == "__main__":
    main()

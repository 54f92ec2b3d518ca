"""Where a photo a person tagged ranks as the library grows: the fusion alone vs own words first.

    python benchmarks/bench_ranking.py --sizes 500 10000 100000 --workdir /tmp/imgcap-bench-ranking

A synthetic library of N photos, store rows written directly (as benchmarks/bench_search.py's
`make_db`; empty files, because only their existence matters), queried for "uncle bob" through
search/query.py `search`, the code `imgcap search` runs, with a fake text encoder that returns
the query vector. Cosines to the query are drawn as bench_fusion.py's signals are: image ~0.20 +-
0.03, caption ~0.55 +- 0.08, correlated (a photo that looks like the query tends to be captioned
like it). No caption holds "uncle" or "bob". One photo is tagged "Uncle Bob", with the vector
ranks the issue measured at 473 photos (#170 on image, #314 on caption), scaled to N.

Printed per size: the tagged photo's rank among `-n` hits (`--limit`, default 100) with the
fusion alone (`SearchRequest(own_words_first=False)`, what search did before) and with own words
first, its image and caption ranks over the whole library, and the median search time of each.
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

DIM = 64  # ranks do not depend on the dimension; 64 keeps 100k photos quick to write
MODEL = "bench-clip"
QUERY = "uncle bob"
IMAGE_RANK, CAPTION_RANK, MEASURED_AT = 170, 314, 473  # issue 19 §1, a 473-photo library
WORDS = (
    "dog cat car bus bench park street beach cake table kitchen bike train man woman child "
    "red blue green yellow white black snow tree field water boat plane bird horse pizza"
).split()


def at_cosines(q: np.ndarray, cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, DIM) unit vectors whose cosines to the unit vector q are `cos`."""
    noise = rng.standard_normal((len(cos), DIM)).astype(np.float32)
    noise -= np.outer(noise @ q, q)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (cos[:, None] * q + np.sqrt(1 - cos[:, None] ** 2) * noise).astype(np.float32)


def make_library(workdir: Path, n: int, seed: int) -> tuple[Path, np.ndarray, str, dict]:
    """The database (built once per size and seed), the query vector, the tagged photo's path
    and its cosine ranks over the library."""
    from indexer.store import photo_tags
    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord
    from indexer.store.roots import add_roots

    rng = np.random.default_rng(seed)
    q = rng.standard_normal(DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    z = rng.standard_normal(n)
    img = 0.20 + 0.03 * (0.6 * z + 0.8 * rng.standard_normal(n))
    cap = 0.55 + 0.08 * (0.6 * z + 0.8 * rng.standard_normal(n))
    tagged = n // 2
    # Its cosines at the measured rank fractions of everyone else's.
    others = np.delete(np.arange(n), tagged)
    img[tagged] = np.quantile(img[others], 1 - IMAGE_RANK / MEASURED_AT)
    cap[tagged] = np.quantile(cap[others], 1 - CAPTION_RANK / MEASURED_AT)
    ranks = {
        "image_rank": int((img > img[tagged]).sum()) + 1,
        "caption_rank": int((cap > cap[tagged]).sum()) + 1,
    }
    folder = workdir / f"n{n}-s{seed}"
    db_path = folder / "photos.db"
    root = folder / "photos"
    tagged_path = str(root / "family" / "IMG_tagged.jpg")
    if db_path.exists():
        return db_path, q, tagged_path, ranks
    root.mkdir(parents=True, exist_ok=True)
    batch = 5000
    with Store.open(db_path) as s:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            iv = at_cosines(q, img[start : start + m], rng)
            cv = at_cosines(q, cap[start : start + m], rng)
            results, files = [], []
            for j in range(m):
                i = start + j
                if i == tagged:
                    path = Path(tagged_path)
                else:
                    path = root / f"{2010 + i % 15}" / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                w = rng.choice(WORDS, 4)
                caption = f"a {w[0]} and a {w[1]} near a {w[2]} {w[3]}"
                h = f"{i:064x}"
                results.append(ResultRecord(h, caption, iv[j], cv[j]))
                files.append(FileRecord(str(path), 0, 0, h, 4032, 3024, "2019-06-01T12:00:00"))
            s.write_batch(MODEL, results, files)
        add_roots(s.db, [str(root)], db_path)
        row = photo_tags.TagRow(tagged_path, ["Uncle Bob"], None, 0, 0, "", [])
        photo_tags.save(s.db, [row])
    return db_path, q, tagged_path, ranks


class QueryEncoder:
    """The text tower, faked: every text is the query vector."""

    def __init__(self, q: np.ndarray):
        self.q = q

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.q for _ in texts])


def measure(db_path: Path, q: np.ndarray, tagged: str, limit: int, runs: int) -> dict:
    """The tagged photo's rank and the median search time, fusion alone and own words first
    (timed alternately, so a busy moment of a shared machine hits both alike)."""
    from indexer.config import Settings
    from search.query import SearchRequest, search

    settings = Settings(db_path=db_path)
    enc = QueryEncoder(q)
    out = {}
    ms: dict[bool, list[float]] = {False: [], True: []}
    for i in range(runs + 1):
        for first in (False, True):
            req = SearchRequest(text=QUERY, limit=limit, model=MODEL, own_words_first=first)
            t = time.perf_counter()
            hits = search(db_path, req, settings, lambda m, s: enc)
            if i:  # the first round builds the FAISS cache
                ms[first].append((time.perf_counter() - t) * 1e3)
            out[first] = next((h.rank for h in hits if h.path == tagged), None)
    return {
        "rank_fusion_alone": out[False],  # None: not among the first `limit` hits
        "rank_own_words_first": out[True],
        "ms_fusion_alone": round(statistics.median(ms[False]), 1),
        "ms_own_words_first": round(statistics.median(ms[True]), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 10_000, 100_000])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-ranking"))
    ap.add_argument("--limit", type=int, default=100, help="hits asked for (-n)")
    ap.add_argument("--runs", type=int, default=5, help="timed searches per setting")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        db_path, q, tagged, ranks = make_library(args.workdir, n, args.seed)
        built_s = time.perf_counter() - t
        row = {
            "photos": n,
            **ranks,
            **measure(db_path, q, tagged, args.limit, args.runs),
            "build_s": round(built_s, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n-n {args.limit}; ranks over the whole library; search time: median of {args.runs}")
    head = ["photos", "image rank", "caption rank", "fusion alone (before)", "own words first"]
    print("| " + " | ".join([*head, "ms before", "ms after"]) + " |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        shown = [r["rank_fusion_alone"], r["rank_own_words_first"]]
        before, after = (f"#{x}" if x else f"> {args.limit}" for x in shown)
        print(
            f"| {r['photos']:,} | #{r['image_rank']:,} | #{r['caption_rank']:,} | {before} |"
            f" {after} | {r['ms_fusion_alone']} | {r['ms_own_words_first']} |"
        )


if __name__ == "__main__":
    main()

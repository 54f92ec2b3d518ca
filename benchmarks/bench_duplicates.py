"""Near-duplicate groups (issue 22 §2): pair precision/recall on a generated set, and the time
to group 100,000 photos.

    python benchmarks/bench_duplicates.py quality [--model NAME_OR_DIR]
    python benchmarks/bench_duplicates.py speed --photos 100000

quality: data/samples/*.jpg (and a 4000×3000 "phone" JPEG made from one of them), each with
resized, recompressed, cropped 7 %, brightened and burst-shifted variants, plus 24 distinct
synthetic scenes (tests/photo_factory.py make_duplicate_set). The set is indexed with the real
pipeline (`index_paths`, default: the tiny random-weights model, whose CLIP vectors say nothing,
so the perceptual hash alone decides; pass a real model to measure the CLIP-confirmed rule);
pairs in one group are compared with the true pairs. It also prints each variant's DCT-hash and
difference-hash distance to its original and the smallest distance between distinct photos, the
measurement that chose the DCT hash and the thresholds (indexer/run/similar.py).

speed: synthetic perceptual hashes and 512-d image vectors for N photos, 10 % of them in planted
bursts of 2-5 (a few bits flipped, vectors perturbed); times indexer/run/similar.py's grouping,
candidates and union-find, in memory, and `refresh_groups` on an N-photo SQLite database (the
step every `imgcap index` ends with).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

DIM = 512


def _dhash(image) -> int:
    from PIL import Image

    g = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.float64)
    return int.from_bytes(np.packbits((g[:, 1:] > g[:, :-1]).ravel()).tobytes(), "big")


def quality(model: str | None) -> None:
    from photo_factory import make_duplicate_set

    from indexer.config import Settings
    from indexer.media.decode import decode_image
    from indexer.media.perceptual_hash import hamming, perceptual_hash
    from indexer.run.pipeline import index_paths
    from indexer.run.similar import load_grouping
    from indexer.store.connection import connect_readonly

    work = Path(tempfile.mkdtemp(prefix="imgcap-dups-"))
    samples = sorted((ROOT / "data" / "samples").glob("*.jpg"))
    made = make_duplicate_set(work / "photos", samples[:-1], 24, phone_from=samples[-1])
    photos = work / "photos"
    truth_of = {}  # relative path -> scene
    for original, variants in made["groups"].items():
        for rel in [original, *variants]:
            truth_of[rel] = original
    for rel in made["distinct"]:
        truth_of[rel] = rel

    # Distances, as the index computes them (the decode the workers do, 224-px model input).
    ph, dh = {}, {}
    for rel in truth_of:
        decoded = decode_image(photos / rel, min_side=560)
        ph[rel] = perceptual_hash(decoded.image, decoded.extent)
        dh[rel] = _dhash(decoded.image)
    print("distance of each variant to its original: DCT hash (pHash) / difference hash (dHash)")
    for original, variants in made["groups"].items():
        cells = [
            f"{Path(v).stem} {hamming(ph[original], ph[v])}/{hamming(dh[original], dh[v])}"
            for v in variants
        ]
        print(f"  {original:28s} " + ", ".join(cells))
    for name, hashes in (("pHash", ph), ("dHash", dh)):
        apart = sorted(
            hamming(hashes[a], hashes[b])
            for a, b in itertools.combinations(truth_of, 2)
            if truth_of[a] != truth_of[b]
        )
        print(f"  {name}: smallest distances between distinct photos {apart[:5]}")

    if model is None:
        from indexer.models.random_weights import write_tiny_model

        model = str(write_tiny_model(work / "tiny", seed=0))
    settings = Settings(db_path=work / "imgcap.db", model=model, workers=2, max_tokens=4)
    t = time.perf_counter()
    summary = index_paths([photos], settings)
    print(f"indexed {summary.new} files in {time.perf_counter() - t:.1f} s, model {summary.model}")
    for label, vectors_of in (("hash + image vectors", summary.model), ("hash alone", None)):
        conn = connect_readonly(settings.db_path)
        try:
            grouping = load_grouping(conn, vectors_of)
        finally:
            conn.close()
        print(f"-- {label}")
        _score(grouping, photos, truth_of, made)


def _score(grouping, photos: Path, truth_of: dict[str, str], made: dict) -> None:
    from indexer.run.similar import LOOSE, STRICT

    rel = [Path(c.paths[0]).relative_to(photos).as_posix() for c in grouping.contents]
    combos = (itertools.combinations(g, 2) for g in grouping.groups)
    found = {frozenset((rel[a], rel[b])) for pairs_of in combos for a, b in pairs_of}
    pairs = itertools.combinations(truth_of, 2)
    true = {frozenset(p) for p in pairs if truth_of[p[0]] == truth_of[p[1]]}
    hit = found & true
    precision = len(hit) / len(found) if found else 1.0
    recall = len(hit) / len(true)
    print(f"rule: d <= {STRICT}, or d <= {LOOSE} and cosine >= COSINE (indexer/run/similar.py)")
    print(f"pairs: true {len(true)}, found {len(found)}, right {len(hit)}")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    kinds: dict[str, list[int]] = {}
    for original, variants in made["groups"].items():
        for v in variants:
            kinds.setdefault(Path(v).stem, []).append(frozenset((original, v)) in found)
    print(
        "variants grouped with their original: "
        + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in kinds.items())
    )
    distinct_grouped = sum(1 for p in found if truth_of[min(p)] != truth_of[max(p)])
    print(f"distinct photos grouped (false pairs): {distinct_grouped}")


def _synthetic(n: int, rng: np.random.Generator):
    """(hashes int64 (n,), vectors float32 (n, DIM)) with 10 % of photos in bursts of 2-5."""
    hashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    vecs = centres[rng.integers(0, 2000, n)] + 0.9 * rng.standard_normal((n, DIM), dtype=np.float32)
    i = 0
    planted = 0
    while planted < n // 10 and i < n - 5:
        size = int(rng.integers(2, 6))
        for j in range(i + 1, i + size):
            flips = rng.choice(64, int(rng.integers(0, 9)), replace=False)
            mask = np.uint64(sum(1 << int(b) for b in flips))
            hashes[j] = (hashes[i].view(np.uint64) ^ mask).view(np.int64)
            vecs[j] = vecs[i] + 0.1 * rng.standard_normal(DIM, dtype=np.float32)
        planted += size
        i += size + int(rng.integers(1, 20))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return hashes, vecs


def speed(n: int) -> None:
    from indexer.run.similar import Content, group_contents, refresh_groups
    from indexer.store.database import Store
    from indexer.store.records import vec_to_blob

    rng = np.random.default_rng(22)
    hashes, vecs = _synthetic(n, rng)
    contents = [
        Content(f"{i:032x}", (f"/p/{i}.jpg",), 12_000_000, None, i, int(hashes[i]))
        for i in range(n)
    ]
    for label, v in (("perceptual hash only", None), ("hash + image vectors", vecs)):
        t = time.perf_counter()
        g = group_contents(contents, v)
        dt = time.perf_counter() - t
        print(f"{n} photos, {label}: {dt:.2f} s, {len(g.pairs)} pairs, {len(g.groups)} groups")

    db = Path(tempfile.mkdtemp(prefix="imgcap-dups-speed-")) / "imgcap.db"
    with Store.open(db) as store:
        conn = store.db.conn
        with store.db.atomic():
            conn.execute("INSERT INTO roots (path) VALUES ('/p')")
            conn.executemany(
                "INSERT INTO files (path, folder, size, mtime_ns, content_hash, width, height,"
                " indexed_at, perceptual_hash) VALUES (?, '/p', 1, ?, ?, 4000, 3000, '', ?)",
                [(c.paths[0], c.mtime_ns, c.content_hash, c.perceptual_hash) for c in contents],
            )
            conn.executemany(
                "INSERT INTO results (content_hash, model, caption, image_vec, caption_vec, dim,"
                " created_at) VALUES (?, 'bench', '', ?, ?, ?, '')",
                [(c.content_hash, vec_to_blob(vecs[i]), b"", DIM) for i, c in enumerate(contents)],
            )
        t = time.perf_counter()
        groups = refresh_groups(store.db, "bench")
        dt = time.perf_counter() - t
        print(f"refresh_groups on a {n}-photo database: {dt:.2f} s, {groups} groups")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--model", default=None, help="model name or folder (default: tiny random)")
    s = sub.add_parser("speed")
    s.add_argument("--photos", type=int, default=100_000)
    args = ap.parse_args()
    if args.what == "quality":
        quality(args.model)
    else:
        speed(args.photos)


if __name__ == "__main__":
    main()

"""Non-English search speed: a cold `imgcap search` in German (the multilingual text tower at the
published architecture's size, random weights) beside the same cold search in English, and warm
queries as the gallery runs them, at 100,000 photos.

    python benchmarks/bench_multilingual.py --workdir /tmp/imgcap-bench-ml --photos 100000

The tower is written locally with `write_random_tower` at the sizes of
sentence-transformers/clip-ViT-B-32-multilingual-v1 (119,547-piece vocabulary, 768 wide,
6 layers, 12 heads, 3072 hidden, Dense 768->512: a 539 MB model.safetensors); its weights are
random, so only the times mean anything. The model (random ClipCap + ViT-B/32) and the database
are bench_search.py's (`--model DIR` reuses a model directory already written). Cold runs
alternate German and English so load on a shared machine hits both; warm queries go through
search/web/library.Library.search, what the gallery runs per request (without HTTP and
templates), German and English alternated, after one warm-up each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `imgcap search` and `serve` do
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GERMAN = [
    "Hund am Strand", "Geburtstag von Oma", "rotes Auto auf der Straße", "Schnee im Winter",
    "Kinder spielen im Park", "Sonnenuntergang am Meer", "Hochzeit in der Kirche",
    "Katze auf dem Sofa", "Berge im Sommer", "Familie beim Essen",
]  # fmt: skip
ENGLISH = [
    "dog on the beach", "grandma's birthday", "red car on the street", "snow in winter",
    "kids playing in the park", "sunset at the sea", "wedding in a church", "cat on the sofa",
    "mountains in summer", "family dinner",
]  # fmt: skip
REAL = {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "out_dim": 512}

STAGES = r"""
import json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = round(time.perf_counter() - t0, 3)
import cli
mark("import cli")
from pathlib import Path
from indexer.config import Settings
from search.query_encoder import multilingual_encoder
mark("import search")
settings = Settings.from_env()
enc = multilingual_encoder(settings, 512, forced=True)
mark("load tower (read configs, mmap weights, tokenizer)")
enc.encode_texts([sys.argv[1]])
mark("encode query")
print(json.dumps(marks))
"""


def write_tower(out: Path) -> Path:
    from indexer.models.text_tower import write_random_tower

    if (out / "model.safetensors").is_file():
        return out
    words = sorted({w for q in GERMAN + ENGLISH for w in q.replace("'", " ").split()})
    t = time.perf_counter()
    write_random_tower(out, words, vocab_size=119_547, max_positions=512, **REAL)
    print(f"real-size tower written in {time.perf_counter() - t:.1f} s: {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-ml"))
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--model", type=Path, default=None, help="an existing model directory")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm", type=int, default=40, help="warm queries per language")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from benchmarks.bench_search import make_db
    from indexer.models.random_weights import write_random_model

    a.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = a.model or a.workdir / "model"
    if not (model_dir / "imgcap-model.json").is_file():
        write_random_model(model_dir, "clipcap-coco", seed=a.seed)
    name = json.loads((model_dir / "imgcap-model.json").read_text())["name"]
    db = make_db(a.workdir, a.photos, name, a.seed)
    tower = write_tower(a.workdir / "tower")
    env = {
        **os.environ,
        "IMGCAP_DB": str(db),
        "IMGCAP_DEVICE": "cpu",
        "IMGCAP_TEXT_TOWER": str(tower),
        "PYTHONPATH": str(ROOT),
    }
    imgcap = [sys.executable, "-c", "import cli; cli.app()"]

    def cold(query: str) -> tuple[float, float]:
        """(wall s, CPU s) of one `imgcap search` process; CPU is less sensitive to load."""
        import resource

        def cpu() -> float:
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        args = ["search", query, "--model", str(model_dir), "--paths", "-n", "20"]
        t, before = time.perf_counter(), cpu()
        subprocess.run(imgcap + args, env=env, cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - t, cpu() - before

    cold("dog")  # builds the FAISS cache beside the database (index-time work, not cold)
    walls: dict[str, list[float]] = {"de": [], "en": []}
    cpus: dict[str, list[float]] = {"de": [], "en": []}
    for i in range(a.runs):
        for lang, queries in (("de", GERMAN), ("en", ENGLISH)):
            wall, cpu_s = cold(queries[i % len(queries)])
            walls[lang].append(wall)
            cpus[lang].append(cpu_s)
    out: dict = {"photos": a.photos}
    for lang, w in walls.items():
        out[f"cold {lang} wall s (median of {a.runs})"] = round(statistics.median(w), 2)
        out[f"cold {lang} cpu s (median of {a.runs})"] = round(statistics.median(cpus[lang]), 2)
        print(lang, "cold wall", [round(x, 2) for x in w], flush=True)
    r = subprocess.run(
        [sys.executable, "-c", STAGES, GERMAN[0]],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    out["German stages (cumulative s)"] = json.loads(r.stdout.strip().splitlines()[-1])

    os.environ.update({k: env[k] for k in ("IMGCAP_DB", "IMGCAP_DEVICE", "IMGCAP_TEXT_TOWER")})
    from indexer.config import Settings
    from search.query import SearchRequest
    from search.web.library import Library

    lib = Library(Settings.from_env(), model=str(model_dir))
    ms: dict[str, list[float]] = {"de": [], "en": []}
    lib.search(SearchRequest(text=GERMAN[0]))  # warm-up: FAISS, both towers
    lib.search(SearchRequest(text=ENGLISH[0]))
    for i in range(a.warm):
        for lang, queries in (("de", GERMAN), ("en", ENGLISH)):
            # a fresh text each time: the gallery remembers the vectors of texts it has seen
            text = f"{queries[i % len(queries)]} x{i}"
            t = time.perf_counter()
            page = lib.search(SearchRequest(text=text))
            ms[lang].append((time.perf_counter() - t) * 1e3)
            assert page.language == lang, (text, page.language)
    for lang, v in ms.items():
        v.sort()
        p95 = v[min(len(v) - 1, int(0.95 * len(v)))]
        out[f"warm {lang} ms p50 / p95 ({len(v)} queries)"] = [
            round(statistics.median(v), 1),
            round(p95, 1),
        ]
    print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()

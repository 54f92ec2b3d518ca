"""Cold start: seconds from a fresh Python process to the first caption, with the full-size
architecture (CLIP ViT-B/32 + ClipCap MLP + GPT-2 124M) and random weights (`write_random_model`).

Each repeat starts a new interpreter (nothing imported, the weight files in the OS page cache after
the first repeat, as on a second `imgcap caption` run) that imports, loads the model through
`load_model`, decodes one sample photo and captions it with exactly --tokens tokens (random
weights rarely emit the stop token; 20 is a typical caption). The parent times spawn -> caption
line; the child reports the breakdown through load_model's step callback.

    python benchmarks/bench_coldstart.py                  # 5 repeats, medians
    python benchmarks/bench_coldstart.py --model DIR      # an existing model directory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "data" / "samples" / "chelsea.jpg"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
marks = [("imports", 0.0)]  # (step, seconds since start when it began)
def mark(step):
    marks.append((step, time.perf_counter() - t0))
import torch
import indexer.models.gpt2
import indexer.models.gpt2_tokenizer
import open_clip
from indexer.config import Settings
from indexer.media.decode import decode_image
from indexer import models
mark("load model")
settings = Settings(device="cpu", precision="fp32", offline=True)
try:
    model = models.load_model(sys.argv[1], settings, on_step=mark)
except TypeError:  # a loader without the step callback (before the cold-start work)
    model = models.load_model(sys.argv[1], settings)
mark("decode photo")
enc = model.encoder
img = decode_image(sys.argv[2], min_side=enc.image_size).image
pixels = enc.preprocess(img)[None]
mark("CLIP image features")
feats = enc.encode_images(pixels)
mark("caption (GPT-2)")
ids = model.captioner.decode_tokens(feats, 1, int(sys.argv[3]), stop_token=None)[0]
text = model.captioner.detokenize(ids)
mark("end")
print("CAPTION " + json.dumps({"marks": marks, "tokens": len(ids)}), flush=True)
"""


def run_once(model_dir: Path, tokens: int, threads: int) -> tuple[float, list]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model_dir), str(PHOTO), str(tokens)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,  # `python -c` puts the working directory first on sys.path
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("CAPTION "):
            wall = time.perf_counter() - t  # to the caption, not to interpreter teardown
            data = json.loads(line[len("CAPTION ") :])
            break
    else:
        raise SystemExit(f"child failed (exit {proc.wait()})")
    proc.wait()
    return wall, data["marks"]


def stages(marks: list) -> dict[str, float]:
    """Durations: each step lasts until the next one starts. Without a step callback the whole
    load is one "load model" step; with it, its steps follow "load model" (resolving the spec)."""
    return {name: t_next - t for (name, t), (_, t_next) in zip(marks, marks[1:], strict=False)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model directory (default: write a random one)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from indexer.models.random_weights import write_random_model

            model_dir = write_random_model(Path(tmp) / "random-coco")
        run_once(model_dir, args.tokens, args.threads)  # warm-up: page cache, one-time conversion
        runs = [run_once(model_dir, args.tokens, args.threads) for _ in range(args.repeats)]

    walls = [w for w, _ in runs]
    per_stage: dict[str, list[float]] = {}
    for _, marks in runs:
        for k, v in stages(marks).items():
            per_stage.setdefault(k, []).append(v)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} threads, median of {args.repeats} after a warm-up, {args.tokens} tokens"
    )
    print("| stage | seconds (median) |\n|---|---:|")
    for k, v in per_stage.items():
        print(f"| {k} | {statistics.median(v):.2f} |")
    print(
        f"| **spawn to first caption** | **{statistics.median(walls):.2f}** "
        f"(min {min(walls):.2f}, max {max(walls):.2f}) |"
    )


if __name__ == "__main__":
    main()

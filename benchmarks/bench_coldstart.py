"""Cold start: seconds from a fresh Python process to the first caption, with the full-size
architecture (CLIP ViT-B/32 + ClipCap MLP + GPT-2 124M) and random weights (`write_random_model`).

Two measurements, each a new interpreter per repeat (nothing imported; the weight files in the
OS page cache after a warm-up run, as on a second `imgcap caption` run):

- the breakdown: a child that imports what `imgcap caption` imports, in its order (the CLI app,
  torch, then the model code inside `load_model`), loads the model through `load_model`, decodes
  one sample photo and captions it with exactly --tokens tokens (random weights rarely emit the
  stop token; 20 is a typical caption). The parent times spawn -> caption line; the child reports
  each stage through load_model's step callback. "python start" is the rest: the interpreter's
  own start-up before the child's first line.
- the command itself: `python -m cli caption --model DIR PHOTO`, spawn -> exit (the caption's
  length is whatever the random weights give, the same for every tree: same weights, same
  tokens).

`--tree DIR` (repeatable) times other source trees the same way, alternating with this one, e.g.
a `git archive` of an older commit, for a before/after in one run.

    python benchmarks/bench_coldstart.py --model /tmp/random-coco --repeats 5
    python benchmarks/bench_coldstart.py --model /tmp/random-coco --tree /tmp/base --repeats 5
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
marks = [("import the CLI", 0.0)]  # (step, seconds since start when it began)
def mark(step):
    marks.append((step, time.perf_counter() - t0))
import cli  # the Typer app, as `imgcap caption` starts
mark("import torch")
import torch
mark("load_model (imports the model code)")
from indexer.config import Settings
from indexer.media.preprocess import encoder_tensor, model_pixels
from indexer.models.loading import load_model
settings = Settings(device="cpu", precision=sys.argv[4], offline=True)
model = load_model(sys.argv[1], settings, on_step=mark)
mark("decode photo")
enc = model.encoder
pixels = encoder_tensor(enc, model_pixels(sys.argv[2], enc.image_size)[1])[None]
mark("CLIP image features")
feats = enc.encode_images(pixels)
mark("caption (GPT-2)")
ids = model.captioner.decode_tokens(feats, 1, int(sys.argv[3]), stop_token=None)[0]
text = model.captioner.detokenize(ids)
mark("end")
heavy = sorted(m for m in ("transformers", "open_clip", "torchvision", "timm") if m in sys.modules)
dtype = str(model.captioner.dtype).removeprefix("torch.")
print("CAPTION " + json.dumps({"marks": marks, "tokens": len(ids), "heavy": heavy, "dtype": dtype}),
      flush=True)
"""


def _env(tree: Path, threads: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = str(tree)
    return env


def breakdown_once(tree: Path, model_dir: Path, tokens: int, threads: int, precision: str) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model_dir), str(PHOTO), str(tokens), precision],
        stdout=subprocess.PIPE,
        env=_env(tree, threads),
        cwd=tree,  # `python -c` puts the working directory first on sys.path
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("CAPTION "):
            wall = time.perf_counter() - t  # to the caption, not to interpreter teardown
            data = json.loads(line[len("CAPTION ") :])
            break
    else:
        raise SystemExit(f"child failed in {tree} (exit {proc.wait()})")
    proc.wait()
    marks = data["marks"]
    child = marks[-1][1]
    out = {"python start": wall - child}
    for (name, start), (_, end) in zip(marks, marks[1:], strict=False):
        out[name] = out.get(name, 0.0) + end - start
    out["spawn to first caption"] = wall
    return {"stages": out, "heavy": data["heavy"], "dtype": data["dtype"]}


def command_once(tree: Path, model_dir: Path, threads: int, precision: str) -> tuple[float, str]:
    t = time.perf_counter()
    args = ["caption", "--model", str(model_dir), "--precision", precision, str(PHOTO)]
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        env=_env(tree, threads),
        cwd=tree,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"imgcap caption failed in {tree}: {proc.stderr[-400:]}")
    return wall, proc.stdout.strip().split("\t")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model directory (default: write a random one)")
    ap.add_argument("--tree", type=Path, action="append", default=[], help="another tree")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--precision", default="auto", help="auto (as imgcap caption), fp32, bf16")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    trees = [ROOT, *[t.resolve() for t in args.tree]]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from indexer.models.random_weights import write_random_model

            model_dir = write_random_model(Path(tmp) / "random-coco")
        for tree in trees:  # warm-up: page cache, the one-time safetensors conversion
            breakdown_once(tree, model_dir, args.tokens, args.threads, args.precision)
        stages: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
        commands: dict[Path, list[float]] = {t: [] for t in trees}
        heavy: dict[Path, str] = {}
        captions: dict[Path, str] = {}
        for _ in range(args.repeats):
            for tree in trees:  # alternate, so a shared machine's load falls on all alike
                got = breakdown_once(tree, model_dir, args.tokens, args.threads, args.precision)
                heavy[tree] = f"{got['dtype']}; imported " + (", ".join(got["heavy"]) or "none")
                for k, v in got["stages"].items():
                    stages[tree].setdefault(k, []).append(v)
                wall, captions[tree] = command_once(tree, model_dir, args.threads, args.precision)
                commands[tree].append(wall)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} threads, medians of {args.repeats} after a warm-up, {args.tokens} "
        f"tokens in the breakdown; load average at the end {load:.1f}"
    )
    for tree in trees:
        print(f"{tree}: {heavy[tree]} (of transformers, open_clip, torchvision, timm)")
    names = list(dict.fromkeys(k for t in trees for k in stages[t]))
    print("| stage | " + " | ".join(t.name for t in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for k in names:
        cells = []
        for t in trees:
            v = stages[t].get(k)
            cells.append(f"{statistics.median(v):.2f}" if v else "")
        print(f"| {k} | " + " | ".join(cells) + " |")
    cells = [
        f"{statistics.median(commands[t]):.2f} ({min(commands[t]):.2f}-{max(commands[t]):.2f})"
        for t in trees
    ]
    print("| `imgcap caption PHOTO`, spawn to exit | " + " | ".join(cells) + " |")
    for t in trees:
        print(f"caption ({t.name}): {len(captions[t])} characters, {ascii(captions[t][:40])}...")


if __name__ == "__main__":
    main()

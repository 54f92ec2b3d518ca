"""The pair ratio: a whole `imgcap index` process against the reference loop, on the same phone
photos, full-size random-weight clipcap-coco, exactly --tokens tokens per caption.

Each measurement is a fresh Python process, timed from spawn to exit (imports, model load,
decoding, model work, database), so cold-start costs count on both sides. Variants alternate
within each repeat, so a shared machine's load falls on all of them alike.

- imgcap: `index_paths` over the folder into a new database, as `imgcap index` runs it (decode
  workers, batches, caption text vectors, store), with captions fixed at --tokens tokens (random
  weights rarely emit the stop token) and a typical caption's text for the caption vector, as
  bench_index.py does. One row per --precision.
- reference: one image at a time: PIL load, EXIF transpose, open_clip's eval transform, CLIP,
  ClipCap's generate2 without a KV cache (tests/naive_clipcap.py, checked by the tests to give the
  fast decoders' tokens), fp32. `--ref-images` of them (default all); with fewer, the process's
  start-up (imports, load) is counted once and the per-image time scaled to all the photos.

    python benchmarks/bench_pair.py --images 48 --repeats 3 --ref-images 8
"""

from __future__ import annotations

import argparse
import itertools
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

IMGCAP_CHILD = r"""
import dataclasses, sys, time
t0 = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
from pathlib import Path
from indexer.config import Settings
from indexer.models import loading
from indexer.run.pipeline import index_paths
import bench_index

real = loading.load_model
def fixed_length(name, settings, *a, **k):
    model = real(name, settings, *a, **k)
    cap = bench_index.FixedLengthCaptioner(model.captioner, int(sys.argv[5]))
    return dataclasses.replace(model, captioner=cap)
loading.load_model = fixed_length  # this benchmark's captions: exactly --tokens tokens
s = Settings(db_path=Path(sys.argv[3]), model=sys.argv[4], device="cpu", precision=sys.argv[6],
             offline=True)
summary = index_paths([Path(sys.argv[2])], s)
assert summary.captioned == int(sys.argv[7]), summary
print("TIMINGS", dict(summary.timings), flush=True)
"""

REFERENCE_CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from pathlib import Path
import torch
from PIL import Image, ImageOps
from indexer.config import Settings
from indexer.models.loading import load_model
from naive_clipcap import naive_greedy
model = load_model(sys.argv[2], Settings(device="cpu", precision="fp32", offline=True))
enc, cap = model.encoder, model.captioner
t_start = time.perf_counter() - t0
paths = sorted(Path(sys.argv[3]).glob("*.jpg"))[: int(sys.argv[4])]
t1 = time.perf_counter()
for p in paths:
    with Image.open(p) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    feats = enc.encode_images(enc.preprocess(im)[None])
    with torch.inference_mode():
        prefix = cap.model.prefix_embeddings(feats)
        ids = naive_greedy(cap.model, prefix, int(sys.argv[5]), stop_token=None)
    cap.detokenize(ids)
per_image = (time.perf_counter() - t1) / len(paths)
print("REF " + json.dumps({"startup": t_start, "per_image": per_image}), flush=True)
"""


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child and its children, stdout) of one process."""
    before = os.times()
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = os.times()
    if r.returncode:
        raise SystemExit(f"child failed ({r.returncode}):\n{r.stderr[-3000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--ref-images", type=int, default=0, help="reference photos (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgcap-bench"))
    ap.add_argument("--base", type=Path, help="also time this tree (a commit's git archive)")
    args = ap.parse_args()

    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    from bench_index import make_phone_photos

    from indexer.models.random_weights import write_random_model

    folder = args.work / f"phone-{args.images}"
    if len(list(folder.glob("*.jpg"))) != args.images:
        make_phone_photos(folder, args.images)
    model_dir = args.work / "random-clipcap-coco"
    if not model_dir.is_dir():
        write_random_model(model_dir)
    ref_n = args.ref_images or args.images
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    py = sys.executable
    rows: dict[str, list[tuple[float, float]]] = {}
    ref_parts: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            trees = [("imgcap", ROOT)] + ([("base", args.base)] if args.base else [])
            for (label, tree), prec in itertools.product(trees, args.precisions.split(",")):
                db = Path(tmp) / f"{label}-{prec}-{rep}.db"
                cmd = [py, "-c", IMGCAP_CHILD, str(tree), str(folder), str(db), str(model_dir)]
                cmd += [str(args.tokens), prec, str(args.images)]
                wall, cpu, out = timed(cmd, dict(env, PYTHONPATH=str(tree)))
                rows.setdefault(f"{label} {prec}", []).append((wall, cpu))
                print(f"rep {rep} {label} {prec}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
                print("   ", out.strip().splitlines()[-1], flush=True)
            cmd = [py, "-c", REFERENCE_CHILD, str(ROOT), str(model_dir), str(folder), str(ref_n)]
            wall, cpu, out = timed([*cmd, str(args.tokens)], env)
            got = json.loads(out.split("REF ", 1)[1])
            scale = args.images / ref_n
            whole = got["startup"] + got["per_image"] * args.images
            cpu_whole = cpu * (whole / wall)  # the process's CPU share, scaled with its wall
            ref_parts.append(got)
            rows.setdefault("reference", []).append((whole, cpu_whole))
            print(
                f"rep {rep} reference: {wall:.1f} s for {ref_n} images (start-up "
                f"{got['startup']:.1f} s, {got['per_image']:.2f} s/image) -> {whole:.1f} s "
                f"for {args.images}" + (f" (x{scale:.1f} scaled)" if scale != 1 else ""),
                flush=True,
            )
    ref = statistics.median(w for w, _ in rows["reference"])
    ref_cpu = statistics.median(c for _, c in rows["reference"])
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.images} photos, {args.tokens} tokens, median of {args.repeats}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| process | wall s (median, min-max) | CPU s | cores busy | ratio to reference |")
    print("|---|---:|---:|---:|---:|")
    for name, vals in rows.items():
        walls = [w for w, _ in vals]
        cpus = [c for _, c in vals]
        w, c = statistics.median(walls), statistics.median(cpus)
        print(
            f"| {name} | {w:.1f} ({min(walls):.1f}-{max(walls):.1f}) | {c:.1f} | {c / w:.2f} | "
            f"{ref / w:.1f}x wall, {ref_cpu / c:.1f}x CPU |"
        )


if __name__ == "__main__":
    main()

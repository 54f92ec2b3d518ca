"""Training speed of the full-size ClipCap MLP + GPT-2 (124M) with random weights (FLOPs don't
depend on the weights, and nothing is downloaded), at the recipe's batch size of 40 captions.

    python benchmarks/bench_train.py                       # CPU: fp32, and bf16 if the CPU has it
    python benchmarks/bench_train.py --device cuda         # GPU: bf16 autocast (and fp32)
    python benchmarks/bench_train.py --steps 3 --images 16 # short run

Measures, through indexer.train's own batch/loss code and optimiser settings:
- optimiser steps/s and captions/s, GPT-2 fine-tuned and --prefix-only (frozen GPT-2);
- CLIP feature caching per image (decode + preprocess + ViT-B/32), indexer.features;
- the time one epoch of COCO train (~566k captions, Karpathy train+restval) would take.
Captions are random token ids of --tokens length (COCO captions average ~12-14 GPT-2 tokens; the
batch is padded to its longest, so 20 is a realistic padded length).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.config import Settings  # noqa: E402
from indexer.models import cpu_has_bf16, load_model, resolve_dtype, write_random_model  # noqa: E402
from indexer.train import caption_loss, make_batch  # noqa: E402

COCO_TRAIN_CAPTIONS = 566_747


def train_steps(net, device, dtype, prefix_only: bool, args) -> float:
    """Median seconds per optimiser step (after one warm-up step)."""
    import contextlib

    net.requires_grad_(True)
    if prefix_only:
        net.gpt.requires_grad_(False)
    net.train()
    if prefix_only:
        net.gpt.eval()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-5, eps=1e-6, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    vocab = net.cfg.gpt2["vocab_size"]
    # Lengths vary so batches are padded like real ones: half full length, half shorter.
    ids = [
        torch.randint(0, vocab, (args.tokens if i % 2 else args.tokens - 6,), generator=g).tolist()
        for i in range(args.batch_size)
    ]
    tokens, labels, mask = make_batch(ids, net.cfg.prefix_length)
    tokens, labels = tokens.to(device), labels.to(device)
    mask = mask.to(device) if mask is not None else None
    prefix = torch.randn(args.batch_size, net.cfg.prefix_dim, generator=g).to(device)
    ctx = (
        contextlib.nullcontext
        if dtype == torch.float32
        else lambda: torch.autocast(device_type=device.type, dtype=dtype)
    )
    times = []
    with torch.enable_grad():
        for i in range(args.steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with ctx():
                loss = caption_loss(net, tokens, labels, prefix, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first step pays for allocations and kernel selection
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def feature_caching(model, n: int, tmp: Path) -> float:
    """Seconds per image to decode, preprocess and CLIP-encode n 640x480 JPEGs (cold cache)."""
    import numpy as np
    from PIL import Image

    from indexer.features import FeatureCache, compute_features

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        # Smooth random colour fields compress like photos, unlike pure noise.
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
        p = tmp / f"img{i:04d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    cache = FeatureCache.open(tmp / "cache", "bench")
    t = time.perf_counter()
    feats, failed = compute_features(paths, model.encoder, cache, batch_size=64)
    spent = time.perf_counter() - t
    assert not failed and len(feats) == n
    return spent / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=40)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--images", type=int, default=64, help="images for feature caching")
    ap.add_argument("--precisions", default="auto", help="comma list of fp32,bf16 (auto: all)")
    args = ap.parse_args()

    settings = Settings(device=args.device, precision="fp32")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_random_model(tmp / "model")
        model = load_model(str(tmp / "model"), settings)
        device = model.device
        net = model.captioner.model.float()
        if args.precisions == "auto":
            precs = ["fp32"]
            if device.type == "cuda" or cpu_has_bf16():
                precs.insert(0 if device.type == "cuda" else 1, "bf16")
        else:
            precs = args.precisions.split(",")
        print(
            f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, device {device}"
            + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
        )
        print(f"batch {args.batch_size}, {args.tokens} tokens padded, median of {args.steps}\n")
        print("| training | precision | s/step | captions/s | COCO epoch (566k captions) |")
        print("|---|---|---|---|---|")
        for prec in precs:
            dtype = resolve_dtype(prec, device)
            for prefix_only in (False, True):
                s = train_steps(net, device, dtype, prefix_only, args)
                rate = args.batch_size / s
                epoch_h = COCO_TRAIN_CAPTIONS / rate / 3600
                what = "mapper only (--prefix-only)" if prefix_only else "MLP + GPT-2 fine-tuned"
                print(f"| {what} | {prec} | {s:.3f} | {rate:.1f} | {epoch_h:.1f} h |", flush=True)
        model.encoder.model.to(device)
        per_image = feature_caching(model, args.images, tmp)
        print(
            f"\nCLIP feature caching (decode 640x480 JPEG + preprocess + ViT-B/32, fp32, "
            f"batch 64): {per_image * 1000:.1f} ms/image ({1 / per_image:.1f} images/s)"
        )


if __name__ == "__main__":
    main()

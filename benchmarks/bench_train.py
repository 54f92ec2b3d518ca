"""Training speed of the full-size ClipCap MLP + GPT-2 (124M) with random weights (FLOPs don't
depend on the weights, and nothing is downloaded), at the recipe's batch size of 40 captions.

    python benchmarks/bench_train.py                       # CPU: fp32, and bf16 if the CPU has it
    python benchmarks/bench_train.py --device cuda         # GPU: bf16 autocast (and fp32)
    python benchmarks/bench_train.py --steps 3 --images 16 # short run

Measures, through indexer.train.loop's own batch/loss code and optimiser settings:
- optimiser steps/s and captions/s, GPT-2 fine-tuned and --prefix-only (frozen GPT-2);
- CLIP feature caching per image (decode + preprocess + ViT-B/32), indexer.train.features;
- the time one epoch of COCO train (~566k captions, Karpathy train+restval) would take.
Captions are random token ids of --tokens length (COCO captions average ~12-14 GPT-2 tokens; the
batch is padded to its longest, so 20 is a realistic padded length).

    python benchmarks/bench_train.py --scst                # + SCST steps, full-size model
    python benchmarks/bench_train.py --world               # SCST vs cross-entropy, synthetic world

--scst: one SCST step = sample --samples captions for each of batch/samples images (KV cache,
--tokens tokens each: random weights never stop early), CIDEr-D rewards, the policy-gradient
pass; reported as sampled captions/s. --world: tests/test_train_scst_world.py's comparison (tiny
model, cross-entropy, then SCST, against cross-entropy alone for the same training time), with
timings.
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
from indexer.models.loading import cpu_has_bf16, load_model, resolve_dtype  # noqa: E402
from indexer.models.random_weights import write_random_model  # noqa: E402
from indexer.train.recipe import caption_loss, make_batch  # noqa: E402

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

    from indexer.train.features import FeatureCache, compute_features

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


def scst_steps(net, tokenizer, device, dtype, args) -> float:
    """Median seconds per SCST step on random features (after one warm-up step)."""
    import contextlib

    from indexer.train.ptb import tokenize
    from indexer.train.scst import Reward, leave_one_out_advantage, policy_for, policy_loss

    net.requires_grad_(True)
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6, eps=1e-6, weight_decay=0.0)
    images = max(1, args.batch_size // args.samples)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(images, net.cfg.prefix_dim, generator=g).to(device)
    refs = [("a man riding a wave on top of a surfboard.", "a surfer riding a big wave.")] * images
    reward = Reward(refs)
    policy = policy_for(net)
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
            gen = torch.Generator(device=device).manual_seed(i)
            with ctx():
                batch = policy.sample(feats, args.samples, args.tokens, 13, 0, gen)
            texts = [tokenizer.decode(t) for t in batch.tokens.tolist()]  # the reward's own work
            rewards = torch.tensor(
                [reward(tokenize(t).split(), r // args.samples, True)
                 for r, t in enumerate(texts)]
            ).view(-1, args.samples)  # fmt: skip
            loss = policy_loss(leave_one_out_advantage(rewards.to(device)), batch.logprobs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def world_comparison(device: str) -> None:
    """tests/test_train_scst_world.py's runs, timed: cross-entropy, + SCST, cross-entropy alone."""
    import math
    import re
    import shutil

    from indexer.models.random_weights import write_tiny_model
    from indexer.train.loop import train
    from indexer.train.metrics import cider_d
    from indexer.train.ptb import tokenize
    from indexer.train.recipe import TrainConfig
    from indexer.train.synthetic import generate_scenes, teach_clip, write_dataset

    settings = Settings(device=device)
    size, ce_epochs, scst_epochs = 64, 10, 6

    def scenes(n, seed):
        return generate_scenes(n, seed=seed, size=size, layout="centred", wording="varied")

    def score(model_dir, held):
        m = load_model(str(model_dir), settings)
        pixels = torch.stack([m.encoder.preprocess(s.image) for s in held])
        caps = m.captioner.caption(m.encoder.encode_images(pixels))
        refs = [[tokenize(r) for r in s.captions] for s in held]
        cider = cider_d([tokenize(c) for c in caps], refs)[0]

        def says(c, w):
            return re.search(rf"\b{w}(e?s)?\b", c) is not None

        both = sum(
            says(c, s.attributes["colour"]) and says(c, s.attributes["shape"])
            for s, c in zip(held, caps, strict=True)
        )
        return cider, both / len(held)

    root = Path(tempfile.mkdtemp(prefix="bench-scst-"))
    try:
        data = write_dataset(root / "train", 120, seed=0, fmt="csv", size=size,
                             layout="centred", wording="varied")  # fmt: skip
        seeing = write_tiny_model(root / "seeing", seed=0)
        teach_clip(seeing, scenes(400, 0), steps=300, seed=0)
        common = {"data": data, "warmup": 0, "seed": 0}
        ce = train(TrainConfig(out=root / "ce", base=str(seeing), epochs=ce_epochs, lr=1e-2,
                               **common), settings)  # fmt: skip
        scst = train(TrainConfig(out=root / "scst", base=str(root / "ce"), epochs=scst_epochs,
                                 lr=1.5e-3, scst=True, **common), settings)  # fmt: skip
        ce_s = sum(h.seconds for h in ce.history) / len(ce.history)
        scst_s = sum(h.seconds for h in scst.history)
        extra = math.ceil(scst_s / ce_s)
        alone_cfg = TrainConfig(
            out=root / "alone", base=str(seeing), epochs=ce_epochs + extra, lr=1e-2, **common
        )
        alone = train(alone_cfg, settings)
        held = scenes(100, 1)
        rows = [
            (f"cross-entropy, {ce_epochs} epochs", root / "ce", ce_s * ce_epochs,
             ce.history[-1].samples_per_s),
            (f"+ SCST, {scst_epochs} epochs", root / "scst", ce_s * ce_epochs + scst_s,
             sum(h.samples_per_s for h in scst.history) / scst_epochs),
            (f"cross-entropy alone, {ce_epochs + extra} epochs", root / "alone",
             sum(h.seconds for h in alone.history), alone.history[-1].samples_per_s),
        ]  # fmt: skip
        print("\n| run | training s | captions/s | held-out CIDEr-D | colour+shape |")
        print("|---|---:|---:|---:|---:|")
        for name, d, secs, rate in rows:
            cider, acc = score(d, held)
            print(f"| {name} | {secs:.1f} | {rate:.0f} | {cider:.3f} | {acc:.0%} |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=40)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--images", type=int, default=64, help="images for feature caching")
    ap.add_argument("--precisions", default="auto", help="comma list of fp32,bf16 (auto: all)")
    ap.add_argument("--scst", action="store_true", help="also time SCST steps")
    ap.add_argument("--samples", type=int, default=5, help="SCST captions per image")
    ap.add_argument("--world", action="store_true", help="only the synthetic-world comparison")
    args = ap.parse_args()
    if args.world:
        torch.set_num_threads(1)  # the tiny model is fastest on one thread (tests/conftest.py)
        world_comparison(args.device)
        return

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
            if args.scst:
                s = scst_steps(net, model.captioner.tokenizer, device, dtype, args)
                rate = args.batch_size // args.samples * args.samples / s
                print(f"| SCST, {args.samples} samples/image, {args.tokens} tokens | {prec} | "
                      f"{s:.3f} | {rate:.1f} sampled | - |", flush=True)  # fmt: skip
        model.encoder.model.to(device)
        per_image = feature_caching(model, args.images, tmp)
        print(
            f"\nCLIP feature caching (decode 640x480 JPEG + preprocess + ViT-B/32, fp32, "
            f"batch 64): {per_image * 1000:.1f} ms/image ({1 / per_image:.1f} images/s)"
        )


if __name__ == "__main__":
    main()

"""The three captioner architectures side by side: clipcap, show-and-tell, show-attend-tell.

1. Synthetic world (tiny model, CLIP taught to see the centred shapes world as in
   tests/test_train_synthetic_world.py): train each architecture the same number of epochs from the
   same base (`imgcap train --from SEEING --arch A`), then held-out CIDEr-D (greedy) and
   colour+shape accuracy on 60 new scenes, and training samples/s (median over epochs).
2. Caption speed at full size with random weights (FLOPs don't depend on them): the decoder
   alone on precomputed CLIP ViT-B/32 features (512-d global, 49 x 768 grid), every caption
   exactly --tokens tokens (no stop), greedy and beam 3, batch 32; ClipCap = MLP mapper +
   GPT-2 124M, the LSTMs 512 wide with GPT-2's 50257-token vocabulary.

    python benchmarks/bench_arch.py            # ~10 minutes on a busy 2-core machine
    python benchmarks/bench_arch.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARCHS = ("clipcap", "show-and-tell", "show-attend-tell")
SIZE, LAYOUT = 64, "centred"


def world(root: Path, epochs: int, quick: bool) -> list[dict]:
    from indexer.config import Settings
    from indexer.models.loading import load_model
    from indexer.models.random_weights import write_tiny_model
    from indexer.train.loop import train
    from indexer.train.metrics import score_captions
    from indexer.train.recipe import TrainConfig
    from indexer.train.synthetic import generate_scenes, teach_clip, write_dataset

    n_train, n_test = (60, 20) if quick else (300, 60)
    data = write_dataset(root / "train", n_train, seed=0, fmt="csv", size=SIZE, layout=LAYOUT)
    seeing = write_tiny_model(root / "seeing", seed=0)
    teach_clip(seeing, generate_scenes(200 if quick else 1000, seed=0, size=SIZE, layout=LAYOUT))
    scenes = generate_scenes(n_test, seed=1, size=SIZE, layout=LAYOUT)
    rows = []
    for arch in ARCHS:
        cfg = TrainConfig(data=data, out=root / arch, base=str(seeing), arch=arch, epochs=epochs,
                          lr=5e-3, warmup=0, seed=0)  # fmt: skip
        t0 = time.perf_counter()
        result = train(cfg, Settings(device="cpu"))
        seconds = time.perf_counter() - t0
        model = load_model(str(root / arch), Settings(device="cpu"))
        pixels = torch.stack([model.encoder.preprocess(s.image) for s in scenes])
        feats, grid = model.encoder.encode_images_grid(pixels)
        extra = {"grid": grid} if getattr(model.captioner, "needs_grid", False) else {}
        t0 = time.perf_counter()
        captions = model.captioner.caption(feats, **extra)
        caption_s = time.perf_counter() - t0
        report = score_captions(
            {s.id: c for s, c in zip(scenes, captions, strict=True)},
            {s.id: s.captions for s in scenes},
            metrics=("CIDEr-D",),
        )
        right = sum(
            all(re.search(rf"\b{s.attributes[k]}(e?s)?\b", c) for k in ("colour", "shape"))
            for s, c in zip(scenes, captions, strict=True)
        )
        rows.append({
            "arch": arch,
            "cider": report.scores["CIDEr-D"],
            "accuracy": right / len(scenes),
            "train_sps": statistics.median(h.samples_per_s for h in result.history),
            "train_s": seconds,
            "caption_per_s": len(scenes) / caption_s,
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def full_size_speed(tokens: int, batch: int, repeats: int) -> list[dict]:
    """Decoder-only captions/s at full size, random weights, fixed length."""
    from indexer.models.clipcap import Captioner, ClipCapConfig, ClipCapModel
    from indexer.models.lstm import LstmCaptioner, LstmCaptionNet, LstmConfig

    class Tok:  # decoding speed only: never detokenised
        def encode(self, text):
            return [13]

    torch.manual_seed(0)
    feats = torch.randn(batch, 512) * 10
    grid = torch.randn(batch, 49, 768)
    caps = {
        "clipcap": Captioner(
            ClipCapModel(ClipCapConfig()).eval(), Tok(), torch.device("cpu"), torch.float32
        ),  # fmt: skip
    }
    for arch in ARCHS[1:]:
        net = LstmCaptionNet(LstmConfig(arch, 512, 50257, grid_dim=768 if "attend" in arch else 0))
        caps[arch] = LstmCaptioner(net.eval(), Tok(), torch.device("cpu"), torch.float32)
    rows = []
    for arch, cap in caps.items():
        extra = {"grid": grid} if arch == "show-attend-tell" else {}
        for beams in (1, 3):
            times, cpu = [], []
            warm = {"grid": grid[:2]} if extra else {}
            cap.decode_tokens(feats[:2], beams, tokens, stop_token=None, **warm)
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                cap.decode_tokens(feats, beams, tokens, stop_token=None, **extra)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            rows.append({
                "arch": arch,
                "beams": beams,
                "per_s": batch / statistics.median(times),
                # per CPU-second of this process: steadier than wall time on a shared machine
                "per_cpu_s": batch / statistics.median(cpu),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-only", action="store_true", help="only the full-size caption speed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-arch-"))
    try:
        epochs = 2 if args.quick else args.epochs
        trained = [] if args.speed_only else world(root, epochs, args.quick)
        speed = full_size_speed(4 if args.quick else args.tokens, 4 if args.quick else args.batch,
                                1 if args.quick else args.repeats)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| architecture | held-out CIDEr-D | colour+shape | train samples/s | "
          "captions/s (tiny, greedy) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in trained:
        print(f"| {r['arch']} | {r['cider']:.2f} | {r['accuracy']:.0%} | {r['train_sps']:.0f} | "
              f"{r['caption_per_s']:.0f} |")  # fmt: skip
    print("\n| architecture (full size, random) | beams | captions/s | captions per CPU-s |")
    print("|---|---|---|---|")
    for r in speed:
        print(f"| {r['arch']} | {r['beams']} | {r['per_s']:.1f} | {r['per_cpu_s']:.1f} |")


if __name__ == "__main__":
    main()

"""Captioning speed with the full-size architecture (CLIP ViT-B/32 + ClipCap MLP + GPT-2 124M)
and random weights: FLOPs don't depend on the weights, and no download is needed.

Random weights rarely emit the stop token, so every path generates exactly --tokens tokens
(default 20, a typical caption length); the figures are per caption at that length.

    python benchmarks/bench_caption.py                 # full run (several minutes on 2 cores)
    python benchmarks/bench_caption.py --quick         # smoke run

Prints a markdown table: stage, precision, batch, beams, captions/s (median of --repeats).
"Reference" rows decode the reference's way: one image at a time, no KV cache, GPT-2 re-run
over the whole sequence every step (tests/naive_clipcap.py).
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
sys.path.insert(0, str(ROOT / "tests"))

from naive_clipcap import naive_beam, naive_greedy  # noqa: E402

from indexer.config import Settings  # noqa: E402
from indexer.models.loading import cpu_has_bf16, load_model  # noqa: E402
from indexer.models.random_weights import write_random_model  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def best(results: dict, prec: str, stage_prefix: str) -> float:
    return max(v for (s, p, _, _), v in results.items() if p == prec and s.startswith(stage_prefix))


def bench_precision(model_dir: Path, prec: str, args, results: dict) -> None:
    """Time every stage at one precision; rows printed as they finish, rates into results."""
    model = load_model(str(model_dir), Settings(device=args.device, precision=prec))
    enc, cap = model.encoder, model.captioner
    dim = enc.embed_dim

    def row(stage: str, bs: int, beams, secs: float) -> None:
        rate = bs / secs
        results[(stage, prec, bs, beams)] = rate
        print(f"| {stage} | {prec} | {bs} | {beams} | {rate:.2f} | {secs:.3f} |", flush=True)

    for bs in map(int, args.clip_batch_sizes.split(",")):
        pixels = torch.randn(bs, 3, enc.image_size, enc.image_size)
        row(
            "CLIP image encode", bs, "-", timed(lambda p=pixels: enc.encode_images(p), args.repeats)
        )
    for bs in map(int, args.batch_sizes.split(",")):
        feats = torch.randn(bs, dim)
        secs = timed(
            lambda f=feats: cap.decode_tokens(f, 1, args.tokens, stop_token=None), args.repeats
        )
        row("caption greedy (KV cache, batched)", bs, 1, secs)
    for bs in map(int, args.beam_batch_sizes.split(",")):
        feats = torch.randn(bs, dim)
        secs = timed(
            lambda f=feats: cap.decode_tokens(f, args.beams, args.tokens, stop_token=None),
            args.repeats,
        )
        row("caption beam (KV cache, batched)", bs, args.beams, secs)
    if args.no_reference:
        return
    with cap._autocast():
        prefix = cap.model.prefix_embeddings(torch.randn(1, dim).to(cap.device))
        secs = timed(
            lambda: naive_greedy(cap.model, prefix, args.tokens, stop_token=None), args.repeats
        )
        row("caption greedy, reference way", 1, 1, secs)
        secs = timed(
            lambda: naive_beam(cap.model, prefix, args.beams, args.tokens, stop_token=None),
            args.repeats,
        )
        row("caption beam, reference way", 1, args.beams, secs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--beam-batch-sizes", default="1,8,16")
    ap.add_argument("--clip-batch-sizes", default="8,32")
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.batch_sizes, args.beam_batch_sizes, args.clip_batch_sizes = "1,8", "1,4", "8"
        args.repeats = 1
    precisions = (
        args.precisions.split(",")
        if args.precisions
        else (["fp32", "bf16"] if args.device != "cpu" or cpu_has_bf16() else ["fp32"])
    )
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="imgcap-bench-"))
    t = time.perf_counter()
    write_random_model(tmp / "model", "clipcap-coco")
    print(f"# random full-size model written in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {args.device}, {args.tokens} tokens/caption"
    )
    print("| stage | precision | batch | beams | captions/s (or images/s) | s/batch |")
    print("|---|---|---:|---:|---:|---:|")
    results: dict[tuple, float] = {}
    for prec in precisions:
        bench_precision(tmp / "model", prec, args, results)
    if not args.no_reference:
        print()
        for prec in precisions:
            best_g = best(results, prec, "caption greedy (KV")
            best_b = best(results, prec, "caption beam (KV")
            ref_g = results[("caption greedy, reference way", prec, 1, 1)]
            ref_b = results[("caption beam, reference way", prec, 1, args.beams)]
            print(
                f"speed-up {prec}: greedy {best_g / ref_g:.1f}x, beam {best_b / ref_b:.1f}x "
                "(best batched vs reference way)"
            )


if __name__ == "__main__":
    main()

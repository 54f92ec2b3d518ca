"""fp32 against bf16 autocast on the CPU, in one warm process: CLIP's image tower and 20-token
greedy captions, for one photo (what `imgcap caption photo.jpg` pays) and a batch of 48 (an
index batch), full-size random-weight clipcap-coco (FLOPs don't depend on the weights).

    python benchmarks/bench_precision.py --model /tmp/imgcap-bench/model --repeats 3

Both precisions are loaded once; the variants alternate and the first round is a warm-up. Each
figure is a median of --repeats. Pixels and features are random: the cost doesn't depend on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model directory (bench_index.py's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    args = ap.parse_args()

    import torch

    from indexer.config import Settings
    from indexer.models.loading import cpu_has_bf16, load_model

    if not cpu_has_bf16():
        print("note: this CPU has no native bf16 (avx512_bf16/amx_bf16); bf16 is emulated")
    models = {
        p: load_model(args.model, Settings(device="cpu", precision=p, offline=True))
        for p in ("fp32", "bf16")
    }
    pixels = torch.randn(48, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    times: dict[tuple, list[float]] = {}
    for batch in (1, 48):
        for rep in range(args.repeats + 1):
            for precision, model in models.items():
                t0 = time.perf_counter()
                feats = model.encoder.encode_images(pixels[:batch])
                t1 = time.perf_counter()
                model.captioner.decode_tokens(feats, 1, args.tokens, stop_token=None)
                t2 = time.perf_counter()
                if rep:
                    times.setdefault((batch, "CLIP image tower", precision), []).append(t1 - t0)
                    times.setdefault((batch, "captions", precision), []).append(t2 - t1)
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print("| batch | stage | fp32 s | bf16 s | fp32 / bf16 |\n|---:|---|---:|---:|---:|")
    for batch in (1, 48):
        for stage in ("CLIP image tower", f"captions ({args.tokens} tokens)"):
            key = stage.split(" (")[0]
            a = statistics.median(times[(batch, key, "fp32")])
            b = statistics.median(times[(batch, key, "bf16")])
            print(f"| {batch} | {stage} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()

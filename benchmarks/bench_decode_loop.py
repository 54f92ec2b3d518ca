"""The caption decoding loops before and after a change: captions/s of greedy_decode and
beam_decode from indexer/models/clipcap.py at git revision --before against the working tree, on
the full-size ClipCap MLP + GPT-2 (124M) with random weights (FLOPs don't depend on them).

    python benchmarks/bench_decode_loop.py --before 4aeb35e            # CPU, short
    python benchmarks/bench_decode_loop.py --before 4aeb35e --device cuda --precision bf16 \\
        --batch 1024 --beam-batch 256

Both decoders must return the same tokens (checked); the stop token is GPT-2's "." as in real
use, which random weights rarely produce, so captions run to --tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.models import clipcap as after  # noqa: E402
from indexer.models.clipcap import ClipCapConfig, ClipCapModel  # noqa: E402

# The modules the flat-layout captioner imported, where they live now.
FLAT_NAMES = {
    "indexer.beam": "indexer.models.beam",
    "indexer.checkpoint": "indexer.models.checkpoint",
    "indexer.kv_cache": "indexer.models.kv_cache",
    "indexer.quiet": "indexer.models.quiet",
}


def load_before(rev: str):
    """ClipCap's module as it was at `rev` (indexer/models/clipcap.py, or indexer/captioner.py
    before the package layout), imported as its own module."""
    for name in ("indexer/models/clipcap.py", "indexer/captioner.py"):
        got = subprocess.run(
            ["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True
        )
        if got.returncode == 0:
            break
    got.check_returncode()
    src = got.stdout
    for old, new in FLAT_NAMES.items():  # a revision before the package layout
        src = src.replace(f"from {old} import", f"from {new} import")
    path = Path(tempfile.mkdtemp()) / "captioner_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("captioner_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["captioner_before"] = mod  # dataclasses look their module up while building
    spec.loader.exec_module(mod)
    return mod


def timed(fn, device: torch.device, repeats: int) -> tuple[float, list]:
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="git revision of the old decoders")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--beam-batch", type=int, default=8)
    ap.add_argument("--beams", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    before = load_before(args.before)
    torch.manual_seed(0)
    net = ClipCapModel(ClipCapConfig()).eval().to(device)
    ctx = (
        contextlib.nullcontext
        if args.precision == "fp32"
        else lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    )
    print(
        f"# {args.device}, {args.precision}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, {args.tokens} tokens, median of {args.repeats}\n"
    )
    print("| decoder | batch | before captions/s | after captions/s | after / before |")
    print("|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for kind, bs in (("greedy", args.batch), (f"beam {args.beams}", args.beam_batch)):
        feats = torch.randn(bs, 512, generator=g).to(device)
        with ctx():
            prefix = net.prefix_embeddings(feats)
        rates, outs = [], []
        for mod in (before, after):

            def run(mod=mod, kind=kind, prefix=prefix):
                with ctx():
                    if kind == "greedy":
                        return mod.greedy_decode(net, prefix, args.tokens, 13)
                    return mod.beam_decode(net, prefix, args.beams, args.tokens, 13)

            secs, out = timed(run, device, args.repeats)
            rates.append(bs / secs)
            outs.append(out)
        same = "" if outs[0] == outs[1] else " (TOKENS DIFFER)"
        print(
            f"| {kind} | {bs} | {rates[0]:.1f} | {rates[1]:.1f} | "
            f"{rates[1] / rates[0]:.2f}x{same} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

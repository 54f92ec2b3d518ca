"""Cost and fidelity of the two --resize modes (indexer/media/preprocess.py), per image, one
process.

    python benchmarks/bench_preprocess.py              # 12 MP JPEG/PNG, panorama, 24 MP JPEG
    python benchmarks/bench_preprocess.py --repeats 3

For each photo: milliseconds from file to the (224, 224, 3) model input (decode, orientation,
resize, crop; median of --repeats) and PSNR against exact, for
- exact:  open_clip's eval transform of the fully decoded photo (the reference);
- fast:   the default (reduce while decoding, never below REDUCE_GAP x the input);
- before: the previous fast path (reduce to just above the input size, crop on the reduced
          image), for comparison.
Photos are real samples (data/samples) tiled to full size, so they carry real-photo detail at
full resolution (upscaling would smooth it away), saved with an EXIF rotation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.media.decode import decode_image  # noqa: E402
from indexer.media.preprocess import REDUCE_GAP, clip_geometry, model_pixels  # noqa: E402

S = 224
PHOTOS = [  # name, sample, width, height, format
    ("12 MP JPEG", "astronaut.jpg", 4032, 3024, "JPEG"),
    ("12 MP PNG", "chelsea.jpg", 4032, 3024, "PNG"),
    ("panorama JPEG 8000x2000", "rocket.jpg", 8000, 2000, "JPEG"),
    ("24 MP JPEG", "coffee.jpg", 6000, 4000, "JPEG"),
]


def make(folder: Path, sample: str, w: int, h: int, fmt: str) -> Path:
    tile = Image.open(ROOT / "data" / "samples" / sample).convert("RGB")
    im = Image.new("RGB", (w, h))
    for y in range(0, h, tile.size[1]):
        for x in range(0, w, tile.size[0]):
            im.paste(tile, (x, y))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder / f"{sample}-{w}x{h}.{fmt.lower()}"
    kw = {"quality": 90} if fmt == "JPEG" else {"compress_level": 6}
    im.save(path, fmt, exif=exif.tobytes(), **kw)
    return path


def before(path: Path) -> np.ndarray:
    return clip_geometry(decode_image(path, min_side=S).image, S)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"REDUCE_GAP {REDUCE_GAP}, input {S}x{S}, median of {args.repeats}\n")
    print("| photo | exact ms | fast ms | before ms | exact/fast | fast PSNR | before PSNR |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, sample, w, h, fmt in PHOTOS:
            path = make(Path(d), sample, w, h, fmt)
            t_exact, exact = timed(lambda p=path: model_pixels(p, S, "exact")[1], args.repeats)
            t_fast, fast = timed(lambda p=path: model_pixels(p, S, "fast")[1], args.repeats)
            t_before, old = timed(lambda p=path: before(p), args.repeats)
            ratio, p_fast, p_old = t_exact / t_fast, psnr(fast, exact), psnr(old, exact)
            print(
                f"| {name} | {t_exact:.0f} | {t_fast:.0f} | {t_before:.0f} | {ratio:.1f}x | "
                f"{p_fast:.1f} dB | {p_old:.1f} dB |",
                flush=True,
            )


if __name__ == "__main__":
    main()

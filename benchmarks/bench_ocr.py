"""What reading the text in photos (`imgcap index --ocr`) costs on a CPU, per photo with and
without text, what share of photos the detector rejects cheaply, and what it adds to an index run.

    python benchmarks/bench_ocr.py --photos 16 --with-text 4 --repeats 2

- photos: phone-sized 4032×3024 JPEGs from bench_index.make_phone_photos (smooth shapes +
  sensor noise, EXIF orientation 6), `--with-text` of them with a sign and a receipt-like note
  pasted in (DejaVu fonts, 90-220 px letters: what a sign or a held-up receipt is in a 12 MP
  photo);
- per photo: the index step's own work for one photo (indexer/run/text_reading.py `_read_photo`:
  reduced decode at the detector's size, detection, and only with text a sharper decode,
  orientation and recognition), median over the photos of each kind, after one warm-up read;
- rejected cheaply: photos without text on which the detector found no box at all (so nothing
  but the detector ran);
- index run: `index_paths` over the same folder, fresh database each time, OCR off and on
  alternated `--repeats` times, with the FULL-size random-weight `--arch` model (greedy, exactly
  `--tokens` tokens, as bench_index.py): the added share is (on - off) / off of the medians.

Results are printed as JSON for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_index.py

from bench_index import load_random, make_phone_photos  # noqa: E402

from indexer.config import Settings  # noqa: E402
from indexer.run.pipeline import index_paths  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"


def add_text(path: Path, seed: int) -> None:
    """Paste a sign and a note with a few lines into the photo at `path` (kept as a JPEG q90,
    EXIF kept)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.open(path)
    exif = im.info.get("exif", b"")
    im = im.convert("RGB")
    big = ImageFont.truetype(FONT, 220)
    board = Image.new("RGB", (1900, 380), "white")
    ImageDraw.Draw(board).text((60, 60), f"BAUHAUS {seed:02d}", fill="black", font=big)
    im.paste(board.rotate(-8 + 4 * (seed % 4), expand=True, fillcolor=(70, 80, 70)), (500, 400))
    note = Image.new("RGB", (1400, 900), (250, 248, 240))
    draw = ImageDraw.Draw(note)
    small = ImageFont.truetype(SERIF, 90)
    for i, line in enumerate(["Cafe du Lyon", "2 x espresso 5.80", "croissant 2.40", "TOTAL 8.20"]):
        draw.text((60, 60 + i * 200), line, fill="black", font=small)
    im.paste(note, (1200, 1700))
    im.save(path, "JPEG", quality=90, exif=exif)


def per_photo(paths: list[Path], reader) -> list[dict]:
    from indexer.media.decode import decode_image
    from indexer.models.ocr import DETECT_SIDE
    from indexer.models.ocr import _bgr as bgr
    from indexer.models.ocr import _resized as resized
    from indexer.run.text_reading import _read_photo

    out = []
    _read_photo(reader, str(paths[0]), 10**9)  # warm-up: ONNX Runtime's first runs
    for p in paths:
        t = time.perf_counter()
        lines, problem = _read_photo(reader, str(p), 10**9)
        seconds = time.perf_counter() - t
        small = decode_image(p, min_side=DETECT_SIDE).image
        boxes, _ = reader.detector(bgr(resized(small, DETECT_SIDE / min(small.size))))
        out.append(
            {
                "path": p.name,
                "seconds": round(seconds, 4),
                "lines": len(lines),
                "boxes": 0 if boxes is None else len(boxes),
                "problem": problem,
            }
        )
    return out


def index_run(folder: Path, db: Path, model, ocr: bool) -> dict:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    settings = Settings(db_path=db, device="cpu", ocr=ocr)
    t = time.perf_counter()
    s = index_paths([folder], settings, model=model)
    return {
        "seconds": round(time.perf_counter() - t, 2),
        "read_text_s": s.timings.get("read_text", 0.0),
        "captioned": s.captioned,
        "text_found": s.text_found,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--with-text", type=int, default=4, help="of those, photos with text")
    ap.add_argument("--repeats", type=int, default=2, help="index runs per variant (0: none)")
    ap.add_argument("--arch", default="clipcap-coco")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgcap-bench-ocr"))
    ap.add_argument("--model", type=Path, default=None, help="a random model dir already made")
    args = ap.parse_args()

    from indexer.models.ocr import TextReader

    folder = args.work / f"phone-{args.photos}-{args.with_text}"
    fresh = not folder.exists()
    paths = make_phone_photos(folder, args.photos, seed=7)
    texted = paths[: args.with_text]
    if fresh:
        for i, p in enumerate(texted):
            add_text(p, i)
    reader = TextReader()
    rows = per_photo(paths, reader)
    with_text = [r for r in rows if r["path"] in {p.name for p in texted}]
    without = [r for r in rows if r not in with_text]
    out: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average_before": os.getloadavg(),
        "photos": args.photos,
        "with_text": args.with_text,
        "median_s_photo_without_text": statistics.median(r["seconds"] for r in without),
        "median_s_photo_with_text": statistics.median(r["seconds"] for r in with_text)
        if with_text
        else None,
        "rejected_by_detector_share": round(
            sum(1 for r in without if r["boxes"] == 0) / max(len(without), 1), 3
        ),
        "no_lines_share_without_text": round(
            sum(1 for r in without if r["lines"] == 0) / max(len(without), 1), 3
        ),
        "text_photos_read": sum(1 for r in with_text if r["lines"] > 0),
        "per_photo": rows,
    }
    if args.repeats:
        model_dir = args.model or args.work / f"model-{args.arch}"
        if not (model_dir / "imgcap-model.json").exists():
            from indexer.models.random_weights import write_random_model

            write_random_model(model_dir, args.arch)
        model = load_random(model_dir, Settings(device="cpu"), args.tokens)
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for _ in range(args.repeats):
            for variant in ("off", "on"):
                runs[variant].append(
                    index_run(folder, args.work / "bench.db", model, variant == "on")
                )
        off = statistics.median(r["seconds"] for r in runs["off"])
        on = statistics.median(r["seconds"] for r in runs["on"])
        out["index_runs"] = runs
        out["index_s_per_photo_off"] = round(off / args.photos, 3)
        out["index_s_per_photo_on"] = round(on / args.photos, 3)
        out["added_share"] = round((on - off) / off, 3)
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

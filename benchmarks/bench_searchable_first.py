"""Time to searchable: `imgcap index --captions now` (one pass) against `--captions after`
(image vectors for every photo first, then captions from the stored vectors), on the CPU.

    python benchmarks/bench_searchable_first.py --images 48 --repeats 3

Full-size clipcap-coco architecture with random weights (bench_index.py's model and phone-sized
4032×3024 JPEGs, 20-token greedy captions), fresh database per run, the two modes alternated.
Model loading is done once, outside the timed runs (a warm process). Per run:
- searchable_s: from the start of `index_paths` until every photo is searchable by its image
  vector (one pass: the run's end; after: the moment its captioning phase begins, tags, places
  and similar groups already done);
- total_s: until every photo has its caption too;
- caption_phase_s: the captioning phase alone (after).
Time to searchable for more photos is extrapolated linearly from the per-photo cost of each run
(searchable_s / images; the fixed costs of a run are well under a second here), as printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_index.py: a shared box

from bench_index import load_random, make_phone_photos  # noqa: E402

from indexer.config import Settings  # noqa: E402
from indexer.run.pipeline import index_paths  # noqa: E402


def one_run(folder: Path, db: Path, model, settings: Settings, mode: str) -> dict:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    marks: dict[str, float] = {}

    def on_progress(p) -> None:
        if p.phase == "captioning" and "searchable" not in marks:
            marks["searchable"] = time.perf_counter()

    t0 = time.perf_counter()
    s = index_paths([folder], replace(settings, db_path=db, captions=mode), model=model,
                    on_progress=on_progress)  # fmt: skip
    end = time.perf_counter()
    searchable = marks.get("searchable", end) - t0
    return {
        "mode": mode,
        "searchable_s": round(searchable, 2),
        "total_s": round(end - t0, 2),
        "caption_phase_s": s.timings.get("caption_stored", 0.0),
        "model_s": s.timings.get("model", 0.0),
        "captioned": s.captioned,
        "captioned_from_vectors": s.captioned_from_vectors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--extrapolate", type=int, default=1000, help="photos to extrapolate to")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgcap-bench-searchable"))
    ap.add_argument("--model-dir", type=Path, default=None, help="bench_index.py's random model")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    ap.add_argument("--precision", default="auto", help="auto (imgcap's default), fp32, bf16")
    ap.add_argument("--start-with", choices=("now", "after"), default="now")
    args = ap.parse_args()

    import torch

    work = args.work
    model_dir = args.model_dir or work / "model-clipcap-coco"
    if not (model_dir / "imgcap-model.json").exists():
        from indexer.models.random_weights import write_random_model

        write_random_model(str(model_dir), "clipcap-coco")
    folder = work / "phone"
    make_phone_photos(folder, args.images)
    settings = Settings(device=args.device, precision=args.precision)
    model = load_random(model_dir, settings, args.tokens)
    runs = []
    for i in range(args.repeats):
        first = ("now", "after") if args.start_with == "now" else ("after", "now")
        order = first if i % 2 == 0 else first[::-1]
        for mode in order:
            r = one_run(folder, work / f"{mode}.db", model, settings, mode)
            print(json.dumps(r), flush=True)
            runs.append(r)
    out: dict = {"images": args.images, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                 "dtype": str(model.captioner.inner.dtype)}  # fmt: skip
    for mode in ("now", "after"):
        mine = [r for r in runs if r["mode"] == mode]
        med = {k: statistics.median(r[k] for r in mine) for k in ("searchable_s", "total_s")}
        med["caption_phase_s"] = statistics.median(r["caption_phase_s"] for r in mine)
        med["searchable_s_range"] = [min(r["searchable_s"] for r in mine),
                                     max(r["searchable_s"] for r in mine)]  # fmt: skip
        per = med["searchable_s"] / args.images
        med[f"searchable_s_at_{args.extrapolate}_extrapolated"] = round(per * args.extrapolate, 1)
        out[mode] = med
    out["searchable_ratio"] = round(out["now"]["searchable_s"] / out["after"]["searchable_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

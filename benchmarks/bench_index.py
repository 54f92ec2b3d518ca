"""End-to-end `imgcap index` speed on phone-sized photos, the naive way for comparison, a no-op
re-index of many unchanged files, and peak memory.

    python benchmarks/bench_index.py --images 32                  # CPU, fp32 (+ bf16 if supported)
    python benchmarks/bench_index.py --images 2000 --device cuda  # GPU machine
    python benchmarks/bench_index.py --images 0 --noop-files 100000   # only the no-op re-index

What is measured (all with the FULL-size architecture of `--arch` and random weights: FLOPs do
not depend on the weights):
- pipeline: `index_paths` over a folder of 4032×3024 JPEGs (quality 90, EXIF with orientation,
  date, camera, GPS), greedy decoding fixed at `--tokens` tokens (random weights rarely emit the
  stop token, so lengths would otherwise be arbitrary). images/s = captioned images / seconds of
  the run's model phase; `end_to_end_s` includes walk, hashing, model load excluded.
- naive: the same images one at a time, the reference way: full-size decode (no draft), EXIF
  transpose, open_clip's preprocess, CLIP, caption, caption embedding, batch of one.
- host decode ceiling: decode_for_model (draft decode + resize + crop) alone in the workers, with
  nothing else running: the most images/s the CPUs can feed a GPU.
- no-op: `--noop-files` small unchanged files already in the database, re-indexed; nothing is
  opened, so this is walk + one query + comparison.
- peak memory: max RSS of this process and of the largest worker (getrusage).

Generated inputs and the random model are cached under `--work` (default /tmp/imgcap-bench).
Results are printed as JSON (and written to `--json PATH` if given) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Before torch loads OpenMP: spinning threads at every barrier make the model 5-7× slower when any
# other process wants a core (measured on the shared 2-core machine). `--omp-active` to compare.
if "--omp-active" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from indexer.config import Settings  # noqa: E402
from indexer.media.walk import content_hash  # noqa: E402
from indexer.models.loading import cpu_has_bf16  # noqa: E402
from indexer.run.pipeline import index_paths
from indexer.run.workers import decode_for_model  # noqa: E402
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord  # noqa: E402

PHONE = (4032, 3024)


# --------------------------------------------------------------------------------------- inputs
def make_phone_photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n phone-sized JPEGs (q90, EXIF). Smooth shapes + sensor-like noise give ~2-4 MB files,
    close to real phone output; pure noise would be 3× larger and slower to decode than photos."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{i:05d}.jpg" for i in range(n)]
    todo = [p for p in paths if not p.exists()]
    if not todo:
        return paths
    w, h = PHONE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for p in todo:
        # Seeded per file, so photos made in later runs differ from the ones already cached.
        rng = np.random.default_rng([seed, int(p.stem.split("_")[1])])
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(300, 1500)
        base = rng.uniform(40, 215, 3)
        blob = ((x - cx) ** 2 + (y - cy) ** 2 < r * r)[..., None] * rng.uniform(-60, 60, 3)
        grad = (x / w)[..., None] * rng.uniform(-50, 50, 3) + (y / h)[..., None] * rng.uniform(
            -50, 50, 3
        )
        noise = rng.normal(0, 6, (h, w, 1))
        rgb = np.clip(base + blob + grad + noise, 0, 255).astype(np.uint8)
        im = Image.fromarray(rgb, "RGB")
        exif = Image.Exif()
        exif[0x0112] = 6
        exif[0x010F] = "Apple"
        exif[0x0110] = "iPhone 12"
        exif.get_ifd(0x8769).update({0x9003: "2021:06:01 12:34:56"})
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 12.5), 3: "W", 4: (4.0, 53.0, 30.0)})
        im.save(p, "JPEG", quality=90, exif=exif.tobytes())
    return paths


def make_small_files(folder: Path, n: int) -> list[Path]:
    """n tiny files named .jpg (a no-op re-index never opens them), 1,000 per folder."""
    paths = [folder / f"d{i // 1000:03d}" / f"f{i:06d}.jpg" for i in range(n)]
    marker = folder / f".made-{n}"
    if not marker.exists():
        for i, p in enumerate(paths):
            if i % 1000 == 0:
                p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(i.to_bytes(4, "little"))
        marker.write_text("ok")
    return paths


# --------------------------------------------------------------------------------------- models
# What a real 20-token caption looks like to the next stage (CLIP text tower): ~20 CLIP tokens.
TYPICAL_CAPTION = "A man riding a bike down a busy city street next to a red car by the road."


class FixedLengthCaptioner:
    """Greedy decoding of exactly `tokens` tokens (stop token ignored): comparable timings with
    random weights. Same interface as Captioner.caption.

    Random-weight GPT-2 output detokenises to byte soup that CLIP's tokenizer turns into all 77
    positions, 4x the text-tower work of a real caption; with typical=True (the default) the
    decoded text is still produced (its cost counts) but the returned caption is a typical English
    one, so the caption-vector stage does a real caption's work."""

    def __init__(self, inner, tokens: int, typical: bool = True):
        self.inner = inner
        self.tokens = tokens
        self.typical = typical

    def caption(self, features, beams: int = 1, max_tokens: int = 67) -> list[str]:
        ids = self.inner.decode_tokens(
            features, beams=beams, max_tokens=self.tokens, stop_token=None
        )
        texts = [self.inner.detokenize(t) for t in ids]
        return [TYPICAL_CAPTION] * len(texts) if self.typical else texts


def load_random(model_dir: Path, settings: Settings, tokens: int, typical: bool = True):
    from indexer.models.loading import load_model

    model = load_model(str(model_dir), settings)
    captioner = FixedLengthCaptioner(model.captioner, tokens, typical)
    return dataclasses.replace(model, captioner=captioner)


# ------------------------------------------------------------------------------------ measures
def bench_pipeline(folder: Path, model, settings: Settings) -> dict:
    if settings.db_path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(settings.db_path) + suffix).unlink(missing_ok=True)
    t = time.perf_counter()
    s = index_paths([folder], settings, model=model)
    wall = time.perf_counter() - t
    return {
        "images": s.captioned,
        "images_per_s": s.images_per_s,
        "end_to_end_s": round(wall, 2),
        "end_to_end_images_per_s": round(s.captioned / wall, 2),
        "batch_size": s.batch_size,
        "workers": settings.workers,
        "timings_s": s.timings,  # model / store / decode_wait (time the model waited on decode)
        "model_wait_share": round(
            s.timings.get("decode_wait", 0) / max(sum(s.timings.values()), 1e-9), 3
        ),
    }


def bench_naive(paths: list[Path], model, tokens: int) -> dict:
    """One image at a time: full decode, EXIF transpose, open_clip preprocess, batch of one."""
    from PIL import Image, ImageOps

    enc, cap = model.encoder, model.captioner
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
        feats = enc.encode_images(enc.preprocess(im)[None])
        text = cap.caption(feats, max_tokens=tokens)
        enc.encode_texts(text)
    dt = time.perf_counter() - t
    n = len(paths)
    return {"images": n, "images_per_s": round(n / dt, 2), "seconds": round(dt, 2)}


def bench_decode_ceiling(paths: list[Path], workers: int, size: int) -> dict:
    """Decode + geometry alone in worker processes: how fast the host can feed a model."""
    from indexer.run.workers import init_worker, pool_context

    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=init_worker) as ex:
        list(ex.map(decode_for_model, [str(paths[0])] * workers, [size] * workers))  # warm up
        t = time.perf_counter()
        out = list(ex.map(decode_for_model, [str(p) for p in paths], [size] * len(paths)))
        dt = time.perf_counter() - t
    assert all(o[0] == "ok" for o in out)
    return {"images_per_s": round(len(paths) / dt, 2), "workers": workers}


def bench_noop(folder: Path, n: int, db: Path, model_dir: Path, model_name: str) -> dict:
    """Seed the database with n indexed files (dummy results), then time a no-op re-index."""
    paths = make_small_files(folder, n)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with Store.open(db) as store:
        vec = np.zeros(512, np.float32)
        for i in range(0, n, 5000):
            chunk = paths[i : i + 5000]
            files, results = [], []
            for p in chunk:
                st = p.stat()
                h = content_hash(p)
                files.append(FileRecord(str(p), st.st_size, st.st_mtime_ns, h, 1, 1))
                results.append(ResultRecord(h, "x", vec, vec))
            store.write_batch(model_name, results, files)
    settings = Settings(db_path=db, model=str(model_dir), device="cpu")
    t = time.perf_counter()
    s = index_paths([folder], settings)
    dt = time.perf_counter() - t
    assert s.unchanged == n and s.captioned == 0, s
    return {"files": n, "seconds": round(dt, 2)}


class MemorySampler:
    """Peak resident memory (VmHWM) of this process and of every descendant (decode workers,
    forkserver), sampled twice a second: getrusage cannot see the forkserver's children."""

    def __init__(self):
        import threading

        self.peaks: dict[int, int] = {}  # pid -> peak kB
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        mine = {os.getpid()}
        changed = True
        while changed:
            new = {pid for pid, ppid in parents.items() if ppid in mine} - mine
            changed = bool(new)
            mine |= new
        for pid in mine:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        kb = int(line.split()[1])
                        self.peaks[pid] = max(self.peaks.get(pid, 0), kb)
            except OSError:
                continue

    def report(self) -> dict:
        main_kb = self.peaks.get(os.getpid(), 0)
        others = sorted((kb for pid, kb in self.peaks.items() if pid != os.getpid()), reverse=True)
        return {
            "main_mb": round(main_kb / 1024),
            "largest_child_mb": round(others[0] / 1024) if others else 0,
            "sum_of_peaks_mb": round((main_kb + sum(others)) / 1024),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32, help="phone photos to index (0: skip)")
    ap.add_argument("--naive-images", type=int, default=8, help="of those, done the naive way")
    ap.add_argument("--noop-files", type=int, default=0, help="files for the no-op re-index")
    ap.add_argument("--arch", default="clipcap-coco")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument(
        "--generated-text",
        action="store_true",
        help="embed the random model's byte-soup captions (77 CLIP tokens), not a typical one",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="both", help="fp32, bf16, or both (bf16 if supported)")
    ap.add_argument("--workers", type=int, default=0, help="decode processes (0 = CPU count)")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--omp-active", action="store_true", help="keep OpenMP's default waiting")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgcap-bench"))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from indexer.models.model_dir import read_spec

    work = args.work
    model_dir = work / f"model-{args.arch}"
    if not (model_dir / "imgcap-model.json").exists():
        # In a child process, so that building it does not count towards peak memory here.
        import subprocess

        code = (
            "import sys; from indexer.models.random_weights import write_random_model;"
            " write_random_model(*sys.argv[1:])"
        )
        subprocess.run([sys.executable, "-c", code, str(model_dir), args.arch], check=True)
    name = read_spec(model_dir)["name"]
    workers = args.workers or os.cpu_count() or 1
    out: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "device": args.device,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "arch": args.arch,
        "tokens": args.tokens,
    }

    if args.images:  # inputs first: generating them must not count towards peak memory
        paths = make_phone_photos(work / "phone", args.images)
    sampler = MemorySampler().__enter__()
    if args.images:
        # Only the first --images files take part (the cache may hold more).
        run_dir = work / f"phone-{args.images}"
        run_dir.mkdir(exist_ok=True)
        for p in paths:
            link = run_dir / p.name
            if not link.exists():
                os.link(p, link)
        out["photo_mb"] = round(sum(p.stat().st_size for p in paths) / len(paths) / 2**20, 2)
        precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
        if "bf16" in precisions and args.device == "cpu" and not cpu_has_bf16():
            precisions.remove("bf16")
        for prec in precisions:
            settings = Settings(
                db_path=work / "bench.db",
                model=str(model_dir),
                device=args.device,
                precision=prec,
                workers=workers,
                batch_size=args.batch_size,
            )
            model = load_random(model_dir, settings, args.tokens, not args.generated_text)
            out[f"pipeline_{prec}"] = bench_pipeline(run_dir, model, settings)
            if args.naive_images:
                naive = bench_naive(paths[: args.naive_images], model, args.tokens)
                out[f"naive_{prec}"] = naive
                out[f"speedup_{prec}"] = round(
                    out[f"pipeline_{prec}"]["images_per_s"] / naive["images_per_s"], 2
                )
            size = model.encoder.image_size
            del model
        out["host_decode_ceiling"] = bench_decode_ceiling(paths, workers, size)

    if args.noop_files:
        out["noop_reindex"] = bench_noop(
            work / f"small-{args.noop_files}", args.noop_files, work / "noop.db", model_dir, name
        )

    sampler.__exit__(None, None, None)
    out["peak_memory"] = sampler.report()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

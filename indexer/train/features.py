"""The CLIP feature cache of a training run: raw image features computed once per image.

ClipCap trains only the mapper (and GPT-2) on top of a frozen CLIP, so every epoch would compute
the same CLIP features again; we compute them once, through the same decode and encoder code as
`imgcap index`, and keep them in one safetensors file in the run's folder:

    <out>/training/features-<clip id>.safetensors
      tensor "features": (N, D) float32, raw (not normalised) `encode_images` output
      metadata "keys":   JSON list of N image keys, row i <-> key i
      metadata "bad":    JSON {image key: reason} for images that could not be decoded
      metadata "clip":   the CLIP identity the features belong to
    <out>/training/features-<clip id>.grid-0000.safetensors, -0001, ...
      tensor "grid":     (M, N, C) float16, CLIP's grid tokens (`encode_images_grid`), only for the
                         images a show-attend-tell run asked for; metadata "keys" names rows.
                         float16 halves the largest part (49 x 768 per ViT-B/32 image, ~75 KB).
                         Grids are appended as new shards, never rewritten: at COCO scale they
                         are gigabytes, which the periodic rewrite of the main file can't afford.

An image key is "absolute path|size|mtime_ns": an edited or replaced image gets a new key and is
encoded again; the file name carries a hash of the CLIP identity, so features of another CLIP are
never mixed in. The file is rewritten atomically (temp file + rename) every few hundred images,
so a killed run keeps what it had computed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from indexer.atomic_file import atomic_path
from indexer.errors import BadImageError

CACHE_FORMAT = 1


def image_key(path: str | Path) -> str:
    """Cache key of an image file: absolute path, size and mtime (changed file -> new key)."""
    p = Path(path).absolute()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


def clip_identity(clip_dir: Path, quick_gelu: bool, resize: str = "fast") -> str:
    """What the cached features depend on: the CLIP config and weights files (by size/mtime),
    and the --resize mode that made the pixels (indexer.media.preprocess; "fast" changed in format
    2)."""
    parts = [f"quick_gelu={quick_gelu}", f"resize={resize}"]
    for f in sorted(Path(clip_dir).iterdir()):
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


@dataclass
class FeatureCache:
    path: Path
    clip: str
    rows: dict[str, torch.Tensor] = field(default_factory=dict)  # key -> (D,) float32
    bad: dict[str, str] = field(default_factory=dict)  # key -> why it could not be decoded
    grid: dict[str, torch.Tensor] = field(default_factory=dict)  # key -> (N, C) float16
    grid_saved: set[str] = field(default_factory=set)  # grid keys already in a shard on disk

    @classmethod
    def open(cls, folder: Path, clip: str) -> FeatureCache:
        """The cache for this CLIP in folder (empty if absent or unreadable: it is only a cache)."""
        digest = hashlib.blake2b(clip.encode(), digest_size=6).hexdigest()
        cache = cls(Path(folder) / f"features-{digest}.safetensors", clip)
        if cache.path.is_file():
            try:
                cache._read()
            except Exception:  # noqa: BLE001 - a corrupt cache is recomputed, never fatal
                cache.rows.clear()
                cache.bad.clear()
            cache._read_grid_shards()
        return cache

    def _grid_shards(self) -> list[Path]:
        return sorted(self.path.parent.glob(self.path.stem + ".grid-*.safetensors"))

    def _read_grid_shards(self) -> None:
        from safetensors import safe_open

        for shard in self._grid_shards():
            try:
                with safe_open(str(shard), framework="pt") as f:
                    meta = f.metadata() or {}
                    if meta.get("clip") != self.clip:
                        continue
                    keys = json.loads(meta["keys"])
                    grid = f.get_tensor("grid")
            except Exception:  # noqa: BLE001 - a corrupt shard's images are encoded again
                continue
            self.grid.update({k: grid[i] for i, k in enumerate(keys)})
            self.grid_saved.update(keys)

    def _read(self) -> None:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("clip") != self.clip or int(meta.get("format", 0)) != CACHE_FORMAT:
                return
            keys = json.loads(meta["keys"])
            feats = f.get_tensor("features") if keys else torch.empty(0)
        self.rows = {k: feats[i] for i, k in enumerate(keys)}
        self.bad = json.loads(meta.get("bad", "{}"))

    def save(self) -> None:
        from safetensors.torch import save_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.rows)
        feats = (
            torch.stack([self.rows[k] for k in keys]).contiguous() if keys else torch.zeros(0, 1)
        )
        meta = {
            "format": str(CACHE_FORMAT),
            "clip": self.clip,
            "keys": json.dumps(keys),
            "bad": json.dumps(self.bad),
        }
        new_grid = [k for k in self.grid if k not in self.grid_saved]
        if new_grid:  # first, so the main file never names images whose grid is not on disk
            shards = self._grid_shards()
            n = int(shards[-1].name.rsplit("-", 1)[1].split(".")[0]) + 1 if shards else 0
            shard = self.path.with_name(f"{self.path.stem}.grid-{n:04d}.safetensors")
            grid = torch.stack([self.grid[k] for k in new_grid]).contiguous()  # (M, N, C)
            meta_grid = {"clip": self.clip, "keys": json.dumps(new_grid)}
            with atomic_path(shard) as tmp:
                save_file({"grid": grid}, str(tmp), metadata=meta_grid)
            self.grid_saved.update(new_grid)
        with atomic_path(self.path) as tmp:
            save_file({"features": feats}, str(tmp), metadata=meta)


@dataclass
class FeatureProgress:
    done: int  # images whose features are known (cached or just computed) or that failed
    total: int
    computed: int  # computed in this run (not from the cache)
    seconds: float  # time spent computing them


def compute_features(
    paths: Sequence[Path],
    encoder,
    cache: FeatureCache,
    batch_size: int = 64,
    workers: int = 2,
    save_every_s: float = 60.0,
    on_progress: Callable[[FeatureProgress], None] | None = None,
    grids: dict[Path, torch.Tensor] | None = None,
    resize: str = "fast",
) -> tuple[dict[Path, torch.Tensor], dict[Path, str]]:
    """Raw CLIP features of every path: (features by path, failure reason by path).

    grids: a dict to fill with each path's CLIP grid tokens (N, C) float16 as well (computed in
    the same pass; images cached without a grid are encoded again). Cached images are not
    opened. The rest are decoded and preprocessed by a few threads (PIL releases the GIL while
    decoding and resizing) and encoded in batches of batch_size.
    """
    keys: dict[Path, str] = {}
    failed: dict[Path, str] = {}
    for p in paths:
        try:
            keys[p] = image_key(p)
        except OSError as e:
            failed[p] = f"cannot read file ({e.strerror or e})"
    want_grid = grids is not None
    todo = [
        p
        for p, k in keys.items()
        if k not in cache.bad and (k not in cache.rows or (want_grid and k not in cache.grid))
    ]
    total = len(keys) + len(failed)
    computed, spent = 0, 0.0
    last_save = time.monotonic()

    def prepare(path: Path) -> torch.Tensor | str:
        # The pixels `imgcap index` would give CLIP in this --resize mode
        # (indexer.media.preprocess).
        from indexer.media.preprocess import encoder_tensor, model_pixels

        try:
            return encoder_tensor(encoder, model_pixels(path, encoder.image_size, resize)[1])
        except BadImageError as e:
            return e.reason

    def report() -> None:
        if on_progress is not None:
            on_progress(FeatureProgress(total - len(todo) + computed, total, computed, spent))

    report()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(todo), batch_size):
            t0 = time.perf_counter()
            chunk = todo[start : start + batch_size]
            ready: list[tuple[Path, torch.Tensor]] = []
            for path, item in zip(chunk, pool.map(prepare, chunk), strict=True):
                if isinstance(item, str):
                    cache.bad[keys[path]] = item
                else:
                    ready.append((path, item))
            if ready:
                pixels = torch.stack([t for _, t in ready])
                if want_grid:
                    feats, grid = encoder.encode_images_grid(pixels)  # (b, D), (b, N, C)
                    for (path, _), g in zip(ready, grid, strict=True):
                        cache.grid[keys[path]] = g.half().clone()
                else:
                    feats = encoder.encode_images(pixels)  # (b, D)
                for (path, _), row in zip(ready, feats, strict=True):
                    cache.rows[keys[path]] = row.float().clone()
            computed += len(chunk)
            spent += time.perf_counter() - t0
            if time.monotonic() - last_save > save_every_s:
                cache.save()
                last_save = time.monotonic()
            report()
    if todo or not cache.path.is_file():
        cache.save()
    features = {p: cache.rows[k] for p, k in keys.items() if k in cache.rows}
    failed.update({p: cache.bad[k] for p, k in keys.items() if k in cache.bad})
    if want_grid:
        grids.update({p: cache.grid[k] for p, k in keys.items() if k in cache.grid})
    return features, failed

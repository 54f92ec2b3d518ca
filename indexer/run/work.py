"""The work of an index run, with no opinion on how batches move: `decode` (paths → pixels +
metadata) and `process_batch` (pixels → image vectors, captions, caption vectors, ONE CLIP pass
feeding both). The local runner (indexer/run/pipeline.py: worker processes + one model in the main
process) and the Ray runner (indexer/run/ray_engine.py: Ray Data tasks + an actor pool) both call
these two functions and nothing else does model or decode work, so the two cannot drift.

A path may yield several items (a video's keyframes, issue 13): `decode_file` returns a list.
A photo gives one item with `frame == 0`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.media.preprocess import clip_stats, pixels_to_tensor


@dataclass(slots=True)
class DecodedItem:
    """One picture ready for the model."""

    path: str
    meta: dict[str, Any]  # the file's META_COLUMNS (width, height, taken_at, camera, GPS)
    pixels: np.ndarray  # (S, S, 3) uint8, CLIP's eval geometry already applied
    frame: int = 0  # which picture of the file: 0 for a photo, keyframe number for a video
    extra: dict[str, Any] = field(default_factory=dict)  # per-item facts (a video's at_s)


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    path: str
    reason: str  # as recorded in the failures table


@dataclass(slots=True)
class BatchOutput:
    """What the model makes of one batch, row i for input i."""

    image_vecs: np.ndarray  # (B, D) float32, raw CLIP image features
    captions: list[str]
    caption_vecs: np.ndarray  # (B, D) float32, raw CLIP text features of the captions
    # Captions left for later (--captions after|later): captions "" and caption_vecs all zeros;
    # indexer/run/pending_captions.py captions the stored image_vecs.
    pending: bool = False


def items_from_task(path: str, res: tuple) -> list[DecodedItem] | DecodeFailure:
    """A decode task's result (indexer/run/workers.py protocol) as items.

    ("bad", reason) → DecodeFailure; ("ok", meta, pixels (S, S, 3)) → one item;
    ("ok", meta, pixels (K, S, S, 3)[, extras list of K dicts]) → K items (video keyframes).
    """
    if res[0] != "ok":
        return DecodeFailure(path, res[1])
    meta, pixels = res[1], res[2]
    if pixels.ndim == 3:
        return [DecodedItem(path, meta, pixels)]
    extras = res[3] if len(res) > 3 else [{}] * len(pixels)
    pairs = enumerate(zip(pixels, extras, strict=True))
    return [DecodedItem(path, meta, px, k, ex) for k, (px, ex) in pairs]


def decode_file(path: str, size: int, **options: Any) -> list[DecodedItem] | DecodeFailure:
    """Decode one file (any type the decode task knows) at model input side `size`; `options`:
    the decode task's resize, max_pixels and video (indexer/run/workers.py decode_for_model)."""
    from indexer.run.workers import decode_for_model

    return items_from_task(path, decode_for_model(path, size, **options))


def decode(
    paths: list[str], size: int, settings: Settings | None = None, max_pixels: int | None = None
) -> tuple[list[DecodedItem], list[DecodeFailure]]:
    """Decode `paths` in this process: (items in path order, failures). Never raises for a bad
    file. `settings`: the run's --resize mode and video keyframe choice (None: the defaults);
    `max_pixels`: the run's pixel cap (Settings.max_pixels_for; None: the default cap)."""
    options: dict[str, Any] = {} if max_pixels is None else {"max_pixels": max_pixels}
    if settings is not None:
        video = (settings.video_gap, settings.video_max_frames)
        options.update(resize=settings.resize, video=video)
    items: list[DecodedItem] = []
    failures: list[DecodeFailure] = []
    for path in paths:
        out = decode_file(path, size, **options)
        if isinstance(out, DecodeFailure):
            failures.append(out)
        else:
            items.extend(out)
    return items, failures


def process_tensor(model, x, settings: Settings) -> BatchOutput:
    """(B, 3, S, S) normalised pixels → BatchOutput. The ONE place that runs the model: CLIP's
    image tower once, its features both stored and captioned, then the caption text vectors.
    A captioner that needs more than the pooled features (CLIP grid tokens) hooks in here."""
    import torch

    # No grad here, not only inside the model's methods: a model unpickled in a Ray actor has
    # grad on. no_grad, not inference_mode: under inference mode autocast's cast cache is off, so
    # bf16 re-cast every weight at every call (a one-photo bf16 caption was 1.5x slower than fp32).
    with torch.no_grad():
        return _process_tensor(model, x, settings)


def _process_tensor(model, x, settings: Settings) -> BatchOutput:
    from indexer.run.caption_mode import caption_mode

    if caption_mode(settings, model) != "now":
        # Searchable first: the image vectors alone, the captions made later from them.
        feats = model.encoder.encode_images(x)
        vecs = feats.float().numpy()
        return BatchOutput(vecs, [""] * len(vecs), np.zeros_like(vecs), pending=True)
    if getattr(model.captioner, "needs_grid", False):
        # show-attend-tell attends over CLIP's grid: the same pass gives it (lstm_captioner.py)
        feats, grid = model.encoder.encode_images_grid(x)  # (B, D), (B, N, C)
        caps = model.captioner.caption(
            feats, beams=settings.beams, max_tokens=settings.max_tokens, grid=grid
        )
    else:
        feats = model.encoder.encode_images(x)  # (B, D) raw, float32, CPU
        caps = model.captioner.caption(feats, beams=settings.beams, max_tokens=settings.max_tokens)
    txt = model.encoder.encode_texts(caps)  # (B, D)
    return BatchOutput(feats.float().numpy(), list(caps), txt.float().numpy())


def process_batch(model, pixels: list[np.ndarray], settings: Settings) -> BatchOutput:
    """(S, S, 3) uint8 pictures → image vectors, captions, caption vectors (no OOM handling:
    indexer/run/runner.py's ModelRunner halves the batch around this)."""
    mean, std = clip_stats(model.encoder)
    x = pixels_to_tensor(pixels, mean, std, getattr(model, "device", None))
    return process_tensor(model, x, settings)

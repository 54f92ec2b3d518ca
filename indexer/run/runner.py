"""The batch model runner: decoded pixels → indexer/run/work.py `process_tensor` (CLIP once →
captions → caption text features), halving the batch on out-of-memory. Both runners (local
pipeline, Ray actors) hold one."""

from __future__ import annotations

import numpy as np

from indexer.config import Settings
from indexer.media.preprocess import clip_stats, pixels_to_tensor
from indexer.run.work import BatchOutput, process_tensor


def _is_oom(e: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


class ModelRunner:
    """Runs batches through core.process_tensor; halves the batch on OOM."""

    def __init__(self, model, settings: Settings, batch_size: int):
        self.model = model
        self.settings = settings
        self.batch_size = batch_size
        self.mean, self.std = clip_stats(model.encoder)

    def run(self, pixels: list[np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(B, S, S, 3) uint8 images → image vectors (B, D), captions, caption vectors (B, D)."""
        out = self.process(pixels)
        return out.image_vecs, out.captions, out.caption_vecs

    def process(self, pixels: list[np.ndarray]) -> BatchOutput:
        import torch

        x = pixels_to_tensor(pixels, self.mean, self.std, getattr(self.model, "device", None))
        parts: list[BatchOutput] = []
        i = 0
        while i < len(pixels):
            chunk = x[i : i + self.batch_size]
            try:
                parts.append(process_tensor(self.model, chunk, self.settings))
            except Exception as e:
                if not _is_oom(e) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            i += len(chunk)
        return BatchOutput(
            np.concatenate([p.image_vecs for p in parts]),
            [c for p in parts for c in p.captions],
            np.concatenate([p.caption_vecs for p in parts]),
            pending=any(p.pending for p in parts),
        )

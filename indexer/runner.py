"""The batch model runner: decoded pixels → CLIP image features (once) → captions → caption
text features, halving the batch on out-of-memory."""

from __future__ import annotations

import numpy as np

from indexer.config import Settings


def pixels_to_tensor(pixels: list[np.ndarray], mean, std, device=None):
    """List of (S, S, 3) uint8 → (B, 3, S, S) float32 normalised: ToTensor + Normalize.

    The uint8 batch moves to `device` first: 4× less to copy to a GPU than float32, and the
    float work happens there."""
    import torch

    x = torch.from_numpy(np.stack(pixels))  # (B, S, S, 3) uint8
    if device is not None and torch.device(device).type != "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def _is_oom(e: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


class ModelRunner:
    """Runs batches through CLIP once + captioner + text encoder; halves the batch on OOM."""

    def __init__(self, model, settings: Settings, batch_size: int):
        self.model = model
        self.settings = settings
        self.batch_size = batch_size
        enc = model.encoder
        self.mean = getattr(enc, "mean", (0.48145466, 0.4578275, 0.40821073))
        self.std = getattr(enc, "std", (0.26862954, 0.26130258, 0.27577711))

    def run(self, pixels: list[np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(B, S, S, 3) uint8 images → image vectors (B, D), captions, caption vectors (B, D)."""
        import torch

        x = pixels_to_tensor(pixels, self.mean, self.std, getattr(self.model, "device", None))
        out_img, out_cap, out_txt = [], [], []
        i = 0
        while i < len(pixels):
            chunk = x[i : i + self.batch_size]
            try:
                feats = self.model.encoder.encode_images(chunk)  # (b, D) raw, float32, CPU
                caps = self.model.captioner.caption(
                    feats, beams=self.settings.beams, max_tokens=self.settings.max_tokens
                )
                txt = self.model.encoder.encode_texts(caps)  # (b, D)
            except Exception as e:
                if not _is_oom(e) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            out_img.append(feats.float().numpy())
            out_cap.extend(caps)
            out_txt.append(txt.float().numpy())
            i += len(chunk)
        return np.concatenate(out_img), out_cap, np.concatenate(out_txt)

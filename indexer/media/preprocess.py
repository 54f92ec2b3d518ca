"""Model input: one image file → the (S, S, 3) uint8 pixels CLIP sees, in one of two modes.

Every path that feeds CLIP from a file (the index workers, `imgcap caption`, `imgcap eval`, the
training feature cache, `search --like`) goes through `model_pixels`, so they all see the same
pixels; `pixels_to_tensor` then does ToTensor + Normalize.

- "exact": the fully decoded, EXIF-oriented image through open_clip's eval geometry (bicubic
  short-side Resize, CenterCrop, as torchvision does it on PIL). With ToTensor + Normalize this
  is bit for bit `open_clip.create_model_and_transforms(...)[2]` of that image, which is what
  published numbers (ClipCap's COCO scores) were measured with. Costs a full decode.
- "fast" (the default): the decoder reduces first (JPEG DCT scaling, HEIC thumbnail, libwebp
  scaling, box reduce), but never below REDUCE_GAP × S on the short side, and the final bicubic
  resample uses the full image's geometry (crop box computed on the full size, mapped into the
  reduced image), so only the anti-aliasing of the last ×REDUCE_GAP differs. Measured ≥ 40 dB
  PSNR from exact on 12 MP and panorama JPEGs/PNGs (tests/test_media_preprocess_fidelity.py);
  reducing to just above S with the crop computed on the reduced image, as before, was 27-41 dB.
"""

from __future__ import annotations

import os

import numpy as np

RESIZE_MODES = ("fast", "exact")
# Fast mode keeps the decoded short side >= REDUCE_GAP × the model input before the final
# antialiased resize. PSNR from exact on detailed 12 MP/panorama JPEGs and PNGs: gap 1 30-47 dB,
# 2 45-54 dB, 2.5 48-56 dB, 3 51-56 dB. JPEG DCT scales are powers of two, so 2-3 decode a 12 MP
# phone photo at the same 1/4 scale; 2.5 keeps a margin over the 40 dB bar on the worst case
# (a detailed PNG) at little cost. See BENCHMARKS.md.
REDUCE_GAP = 2.5


def check_resize(mode: str) -> str:
    """`mode` if it is a resize mode, else UsageError naming the choices."""
    if mode not in RESIZE_MODES:
        from indexer.errors import UsageError

        raise UsageError(f"--resize must be one of {', '.join(RESIZE_MODES)} (got {mode!r})")
    return mode


def decode_min_side(size: int, resize: str) -> int:
    """The short side decode_image may reduce to for a model input of `size` (0 = no reduction)."""
    return 0 if check_resize(resize) == "exact" else int(round(size * REDUCE_GAP))


def model_pixels(
    path: str | os.PathLike[str],
    size: int,
    resize: str = "fast",
    max_pixels: int = 120_000_000,
):
    """(DecodedImage, (size, size, 3) uint8 model input) of one file; BadImageError(path,
    reason) for a bad file. The DecodedImage's `.image` is the decoded (maybe reduced) image."""
    from indexer.media.decode import decode_image

    decoded = decode_image(path, min_side=decode_min_side(size, resize), max_pixels=max_pixels)
    full = (decoded.width, decoded.height)
    return decoded, clip_geometry(decoded.image, size, full, decoded.extent)


def clip_geometry(
    image,
    size: int,
    full_size: tuple[int, int] | None = None,
    extent: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """The geometric half of open_clip's eval transform, on PIL: Resize(size, BICUBIC) of the
    short side (torchvision rounds the long side down) then CenterCrop(size). (S, S, 3) uint8.

    `full_size`: the full image's (w, h) when `image` is a reduced decode of it, and `extent`
    where that full image lies in `image` (DecodedImage.extent; None = all of it). The resize
    and crop are then computed on the full size, as exact mode does, and the crop's source box
    is resampled straight to (S, S) from the reduced image: no rounding of the reduced size can
    shift the crop."""
    from PIL import Image

    w, h = full_size or image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    if image.size == (w, h) and extent in (None, (0, 0, w, h)):
        # Exactly torchvision's Resize + CenterCrop on PIL (bit for bit): resize the whole
        # image (skipped when already that size), then crop.
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    x0, y0, x1, y1 = extent or (0.0, 0.0, float(image.size[0]), float(image.size[1]))
    # Full-image pixel -> reduced-image pixel: x0 + X * sx; resized pixel -> full: X * w / new_w.
    sx, sy = (x1 - x0) / w * w / new_w, (y1 - y0) / h * h / new_h
    box = (x0 + left * sx, y0 + top * sy, x0 + (left + size) * sx, y0 + (top + size) * sy)
    out = image.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(out.convert("RGB"), dtype=np.uint8)


# OpenAI CLIP's normalisation: what an encoder without its own (a test double) is taken to use.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_stats(encoder) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation (mean, std) the encoder's CLIP was trained with."""
    return getattr(encoder, "mean", OPENAI_MEAN), getattr(encoder, "std", OPENAI_STD)


def pixels_to_tensor(pixels: list[np.ndarray], mean, std, device=None):
    """List of (S, S, 3) uint8 → (B, 3, S, S) float32 normalised: ToTensor + Normalize.

    The same float32 operations in the same order as torchvision's, so the result is
    bit-identical. The uint8 batch moves to `device` first: 4× less to copy to a GPU than
    float32, and the float work happens there."""
    import torch

    x = torch.from_numpy(np.stack(pixels))  # (B, S, S, 3) uint8
    if device is not None and torch.device(device).type != "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def encoder_tensor(encoder, pixels: np.ndarray):
    """One (S, S, 3) uint8 model input → (3, S, S) float32 with `encoder`'s mean and std."""
    return pixels_to_tensor([pixels], *clip_stats(encoder))[0]

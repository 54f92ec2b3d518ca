"""--resize exact is open_clip's eval transform bit for bit; --resize fast stays >= 40 dB PSNR
from it on real photos, 12 MP and panorama shapes, JPEG and PNG, every EXIF orientation kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from indexer.media.decode import decode_image
from indexer.media.preprocess import (
    REDUCE_GAP,
    clip_geometry,
    decode_min_side,
    model_pixels,
    pixels_to_tensor,
)

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
PHOTOS = sorted(SAMPLES.glob("*.jpg"))
S = 224
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def tiled(src: Path, w: int, h: int) -> Image.Image:
    """A w x h photo with real-photo detail at full resolution (the sample repeated, not
    upscaled: upscaling would smooth away exactly the detail that aliasing shows up in)."""
    tile = Image.open(src).convert("RGB")
    out = Image.new("RGB", (w, h))
    for y in range(0, h, tile.size[1]):
        for x in range(0, w, tile.size[0]):
            out.paste(tile, (x, y))
    return out


def save(im: Image.Image, path: Path, orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if path.suffix == ".png":
        im.save(path, exif=exif.tobytes(), compress_level=1)
    else:
        im.save(path, exif=exif.tobytes(), quality=90)
    return path


def reference(path: Path) -> torch.Tensor:
    """open_clip's eval transform of the fully decoded, EXIF-oriented image."""
    from open_clip import image_transform

    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return image_transform(S, is_train=False, mean=MEAN, std=STD)(im)


def ours(path: Path, resize: str) -> torch.Tensor:
    return pixels_to_tensor([model_pixels(path, S, resize)[1]], MEAN, STD)[0]


# (source, width, height, format, EXIF orientation): 12 MP phone shape (both ways up, and an
# odd size whose reduced decode has partial blocks), panoramas, a small photo.
CASES = [
    ("astronaut.jpg", 4032, 3024, ".jpg", 1),
    ("astronaut.jpg", 4032, 3024, ".png", 6),
    ("rocket.jpg", 4001, 3003, ".jpg", 3),
    ("coffee.jpg", 6000, 1500, ".jpg", 8),
    ("chelsea.jpg", 6000, 1500, ".png", 7),
    ("chelsea.jpg", 1200, 900, ".jpg", 5),
]


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory) -> dict[Path, tuple]:
    """path -> (fast DecodedImage, fast pixels, exact pixels), each computed once."""
    d = tmp_path_factory.mktemp("big")
    out = {}
    for i, (src, w, h, ext, o) in enumerate(CASES):
        path = save(tiled(SAMPLES / src, w, h), d / f"{i}-{w}x{h}-o{o}{ext}", o)
        decoded, fast = model_pixels(path, S, "fast")
        out[path] = (decoded, fast, model_pixels(path, S, "exact")[1])
    return out


def test_exact_is_open_clip_bit_for_bit_on_the_samples():
    for path in PHOTOS:  # includes camera.jpg, a greyscale JPEG
        assert torch.equal(ours(path, "exact"), reference(path)), path.name


def test_exact_is_open_clip_bit_for_bit_on_large_oriented_photos(big_photos):
    for path, (_, _, exact) in list(big_photos.items())[1:3]:
        assert torch.equal(pixels_to_tensor([exact], MEAN, STD)[0], reference(path)), path.name


def test_exact_equals_the_model_s_own_open_clip_transform(tiny_model, tmp_path):
    """The encoder's transform (built by open_clip from the model's preprocess config) at the
    model's own input size, with the model's mean/std."""
    from indexer.media.preprocess import encoder_tensor

    enc = tiny_model.encoder
    path = save(tiled(SAMPLES / "rocket.jpg", 1500, 1000), tmp_path / "r.jpg", 6)
    expected = enc.preprocess(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    got = encoder_tensor(enc, model_pixels(path, enc.image_size, "exact")[1])
    assert torch.equal(got, expected)


def test_fast_is_at_least_40_db_from_exact(big_photos):
    scores = {p.name: psnr(ours(p, "fast").numpy(), ours(p, "exact").numpy()) for p in PHOTOS}
    scores.update({p.name: psnr(fast, exact) for p, (_, fast, exact) in big_photos.items()})
    print("PSNR fast vs exact (dB):", {k: round(float(v), 1) for k, v in scores.items()})
    assert min(scores.values()) >= 40.0, scores


def test_the_old_reduction_would_fail_the_bar(big_photos):
    """The check can fail: reducing to just above the input size (what fast did before, with
    the crop computed on the reduced size) is far below 40 dB on a detailed 12 MP PNG."""
    path, (_, _, exact) = list(big_photos.items())[1]
    old = clip_geometry(decode_image(path, min_side=S).image, S)
    assert psnr(old, exact) < 38.0


def test_fast_really_reduces_and_keeps_the_gap(big_photos):
    for decoded, _, _ in list(big_photos.values())[:5]:
        short = min(decoded.image.size)
        assert short < min(decoded.width, decoded.height)  # a reduced decode...
        assert short >= REDUCE_GAP * S  # ...never below the gap
    assert decode_min_side(S, "exact") == 0


def test_fast_equals_exact_when_nothing_is_reduced(tmp_path):
    small = save(tiled(SAMPLES / "coffee.jpg", 500, 400), tmp_path / "small.png", 6)
    for path in [*PHOTOS, small]:
        assert np.array_equal(model_pixels(path, S, "fast")[1], model_pixels(path, S, "exact")[1])


def test_unknown_mode_is_a_usage_error():
    from indexer.errors import UsageError

    with pytest.raises(UsageError, match="fast, exact"):
        model_pixels(PHOTOS[0], S, "quick")

"""Build a photo folder with every file kind imgcap must index and every hostile file it must
report, in well under a second. Shared by the walk, decode and pipeline tests:

    from tests.photo_factory import make_photo_folder   # or `from photo_factory import ...`
    expected = make_photo_folder(tmp_path / "photos")

Keep `make_photo_folder(root) -> dict` stable: other tests rely on its keys.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# What the EXIF of camera/IMG_0001.jpg says, for the tests to compare against.
PHONE_EXIF = {
    "taken_at": "2021-06-01T12:34:56+02:00",
    "camera_make": "Apple",
    "camera_model": "iPhone 12",
    "gps_lat": 52 + 22 / 60 + 12.5 / 3600,  # 52°22'12.5" N
    "gps_lon": -(4 + 53 / 60 + 30 / 3600),  # 4°53'30" W
}
BIG_JPEG = "camera/IMG_0001.jpg"  # stored 1600×1200, EXIF orientation 6 → shown 1200×1600
GRADIENT_TIFF = "misc/gradient16.tif"  # 16-bit grey, columns 0..65535 left to right
DEEP_DIRS = "/".join(f"d{i}" for i in range(1, 13))


def make_photo_folder(root: Path) -> dict:
    """Create the folder under `root` (made if missing) and say what a correct indexer does with it.

    Returns a dict:
      "good":    relative paths (posix) that must be indexed, sorted;
      "bad":     {relative path: substring of the reason it must be reported with};
      "ignored": relative paths that must not appear at all (a folder covers all below it);
      "sizes":   {relative path of a good file: (width, height) after EXIF orientation}.
    "bad/dangling.jpg" is a dangling symlink: the walk reports it (decode_image too, if asked).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    sizes: dict[str, tuple[int, int]] = {}

    def put(rel: str, data: bytes) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def save(rel: str, im: Image.Image, fmt: str, size: tuple[int, int] | None = None, **kw):
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        put(rel, buf.getvalue())
        sizes[rel] = size or im.size

    def photo(w: int, h: int) -> Image.Image:
        # Smooth gradients compress small; a little noise keeps them photo-like.
        y, x = np.mgrid[0:h, 0:w]
        rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
        rgb = rgb + rng.integers(-8, 9, size=rgb.shape)
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")

    # --- good files ---------------------------------------------------------------------------
    big = photo(1600, 1200)
    big.paste((255, 0, 0), (0, 0, 200, 200))  # red stored top-left → shown top-right
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 12 \x00"  # padded, as cameras do
    exif.get_ifd(0x8769).update({0x9003: "2021:06:01 12:34:56", 0x9011: "+02:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 12.5), 3: "W", 4: (4.0, 53.0, 30.0)})
    save(BIG_JPEG, big, "JPEG", size=(1200, 1600), quality=85, exif=exif.tobytes())

    grey = Image.fromarray(np.tile(np.arange(0, 240, 2, dtype=np.uint8), (80, 1)), "L")
    save("camera/grey.jpg", grey, "JPEG", quality=90)
    save("camera/cmyk.jpg", Image.new("CMYK", (100, 60), (0, 255, 255, 0)), "JPEG")

    palette = Image.new("P", (96, 64), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.paste(0, (0, 0, 48, 64))  # left half uses index 0, which is transparent
    save("png/palette.png", palette, "PNG", transparency=0)
    alpha = photo(80, 80).convert("RGBA")
    alpha.paste((0, 0, 0, 0), (0, 0, 40, 40))  # transparent black corner → white
    save("png/alpha.png", alpha, "PNG")

    save("web/photo.webp", photo(160, 120), "WEBP", quality=70)
    save("misc/photo.bmp", photo(90, 70), "BMP")
    frames = [Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 0, 255))]
    save("misc/animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)
    gradient = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (32, 1))
    save(GRADIENT_TIFF, Image.fromarray(gradient), "TIFF")
    save("misc/png_named.jpg", photo(70, 50), "PNG")  # wrong extension, still a photo

    from pillow_heif import register_heif_opener

    register_heif_opener()
    save("phone/IMG_0002.heic", photo(120, 90), "HEIF", quality=50)

    upper_exif = Image.Exif()
    upper_exif[0x010F] = "  Canon\x00\x00"
    upper_exif[0x0132] = "2019:12:24 18:00:00"
    save("UPPER/PHOTO.JPG", photo(100, 75), "JPEG", exif=upper_exif.tobytes())
    save('names/café photo\'s "best".jpg', photo(64, 64), "JPEG")
    save("names/日本 写真.png", photo(72, 48), "PNG")
    save(f"deep/{DEEP_DIRS}/deep.jpg", photo(66, 66), "JPEG")

    save("dupes/one.jpg", photo(88, 66), "JPEG")
    for copy in ("dupes/two.jpg", "dupes/sub/three.jpg"):
        (root / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "dupes/one.jpg", root / copy)
        sizes[copy] = sizes["dupes/one.jpg"]

    # --- bad files ------------------------------------------------------------------------------
    noisy = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", quality=90)
    put("bad/truncated.jpg", buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    put("bad/empty.jpg", b"")
    put("bad/text.jpg", b"This is a shopping list, not a photo.\nmilk\neggs\n")
    put("bad/random.png", b"\x00garbage" + rng.bytes(4096))
    put("bad/bomb.png", _png_header_only(100_000, 100_000))
    os.symlink("does-not-exist.jpg", root / "bad/dangling.jpg")
    bad = {
        "bad/truncated.jpg": "truncated file",
        "bad/empty.jpg": "empty file",
        "bad/text.jpg": "not an image",
        "bad/random.png": "not an image",
        "bad/bomb.png": "image too large",
        "bad/dangling.jpg": "dangling symlink",
    }

    # --- things that must not show up -----------------------------------------------------------
    save(".hidden/secret.jpg", photo(64, 64), "JPEG")
    save("camera/.thumb.jpg", photo(64, 64), "JPEG")
    put("notes.txt", b"not an image, and not named like one\n")
    os.symlink("png", root / "album_link")  # same folder twice: walked once, under png/
    os.symlink("..", root / "deep/d1/loop")  # loop back to deep/
    ignored = [".hidden", "camera/.thumb.jpg", "notes.txt", "album_link", "deep/d1/loop"]
    for rel in list(sizes):
        if any(rel == skip or rel.startswith(skip + "/") for skip in ignored):
            del sizes[rel]

    return {"good": sorted(sizes), "bad": bad, "ignored": ignored, "sizes": sizes}


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height: a decompression bomb without the bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# The variants of one photo that `make_duplicate_set` writes: each must be grouped with it.
DUPLICATE_VARIANTS = ("resized", "recompressed", "cropped", "brightened", "burst")


def make_duplicate_set(
    root: Path, samples: list[Path], lookalikes: int = 8, phone_from: Path | None = None
) -> dict:
    """Near-duplicates (issue 22 §2) under `root`: for each photo of `samples` (and, when
    `phone_from` is given, a 4000×3000 "phone" JPEG upscaled from it, under phone/) the original
    plus one file per DUPLICATE_VARIANTS kind; and `lookalikes` distinct synthetic scenes of
    shapes on plain backgrounds (indexer/train/synthetic.py), alike to a perceptual hash and
    never to be grouped.

    Returns {"groups": {original relative path: [variant relative paths]}, "distinct": [relative
    paths of the look-alike scenes]}. Deterministic.
    """
    from PIL import ImageEnhance

    from indexer.train.synthetic import generate_scenes

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(22)
    groups: dict[str, list[str]] = {}

    def save(rel: str, im: Image.Image, quality: int = 92) -> str:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im.convert("RGB").save(path, format="JPEG", quality=quality)
        return rel

    originals = [(Path(s).stem, Image.open(s).convert("RGB")) for s in samples]
    if phone_from is not None:
        phone = Image.open(phone_from).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
        originals.append(("phone", phone))
    for stem, im in originals:
        w, h = im.size
        base = save(f"{stem}/original.jpg", im)
        cut = 0.035  # 7 % off each dimension
        box = (round(w * cut), round(h * cut), round(w * (1 - cut)), round(h * (1 - cut)))
        dx, dy = max(2, w // 80), max(2, h // 120)  # a hand moving between burst frames
        burst = np.asarray(im.crop((dx, dy, w, h)).resize((w, h)), dtype=np.int16)
        burst = burst + rng.integers(-6, 7, burst.shape)
        variants = {
            "resized": im.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
            "recompressed": im,
            "cropped": im.crop(box),
            "brightened": ImageEnhance.Brightness(im).enhance(1.3),
            "burst": Image.fromarray(np.clip(burst, 0, 255).astype(np.uint8)),
        }
        groups[base] = [
            save(f"{stem}/{kind}.jpg", variant, quality=35 if kind == "recompressed" else 92)
            for kind, variant in variants.items()
        ]
    distinct = []
    scenes = generate_scenes(lookalikes, seed=22, size=256, layout="grid")
    for i, scene in enumerate(scenes):
        distinct.append(save(f"lookalike/scene{i:02d}.jpg", scene.image))
    return {"groups": groups, "distinct": distinct}

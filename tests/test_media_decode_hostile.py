"""indexer.media.decode for hostile files: EXIF control characters, FIFOs and devices, header
checks, the pixel cap and strip-wise conversion (memory)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.config import Settings, auto_max_pixels
from indexer.errors import BadImageError
from indexer.media import decode
from indexer.media.decode import check_header, decode_image
from indexer.media.exif import clean_text

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------- EXIF control characters
def test_exif_strings_lose_their_control_characters(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Canon\r=1+1"  # a CSV row split + formula, if kept
    exif[0x0110] = "EOS\x1b]0;pwned\x07 5D\nGPJ"  # a terminal title escape, a line break
    exif.get_ifd(0x8769).update({0x9003: "2020:01:02 03:04:05", 0x9011: "+01:00\r"})
    path = tmp_path / "evil.jpg"
    Image.new("RGB", (40, 30)).save(path, exif=exif.tobytes())

    decoded = decode_image(path)

    assert decoded.camera_make == "Canon =1+1"
    assert decoded.camera_model == "EOS ]0;pwned 5D GPJ"
    assert decoded.taken_at == "2020-01-02T03:04:05+01:00"
    for text in (decoded.camera_make, decoded.camera_model, decoded.taken_at):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)


def test_clean_text_keeps_ordinary_unicode():
    assert clean_text("Fujifilm X-T3 é 写真") == "Fujifilm X-T3 é 写真"
    assert clean_text("a\x00b\x85c\u2066d") == "a b c d"


# ------------------------------------------------------------------------------ FIFOs, devices
def _in_thread(fn, timeout: float = 5.0):
    """Run fn() in a thread; fail instead of hanging the test run when it blocks."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    return t.is_alive(), box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("call", [decode_image, check_header])
def test_a_fifo_is_refused_at_once_not_read(tmp_path, call):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    try:
        blocked, box = _in_thread(lambda: call(fifo))
    finally:
        # Unblock a reader stuck in open() (before the fix) so the thread can end.
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    assert not blocked, "decoding a FIFO blocked"
    err = box.get("error")
    assert isinstance(err, BadImageError)
    assert err.reason == "not a regular file (named pipe)"
    assert err.path == str(fifo)


def test_devices_and_folders_are_refused_by_kind(tmp_path):
    with pytest.raises(BadImageError, match=r"not a regular file \(character device\)"):
        decode_image("/dev/zero")  # would never end if read
    with pytest.raises(BadImageError, match=r"not a regular file \(folder\)"):
        decode_image(tmp_path)
    link = tmp_path / "dev.jpg"
    link.symlink_to("/dev/zero")  # a link to a device is a device
    with pytest.raises(BadImageError, match=r"not a regular file \(character device\)"):
        check_header(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_caption_command_names_the_fifo_and_goes_on(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(good)
    env = {"IMGCAP_OFFLINE": "1", "IMGCAP_MODELS_DIR": str(tmp_path / "m")}
    args = ["caption", str(fifo), str(good), "--model", str(tiny_model_dir), "--json"]
    blocked, box = _in_thread(lambda: CliRunner().invoke(app, args, env=env), timeout=60)
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    assert not blocked, "imgcap caption blocked on a FIFO"
    out = box["value"].stdout
    assert str(fifo) in out and "not a regular file (named pipe)" in out
    assert str(good) in out


# ------------------------------------------------------------------------------- header checks
def test_a_huge_sparse_non_image_is_refused_from_its_header(tmp_path):
    fake = tmp_path / "huge.jpg"
    with open(fake, "wb") as f:
        f.truncate(20 * 1024**3)  # 20 GB of holes: reading it all takes minutes
    t = time.monotonic()
    with pytest.raises(BadImageError, match=r"not an image \(unrecognised format\)"):
        check_header(fake)
    assert time.monotonic() - t < 2.0


def test_header_check_refuses_over_the_cap_and_empty_files(tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (2000, 1000)).save(big)
    with pytest.raises(BadImageError, match=r"image too large \(2000000 pixels > cap 1999999\)"):
        check_header(big, max_pixels=1_999_999)
    check_header(big, max_pixels=2_000_000)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BadImageError, match="empty file"):
        check_header(empty)


def test_a_cap_above_pillows_guard_is_the_one_that_applies(tmp_path, monkeypatch):
    # Pillow refuses images over 2 × MAX_IMAGE_PIXELS by itself; a user's cap wins over it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    path = tmp_path / "wide.png"
    Image.new("L", (1000, 500)).save(path)  # 500,000 pixels: 5× Pillow's guard
    decoded = decode_image(path, max_pixels=600_000)
    assert (decoded.width, decoded.height) == (1000, 500)


# ------------------------------------------------------------------------ the cap is a setting
def test_max_megapixels_setting_and_the_memory_rule():
    assert Settings(max_megapixels=50).max_pixels_for(workers=16) == 50_000_000
    gib = 1024**3
    # half of 16 GiB over 4 workers at 8 bytes a pixel = 268 MP → the 120 MP ceiling
    assert auto_max_pixels(4, 16 * gib) == 120_000_000
    # half of 4 GiB over 8 workers at 8 bytes a pixel = 33.5 MP
    assert auto_max_pixels(8, 4 * gib) == int(4 * gib / 2 / 8 / 8 / 1e6 * 1e6)
    # crowded: never below a 24 MP photo
    assert auto_max_pixels(64, 2 * gib) == 24_000_000
    assert auto_max_pixels(4, None) == 120_000_000  # unknown memory: the historical cap
    auto = Settings().max_pixels_for(workers=2)
    assert 24_000_000 <= auto <= 120_000_000


# ------------------------------------------------------------------- strip-wise conversion
@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "PA", "CMYK", "I;16", "L", "1", "YCbCr"])
def test_strip_conversion_gives_the_pixels_of_a_whole_conversion(mode):
    rng = np.random.default_rng(3)
    rgba = Image.fromarray(rng.integers(0, 256, (203, 157, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        data = rng.integers(0, 65536, (203, 157), dtype=np.uint16)
        im = Image.frombytes("I;16", (157, 203), data.astype("<u2").tobytes())
    elif mode == "P":
        im = rgba.convert("RGB").quantize(64)
        im.info["transparency"] = 3
    elif mode == "PA":
        im = rgba.convert("PA")
    else:
        im = rgba.convert(mode)
    factor = min(im.size) // 50
    whole = decode._to_rgb(im).reduce(factor)
    strips = decode._shrink_to_rgb(im, 50, strip_pixels=157 * 9)  # many strips, a partial last
    assert strips.mode == "RGB" and strips.size == whole.size
    assert np.array_equal(np.asarray(strips), np.asarray(whole))


_PEAK = """
import sys
from PIL import Image
sys.path.insert(0, {root!r})
from indexer.media.decode import decode_image

def hwm():  # peak resident KiB of this process image (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

# Warm up on a small image of the same kind (imports, decoder set-up), then measure: the
# high-water mark only rises, so nothing large may be decoded before `base`.
Image.new("RGBA", (300, 300)).save({small!r})
decode_image({small!r})
base = hwm()
decoded = decode_image({path!r})
print(hwm() - base, min(decoded.image.size))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_large_rgba_png_decodes_without_full_size_rgba_copies(tmp_path):
    # 16 MP RGBA: Pillow's loaded image alone is 64 MB. Before strips, convert + composite on
    # white made three more full-size copies (peak ~4.5× the loaded image).
    w, h = 4000, 4000
    path = tmp_path / "logo.png"
    Image.new("RGBA", (w, h), (10, 200, 30, 128)).save(path)
    code = _PEAK.format(root=str(ROOT), path=str(path), small=str(tmp_path / "small.png"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_kib = int(out.stdout.split()[0])
    loaded = w * h * 4
    assert peak_kib * 1024 < 1.6 * loaded, f"peak {peak_kib // 1024} MB"
    assert 224 <= int(out.stdout.split()[1]) < 448  # reduced, but not below the model input


def test_an_oriented_tiff_is_turned_once(tmp_path):
    # Pillow's TIFF plugin applies the orientation tag itself; decode must not turn it again.
    im = Image.new("RGB", (400, 200), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 100, 100))  # blue stored top-left → shown top-right
    path = tmp_path / "turned.tif"
    im.save(path, tiffinfo={0x0112: 6})
    decoded = decode_image(path, min_side=0)
    assert (decoded.width, decoded.height) == (200, 400)
    assert decoded.image.size == (200, 400)
    assert decoded.image.getpixel((199, 0)) == (0, 0, 255)
    assert decoded.image.getpixel((0, 0)) == (255, 0, 0)


def test_heic_decodes_from_an_embedded_thumbnail_that_covers_the_model_input(tmp_path):
    decode._register_heif()
    path = tmp_path / "phone.heic"
    Image.new("RGB", (2000, 1500), (10, 200, 30)).save(path, quality=50, thumbnails=[160, 320])
    decoded = decode_image(path)
    assert (decoded.width, decoded.height) == (2000, 1500)  # the photo's own size
    assert decoded.image.size == (320, 240)  # the 160 thumbnail would be below 224
    assert np.allclose(np.asarray(decoded.image).reshape(-1, 3).mean(0), (10, 200, 30), atol=6)
    # Without a thumbnail that covers the model input, the full image is decoded and reduced.
    assert decode_image(path, min_side=300).image.size == (400, 300)  # 1500 // 300 = 5


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_search_like_a_fifo_is_refused_not_waited_on(tmp_path):
    # `search --like` goes through decode_image too (search.query).
    from search_fixtures import Photo, fake_loader, make_db

    from search.query import SearchRequest, search

    db = make_db(tmp_path / "p", [Photo("a.png", "a red car")], tmp_path / "p.db")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    blocked, box = _in_thread(
        lambda: search(db, SearchRequest(like=fifo, limit=3), Settings(), fake_loader())
    )
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    assert not blocked, "search --like blocked on a FIFO"
    assert isinstance(box.get("error"), BadImageError)
    assert str(box["error"]) == f"{fifo}: not a regular file (named pipe)"


def test_header_check_leaves_the_warning_filters_alone(tmp_path, monkeypatch):
    # It runs in an index run's hashing threads; catch_warnings is not thread-safe and could
    # leave every warning of the process silenced.
    import warnings

    def refuse(*a, **kw):
        raise AssertionError("check_header used warnings.catch_warnings")

    path = tmp_path / "ok.png"
    Image.new("RGB", (30, 20)).save(path)
    monkeypatch.setattr(warnings, "catch_warnings", refuse)
    check_header(path)


# ------------------------------------------------------------------- WebP: libwebp's scaler
def _gradient(w: int, h: int, alpha: bool = False) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = [x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)]
    if alpha:
        rgb.append(np.full_like(x, 160))
    return Image.fromarray(np.stack(rgb, -1).astype(np.uint8), "RGBA" if alpha else "RGB")


@pytest.mark.parametrize("alpha", [False, True])
def test_a_large_webp_is_scaled_by_libwebp_like_a_reduce(tmp_path, monkeypatch, alpha):
    from indexer.media import webp

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif[0x010F] = "Pixel\r"
    path = tmp_path / "big.webp"
    _gradient(1800, 1200, alpha).save(path, quality=95, exif=exif.tobytes())
    calls = []
    real = webp.decode_scaled
    monkeypatch.setattr(webp, "decode_scaled", lambda d, f: calls.append(f) or real(d, f))
    decoded = decode_image(path)
    assert calls == [1200 // 224]  # = 5
    assert (decoded.width, decoded.height) == (1200, 1800)
    assert decoded.camera_make == "Pixel"
    assert decoded.image.size == (240, 360)  # 1200/5 × 1800/5, turned
    monkeypatch.setattr(webp, "_libwebp", lambda: None)  # Pillow's full decode + reduce
    pillow = decode_image(path)
    assert pillow.image.size == decoded.image.size
    diff = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(pillow.image, np.int16))
    assert diff.mean() < 2.0, diff.mean()


def test_webps_that_libwebp_scaling_does_not_cover_still_decode(tmp_path):
    # animated: the first frame through Pillow
    frames = [Image.new("RGB", (900, 600), c) for c in ((200, 0, 0), (0, 0, 200))]
    anim = tmp_path / "anim.webp"
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image(anim)
    assert decoded.image.size == (450, 300)  # 600 // 224 = 2: reduced by 2
    assert np.asarray(decoded.image)[..., 0].mean() > 150
    # truncated: libwebp gives up, Pillow words the reason
    whole = tmp_path / "whole.webp"
    _gradient(1200, 900).save(whole, quality=90)
    cut = tmp_path / "cut.webp"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BadImageError, match="truncated file"):
        decode_image(cut)


_WEBP_PEAK = _PEAK.replace('Image.new("RGBA", (300, 300))', 'Image.new("RGB", (900, 900))')


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_large_webp_decodes_without_a_full_size_canvas(tmp_path):
    w, h = 5000, 4000  # 20 MP: Pillow's animation decoder peaked at ~310 MB for this
    path = tmp_path / "big.webp"
    Image.new("RGB", (w, h), (10, 200, 30)).save(path, quality=50)
    small = tmp_path / "small.webp"
    code = _WEBP_PEAK.format(root=str(ROOT), path=str(path), small=str(small))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_kib = int(out.stdout.split()[0])
    assert peak_kib * 1024 < w * h, f"peak {peak_kib // 1024} MB"  # < 1 byte a pixel
    assert 224 <= int(out.stdout.split()[1]) < 448


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_file_larger_than_any_image_under_the_cap_is_refused_unread(tmp_path, fmt):
    # A real image header followed by 3 GB of holes: Pillow's WebP opener would read it all
    # into memory. max_pixels 1 MP allows files up to 8 MB + 256 MiB.
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, format=fmt)
    path = tmp_path / f"huge.{fmt.lower()}"
    with open(path, "wb") as f:
        f.write(buf.getvalue())
        f.truncate(3 * 10**9)
    for call in (check_header, decode_image):
        t = time.monotonic()
        with pytest.raises(BadImageError) as info:
            call(path, max_pixels=1_000_000)
        assert time.monotonic() - t < 2.0
        assert info.value.reason == (
            "file too large for an image under the pixel cap (3.0 GB > 0.3 GB)"
        )

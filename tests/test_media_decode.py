"""indexer.media.decode: every file kind becomes an oriented RGB image with metadata, or a
reason."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from photo_factory import BIG_JPEG, GRADIENT_TIFF, PHONE_EXIF, make_photo_folder
from PIL import Image, ImageFile

from indexer.errors import BadImageError
from indexer.media.decode import DecodedImage, decode_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("decode") / "photos"
    return root, make_photo_folder(root)


def pixel(decoded: DecodedImage, x: int, y: int) -> np.ndarray:
    return np.asarray(decoded.image, dtype=np.int16)[y, x]


def near(rgb, expected, tol: int = 24) -> bool:
    return bool(np.all(np.abs(np.asarray(rgb, dtype=np.int16) - expected) <= tol))


def test_every_good_file_decodes_to_rgb_with_its_oriented_size(photos):
    root, expected = photos
    for rel in expected["good"]:
        decoded = decode_image(root / rel)
        w, h = expected["sizes"][rel]
        assert decoded.image.mode == "RGB", rel
        assert (decoded.width, decoded.height) == (w, h), rel
        # The image keeps the oriented aspect and never goes below the model input size.
        assert (decoded.image.width >= decoded.image.height) == (w >= h), rel
        assert min(decoded.image.size) >= min(224, w, h), rel
        decoded.image.load()  # pixels are really there (no lazy file access after return)


def test_phone_jpeg_metadata_orientation_and_draft(photos):
    root, _ = photos
    decoded = decode_image(root / BIG_JPEG)
    assert (decoded.width, decoded.height) == (1200, 1600)  # stored 1600×1200, orientation 6
    assert decoded.taken_at == PHONE_EXIF["taken_at"]
    assert decoded.camera_make == PHONE_EXIF["camera_make"]
    assert decoded.camera_model == PHONE_EXIF["camera_model"]  # NUL/space padding stripped
    assert decoded.gps_lat == pytest.approx(PHONE_EXIF["gps_lat"], abs=1e-6)
    assert decoded.gps_lon == pytest.approx(PHONE_EXIF["gps_lon"], abs=1e-6)
    # Draft mode: 1200 // 224 = 5 → DCT scale 1/4 → 300×400 after rotation.
    assert decoded.image.size == (300, 400)
    # The red block stored top-left must be shown top-right after a 90° clockwise turn.
    assert near(pixel(decoded, 295, 5), (255, 0, 0), tol=40)
    assert not near(pixel(decoded, 5, 5), (255, 0, 0), tol=40)


@pytest.mark.parametrize("min_side", [1, 100, 224, 299, 300, 301, 600, 601, 1199, 1200, 5000])
def test_draft_keeps_short_side_at_least_min_side(photos, min_side):
    root, _ = photos
    decoded = decode_image(root / BIG_JPEG, min_side=min_side)
    w, h = decoded.image.size
    assert min(w, h) >= min(min_side, 1200)
    assert w < h  # still portrait
    if min_side <= 600:
        assert w * h <= 1200 * 1600 // 4  # actually reduced


def test_min_side_zero_gives_the_full_image(photos):
    root, _ = photos
    decoded = decode_image(root / BIG_JPEG, min_side=0)
    assert decoded.image.size == (1200, 1600)


def test_big_non_jpeg_is_box_reduced_but_not_below_min_side(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (1000, 700), (10, 120, 200)).save(path)
    decoded = decode_image(path, min_side=224)
    assert (decoded.width, decoded.height) == (1000, 700)
    assert decoded.image.size == (334, 234)  # reduce(3): ceil(1000 / 3) × ceil(700 / 3)
    assert near(pixel(decoded, 100, 100), (10, 120, 200), tol=1)


def test_date_fallback_and_padded_make(photos):
    root, _ = photos
    decoded = decode_image(root / "UPPER/PHOTO.JPG")
    assert decoded.taken_at == "2019-12-24T18:00:00"  # IFD0 DateTime when no DateTimeOriginal
    assert decoded.camera_make == "Canon"
    assert decoded.camera_model is None
    assert decoded.gps_lat is None and decoded.gps_lon is None


def test_colour_conversions(photos):
    root, _ = photos
    grey = decode_image(root / "camera/grey.jpg")
    arr = np.asarray(grey.image, dtype=np.int16)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    assert arr[..., 0].max() - arr[..., 0].min() > 200  # the gradient survived

    assert near(pixel(decode_image(root / "camera/cmyk.jpg"), 50, 30), (255, 0, 0), tol=30)

    palette = decode_image(root / "png/palette.png")
    assert near(pixel(palette, 10, 10), (255, 255, 255), tol=0)  # transparent → white
    assert near(pixel(palette, 80, 10), (0, 200, 0), tol=0)

    alpha = decode_image(root / "png/alpha.png")
    assert near(pixel(alpha, 5, 5), (255, 255, 255), tol=0)  # transparent black → white
    assert not near(pixel(alpha, 70, 70), (255, 255, 255), tol=10)

    gif = decode_image(root / "misc/animated.gif")
    assert near(pixel(gif, 32, 24), (255, 0, 0), tol=0)  # first frame, not the blue second


def test_16_bit_tiff_keeps_its_contrast(photos):
    root, _ = photos
    decoded = decode_image(root / GRADIENT_TIFF)
    row = np.asarray(decoded.image)[16, :, 0].astype(int)  # (256,)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert abs(row[128] - 128) <= 1
    assert len(np.unique(row)) > 200  # a real ramp, not a few clipped levels


def test_16_bit_png_keeps_its_contrast(tmp_path):
    path = tmp_path / "deep.png"
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(path)
    row = np.asarray(decode_image(path).image)[0, :, 1].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) == 64  # clipping at 255 would flatten most of the ramp


def test_heic(photos):
    root, _ = photos
    decoded = decode_image(root / "phone/IMG_0002.heic")
    assert decoded.image.mode == "RGB" and decoded.image.size == (120, 90)


def test_hostile_files_give_the_expected_reason(photos):
    root, expected = photos
    for rel, reason in expected["bad"].items():
        with pytest.raises(BadImageError) as info:
            decode_image(root / rel)
        assert reason in info.value.reason, (rel, info.value.reason)
        assert info.value.path == str(root / rel)


def test_pixel_cap_is_checked_before_decoding(photos):
    root, _ = photos
    with pytest.raises(BadImageError, match=r"image too large \(1920000 pixels > cap 1000000\)"):
        decode_image(root / BIG_JPEG, max_pixels=1_000_000)
    decode_image(root / BIG_JPEG, max_pixels=1200 * 1600)  # exactly at the cap is fine


def test_missing_directory_and_unreadable(tmp_path):
    with pytest.raises(BadImageError, match="file not found"):
        decode_image(tmp_path / "gone.jpg")
    with pytest.raises(BadImageError, match="not a regular file"):
        decode_image(tmp_path)
    if os.geteuid() == 0:
        return  # root reads anything: chmod cannot produce "permission denied" here
    locked = tmp_path / "locked.jpg"
    Image.new("RGB", (32, 32)).save(locked)
    locked.chmod(0)
    with pytest.raises(BadImageError, match="permission denied"):
        decode_image(locked)


def test_truncated_webp_and_png_are_reported_as_truncated(tmp_path):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for fmt in ("WEBP", "PNG", "TIFF"):
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        path = tmp_path / f"cut.{fmt.lower()}"
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        with pytest.raises(BadImageError, match="truncated file"):
            decode_image(path)


def test_corrupted_files_raise_only_bad_image_error(tmp_path):
    # Cut and scribble over real files at many places: each must decode or be a BadImageError.
    rng = np.random.default_rng(7)
    im = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"):
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        data = buf.getvalue()
        for i in range(8):
            broken = bytearray(data)
            start = int(rng.integers(0, len(data)))
            broken[start : start + 16] = rng.bytes(16)
            if i % 2:
                broken = broken[: int(rng.integers(1, len(data)))]
            path = tmp_path / f"broken{i}.{fmt.lower()}"
            path.write_bytes(bytes(broken))
            try:
                decoded = decode_image(path)
            except BadImageError as exc:
                assert exc.reason
            else:
                assert decoded.image.mode == "RGB"


def test_broken_exif_gives_no_metadata_but_a_good_image(tmp_path):
    exif = Image.Exif()
    exif[0x0132] = "0000:00:00 00:00:00"  # what some cameras write when the clock is unset
    exif[0x010F] = "   "
    exif.get_ifd(0x8825).update({1: "N", 2: (0.0, 0.0), 3: "X"})  # no longitude
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path, exif=exif.tobytes())
    decoded = decode_image(path)
    assert (decoded.taken_at, decoded.camera_make, decoded.gps_lat, decoded.gps_lon) == (
        None,
        None,
        None,
        None,
    )
    assert decoded.image.size == (40, 30)


def test_truncated_images_are_never_loaded_by_default():
    # Our policy relies on Pillow refusing truncated data; nobody may switch that on globally.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_multi_picture_jpeg_uses_draft_and_first_picture(tmp_path):
    # Many phone JPEGs carry a second picture (depth map, preview) and open as MPO.
    path = tmp_path / "mpo.jpg"
    pictures = [Image.new("RGB", (1600, 1200), c) for c in ((200, 0, 0), (0, 0, 200))]
    pictures[0].save(path, format="MPO", save_all=True, append_images=pictures[1:])
    decoded = decode_image(path)
    assert decoded.image.size == (400, 300)  # DCT scale 1/4; reduce() alone would give 320×240
    assert near(pixel(decoded, 10, 10), (200, 0, 0), tol=10)


def test_sample_photos_decode_and_are_all_documented():
    samples = Path(__file__).resolve().parent.parent / "data" / "samples"
    sources = (samples / "SOURCES.md").read_text(encoding="utf-8")
    files = sorted(samples.glob("*.jpg"))
    assert len(files) >= 4
    for path in files:
        assert f"`{path.name}`" in sources, f"{path.name} has no entry in SOURCES.md"
        assert decode_image(path).image.mode == "RGB"
    cat = decode_image(samples / "chelsea.jpg")
    assert (cat.width, cat.height) == (451, 300)  # stored 300×451 with EXIF orientation 6
    assert cat.taken_at == "2012-05-19T14:03:00+02:00" and cat.camera_make == "imgcap sample"
    assert cat.gps_lat == pytest.approx(-33.925) and cat.gps_lon == pytest.approx(
        18.42389, abs=1e-4
    )

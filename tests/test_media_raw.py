"""RAW camera files: decoded through their embedded preview (Pillow for TIFF-based files and RAF,
rawpy when the `raw` extra is installed), refused with a counted reason when neither can."""

from __future__ import annotations

import io
import struct
import sys
import types

import numpy as np
import pytest
from PIL import Image

from indexer.errors import BadImageError
from indexer.media.decode import check_header, decode_image
from indexer.media.raw import RAW_NEEDS_EXTRA


@pytest.fixture(autouse=True)
def no_rawpy(monkeypatch):
    """Whether or not rawpy is installed here, these tests see it missing (None in sys.modules
    makes `import rawpy` raise ImportError); the rawpy test puts a fake in."""
    monkeypatch.setitem(sys.modules, "rawpy", None)


def _jpeg(size, colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# Minimal little-endian TIFF writer: each IFD is {tag: (type, values)}; a value ("blob", i)
# is replaced by the file offset of blobs[i], ("ifd", j) by the offset of IFD j.
_TYPES = {2: ("s", 1), 3: ("H", 2), 4: ("I", 4)}


def _tiff(ifds: list[dict], blobs: list[bytes], chain: list[int]) -> bytes:
    """IFDs in `chain` are linked from the header (IFD0, IFD1, ...); the others are SubIFDs."""
    blob_at, pos = [], 8
    for b in blobs:
        blob_at.append(pos)
        pos += len(b) + (len(b) & 1)
    sizes = []
    for ifd in ifds:
        extra = sum(_nbytes(t, v) for t, v in ifd.values() if _nbytes(t, v) > 4)
        sizes.append(2 + 12 * len(ifd) + 4 + extra + (extra & 1))
    ifd_at = []
    for size in sizes:
        ifd_at.append(pos)
        pos += size

    def resolve(v):
        if isinstance(v, tuple) and v[0] == "blob":
            return blob_at[v[1]]
        if isinstance(v, tuple) and v[0] == "ifd":
            return ifd_at[v[1]]
        return v

    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at[chain[0]]))
    for b in blobs:
        out += b + b"\x00" * (len(b) & 1)
    for j, ifd in enumerate(ifds):
        nxt = chain[chain.index(j) + 1] if j in chain and chain.index(j) + 1 < len(chain) else None
        entries, extra = bytearray(), bytearray()
        extra_at = ifd_at[j] + 2 + 12 * len(ifd) + 4
        for tag in sorted(ifd):
            typ, values = ifd[tag]
            if typ == 2:
                raw = values.encode() + b"\x00"
                count = len(raw)
            else:
                values = [resolve(v) for v in values]
                raw = struct.pack("<" + _TYPES[typ][0] * len(values), *values)
                count = len(values)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\x00")
            else:
                field = struct.pack("<I", extra_at + len(extra))
                extra += raw + b"\x00" * (len(raw) & 1)
            entries += struct.pack("<HHI", tag, typ, count) + field
        out += struct.pack("<H", len(ifd)) + entries
        out += struct.pack("<I", ifd_at[nxt] if nxt is not None else 0) + extra
    return bytes(out)


def _nbytes(typ, values) -> int:
    if typ == 2:
        return len(values) + 1
    return _TYPES[typ][1] * len(values)


def _nef_like(preview_size=(640, 480)) -> bytes:
    """IFD0: a 16×12 RGB thumbnail and the camera's tags; SubIFD A: a JPEG preview (compression
    7, one strip); SubIFD B: the 16-bit CFA sensor data, which must never be taken."""
    thumb = np.zeros((12, 16, 3), np.uint8)
    thumb[..., 2] = 255  # blue: the wrong picture if chosen
    jpeg = _jpeg(preview_size, (200, 30, 30))
    cfa = np.arange(32 * 24, dtype="<u2").tobytes()
    ifd0 = {
        254: (4, [1]),
        256: (3, [16]),
        257: (3, [12]),
        258: (3, [8, 8, 8]),
        259: (3, [1]),
        262: (3, [2]),
        271: (2, "NIKON\rCORPORATION"),
        272: (2, "NIKON Z 6"),
        273: (4, [("blob", 0)]),
        274: (3, [6]),  # orientation: rotate 90° clockwise
        277: (3, [3]),
        278: (3, [12]),
        279: (4, [len(thumb.tobytes())]),
        330: (4, [("ifd", 1), ("ifd", 2)]),
    }
    preview = {
        254: (4, [1]),
        256: (3, [preview_size[0]]),
        257: (3, [preview_size[1]]),
        258: (3, [8, 8, 8]),
        259: (3, [7]),
        262: (3, [6]),
        273: (4, [("blob", 1)]),
        277: (3, [3]),
        279: (4, [len(jpeg)]),
    }
    sensor = {
        254: (4, [0]),
        256: (3, [32]),
        257: (3, [24]),
        258: (3, [16]),
        259: (3, [1]),
        262: (3, [32803]),
        273: (4, [("blob", 2)]),
        277: (3, [1]),
        279: (4, [len(cfa)]),
    }
    return _tiff([ifd0, preview, sensor], [thumb.tobytes(), jpeg, cfa], chain=[0])


def test_tiff_based_raw_uses_its_largest_jpeg_preview_without_rawpy(tmp_path):
    path = tmp_path / "DSC_0001.NEF"
    path.write_bytes(_nef_like())
    check_header(path)
    decoded = decode_image(path)
    # The 640×480 JPEG preview, turned by IFD0's orientation 6; not the blue thumbnail.
    assert (decoded.width, decoded.height) == (480, 640)
    assert decoded.image.mode == "RGB" and min(decoded.image.size) >= 224
    r, g, b = np.asarray(decoded.image).reshape(-1, 3).mean(0)
    assert r > 150 and b < 80
    assert decoded.camera_make == "NIKON CORPORATION"  # from the RAW's own tags, cleaned
    assert decoded.camera_model == "NIKON Z 6"


def test_dng_whose_first_page_is_the_rgb_preview_decodes_through_pillow(tmp_path):
    path = tmp_path / "IMG_0002.dng"
    preview = Image.new("RGB", (300, 200), (20, 180, 40))
    preview.save(path, format="TIFF", tiffinfo={50706: b"\x01\x04\x00\x00"})  # DNGVersion
    decoded = decode_image(path)
    assert (decoded.width, decoded.height) == (300, 200)
    assert np.allclose(np.asarray(decoded.image).reshape(-1, 3).mean(0), (20, 180, 40), atol=2)


def test_raf_preview_comes_from_its_header(tmp_path):
    jpeg = _jpeg((400, 300), (30, 30, 200))
    header = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\x00")
    data = header + struct.pack(">II", 100, len(jpeg))
    data = data.ljust(100, b"\x00") + jpeg + b"\x00" * 64
    path = tmp_path / "DSCF0003.RAF"
    path.write_bytes(data)
    decoded = decode_image(path)
    assert (decoded.width, decoded.height) == (400, 300)


@pytest.mark.parametrize(
    "name, data",
    [
        ("IMG_0004.CR3", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 200),
        ("P0005.RW2", b"IIU\x00\x18\x00\x00\x00" + b"\x00" * 200),
        # TIFF-based, but only sensor data: nothing Pillow can show
        ("sensor.nef", None),
    ],
)
def test_raw_without_a_usable_preview_needs_the_extra(tmp_path, name, data):
    if data is None:
        full = _nef_like()
        # Cut the file right after the thumbnail strip: IFDs unreadable, no preview left.
        data = full[:200]
    path = tmp_path / name
    path.write_bytes(data)
    check_header(path)  # a RAW container by its magic: the run decodes it (and counts why not)
    with pytest.raises(BadImageError) as info:
        decode_image(path)
    assert info.value.reason == RAW_NEEDS_EXTRA
    assert "pip install 'imgcap[raw]'" in RAW_NEEDS_EXTRA


def test_a_text_file_named_like_a_raw_is_not_an_image(tmp_path):
    path = tmp_path / "notes.cr2"
    path.write_text("shopping list")
    for call in (check_header, decode_image):
        with pytest.raises(BadImageError, match=r"not an image \(unrecognised format\)"):
            call(path)


def test_rawpy_route_when_the_extra_is_installed(tmp_path, monkeypatch):
    jpeg = _jpeg((600, 400), (240, 240, 20))

    class Raw:
        sizes = types.SimpleNamespace(flip=6, width=6000, height=4000)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def extract_thumb(self):
            return types.SimpleNamespace(format="jpeg", data=jpeg)

    fake = types.SimpleNamespace(
        imread=lambda path: Raw(),
        ThumbFormat=types.SimpleNamespace(JPEG="jpeg", BITMAP="bitmap"),
        LibRawNoThumbnailError=type("NoThumb", (Exception,), {}),
        LibRawUnsupportedThumbnailError=type("Unsupported", (Exception,), {}),
    )
    monkeypatch.setitem(sys.modules, "rawpy", fake)
    path = tmp_path / "IMG_0006.CR3"
    path.write_bytes(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 200)
    decoded = decode_image(path)
    assert (decoded.width, decoded.height) == (400, 600)  # LibRaw's flip 6 = orientation 6
    r, g, b = np.asarray(decoded.image).reshape(-1, 3).mean(0)
    assert r > 200 and g > 200 and b < 60

"""The pixel hash: the same for a photo whose metadata an editor rewrote, different when the
picture (its pixels or its EXIF orientation) changed, None for other formats and broken files."""

from __future__ import annotations

import io
import struct

from PIL import Image

from indexer.media.pixel_hash import pixel_hash
from indexer.media.walk import content_hash

XMP = (
    b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
    b" xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'/></x:xmpmeta>"
)
IPTC = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0b\x1c\x02\x19\x00\x07Grandma\x00"


def _picture(pixel: tuple[int, int, int] = (30, 30, 30)) -> Image.Image:
    im = Image.linear_gradient("L").resize((48, 32)).convert("RGB")
    im.putpixel((5, 5), pixel)
    return im


def _exif(orientation: int | None = None, make: str = "Cam") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()  # starts "Exif\0\0", as an APP1 segment does


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _with_jpeg_metadata(data: bytes, *segments: bytes) -> bytes:
    """`data` (a JPEG) with `segments` spliced in after SOI: its scan data byte for byte."""
    return data[:2] + b"".join(segments) + data[2:]


def _png(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_png_chunks(data: bytes, *chunks: bytes) -> bytes:
    """`data` (a PNG) with `chunks` before its IEND."""
    end = data.rindex(b"IEND") - 4
    return data[:end] + b"".join(chunks) + data[end:]


def _riff(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def _hashes(tmp_path, *files: bytes) -> list[str | None]:
    out = []
    for i, data in enumerate(files):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        out.append(pixel_hash(path))
    return out


def test_metadata_edits_keep_the_pixel_hash(tmp_path):
    jpeg = _jpeg(_picture())
    tagged = _with_jpeg_metadata(
        jpeg, _segment(0xE1, _exif(make="Other")), _segment(0xE1, XMP), _segment(0xED, IPTC)
    )
    commented = _with_jpeg_metadata(jpeg, _segment(0xFE, b"a comment"), _segment(0xE1, XMP))
    oriented_1 = _with_jpeg_metadata(jpeg, _segment(0xE1, _exif(orientation=1)))
    hashes = _hashes(tmp_path, jpeg, tagged, commented, oriented_1)
    assert hashes[0] is not None and len(hashes[0]) == 32
    assert set(hashes) == {hashes[0]}  # no Orientation counts as 1, as the decoder reads it
    assert content_hash(tmp_path / "f0") != content_hash(tmp_path / "f1")

    png = _png(_picture())
    edited = _with_png_chunks(
        png,
        _chunk(b"tEXt", b"Comment\x00hello"),
        _chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta/>"),
        _chunk(b"tIME", b"\x07\xea\x0c\x07\x0c\x00\x00"),
    )
    assert len(set(_hashes(tmp_path, png, edited))) == 1

    out = io.BytesIO()
    _picture().save(out, "WEBP", quality=80)
    bitstream = out.getvalue()[12:]  # the VP8 chunk of a simple WebP
    simple = _riff(bitstream)
    # An editor adding metadata turns a simple WebP into an extended one (VP8X, flags set).
    extended = _riff(
        _webp_chunk(b"VP8X", bytes((0x0C, 0, 0, 0)) + bytes((47, 0, 0, 31, 0, 0))),
        bitstream,
        _webp_chunk(b"EXIF", _exif(make="Other")[6:]),
        _webp_chunk(b"XMP ", XMP[29:]),
    )
    assert len(set(_hashes(tmp_path, simple, extended))) == 1
    assert _hashes(tmp_path, simple)[0] is not None


def test_new_pixels_or_a_new_orientation_change_it(tmp_path):
    jpeg = _jpeg(_picture())
    one_pixel = _jpeg(_picture(pixel=(250, 0, 0)))
    turned = _with_jpeg_metadata(jpeg, _segment(0xE1, _exif(orientation=6)))
    assert len(set(_hashes(tmp_path, jpeg, one_pixel, turned))) == 3

    png = _png(_picture())
    png_pixel = _png(_picture(pixel=(250, 0, 0)))
    png_turned = _with_png_chunks(png, _chunk(b"eXIf", _exif(orientation=8)[6:]))
    assert len(set(_hashes(tmp_path, png, png_pixel, png_turned))) == 3


def test_broken_containers_and_other_formats_give_none(tmp_path):
    jpeg = _jpeg(_picture())
    png = _png(_picture())
    out = io.BytesIO()
    _picture().save(out, "WEBP")
    webp = out.getvalue()
    gif, tiff = io.BytesIO(), io.BytesIO()
    _picture().save(gif, "GIF")
    _picture().save(tiff, "TIFF")
    broken = [
        jpeg[:40],  # cut inside the header segments
        b"\xff\xd8\xff\xd9",  # SOI, EOI: no image data
        jpeg[:2] + b"\xff\xdb\x00\x01" + jpeg[2:],  # a segment length below 2
        png[:60],  # cut inside a chunk
        png[: png.rindex(b"IEND") - 4],  # no IEND: truncated
        webp[:-3],  # the last chunk cut short
        gif.getvalue(),
        tiff.getvalue(),
        b"",
    ]
    assert _hashes(tmp_path, *broken) == [None] * len(broken)

"""The pixel hash: a BLAKE2b-128 digest of a photo's image data with its metadata left out, so a
file whose tags, keywords or description were edited (exiftool, digiKam, Lightroom) is known
to hold the same picture, and keeps its results and a person's caption without model work.

The container is parsed, never decoded (about the cost of the content hash, which reads the
same bytes; see `pixel_hash`). What is left out is only what an editor rewrites without
touching the picture:

- JPEG: APP1 (EXIF, XMP, extended XMP), APP13 (Photoshop IRB / IPTC) and COM segments. Every
  other header segment (quantisation and Huffman tables, frame header, ICC profile in APP2,
  Adobe APP14, JFIF) and everything from the first SOS to the end of the file are hashed;
- PNG: tEXt, zTXt, iTXt, tIME and eXIf chunks; every other chunk is hashed whole (CRC too);
- WebP: the EXIF and XMP chunks, the RIFF size and the VP8X chunk, which an editor adds or
  changes when it adds metadata (its alpha, ICC and animation flags repeat what the ALPH, ICCP
  and ANIM chunks, which are hashed, already say; an animation's canvas size is hashed).

The EXIF Orientation is part of the digest (absent counts as 1): an editor that changes it
changes what the photo shows, and the index turns the pixels by it.

Other formats (HEIC, TIFF, RAW, GIF, videos) give None: their metadata lives among the image
data, so any change to such a file counts as new pixels. So does a container that is truncated
or malformed before its image data: None, never an exception other than OSError.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import BinaryIO

_CHUNK = 1 << 20
_ORIENTATION = 0x0112

# JPEG markers: APP1, APP13 and COM segments hold metadata only.
_JPEG_SKIPPED = {0xE1, 0xED, 0xFE}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SKIPPED = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf"}
_WEBP_SKIPPED = {b"EXIF", b"XMP "}


class _Malformed(Exception):
    """The container ends or breaks before its image data."""


def pixel_hash(path: str | os.PathLike[str]) -> str | None:
    """Hex BLAKE2b-128 of the image data of the JPEG, PNG or WebP file at `path`, metadata
    left out (see the module docstring); None for other formats and malformed containers.
    OSError when the file cannot be read."""
    with open(path, "rb") as f:
        head = f.read(12)
        f.seek(0)
        try:
            if head[:3] == b"\xff\xd8\xff":
                return _jpeg(f)
            if head[:8] == _PNG_SIGNATURE:
                return _png(f)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(f)
        except _Malformed:
            return None
    return None


def _jpeg(f: BinaryIO) -> str:
    digest = hashlib.blake2b(b"jpeg", digest_size=16)
    orientation = None
    while True:
        byte = _read(f, 1)
        if byte != b"\xff":
            raise _Malformed
        marker = _read(f, 1)[0]
        while marker == 0xFF:  # fill bytes before a marker
            marker = _read(f, 1)[0]
        if marker == _SOS:
            digest.update(b"\xff\xda")
            _hash_rest(f, digest)
            break
        if marker == _EOI:
            raise _Malformed  # no image data at all
        if marker == _SOI or marker in _JPEG_STANDALONE:
            digest.update(bytes((0xFF, marker)))
            continue
        size_bytes = _read(f, 2)
        size = struct.unpack(">H", size_bytes)[0]
        if size < 2:
            raise _Malformed
        payload = _read(f, size - 2)
        if marker in _JPEG_SKIPPED:
            # The first EXIF segment is the one readers (Pillow, the decoder) take.
            if orientation is None and marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
                orientation = _orientation(payload)
            continue
        digest.update(bytes((0xFF, marker)) + size_bytes)
        digest.update(payload)
    _hash_orientation(digest, orientation)
    return digest.hexdigest()


def _png(f: BinaryIO) -> str:
    digest = hashlib.blake2b(b"png", digest_size=16)
    f.seek(len(_PNG_SIGNATURE))
    orientation = None
    while True:
        header = _read(f, 8)
        size, kind = struct.unpack(">I", header[:4])[0], header[4:]
        if kind in _PNG_SKIPPED:
            data = _read(f, size + 4)  # data + CRC
            if kind == b"eXIf" and orientation is None:
                orientation = _orientation(data[:-4])
            continue
        digest.update(header)
        _hash_exactly(f, size + 4, digest)
        if kind == b"IEND":
            _hash_rest(f, digest)
            break
    _hash_orientation(digest, orientation)
    return digest.hexdigest()


def _webp(f: BinaryIO) -> str:
    digest = hashlib.blake2b(b"webp", digest_size=16)
    f.seek(12)  # RIFF, its size (changes with the metadata), WEBP
    orientation = None
    canvas = b""
    animated = False
    while True:
        header = f.read(8)
        if not header:
            break
        if len(header) < 8:
            raise _Malformed
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        padded = size + (size & 1)
        if kind in _WEBP_SKIPPED or kind == b"VP8X":
            data = _read(f, padded)
            if kind == b"EXIF" and orientation is None:
                orientation = _orientation(data[:size])
            if kind == b"VP8X":
                canvas = data[4:10]  # canvas width - 1, height - 1 (24 bits each)
            continue
        animated = animated or kind == b"ANIM"
        digest.update(header)
        _hash_exactly(f, padded, digest)
    if animated:
        digest.update(b"canvas" + canvas)
    _hash_orientation(digest, orientation)
    return digest.hexdigest()


def _orientation(exif: bytes) -> int:
    """EXIF Orientation as the decoder reads it (Pillow): 1 when absent, unreadable or not one
    of the eight values."""
    from PIL import Image

    try:
        tags = Image.Exif()
        tags.load(exif)  # a leading "Exif\0\0" is accepted and skipped
        value = int(tags.get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF: the decoder turns nothing either
        return 1
    return value if 1 <= value <= 8 else 1


def _hash_orientation(digest, orientation: int | None) -> None:
    digest.update(b"orientation=%d" % (orientation or 1))


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Malformed
    return data


def _hash_exactly(f: BinaryIO, n: int, digest) -> None:
    # One reused buffer, as walk.content_hash reads: no 1 MiB bytes object per read.
    buf = memoryview(bytearray(min(n, _CHUNK)))
    while n > 0:
        got = f.readinto(buf[: min(n, len(buf))])
        if not got:
            raise _Malformed
        digest.update(buf[:got])
        n -= got


def _hash_rest(f: BinaryIO, digest) -> None:
    buf = memoryview(bytearray(_CHUNK))
    while got := f.readinto(buf):
        digest.update(buf[:got])

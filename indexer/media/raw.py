"""RAW camera files (CR2, CR3, NEF, ARW, DNG, ORF, RW2, RAF), decoded through their preview.

Every camera stores a JPEG (or RGB) rendering next to the sensor data, usually 1-20 MP. A caption
needs 224 pixels, so the preview is far cheaper than demosaicing and shows what the camera
showed. Routes, the first that works:

1. rawpy (LibRaw; the optional `raw` extra): `extract_thumb()` gives the preview as JPEG bytes or
   an RGB bitmap; a file without one is demosaiced at half size.
2. Without rawpy, Pillow: TIFF-based RAW (DNG, and the CR2/NEF/ARW IFDs) give the largest 8-bit
   RGB/greyscale page or embedded JPEG among their IFDs and SubIFDs; RAF's header points at its
   JPEG. Sensor data (CFA, LinearRaw) is never taken for a preview.
3. Otherwise the file is refused with RAW_NEEDS_EXTRA, which the run counts like any reason.

Metadata (make, model, date, orientation) comes from the RAW's own TIFF tags when Pillow can read
them, else from the preview's EXIF. width/height are the preview's (oriented) size.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from PIL import Image, TiffImagePlugin

from indexer.errors import BadImageError

RAW_NEEDS_EXTRA = "RAW needs the raw extra: pip install 'imgcap[raw]'"

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_OTHER_MAGIC = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # ORF, ORF, ORF (big-endian), RW2
_RAF_MAGIC = b"FUJIFILMCCD-RAW"

# TIFF tags (TIFF 6.0 / DNG 1.6 specs)
_SUBIFDS = 330
_JPEG_OFFSET, _JPEG_LENGTH = 0x0201, 0x0202
_COMPRESSION, _PHOTOMETRIC, _BITS = 259, 262, 258
_STRIP_OFFSETS, _STRIP_COUNTS = 273, 279
_WIDTH, _HEIGHT = 256, 257
_SENSOR_PHOTOMETRIC = {32803, 34892}  # CFA, LinearRaw: sensor data, not a picture
_JPEG_COMPRESSION = {6, 7}  # old-style and new-style JPEG in a strip
# rawpy's sizes.flip (LibRaw) → EXIF orientation
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def extra_installed() -> bool:
    """Whether the `raw` extra (rawpy) can be imported."""
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True


def looks_like_raw(head: bytes) -> bool:
    """Whether the first bytes are those of a RAW container we know (TIFF, ORF, RW2, RAF, CR3)."""
    return (
        head[:4] in _TIFF_MAGIC
        or head[:4] in _OTHER_MAGIC
        or head.startswith(_RAF_MAGIC)
        or (head[4:8] == b"ftyp" and head[8:11] == b"crx")  # CR3: ISO base media, brand "crx "
    )


def open_preview(
    path: str, f: BinaryIO, min_side: int, max_pixels: int
) -> tuple[Image.Image, dict]:
    """(preview image, not yet loaded; metadata dict with "orientation") of the RAW file `path`,
    open as `f`. Raises BadImageError(path, reason)."""
    from indexer.media.exif import _metadata

    head = f.read(64)
    if not looks_like_raw(head):
        raise BadImageError(path, "not an image (unrecognised format)")
    f.seek(0)
    container_meta = None
    if head[:4] in _TIFF_MAGIC:
        try:
            container_meta = _metadata(Image.open(f))
        except Exception:  # noqa: BLE001 - the tags are a bonus; the preview is what counts
            container_meta = None
        f.seek(0)
    try:
        import rawpy
    except ImportError:
        rawpy = None
    if rawpy is not None:
        im, orientation = _rawpy_preview(path, rawpy, max_pixels)
    else:
        im = _pillow_preview(f, head)
        orientation = None
        if im is None:
            raise BadImageError(path, RAW_NEEDS_EXTRA)
    meta = container_meta or _metadata(im)
    if orientation is not None and meta.get("orientation", 1) == 1:
        meta["orientation"] = orientation
    return im, meta


def _rawpy_preview(path: str, rawpy, max_pixels: int) -> tuple[Image.Image, int | None]:
    import numpy as np

    try:
        with rawpy.imread(path) as raw:
            orientation = _FLIP_TO_ORIENTATION.get(getattr(raw.sizes, "flip", 0))
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                # The JPEG carries its own rotation when the camera wrote one.
                return Image.open(io.BytesIO(bytes(thumb.data))), orientation
            if thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
                return Image.fromarray(np.asarray(thumb.data, dtype=np.uint8)), orientation
            w, h = raw.sizes.width // 2, raw.sizes.height // 2
            if w * h > max_pixels:
                raise BadImageError(path, f"image too large ({w * h} pixels > cap {max_pixels})")
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            # postprocess already applied the flip
            return Image.fromarray(rgb), None
    except BadImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - LibRaw errors have many types: one bad file
        raise BadImageError(path, f"corrupt RAW file ({type(exc).__name__}: {exc})"[:160]) from None


def _pillow_preview(f: BinaryIO, head: bytes) -> Image.Image | None:
    """The largest preview Pillow can decode, or None."""
    if head.startswith(_RAF_MAGIC):
        return _raf_preview(f)
    if head[:4] not in _TIFF_MAGIC:
        return None
    best: tuple[int, Image.Image] | None = None
    for candidate in _tiff_candidates(f, head[:4]):
        try:
            pixels = candidate.size[0] * candidate.size[1]
        except Exception:  # noqa: BLE001
            continue
        if best is None or pixels > best[0]:
            best = (pixels, candidate)
    return best[1] if best else None


def _tiff_candidates(f: BinaryIO, prefix: bytes):
    """Pictures in a TIFF-based RAW: decodable 8-bit pages of the IFD chain, and JPEGs referenced
    by any IFD or SubIFD (JPEGInterchangeFormat tags, or a single JPEG-compressed strip)."""
    data = _read_all(f)
    try:
        tiff = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001
        return
    ifds = []
    for frame in range(getattr(tiff, "n_frames", 1)):
        try:
            tiff.seek(frame)
        except Exception:  # noqa: BLE001
            break
        tags = dict(tiff.tag_v2)
        ifds.append(tags)
        if _is_picture(tags) and tags.get(_COMPRESSION, 1) not in _JPEG_COMPRESSION:
            page = Image.open(io.BytesIO(data))
            page.seek(frame)
            yield page
    for tags in list(ifds):
        for offset in _as_tuple(tags.get(_SUBIFDS)):
            sub = _read_ifd(data, prefix, offset)
            if sub is not None:
                ifds.append(sub)
    for tags in ifds:
        jpeg = _jpeg_bytes(data, tags)
        if jpeg is not None:
            try:
                yield Image.open(io.BytesIO(jpeg), formats=["JPEG"])
            except Exception:  # noqa: BLE001 - a broken preview is just not a candidate
                continue


def _is_picture(tags: dict) -> bool:
    bits = _as_tuple(tags.get(_BITS, 8))
    return tags.get(_PHOTOMETRIC) not in _SENSOR_PHOTOMETRIC and all(b == 8 for b in bits)


def _jpeg_bytes(data: bytes, tags: dict) -> bytes | None:
    if _JPEG_OFFSET in tags and _JPEG_LENGTH in tags:
        start, length = int(tags[_JPEG_OFFSET]), int(tags[_JPEG_LENGTH])
    elif tags.get(_COMPRESSION) in _JPEG_COMPRESSION and _is_picture(tags):
        offsets, counts = _as_tuple(tags.get(_STRIP_OFFSETS)), _as_tuple(tags.get(_STRIP_COUNTS))
        if len(offsets) != 1 or len(counts) != 1:
            return None  # tiled or multi-strip JPEG: lossless sensor data in practice
        start, length = int(offsets[0]), int(counts[0])
    else:
        return None
    chunk = data[start : start + length]
    return chunk if chunk[:2] == b"\xff\xd8" else None


def _read_ifd(data: bytes, prefix: bytes, offset: int) -> dict | None:
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=prefix + b"\x00" * 4)
        buf = io.BytesIO(data)
        buf.seek(int(offset))
        ifd.load(buf)
        return dict(ifd)
    except Exception:  # noqa: BLE001 - a broken SubIFD is skipped, not fatal
        return None


def _raf_preview(f: BinaryIO) -> Image.Image | None:
    # RAF header: 84 bytes of magic/version/camera, then the JPEG's offset and length (big-endian).
    f.seek(84)
    raw = f.read(8)
    if len(raw) < 8:
        return None
    start, length = struct.unpack(">II", raw)
    f.seek(start)
    jpeg = f.read(length)
    if jpeg[:2] != b"\xff\xd8":
        return None
    return Image.open(io.BytesIO(jpeg), formats=["JPEG"])


def _read_all(f: BinaryIO) -> bytes:
    f.seek(0)
    return f.read()


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)

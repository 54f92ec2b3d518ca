"""One image: open → size check → draft/reduce → load → RGB → EXIF orientation, plus metadata.

`decode_image` runs in the decode worker processes, so it is written to be fast on 12 MP phone
photos and to turn every problem with one file into `BadImageError(path, reason)`; no other
exception type escapes for a bad file.

Decisions:
- Size: the returned image is made small early, because the model only needs `min_side` pixels
  on the short side and every pixel decoded, converted and sent back from a worker costs time.
  JPEGs use DCT-domain scaling (`Image.draft`, 1/2, 1/4 or 1/8, several times faster than a full
  decode); HEIC/HEIF decode an embedded thumbnail when one covers `min_side` (draft, through
  pillow-heif); still WebPs are scaled by libwebp while decoding (indexer.media.webp); other formats
  (PNG, TIFF, ... have no reduced decode) and very large JPEGs get an integer box
  `Image.reduce`. All keep the
  short side >= `min_side`; `min_side <= 0` turns reduction off. `width`/`height` are always the
  full-size dimensions after EXIF orientation, and `extent` says where the full image lies in a
  reduced one (a partial last DCT block or box), so indexer/media/preprocess.py can resample on the
  full image's geometry. Callers that feed CLIP ask indexer/media/preprocess.py, which picks
  `min_side` from the --resize mode (0 for exact, 2.5x the model input for fast).
- Truncated files are rejected with the reason "truncated file". `ImageFile.LOAD_TRUNCATED_IMAGES`
  is never set: a half-grey photo would get a wrong caption and vector that look valid, while a
  clear failure tells the user which file to fix or re-export (`imgcap index --retry-failed`).
- Decompression bombs: width × height from the header is checked against `max_pixels` before
  any pixel is decoded (the cap is a setting: `--max-megapixels`, Settings.max_pixels_for).
  Pillow's own guard (2 × `Image.MAX_IMAGE_PIXELS`, ~179 MP) applies on top; a cap above its
  default raises MAX_IMAGE_PIXELS to the cap. Its warning below our cap is silenced.
- 16-bit greyscale (TIFF/PNG modes I;16*, I) is scaled to 8 bits by the bit depth (÷257), not
  clipped and not contrast-stretched, so it looks like the 8-bit export of the same photo.
- Transparency is composited on white (what a viewer shows for a logo or a screenshot).
- HEIC/HEIF open through pillow-heif, registered lazily once per process. pillow-heif already
  applies the HEIF rotation and resets the EXIF orientation to 1, so nothing is rotated twice.
- Metadata (indexer/media/exif.py) is best effort: broken EXIF gives None fields, never a failed
  image. Every EXIF string has its control characters (and bidi overrides) replaced by spaces: a
  Make of "Canon\r=1+1" must not split a CSV row or drive the terminal.
- Only regular files are opened: the path is stat'ed first and the descriptor is opened
  non-blocking and fstat'ed again, so a FIFO, socket or device never blocks or is read.
- Memory: a non-JPEG cannot be decoded at a reduced size, so the full-size image is loaded once
  in its own mode and then converted to RGB in horizontal strips, each reduced at once: the peak
  is the loaded image plus a strip, not the 3-5 full-size RGBA copies of convert + composite.
  `check_header` lets a caller refuse a file (not an image, over the cap) from its header alone.
- RAW camera files (RAW_EXTENSIONS) are decoded through their embedded preview (indexer.media.raw).
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.TiffImagePlugin import TiffImageFile

from indexer.config import RAW_EXTENSIONS
from indexer.errors import BadImageError
from indexer.media.exif import (
    _metadata,
)
from indexer.media.kinds import is_video, looks_like_video
from indexer.media.walk import file_kind

# Same table as PIL.ImageOps.exif_transpose; applied by hand because by then the image has been
# converted and reduced, and we already hold the orientation.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_RAW_SUFFIXES = frozenset("." + ext for ext in RAW_EXTENSIONS)
# Pixels converted to RGB at a time when a large non-RGB image is shrunk (see _shrink_to_rgb):
# 1 MP is 4 MB of RGBA per strip, small next to the loaded image, large enough to be fast.
STRIP_PIXELS = 1_000_000

_heif_registered = False


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, EXIF-oriented, reduced so that its short side is >= min_side
    width: int  # full-size width after EXIF orientation
    height: int  # full-size height after EXIF orientation
    taken_at: str | None = None  # ISO 8601, with the UTC offset when the camera recorded one
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None  # signed decimal degrees, north positive
    gps_lon: float | None = None  # signed decimal degrees, east positive
    # Where the full-size oriented image lies in `image`'s pixel coordinates (x0, y0, x1, y1):
    # a reduced decode covers whole 1/k blocks, so its last row/column can stand for fewer
    # than k source pixels and the extent is not exactly image.size. None: all of `image`.
    # indexer.media.preprocess uses it to resample the reduced image on the full image's geometry.
    extent: tuple[float, float, float, float] | None = None


def decode_image(
    path: str | os.PathLike[str], min_side: int = 224, max_pixels: int = 120_000_000
) -> DecodedImage:
    """Decode one image file to RGB with its metadata, or raise BadImageError(path, reason)."""
    return _guarded(os.fspath(path), max_pixels, lambda p: _decode(p, min_side, max_pixels))


def check_header(path: str | os.PathLike[str], max_pixels: int = 120_000_000) -> None:
    """Refuse a file from its header alone, as decode_image would: not a regular file, empty,
    not an image, or over the pixel cap. Reads a few KB, never the whole file, so an index run
    calls it before hashing (a 20 GB sparse ".jpg" is refused in milliseconds, not 80 s)."""
    # Not quiet: an index run calls this from several threads, and warnings.catch_warnings is
    # not thread-safe (interleaved exits can leave every warning silenced, process-wide).
    _guarded(os.fspath(path), max_pixels, lambda p: _check_header(p, max_pixels), quiet=False)


def _guarded(path_str: str, max_pixels: int, work, quiet: bool = True):
    """Run `work(path)` turning every failure into BadImageError(path, reason)."""
    _register_heif()
    if max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        # Pillow refuses images over 2 × MAX_IMAGE_PIXELS in Image.open; a cap the user raised
        # must be the one that applies (Pillow's guard stays at twice the cap).
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        # Warnings (bomb warning below our cap, "possibly corrupt EXIF", palette transparency)
        # would only spam the worker's stderr; real problems raise.
        if not quiet:
            return work(path_str)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return work(path_str)
    except BadImageError:
        raise
    except FileNotFoundError:
        reason = "dangling symlink" if os.path.islink(path_str) else "file not found"
        raise BadImageError(path_str, reason) from None
    except PermissionError:
        raise BadImageError(path_str, "permission denied") from None
    except IsADirectoryError:
        raise BadImageError(path_str, "not a regular file (folder)") from None
    except UnidentifiedImageError:
        raise BadImageError(path_str, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired inside Image.open, before we could read the size ourselves.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        n = found.group(1) if found else "?"
        raise BadImageError(path_str, f"image too large ({n} pixels > cap {max_pixels})") from None
    except MemoryError:
        raise BadImageError(path_str, "out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is one bad file, never a crash
        reason = "truncated file" if _riff_truncated(path_str) else _decoder_reason(exc)
        raise BadImageError(path_str, reason) from None


def _open_regular(path: str):
    """Open `path` for reading only if it is a regular file (binary file object, caller closes).

    stat before open, so that a device is never opened (opening can have side effects), then
    O_NONBLOCK so that a FIFO swapped in meanwhile cannot block, and fstat to close that race."""
    _require_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        _require_regular(path, st.st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    if st.st_size == 0:
        f.close()
        raise BadImageError(path, "empty file")
    return f


def _require_regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    raise BadImageError(path, f"not a regular file ({file_kind(mode)})")


def is_raw(path: str | os.PathLike[str]) -> bool:
    """A RAW camera file, by its extension (decoded through its embedded preview)."""
    return os.path.splitext(os.fspath(path))[1].lower() in _RAW_SUFFIXES


def _check_header(path: str, max_pixels: int) -> None:
    with _open_regular(path) as f:
        if is_video(path):  # gigabytes are normal; its frame size is checked when decoded
            if not looks_like_video(f.read(64)):
                raise BadImageError(path, "not a video (unrecognised format)")
            return
        _refuse_oversized(path, f, max_pixels)
        if is_raw(path):
            from indexer.media.raw import looks_like_raw

            if not looks_like_raw(f.read(64)):
                raise BadImageError(path, "not an image (unrecognised format)")
            return  # the preview's size is only known by opening it: decode checks the cap
        with Image.open(f) as im:
            _check_cap(path, im.size, max_pixels)


def max_file_size(max_pixels: int) -> int:
    """The largest file an image under the pixel cap can be: 8 bytes a pixel (16-bit RGBA,
    uncompressed) plus 256 MiB of metadata, previews and further pages."""
    return 8 * max_pixels + (256 << 20)


def _refuse_oversized(path: str, f, max_pixels: int) -> None:
    """Refuse a file larger than any image under the cap could be, before a decoder reads it:
    Pillow's WebP and pillow-heif's HEIF openers read the whole file into memory."""
    size = os.fstat(f.fileno()).st_size
    limit = max_file_size(max_pixels)
    if size <= limit:
        return
    head = f.read(1 << 16)
    f.seek(0)
    if not (is_raw(path) or _identified(head)):
        raise BadImageError(path, "not an image (unrecognised format)")
    raise BadImageError(
        path,
        f"file too large for an image under the pixel cap ({size / 1e9:.1f} GB > "
        f"{limit / 1e9:.1f} GB)",
    )


def _identified(head: bytes) -> bool:
    """Whether some image format recognises these first bytes (opened from the prefix only)."""
    try:
        Image.open(io.BytesIO(head)).close()
    except UnidentifiedImageError:
        return False
    except Exception:  # noqa: BLE001 - recognised, but the prefix is not a whole image
        return True
    return True


def _check_cap(path: str, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise BadImageError(path, f"image too large ({w * h} pixels > cap {max_pixels})")


def _decode(path: str, min_side: int, max_pixels: int) -> DecodedImage:
    with _open_regular(path) as f:
        _refuse_oversized(path, f, max_pixels)
        if is_raw(path):
            from indexer.media.raw import open_preview

            im, meta = open_preview(path, f, min_side, max_pixels)
        else:
            im = Image.open(f)
            meta = _metadata(im)
        full_w, full_h = im.size
        _check_cap(path, im.size, max_pixels)
        orientation = meta.pop("orientation")
        if isinstance(im, TiffImageFile):
            # Pillow's TIFF plugin reports the oriented size and turns the pixels itself in
            # load(); turning them again would undo it.
            orientation = 1
        extent = (0.0, 0.0, float(full_w), float(full_h))  # in the stored image's pixels
        if min_side > 0:
            # Reduce on open wherever the format can. JPEG/MPO (phone photos with a depth map
            # open as MPO): draft() picks the largest 1/2^k DCT scale with scaled w >= request w
            # AND scaled h >= request h, so a square request keeps the short side >= min_side,
            # and the short side stays the short side after a 90° EXIF rotation. HEIC/HEIF
            # (pillow-heif): the smallest embedded thumbnail that is a scaled copy of the image
            # and covers the request. Other formats: a no-op.
            drafted = im.draft("RGB", (min_side, min_side))
            if drafted and len(drafted[1]) == 4:  # JPEG: (0, 0, W / scale, H / scale)
                extent = tuple(float(v) for v in drafted[1])
            if im.format == "WEBP" and not getattr(im, "is_animated", False):
                im = _webp_scaled(im, f, min_side)
            if im.size != (full_w, full_h) and extent[2:] == (full_w, full_h):
                extent = (0.0, 0.0, float(im.size[0]), float(im.size[1]))  # a scaled copy
        im.load()  # inside the try: truncated and corrupt data fail here, not later
    factor = _reduce_factor(im, min_side)
    im = _shrink_to_rgb(im, min_side)
    extent = tuple(v / factor for v in extent)
    if orientation in _TRANSPOSE:
        extent = _turn_extent(extent, im.size, orientation)
        im = im.transpose(_TRANSPOSE[orientation])
    if orientation in _SWAPS_AXES:
        full_w, full_h = full_h, full_w
    whole = extent == (0.0, 0.0, float(im.size[0]), float(im.size[1]))
    return DecodedImage(
        image=im, width=full_w, height=full_h, extent=None if whole else extent, **meta
    )


def _turn_extent(extent: tuple, size: tuple[int, int], orientation: int) -> tuple:
    """`extent` (x0, y0, x1, y1) in an image of `size`, in the coordinates of that image after
    the EXIF `orientation`'s transpose (same mapping as _TRANSPOSE)."""
    x0, y0, x1, y1 = extent
    w, h = size
    return {
        2: (w - x1, y0, w - x0, y1),  # mirror left-right
        3: (w - x1, h - y1, w - x0, h - y0),  # rotate 180
        4: (x0, h - y1, x1, h - y0),  # mirror top-bottom
        5: (y0, x0, y1, x1),  # transpose (swap axes)
        6: (h - y1, x0, h - y0, x1),  # rotate 90° clockwise (Pillow's ROTATE_270)
        7: (h - y1, w - x1, h - y0, w - x0),  # transverse
        8: (y0, w - x1, y1, w - x0),  # rotate 90° counter-clockwise (Pillow's ROTATE_90)
    }[orientation]


def _webp_scaled(im: Image.Image, f, min_side: int) -> Image.Image:
    """A large still WebP decoded by libwebp's scaler (indexer.media.webp), never at full size; the
    Pillow image as it was when that cannot be done."""
    factor = min(im.size) // min_side
    if factor < 2:
        return im
    from indexer.media.webp import decode_scaled

    f.seek(0)
    scaled = decode_scaled(f.read(), factor)
    if scaled is None:
        return im
    im.close()
    return scaled


def _reduce_factor(im: Image.Image, min_side: int) -> int:
    """The integer box-reduce factor _shrink_to_rgb applies (1: none)."""
    factor = min(im.size) // min_side if min_side > 0 else 1
    return factor if factor >= 2 else 1


def _shrink_to_rgb(im: Image.Image, min_side: int, strip_pixels: int = STRIP_PIXELS) -> Image.Image:
    """RGB, box-reduced by the largest integer factor that keeps the short side >= min_side.

    Same pixels as reduce(_to_rgb(im)), but a non-RGB image is converted strip by strip, each
    strip reduced at once, so no full-size RGB/RGBA copy is ever made (a 30 MP RGBA PNG peaked
    at 576 MB before, 150 MB now). Strips are a multiple of the factor high, so the box grid
    is the one a whole-image reduce would use."""
    factor = _reduce_factor(im, min_side)
    if factor < 2:
        return _to_rgb(im)
    if im.mode == "RGB":
        return im.reduce(factor)  # box filter: antialiased, far cheaper than resize
    if im.mode in ("I", "F"):
        # _to_rgb scales these by the image's maximum: reduce first (native support) so that
        # the maximum is taken over one image, not per strip.
        return _to_rgb(im.reduce(factor))
    w, h = im.size
    out = Image.new("RGB", (-(-w // factor), -(-h // factor)))
    rows = max(factor, strip_pixels // max(w, 1) // factor * factor)
    for top in range(0, h, rows):
        strip = im.crop((0, top, w, min(h, top + rows)))
        out.paste(_to_rgb(strip).reduce(factor), (0, top // factor))
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode == "I":
        # 16-bit data: scale by the bit depth instead of letting convert() clip at 255.
        arr = np.asarray(im, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) <= 65535 else arr.max()
        grey = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0  # floats in 0..1 or 0..255
        grey = np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # L, P, 1, CMYK, YCbCr, LAB, ...


def _decoder_reason(exc: Exception) -> str:
    message = str(exc)
    lowered = message.lower()
    if "truncat" in lowered:
        return "truncated file"
    if isinstance(exc, OSError) and exc.errno is not None:  # a real I/O error, e.g. EIO
        return f"cannot read file ({exc.strerror or message})"
    if "not available" in lowered or "unsupported" in lowered or "not supported" in lowered:
        return f"unsupported image variant ({message[:120]})"
    if isinstance(exc, (SyntaxError, ValueError, OSError)) and message:
        # Pillow raises SyntaxError/OSError with messages such as "broken PNG file".
        return f"corrupt image data ({message[:120]})"
    return f"cannot decode ({type(exc).__name__}: {message[:120]})"


def _riff_truncated(path: str) -> bool:
    """WebP (RIFF) states its length up front; libwebp only says "could not create decoder"."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    return int.from_bytes(head[4:8], "little") + 8 > size


def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once per process; done lazily so importing this module stays cheap."""
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True

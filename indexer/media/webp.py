"""WebP files decoded at reduced size by libwebp's own scaler.

Pillow decodes a WebP at full size through libwebp's animation API, which holds three full-size
canvases: 15.5 bytes a pixel measured, 465 MB for a 30 MP photo. libwebp can scale while it
decodes (WebPDecoderOptions.use_scaling: rows are area-averaged as they are produced), so the
full-size image never exists. Pillow does not expose that, so it is called here through ctypes,
in the libwebp that Pillow itself ships (or the system's).

Best effort by design: `decode_scaled` returns None whenever it cannot help (libwebp not found,
an animated file, any decoding error), and the caller decodes through Pillow as before, which
also words the failure reason (truncated, corrupt, ...).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

from PIL import Image

# decode.h: MAJOR(8b) + MINOR(8b). libwebp refuses only a different major version; the structs
# below are those of ABI 2.x (new fields only ever took the place of padding).
_ABI_VERSION = 0x0209
_MODE_RGB, _MODE_RGBA = 0, 1
_STATUS_OK = 0


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBABuffer(ctypes.Structure):
    _fields_ = [
        ("rgba", ctypes.c_void_p),
        ("stride", ctypes.c_int),
        ("size", ctypes.c_size_t),
    ]


class _YUVABuffer(ctypes.Structure):
    _fields_ = [
        ("y", ctypes.c_void_p),
        ("u", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("a", ctypes.c_void_p),
        ("y_stride", ctypes.c_int),
        ("u_stride", ctypes.c_int),
        ("v_stride", ctypes.c_int),
        ("a_stride", ctypes.c_int),
        ("y_size", ctypes.c_size_t),
        ("u_size", ctypes.c_size_t),
        ("v_size", ctypes.c_size_t),
        ("a_size", ctypes.c_size_t),
    ]


class _Buffers(ctypes.Union):
    _fields_ = [("RGBA", _RGBABuffer), ("YUVA", _YUVABuffer)]


class _DecBuffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Buffers),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        ("bypass_filtering", ctypes.c_int),
        ("no_fancy_upsampling", ctypes.c_int),
        ("use_cropping", ctypes.c_int),
        ("crop_left", ctypes.c_int),
        ("crop_top", ctypes.c_int),
        ("crop_width", ctypes.c_int),
        ("crop_height", ctypes.c_int),
        ("use_scaling", ctypes.c_int),
        ("scaled_width", ctypes.c_int),
        ("scaled_height", ctypes.c_int),
        ("use_threads", ctypes.c_int),
        ("dithering_strength", ctypes.c_int),
        ("flip", ctypes.c_int),
        ("alpha_dithering_strength", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


_lib: ctypes.CDLL | None = None
_lib_looked_up = False


def _libwebp() -> ctypes.CDLL | None:
    """Pillow's bundled libwebp (wheels), else the system's; None if neither loads."""
    global _lib, _lib_looked_up
    if _lib_looked_up:
        return _lib
    _lib_looked_up = True
    import PIL

    here = os.path.dirname(PIL.__file__)
    candidates = sorted(glob.glob(os.path.join(here, "..", "pillow.libs", "libwebp-*.so*")))
    candidates += sorted(glob.glob(os.path.join(here, ".dylibs", "libwebp*.dylib")))
    found = ctypes.util.find_library("webp")
    candidates += [found] if found else []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
            lib.WebPInitDecoderConfigInternal.restype = ctypes.c_int
            lib.WebPGetFeaturesInternal.argtypes = [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(_Features),
                ctypes.c_int,
            ]
            lib.WebPGetFeaturesInternal.restype = ctypes.c_int
            lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
            lib.WebPDecode.restype = ctypes.c_int
            lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_DecBuffer)]
            lib.WebPFreeDecBuffer.restype = None
        except (OSError, AttributeError):
            continue
        _lib = lib
        break
    return _lib


def decode_scaled(data: bytes, factor: int) -> Image.Image | None:
    """The still WebP in `data` decoded at 1/`factor` of its size (each side rounded up, as
    Image.reduce does): an "RGB" or "RGBA" image, or None when libwebp cannot do it here."""
    lib = _libwebp()
    if lib is None or factor < 2:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI_VERSION):
        return None
    features = config.input
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(features), _ABI_VERSION):
        return None
    if features.has_animation or features.width <= 0 or features.height <= 0:
        return None
    w, h = -(-features.width // factor), -(-features.height // factor)
    mode = "RGBA" if features.has_alpha else "RGB"
    config.output.colorspace = _MODE_RGBA if features.has_alpha else _MODE_RGB
    config.options.use_scaling = 1
    config.options.scaled_width, config.options.scaled_height = w, h
    if lib.WebPDecode(data, len(data), ctypes.byref(config)) != _STATUS_OK:
        lib.WebPFreeDecBuffer(ctypes.byref(config.output))
        return None
    try:
        out = config.output
        buf = out.u.RGBA
        if (out.width, out.height) != (w, h) or not buf.rgba:
            return None
        raw = ctypes.string_at(buf.rgba, buf.size)
        return Image.frombytes(mode, (w, h), raw, "raw", mode, buf.stride)
    finally:
        lib.WebPFreeDecBuffer(ctypes.byref(config.output))

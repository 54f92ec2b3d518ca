"""EXIF metadata of one image: orientation, when it was taken (with the UTC offset when the
camera wrote one), camera make and model, and GPS position, read best effort (a broken tag gives
None for that field, never a failed image), with every string's control characters and bidi
controls replaced by spaces (`clean_text`) so a hostile Make cannot split a CSV row or drive the
terminal. Reading tags is its own concern, shared by decode.py, raw.py and video.py, and needs
none of the decoding."""

from __future__ import annotations

import re
from datetime import datetime

from PIL import Image

# EXIF tags (see the EXIF 2.32 spec, or PIL.ExifTags).
_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
# C0, DEL and C1 controls, plus the Unicode bidi embeddings/overrides/isolates and marks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _metadata(im: Image.Image) -> dict:
    meta: dict = {"orientation": 1}
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - unreadable EXIF means no metadata, not a bad image
        return meta
    for key, read in (
        ("orientation", lambda: int(exif.get(_ORIENTATION, 1))),
        ("taken_at", lambda: _taken_at(exif)),
        ("camera_make", lambda: _text(exif.get(_MAKE))),
        ("camera_model", lambda: _text(exif.get(_MODEL))),
    ):
        try:
            meta[key] = read()
        except Exception:  # noqa: BLE001 - one broken tag must not hide the others
            pass
    try:
        meta["gps_lat"], meta["gps_lon"] = _gps(exif.get_ifd(_GPS_IFD))
    except Exception:  # noqa: BLE001
        pass
    return meta


def file_metadata(path: str) -> dict:
    """The EXIF fields a file row stores (taken_at, camera_make, camera_model, gps_lat,
    gps_lon) of the image at `path`, read from its header without decoding it where the format
    allows (a file whose pixels are already indexed but whose tags were edited); {} when the
    file cannot be opened."""
    try:
        with Image.open(path) as im:
            meta = _metadata(im)
    except Exception:  # noqa: BLE001 - the caller keeps what it knew; the file was hashed fine
        return {}
    fields = ("taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon")
    return {k: meta.get(k) for k in fields}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    # Cameras pad with NULs and spaces ("Canon\x00\x00", "NIKON CORPORATION   "); a hostile
    # file can carry \r, \n, ESC or a bidi override, which would split CSV rows, drive the
    # terminal or reverse what is shown. Each run of them becomes one space.
    value = " ".join(clean_text(value).split())
    return value or None


def clean_text(value: str) -> str:
    """`value` with every control character (C0, DEL, C1) and bidi control replaced by a space."""
    return _CONTROL.sub(" ", value)


def _taken_at(exif: Image.Exif) -> str | None:
    sub = exif.get_ifd(_EXIF_IFD)
    for raw, offset in (
        (sub.get(_DATETIME_ORIGINAL), sub.get(_OFFSET_TIME_ORIGINAL)),
        (exif.get(_DATETIME), None),
    ):
        text = _text(raw)
        if not text:
            continue
        try:
            when = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:  # "0000:00:00 00:00:00" and other placeholders
            continue
        iso = when.isoformat()
        offset = _text(offset)
        if offset and re.fullmatch(r"[+-]\d\d:\d\d", offset):
            iso += offset
        return iso
    return None


def _gps(gps: dict) -> tuple[float | None, float | None]:
    lat = _degrees(gps.get(2), gps.get(1), "S")
    lon = _degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None, None
    return lat, lon


def _degrees(dms: object, ref: object, negative: str) -> float | None:
    """(degrees, minutes, seconds) rationals + "N"/"S" or "E"/"W" → signed decimal degrees."""
    if not isinstance(dms, tuple) or not dms:
        return None
    parts = [float(x) for x in dms[:3]]
    value = sum(p / 60**i for i, p in enumerate(parts))
    if value != value:  # NaN from a 0/0 rational
        return None
    return -value if _text(ref) == negative else value

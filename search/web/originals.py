"""An original file as a browser gets it from `/original/<id>`.

Decisions:
- Images in a format every browser shows (JPEG, PNG, WebP, GIF, BMP) are sent as they are, with
  their Content-Type. The others (HEIC/HEIF, TIFF, camera RAW) are converted to JPEG on the fly
  through the indexer's own decode (indexer/media/decode.py: EXIF orientation applied, HEIC
  through pillow-heif, RAW through its embedded preview), so what opens is what was captioned.
  The long side is capped at MAX_SIDE px: a full-screen view on a 4K display loses nothing, and a
  100 MP TIFF does not become a 100 MP JPEG. Nothing is cached on disk: a person opens one
  original at a time; conversions run a few at a time (each holds a full-size image in memory).
- Videos are sent as they are (Starlette's FileResponse answers Range requests, so a <video>
  seeks). The page plays one in a <video> element only where Chrome and Firefox both play its
  container and codecs: an MP4/QuickTime file (.mp4, .m4v, .mov) with H.264, VP9 or AV1 video,
  or a WebM file with VP8, VP9 or AV1 video, and AAC, MP3, Opus, Vorbis or FLAC audio (or none).
  A .mov is sent as video/mp4: browsers read QuickTime files with their MP4 reader, and Firefox
  refuses a video/quicktime response outright. HEVC (most iPhone videos), Matroska (.mkv) and
  AVI are not played: Firefox and Chrome on many machines cannot, and a <video> that never
  starts is worse than the keyframe still the page shows instead.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass

from indexer.errors import BadImageError

MAX_SIDE = 4096
JPEG_QUALITY = 90
SHOWN_AS_IS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}
VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/mp4",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
}
PLAYABLE = {
    "video/mp4": {"h264", "vp9", "av1"},
    "video/webm": {"vp8", "vp9", "av1"},
}
PLAYABLE_AUDIO = {"aac", "mp3", "opus", "vorbis", "flac"}
CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC (H.265)", "vp8": "VP8", "vp9": "VP9", "av1": "AV1"}


@dataclass(frozen=True)
class Playback:
    """Whether the page can play a video in a <video> element, and if not, why (shown)."""

    playable: bool
    reason: str = ""


def media_type(path: str) -> str | None:
    """The Content-Type to send the file as it is, or None when it must be converted to JPEG."""
    suffix = os.path.splitext(path)[1].lower()
    return SHOWN_AS_IS.get(suffix) or VIDEO_TYPES.get(suffix)


def playback(path: str) -> Playback:
    """Whether browsers play this video file (container by its name, codecs from its header)."""
    from indexer.media.video import stream_codecs

    kind = VIDEO_TYPES.get(os.path.splitext(path)[1].lower())
    if kind not in PLAYABLE:
        return Playback(False, "browsers don't play this kind of video file")
    try:
        video, audio = stream_codecs(path)
    except BadImageError as e:
        return Playback(False, e.reason)
    if video not in PLAYABLE[kind]:
        shown = CODEC_NAMES.get(video, video or "unknown")
        return Playback(False, f"browsers don't all play {shown} video")
    if audio is not None and audio not in PLAYABLE_AUDIO:
        return Playback(False, f"browsers don't all play its sound ({audio})")
    return Playback(True)


class Converter:
    """JPEG renditions of originals browsers cannot show. Thread-safe."""

    def __init__(self, max_pixels: int, max_at_once: int = 2):
        self._max_pixels = max_pixels
        self._slots = threading.BoundedSemaphore(max_at_once)

    def jpeg(self, path: str) -> bytes:
        """The file as a JPEG, upright, long side at most MAX_SIDE; BadImageError(path, reason)
        when it cannot be decoded."""
        from PIL import Image

        from indexer.media.decode import decode_image

        with self._slots:
            # min_side=MAX_SIDE: a reduced decode (HEIC thumbnail, box reduce of a huge TIFF)
            # only where its short side still covers the cap; else the full image.
            image = decode_image(path, min_side=MAX_SIDE, max_pixels=self._max_pixels).image
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=JPEG_QUALITY)
            return buf.getvalue()

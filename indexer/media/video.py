"""Video files: keyframes chosen by scene change, decoded with PyAV (the `video` extra).

A video becomes a few pictures that go through the same CLIP + caption path as photos, each with
its time in the video. Selection is one pass over the decoded frames with bounded memory:

- frames are looked at no more than ANALYSIS_FPS times a second, each as a THUMB_SIDE² RGB
  thumbnail. Where the codec's own keyframes (I-frames) are close enough, only they are
  decoded (see `select_keyframes`); otherwise every frame is, since a codec cannot skip the
  frames between them;
- a frame becomes a keyframe when its thumbnail differs from the last keyframe's by more than
  SCENE_THRESHOLD (mean absolute difference, 0..1) and at least `min_gap` seconds have passed
  since that keyframe. Comparing with the last keyframe, not the previous frame, catches both
  cuts (one big jump) and slow change (a pan drifts past the threshold);
- the first frame that is not nearly uniform is always a keyframe; nearly uniform frames (black
  leaders, fades) never are, unless the whole video is (then its first frame);
- past `max_frames`, the gap doubles and the keyframes so far are thinned to it, so a 2-hour film
  ends with at most `max_frames` keyframes spread over its whole length, in one pass.

Metadata comes from the container: display size (rotation applied), the recording time
(QuickTime's local `creationdate`, else `creation_time` in UTC), the phone's make and model, and
ISO 6709 GPS. A file PyAV cannot open, without a video stream, or that decodes to no frame at
all raises BadImageError with the reason; a file that breaks part-way keeps what decoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from indexer.errors import BadImageError

VIDEO_NEEDS_EXTRA = "videos need the video extra: pip install 'imgcap[video]'"
ANALYSIS_FPS = 4.0  # frames compared per second: cuts located to 1/4 s, a few ms each
THUMB_SIDE = 32  # thumbnail side for comparisons: small enough that noise and motion average out
# Mean absolute RGB difference (0..1) between a frame and the last keyframe that counts as a new
# scene. On the synthetic clips of the tests, cuts between unrelated scenes score 0.28-0.36 and
# a slow pan 0.03 after 1/4 s, passing 0.12 after about a second. Not tuned on camera footage
# (none here): a lower value gives more keyframes per shot, a higher one misses similar scenes.
SCENE_THRESHOLD = 0.12
BLANK_STD = 0.02  # thumbnail standard deviation (0..1) below which a frame is "uniform"
POSTER_WITHIN = 10.0  # seconds searched for a gallery still that is not a black leader
KEY_ONLY_MIN_GAP = 2.0  # codec keyframes this close are always dense enough (see key_only_gap)

_ISO6709 = re.compile(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")
# QuickTime stores dates from 1904, MP4 from 1904/1970: a zero date means "not set".
_NO_DATE_BEFORE = 1971


def extra_installed() -> bool:
    """Whether the `video` extra (PyAV) can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(slots=True)
class Keyframe:
    at: float  # seconds from the start of the video
    image: Any  # PIL RGB, display orientation, short side = the requested min_side
    thumb: np.ndarray = field(repr=False)  # (THUMB_SIDE, THUMB_SIDE, 3) float32 in 0..1


@dataclass(slots=True)
class VideoInfo:
    """What the container says, plus what selection saw."""

    width: int | None = None  # display size (rotation applied)
    height: int | None = None
    duration: float | None = None  # seconds
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    frames_in_video: int = 0  # packets of the video stream (the demux pass counts them)
    frames_decoded: int = 0
    frames_compared: int = 0
    key_only: bool = False  # only the codec's own keyframes were decoded (see select_keyframes)
    broken_at: float | None = None  # decoding stopped here with an error (keyframes before kept)


class KeyframeSelector:
    """The selection rule of the module docstring, fed one analysed frame at a time."""

    def __init__(self, min_gap: float, max_frames: int, threshold: float = SCENE_THRESHOLD):
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.gap = max(0.0, float(min_gap))
        self.max_frames = max_frames
        self.threshold = threshold
        self.kept: list[Keyframe] = []
        self.first_blank: Keyframe | None = None  # used only if every frame is uniform

    def wants(self, at: float, thumb: np.ndarray) -> bool:
        """Whether the frame at `at` with this thumbnail becomes a keyframe (call `add` then)."""
        if float(thumb.std()) < BLANK_STD:
            return self.first_blank is None and not self.kept
        if not self.kept:
            return True
        last = self.kept[-1]
        if at - last.at < self.gap:
            return False
        return difference(thumb, last.thumb) > self.threshold

    def add(self, frame: Keyframe) -> None:
        if float(frame.thumb.std()) < BLANK_STD:
            self.first_blank = frame
            return
        self.kept.append(frame)
        while len(self.kept) > self.max_frames:
            self.gap = max(2 * self.gap, 1.0)
            self.kept = thin(self.kept, self.gap)

    def result(self) -> list[Keyframe]:
        if self.kept:
            return self.kept
        return [self.first_blank] if self.first_blank is not None else []


def thin(frames: list[Keyframe], gap: float) -> list[Keyframe]:
    """Keep the first frame and each next one at least `gap` seconds after the last kept."""
    out: list[Keyframe] = []
    for f in frames:
        if not out or f.at - out[-1].at >= gap:
            out.append(f)
    return out


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (0 = same, 1 = black vs white)."""
    return float(np.abs(a - b).mean())


def select_keyframes(
    path: str | os.PathLike[str],
    min_side: int,
    min_gap: float,
    max_frames: int,
    max_pixels: int = 120_000_000,
    key_only: bool | None = None,
) -> tuple[VideoInfo, list[Keyframe]]:
    """Decode the video at `path` once and choose its keyframes (module docstring).

    Keyframe images are scaled so their short side is `min_side` (the model input side).
    Raises BadImageError(path, reason) when the file yields no frame.

    Decoding every frame is most of the cost (a 2-hour 1080p film is ~170,000 frames). A first
    pass reads the packets without decoding them; when the codec's own keyframes (I-frames) are
    never more than `key_only_gap(min_gap)` seconds apart, only those are decoded (`key_only`,
    6-11× faster on the benchmark clips). Encoders start an I-frame at each scene cut and
    phones write one every second or two, so the choice is between nearly the same frames.
    `key_only`: force (True) or forbid (False) it; None decides from the packets."""
    path = os.fspath(path)
    av = _av(path)
    keys, packets = _codec_keyframes(path)
    with _open(path) as container:
        stream = _video_stream(path, container, max_pixels)
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is most of the time
        info = _container_info(container, stream)
        info.frames_in_video = packets
        if key_only is None:
            key_only = keys is not None and _sparse_enough(keys, key_only_gap(min_gap))
        if key_only:
            stream.codec_context.skip_frame = "NONKEY"
            info.key_only = True
        selector = KeyframeSelector(min_gap, max_frames)
        next_look = -1.0
        rotation = 0
        try:
            for at, frame in _frames(container, stream):
                info.frames_decoded += 1
                if at < next_look:
                    continue
                next_look = at + 1.0 / ANALYSIS_FPS
                info.frames_compared += 1
                thumb = _thumbnail(frame)
                if selector.wants(at, thumb):
                    rotation = _rotation(frame)
                    selector.add(Keyframe(at, _model_image(frame, min_side, rotation), thumb))
        except (av.FFmpegError, MemoryError) as e:
            if not selector.result():
                raise BadImageError(path, f"video decode error ({_ffmpeg_reason(e)})") from None
            info.broken_at = round(next_look - 1.0 / ANALYSIS_FPS, 3)
        frames = selector.result()
    if not frames:
        raise BadImageError(path, "no video frames could be decoded")
    if rotation in (90, -90, 270, -270) and info.width and info.height:
        info.width, info.height = info.height, info.width
    return info, frames


def key_only_gap(min_gap: float) -> float:
    """The longest distance between codec keyframes (seconds) at which decoding only them is
    good enough: twice the keyframe gap asked for, and never below KEY_ONLY_MIN_GAP."""
    return max(2.0 * min_gap, KEY_ONLY_MIN_GAP)


def _sparse_enough(keys: list[float], limit: float) -> bool:
    """Codec keyframe times (and the stream's end, last) never further apart than `limit`."""
    return len(keys) >= 2 and max(b - a for a, b in zip(keys, keys[1:], strict=False)) <= limit


def _codec_keyframes(path: str) -> tuple[list[float] | None, int]:
    """(times of the codec's keyframes, then the stream's end; or None when some packet has no
    time), the number of video packets. Packets are only read, never decoded."""
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                return None, 0
            stream = container.streams.video[0]
            tb = float(stream.time_base or 0)
            keys: list[float] = []
            start: float | None = None
            end = 0.0
            n = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet demux ends with
                n += 1
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None or not tb:
                    return None, n
                at = pts * tb
                start = at if start is None else min(start, at)
                end = max(end, at)
                if packet.is_keyframe:
                    keys.append(at)
    except (av.FFmpegError, OSError, ValueError):
        return None, 0  # the decoding pass reports what is wrong
    if start is None:
        return None, n
    return sorted(k - start for k in keys) + [end - start], n


def _av(path: str):
    """The PyAV module, or BadImageError naming the extra that brings it."""
    try:
        import av
    except ImportError:
        raise BadImageError(path, VIDEO_NEEDS_EXTRA) from None
    return av


def _open(path: str):
    """av.open with its failures as BadImageError reasons."""
    av = _av(path)
    try:
        return av.open(path, metadata_errors="ignore")
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except PermissionError:
        raise BadImageError(path, "permission denied") from None
    except (av.FFmpegError, OSError, ValueError) as e:
        raise BadImageError(path, f"not a readable video ({_ffmpeg_reason(e)})") from None


def _video_stream(path: str, container, max_pixels: int):
    if not container.streams.video:
        raise BadImageError(path, "no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None:
        raise BadImageError(path, "unsupported video codec")
    w, h = int(ctx.width or 0), int(ctx.height or 0)
    if w * h > max_pixels:
        raise BadImageError(path, f"video too large ({w * h} pixels > cap {max_pixels})")
    return stream


def poster(path: str | os.PathLike[str], min_side: int, max_pixels: int = 120_000_000):
    """A still for the gallery: the first frame that is not nearly uniform within the first
    POSTER_WITHIN seconds (else the first frame), upright, short side `min_side`. Decodes only
    that far, never the whole video. Raises BadImageError like `select_keyframes`."""
    path = os.fspath(path)
    av = _av(path)
    with _open(path) as container:
        stream = _video_stream(path, container, max_pixels)
        first = None
        try:
            for at, frame in _frames(container, stream):
                first = first or frame
                if float(_thumbnail(frame).std()) >= BLANK_STD or at > POSTER_WITHIN:
                    return _model_image(frame, min_side, _rotation(frame))
        except av.FFmpegError as e:
            if first is None:
                raise BadImageError(path, f"video decode error ({_ffmpeg_reason(e)})") from None
        if first is None:
            raise BadImageError(path, "no video frames could be decoded")
        return _model_image(first, min_side, _rotation(first))


def still_at(
    path: str | os.PathLike[str], seconds: float, min_side: int, max_pixels: int = 120_000_000
):
    """The frame at `seconds` (as `select_keyframes` times them: from the stream's start), or
    the last one before the end, upright, short side `min_side`: the gallery's still of one
    keyframe. Seeks to the codec keyframe before it and decodes from there, never the whole
    video. Raises BadImageError like `poster`."""
    path = os.fspath(path)
    av = _av(path)
    with _open(path) as container:
        stream = _video_stream(path, container, max_pixels)
        tb = float(stream.time_base) if stream.time_base else 0.0
        if tb and seconds > 0:
            start = stream.start_time * tb if stream.start_time is not None else 0.0
            try:
                container.seek(int((start + seconds) / tb), stream=stream, backward=True)
            except av.FFmpegError:
                pass  # unseekable: decode from the start
        last = None
        try:
            for at, frame in _frames(container, stream):
                last = frame
                if at >= seconds - 1e-3:
                    break
        except av.FFmpegError as e:
            if last is None:
                raise BadImageError(path, f"video decode error ({_ffmpeg_reason(e)})") from None
        if last is None:
            raise BadImageError(path, "no video frames could be decoded")
        return _model_image(last, min_side, _rotation(last))


def stream_codecs(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(video codec, audio codec or None) of the file's first streams, as FFmpeg names them
    ("h264", "hevc", "vp9", "aac", ...), from its header alone. Raises BadImageError like
    `poster`."""
    path = os.fspath(path)
    with _open(path) as container:
        stream = _video_stream(path, container, max_pixels=2**62)
        audio = container.streams.audio[0] if container.streams.audio else None
        return stream.codec_context.name, getattr(audio and audio.codec_context, "name", None)


def _frames(container, stream) -> Iterator[tuple[float, Any]]:
    """(seconds from the stream's start, frame) for every decoded frame. Frames without a
    timestamp (some AVIs) are placed by their number and the frame rate."""
    tb = float(stream.time_base) if stream.time_base else 0.0
    start = stream.start_time * tb if stream.start_time is not None and tb else 0.0
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    for n, frame in enumerate(container.decode(stream)):
        if frame.pts is not None and tb:
            at = frame.pts * tb - start
        else:
            at = n / rate
        yield max(0.0, at), frame


def _thumbnail(frame) -> np.ndarray:
    small = frame.reformat(
        width=THUMB_SIDE, height=THUMB_SIDE, format="rgb24", interpolation="AREA"
    )
    return small.to_ndarray().astype(np.float32) / 255.0  # (T, T, 3)


def _rotation(frame) -> int:
    try:
        return int(round(frame.rotation or 0))
    except (AttributeError, TypeError, ValueError):
        return 0


def _model_image(frame, min_side: int, rotation: int):
    """The frame as PIL RGB in display orientation, short side `min_side` (area-averaged
    down; clip_geometry then only crops)."""
    w, h = frame.width, frame.height
    scale = min_side / min(w, h)
    if scale < 1:
        w, h = max(min_side, round(w * scale)), max(min_side, round(h * scale))
    image = frame.to_image(width=w, height=h, interpolation="AREA")
    if rotation % 360:
        image = image.rotate(rotation, expand=True)  # PIL and the display matrix: anticlockwise
    return image


def _container_info(container, stream) -> VideoInfo:
    from indexer.media.exif import clean_text

    meta = {str(k).lower(): v for k, v in {**stream.metadata, **container.metadata}.items()}

    def text(*keys: str) -> str | None:
        for k in keys:
            value = meta.get(k)
            if isinstance(value, str):
                value = " ".join(clean_text(value).split())
                if value:
                    return value
        return None

    ctx = stream.codec_context
    info = VideoInfo(width=int(ctx.width) or None, height=int(ctx.height) or None)
    if container.duration:
        info.duration = round(container.duration / 1_000_000, 3)  # AV_TIME_BASE units
    elif stream.duration and stream.time_base:
        info.duration = round(float(stream.duration * stream.time_base), 3)
    info.taken_at = _taken_at(
        text("com.apple.quicktime.creationdate"), text("creation_time", "date")
    )
    info.camera_make = text("com.apple.quicktime.make", "com.android.manufacturer", "make")
    info.camera_model = text("com.apple.quicktime.model", "com.android.model", "model")
    info.gps_lat, info.gps_lon = _iso6709(
        text("com.apple.quicktime.location.iso6709", "location", "location-eng")
    )
    return info


def _taken_at(local: str | None, utc: str | None) -> str | None:
    """ISO 8601 with its UTC offset: QuickTime's local creation date as recorded, else the
    container's creation time (UTC). Placeholder dates (1904, 1970) are not dates."""
    for value in (local, utc):
        if not value:
            continue
        try:
            when = datetime.fromisoformat(value.replace(" ", "T", 1))
        except ValueError:
            continue
        if when.year < _NO_DATE_BEFORE:
            continue
        return when.replace(microsecond=0).isoformat()
    return None


def _iso6709(value: str | None) -> tuple[float | None, float | None]:
    """ISO 6709 "+48.8584+002.2945+035.000/" → (48.8584, 2.2945); else (None, None)."""
    found = _ISO6709.match(value or "")
    if not found:
        return None, None
    lat, lon = float(found.group(1)), float(found.group(2))
    if abs(lat) > 90 or abs(lon) > 180:
        return None, None
    return lat, lon


def _ffmpeg_reason(e: BaseException) -> str:
    message = getattr(e, "strerror", None) or str(e) or type(e).__name__
    message = re.sub(r"\s*:\s*'[^']*'$", "", str(message))  # PyAV appends the file name
    return " ".join(message.split()).lower()


def decode_for_model(
    path: str, size: int, min_gap: float, max_frames: int, max_pixels: int
) -> tuple:
    """Worker task for a video (the decode task protocol of indexer/run/work.py): ("ok", file
    metadata, (K, size, size, 3) uint8 keyframes, [{"at_s": seconds}, ...]) or ("bad", reason)."""
    from indexer.media.preprocess import clip_geometry
    from indexer.store.records import META_COLUMNS

    try:
        info, frames = select_keyframes(path, size, min_gap, max_frames, max_pixels)
        pixels = np.stack([clip_geometry(f.image, size) for f in frames])
    except BadImageError as e:
        return ("bad", e.reason)
    except Exception as e:  # noqa: BLE001 - one strange file must never stop a run
        return ("bad", f"video decoder error: {type(e).__name__}: {e}")
    meta = {k: getattr(info, k, None) for k in META_COLUMNS}
    n = len(frames)
    extras = [{"at_s": round(f.at, 3), "keyframes": n, "duration": info.duration} for f in frames]
    return ("ok", meta, pixels, extras)

"""Small videos made in the test with PyAV: scenes with known cut times, a broken one."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scene(k: int, w: int, h: int, t: float = 0.0, drift: float = 0.0) -> np.ndarray:
    """(h, w, 3) uint8: scene number `k`, a distinct coloured pattern (never uniform). `drift`
    pixels per second slide the pattern, like a slow pan."""
    rng = np.random.default_rng(k)
    base = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)  # a coarse colour grid
    grid = np.kron(base, np.ones((h // 4 + 1, w // 6 + 1, 1), np.uint8))
    shift = int(drift * t)
    return np.ascontiguousarray(np.roll(grid, shift, axis=1)[:h, :w])


def make_video(
    path: Path,
    seconds: float = 6.0,
    fps: int = 10,
    cuts: tuple[float, ...] = (3.0,),
    size: tuple[int, int] = (160, 96),
    codec: str = "libx264",
    rotate: int | None = None,
    metadata: dict[str, str] | None = None,
    drift: float = 0.0,
    black_until: float = 0.0,
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a video whose scene changes at each time in `cuts` (scene 0 first)."""
    import av

    w, h = size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        if metadata:
            out.metadata.update(metadata)
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop  # a codec keyframe every `gop` frames at most
        if rotate:
            stream.set_display_rotation(rotate)
        for i in range(round(seconds * fps)):
            t = i / fps
            k = sum(t >= c for c in cuts)
            img = scene(k, w, h, t, drift)
            if t < black_until:
                img = np.zeros_like(img)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def break_video(path: Path) -> Path:
    """Keep the container header, garble everything after it."""
    data = bytearray(Path(path).read_bytes())
    rng = np.random.default_rng(0)
    data[64:] = rng.integers(0, 256, size=len(data) - 64, dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(data))
    return Path(path)

"""Video keyframe selection speed (issue 13 §3/§5): frames decoded per second and keyframes
per minute of video, for indexer/media/video.py's `select_keyframes` with the default settings.

    python benchmarks/bench_video.py --workdir /tmp/imgcap-bench-video --repeat 3

Clips are synthetic H.264 (made once in --workdir with PyAV): coloured scenes that cut every
few seconds, each shot panning slowly; the phone and HD clips have an I-frame every second (as
phones write them), the film x264's default (at most every 250 frames, plus one at each cut).
Measured per clip, median of --repeat runs:

- `select_keyframes` as `imgcap index` runs it (auto: only the codec's keyframes decoded when
  they are dense enough) and with every frame decoded: wall time, video frames covered per
  second, frames decoded per second, keyframes per minute of video;
- a decode-only loop over every frame (PyAV, same threading): what decoding alone costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from video_factory import scene  # noqa: E402

from indexer.config import Settings  # noqa: E402
from indexer.media.video import select_keyframes  # noqa: E402

CLIPS = {
    # name: (width, height, fps, seconds, seconds between cuts, GOP in frames or None: x264's)
    "phone-720p30-60s": (1280, 720, 30, 60, 6.0, 30),
    "hd-1080p30-30s": (1920, 1080, 30, 30, 6.0, 30),
    "film-480p24-5min": (854, 480, 24, 300, 3.0, None),
}


def make_clip(
    path: Path, w: int, h: int, fps: int, seconds: int, every: float, gop: int | None
) -> None:
    import av

    if path.exists():
        return
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "26"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        shots: dict[int, np.ndarray] = {}
        for i in range(fps * seconds):
            t = i / fps
            k = int(t // every)
            if k not in shots:
                shots = {k: scene(k, w, h)}
            shift = int((t - k * every) * w / 40)  # a slow pan inside each shot
            img = np.ascontiguousarray(np.roll(shots[k], shift, axis=1))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)


def decode_only(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in c.decode(stream))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-video"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    s = Settings()
    report = {"video_gap": s.video_gap, "video_max_frames": s.video_max_frames, "clips": {}}
    for name in args.clips:
        w, h, fps, seconds, every, gop = CLIPS[name]
        path = args.workdir / f"{name}-gop{gop or 'x264'}.mp4"
        t = time.perf_counter()
        make_clip(path, w, h, fps, seconds, every, gop)
        made = time.perf_counter() - t
        times: dict[str, list[float]] = {"auto": [], "all": [], "decode": []}
        got = {}
        for i in range(args.repeat):
            order = list(times) if i % 2 == 0 else list(reversed(times))
            for which in order:
                t = time.perf_counter()
                if which == "decode":
                    n = decode_only(path)
                else:
                    key_only = None if which == "auto" else False
                    got[which] = select_keyframes(
                        path, 224, s.video_gap, s.video_max_frames, key_only=key_only
                    )
                times[which].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "size": f"{w}x{h}",
            "fps": fps,
            "seconds": seconds,
            "cut_every_s": every,
            "frames": n,
            "clip_made_s": round(made, 1),
            "decode_only_s": round(med["decode"], 2),
            "decode_only_frames_per_s": round(n / med["decode"], 1),
        }
        for which in ("auto", "all"):
            info, frames = got[which]
            at = np.array([f.at for f in frames])
            row[which] = {
                "key_only": info.key_only,
                "decoded": info.frames_decoded,
                "compared": info.frames_compared,
                "keyframes": len(frames),
                "keyframes_per_min": round(len(frames) / (seconds / 60), 1),
                "first_last_keyframe_s": [round(float(at[0]), 2), round(float(at[-1]), 2)],
                "select_s": round(med[which], 2),
                "frames_covered_per_s": round(n / med[which], 1),
                "frames_decoded_per_s": round(info.frames_decoded / med[which], 1),
                "realtime_x": round(seconds / med[which], 1),
            }
        report["clips"][name] = row
        print(json.dumps({name: report["clips"][name]}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""A gallery with videos for the `imgcap serve` tests: serve_fixtures' photos plus real small
videos (tests/video_factory.py) whose keyframe results are written through the store, as
make_db writes the photos' (fake CLIP vectors from each keyframe's caption: no model runs)."""

from __future__ import annotations

from pathlib import Path

from search_fixtures import MODEL, embed_text
from serve_fixtures import make_gallery
from video_factory import make_video

from indexer.media.walk import content_hash
from indexer.store.database import Store
from indexer.store.frames import FrameRecord, VideoRecord, frame_key
from indexer.store.records import FileRecord, ResultRecord

# (seconds, caption) of beach.mp4's keyframes: scenes cut at 2 s and 4 s.
KEYFRAMES = [
    (0.0, "a dog running on a beach"),
    (2.0, "a birthday cake with candles"),
    (4.0, "people dancing at night"),
]


def add_video(db: Path, path: Path, keyframes: list[tuple[float, str]]) -> None:
    """Index the video file at `path` with these (seconds, caption) keyframes."""
    st = path.stat()
    h = content_hash(path)
    results, frames = [], []
    for at, caption in keyframes:
        ms = round(at * 1000)
        vec = 2.0 * embed_text(caption)
        results.append(ResultRecord(frame_key(h, ms), caption, vec, vec))
        frames.append(FrameRecord(h, ms))
    f = FileRecord(str(path), st.st_size, st.st_mtime_ns, h, 160, 96, "2023-07-01T12:00:00")
    with Store.open(db) as s:
        s.write_batch(
            MODEL, results, [f], keyframes=frames, videos=[VideoRecord(h, len(frames), 6.0)]
        )


def make_video_gallery(tmp_path: Path) -> tuple[Path, Path]:
    """(photo root, database): the serve_fixtures photos, beach.mp4 (H.264, browsers play it)
    and old.mp4 (MPEG-4 Part 2, which they don't), both with KEYFRAMES."""
    root, db = make_gallery(tmp_path)
    playable = make_video(root / "videos" / "beach.mp4", seconds=6, cuts=(2.0, 4.0))
    add_video(db, playable, KEYFRAMES)
    old = make_video(root / "videos" / "old.mp4", seconds=2, cuts=(1.0,), codec="mpeg4")
    add_video(db, old, KEYFRAMES[:2])
    return root, db

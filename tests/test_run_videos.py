"""Index runs with videos (tiny model): keyframes stored with their times, failures with reasons,
change detection, a killed run resumed without model re-work, moves, garbage, no extra."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3

import pytest
from PIL import Image
from run_settings import run_settings
from video_factory import break_video, make_video

from indexer.config import Settings
from indexer.run.pipeline import index_paths
from indexer.store.frames import frame_key

pytest.importorskip("av")


class Counting:
    """Wraps the captioner: counts pictures captioned; raises KeyboardInterrupt on call N."""

    def __init__(self, inner, stop_on_call: int | None = None):
        self.inner, self.stop_on_call = inner, stop_on_call
        self.images = self.calls = 0

    def caption(self, features, beams: int = 1, max_tokens: int = 67) -> list[str]:
        self.calls += 1
        if self.calls == self.stop_on_call:
            raise KeyboardInterrupt
        self.images += len(features)
        return self.inner.caption(features, beams=beams, max_tokens=max_tokens)


def counting(model, **kw):
    return dataclasses.replace(model, captioner=Counting(model.captioner, **kw))


def settings(tmp_path, model_dir, **kw) -> Settings:
    return run_settings(tmp_path, model_dir, **{"batch_size": 2, "video_gap": 1.0, **kw})


def rows(s: Settings, sql: str) -> list[tuple]:
    with sqlite3.connect(s.db_path) as c:
        return c.execute(sql).fetchall()


@pytest.fixture
def library(tmp_path):
    lib = tmp_path / "lib"
    make_video(lib / "holiday.mp4", seconds=8, cuts=(3.0, 6.0))
    broken = make_video(lib / "broken.mp4")
    break_video(broken)
    (lib / "notes.mov").write_text("not a video, only words " * 20)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(lib / "red.jpg")
    return lib


def test_video_indexed_by_keyframe(tmp_path, library, tiny_model, tiny_model_dir):
    s = settings(tmp_path, tiny_model_dir)
    model = counting(tiny_model)
    summary = index_paths([library], s, model=model)
    assert summary.new == 2 and summary.failed_this_run == 2
    reasons = {f["path"].rsplit("/", 1)[1]: f["reason"] for f in summary.failures}
    assert "video" in reasons["broken.mp4"] and reasons["notes.mov"].startswith("not a video")
    (video_hash,) = rows(s, "SELECT content_hash FROM files WHERE path LIKE '%holiday.mp4'")[0]
    frames = rows(s, "SELECT frame_key, video_hash, at_ms FROM video_frames ORDER BY at_ms")
    assert [f[1] for f in frames] == [video_hash] * 3
    at = [f[2] / 1000 for f in frames]
    assert at[0] == 0.0 and abs(at[1] - 3.0) <= 0.35 and abs(at[2] - 6.0) <= 0.35
    keys = {r[0] for r in rows(s, "SELECT content_hash FROM results")}
    assert {f[0] for f in frames} <= keys
    assert frames[1][0] == frame_key(video_hash, frames[1][2])
    assert rows(s, "SELECT keyframes, round(duration) FROM videos") == [(3, 8.0)]
    assert model.captioner.images == 4  # 3 keyframes + 1 photo
    failed = {p.rsplit("/", 1)[1] for (p,) in rows(s, "SELECT path FROM failures")}
    assert failed == {"broken.mp4", "notes.mov"}

    again = counting(tiny_model)
    summary = index_paths([library], s, model=again)
    assert summary.unchanged == 2 and summary.failures_standing == 2
    assert again.captioner.images == 0


def test_killed_run_resumes_without_model_rework(tmp_path, tiny_model, tiny_model_dir):
    lib = tmp_path / "lib"
    make_video(lib / "long.mp4", seconds=10, cuts=(2.0, 4.0, 6.0, 8.0))  # 5 keyframes
    s = settings(tmp_path, tiny_model_dir, captions="now")  # one pass: Ctrl-C inside batch 2
    first = counting(tiny_model, stop_on_call=2)  # batch 1 (2 keyframes) commits, then Ctrl-C
    summary = index_paths([lib], s, model=first)
    assert summary.interrupted
    assert len(rows(s, "SELECT * FROM video_frames")) == 2
    assert rows(s, "SELECT * FROM videos") == []  # not done yet
    again = counting(tiny_model)
    summary = index_paths([lib], s, model=again)
    assert not summary.interrupted
    assert again.captioner.images == 3  # only the keyframes the killed run had not captioned
    assert len(rows(s, "SELECT * FROM video_frames")) == 5
    assert rows(s, "SELECT keyframes FROM videos") == [(5,)]
    assert index_paths([lib], s, model=counting(tiny_model)).unchanged == 1


def test_duplicate_moved_and_deleted_videos(tmp_path, tiny_model, tiny_model_dir):
    lib = tmp_path / "lib"
    clip = make_video(lib / "a" / "clip.mp4", seconds=4, cuts=(2.0,))
    shutil.copy(clip, lib / "a" / "copy.mp4")
    s = settings(tmp_path, tiny_model_dir)
    model = counting(tiny_model)
    summary = index_paths([lib], s, model=model)
    assert summary.new == 2 and model.captioner.images == 2  # one copy's keyframes, once
    assert len(rows(s, "SELECT * FROM files")) == 2

    (lib / "b").mkdir()
    (lib / "a" / "clip.mp4").rename(lib / "b" / "moved.mp4")
    model = counting(tiny_model)
    summary = index_paths([lib], s, model=model)
    assert summary.moved == 1 and model.captioner.images == 0
    assert len(rows(s, "SELECT * FROM results")) == 2

    for p in (lib / "a" / "copy.mp4", lib / "b" / "moved.mp4"):
        p.unlink()
    index_paths([lib], s, model=counting(tiny_model))
    assert rows(s, "SELECT * FROM results") == []
    assert rows(s, "SELECT * FROM video_frames") == [] and rows(s, "SELECT * FROM videos") == []


def test_without_the_video_extra_videos_are_skipped_with_the_reason(
    tmp_path, library, tiny_model, tiny_model_dir, monkeypatch
):
    import indexer.media.video

    monkeypatch.setattr(indexer.media.video, "extra_installed", lambda: False)
    s = settings(tmp_path, tiny_model_dir)
    summary = index_paths([library], s, model=counting(tiny_model))
    assert summary.new == 1  # the photo
    assert summary.unsupported == {".mp4": 2, ".mov": 1}
    assert any("3 videos skipped" in w and "imgcap[video]" in w for w in summary.warnings)
    assert rows(s, "SELECT * FROM failures") == []


def test_dry_run_counts_videos(tmp_path, library, tiny_model_dir):
    s = settings(tmp_path, tiny_model_dir)
    summary = index_paths([library], s, dry_run=True)
    names = sorted(p.rsplit("/", 1)[1] for p in summary.would_process)
    # Nothing is opened for new files (as for photos): bad ones only show when decoded.
    assert names == ["broken.mp4", "holiday.mp4", "notes.mov", "red.jpg"]
    assert summary.unsupported == {}


def test_edited_video_is_redone_and_its_old_keyframes_go(tmp_path, tiny_model, tiny_model_dir):
    lib = tmp_path / "lib"
    clip = make_video(lib / "clip.mp4", seconds=4, cuts=(2.0,))
    s = settings(tmp_path, tiny_model_dir)
    index_paths([lib], s, model=counting(tiny_model))
    old = {k for (k,) in rows(s, "SELECT frame_key FROM video_frames")}
    make_video(clip, seconds=6, cuts=(1.5, 4.0))  # re-exported: new content, same path
    model = counting(tiny_model)
    summary = index_paths([lib], s, model=model)
    assert summary.changed == 1 and model.captioner.images == 3
    new = {k for (k,) in rows(s, "SELECT frame_key FROM video_frames")}
    assert len(new) == 3 and not old & new
    keys = {k for (k,) in rows(s, "SELECT content_hash FROM results")}
    assert keys == new  # the old keyframes' results were collected

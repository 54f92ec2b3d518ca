"""`imgcap caption` on a video: its keyframes (as `imgcap index` picks them) captioned, the
distinct captions joined in time order; checked against one keyframe at a time."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner
from video_factory import break_video, make_video

from cli import app
from indexer.config import Settings
from indexer.media.video import decode_for_model
from indexer.run.caption_files import caption_files

pytest.importorskip("av")


def test_video_caption_is_its_keyframes_captions(tmp_path, tiny_model, tiny_model_dir):
    clip = make_video(tmp_path / "clip.mp4", seconds=6, cuts=(2.0, 4.0))
    photo = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(photo)
    broken = break_video(make_video(tmp_path / "broken.mkv"))
    s = Settings(model=str(tiny_model_dir), device="cpu", max_tokens=4, video_gap=1.0)
    got = []
    caption_files([photo, clip, broken], s, lambda p, c, e: got.append((p.name, c, e)))
    assert [g[0] for g in got] == ["red.png", "clip.mp4", "broken.mkv"]  # input order
    assert got[2][1] is None and "video" in got[2][2]

    # Naive: each keyframe alone through the model.
    from indexer.media.preprocess import encoder_tensor

    enc = tiny_model.encoder
    _, _, pixels, extras = decode_for_model(str(clip), enc.image_size, 1.0, 60, 10**8)
    assert len(extras) == 3
    one_by_one = [
        tiny_model.captioner.caption(enc.encode_images(encoder_tensor(enc, px)[None]), 1, 4)[0]
        for px in pixels
    ]
    assert got[1][1] == " | ".join(dict.fromkeys(one_by_one))
    assert got[1][2] is None


def test_caption_cli_takes_a_video(tmp_path, tiny_model_dir):
    clip = make_video(tmp_path / "clip.mov", seconds=3, cuts=(1.5,))
    res = CliRunner().invoke(
        app, ["caption", str(clip), "--model", str(tiny_model_dir), "--device", "cpu", "--json"]
    )
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["path"] == str(clip) and line["caption"]

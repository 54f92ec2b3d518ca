"""`imgcap index --video-gap / --video-max-frames` reach the keyframe choice."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner
from video_factory import make_video

import cli

pytest.importorskip("av")


def _index(tmp_path, model_dir, name, *opts):
    db = tmp_path / f"{name}.db"
    args = ["index", str(tmp_path / "lib"), "--db", str(db), "--model", str(model_dir)]
    args += ["--device", "cpu", "--workers", "1", "--json", *opts]
    res = CliRunner().invoke(cli.app, args)
    if res.exit_code != 0:
        return res, None
    with sqlite3.connect(db) as c:
        return res, [ms / 1000 for (ms,) in c.execute("SELECT at_ms FROM video_frames ORDER BY 1")]


def test_gap_and_cap_options_choose_the_keyframes(tmp_path, tiny_model_dir):
    make_video(tmp_path / "lib" / "clip.mp4", seconds=8, cuts=(3.0, 6.0))
    res, every_cut = _index(tmp_path, tiny_model_dir, "gap1", "--video-gap", "1")
    assert res.exit_code == 0, res.output
    assert len(every_cut) == 3 and abs(every_cut[1] - 3.0) <= 0.35
    # A 4 s gap: the cut at 3 s comes too soon after the first keyframe; by 6 s the picture
    # still differs from that keyframe, so 6 s is the second one.
    res, wide = _index(tmp_path, tiny_model_dir, "gap4", "--video-gap", "4")
    assert res.exit_code == 0, res.output
    assert len(wide) == 2 and abs(wide[1] - 6.0) <= 0.35
    res, capped = _index(
        tmp_path, tiny_model_dir, "cap1", "--video-gap", "1", "--video-max-frames", "1"
    )
    assert res.exit_code == 0, res.output
    assert len(capped) == 1


@pytest.mark.parametrize("opts", [("--video-gap", "0"), ("--video-max-frames", "0")])
def test_out_of_range_values_are_usage_errors(tmp_path, tiny_model_dir, opts):
    (tmp_path / "lib").mkdir()
    res, _ = _index(tmp_path, tiny_model_dir, "bad", *opts)
    assert res.exit_code == 2 and opts[0] in res.output

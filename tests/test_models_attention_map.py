"""`imgcap caption PHOTO --attention OUT.png`: the per-word attention maps of a show-attend-tell
model, drawn with Pillow; clear refusals for models without attention and for several photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import cli
from indexer.models.attention_map import COLUMNS, LABEL, AttentionCaption, _words, render

runner = CliRunner()


@pytest.fixture(scope="module")
def sat_dir(tmp_path_factory) -> Path:
    from indexer.models.lstm import write_tiny_lstm_model

    return write_tiny_lstm_model(tmp_path_factory.mktemp("sat") / "m", "show-attend-tell")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "shapes.png"
    img = Image.new("RGB", (120, 90), (240, 240, 240))
    img.paste((220, 30, 30), (20, 20, 60, 60))
    img.save(path)
    return path


def test_attention_png_has_one_tile_per_word_and_the_same_caption(sat_dir, photo, tmp_path):
    from indexer.config import Settings
    from indexer.models.attention_map import attention_caption

    out = tmp_path / "att.png"
    r = runner.invoke(cli.app, ["caption", str(photo), "--model", str(sat_dir), "--device",
                                "cpu", "--attention", str(out), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    line = json.loads(r.stdout.strip().splitlines()[-1])
    plain = runner.invoke(cli.app, ["caption", str(photo), "--model", str(sat_dir), "--device",
                                    "cpu", "--json"])  # fmt: skip
    assert line["caption"] == json.loads(plain.stdout.strip().splitlines()[-1])["caption"]
    assert "written to" in r.stderr

    got = attention_caption(photo, Settings(device="cpu", model=str(sat_dir)))
    assert got.caption == line["caption"]
    for m in got.maps:
        assert m.shape == (4, 4)  # the tiny CLIP: 64 px / 16 px patches
        assert abs(float(m.sum()) - 1.0) < 1e-4
    tiles = 1 + len(got.words)
    cols = min(COLUMNS, tiles)
    with Image.open(out) as img:
        assert img.size == (cols * 224, -(-tiles // cols) * (224 + LABEL))


def test_heat_is_drawn_where_the_word_looked():
    pixels = np.full((64, 64, 3), 128, dtype=np.uint8)
    amap = np.zeros((4, 4))
    amap[0, 0] = 1.0  # all attention on the top-left cell
    sheet = np.asarray(render(AttentionCaption("a.", ["a"], [amap], pixels), tile=64))
    word_tile = sheet[:64, 64:128].astype(int)
    top_left, bottom_right = (
        word_tile[4:12, 4:12].mean((0, 1)),
        word_tile[-12:-4, -12:-4].mean((0, 1)),
    )
    assert top_left[0] > bottom_right[0] + 60  # red where it looked
    assert bottom_right.max() < 128  # darkened where it did not


class _Pieces:
    """A tokenizer whose ids decode to given BPE pieces."""

    def __init__(self, pieces):
        self.pieces = pieces

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_word_pieces_share_one_map():
    cap = type("Cap", (), {"tokenizer": _Pieces(["a", " tri", "angle", " on", "."])})()
    alphas = np.eye(5, 4, dtype=np.float64)[[0, 1, 2, 3, 3]]
    words, maps = _words(cap, [0, 1, 2, 3, 4], alphas)
    assert words == ["a", "triangle", "on", "."]
    assert np.allclose(maps[1], (alphas[1] + alphas[2]) / 2)


def test_models_without_attention_are_refused(tiny_model_dir, photo, tmp_path):
    from indexer.models.lstm import write_tiny_lstm_model

    out = tmp_path / "att.png"
    r = runner.invoke(cli.app, ["caption", str(photo), "--model", str(tiny_model_dir),
                                "--device", "cpu", "--attention", str(out)])  # fmt: skip
    assert r.exit_code == 2
    assert "is a clipcap model, which has no attention" in r.stderr
    sat = write_tiny_lstm_model(tmp_path / "st", "show-and-tell")
    r = runner.invoke(cli.app, ["caption", str(photo), "--model", str(sat), "--device", "cpu",
                                "--attention", str(out)])  # fmt: skip
    assert r.exit_code == 2 and "show-and-tell model" in r.stderr
    assert not out.exists()


def test_attention_takes_one_photo(sat_dir, photo, tmp_path):
    r = runner.invoke(cli.app, ["caption", str(photo), str(photo), "--model", str(sat_dir),
                                "--attention", str(tmp_path / "a.png")])  # fmt: skip
    assert r.exit_code == 2 and "exactly one image" in r.stderr

"""`imgcap train --arch show-and-tell|show-attend-tell` on the synthetic shapes world: both LSTM
captioners learn colour and shape (>= 90 % of held-out scenes, the bar ClipCap meets in
test_train_synthetic_world.py), the result is a model directory `--model` loads, the grid is cached
with the global features, a run resumes, and SCST fine-tunes them.

Like test_train_synthetic_world.py, the tiny model's CLIP is first taught to see the centred world
(its random weights separate colours but not shapes). One thread: see that module's docstring.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

SIZE, LAYOUT = 64, "centred"
N_SEE, N_TRAIN, N_HELD_OUT = 1000, 300, 60
EPOCHS = {"show-and-tell": 8, "show-attend-tell": 8}
LR = 5e-3  # an LSTM trained from scratch wants a large step (the paper: 4e-4 at 512 wide)
ARCHS = tuple(EPOCHS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import torch

    from indexer.models.random_weights import write_tiny_model
    from indexer.train.synthetic import generate_scenes, teach_clip, write_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("arch-world")
    data = write_dataset(root / "train", N_TRAIN, seed=0, fmt="csv", size=SIZE, layout=LAYOUT)
    seeing = write_tiny_model(root / "seeing", seed=0)
    teach_clip(seeing, generate_scenes(N_SEE, seed=0, size=SIZE, layout=LAYOUT), seed=0)
    yield {"root": root, "data": data, "seeing": seeing, "trained": {}}
    torch.set_num_threads(threads)


def _train(world, arch: str) -> Path:
    """`imgcap train DATA --from SEEING --arch ARCH` once per architecture (through the CLI)."""
    import cli

    if arch not in world["trained"]:
        out = world["root"] / arch
        r = CliRunner().invoke(
            cli.app,
            ["train", str(world["data"]), "--out", str(out), "--from", str(world["seeing"]),
             "--arch", arch, "--epochs", str(EPOCHS[arch]), "--lr", str(LR), "--warmup", "0",
             "--device", "cpu", "--json"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        world["trained"][arch] = (out, json.loads(r.stdout.strip().splitlines()[-1]))
    return world["trained"][arch][0]


def _says(caption: str, word: str) -> bool:
    return re.search(rf"\b{word}(e?s)?\b", caption) is not None


def _held_out_accuracy(model_dir: Path, beams: int = 1) -> tuple[float, list]:
    import torch

    from indexer.config import Settings
    from indexer.models.loading import load_model
    from indexer.train.synthetic import generate_scenes

    scenes = generate_scenes(N_HELD_OUT, seed=1, size=SIZE, layout=LAYOUT)
    model = load_model(str(model_dir), Settings(device="cpu"))
    pixels = torch.stack([model.encoder.preprocess(s.image) for s in scenes])
    feats, grid = model.encoder.encode_images_grid(pixels)
    captions = model.captioner.caption(feats, beams=beams, grid=grid)
    right = [
        _says(c, s.attributes["colour"]) and _says(c, s.attributes["shape"])
        for s, c in zip(scenes, captions, strict=True)
    ]
    wrong = [(c, s.captions[0]) for s, c, r in zip(scenes, captions, right, strict=True) if not r]
    return sum(right) / len(right), wrong


@pytest.mark.parametrize("arch", ARCHS)
def test_held_out_scenes_get_the_right_colour_and_shape(world, arch):
    from indexer.models.model_dir import read_spec

    out = _train(world, arch)
    spec = read_spec(out)
    assert spec["arch"] == arch and spec["trained"]["epoch"] == EPOCHS[arch]
    history = world["trained"][arch][1]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    accuracy, wrong = _held_out_accuracy(out)
    print(f"{arch}: held-out colour+shape {accuracy:.0%}")
    assert accuracy >= 0.9, wrong
    accuracy3, wrong = _held_out_accuracy(out, beams=3)
    assert accuracy3 >= 0.9, wrong


def test_grid_is_cached_with_the_global_features(world):
    from safetensors import safe_open

    out = _train(world, "show-attend-tell")
    shards = list((out / "training").glob("features-*.grid-*.safetensors"))
    assert len(shards) == 1  # one run that computed every grid: one shard
    with safe_open(str(shards[0]), framework="pt") as f:
        assert f.get_tensor("grid").shape == (N_TRAIN, 16, 64)  # 4 x 4 patches, width 64
        assert len(json.loads(f.metadata()["keys"])) == N_TRAIN
    # show-and-tell's cache has no grid
    assert not list((_train(world, "show-and-tell") / "training").glob("*.grid-*"))


def test_clipcap_options_are_refused_for_lstm_archs(world, tmp_path):
    import cli

    r = CliRunner().invoke(
        cli.app,
        ["train", str(world["data"]), "--out", str(tmp_path / "o"), "--from",
         str(world["seeing"]), "--arch", "show-and-tell", "--mapping", "transformer"],
    )  # fmt: skip
    assert r.exit_code == 2 and "--mapping is a ClipCap option" in r.output
    r = CliRunner().invoke(
        cli.app, ["train", str(world["data"]), "--out", str(tmp_path / "o"), "--arch", "rnn"]
    )
    assert r.exit_code == 2 and "unknown architecture 'rnn'" in r.output


def test_same_command_again_resumes_nothing_left(world, tmp_path):
    """A finished show-attend-tell run, run again: resumed at its end, features from the cache."""
    from indexer.config import Settings
    from indexer.train.loop import train
    from indexer.train.recipe import TrainConfig

    out = shutil.copytree(_train(world, "show-attend-tell"), tmp_path / "again")
    cfg = TrainConfig(data=world["data"], out=out, base=str(world["seeing"]),
                      arch="show-attend-tell", epochs=EPOCHS["show-attend-tell"], lr=LR,
                      warmup=0, seed=0)  # fmt: skip
    result = train(cfg, Settings(device="cpu"))
    assert result.resumed_from == (EPOCHS["show-attend-tell"], 0)
    assert result.features_computed == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_scst_fine_tunes_an_lstm_captioner(world, tmp_path, arch):
    """SCST runs on the LSTM's own policy (sample/greedy) and publishes the same architecture."""
    from indexer.config import Settings
    from indexer.models.model_dir import read_spec
    from indexer.train.loop import train
    from indexer.train.recipe import TrainConfig

    start = _train(world, arch)
    cfg = TrainConfig(data=world["data"], out=tmp_path / "scst", base=str(start), scst=True,
                      epochs=1, lr=1e-4, batch_size=50, warmup=0, samples=3, seed=0)  # fmt: skip
    result = train(cfg, Settings(device="cpu"))
    assert result.scst and result.history[0].reward is not None
    assert read_spec(tmp_path / "scst")["arch"] == arch
    accuracy, wrong = _held_out_accuracy(tmp_path / "scst")
    assert accuracy >= 0.9, wrong


def test_lstm_from_scratch_needs_no_gpt2_weights(tiny_model_dir, tmp_path, monkeypatch):
    """Without --from, an LSTM run takes the default model's CLIP and tokenizer only: GPT-2's
    hub weights (ClipCap's from-scratch base) are never fetched."""
    import indexer.models.download
    import indexer.train.base
    from indexer.config import Settings
    from indexer.models.model_dir import read_spec
    from indexer.train.loop import train
    from indexer.train.recipe import TrainConfig
    from indexer.train.synthetic import write_dataset

    def hub_file(entry, f, settings, download):  # the default model's files, from the tiny one
        part = "clip" if f in entry.clip_files else "tokenizer"
        return tiny_model_dir / part / ("vocab.json" if part == "tokenizer" else "x")

    def no_gpt2(net, settings):
        raise AssertionError("GPT-2's weights were asked for")

    monkeypatch.setattr(indexer.models.download, "hub_file", hub_file)
    monkeypatch.setattr(indexer.train.base, "load_hub_gpt2", no_gpt2)
    data = write_dataset(tmp_path / "data", 8, seed=0, fmt="csv", size=SIZE, layout=LAYOUT)
    cfg = TrainConfig(data=data, out=tmp_path / "st", arch="show-and-tell", epochs=1, lr=LR)
    result = train(cfg, Settings(device="cpu"))
    assert result.history and read_spec(tmp_path / "st")["arch"] == "show-and-tell"

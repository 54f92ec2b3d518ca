"""The synthetic shapes world end to end: train the tiny model, caption held-out scenes, score them
with `imgcap eval`, index new scenes and find them with `imgcap search`.

One training run (module fixture, ~40 s on 2 cores) is shared by the checks. Torch runs on one
thread here: for a model this small, two threads on a busy 2-core machine are up to 100x slower
(they spin-wait for each other), and the result is the same.

Known limit (measured, see the xfail below): the tiny model's CLIP has random weights, and random
CLIP features separate colours and backgrounds but not shapes (a 2-layer MLP probe on them gets
~93 % colour and ~35 % shape on held-out single-shape scenes; the shapes have equal areas, so
pooled random features barely differ). ClipCap keeps CLIP frozen, so no amount of captioner
training can recover the shape; the shape check needs a tiny CLIP that has been trained to see.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

SIZE = 64  # = the tiny CLIP's input: no resampling between the scene and the model
N_TRAIN, N_HELD_OUT = 300, 60


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import torch

    from indexer.config import Settings
    from indexer.models import write_tiny_model
    from indexer.synthetic import write_dataset
    from indexer.train import TrainConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("world")
    data = write_dataset(root / "train", N_TRAIN, seed=0, fmt="csv", size=SIZE)
    held_out = write_dataset(root / "held_out", N_HELD_OUT, seed=1, fmt="coco", size=SIZE)
    tiny = write_tiny_model(root / "tiny", seed=0)
    cfg = TrainConfig(
        data=data,
        out=root / "trained",
        base=str(tiny),
        epochs=40,
        lr=5e-3,  # a 2-layer, 64-wide GPT-2 needs ~100x the recipe's 2e-5
        warmup=0,
        seed=0,
    )
    result = train(cfg, Settings(device="cpu"))
    yield {"root": root, "tiny": tiny, "trained": result.out, "held_out": held_out,
           "result": result}  # fmt: skip
    torch.set_num_threads(threads)


def _caption_scenes(model_dir: Path, scenes) -> list[str]:
    import torch

    from indexer.config import Settings
    from indexer.models import load_model

    model = load_model(str(model_dir), Settings(device="cpu"))
    pixels = torch.stack([model.encoder.preprocess(s.image) for s in scenes])
    return model.captioner.caption(model.encoder.encode_images(pixels))


def _says(caption: str, word: str) -> bool:
    return re.search(rf"\b{word}(e?s)?\b", caption) is not None  # "circle" or "circles"


def test_training_converged(world):
    history = world["result"].history
    assert len(history) == 40
    assert history[-1].train_loss < 0.6 < history[0].train_loss


def test_held_out_scenes_get_the_right_colour(world):
    from indexer.synthetic import generate_scenes

    scenes = generate_scenes(N_HELD_OUT, seed=1, size=SIZE)
    captions = _caption_scenes(world["trained"], scenes)
    right = [_says(c, s.attributes["colour"]) for s, c in zip(scenes, captions, strict=True)]
    assert all(c.endswith(".") for c in captions)  # learned to stop
    truth = [s.captions[0] for s in scenes]
    assert sum(right) / len(right) >= 0.7, list(zip(captions, truth, strict=True))


@pytest.mark.xfail(
    strict=True,
    reason="the tiny model's random-weight CLIP does not encode shape (see module docstring); "
    "needs a tiny CLIP trained to see shapes",
)
def test_held_out_scenes_get_the_right_colour_and_shape(world):
    from indexer.synthetic import generate_scenes

    scenes = generate_scenes(N_HELD_OUT, seed=1, size=SIZE)
    captions = _caption_scenes(world["trained"], scenes)
    right = [
        _says(c, s.attributes["colour"]) and _says(c, s.attributes["shape"])
        for s, c in zip(scenes, captions, strict=True)
    ]
    assert sum(right) / len(right) >= 0.9


def _eval(model_dir: Path, data: Path, out: Path) -> dict:
    import cli

    r = CliRunner().invoke(
        cli.app,
        ["eval", str(data), "--model", str(model_dir), "--split", "train", "--device", "cpu",
         "--out", str(out), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text())["n_images"] == N_HELD_OUT
    return summary


def test_eval_reports_cider_well_above_the_untrained_model(world):
    root = world["root"]
    before = _eval(world["tiny"], world["held_out"], root / "before.json")
    after = _eval(world["trained"], world["held_out"], root / "after.json")
    assert after["n_images"] == N_HELD_OUT
    # Untrained captions are random tokens (CIDEr-D ~0); trained ones get background, colour and
    # the template right.
    assert after["scores"]["CIDEr-D"] > max(1.0, 5 * before["scores"]["CIDEr-D"])
    assert after["scores"]["BLEU-4"] > before["scores"]["BLEU-4"]
    for name in ("METEOR", "SPICE"):  # Java metrics: a score, or a reason why not
        assert after["scores"][name] is not None or name in after["unavailable"]


def test_index_then_keyword_search_finds_red_things(world, tmp_path):
    """`imgcap index` with the trained model, then `imgcap search "red circle" --mode keyword`.

    Single-shape scenes only (a keyword search need not stem "circles"). What is asserted is the
    part the tiny model can do (colour); red *circles* in the top 5 is in the xfail test below.
    """
    hits = _index_and_search(world, tmp_path)
    assert len(hits) == 5
    assert all("red" in h["caption"] for h in hits)
    assert sum(h["colour"] == "red" for h in hits) >= 4, hits


@pytest.mark.xfail(strict=True, reason="shape needs a CLIP that sees shapes (module docstring)")
def test_index_then_keyword_search_finds_red_circles(world, tmp_path):
    hits = _index_and_search(world, tmp_path)
    assert sum(h["colour"] == "red" and h["shape"] == "circle" for h in hits) >= 3, hits


def _index_and_search(world, tmp_path) -> list[dict]:
    import cli
    from indexer.synthetic import generate_scenes

    folder = tmp_path / "photos"
    folder.mkdir()
    truth = {}
    for scene in generate_scenes(90, seed=2, size=SIZE):
        if scene.attributes["count"] == 1:
            path = folder / f"{scene.id}.png"
            scene.image.save(path)
            truth[path.name] = scene.attributes
    db = tmp_path / "imgcap.db"
    runner = CliRunner()
    model = str(world["trained"])
    r = runner.invoke(
        cli.app,
        ["index", str(folder), "--db", str(db), "--model", model, "--device", "cpu",
         "--workers", "1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli.app,
        ["search", "red circle", "--mode", "keyword", "--db", str(db), "--model", model,
         "-n", "5", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    for h in hits:
        attrs = truth[Path(h["path"]).name]
        h["colour"], h["shape"] = attrs["colour"], attrs["shape"]
    return hits

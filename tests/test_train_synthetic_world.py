"""The synthetic shapes world end to end: teach the tiny model's CLIP to see, train its captioner,
caption held-out scenes, score them with `imgcap eval`, index new scenes and find them with
`imgcap search`.

The world is the "centred" layout: one large shape (4 shapes x 4 colours) on a neutral background.
The tiny model's CLIP has random weights, and random features separate colours but hardly shapes
(a probe on them gets ~35 % shape); ClipCap keeps CLIP frozen, so captioner training alone cannot
recover the shape. So the fixture first teaches the tiny CLIP's image tower to see the world
(`teach_clip`, supervised, 10-15 s), which writes the weights back into the model directory; from
there on everything loads them through the normal path (`load_model`, `imgcap train --from`,
`imgcap index`).

One run (module fixture, well under a minute on 2 cores) is shared by the checks. Torch runs on
one thread here: for a model this small, two threads on a busy 2-core machine are up to 100x slower
(they spin-wait for each other), and the result is the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

SIZE = 64  # = the tiny CLIP's input: no resampling between the scene and the model
LAYOUT = "centred"
N_SEE = 1000  # scenes the CLIP is taught on (seed 0); the captioner trains on the first N_TRAIN
N_TRAIN, N_HELD_OUT, N_SEARCH = 300, 60, 200  # seed 2: 7 red circles in 200
EPOCHS = 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import shutil

    import torch

    from indexer.config import Settings
    from indexer.models.random_weights import write_tiny_model
    from indexer.train.loop import train
    from indexer.train.recipe import TrainConfig
    from indexer.train.synthetic import generate_scenes, teach_clip, write_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("world")
    data = write_dataset(root / "train", N_TRAIN, seed=0, fmt="csv", size=SIZE, layout=LAYOUT)
    held_out = write_dataset(
        root / "held_out", N_HELD_OUT, seed=1, fmt="coco", size=SIZE, layout=LAYOUT
    )
    tiny = write_tiny_model(root / "tiny", seed=0)  # stays random: the "before" of the eval test
    seeing = shutil.copytree(tiny, root / "seeing")
    seen = teach_clip(seeing, generate_scenes(N_SEE, seed=0, size=SIZE, layout=LAYOUT), seed=0)
    cfg = TrainConfig(
        data=data,
        out=root / "trained",
        base=str(seeing),
        epochs=EPOCHS,
        lr=5e-3,  # a 2-layer, 64-wide GPT-2 needs ~100x the recipe's 2e-5
        warmup=0,
        seed=0,
    )
    result = train(cfg, Settings(device="cpu"))
    yield {"root": root, "tiny": tiny, "trained": result.out, "held_out": held_out,
           "result": result, "seen": seen}  # fmt: skip
    torch.set_num_threads(threads)


def _caption_scenes(model_dir: Path, scenes) -> list[str]:
    import torch

    from indexer.config import Settings
    from indexer.models.loading import load_model

    model = load_model(str(model_dir), Settings(device="cpu"))
    pixels = torch.stack([model.encoder.preprocess(s.image) for s in scenes])
    return model.captioner.caption(model.encoder.encode_images(pixels))


def _says(caption: str, word: str) -> bool:
    return re.search(rf"\b{word}(e?s)?\b", caption) is not None  # "circle" or "circles"


def test_clip_learned_to_see_the_world(world):
    # Accuracy of teach_clip's linear heads on the scenes it was taught on.
    assert min(world["seen"].values()) >= 0.95, world["seen"]


def test_training_converged(world):
    history = world["result"].history
    assert len(history) == EPOCHS
    assert history[-1].train_loss < 0.6 < history[0].train_loss


def test_held_out_scenes_get_the_right_colour_and_shape(world):
    from indexer.train.synthetic import generate_scenes

    scenes = generate_scenes(N_HELD_OUT, seed=1, size=SIZE, layout=LAYOUT)
    captions = _caption_scenes(world["trained"], scenes)
    assert all(c.endswith(".") for c in captions)  # learned to stop
    right = [
        _says(c, s.attributes["colour"]) and _says(c, s.attributes["shape"])
        for s, c in zip(scenes, captions, strict=True)
    ]
    wrong = [(c, s.captions[0]) for s, c, r in zip(scenes, captions, right, strict=True) if not r]
    assert sum(right) / len(right) >= 0.9, wrong


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


def test_index_then_keyword_search_finds_red_circles(world, tmp_path):
    """`imgcap index` of new scenes with the trained model, then `imgcap search "red circle"
    --mode keyword`: the top 5 are all red circles (the folder has more than 5)."""
    hits, truth = _index_and_search(world, tmp_path)
    assert sum(a["colour"] == "red" and a["shape"] == "circle" for a in truth.values()) > 5
    assert len(hits) == 5
    assert all(h["colour"] == "red" and h["shape"] == "circle" for h in hits), hits


def _index_and_search(world, tmp_path) -> tuple[list[dict], dict[str, dict]]:
    import cli
    from indexer.train.synthetic import generate_scenes

    folder = tmp_path / "photos"
    folder.mkdir()
    truth = {}
    for scene in generate_scenes(N_SEARCH, seed=2, size=SIZE, layout=LAYOUT):
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
    return hits, truth

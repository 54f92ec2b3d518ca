"""The synthetic shapes world end to end: teach the tiny model's CLIP to see, train its captioner,
caption held-out scenes, score them with `imgcap eval`, index new scenes and find them with
`imgcap search`.

The world and its trained model (tests/synthetic_world.py, how they are made and why) are built
once per session by conftest.py's `synthetic_world`, shared with test_search_retrieval_eval.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from synthetic_world import EPOCHS, LAYOUT, N_HELD_OUT, SIZE
from typer.testing import CliRunner

N_SEARCH = 200  # seed 2: 7 red circles in 200


@pytest.fixture(scope="module")
def world(synthetic_world):
    return synthetic_world


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

"""imgcap eval: captions from the model or from a results file, scored against all references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import UsageError
from indexer.train.evaluate import evaluate, read_captions_file


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from indexer.train.synthetic import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("eval"), 5, seed=0, fmt="coco", size=64, split="test"
    )


def _references(data: Path) -> dict[str, list[str]]:
    from indexer.train.datasets import load_dataset

    return {e.image_id: list(e.captions) for e in load_dataset(data).examples}


def test_captions_file_is_scored_against_every_reference(data, tmp_path):
    refs = _references(data)
    # COCO results format; ids as the JSON numbers COCO uses.
    results = [{"image_id": int(i), "caption": r[1]} for i, r in refs.items()]
    results.append({"image_id": 999, "caption": "not in the data."})
    path = tmp_path / "generated.json"
    path.write_text(json.dumps(results))
    res = evaluate(data, Settings(), split="test", captions_file=path, metrics=("BLEU-4",))
    assert res.n_images == 5 and res.model is None
    assert res.scores["BLEU-4"] > 0.9  # each candidate IS one of its references
    assert any("999" in p for p in res.problems)
    assert {img["image_id"] for img in res.images} == set(refs)
    assert all(len(img["references"]) >= 3 for img in res.images)


def test_read_captions_file_accepts_our_results_and_rejects_junk(tmp_path):
    ours = tmp_path / "results.json"
    ours.write_text(json.dumps({"images": [{"image_id": "a", "caption": "x."}]}))
    assert read_captions_file(ours) == {"a": "x."}
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps([{"caption": "no id"}]))
    with pytest.raises(UsageError, match="entry 0"):
        read_captions_file(junk)


def test_unknown_split_is_a_usage_error(tmp_path):
    from indexer.train.datasets import Example, write_examples

    img = tmp_path / "images" / "a.png"
    img.parent.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    data = write_examples([Example(img, ("a thing.",), "a", "train")], tmp_path, "karpathy")
    with pytest.raises(UsageError, match="splits found: train"):
        evaluate(data, Settings(), split="test")


def test_cli_eval_with_the_tiny_model_writes_captions_and_scores(data, tiny_model_dir, tmp_path):
    out = tmp_path / "results.json"
    r = CliRunner().invoke(
        cli.app,
        ["eval", str(data), "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "CIDEr-D" in r.stdout and "BLEU-4" in r.stdout
    saved = json.loads(out.read_text())
    assert saved["model"] == "tiny-0" and saved["n_images"] == 5
    assert all(isinstance(img["caption"], str) for img in saved["images"])
    assert set(saved["scores"]) >= {"BLEU-1", "ROUGE-L", "CIDEr-D", "METEOR", "SPICE"}
    for name in ("METEOR", "SPICE"):  # without Java: listed with a reason, not an error
        assert saved["scores"][name] is not None or saved["unavailable"][name]
    # Our own results file can be scored again with --captions.
    r = CliRunner().invoke(cli.app, ["eval", str(data), "--captions", str(out), "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["scores"]["CIDEr-D"] == pytest.approx(saved["scores"]["CIDEr-D"])

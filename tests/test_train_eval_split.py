"""`imgcap eval --split` on a dataset without splits scores everything, and says so: a warning on
stderr and `unsplit_images` / `warnings` in --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer.config import Settings
from indexer.train.evaluate import evaluate


def _dataset(tmp_path: Path, splits: list[str | None]) -> tuple[Path, Path]:
    """A CSV dataset (split column only when some split is given) and a captions file for it."""
    (tmp_path / "images").mkdir()
    with_split = any(s is not None for s in splits)
    lines = ["path,caption" + (",split" if with_split else "")]
    results = []
    for i, split in enumerate(splits):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "images" / f"{i}.png")
        lines.append(
            f"images/{i}.png,a red square {i}." + (f",{split or ''}" if with_split else "")
        )
        results.append({"image_id": f"images/{i}.png", "caption": f"a red square {i}."})
    data = tmp_path / "captions.csv"
    data.write_text("\n".join(lines) + "\n")
    captions = tmp_path / "generated.json"
    captions.write_text(json.dumps(results))
    return data, captions


def _eval(data: Path, captions: Path):
    return evaluate(data, Settings(), split="test", captions_file=captions, metrics=("BLEU-1",))


def test_no_split_column_scores_everything_and_warns(tmp_path):
    data, captions = _dataset(tmp_path, [None, None, None])
    res = _eval(data, captions)
    assert res.n_images == 3 and res.unsplit_images == 3
    assert len(res.warnings) == 1 and "no splits" in res.warnings[0]
    assert "all 3 images" in res.warnings[0]
    assert res.to_dict()["unsplit_images"] == 3


def test_a_real_split_gives_no_warning(tmp_path):
    data, captions = _dataset(tmp_path, ["test", "train", "test"])
    res = _eval(data, captions)
    assert res.n_images == 2 and res.unsplit_images == 0 and res.warnings == []


def test_rows_without_a_split_are_counted_in_the_warning(tmp_path):
    data, captions = _dataset(tmp_path, ["test", "", "train"])
    res = _eval(data, captions)
    assert res.n_images == 2 and res.unsplit_images == 1
    assert "1 images" in res.warnings[0] and "'test'" in res.warnings[0]


@pytest.mark.parametrize("json_out", [True, False])
def test_cli_warns_on_stderr_and_reports_it_in_json(tmp_path, json_out):
    import cli

    data, captions = _dataset(tmp_path, [None, None])
    args = ["eval", str(data), "--split", "test", "--captions", str(captions)]
    r = CliRunner().invoke(cli.app, args + (["--json"] if json_out else []))
    assert r.exit_code == 0, r.output
    assert "Warning:" in r.stderr and "no splits" in r.stderr
    assert "Warning" not in r.stdout
    if json_out:
        summary = json.loads(r.stdout)
        assert summary["unsplit_images"] == 2 and "no splits" in summary["warnings"][0]

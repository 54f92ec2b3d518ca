"""`imgcap caption` and `imgcap models` through the CLI, with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.config import Settings
from indexer.media.decode import decode_image
from indexer.models.loading import load_model

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
runner = CliRunner()


@pytest.fixture()
def photos(tmp_path) -> dict[str, Path]:
    good1 = tmp_path / "red.png"
    Image.new("RGB", (120, 90), (220, 20, 20)).save(good1)
    good2 = tmp_path / "blue photo.jpg"
    Image.new("RGB", (90, 120), (20, 20, 220)).save(good2)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    return {"good1": good1, "good2": good2, "bad": bad, "missing": tmp_path / "gone.png"}


def _env(tmp_path: Path) -> dict[str, str]:
    # An empty hub cache and models dir: nothing can come from the user's real caches.
    return {
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _expected_caption(model_dir: Path, path: Path) -> str:
    """The caption computed directly through the library, one image, no CLI."""
    model = load_model(str(model_dir), Settings(device="cpu"))
    img = decode_image(path, min_side=model.encoder.image_size).image
    feats = model.encoder.encode_images(model.encoder.preprocess(img)[None])
    return model.captioner.caption(feats)[0]


def test_caption_prints_one_line_per_image(tiny_model_dir, photos, tmp_path):
    args = ["caption", str(photos["good1"]), str(photos["good2"]), "--model", str(tiny_model_dir)]
    res = runner.invoke(app, args + ["--device", "cpu"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [str(photos["good1"]), str(photos["good2"])]
    assert lines[0].split("\t")[1] == _expected_caption(tiny_model_dir, photos["good1"])


def test_caption_json_and_bad_files(tiny_model_dir, photos, tmp_path):
    paths = [photos["good1"], photos["bad"], photos["missing"], photos["good2"]]
    args = [
        "caption",
        *map(str, paths),
        "--model",
        str(tiny_model_dir),
        "--json",
        "--batch-size",
        "1",
    ]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 1  # some inputs failed
    rows = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]  # input order kept
    assert rows[0]["caption"] and rows[3]["caption"]
    assert rows[1]["caption"] is None and "not an image" in rows[1]["error"]
    assert rows[2]["caption"] is None and "not found" in rows[2]["error"]


def test_caption_results_do_not_depend_on_batch_size(tiny_model_dir, photos, tmp_path):
    paths = [str(p) for p in SAMPLES.glob("*.jpg")] + [str(photos["good1"])]
    outs = []
    for bs in ("1", "4"):
        args = ["caption", *paths, "--model", str(tiny_model_dir), "--json", "--batch-size", bs]
        res = runner.invoke(app, args, env=_env(tmp_path))
        assert res.exit_code == 0, res.output
        outs.append([json.loads(line) for line in res.stdout.strip().splitlines()])
    assert outs[0] == outs[1]
    assert len(outs[0]) == len(paths)


def test_caption_with_beams(tiny_model_dir, photos, tmp_path):
    args = [
        "caption",
        str(photos["good1"]),
        "--model",
        str(tiny_model_dir),
        "--beams",
        "3",
        "--json",
    ]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["caption"]


def test_offline_hub_model_gives_a_clear_message(photos, tmp_path):
    res = runner.invoke(app, ["caption", str(photos["good1"])], env=_env(tmp_path))
    assert res.exit_code == 3
    assert "Traceback" not in res.output
    assert "clipcap-coco" in res.stderr and "coco_weights.pt" in res.stderr
    assert "imgcap models download clipcap-coco" in res.stderr and "--model DIR" in res.stderr


def test_unreachable_hub_is_a_clear_message_too(photos, tmp_path):
    """Not offline by flag, but the hub cannot be reached: same message, no retry storm."""
    env = _env(tmp_path)
    env["IMGCAP_OFFLINE"] = "0"
    env["HF_HUB_OFFLINE"] = "0"
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens there
    res = runner.invoke(
        app, ["caption", str(photos["good1"]), "--model", "clipcap-conceptual"], env=env
    )
    assert res.exit_code == 3
    assert "cannot reach 127.0.0.1:9" in res.stderr and "conceptual_weights.pt" in res.stderr


def test_manual_model_explains_where_to_get_the_checkpoint(photos, tmp_path):
    args = ["caption", str(photos["good1"]), "--model", "clipcap-coco-transformer"]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 3
    assert "1GYPToCqFREwi285wPLhuVExlz7DDUDfJ" in res.stderr and "--file" in res.stderr


def test_unknown_model_and_bad_directory(photos, tmp_path):
    res = runner.invoke(
        app, ["caption", str(photos["good1"]), "--model", "nope"], env=_env(tmp_path)
    )
    assert res.exit_code == 2 and "unknown model 'nope'" in res.stderr
    empty = tmp_path / "empty-model"
    empty.mkdir()
    res = runner.invoke(
        app, ["caption", str(photos["good1"]), "--model", str(empty)], env=_env(tmp_path)
    )
    assert res.exit_code == 3 and "imgcap-model.json" in res.stderr


def test_model_directory_missing_clip_weights(tiny_model_dir, photos, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "clip" / "open_clip_model.safetensors").unlink()
    args = ["caption", str(photos["good1"]), "--model", str(broken)]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 3 and "no CLIP weights" in res.stderr


def test_models_list_json(tmp_path):
    res = runner.invoke(app, ["models", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0
    rows = {r["name"]: r for r in map(json.loads, res.stdout.strip().splitlines())}
    assert set(rows) == {
        "clipcap-coco",
        "clipcap-conceptual",
        "clipcap-coco-transformer",
        "clip-multilingual",  # the query-side text tower for other languages
    }
    assert rows["clipcap-coco"]["default"] is True
    assert not any(r["local"] for r in rows.values())  # empty cache
    assert rows["clipcap-coco-transformer"]["mapping"] == "transformer"


def test_models_table_and_download_offline(tmp_path):
    res = runner.invoke(app, ["models"], env=_env(tmp_path))
    assert res.exit_code == 0 and "clipcap-coco" in res.stdout
    res = runner.invoke(app, ["models", "download", "clipcap-coco"], env=_env(tmp_path))
    assert res.exit_code == 3 and "offline" in res.stderr


def test_models_tiny_writes_a_loadable_model(tmp_path):
    out = tmp_path / "tiny"
    res = runner.invoke(app, ["models", "tiny", str(out), "--seed", "3"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    model = load_model(str(out), Settings(device="cpu"))
    assert model.name == "tiny-3"
    feats = model.encoder.encode_images(torch.zeros(2, 3, 64, 64))
    assert feats.shape == (2, 32)


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(app, ['caption', '--help']); assert r.exit_code == 0;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'open_clip' not in sys.modules and 'transformers' not in sys.modules"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_caption_of_only_bad_files_fails_before_importing_torch(tiny_model_dir, tmp_path):
    bad, folder = tmp_path / "notes.jpg", tmp_path / "folder"
    bad.write_text("not a photo")
    folder.mkdir()
    code = (
        "import sys; from typer.testing import CliRunner; from cli import app;"
        f"r = CliRunner().invoke(app, ['caption', {str(bad)!r}, {str(folder)!r}, '--model', "
        f"{str(tiny_model_dir)!r}, '--offline']);"
        "print(r.exit_code); print(r.stderr);"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    exit_code, *errors = r.stdout.strip().splitlines()
    assert exit_code == "1"
    assert f"{bad}: not an image" in errors[0] and f"{folder}: is a directory" in errors[1]


# Any attempt to import transformers fails, as where it is not installed, and is recorded with
# the module that asked. open_clip asks on import and takes the ImportError as "no Hugging Face
# text towers", which the caption path never needs.
_CAPTION_THEN_LIST_MODULES = """
import json, sys
from typer.testing import CliRunner
from cli import app

r = CliRunner().invoke(app, ["caption", *sys.argv[1:]])
heavy = ("transformers", "open_clip", "timm", "torchvision", "torch._dynamo")
print(json.dumps({"exit": r.exit_code, "out": r.output,
                  "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_caption_path_imports_none_of_the_heavy_libraries(tiny_model_dir, tmp_path):
    """A fresh process captions a photo without importing transformers, open_clip, timm,
    torchvision or torch._dynamo (the first `normal_` on a meta tensor imports it): together
    they were most of a cold caption's seconds (BENCHMARKS.md, cold start)."""
    photo = tmp_path / "red.png"
    Image.new("RGB", (80, 60), (220, 20, 20)).save(photo)
    args = [str(photo), "--model", str(tiny_model_dir), "--offline", "--beams", "2"]
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(
        [sys.executable, "-c", _CAPTION_THEN_LIST_MODULES, *args],
        cwd=root,
        env={**os.environ, **_env(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["exit"] == 0 and "red.png" in got["out"], got
    assert got["loaded"] == [], got

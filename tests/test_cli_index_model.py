"""`imgcap index` (and `imgcap caption`) without --model use the model its database already holds
(as a search reads it), loaded from where the database remembers; --model and IMGCAP_MODEL always
win."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def _env(tmp_path: Path, model: str | None = None) -> dict[str, str | None]:
    return {
        "IMGCAP_DB": str(tmp_path / "imgcap.db"),
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),  # empty: the default model is not here
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",  # a download attempt fails (exit 3) instead of reaching the hub
        "IMGCAP_MODEL": model,  # None: unset, whatever the machine running the tests has
    }


def _index(tmp_path: Path, folder: Path, *args: str, model: str | None = None):
    argv = ["index", str(folder), "--device", "cpu", "--workers", "1", "--json", *args]
    return runner.invoke(app, argv, env=_env(tmp_path, model))


def _photos(tmp_path: Path) -> Path:
    folder = tmp_path / "Photos"
    folder.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "red.png")
    return folder


def test_index_again_without_model_uses_the_databases_model(tiny_model_dir, tmp_path):
    folder = _photos(tmp_path)
    res = _index(tmp_path, folder, "--model", str(tiny_model_dir))
    assert res.exit_code == 0, res.output
    Image.new("RGB", (48, 64), (30, 30, 200)).save(folder / "blue.png")  # a new photo

    res = _index(tmp_path, folder)  # no --model: not clipcap-coco, which is not downloaded
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["model"], summary["new"], summary["captioned"]) == ("tiny-0", 1, 1)
    assert "model " + str(tiny_model_dir.resolve()) in res.stderr  # says which, and why


def test_a_named_model_wins_over_the_databases(tiny_model_dir, tiny_model_dir_b, tmp_path):
    folder = _photos(tmp_path)
    assert _index(tmp_path, folder, "--model", str(tiny_model_dir)).exit_code == 0
    for how in ({"args": ("--model", str(tiny_model_dir_b))}, {"model": str(tiny_model_dir_b)}):
        res = _index(tmp_path, folder, "--dry-run", *how.get("args", ()), model=how.get("model"))
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["model"] == "tiny-1", how


def test_the_databases_model_folder_gone_is_a_clear_error(tiny_model_dir, tmp_path):
    folder = _photos(tmp_path)
    moved = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, moved)
    assert _index(tmp_path, folder, "--model", str(moved)).exit_code == 0
    shutil.rmtree(moved)

    res = _index(tmp_path, folder)
    assert res.exit_code == 3 and "Traceback" not in res.output
    assert str(moved.resolve()) in res.stderr and "--model" in res.stderr


def test_caption_without_model_uses_the_databases_model(tiny_model_dir, tmp_path):
    folder = _photos(tmp_path)
    assert _index(tmp_path, folder, "--model", str(tiny_model_dir)).exit_code == 0
    argv = ["caption", str(folder / "red.png"), "--device", "cpu", "--json"]
    res = runner.invoke(app, argv, env=_env(tmp_path))  # not clipcap-coco: not downloaded
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["caption"]
    assert "model " + str(tiny_model_dir.resolve()) in res.stderr

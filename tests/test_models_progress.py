"""The "loading model" step on the progress displays of `caption` and `index`."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from cli import app
from search.cli.progress import IndexProgress, ModelLoading

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _photo(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    p = folder / "red.png"
    Image.new("RGB", (80, 60), (220, 20, 20)).save(p)
    return p


def test_caption_shows_the_load_steps(tiny_model_dir, tmp_path, monkeypatch):
    steps: list[str] = []
    monkeypatch.setattr(ModelLoading, "__call__", lambda self, step: steps.append(step))
    args = ["caption", str(_photo(tmp_path)), "--model", str(tiny_model_dir)]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert "build CLIP" in steps and "build ClipCap (GPT-2)" in steps


def test_index_shows_the_load_steps(tiny_model_dir, tmp_path, monkeypatch):
    steps: list[str] = []
    monkeypatch.setattr(IndexProgress, "loading", lambda self, step: steps.append(step))
    photo = _photo(tmp_path)
    args = ["index", str(photo.parent), "--model", str(tiny_model_dir)]
    res = runner.invoke(app, [*args, "--db", str(tmp_path / "lib.db")], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert "build CLIP" in steps and "load tokenizer" in steps


def test_model_loading_spinner_says_the_step_and_stops():
    loading = ModelLoading()
    loading.console = Console(file=io.StringIO(), force_terminal=True)
    loading.enabled = True
    loading("build CLIP")
    assert loading.status is not None
    loading("load tokenizer")
    loading.done()
    loading("late step")  # after done(): nothing restarts
    assert not loading.enabled

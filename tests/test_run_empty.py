"""`imgcap index` given a folder with nothing to index warns instead of a silent empty success."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.config import Settings
from indexer.run.pipeline import index_paths


def _settings(tmp_path: Path, model_dir) -> Settings:
    return Settings(db_path=tmp_path / "imgcap.db", model=str(model_dir), device="cpu", workers=1)


def test_empty_and_imageless_folders_warn(tmp_path, tiny_model, tiny_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("no photos here")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 0, 0)).save(photos / "red.png")

    s = index_paths([empty, docs, photos], _settings(tmp_path, "unused"), model=tiny_model)
    assert s.new == 1
    assert [w.split(" (")[0] for w in s.warnings] == [
        f"no images found in {empty}",
        f"no images found in {docs}",
    ]
    dry = index_paths([docs], _settings(tmp_path, tiny_model_dir), dry_run=True)
    assert dry.warnings and dry.warnings[0].startswith(f"no images found in {docs}")


def test_cli_warns_on_stderr_and_exits_0(tmp_path, tiny_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["index", str(empty), "--model", str(tiny_model_dir), "--db", str(tmp_path / "x.db")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"Warning: no images found in {empty}" in res.stderr
    assert "0 new" in res.stdout


def test_json_keeps_stdout_clean_and_still_warns_on_stderr(tmp_path, tiny_model_dir):
    import json

    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["index", str(empty), "--model", str(tiny_model_dir), "--db", str(tmp_path / "x.db")]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["warnings"][0].startswith(f"no images found in {empty}")
    assert f"Warning: no images found in {empty}" in res.stderr

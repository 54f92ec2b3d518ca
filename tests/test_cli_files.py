"""`imgcap index --exclude/--max-megapixels` and `imgcap caption --max-megapixels` through the
CLI: options reach the walk and the decoders, and the summary counts unsupported files."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "IMGCAP_DB": str(tmp_path / "data" / "imgcap.db"),
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "drafts").mkdir(parents=True)
    (root / "node_modules").mkdir()
    Image.new("RGB", (40, 30), (220, 20, 20)).save(root / "small.png")  # 1,200 pixels
    Image.new("RGB", (60, 50), (20, 20, 220)).save(root / "big.png")  # 3,000 pixels
    Image.new("RGB", (40, 30)).save(root / "drafts" / "draft.jpg")
    Image.new("RGB", (40, 30)).save(root / "node_modules" / "logo.png")
    (root / "clip.mov").write_bytes(b"\x00" * 32)
    (root / "notes.txt").write_text("hi")
    (root / "more notes.txt").write_text("hi")
    return root


def test_index_exclude_and_max_megapixels(tiny_model_dir, tmp_path):
    root = _folder(tmp_path)
    args = ["index", str(root), "--model", str(tiny_model_dir), "--workers", "1"]
    args += ["--exclude", "drafts", "--exclude", "*.mov", "--max-megapixels", "0.002"]
    res = runner.invoke(app, [*args, "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["new"] == 1  # small.png; drafts/ and node_modules/ never walked
    assert s["failures"] == [
        {"path": str(root / "big.png"), "reason": "image too large (3000 pixels > cap 2000)"}
    ]
    assert s["unsupported"] == {".txt": 2}  # the excluded .mov is not counted

    (root / "small.png").touch()  # something to report again, in text this time
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert "2 unsupported files skipped (.txt 2)" in res.stdout


def test_caption_max_megapixels(tiny_model_dir, tmp_path):
    root = _folder(tmp_path)
    args = ["caption", str(root / "small.png"), str(root / "big.png"), "--json"]
    args += ["--model", str(tiny_model_dir), "--max-megapixels", "0.002"]
    res = runner.invoke(app, args, env=_env(tmp_path))
    assert res.exit_code == 1  # one image could not be captioned
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["caption"]
    assert rows[1] == {
        "path": str(root / "big.png"),
        "caption": None,
        "error": "image too large (3000 pixels > cap 2000)",
    }

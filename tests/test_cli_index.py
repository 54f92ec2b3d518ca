"""`imgcap index` and `imgcap failures` through the CLI, with the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.store.database import Store
from indexer.store.lock import writer_lock

runner = CliRunner()
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    Image.new("RGB", (120, 90), (220, 20, 20)).save(root / "red.png")
    Image.new("RGB", (90, 120), (20, 20, 220)).save(root / "trip" / "blue photo.jpg")
    Image.new("RGB", (64, 64), (20, 200, 20)).save(root / "trip" / "green.webp")
    (root / "trip" / "notes.jpg").write_text("not a photo")
    (root / "empty.png").write_bytes(b"")
    return root


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "IMGCAP_DB": str(tmp_path / "data" / "imgcap.db"),  # the default location, overridden
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _index(folder: Path, model_dir: Path, tmp_path: Path, *extra: str):
    args = ["index", str(folder), "--model", str(model_dir), "--device", "cpu", "--workers", "1"]
    return runner.invoke(app, args + list(extra), env=_env(tmp_path))


def test_index_json_summary_then_nothing_to_do(folder, tiny_model_dir, tmp_path):
    res = _index(folder, tiny_model_dir, tmp_path, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["new"], summary["captioned"], summary["failed"]) == (3, 3, 2)
    assert summary["model"] == "tiny-0"
    assert summary["failed_reasons"] == {"not an image (unrecognised format)": 1, "empty file": 1}
    db = tmp_path / "data" / "imgcap.db"  # from $IMGCAP_DB
    with Store.open(db, create=False) as store:
        assert store.counts() == {"files": 3, "results": 3, "failures": 2}
    # The FAISS cache was brought up to date at the end of the run.
    from search.vectors.cache import sync_indexes

    assert all(not m["rebuilt"] and m["fresh"] for m in sync_indexes(db).values())

    again = _index(folder, tiny_model_dir, tmp_path, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["unchanged"] == 3
    assert json.loads(again.stdout)["captioned"] == 0


def test_index_human_summary_names_the_failures(folder, tiny_model_dir, tmp_path):
    res = _index(folder, tiny_model_dir, tmp_path)
    assert res.exit_code == 0, res.output
    assert "3 new" in res.stdout and "2 failed" in res.stdout
    assert "empty file" in res.stdout and "imgcap failures" in res.stdout


def test_dry_run_lists_work_and_writes_nothing(folder, tiny_model_dir, tmp_path):
    res = _index(folder, tiny_model_dir, tmp_path, "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["dry_run"] and summary["new"] == 5 and summary["captioned"] == 0
    assert str(folder / "red.png") in summary["would_process"]
    assert not (tmp_path / "data").exists()

    _index(folder, tiny_model_dir, tmp_path)
    os.remove(folder / "red.png")
    Image.new("RGB", (10, 10)).save(folder / "new.png")
    res = _index(folder, tiny_model_dir, tmp_path, "--dry-run")
    assert res.exit_code == 0, res.output
    assert f"  + {folder / 'new.png'}" in res.stdout
    assert f"  - {folder / 'red.png'}" in res.stdout
    assert "skip 2 unchanged, remove 1" in res.stdout


def _normalise(text: str, root: Path) -> str:
    """Golden-file form: root path and per-run numbers (mtime, time stamps) replaced."""
    import re

    text = text.replace(str(root), "<root>")
    text = re.sub(r"\b\d{19}\b", "<mtime_ns>", text)
    return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", "<failed_at>", text)


def test_failures_csv_json_and_table(folder, tiny_model_dir, tmp_path):
    empty = runner.invoke(app, ["failures"], env=_env(tmp_path))
    assert empty.exit_code == 4 and "no database" in empty.output

    _index(folder, tiny_model_dir, tmp_path)
    res = runner.invoke(app, ["failures", "--csv"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    golden = (GOLDEN / "failures.csv").read_text(encoding="utf-8")
    assert _normalise(res.stdout, folder) == golden

    res = runner.invoke(app, ["failures", "--json"], env=_env(tmp_path))
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["path"], r["reason"]) for r in rows] == [
        (str(folder / "empty.png"), "empty file"),
        (str(folder / "trip" / "notes.jpg"), "not an image (unrecognised format)"),
    ]
    res = runner.invoke(app, ["failures"], env=_env(tmp_path))
    assert f"{folder / 'empty.png'}\tempty file" in res.stdout


def test_second_index_on_the_same_db_is_refused(folder, tiny_model_dir, tmp_path):
    with writer_lock(tmp_path / "data" / "imgcap.db"):
        res = _index(folder, tiny_model_dir, tmp_path)
    assert res.exit_code == 4
    assert "already writing" in res.output


def test_missing_folder_is_a_usage_error(tiny_model_dir, tmp_path):
    res = _index(tmp_path / "nope", tiny_model_dir, tmp_path)
    assert res.exit_code == 2 and "not found" in res.output

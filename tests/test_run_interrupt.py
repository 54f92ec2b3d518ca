"""A run stopped at any moment is recorded as interrupted, never left 'running'."""

from __future__ import annotations

import pytest
from PIL import Image

from indexer.config import Settings
from indexer.run.pipeline import index_paths
from indexer.store.database import Store


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (60 * i, 90, 200)).save(root / f"p{i}.png")
    return root


def _settings(tmp_path, model_dir) -> Settings:
    return Settings(
        db_path=tmp_path / "imgcap.db", model=str(model_dir), device="cpu", workers=1,
        batch_size=2, max_tokens=4,
    )  # fmt: skip


def _ctrl_c_in(phase: str):
    def on_progress(progress) -> None:
        if progress.phase == phase:
            raise KeyboardInterrupt

    return on_progress


def _statuses(db) -> list[str]:
    with Store.open(db, create=False) as store:
        return [r["status"] for r in store.db["runs"].rows]


def test_ctrl_c_while_scanning_marks_the_run_interrupted(folder, tmp_path, tiny_model):
    settings = _settings(tmp_path, "unused")
    s = index_paths([folder], settings, model=tiny_model, on_progress=_ctrl_c_in("scanning"))
    assert s.interrupted and s.captioned == 0 and s.removed == 0
    assert _statuses(settings.db_path) == ["interrupted"]
    # Nothing was lost or half-done: the next run does everything.
    again = index_paths([folder], settings, model=tiny_model)
    assert (again.new, again.captioned, again.interrupted) == (3, 3, False)
    assert _statuses(settings.db_path) == ["interrupted", "completed"]


def test_a_second_ctrl_c_while_finishing_still_marks_the_run(folder, tmp_path, tiny_model):
    settings = _settings(tmp_path, "unused")
    with pytest.raises(KeyboardInterrupt):
        index_paths([folder], settings, model=tiny_model, on_progress=_ctrl_c_in("finishing"))
    assert _statuses(settings.db_path) == ["interrupted"]

"""A folder moved without `imgcap roots move` and indexed at its new place (issue 18 §5): the
root follows it when the move is unambiguous, the summary names the exact `roots move` command
when it is not, and no phantom photos are left behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from writeback_fixtures import make_photo

import cli
from indexer.config import Settings
from indexer.run.pipeline import index_paths
from indexer.store.database import Store


@pytest.fixture
def library(tmp_path, tiny_model_dir) -> tuple[Path, Settings]:
    old = tmp_path / "A" / "photos"
    make_photo(old / "red.jpg")
    make_photo(old / "trip" / "green.png", colour=(20, 200, 20))
    make_photo(old / "trip" / "blue.jpg", colour=(20, 20, 200))
    settings = Settings(
        db_path=tmp_path / "imgcap.db", model=str(tiny_model_dir), device="cpu", workers=1
    )
    return old, settings


def _status(db: Path) -> dict:
    res = CliRunner().invoke(cli.app, ["status", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _paths(db: Path) -> list[str]:
    with Store.open(db, create=False) as s:
        return [p for (p,) in s.db.execute("SELECT path FROM files ORDER BY path")]


def test_a_moved_root_follows_its_folder(library, tiny_model, tmp_path):
    old, settings = library
    first = index_paths([old], settings, model=tiny_model)
    assert first.captioned == 3
    new = tmp_path / "B"
    os.rename(old.parent, new)  # mv A B: the root A/photos is now B/photos
    dry = index_paths([new / "photos"], settings, dry_run=True)
    assert dry.roots_moved == [{"from": str(old), "to": str(new / "photos"), "photos": 3}]
    assert (dry.unchanged, dry.new, dry.removed) == (3, 0, 0)
    assert all(p.startswith(str(old)) for p in _paths(settings.db_path))  # nothing written

    s = index_paths([new / "photos"], settings, model=tiny_model)
    assert s.roots_moved == [{"from": str(old), "to": str(new / "photos"), "photos": 3}]
    assert any(f"imgcap roots move {old} {new / 'photos'}" in w for w in s.warnings)
    assert (s.unchanged, s.new, s.captioned, s.removed) == (3, 0, 0, 0)  # nothing hashed
    info = _status(settings.db_path)
    assert (info["files"], info["missing_on_disk"]) == (3, {})
    assert all(p.startswith(str(new / "photos") + os.sep) for p in _paths(settings.db_path))


def test_a_partial_move_names_the_command_which_then_leaves_no_phantoms(
    library, tiny_model, tmp_path
):
    old, settings = library
    index_paths([old], settings, model=tiny_model)
    new = tmp_path / "B"
    shutil.move(old, new)
    (new / "red.jpg").unlink()  # one photo deleted after the move: not unambiguous

    s = index_paths([new], settings, model=tiny_model)
    assert s.roots_moved == []
    cmd = f"`imgcap roots move {old} {new}`"
    [warning] = [w for w in s.warnings if cmd in w]
    assert "2 of its 3 photos" in warning
    assert (s.new, s.captioned) == (2, 0)  # reused by content
    assert _status(settings.db_path)["missing_on_disk"] == {str(old): 3}  # the phantoms

    res = CliRunner().invoke(
        cli.app, ["roots", "move", str(old), str(new), "--db", str(settings.db_path), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert (json.loads(res.stdout)["photos"], json.loads(res.stdout)["found"]) == (1, 0)
    assert _status(settings.db_path)["missing_on_disk"] == {str(new): 1}  # red.jpg, flagged
    again = index_paths([new], settings, model=tiny_model)
    assert (again.unchanged, again.removed, again.warnings) == (2, 1, [])
    assert _paths(settings.db_path) == [
        str(new / "trip" / "blue.jpg"),
        str(new / "trip" / "green.png"),
    ]
    assert _status(settings.db_path)["missing_on_disk"] == {}


def test_a_root_indexed_at_its_new_place_before_is_merged(library, tiny_model, tmp_path):
    """A database left with phantoms by an older imgcap (the copy indexed, then the old folder
    deleted) is repaired by the next run over the new place."""
    old, settings = library
    index_paths([old], settings, model=tiny_model)
    new = tmp_path / "B"
    shutil.copytree(old, new)  # copy2 keeps the modification times
    assert index_paths([new], settings, model=tiny_model).new == 3  # while A was still there
    shutil.rmtree(old.parent)
    assert _status(settings.db_path)["missing_on_disk"] == {str(old): 3}

    s = index_paths([new], settings, model=tiny_model)
    assert s.roots_moved == [{"from": str(old), "to": str(new), "photos": 3}]
    assert (s.unchanged, s.removed, s.captioned) == (3, 0, 0)
    assert _status(settings.db_path)["missing_on_disk"] == {}
    assert len(_paths(settings.db_path)) == 3


def test_a_gone_root_is_not_moved_onto_an_unrelated_folder(library, tiny_model, tmp_path):
    old, settings = library
    index_paths([old], settings, model=tiny_model)
    shutil.rmtree(old)  # the drive unmounted (its mount point removed)
    other = tmp_path / "other"
    make_photo(other / "red.jpg", colour=(1, 2, 3))  # same name, another photo

    s = index_paths([other], settings, model=tiny_model)
    assert s.roots_moved == [] and not any("roots move" in w for w in s.warnings)
    assert _status(settings.db_path)["missing_on_disk"] == {str(old): 3}


def test_photos_moved_into_another_root_are_found_by_content(library, tiny_model, tmp_path):
    old, settings = library
    other = tmp_path / "library"
    make_photo(other / "own.jpg", colour=(90, 90, 90))
    index_paths([old, other], settings, model=tiny_model)
    shutil.copytree(old, other / "from A", copy_function=shutil.copy)  # new mtimes
    shutil.rmtree(old.parent)

    s = index_paths([other / "from A"], settings, model=tiny_model)
    assert (s.new, s.captioned, s.roots_moved) == (3, 0, [])
    cmd = f"`imgcap roots remove {old}`"
    [warning] = [w for w in s.warnings if cmd in w]
    assert f"3 of its 3 photos are in {other / 'from A'} (inside the root {other})" in warning
    res = CliRunner().invoke(
        cli.app, ["roots", "remove", str(old), "--db", str(settings.db_path), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"] == 0  # every caption still used, in the new place
    info = _status(settings.db_path)
    assert (info["files"], info["missing_on_disk"]) == (4, {})

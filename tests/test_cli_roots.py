"""A portable index through the CLI, with the tiny model: `imgcap roots`, `roots move`,
`index --db-here` and finding that database from the current folder (issue 13 §4)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.config import find_db_here
from indexer.store.database import Store

runner = CliRunner()


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "drive" / "photos"
    (root / "trip").mkdir(parents=True)
    Image.new("RGB", (120, 90), (220, 20, 20)).save(root / "red.png")
    Image.new("RGB", (90, 120), (20, 20, 220)).save(root / "trip" / "blue photo.jpg")
    Image.new("RGB", (64, 64), (20, 200, 20)).save(root / "trip" / "green.webp")
    (root / "empty.png").write_bytes(b"")  # a failure, which must move with its root
    return root


def _env(tmp_path: Path, db: Path | None) -> dict[str, str | None]:
    return {
        "IMGCAP_DB": str(db) if db else None,  # None: unset, so discovery is what finds it
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _run(tmp_path, db, *args):
    return runner.invoke(app, [str(a) for a in args], env=_env(tmp_path, db))


def _index(tmp_path, db, model_dir, *args):
    base = ["index", "--model", model_dir, "--device", "cpu", "--workers", "1", "--json"]
    res = _run(tmp_path, db, *base, *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _paths(db: Path) -> tuple[list[str], list[str]]:
    with Store.open(db, create=False) as s:  # a reader: follows a travelling database
        files = [p for (p,) in s.db.execute("SELECT path FROM files ORDER BY path")]
        return files, [f["path"] for f in s.failures()]


def test_roots_move_repoints_without_model_work(folder, tiny_model_dir, tmp_path):
    db = tmp_path / "data" / "imgcap.db"
    first = _index(tmp_path, db, tiny_model_dir, folder)
    assert (first["captioned"], first["failed"]) == (3, 1)
    res = _run(tmp_path, db, "roots", "--json")
    assert res.exit_code == 0, res.output
    [root] = [json.loads(line) for line in res.stdout.splitlines()]
    assert (root["path"], root["photos"], root["exists"]) == (str(folder), 3, True)
    assert root["db_relative"] is None  # the database is not inside the root

    moved_to = tmp_path / "other drive" / "pics"
    moved_to.parent.mkdir()
    os.rename(folder, moved_to)
    res = _run(tmp_path, db, "roots")
    assert res.exit_code == 0 and "NO" in res.stdout and "roots move" in res.stderr

    res = _run(tmp_path, db, "roots", "move", folder, moved_to, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) | {"root": 0} == {
        "root": 0,
        "from": str(folder),
        "to": str(moved_to),
        "photos": 3,
        "found": 3,
    }
    files, failures = _paths(db)
    assert files and all(p.startswith(str(moved_to) + os.sep) and os.path.exists(p) for p in files)
    assert failures == [str(moved_to / "empty.png")]
    # The moved photos are unchanged for the next run: nothing captioned, nothing removed, and
    # the failure stands (not retried).
    again = _index(tmp_path, db, tiny_model_dir, moved_to)
    assert (again["unchanged"], again["captioned"], again["removed"]) == (3, 0, 0)
    assert again["failures_standing"] == 1


def test_roots_move_refusals(folder, tiny_model_dir, tmp_path):
    db = tmp_path / "db.db"
    other = tmp_path / "elsewhere"
    (other / "inner").mkdir(parents=True)
    _index(tmp_path, db, tiny_model_dir, folder, other)
    before = _paths(db)
    for args, message in (
        (["/no/such/root", other], "not an index root"),
        ([folder, tmp_path / "missing"], "not a folder"),
        ([folder, other / "inner"], "overlaps"),
    ):
        res = _run(tmp_path, db, "roots", "move", *args)
        assert res.exit_code == 2 and message in res.stderr, res.output
    assert _paths(db) == before
    res = _run(tmp_path, tmp_path / "none.db", "roots", "move", folder, other)
    assert res.exit_code == 2 and "no database" in res.stderr


def test_db_here_travels_with_its_folder(folder, tiny_model_dir, tmp_path, monkeypatch):
    hidden = folder / ".imgcap" / "not a photo to index.png"  # the index's own folder
    hidden.parent.mkdir()
    Image.new("RGB", (32, 32)).save(hidden)
    summary = _index(tmp_path, None, tiny_model_dir, folder, "--db-here", "--include-hidden")
    assert summary["captioned"] == 3  # .imgcap is never walked, even with --include-hidden
    db = folder / ".imgcap" / "imgcap.db"
    assert db.is_file()

    # Commands run in (or below) the folder find the database, as git finds .git.
    monkeypatch.chdir(folder / "trip")
    assert find_db_here() == db
    res = _run(tmp_path, None, "roots", "--json")
    assert res.exit_code == 0, res.output
    [root] = [json.loads(line) for line in res.stdout.splitlines()]
    assert (root["path"], root["db_relative"], root["photos"]) == (str(folder), "..", 3)

    # The drive is copied to another machine / mount point; the old one is gone.
    new = tmp_path / "mnt" / "usb" / "photos"
    shutil.copytree(folder, new)
    shutil.rmtree(folder)
    monkeypatch.chdir(new)
    res = _run(tmp_path, None, "export", "-", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    exported = [json.loads(line)["path"] for line in res.stdout.splitlines()]
    assert len(exported) == 3
    assert all(p.startswith(str(new) + os.sep) and os.path.exists(p) for p in exported)
    files, failures = _paths(new / ".imgcap" / "imgcap.db")
    assert sorted(exported) == files and failures == [str(new / "empty.png")]

    again = _index(tmp_path, None, tiny_model_dir, new)  # found from the current folder
    assert (again["unchanged"], again["captioned"], again["removed"]) == (3, 0, 0)


def test_db_here_usage_errors(folder, tmp_path):
    for args in (
        ["index", folder, "--db-here", "--db", tmp_path / "x.db"],
        ["index", folder, tmp_path, "--db-here"],
        ["index", folder / "red.png", "--db-here"],
    ):
        res = _run(tmp_path, None, *args)
        assert res.exit_code == 2 and "--db-here" in res.stderr, res.output
    assert not (folder / ".imgcap").exists()


def test_discovery_order(tmp_path, monkeypatch):
    from indexer.config import Settings

    here = tmp_path / "a" / ".imgcap" / "imgcap.db"
    here.parent.mkdir(parents=True)
    here.write_bytes(b"")
    (tmp_path / "a" / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a" / "b")
    monkeypatch.delenv("IMGCAP_DB", raising=False)
    assert Settings.from_env().db_path == here
    monkeypatch.setenv("IMGCAP_DB", str(tmp_path / "env.db"))
    assert Settings.from_env().db_path == tmp_path / "env.db"
    assert Settings.from_env(db_path=tmp_path / "opt.db").db_path == tmp_path / "opt.db"
    monkeypatch.chdir(tmp_path)
    assert find_db_here() is None


def test_roots_remove_dry_run_then_remove_keeps_a_persons_caption(
    tmp_path, tiny_model, tiny_model_dir
):
    """`roots remove --dry-run` changes nothing; `roots remove` drops the root's rows and the
    results no other photo uses, but a caption a person wrote is kept (counted by status) and
    is back, with no model work, when the same photos are indexed again."""
    from writeback_fixtures import make_photo

    from indexer.config import Settings
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    cake = make_photo(root / "cake.jpg")
    make_photo(root / "sea.png", colour=(10, 30, 200))
    (root / "bad.jpg").write_bytes(b"not an image")  # a failure row under the root
    db = tmp_path / "imgcap.db"
    # model=DIR: the run records the directory, where caption-set loads the text encoder from
    settings = Settings(db_path=db, model=str(tiny_model_dir), device="cpu", workers=1)
    index_paths([root], settings, model=tiny_model)
    res = runner.invoke(app, ["caption-set", str(cake), "Grandma's zebra cake", "--db", str(db)])
    assert res.exit_code == 0, res.output

    def rows() -> tuple[int, int, int]:
        with Store.open(db, create=False) as s:
            return tuple(s.counts()[k] for k in ("files", "results", "failures"))

    before = rows()
    assert before == (2, 2, 1)
    res = runner.invoke(app, ["roots", "remove", str(root), "--dry-run", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "would drop 2 photos, 1 failures" in res.stdout and "1 captions you wrote" in res.stdout
    assert rows() == before

    res = runner.invoke(app, ["roots", "remove", str(root), "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["photos"], doc["failures"], doc["your_captions"], doc["results"]) == (2, 1, 1, 1)
    assert rows() == (0, 1, 0)  # the edited result stays
    res = runner.invoke(app, ["roots", "--db", str(db), "--json"])
    assert res.stdout.strip() == ""
    status = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert (status["files"], status["kept_captions"]) == (0, 1)

    again = index_paths([root], settings, model=tiny_model)
    assert (again.captioned, again.reused) == (1, 1)  # the sea again; the cake reused
    res = runner.invoke(app, ["export", "-", "--db", str(db), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    by_name = {Path(r["path"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert (by_name["cake.jpg"]["caption"], by_name["cake.jpg"]["source"]) == (
        "Grandma's zebra cake",
        "user",
    )
    status = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert status["kept_captions"] == 0


def test_roots_remove_unknown_root_names_the_roots(tmp_path, folder):
    db = tmp_path / "imgcap.db"
    with Store.open(db) as store:
        from indexer.store.roots import add_roots

        add_roots(store.db, [str(folder)], db)
    res = _run(tmp_path, db, "roots", "remove", tmp_path / "nope")
    assert res.exit_code == 2 and str(folder) in res.output and "Traceback" not in res.output

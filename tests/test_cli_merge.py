"""`imgcap merge OTHER.db` end to end with the tiny model: the merged photos need no model work
afterwards, the vector cache is fresh, a travelling database merges from where it is now."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.store.database import Store

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "IMGCAP_DB": None,
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _cli(tmp_path, *args):
    return runner.invoke(app, [str(a) for a in args], env=_env(tmp_path))


def _index(tmp_path, model_dir, *args) -> dict:
    res = _cli(
        tmp_path,
        "index",
        "--model",
        model_dir,
        "--device",
        "cpu",
        "--workers",
        "1",
        "--json",
        *args,
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_merge_then_index_does_no_model_work(tiny_model_dir, tmp_path):
    desktop, laptop = tmp_path / "desktop", tmp_path / "laptop"
    desktop.mkdir()
    laptop.mkdir()
    Image.new("RGB", (80, 60), (200, 30, 30)).save(desktop / "red.png")
    Image.new("RGB", (60, 80), (30, 30, 200)).save(laptop / "blue.png")
    shutil.copy(desktop / "red.png", laptop / "red copy.png")  # same content on both
    db = tmp_path / "desktop.db"
    _index(tmp_path, tiny_model_dir, desktop, "--db", db)
    # The laptop keeps its index on its drive; the drive is then mounted somewhere else.
    _index(tmp_path, tiny_model_dir, laptop, "--db-here")
    mounted = tmp_path / "mnt" / "laptop"
    shutil.copytree(laptop, mounted)
    shutil.rmtree(laptop)

    res = _cli(tmp_path, "merge", mounted / ".imgcap" / "imgcap.db", "--db", db, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["roots_added"] == [str(mounted)]
    assert (report["files_added"], report["results_added"], report["conflict_count"]) == (2, 1, 0)
    with Store.open(db, create=False) as s:
        paths = sorted(p for (p,) in s.db.execute("SELECT path FROM files"))
    assert paths == sorted(
        [str(desktop / "red.png"), str(mounted / "blue.png"), str(mounted / "red copy.png")]
    )
    from search.vectors.cache import sync_indexes

    assert all(m["fresh"] and not m["rebuilt"] for m in sync_indexes(db).values())
    # Everything merged is known: indexing the laptop's folder here captions nothing.
    again = _index(tmp_path, tiny_model_dir, mounted, "--db", db)
    assert (again["unchanged"], again["captioned"], again["new"]) == (2, 0, 0)

    res = _cli(tmp_path, "merge", mounted / ".imgcap" / "imgcap.db", "--db", db)
    assert res.exit_code == 0, res.output
    assert "Nothing new" in res.stdout


def test_merge_refusal_exit_code(tmp_path):
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    import sqlite3

    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.commit()
    conn.close()
    res = _cli(tmp_path, "merge", other, "--db", tmp_path / "mine.db")
    assert res.exit_code == 4 and "not an imgcap database" in res.stderr, res.output

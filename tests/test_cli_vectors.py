"""`imgcap index` of one new photo, then `imgcap search`: the FAISS cache gets an add (seen in its
pointer: same base, one more update), never a rebuild (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

import cli
from search.vectors import cache, files

runner = CliRunner()


def _pointer(db: Path) -> dict:
    (p,) = files.index_dir(db).glob("*.json")
    return json.loads(p.read_text())


def _index(folder: Path, db: Path, model: Path):
    args = ["index", str(folder), "--db", str(db), "--model", str(model), "--device", "cpu",
            "--workers", "1", "--json"]  # fmt: skip
    r = runner.invoke(cli.app, args, env={"IMGCAP_OFFLINE": "1"})
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _search(db: Path, model: Path) -> list[dict]:
    r = runner.invoke(cli.app, ["search", "photo", "--db", str(db), "--model", str(model),
                                "--json", "-n", "50"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def test_index_one_new_photo_then_search_adds_without_rebuilding(
    tmp_path, tiny_model_dir, monkeypatch
):  # fmt: skip
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        Image.new("RGB", (80, 60), colour).save(folder / f"p{i}.png")
    db = tmp_path / "lib.db"
    _index(folder, db, tiny_model_dir)
    assert len(_search(db, tiny_model_dir)) == 3
    first = _pointer(db)

    builds: list[str] = []
    real = cache.build_model
    monkeypatch.setattr(cache, "build_model", lambda *a, **k: builds.append(1) or real(*a, **k))
    Image.new("RGB", (80, 60), (240, 240, 20)).save(folder / "new.png")
    assert _index(folder, db, tiny_model_dir)["new"] == 1
    after_index = _pointer(db)  # the run's end brought the cache up to date: an add
    hits = _search(db, tiny_model_dir)
    assert builds == [], "no rebuild, neither at the end of the index run nor at the search"
    assert _pointer(db) == after_index, "the search found the cache fresh"
    assert after_index["base_generation"] == first["base_generation"]
    assert after_index["files"]["image"] == first["files"]["image"], "the base file kept"
    assert (after_index["updates"], after_index["delta"], after_index["vectors"]) == (1, 1, 4)
    assert sorted(Path(h["path"]).name for h in hits) == ["new.png", "p0.png", "p1.png", "p2.png"]

"""`imgcap caption-set`: a person's caption, searchable at once, kept by every later index run,
written back as `source: user`; `--clear` returns to the generated caption."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner
from writeback_fixtures import make_photo

import cli
from indexer.config import Settings
from indexer.metadata import xmp


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def test_caption_set_survives_reindex_and_is_written_back(
    tmp_path, tiny_model, tiny_model_dir, monkeypatch
):
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    photo = make_photo(root / "a.jpg")
    make_photo(root / "b.jpg", colour=(10, 200, 10))
    db = tmp_path / "imgcap.db"
    # model=DIR: the run records the directory, where caption-set loads the text encoder from
    settings = Settings(
        db_path=db, model=str(tiny_model_dir), device="cpu", workers=1, max_tokens=8
    )
    index_paths([root], settings, model=tiny_model)
    monkeypatch.setenv("IMGCAP_DB", str(db))

    res = invoke("caption-set", photo, "Grandma's zebra cake", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["caption"], doc["caption_source"]) == ("Grandma's zebra cake", "user")

    def found(word):
        res = invoke("search", word, "--mode", "keyword", "--json")
        assert res.exit_code == 0, res.output
        return [json.loads(line) for line in res.stdout.splitlines()]

    assert [h["path"] for h in found("zebra")] == [str(photo)]

    again = index_paths([root], settings, model=tiny_model)
    assert again.captioned == 0
    os.utime(photo, ns=(1, 2_000_000_000_000_000_000))  # touched, same bytes: rehashed, kept
    index_paths([root], settings, model=tiny_model)
    assert [h["caption"] for h in found("zebra")] == ["Grandma's zebra cake"]

    res = invoke("write-back", photo)
    assert res.exit_code == 0, res.output
    fields = xmp.read_fields(xmp.parse((root / "a.jpg.xmp").read_bytes(), "x"))
    assert (fields.description, fields.imgcap["source"]) == ("Grandma's zebra cake", "user")

    res = invoke("caption-set", photo, "--clear")
    assert res.exit_code == 0, res.output
    assert res.stdout.rstrip().endswith("(generated)")
    assert found("zebra") == []


def test_caption_set_usage_and_unindexed_photos(tmp_path, monkeypatch):
    from search_fixtures import Photo, make_db

    db = make_db(tmp_path / "photos", [Photo("a.png", "a cat")], tmp_path / "imgcap.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    assert invoke("caption-set", tmp_path / "photos/a.png", "x", "--clear").exit_code == 2
    assert invoke("caption-set", tmp_path / "photos/a.png").exit_code == 2
    res = invoke("caption-set", tmp_path / "elsewhere.png", "x")
    assert res.exit_code == 1
    assert "is not in the index" in res.output

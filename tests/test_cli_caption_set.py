"""`imgcap caption-set`: a person's caption, searchable at once, kept by every later index run,
written back as `source: user`; `--clear` returns to the generated caption."""

from __future__ import annotations

import json
import os

import pytest
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


def test_a_videos_caption_is_the_whole_videos_and_failures_say_why(
    tmp_path, tiny_model, tiny_model_dir, monkeypatch
):
    pytest.importorskip("av")
    from serve_fixtures import client
    from video_factory import make_video

    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    video = make_video(root / "party.mp4", seconds=3, cuts=(1.5,))
    photo = make_photo(root / "a.jpg")
    (root / "notes.jpg").write_text("a shopping list, not a picture")
    db = tmp_path / "imgcap.db"
    settings = Settings(
        db_path=db, model=str(tiny_model_dir), device="cpu", workers=1, max_tokens=4,
        video_gap=1.0,
    )  # fmt: skip
    index_paths([root], settings, model=tiny_model)
    monkeypatch.setenv("IMGCAP_DB", str(db))

    res = invoke("caption-set", video, "Grandma's zebra party", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["path"], doc["caption"], doc["caption_source"]) == (
        str(video), "Grandma's zebra party", "user",
    )  # fmt: skip
    hits = invoke("search", "zebra", "--mode", "keyword", "--json")
    assert [json.loads(h)["path"] for h in hits.stdout.splitlines()] == [str(video)]  # once
    assert invoke("export", tmp_path / "out.csv").exit_code == 0
    from search.export import read_export

    row = next(r for r in read_export(tmp_path / "out.csv") if r["path"] == str(video))
    assert (row["caption"], row["source"]) == ("Grandma's zebra party", "user")
    gallery = client(db)
    file_id = doc["id"]
    assert gallery.get(f"/api/photo/{file_id}").json()["caption"] == "Grandma's zebra party"
    assert "Your caption" in gallery.get(f"/photo/{file_id}").text

    res = invoke("caption-set", video, "--clear", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["caption_source"] == "generated"

    res = invoke("caption-set", root / "notes.jpg", "a list")
    assert res.exit_code == 1
    assert "notes.jpg failed to index: " in res.output and "not in the index" not in res.output

    invoke("caption-set", photo, "mine")
    for blank in ("", "   \t"):
        res = invoke("caption-set", photo, blank)
        assert res.exit_code == 2, res.output
        assert "empty" in res.output and "--clear" in res.output
    res = invoke("search", "mine", "--mode", "keyword", "--json")
    assert json.loads(res.stdout.splitlines()[0])["caption"] == "mine"  # nothing was cleared

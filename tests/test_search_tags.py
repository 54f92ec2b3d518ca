"""The user's own tags in the index: read per photo at index time, found by keyword search with
a `tag` marker, filtered by `search --tag`, exported, refreshed when a sidecar changes without
re-captioning."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner
from writeback_fixtures import DARKTABLE_SIDECAR, make_photo, sidecar_with_description

import cli
from indexer.config import Settings
from indexer.metadata.tags import refresh_tags
from indexer.store.database import Store
from indexer.store.queries import FileFilter
from search.cli.options import Services
from search.export import read_export
from search.query import SearchRequest, search

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

PHOTOS = [
    Photo("trip/IMG_1.png", "a woman sitting on a bench"),
    Photo("trip/IMG_2.png", "a red car on a street"),
    Photo("home/copy.png", "a woman sitting on a bench", same_as="trip/IMG_1.png"),
]


@pytest.fixture
def tagged(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    db = make_db(root, PHOTOS, tmp_path / "imgcap.db")
    (root / "trip/IMG_1.png.xmp").write_text(DARKTABLE_SIDECAR)  # germany, 2019 trip, Grandma
    with Store.open(db) as store:
        got = refresh_tags(store, [str(root)])
    assert (got.read, got.tagged) == (3, 1)
    monkeypatch.setenv("IMGCAP_DB", str(db))
    return root, db


def _search(db, text, **kw):
    return search(db, SearchRequest(text=text, **kw), Settings(db_path=db), fake_loader())


def test_tags_are_keywords_with_a_tag_marker(tagged):
    root, db = tagged
    hits = _search(db, "grandma", mode="keyword")
    # per photo, not per content: the byte-identical copy carries no tags
    assert [h.path for h in hits] == [str(root / "trip/IMG_1.png")]
    assert hits[0].tags == ["Grandma"]
    assert hits[0].to_dict()["tags"] == ["Grandma"]
    assert "tags" not in _search(db, "car", mode="keyword")[0].to_dict()
    res = CliRunner().invoke(
        cli.app, ["search", "grandma", "--mode", "keyword", "--why"], obj=FAKE_CLIP
    )
    assert res.exit_code == 0, res.output
    assert "tag Grandma" in res.output
    # hybrid: the tagged photo comes first for its tag word
    assert _search(db, "germany")[0].path == str(root / "trip/IMG_1.png")


def test_search_tag_filters_per_photo(tagged):
    root, db = tagged
    hits = _search(db, "woman bench", filters=FileFilter(tags=("GERMANY",)))
    assert [h.path for h in hits] == [str(root / "trip/IMG_1.png")]
    assert _search(db, "woman", filters=FileFilter(tags=("germany", "nope"))) == []
    res = CliRunner().invoke(
        cli.app, ["search", "woman", "--tag", "2019 trip", "--json"], obj=FAKE_CLIP
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(root / "trip/IMG_1.png")]
    # the tag alone: the photos tagged so
    res = CliRunner().invoke(cli.app, ["search", "--tag", "germany", "--paths"], obj=FAKE_CLIP)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [str(root / "trip/IMG_1.png")]


def test_export_has_a_tags_column(tagged, tmp_path):
    root, db = tagged
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli.app, ["export", str(out)], obj=FAKE_CLIP)
    assert res.exit_code == 0, res.output
    rows = {r["path"]: r for r in read_export(out)}
    assert rows[str(root / "trip/IMG_1.png")]["tags"] == "germany; 2019 trip; People; Grandma"
    assert rows[str(root / "home/copy.png")]["tags"] is None


def test_an_edited_sidecar_is_read_again_and_only_it(tagged):
    root, db = tagged
    with Store.open(db) as store:
        assert refresh_tags(store, [str(root)]).read == 0  # nothing changed
        sidecar = root / "trip/IMG_1.png.xmp"
        sidecar.write_text(DARKTABLE_SIDECAR.replace("germany", "austria"))
        os.utime(sidecar, ns=(1, 2_000_000_000_000_000_000))
        (root / "home/copy.png.xmp").write_text(DARKTABLE_SIDECAR)
        got = refresh_tags(store, [str(root)])
    assert got.read == 2
    assert [h.path for h in _search(db, "austria", mode="keyword")] == [
        str(root / "trip/IMG_1.png")
    ]
    assert [h.path for h in _search(db, "germany", mode="keyword")] == [str(root / "home/copy.png")]


def test_index_reads_tags_and_a_sidecar_edit_recaptions_nothing(tmp_path, tiny_model):
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    make_photo(root / "a.jpg")
    make_photo(root / "b.jpg", colour=(10, 200, 10))
    (root / "a.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    # hostile metadata: an entity-expansion sidecar, invalid UTF-8, a 1 MB embedded description
    (root / "b.jpg.xmp").write_text('<!DOCTYPE x [<!ENTITY a "a">]><x:xmpmeta/>')
    make_photo(root / "c.jpg", colour=(1, 2, 3))
    (root / "c.jpg.xmp").write_bytes(b"<x:xmpmeta>\xff</x:xmpmeta>")
    Image.new("RGB", (32, 32), "navy").save(
        root / "d.webp", xmp=sidecar_with_description("y" * 1_000_000).encode()
    )
    settings = Settings(
        db_path=tmp_path / "imgcap.db", model="unused", device="cpu", workers=1, max_tokens=8
    )
    first = index_paths([root], settings, model=tiny_model)
    assert first.captioned == 4 and first.failed == 0
    warnings = "\n".join(first.warnings)
    assert "b.jpg.xmp: XMP declares a DOCTYPE" in warnings
    assert "c.jpg.xmp: XMP is not valid UTF-8" in warnings
    assert "dc:description has 1,000,000 characters (over 10,000); ignored" in warnings
    hits = _search(settings.db_path, "grandma", mode="keyword")
    assert [h.path for h in hits] == [str(root / "a.jpg")]

    sidecar = root / "a.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR.replace("Grandma", "Grandpa"))
    os.utime(sidecar, ns=(1, 2_000_000_000_000_000_000))
    again = index_paths([root], settings, model=tiny_model)
    assert (again.captioned, again.unchanged) == (0, 4)
    assert _search(settings.db_path, "grandma", mode="keyword") == []
    assert [h.path for h in _search(settings.db_path, "grandpa", mode="keyword")] == [
        str(root / "a.jpg")
    ]


def test_sidecars_are_not_counted_as_unsupported_files(tmp_path, tiny_model):
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    make_photo(root / "a.jpg")
    (root / "a.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    (root / "notes.txt").write_text("x")
    settings = Settings(
        db_path=tmp_path / "imgcap.db", model="unused", device="cpu", workers=1, max_tokens=8
    )
    assert index_paths([root], settings, model=tiny_model).unsupported == {".txt": 1}
    assert index_paths([root], settings, dry_run=True).unsupported == {".txt": 1}


def test_a_tag_alone_lists_the_tagged_photos_with_a_tag_marker(tagged):
    root, db = tagged
    (root / "trip/IMG_2.png.xmp").write_text(DARKTABLE_SIDECAR)  # the car, tagged alike
    with Store.open(db) as store:
        refresh_tags(store, [str(root)])
    res = CliRunner().invoke(cli.app, ["search", "--tag", "GRANDMA", "--json"], obj=FAKE_CLIP)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    # undated, so by path; the tag as the person spelled it
    assert [r["path"] for r in rows] == [str(root / "trip/IMG_1.png"), str(root / "trip/IMG_2.png")]
    assert [r["tags"] for r in rows] == [["Grandma"], ["Grandma"]]
    assert rows[0]["signals"] == {}
    res = CliRunner().invoke(cli.app, ["search", "--tag", "nobody"], obj=FAKE_CLIP)
    assert res.exit_code == 0 and "No photos matched the filters: tag nobody." in res.stderr


def test_a_match_on_the_description_alone_is_explained(tagged):
    root, db = tagged
    (root / "trip/IMG_2.png.xmp").write_text(sidecar_with_description("Uncle Bob washing it"))
    with Store.open(db) as store:
        refresh_tags(store, [str(root)])
    res = CliRunner().invoke(
        cli.app, ["search", "bob", "--mode", "keyword", "--json"], obj=FAKE_CLIP
    )
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert row["path"] == str(root / "trip/IMG_2.png")
    assert row["matched"] == ["bob"]
    assert row["matched_in"] == {"description": ["bob"]}
    # caption and own words together: each word where it was found
    hit = _search(db, "red car bob", mode="keyword")[0]
    assert hit.matched == ["red", "car", "bob"]
    assert hit.matched_in == {"caption": ["red", "car"], "description": ["bob"]}
    # a word in a folder below the root ("trip") is the photo's own word too
    (hit,) = [h for h in _search(db, "car trip", mode="keyword") if h.path.endswith("IMG_2.png")]
    assert hit.matched_in == {"caption": ["car"], "folder": ["trip"]}
    # a caption match alone needs no `matched_in`
    assert "matched_in" not in _search(db, "woman", mode="keyword")[0].to_dict()
    res = CliRunner().invoke(cli.app, ["search", "bob", "--mode", "keyword"], obj=FAKE_CLIP)
    assert "description bob" in res.output

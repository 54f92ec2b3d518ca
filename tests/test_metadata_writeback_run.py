"""The write-back run over an index: which captions go where, stale photos refused, and after
an embedded write the next `imgcap index` re-captions nothing."""

from __future__ import annotations

import sqlite3

import pytest
from search_fixtures import Photo, make_db
from writeback_fixtures import exif_read, make_photo, needs_exiftool, pixels

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.metadata import xmp
from indexer.metadata.writeback import run_write_back

PHOTOS = [
    Photo("trip/beach.png", "a dog on a beach"),
    Photo("trip/city.png", "a red car on a street"),
    Photo("home/cat.png", "a cat on a sofa"),
]


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "photos"
    db = make_db(root, PHOTOS, tmp_path / "imgcap.db")
    return root, db


def test_sidecars_for_a_folder_and_the_summary(library):
    root, db = library
    summary = run_write_back(db, [str(root / "trip")])
    doc = summary.to_json()
    assert (doc["written"], doc["failed"], doc["model"], doc["mode"]) == (
        2,
        0,
        "fake-clip",
        "sidecar",
    )
    fields = xmp.read_fields(xmp.parse((root / "trip/beach.png.xmp").read_bytes(), "x"))
    assert fields.description == "a dog on a beach"
    assert fields.imgcap["source"] == "generated" and fields.imgcap["model"] == "fake-clip"
    assert fields.imgcap["date"]  # when the caption was made
    assert not (root / "home/cat.png.xmp").exists()
    # all photos without paths; what was written is unchanged now
    again = run_write_back(db, [])
    assert (again.count("unchanged"), again.count("written")) == (2, 1)


def test_unindexed_stale_and_gone_photos_are_reported(library, tmp_path):
    root, db = library
    make_photo(tmp_path / "elsewhere" / "new.jpg")
    (root / "home/cat.png").write_bytes((root / "trip/city.png").read_bytes() + b"x")
    (root / "trip/beach.png").unlink()
    summary = run_write_back(db, [str(tmp_path / "elsewhere"), str(root)])
    reasons = {o.path: (o.status, o.reason) for o in summary.outcomes}
    assert reasons[str(tmp_path / "elsewhere")] == (
        "failed",
        "not in the index (run imgcap index on it first)",
    )
    assert reasons[str(root / "home/cat.png")] == (
        "failed",
        "changed since it was indexed (run imgcap index first)",
    )
    assert reasons[str(root / "trip/beach.png")][1] == "the photo is not there any more"
    assert reasons[str(root / "trip/city.png")] == ("written", None)


def test_unknown_model_and_missing_database(library, tmp_path):
    root, db = library
    with pytest.raises(UsageError, match="no captions by model 'nope'"):
        run_write_back(db, [], model="nope")
    with pytest.raises(StoreError, match="run `imgcap index` first"):
        run_write_back(tmp_path / "none.db", [])
    assert not (tmp_path / "none.db").exists()


@needs_exiftool
def test_embed_then_index_recaptions_nothing(tmp_path, tiny_model):
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    for name in ("a.jpg", "b.png", "c.webp", "d.tif"):
        make_photo(root / name, colour=(len(name) * 40 % 256, 90, 10))
    (root / "copy.jpg").write_bytes((root / "a.jpg").read_bytes())  # a copy, left alone
    settings = Settings(
        db_path=tmp_path / "imgcap.db", model="unused", device="cpu", workers=1, max_tokens=8
    )
    first = index_paths([root], settings, model=tiny_model)
    assert first.captioned == 4
    before = {p.name: pixels(p) for p in root.iterdir()}

    summary = run_write_back(
        settings.db_path,
        [str(root / n) for n in ("a.jpg", "b.png", "c.webp", "d.tif")],
        mode="embed",
    )
    assert summary.count("written") == 4, summary.outcomes
    got = exif_read(root / "a.jpg", "-XMP-dc:Description", "-IPTC:Caption-Abstract")
    conn = sqlite3.connect(settings.db_path)
    caption = conn.execute(
        "SELECT r.caption FROM files f JOIN results r USING (content_hash) WHERE f.path = ?",
        [str(root / "a.jpg")],
    ).fetchone()[0]
    conn.close()
    assert got["XMP-dc:Description"] == caption == got["IPTC:Caption-Abstract"]
    assert {p.name: pixels(p) for p in root.iterdir()} == before

    again = index_paths([root], settings, model=tiny_model)
    assert (again.captioned, again.unchanged, again.new) == (0, 5, 0)
    conn = sqlite3.connect(settings.db_path)
    # the copy keeps the old content's results; the rewritten files have theirs
    assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 5
    conn.close()

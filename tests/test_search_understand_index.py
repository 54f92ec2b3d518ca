"""Query understanding against a real index: a parsed query returns exactly what the same words
with explicit options return; the CLI says what it understood; --literal and explicit options."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.metadata.places import refresh_places
from indexer.store.database import Store
from indexer.store.queries import FileFilter
from search.cli.options import Services
from search.query import SearchRequest, search, search_understood

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

PHOTOS = [
    Photo("Holidays/beach dog.png", "a dog on the beach", taken_at="2019-07-14T10:00:00",
          camera_make="Canon", camera_model="Canon EOS 5D"),
    Photo("Holidays/beach dog 2.png", "a dog running on the beach", taken_at="2020-08-01T10:00:00"),
    Photo("Work/whiteboard.png", "a whiteboard with writing", taken_at="2019-03-02T09:00:00",
          camera_make="Apple", camera_model="iPhone 12"),
    Photo("Work/dog.png", "a dog under a desk", taken_at="2026-07-01T12:00:00"),
    Photo("home/poster.png", "a poster on a wall"),
]  # fmt: skip
GPS = {"Holidays/beach dog.png": (43.6961, 7.2719), "Work/whiteboard.png": (48.8566, 2.3522)}
TODAY = date(2026, 12, 3)


@pytest.fixture
def db(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    path = make_db(root, PHOTOS, tmp_path / "imgcap.db")
    conn = sqlite3.connect(path)
    with conn:
        for name, (lat, lon) in GPS.items():
            conn.execute(
                "UPDATE files SET gps_lat = ?, gps_lon = ? WHERE path = ?",
                [lat, lon, str(root / name)],
            )
    conn.close()
    with Store.open(path) as store:
        assert refresh_places(store).geocoded == 2
    monkeypatch.setenv("IMGCAP_DB", str(path))
    return path


def run(db, text, **kw):
    req = SearchRequest(text=text, understand=True, today=TODAY, **kw)
    hits, got = search_understood(db, req, Settings(db_path=db), fake_loader())
    return [Path(h.path).name for h in hits], got


def plain(db, text, **flt):
    hits = search(
        db, SearchRequest(text=text, filters=FileFilter(**flt)), Settings(db_path=db), fake_loader()
    )
    return [Path(h.path).name for h in hits]


@pytest.mark.parametrize(
    ("query", "text", "filters"),
    [
        ("dog 2019", "dog", {"after": "2019-01-01", "before": "2020-01-01"}),
        ("dog on the beach in Nice", "dog on the beach", {"place": ("Nice",)}),
        ("dog in france", "dog", {"place": ("France",)}),
        ("whiteboard from the Work folder", "whiteboard", {"folder_name": "Work"}),
        ("dog in Holidays", "dog", {"folder_name": "Holidays"}),
        ("dog canon", "dog", {"camera": "Canon"}),
        ("dog last summer", "dog", {"after": "2026-06-01", "before": "2026-09-01"}),
        ("beach summer 2020", "beach", {"after": "2020-06-01", "before": "2020-09-01"}),
    ],
)
def test_parsed_query_equals_the_words_with_explicit_options(db, query, text, filters):
    got_paths, got = run(db, query)
    assert got.text == text
    assert got_paths == plain(db, text, **filters)
    assert got_paths  # and something matched


def test_what_the_index_lacks_stays_words(db):
    for q in ("1984 poster", "poster 2021", "dog in madrid", "whiteboard in the Garage folder"):
        paths, got = run(db, q)
        assert not got.any and got.text == q
        assert paths == plain(db, q)


def test_cli_says_what_it_understood_and_json_has_it(db):
    runner = CliRunner()
    res = runner.invoke(cli.app, ["search", "dog", "2019"], obj=FAKE_CLIP)
    assert res.exit_code == 0, res.output
    assert "understood: after 2019-01-01, before 2020-01-01" in res.output
    res = runner.invoke(cli.app, ["search", "whiteboard", "in", "paris", "--json"], obj=FAKE_CLIP)
    hits = [json.loads(line) for line in res.stdout.splitlines()]
    assert [Path(h["path"]).name for h in hits] == ["whiteboard.png"]
    assert hits[0]["understood"] == {"text": "whiteboard", "place": ["Paris"]}
    assert hits[0]["place"] == "Paris, Île-de-France, France"
    # nothing matched: the line still says why
    res = runner.invoke(cli.app, ["search", "whiteboard", "yesterday"], obj=FAKE_CLIP)
    assert "understood: after " in res.output and "No photos matched" in res.output


def test_literal_and_explicit_options(db):
    runner = CliRunner()
    res = runner.invoke(cli.app, ["search", "dog", "2019", "--literal", "--json"], obj=FAKE_CLIP)
    hits = [json.loads(line) for line in res.stdout.splitlines()]
    assert "understood" not in hits[0] and len(hits) == 5  # no filter
    # --after wins: 2019 stays a word, the option filters
    res = runner.invoke(
        cli.app, ["search", "dog", "2019", "--after", "2020", "--json"], obj=FAKE_CLIP
    )
    hits = [json.loads(line) for line in res.stdout.splitlines()]
    assert {Path(h["path"]).name for h in hits} == {"beach dog 2.png", "dog.png"}
    assert all("understood" not in h for h in hits)
    # --in wins over a folder in the words; the place is still read
    res = runner.invoke(
        cli.app,
        ["search", "dog", "in", "nice", "--in", str(db.parent / "photos/Work")],
        obj=FAKE_CLIP,
    )
    assert "understood: place Nice" in res.output and "No photos matched" in res.output


def test_video_is_a_media_filter_once_the_index_has_videos(db):
    paths, got = run(db, "dog video")
    assert got.media is None and got.text == "dog video"  # no videos yet: a word
    conn = sqlite3.connect(db)
    with conn:  # mark one file a video (its one keyframe is its own result's key)
        (h,) = conn.execute("SELECT content_hash FROM files WHERE path LIKE '%beach dog 2.png'")
        conn.execute("INSERT INTO video_frames VALUES (?, ?, 0)", [h[0], h[0]])
    conn.close()
    paths, got = run(db, "dog video")
    assert (got.text, got.media) == ("dog", "video")
    assert paths == ["beach dog 2.png"] == plain(db, "dog", media="video")
    assert "beach dog 2.png" not in plain(db, "dog", media="photo")


def test_the_gallery_shows_what_it_understood_and_places(db):
    from serve_fixtures import client

    c = client(db)
    page = c.get("/", params={"q": "whiteboard in paris"}).text
    assert "Understood: place Paris" in page and "literal=1" in page
    assert "Paris, Île-de-France, France" in page  # on the card
    literal = c.get("/", params={"q": "whiteboard in paris", "literal": "1"}).text
    assert "Understood:" not in literal
    assert 'name="place"' in c.get("/").text  # the filter form has the place field
    hits = c.get("/api/search", params={"q": "dog", "place": "nice"}).json()["hits"]
    assert [Path(h["path"]).name for h in hits] == ["beach dog.png"]
    photo = c.get(f"/photo/{hits[0]['id']}").text
    assert "Nice, Provence-Alpes-Côte d&#39;Azur, France" in photo

"""A non-English query searches the same index: its vector comes from the multilingual tower
(the tiny twin here), its words match the photo's own words (a German tag, with the `tag`
marker) but never the generated English captions, and the JSON says language and tower."""

from __future__ import annotations

import json

import pytest
from search_fixtures import DIM, Photo, fake_loader, make_db
from typer.testing import CliRunner
from writeback_fixtures import DARKTABLE_SIDECAR

import cli
from indexer.config import Settings
from indexer.metadata.tags import refresh_tags
from indexer.models.text_tower import write_random_tower
from indexer.store.database import Store
from search.cli.options import Services
from search.query import SearchRequest, search

PHOTOS = [
    Photo("trip/IMG_1.png", "a woman sitting on a bench"),
    Photo("trip/IMG_2.png", "a red car on a street"),
    Photo("trip/IMG_3.png", "die hard poster on a wall"),  # "die": German article, English word
]


@pytest.fixture(scope="module")
def tower(tmp_path_factory):
    words = ["Großmutter", "Hund", "am", "Strand", "die", "Oma"]
    return write_random_tower(tmp_path_factory.mktemp("tw") / "t", words, out_dim=DIM)


@pytest.fixture
def world(tmp_path, monkeypatch, tower):
    root = tmp_path / "photos"
    db = make_db(root, PHOTOS, tmp_path / "imgcap.db")
    (root / "trip/IMG_1.png.xmp").write_text(DARKTABLE_SIDECAR.replace("Grandma", "Großmutter"))
    with Store.open(db) as store:
        refresh_tags(store, [str(root)])
    monkeypatch.setenv("IMGCAP_DB", str(db))
    monkeypatch.setenv("IMGCAP_TEXT_TOWER", str(tower))
    return root, db


def _search(db, text, tower, **kw):
    settings = Settings(db_path=db, text_tower=str(tower), offline=True)
    return search(db, SearchRequest(text=text, **kw), settings, fake_loader())


def test_a_german_query_finds_the_photo_by_its_german_tag(world, tower):
    root, db = world
    first = _search(db, "die Großmutter", tower, limit=3)[0]  # "die" names no subject
    assert first.path == str(root / "trip/IMG_1.png")
    assert first.tags == ["Großmutter"] and first.matched_in == {
        "tag": ["grossmutter"]
    }  # casefolded
    assert (first.language, first.text_tower) == ("de", "multilingual")
    # "die" is in an English caption, but a German query never keyword-matches generated ones
    hits = _search(db, "die Oma", tower, limit=3)
    assert hits[0].language == "de"
    poster = next(h for h in hits if h.path.endswith("IMG_3.png"))
    assert poster.signals["keyword"].rank is None and poster.matched == []
    english = _search(db, "die Oma", tower, limit=3, lang="en")
    poster = next(h for h in english if h.path.endswith("IMG_3.png"))
    assert poster.signals["keyword"].rank is not None and english[0].text_tower == "clip"


def test_json_and_cli_say_language_and_tower(world):
    services = Services(encoder_loader=fake_loader())
    res = CliRunner().invoke(cli.app, ["search", "Großmutter", "--json", "-n", "1"], obj=services)
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout.splitlines()[0])
    assert row["language"] == "de" and row["text_tower"] == "multilingual"
    assert row["tags"] == ["Großmutter"]
    res = CliRunner().invoke(cli.app, ["search", "red car", "--json", "-n", "1"], obj=services)
    row = json.loads(res.stdout.splitlines()[0])
    assert (row["language"], row["text_tower"]) == ("en", "clip")
    res = CliRunner().invoke(cli.app, ["search", "Hund am Strand", "-n", "1"], obj=services)
    assert "language: de (multilingual text tower" in res.stderr


def test_forced_language_without_the_tower_fails_offline(world, tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCAP_TEXT_TOWER", "clip-multilingual")
    monkeypatch.setenv("IMGCAP_OFFLINE", "1")
    monkeypatch.setenv("IMGCAP_CACHE_DIR", str(tmp_path / "empty-cache"))
    services = Services(encoder_loader=fake_loader())
    res = CliRunner().invoke(cli.app, ["search", "Hund", "--lang", "de"], obj=services)
    assert res.exit_code == 3 and "imgcap models download clip-multilingual" in res.output
    # detected, not forced: CLIP's own tower answers, and says the multilingual one is missing
    res = CliRunner().invoke(cli.app, ["search", "Hund am Strand", "-n", "1"], obj=services)
    assert res.exit_code == 0, res.output
    assert "read by CLIP's English text tower" in res.stderr

"""A Chinese, Japanese or Korean tag, description or folder name found by a word inside it,
through `imgcap search` (the keyword signal, own words first, "why it matched")."""

from __future__ import annotations

import json

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.store import photo_tags
from indexer.store.database import Store
from search.cli.options import Services

FAKE_CLIP = Services(encoder_loader=fake_loader())


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cjk")
    root = tmp_path / "photos"
    photos = [
        Photo("trip/a.png", "a tall tower at night"),
        Photo("trip/b.png", "a city street"),
        Photo("서울여행/c.png", "a palace gate"),
        Photo("trip/d.png", "a dog on a beach"),
    ]
    db = make_db(root, photos, tmp_path / "imgcap.db")
    rows = [
        ("trip/a.png", ["東京タワー"], None),
        ("trip/b.png", ["北京旅行"], "和家人一起"),
        ("trip/d.png", ["Beach"], None),
        ("서울여행/c.png", ["경복궁야경"], None),
    ]
    with Store.open(db) as store:
        photo_tags.save(
            store.db,
            [photo_tags.TagRow(str(root / p), tags, desc, 1, 1, "", []) for p, tags, desc in rows],
        )
    return db


def _search(db, *args: str) -> list[dict]:
    res = CliRunner().invoke(
        cli.app, ["search", *args, "--json"], obj=FAKE_CLIP, env={"IMGCAP_DB": str(db)}
    )
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_a_cjk_tag_is_found_by_a_word_inside_it(library):
    (row,) = _search(library, "北京", "--mode", "keyword")
    assert row["path"].endswith("trip/b.png")
    assert row["tags"] == ["北京旅行"] and row["matched_in"] == {"tag": ["北京"]}
    (row,) = _search(library, "東京", "--mode", "keyword")
    assert row["path"].endswith("trip/a.png") and row["tags"] == ["東京タワー"]
    (row,) = _search(library, "家人", "--mode", "keyword")
    assert row["matched_in"] == {"description": ["家人"]}
    # hybrid: the photo whose own words hold the word ranks first
    first = _search(library, "東京")[0]
    assert first["path"].endswith("trip/a.png") and first["own_words_all"]


def test_a_korean_folder_name_and_tag(library):
    first = _search(library, "서울")[0]
    assert first["path"].endswith("c.png") and first["own_words_all"]
    assert first["matched_in"] == {"folder": ["서울"]}
    (row,) = _search(library, "경복궁", "--mode", "keyword")  # a Korean tag without spaces
    assert row["path"].endswith("c.png") and row["tags"] == ["경복궁야경"]


def test_latin_tags_are_found_as_before(library):
    (row,) = _search(library, "beach", "--mode", "keyword")
    assert row["path"].endswith("trip/d.png") and row["tags"] == ["Beach"]

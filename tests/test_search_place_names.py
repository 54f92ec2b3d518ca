"""Other names of places (indexer/metadata/place_names.py): "München", "Köln"'s "Cologne",
"北京", "Deutschland" find the photos the gazetteer placed in Munich, Köln, Beijing, Germany,
through query understanding and --place; bound to the place's country."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_fixtures import Photo, fake_loader, make_db

from indexer.config import Settings
from indexer.metadata.place_names import other_names
from indexer.store import places
from indexer.store.database import Store
from indexer.store.places import Place
from indexer.store.queries import FileFilter
from search.query import SearchRequest, search_understood

PLACED = {
    "munich.png": Place("Munich", "Bavaria", "Germany", "DE"),
    "koeln.png": Place("Köln", "North Rhine-Westphalia", "Germany", "DE"),
    "beijing.png": Place("Beijing", "Beijing", "China", "CN"),
    "seoul.png": Place("Seoul", "Seoul", "Korea, Republic of", "KR"),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    photos = [Photo(name, "a church in a square", taken_at="2019-07-14") for name in PLACED]
    path = make_db(tmp / "photos", photos, tmp / "imgcap.db")
    with Store.open(path) as store:
        ids = dict(store.db.execute("SELECT path, id FROM files").fetchall())
        found = [(ids[str(tmp / "photos" / n)], 1.0, 1.0, p) for n, p in PLACED.items()]
        places.save(store.db, found, "test")
    return path


def hits_for(db, text: str, **flt):
    req = SearchRequest(text=text, understand=True, filters=FileFilter(**flt))
    return search_understood(db, req, Settings(db_path=db), fake_loader())


def run(db, text: str, **flt) -> tuple[list[str], dict]:
    hits, got = hits_for(db, text, **flt)
    return sorted(Path(h.path).name for h in hits), got.to_dict() if got else {}


@pytest.mark.parametrize(
    ("query", "found", "place", "text"),
    [
        ("Kirche in München 2019", ["munich.png"], ["Munich"], "Kirche"),
        ("muenchen church", ["munich.png"], ["Munich"], "church"),
        ("Dom Cologne", ["koeln.png"], ["Köln"], "Dom"),
        ("Köln church", ["koeln.png"], ["Köln"], "church"),  # the gazetteer's own spelling
        ("北京的照片", ["beijing.png"], ["Beijing"], "的照片"),  # inside unspaced Chinese
        ("서울에서 교회", ["seoul.png"], ["Seoul"], "에서 교회"),
        ("Kirche Deutschland", ["koeln.png", "munich.png"], ["Germany"], "Kirche"),
        ("Kirche in Bayern", ["munich.png"], ["Bavaria"], "Kirche"),
        ("Kirche aus München", ["munich.png"], ["Munich"], "Kirche"),  # lead words go too
        ("iglesia en Colonia", ["koeln.png"], ["Köln"], "iglesia"),
        ("chiesa da Monaco di Baviera", ["munich.png"], ["Munich"], "chiesa"),
        ("kerk uit Keulen", ["koeln.png"], ["Köln"], "kerk"),
    ],
)
def test_other_names_are_read_as_the_place(db, query, found, place, text):
    got, understood = run(db, query)
    assert got == found
    assert understood["place"] == place and understood["text"] == text


def test_place_option_takes_other_names(db):
    assert run(db, "church", place=("München",))[0] == ["munich.png"]
    assert run(db, "church", place=("北京",))[0] == ["beijing.png"]
    assert run(db, "church", place=("Wien",))[0] == []  # no photo from Vienna


def test_other_names_belong_to_their_country():
    # Cologne in Lombardy is not Köln: only Germany's Köln has the name "Cologne"
    italian = other_names([("Cologne", "Lombardy", "Italy", "IT")])
    assert "köln" not in italian and set(italian.values()) == {"Lombardy", "Italy"}
    assert other_names([("Köln", "North Rhine-Westphalia", "Germany", "DE")])["cologne"] == "Köln"


@pytest.mark.parametrize(
    ("query", "after"),
    [
        ("北京2019年夏天", "2019-06-01"),
        ("北京2019年夏天的照片", "2019-06-01"),
        ("Fotos aus Peking 2019", "2019-01-01"),
    ],
)
def test_filters_alone_are_browsed(db, query, after):
    # a place and a date with no word left but "photos", like "photos from Paris 2019"
    hits, got = hits_for(db, query)
    assert (got.place, got.after) == (("Beijing",), after)
    assert [Path(h.path).name for h in hits] == ["beijing.png"] and hits[0].signals == {}

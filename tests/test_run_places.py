"""Places through `imgcap index` (tiny model): photos with EXIF GPS written by Pillow get their
city, region and country; searchable as keywords and with --place; in search results and
export; photos indexed before places existed get theirs on the next run with no model work."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.metadata.places import refresh_places
from indexer.store import schema
from indexer.store.database import Store
from search.export import read_export

runner = CliRunner()


def gps_photo(path: Path, lat: float | None, lon: float | None, colour=(200, 30, 30)) -> None:
    """A JPEG whose EXIF GPS says (lat, lon), as degrees/minutes/seconds with N/S, E/W refs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if lat is not None:

        def dms(x: float) -> tuple[float, float, float]:
            x = abs(x)
            d, m = int(x), int(x * 60) % 60
            return float(d), float(m), round((x * 3600) % 60, 4)

        exif.get_ifd(0x8825).update(
            {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
        )
    Image.new("RGB", (96, 64), colour).save(path, "JPEG", exif=exif.tobytes())


@pytest.fixture
def indexed(tmp_path, tiny_model_dir, monkeypatch):
    root = tmp_path / "photos"
    gps_photo(root / "trip/eiffel.jpg", 48.8584, 2.2945)
    gps_photo(root / "trip/tokyo tower.jpg", 35.6586, 139.7454, (30, 200, 30))
    gps_photo(root / "trip/sydney.jpg", -33.8568, 151.2153, (30, 30, 200))
    gps_photo(root / "home/no gps.jpg", None, None, (120, 120, 120))
    db = tmp_path / "imgcap.db"
    monkeypatch.setenv("IMGCAP_DB", str(db))
    monkeypatch.setenv("IMGCAP_OFFLINE", "1")
    res = index(root, tiny_model_dir)
    assert res.exit_code == 0, res.output
    return root, db


def index(root: Path, model_dir: Path):
    args = ["index", str(root), "--model", str(model_dir), "--device", "cpu", "--workers", "1"]
    return runner.invoke(app, [*args, "--json"])


def places_of(db: Path) -> dict[str, str | None]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT f.path, p.label FROM files f LEFT JOIN places p ON p.id = f.place_id"
    ).fetchall()
    conn.close()
    return {Path(p).name: label for p, label in rows}


def search_json(*args: str) -> list[dict]:
    res = runner.invoke(app, ["search", *args, "--json"])
    assert res.exit_code in (0, 1), res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def test_index_names_places_from_exif_gps(indexed, tiny_model_dir):
    root, db = indexed
    res = runner.invoke(app, ["index", str(root), "--model", str(tiny_model_dir), "--workers", "1"])
    assert "placed from GPS" not in res.output  # named once, in the first run
    assert places_of(db) == {
        "eiffel.jpg": "Paris, Île-de-France, France",
        "tokyo tower.jpg": "Tokyo, Japan",
        "sydney.jpg": "Sydney, New South Wales, Australia",
        "no gps.jpg": None,
    }


def test_places_are_keywords_filters_and_shown(indexed):
    root, db = indexed
    # a keyword: "japan" is in no caption, only in a place
    hits = search_json("japan", "--mode", "keyword")
    assert [Path(h["path"]).name for h in hits] == ["tokyo tower.jpg"]
    assert hits[0]["place"] == "Tokyo, Japan"
    # --place alone lists that place's photos; any case, accents optional; names combine
    for value in ("Paris", "paris", "ile-de-france", "Paris, France", "FRANCE"):
        hits = search_json("--place", value, "--mode", "keyword")
        assert [Path(h["path"]).name for h in hits] == ["eiffel.jpg"], value
    assert search_json("--place", "Paris, Japan", "--mode", "keyword") == []
    # the human table shows the place
    res = runner.invoke(app, ["search", "--place", "tokyo", "--mode", "keyword"])
    assert "Tokyo, Japan" in res.output


def test_query_understanding_uses_the_places_of_the_index(indexed):
    root, db = indexed
    hits = search_json("photo in sydney", "-n", "5")  # hybrid: the vectors rank "photo"
    assert [Path(h["path"]).name for h in hits] == ["sydney.jpg"]
    assert hits[0]["understood"] == {"text": "photo", "place": ["Sydney"]}
    hits = search_json("sydney", "--mode", "keyword")  # nothing but a place: also the words
    assert [Path(h["path"]).name for h in hits] == ["sydney.jpg"]
    assert hits[0]["understood"] == {"text": "sydney", "place": ["Sydney"]}
    # --literal: the words are only words (keyword: the place still matches "sydney")
    hits = search_json("sydney", "--mode", "keyword", "--literal")
    assert "understood" not in hits[0]
    # a place the index lacks stays a word
    assert search_json("photo in madrid", "--mode", "keyword") == []
    res = runner.invoke(app, ["search", "tower", "in", "paris", "--mode", "keyword"])
    assert "understood: place Paris" in res.output


def test_export_has_a_place_column(indexed, tmp_path):
    root, db = indexed
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["export", str(out)])
    assert res.exit_code == 0, res.output
    rows = {Path(r["path"]).name: r["place"] for r in read_export(out)}
    assert rows["tokyo tower.jpg"] == "Tokyo, Japan" and rows["no gps.jpg"] is None


def test_photos_indexed_before_places_get_them_on_the_next_run(indexed, tiny_model_dir):
    root, db = indexed
    conn = sqlite3.connect(db)
    with conn:  # as a database from before places: GPS stored, no place
        conn.execute("UPDATE files SET place_id = NULL, place_key = NULL")
        conn.execute("DELETE FROM places")
    conn.close()
    res = index(root, tiny_model_dir)
    summary = json.loads(res.stdout)
    assert summary["captioned"] == 0 and summary["unchanged"] == 4  # no model work
    assert summary["places_named"] == 3
    assert places_of(db)["eiffel.jpg"] == "Paris, Île-de-France, France"


def test_changed_gps_is_renamed_and_removed_gps_clears_the_place(indexed, tiny_model_dir):
    root, db = indexed
    gps_photo(root / "trip/eiffel.jpg", 41.8902, 12.4922)  # now the Colosseum
    gps_photo(root / "trip/sydney.jpg", None, None, (30, 30, 200))
    args = ["index", str(root), "--model", str(tiny_model_dir), "--device", "cpu"]
    res = runner.invoke(app, [*args, "--workers", "1"])
    assert res.exit_code == 0 and "1 photo placed from GPS" in res.output, res.output
    got = places_of(db)
    assert got["eiffel.jpg"] == "Rome, Lazio, Italy" and got["sydney.jpg"] is None
    conn = sqlite3.connect(db)
    labels = {label for (label,) in conn.execute("SELECT label FROM places")}
    conn.close()
    assert labels == {"Rome, Lazio, Italy", "Tokyo, Japan"}  # unused places dropped


def test_a_schema_4_database_migrates_and_gets_places(tmp_path):
    """m005 on a database made by the migrations before it, with a GPS photo already stored."""
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    db = Database(path)
    schema.migrations.apply(db)
    for version in range(2, 5):
        with db.atomic():
            schema.MIGRATIONS[version - 1](db)
            schema._stamp(db, version)
    db["files"].insert(
        {
            "path": "/p/a.jpg",
            "folder": "/p",
            "size": 1,
            "mtime_ns": 1,
            "content_hash": "h",
            "gps_lat": 51.5007,
            "gps_lon": -0.1246,
        }
    )
    db.close()
    with Store.open(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] >= 5
        found = refresh_places(store)
        assert found.geocoded == 1 and found.problem is None
        assert refresh_places(store).geocoded == 0  # named once
    assert places_of(path) == {"a.jpg": "London, England, United Kingdom"}

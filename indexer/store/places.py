"""Place names per photo (schema 5: `places`, `places_fts`, `files.place_id`/`place_key`).

`places` holds each distinct (city, region, country) once, with folded forms for matching
(`fold`); a file points at its place. `files.place_key` records the
coordinates and gazetteer the place was computed from, so an edited photo's new GPS, or new
gazetteer data, is noticed without re-reading any image. Places no file uses are dropped.
Readers accept databases from before schema 5 (no places: every function returns nothing).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from indexer.store.errors import conn_path, store_error, translated
from indexer.store.fts import photo_matches
from indexer.store.records import rows_in


@dataclass(frozen=True, slots=True)
class Place:
    city: str | None
    region: str | None
    country: str | None
    country_code: str | None

    @property
    def label(self) -> str:
        """What people read: "Paris, Île-de-France, France" (the parts that are known)."""
        parts = [self.city, self.region, self.country]
        out: list[str] = []
        for p in parts:
            if p and p not in out:  # "Singapore, Singapore" once
                out.append(p)
        return ", ".join(out)


def fold(name: str) -> str:
    """The form place names are compared in: accents dropped, case folded, punctuation and runs
    of spaces as one space ("Île-de-France" -> "ile de france", "ZÜRICH" -> "zurich")."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def create(db: Database) -> None:
    """Tables, FTS and indexes (called by migration m005). Does nothing where they exist."""
    if db["places"].exists():
        return
    db["places"].create(
        {
            "id": int,
            "city": str,
            "region": str,
            "country": str,
            "country_code": str,
            "label": str,  # "Paris, Île-de-France, France": what results show
            "city_key": str,  # fold(city): what --place and query parsing compare
            "region_key": str,
            "country_key": str,
        },
        pk="id",
        not_null={"label"},
    )
    db["places"].create_index(["label", "country_code"], unique=True)
    db["places"].enable_fts(["city", "region", "country"], create_triggers=True)
    db["files"].add_column("place_id", int)
    db["files"].add_column("place_key", str)  # "lat,lon;gazetteer" the place was named from
    db["files"].create_index(["place_id"])
    # Query parsing asks "is there any photo from 1984?" before reading 1984 as a date, and
    # which cameras the index has (search/understand.py): index probes, not table scans.
    db["files"].create_index(["taken_at"])
    db["files"].create_index(["camera_make", "camera_model"])


def exists(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'places'").fetchone())


# The coordinates a place was named from, formatted by SQLite on both sides of the comparison
# (stored by `save`, compared by `stale`), so no float formatting can differ between them.
_KEY_SQL = "printf('%.6f,%.6f;', gps_lat, gps_lon) || ?"


# ------------------------------------------------------------------------------------ writes
@translated
def stale(
    conn: sqlite3.Connection, gazetteer: str
) -> tuple[list[tuple[int, float, float]], list[int]]:
    """(files to name: (id, lat, lon), files whose GPS went away: ids). One pass in SQLite
    (a run with nothing new reads 100k rows in C, not in Python)."""
    todo = conn.execute(
        "SELECT id, gps_lat, gps_lon FROM files WHERE gps_lat IS NOT NULL"
        f" AND gps_lon IS NOT NULL AND place_key IS NOT ({_KEY_SQL})",
        [gazetteer],
    ).fetchall()
    gone = conn.execute(
        "SELECT id FROM files WHERE (gps_lat IS NULL OR gps_lon IS NULL) AND place_key IS NOT NULL"
    ).fetchall()
    return todo, [i for (i,) in gone]


def save(
    db: Database, found: Sequence[tuple[int, float, float, Place | None]], gazetteer: str
) -> None:
    """Point each file (id, the lat and lon named) at its place (None: no place, e.g. at
    sea); one transaction."""
    try:
        with db.atomic():
            _save(db.conn, found, gazetteer)
    except sqlite3.Error as e:
        raise store_error(e, conn_path(db.conn)) from None


def _save(
    conn: sqlite3.Connection,
    found: Sequence[tuple[int, float, float, Place | None]],
    gazetteer: str,
) -> None:
    ids: dict[tuple[str, str | None], int] = {}
    for place in {p for *_, p in found if p is not None}:
        key = (place.label, place.country_code)
        conn.execute(
            "INSERT INTO places (city, region, country, country_code, label, city_key,"
            " region_key, country_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (label, country_code) DO NOTHING",
            [
                place.city,
                place.region,
                place.country,
                place.country_code,
                place.label,
                *(fold(x) if x else None for x in (place.city, place.region, place.country)),
            ],
        )
        (ids[key],) = conn.execute(
            "SELECT id FROM places WHERE label = ? AND country_code IS ?", key
        ).fetchone()
    conn.executemany(
        f"UPDATE files SET place_id = ?, place_key = {_KEY_SQL} WHERE id = ?",
        [
            (None if p is None else ids[(p.label, p.country_code)], gazetteer, fid)
            for fid, _, _, p in found
        ],
    )


def clear(db: Database, ids: Sequence[int]) -> None:
    """Files whose GPS went away lose their place."""
    try:
        with db.atomic():
            db.conn.executemany(
                "UPDATE files SET place_id = NULL, place_key = NULL WHERE id = ?",
                [(i,) for i in ids],
            )
    except sqlite3.Error as e:
        raise store_error(e, conn_path(db.conn)) from None


def drop_unused(db: Database) -> None:
    try:
        with db.atomic():
            db.execute(
                "DELETE FROM places WHERE id NOT IN"
                " (SELECT place_id FROM files WHERE place_id IS NOT NULL)"
            )
    except sqlite3.Error as e:
        raise store_error(e, conn_path(db.conn)) from None


# ------------------------------------------------------------------------------------- reads
def condition(names: Sequence[str], alias: str = "f") -> tuple[str, list[Any]]:
    """SQL condition on the `files` row `alias`: its place is called every one of `names`
    (each a city, region or country; compared folded: any case, accents optional)."""
    conds = ["(? IN (p.city_key, p.region_key, p.country_key))" for _ in names]
    sql = f"{alias}.place_id IN (SELECT p.id FROM places p WHERE {' AND '.join(conds) or '1'})"
    return sql, [fold(n) for n in names]


@translated
def known_names(conn: sqlite3.Connection) -> dict[str, str]:
    """fold(name) -> name, for every city, region and country some photo is in (query
    parsing: "paris" is a place only if the index has photos there)."""
    if not exists(conn):
        return {}
    out: dict[str, str] = {}
    for row in conn.execute(
        "SELECT city, city_key, region, region_key, country, country_key FROM places"
    ):
        for name, key in zip(row[::2], row[1::2], strict=True):
            if name and key:
                out.setdefault(key, name)
    return out


@translated
def named_places(conn: sqlite3.Connection) -> list[tuple[str | None, ...]]:
    """(city, region, country, country code) of every place some photo is in, as the gazetteer
    spells them (query parsing adds their other names: indexer/metadata/place_names.py)."""
    if not exists(conn):
        return []
    return conn.execute("SELECT city, region, country, country_code FROM places").fetchall()


@translated
def places_sharing(conn: sqlite3.Connection, names: Sequence[str]) -> bool:
    """Whether some place is called all of `names` ("Paris" and "France": yes)."""
    if not exists(conn):
        return False
    sql, params = condition(names, "x")
    sql = sql.replace("x.place_id IN ", "EXISTS ", 1)
    return conn.execute(f"SELECT {sql}", params).fetchone()[0] == 1


@translated
def keyword_matches(
    conn: sqlite3.Connection,
    model: str,
    fts_query: str,
    limit: int,
    where: str,
    params: list,
    join: str = "JOIN results r ON r.content_hash = f.content_hash",
) -> list[tuple[int, float]]:
    """(result id, BM25) of `model`'s results whose photo's place names match the FTS5 query
    (all photos of a place score alike); `where`/`params` restrict the files (alias f); `join`
    goes from `files f` to `results r` (a video's through its keyframes)."""
    if not exists(conn):
        return []
    to_files = "JOIN files f ON f.place_id = m.rowid"
    return photo_matches(conn, "places_fts", to_files, model, fts_query, limit, where, params, join)


@translated
def labels_for_paths(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, str]:
    """path -> place label (paths without a place left out)."""
    if not exists(conn):
        return {}
    sql = (
        "SELECT f.path, p.label FROM files f JOIN places p ON p.id = f.place_id"
        " WHERE f.path IN ({marks})"
    )
    return dict(rows_in(conn, sql, paths))


@translated
def matching_paths(conn: sqlite3.Connection, fts_query: str, paths: Sequence[str]) -> set[str]:
    """Which of `paths` have a place whose names match the FTS5 query."""
    if not exists(conn):
        return set()
    sql = (
        "SELECT f.path FROM places_fts JOIN files f ON f.place_id = places_fts.rowid"
        " WHERE places_fts MATCH ? AND f.path IN ({marks})"
    )
    return {p for (p,) in rows_in(conn, sql, paths, before=[fts_query])}

"""One indexed photo as a person sees it: what the gallery's photo page shows and what
`imgcap caption-set` answers with. Photos are named by `files.id`."""

from __future__ import annotations

import sqlite3
from typing import Any

from indexer.config import Settings
from indexer.store import photos as photo_rows
from indexer.store import places
from search.query_encoder import resolve_model


def camera_name(row: dict[str, Any]) -> str | None:
    """ "Canon EOS 80D" from a row's camera_make and camera_model (None when it has neither)."""
    return " ".join(x for x in (row.get("camera_make"), row.get("camera_model")) if x) or None


def photo_row(
    conn: sqlite3.Connection, file_id: int, requested: str | None, settings: Settings
) -> tuple[str, dict[str, Any]]:
    """(the stored model searched, as for `imgcap search --model requested`; the photo's row for
    it). LookupError when no indexed file has this id."""
    model = resolve_model(conn, requested, settings)
    row = photo_rows.photo(conn, file_id, model)
    if row is None:
        raise LookupError(file_id)
    return model, row


def photo(
    conn: sqlite3.Connection, file_id: int, requested: str | None, settings: Settings
) -> dict[str, Any]:
    """The photo's row with its camera and place named; LookupError when not indexed."""
    _, row = photo_row(conn, file_id, requested, settings)
    row["camera"] = camera_name(row)
    row["place"] = places.labels_for_paths(conn, [row["path"]]).get(row["path"])
    return row

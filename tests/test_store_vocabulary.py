"""The index's words for query understanding: the skip scans of the folder and camera indexes
return exactly what a plain SELECT DISTINCT does (NULLs, one make with and without models)."""

from __future__ import annotations

import random
import sqlite3

from indexer.store import vocabulary
from indexer.store.database import Store


def test_skip_scans_equal_select_distinct(tmp_path):
    path = tmp_path / "v.db"
    Store.open(path).close()  # the real schema, with the schema 5 indexes
    conn = sqlite3.connect(path)
    rng = random.Random(0)
    makes = [None, "Apple", "Canon", "NIKON CORPORATION", "apple", ""]
    models = [None, "iPhone 12", "EOS 5D", "D750", "X", ""]
    folders = ["/p", "/p/a", "/p/a b", "/p/Ä", "/q/2019/Work", "/p/a/b"]
    rows = []
    for i in range(3000):
        folder = rng.choice(folders)
        rows.append(
            (f"{folder}/{i}.jpg", folder, 1, 1, f"h{i}", rng.choice(makes), rng.choice(models))
        )
    with conn:
        conn.executemany(
            "INSERT INTO files (path, folder, size, mtime_ns, content_hash, camera_make,"
            " camera_model) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    want = set(
        conn.execute(
            "SELECT DISTINCT camera_make, camera_model FROM files"
            " WHERE camera_make IS NOT NULL OR camera_model IS NOT NULL"
        )
    )
    got = vocabulary.cameras(conn)
    assert len(got) == len(set(got)) and set(got) == want
    assert sorted(vocabulary.folders(conn)) == sorted(folders)
    assert vocabulary.has_photos_between(conn, "0", "9") is False  # no dates at all
    assert vocabulary.media_types(conn) == set()

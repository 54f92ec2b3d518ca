"""The keyword signal of a one-model library skips the per-row join with `results` (the warm
`imgcap serve` query's largest cost) and returns exactly what the join returns."""

from __future__ import annotations

import numpy as np
from search_fixtures import Photo, ResultRecord, embed_text, make_db

from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.queries import FileFilter, keyword_matches
from search.query import fts_query, query_words

REFERENCE = (
    "SELECT r.id, bm25(results_fts) AS rank FROM results_fts"
    " JOIN results r ON r.id = results_fts.rowid"
    " WHERE results_fts MATCH ? AND r.model = ? ORDER BY rank LIMIT ?"
)
PHOTOS = [
    Photo(f"p{i}.png", f"a {w} on a {v} near the {u}")
    for i, (w, v, u) in enumerate(
        zip(
            "dog cat car bus bike boat".split(),
            "bench sofa street road hill lake".split(),
            "tree house sea park wall shop".split(),
            strict=True,
        )  # fmt: skip
    )
]


def _check(db, model, text, limit=100):
    conn = connect_readonly(db)
    statements = []
    conn.set_trace_callback(statements.append)
    q = fts_query(query_words(text))
    got = keyword_matches(conn, model, q, limit, FileFilter())
    conn.set_trace_callback(None)
    want = [(int(i), -float(s)) for i, s in conn.execute(REFERENCE, [q, model, limit])]
    conn.close()
    assert sorted(got) == sorted(want)
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    return [s for s in statements if "results_fts MATCH" in s]


def test_one_model_needs_no_join_and_agrees(tmp_path):
    db = make_db(tmp_path / "photos", PHOTOS, tmp_path / "lib.db")
    for text in ("a dog on a bench", "the", "sofa cat", "zebra"):
        (sql,) = _check(db, "fake-clip", text)
        assert "JOIN" not in sql
    _check(db, "fake-clip", "a", limit=2)


def test_several_models_still_filter_by_model(tmp_path):
    db = make_db(tmp_path / "photos", PHOTOS, tmp_path / "lib.db")
    conn = connect_readonly(db)
    hashes = [h for (h,) in conn.execute("SELECT content_hash FROM results ORDER BY id")]
    conn.close()
    with Store.open(db) as s:  # a second model captioned half of the photos
        vec = np.ones(64, np.float32)
        other = [ResultRecord(h, "a dog on a bench", vec, embed_text("x")) for h in hashes[:3]]
        s.write_batch("other-model", other, [])
    for model in ("fake-clip", "other-model"):
        (sql,) = _check(db, model, "a dog on a bench")
        assert "JOIN" in sql

"""Query plans the gallery's speed rests on at 100,000 photos (BENCHMARKS.md, other
languages): SQLite has no statistics to choose by, so these pin the index each query uses."""

from __future__ import annotations

from indexer.store import photos, queries
from indexer.store.database import Store


def _plan(conn, sql: str, params: list) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_written_captions_are_probed_by_their_partial_index(tmp_path):
    with Store.open(tmp_path / "i.db") as store:
        conn = store.db.conn
        plan = _plan(
            conn,
            "SELECT 1 FROM results WHERE model = ? AND caption_edited_at IS NOT NULL LIMIT 1",
            ["m"],
        )
        assert "USING INDEX results_written" in plan  # not a scan of every result's vectors
        assert queries._has_written_captions(conn, "m") is False


def test_keyframe_joins_start_from_the_video(tmp_path, monkeypatch):
    """A video's keyframes, then each one's result by its key: never every result of the model
    (what SQLite chose for a plain JOIN, ~40 ms at 100,000 photos on every gallery page)."""
    seen: list[str] = []
    with Store.open(tmp_path / "i.db") as store:
        conn = store.db.conn
        real = conn.execute
        plans = []

        class Spy:
            def execute(self, sql, params=()):
                if "video_frames vf" in sql:
                    seen.append(sql)
                    plans.append(_plan(conn, sql.replace("{marks}", "?"), list(params)))
                return real(sql, params)

            def __getattr__(self, name):
                return getattr(conn, name)

        photos.caption_sources(Spy(), ["abc"], "m")
        photos.keyframes(Spy(), "abc", "m")
    assert len(seen) == 2
    for plan in plans:
        assert plan.startswith("SEARCH vf USING INDEX idx_video_frames_video_hash"), plan
        assert "SEARCH r USING INDEX idx_results_content_hash_model" in plan, plan

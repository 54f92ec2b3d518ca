"""User captions: an edit wins over the generated caption (kept beside it), is found at once by
keyword and caption search, survives re-indexing, and can be cleared. Store API + web API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from search_fixtures import MODEL, ResultRecord, embed_text
from serve_fixtures import BASE, client, ids_by_name, make_gallery

from indexer.errors import StoreError, UsageError
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.user_captions import clear_user_caption, set_user_caption, user_captions

NEW = "zebra crossing painted purple"
XSS = "<img src=x onerror=alert(1)>"


def _post(c, file_id, caption):
    return c.post(
        f"/api/photo/{file_id}/caption", json={"caption": caption}, headers={"Origin": BASE}
    )


def test_edit_wins_is_searchable_at_once_and_keeps_the_generated(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    kitchen = ids["kitchen.png"]
    # Warm the FAISS cache first: the edit must make it stale.
    assert c.get("/api/search", params={"q": "zebra", "mode": "caption"}).status_code == 200
    r = _post(c, kitchen, f"  {NEW}  ")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["caption"] == NEW and body["caption_source"] == "user"
    assert body["generated_caption"] == "a bowl of fruit on a kitchen table"
    for mode in ("keyword", "caption", "hybrid"):
        hits = c.get("/api/search", params={"q": "purple zebra", "mode": mode}).json()["hits"]
        assert hits[0]["id"] == kitchen, mode
        assert hits[0]["caption"] == NEW and hits[0]["caption_source"] == "user"
    # The caption signal scored the new text's vector (cosine of a text with itself ~ 1).
    hit = c.get("/api/search", params={"q": NEW, "mode": "caption"}).json()["hits"][0]
    assert hit["signals"]["caption"]["score"] > 0.99
    # The old caption's words no longer find it by keyword.
    old = c.get("/api/search", params={"q": "fruit bowl", "mode": "keyword"}).json()["hits"]
    assert kitchen not in [h["id"] for h in old]
    page = c.get(f"/photo/{kitchen}").text
    assert NEW in page and "Your caption" in page and "a bowl of fruit" in page
    grid = c.get("/", params={"q": "zebra"}).text
    assert 'class="edited"' in grid


def test_edit_survives_reindexing_and_clear_restores_it(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    kitchen = ids_by_name(c)["kitchen.png"]
    with connect_readonly(db) as conn:
        before = conn.execute("SELECT caption_vec FROM results ORDER BY id").fetchall()
    _post(c, kitchen, NEW)
    # What a later `imgcap index` does for this content: offer a fresh generated result and
    # upsert the file (here even through a new path: a move). The user's caption stays.
    h = c.get(f"/api/photo/{kitchen}").json()["content_hash"]
    moved = root / "moved.png"
    (root / "home/kitchen.png").rename(moved)
    st = moved.stat()
    from indexer.store.records import FileRecord

    with Store.open(db) as s:
        rec = ResultRecord(h, "a new generated caption", np.ones(64, np.float32), np.ones(64))
        s.write_batch(MODEL, [rec], [FileRecord(str(moved), st.st_size, st.st_mtime_ns, h)])
        s.remove_paths([str(root / "home/kitchen.png")])
        s.collect_garbage()
    moved_id = ids_by_name(c)["moved.png"]
    body = c.get(f"/api/photo/{moved_id}").json()
    assert body["caption"] == NEW and body["caption_source"] == "user"
    assert body["generated_caption"] == "a bowl of fruit on a kitchen table"
    # null restores the generated caption and its vector exactly.
    r = _post(c, moved_id, None)
    assert r.status_code == 200 and r.json()["caption_source"] == "generated"
    assert r.json()["caption"] == "a bowl of fruit on a kitchen table"
    with connect_readonly(db) as conn:
        assert conn.execute("SELECT caption_vec FROM results ORDER BY id").fetchall() == before
    hits = c.get("/api/search", params={"q": "fruit bowl", "mode": "keyword"}).json()["hits"]
    assert hits[0]["id"] == moved_id
    _post(c, moved_id, NEW)
    r = _post(c, moved_id, "   ")  # an emptied box is refused, never a silent clear
    assert r.status_code == 400 and "empty" in r.json()["error"]
    assert c.get(f"/api/photo/{moved_id}").json()["caption"] == NEW


def test_store_api_by_path_and_by_id(tmp_path):
    root, db = make_gallery(tmp_path)
    path = str(root / "home/red_car.png")
    vec = embed_text(NEW)
    h = set_user_caption(db, path, MODEL, NEW, vec)
    with connect_readonly(db) as conn:
        rows = user_captions(conn)
        file_id = conn.execute("SELECT id FROM files WHERE path = ?", [path]).fetchone()[0]
    assert rows == [
        {"path": path, "model": MODEL, "caption": NEW,
         "generated_caption": "a red car parked in the street", "edited_at": rows[0]["edited_at"]}
    ]  # fmt: skip
    set_user_caption(db, file_id, MODEL, "second edit", embed_text("second edit"))
    with connect_readonly(db) as conn:
        (row,) = user_captions(conn)
        assert row["caption"] == "second edit"
        assert row["generated_caption"] == "a red car parked in the street"  # still the model's
        assert conn.execute("SELECT count(*) FROM results WHERE content_hash = ?", [h]).fetchone()
    assert clear_user_caption(db, path) is True
    assert clear_user_caption(db, path) is False
    with pytest.raises(UsageError, match="not in the index"):
        set_user_caption(db, str(root / "nope.png"), MODEL, NEW, vec)
    with pytest.raises(StoreError, match="vector has 3 values"):
        set_user_caption(db, path, MODEL, NEW, np.ones(3))
    with pytest.raises(StoreError, match="no caption from model"):
        set_user_caption(db, path, "other-model", NEW, vec)
    with pytest.raises(StoreError, match="no database"):
        set_user_caption(tmp_path / "none.db", path, MODEL, NEW, vec)


def test_edited_caption_is_escaped_and_validated(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    red = ids_by_name(c)["red_car.png"]
    assert _post(c, red, XSS).status_code == 200
    for html in (c.get(f"/photo/{red}").text, c.get("/", params={"q": "img onerror"}).text):
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert _post(c, red, "x" * 2001).status_code == 400
    assert _post(c, red, 42).status_code == 400
    assert _post(c, 999, "hello").status_code == 404
    r = c.post(
        f"/api/photo/{red}/caption", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_a_database_from_before_user_captions_is_read_then_migrated(tmp_path):
    import sqlite3

    _, db = make_gallery(tmp_path)
    conn = sqlite3.connect(db)  # make it a version-2 database, as the previous release wrote
    conn.execute("DROP INDEX results_written")  # (schema 14's, on a column version 2 lacks)
    for col in ("generated_caption", "generated_caption_vec", "caption_edited_at"):
        conn.execute(f"ALTER TABLE results DROP COLUMN {col}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    c = client(db)
    red = ids_by_name(c)["red_car.png"]
    assert c.get(f"/api/photo/{red}").json()["caption_source"] == "generated"
    assert _post(c, red, NEW).json()["caption_source"] == "user"  # migrated on the first edit
    assert Path(db).is_file()


def test_export_marks_edited_captions(tmp_path):
    from typer.testing import CliRunner

    import cli
    from search.export import read_export

    root, db = make_gallery(tmp_path)
    set_user_caption(db, str(root / "home/red_car.png"), MODEL, NEW, embed_text(NEW))
    for out in (tmp_path / "out.csv", tmp_path / "out.jsonl"):
        r = CliRunner().invoke(cli.app, ["export", str(out), "--db", str(db)])
        assert r.exit_code == 0, r.output
        rows = {Path(row["path"]).name: row for row in read_export(out)}
        assert (rows["red_car.png"]["caption"], rows["red_car.png"]["source"]) == (NEW, "user")
        assert {row["source"] for n, row in rows.items() if n != "red_car.png"} == {"generated"}


def test_edit_while_an_index_run_holds_the_database(tmp_path):
    from indexer.store.lock import writer_lock

    _, db = make_gallery(tmp_path)
    c = client(db)
    red = ids_by_name(c)["red_car.png"]
    with writer_lock(db), Store.open(db) as run:
        run_id = run.start_run(MODEL)  # an index run in progress, between two batches
        assert "in progress" in c.get("/").text
        assert _post(c, red, NEW).json()["caption_source"] == "user"
        run.finish_run(run_id, "completed", {})
    assert c.get("/api/search", params={"q": "zebra"}).json()["hits"][0]["id"] == red

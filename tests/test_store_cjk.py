"""Chinese, Japanese and Korean text in the full-text index (indexer/store/cjk.py): a CJK tag
is found by a word inside it, Latin text is indexed exactly as before, and a database written
before m011 gets its CJK tags' bigrams when it is opened."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from indexer.store import cjk, photo_tags, photo_text, schema
from indexer.store.database import Store
from search.query import fts_query


def _index(texts: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(words)")  # unicode61, as enable_fts makes
    conn.executemany("INSERT INTO t (rowid, words) VALUES (?, ?)", enumerate(texts))
    return conn


def _found(conn: sqlite3.Connection, word: str) -> set[int]:
    sql = "SELECT rowid FROM t WHERE t MATCH ?"
    return {i for (i,) in conn.execute(sql, [fts_query([word])])}


TEXTS = ["北京旅行", "東京タワー", "서울 여행", "서울여행", "黒猫", "旅行 北京", "ｶﾒﾗ", "Grandma"]


@pytest.mark.parametrize(
    ("word", "rows"),
    [
        ("北京", {0, 5}),  # a word inside a tag, and the tag that holds it as a word
        ("北京旅行", {0}),  # a phrase of bigrams: "旅行 北京" holds both words, not the phrase
        ("京旅", {0}),
        ("東京", {1}),
        ("タワー", {1}),
        ("서울", {2, 3}),  # Korean: after a space, and inside a hashtag without one
        ("여행", {2, 3}),
        ("猫", {4}),  # one character: through the single characters
        ("カメラ", {6}),  # half-width katakana is the same word (NFKC)
        ("上海", set()),
        ("grandma", {7}),
    ],
)
def test_a_cjk_word_finds_the_texts_that_hold_it(word, rows):
    conn = _index([cjk.fts_text(t) for t in TEXTS])
    assert _found(conn, word) == rows
    # the naive spec: the word occurs in the text (normalised)
    assert {i for i, t in enumerate(TEXTS) if cjk.contains(t, word) or word in t.casefold()} == rows


def test_without_bigrams_a_cjk_tag_is_one_token():
    conn = _index(TEXTS)  # what the FTS table held before m011
    assert _found(conn, "北京") == {5} and _found(conn, "東京") == set()


def test_latin_text_is_indexed_and_queried_as_before():
    for text in ["Grandma", "2019 trip\nÎle-de-France", "", 'a "quoted" word']:
        assert cjk.fts_text(text) == text
    assert fts_query(["dog", 'a"b']) == '"dog" OR "a""b"'


def _tag(db, path: str, tags: list[str], description: str | None = None) -> None:
    row = photo_tags.TagRow(path, tags, description, 1, 1, "", [])
    photo_tags.save(db, [row])


def _tagged(conn: sqlite3.Connection, word: str) -> set[str]:
    paths = ["/p/a.jpg", "/p/b.jpg"]
    return photo_tags.matching_paths(conn, fts_query([word]), paths)


def _files(db: Database) -> None:
    for name in ("a", "b"):
        db.execute(
            "INSERT INTO files (path, folder, size, mtime_ns, content_hash)"
            " VALUES (?, '/p', 1, 1, ?)",
            [f"/p/{name}.jpg", name],
        )


def test_tags_and_descriptions_are_found_by_a_word_inside(tmp_path):
    with Store.open(tmp_path / "i.db") as store:
        _files(store.db)
        _tag(store.db, "/p/a.jpg", ["北京旅行", "Family"])
        _tag(store.db, "/p/b.jpg", [], "東京タワーの夜景")
        conn = store.db.conn
        assert _tagged(conn, "北京") == {"/p/a.jpg"}
        assert _tagged(conn, "夜景") == {"/p/b.jpg"}
        assert _tagged(conn, "family") == {"/p/a.jpg"}
        # the tags as written are what is shown
        assert photo_tags.tags_for_paths(conn, ["/p/a.jpg"]) == {"/p/a.jpg": ["北京旅行", "Family"]}


def test_a_database_from_before_m011_gets_cjk_search_when_opened(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    before = schema.MIGRATIONS.index(schema.m011_cjk_fts)  # the version it had
    schema.migrations.apply(db)
    for version in range(2, before + 1):
        with db.atomic():
            schema.MIGRATIONS[version - 1](db)
            schema._stamp(db, version)
    _files(db)
    # as imgcap wrote tags before: the words without bigrams
    db.execute(
        "INSERT INTO photo_tags (path, tags, folded, description, words, sidecars, size,"
        " mtime_ns) VALUES ('/p/a.jpg', '[\"서울여행\"]', '[\"서울여행\"]', NULL, '서울여행', '',"
        " 1, 1), ('/p/b.jpg', '[\"Beach\"]', '[\"beach\"]', NULL, 'Beach', '', 1, 1)"
    )
    db.conn.commit()
    assert _tagged(db.conn, "서울") == set()
    db.close()
    with Store.open(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert _tagged(store.db.conn, "서울") == {"/p/a.jpg"}
        assert _tagged(store.db.conn, "beach") == {"/p/b.jpg"}
        latin = store.db.execute("SELECT words FROM photo_tags WHERE path = '/p/b.jpg'")
        assert latin.fetchone() == ("Beach",)  # untouched


def test_a_cjk_word_still_finds_itself_as_a_whole_token():
    # a person's caption is indexed without bigrams: "北京旅行" holds itself as one token
    conn = _index(["北京旅行", "上海旅行"])
    assert _found(conn, "北京旅行") == {0}
    assert fts_query(["北京旅行", "dog"]) == '("北京 京旅 旅行" OR "北京旅行") OR "dog"'


def test_tags_merged_from_an_older_database_get_their_bigrams(tmp_path):
    from indexer.store.merge import merge
    from indexer.store.records import FileRecord
    from indexer.store.roots import add_roots

    theirs = tmp_path / "theirs.db"
    with Store.open(theirs) as store:
        add_roots(store.db, ["/p"], theirs)
        store.write_batch("m", [], [FileRecord("/p/a.jpg", 1, 1, "0" * 32)])
        # as an imgcap before m011 wrote it
        store.db.execute(
            "INSERT INTO photo_tags (path, tags, folded, words, sidecars)"
            " VALUES ('/p/a.jpg', '[\"서울여행\"]', '[\"서울여행\"]', '서울여행', '')"
        )
        store.db.conn.commit()
    ours = tmp_path / "ours.db"
    assert merge(ours, theirs).tags_added == 1
    conn = sqlite3.connect(ours)
    assert photo_tags.matching_paths(conn, fts_query(["서울"]), ["/p/a.jpg"]) == {"/p/a.jpg"}
    conn.close()


def test_text_read_in_a_photo_is_found_by_a_cjk_word_inside_a_line(tmp_path):
    """OCR reads Chinese signs as lines with no spaces; the text index holds their bigrams."""
    box = [0.0] * 8
    with Store.open(tmp_path / "t.db") as store:
        conn = store.db.conn
        conn.executemany(
            "INSERT INTO results (content_hash, model, caption, image_vec, caption_vec, dim)"
            " VALUES (?, 'm', '', x'', x'', 0)",
            [("sign",), ("menu",)],
        )
        reads = [("sign", [("北京站出口", 0.9, box)], None), ("menu", [("coffee", 0.9, box)], None)]
        photo_text.save(store.db, reads, "r")
        ids = {k: i for i, k in conn.execute("SELECT id, content_hash FROM results")}
        found = photo_text.keyword_matches(conn, "m", fts_query(["北京"]), 10)
        assert [i for i, _ in found] == [ids["sign"]]
        assert [i for i, _ in photo_text.keyword_matches(conn, "m", fts_query(["coffee"]), 10)] == [
            ids["menu"]
        ]

"""The gallery takes `lang` as the CLI takes --lang, and its API says which language and text
tower a query used."""

from __future__ import annotations

from serve_fixtures import client, make_gallery


def test_the_api_says_language_and_tower_and_lang_forces_it(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    got = c.get("/api/search", params={"q": "a dog on the beach"}).json()
    assert (got["language"], got["text_tower"]) == ("en", "clip")
    got = c.get("/api/search", params={"q": "Hund am Strand", "lang": "en"}).json()
    assert (got["language"], got["text_tower"]) == ("en", "clip")
    assert got["hits"][0]["language"] == "en"
    bad = c.get("/api/search", params={"q": "dog", "lang": "german!"})
    assert bad.status_code == 400 and "--lang" in bad.json()["error"]
    page = c.get("/", params={"q": "Hund am Strand"})  # no tower here: CLIP's, and it says so
    assert "Language: de" in page.text and "English text tower" in page.text

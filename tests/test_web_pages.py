"""`imgcap serve` pages and JSON API through Starlette's TestClient (fake CLIP, no torch)."""

from __future__ import annotations

import sys
from pathlib import Path

from search_fixtures import Photo
from serve_fixtures import PHOTOS, client, ids_by_name, make_gallery

from search.web.pages import similar_label


def test_search_page_shows_thumbnails_why_chips_and_highlights(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    r = c.get("/", params={"q": "dog"})
    assert r.status_code == 200
    html = r.text
    assert html.index("dog_beach") if "dog_beach" in html else True
    assert 'src="/thumb/' in html and "?v=" in html
    assert "a <mark>dog</mark> running on the beach" in html
    # why, in plain words; the numbers behind it in the tooltip
    looks = 'title="picture similarity 0.30, #1 by the picture">looks like “dog”</span>'
    assert '<span class="chip looks" ' + looks in html
    assert '<span class="chip mentions">caption mentions dog</span>' in html
    assert "img 0.30" not in html and 'class="legend"' in html
    assert 'value="dog"' in html  # the query stays in the box (the URL holds the search)


def test_api_search_has_the_cli_json_fields_plus_ids(tmp_path):
    _, db = make_gallery(tmp_path)
    body = client(db).get("/api/search", params={"q": "dog"}).json()
    hit = body["hits"][0]
    cli_fields = {"rank", "score", "path", "caption", "model", "signals", "matched", "width",
                  "height", "taken_at", "camera", "indexed_at"}  # fmt: skip
    assert cli_fields | {"id", "content_hash", "caption_source"} <= set(hit)
    assert Path(hit["path"]).name == "dog_beach.png"
    assert hit["caption_source"] == "generated"
    assert set(hit["signals"]) == {"image", "caption", "keyword"}


def test_filters_and_modes_come_from_the_url(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)

    def names(**params):
        r = c.get("/api/search", params={"n": 50, **params})
        assert r.status_code == 200, r.text
        return {Path(h["path"]).name for h in r.json()["hits"]}

    assert names(q="dog", **{"in": str(root / "trips")}) == {"dog_beach.png", "dog_park.png"}
    assert names(q="dog", after="2019-07") == {"dog_park.png", "cat_sofa.png", "red_car.png"}
    assert names(q="dog", before="2020") == {"dog_beach.png", "dog_park.png"}
    assert names(q="dog", camera="iphone") == {"cat_sofa.png"}
    assert names(q="dog", mode="keyword") == {"dog_beach.png", "dog_park.png"}
    assert names(q="dog", mode="image", min_score="0.2") == {"dog_beach.png"}
    # A bad value is a 400 with the CLI's message, on the page as on the API.
    r = c.get("/api/search", params={"q": "dog", "after": "2019-13"})
    assert r.status_code == 400 and "after" in r.json()["error"]
    page = c.get("/", params={"q": "dog", "after": "2019-02-30"})
    assert page.status_code == 200 and "not a real date" in page.text
    assert c.get("/api/search", params={"q": "dog", "mode": "bogus"}).status_code == 400


def test_paging_never_repeats_and_says_when_there_is_more(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    seen, page = [], 1
    while True:
        body = c.get("/api/search", params={"q": "a photo", "n": 2, "page": page}).json()
        seen += [h["id"] for h in body["hits"]]
        if not body["has_more"]:
            break
        page += 1
    assert page == 3 and sorted(seen) == [1, 2, 3, 4, 5]
    # The page's "More photos" link carries every option and the next page number.
    html = c.get("/", params={"q": "a photo", "mode": "image"}).text
    assert 'id="more"' not in html  # 5 photos fit one 48-photo page
    part = c.get("/", params={"q": "a photo", "page": "1", "partial": "1"})
    assert part.headers["x-has-more"] == "0" and part.text.count('class="card"') == 5
    assert "<html" not in part.text


def test_photo_page_and_api(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    r = c.get(f"/photo/{ids['dog_beach.png']}")
    assert r.status_code == 200
    for text in ("a dog running on the beach", "Canon EOS 80D", "2019-06-01 10:00", "640 × 480",
                 "dog_beach.png", "fake-clip", "More like this"):  # fmt: skip
        assert text in r.text
    body = c.get(f"/api/photo/{ids['cat_sofa.png']}").json()
    assert body["caption"] == "a cat sleeping on a sofa" and body["caption_source"] == "generated"
    assert body["camera"] == "Apple iPhone 11" and body["id"] == ids["cat_sofa.png"]
    assert c.get("/photo/999").status_code == 404
    assert c.get("/api/photo/999").json() == {"error": "No such photo."}


def test_similar_uses_stored_vectors_and_never_the_encoder(tmp_path):
    from search_fixtures import FakeEncoder, Photo

    photos = [
        Photo("dog_beach.png", "a dog running on the beach", content="dog beach sand"),
        Photo("dog_park.png", "a dog sitting on a park bench", content="dog beach grass"),
        Photo("cat_sofa.png", "a cat sleeping on a sofa", content="cat sofa"),
        Photo("red_car.png", "a red car parked in the street", content="red car street"),
    ]
    _, db = make_gallery(tmp_path, photos)
    enc = FakeEncoder()
    c = client(db, encoder=enc)
    ids = ids_by_name(c)
    enc.calls.clear()
    hits = c.get(f"/api/similar/{ids['dog_beach.png']}").json()["hits"]
    names = [Path(h["path"]).name for h in hits]
    assert "dog_beach.png" not in names  # not itself
    assert names[0] == "dog_park.png"  # the other dog: nearest image vector
    assert enc.calls == []  # no image decoded or encoded: the stored vector was used
    grid = c.get("/", params={"like": ids["dog_beach.png"]}).text
    assert "Photos like" in grid and grid.count('class="card"') == 3
    assert grid.index(f'href="/photo/{ids["dog_park.png"]}"') < grid.index('class="card"', 0) + 200


def test_status_page_lists_failures(tmp_path):
    from indexer.store.database import Store
    from indexer.store.records import FailureRecord

    _, db = make_gallery(tmp_path)
    with Store.open(db) as s:
        s.record_failures("fake-clip", [FailureRecord("/x/<b>broken</b>.jpg", "not an image")])
    c = client(db)
    r = c.get("/status")
    assert r.status_code == 200
    assert "&lt;b&gt;broken&lt;/b&gt;.jpg" in r.text and "not an image" in r.text
    api = c.get("/api/status").json()
    assert api["files"] == 5 and api["failures"] == 1
    assert api["failure_list"][0]["reason"] == "not an image"


def test_empty_states(tmp_path):
    c = client(tmp_path / "missing.db")
    r = c.get("/")
    assert r.status_code == 200 and "No index yet" in r.text and "imgcap index" in r.text
    assert c.get("/", params={"q": "dog"}).status_code == 200
    assert c.get("/api/search", params={"q": "dog"}).status_code == 503
    assert "No index yet" in c.get("/status").text
    _, db = make_gallery(tmp_path)
    c = client(db)
    assert "Your photos" in c.get("/").text  # no query yet: the library, newest first
    r = c.get("/", params={"q": "zebra", "mode": "keyword"})
    assert "No photos matched" in r.text


def test_index_in_progress_is_shown(tmp_path):
    from indexer.store.database import Store

    _, db = make_gallery(tmp_path)
    with Store.open(db) as s:
        s.start_run("fake-clip")
    assert "An index run is in progress" in client(db).get("/").text


def test_text_search_never_imports_torch(tmp_path):
    import subprocess

    _, db = make_gallery(tmp_path)
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from serve_fixtures import client; from pathlib import Path;"
        f"c = client(Path({str(db)!r}));"
        "assert c.get('/', params={'q': 'dog'}).status_code == 200;"
        "assert c.get('/api/similar/1').status_code == 200;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_next_pages_reuse_the_query_vector(tmp_path):
    from search_fixtures import FakeEncoder

    _, db = make_gallery(tmp_path)
    enc = FakeEncoder()
    c = client(db, encoder=enc)
    for page in (1, 2, 3):
        assert (
            c.get("/api/search", params={"q": "a photo", "n": 2, "page": page}).status_code == 200
        )
    assert enc.calls == ["texts"]  # encoded once for three pages


def test_new_results_show_up_without_a_restart(tmp_path):
    from search_fixtures import Photo, make_db

    root, db = make_gallery(tmp_path)
    c = client(db)
    assert "zebra.png" not in ids_by_name(c)
    # What an `imgcap index` run does meanwhile: commit another batch to the same database.
    make_db(root, [Photo("zebra.png", "a zebra on the savanna")], tmp_path / "other.db", seed=7)
    from indexer.store.connection import connect_readonly
    from indexer.store.database import Store

    with connect_readonly(tmp_path / "other.db") as src, Store.open(db) as s:
        from indexer.store.records import FileRecord, ResultRecord, blob_to_vec

        h, cap, iv, cv = src.execute(
            "SELECT content_hash, caption, image_vec, caption_vec FROM results"
        ).fetchone()
        st = (root / "zebra.png").stat()
        s.write_batch(
            "fake-clip",
            [ResultRecord(h, cap, blob_to_vec(iv), blob_to_vec(cv))],
            [FileRecord(str(root / "zebra.png"), st.st_size, st.st_mtime_ns, h)],
        )
    hits = c.get("/api/search", params={"q": "zebra savanna"}).json()["hits"]
    assert Path(hits[0]["path"]).name == "zebra.png"
    assert "zebra.png" in ids_by_name(c)


def test_concurrent_requests_rebuild_the_faiss_cache_one_at_a_time(tmp_path, monkeypatch):
    import threading
    import time

    from search.vectors import cache

    _, db = make_gallery(tmp_path)
    c = client(db)
    real, active, peak = cache.build_model, [0], [0]
    lock = threading.Lock()

    def build(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)  # long enough for every request to arrive while the cache is stale
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(cache, "build_model", build)
    urls = [("/api/search", {"q": "dog"})] * 3 + [("/api/similar/1", {})] * 2
    results = []
    threads = [threading.Thread(target=lambda u=u, p=p: results.append(c.get(u, params=p)))
               for u, p in urls]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 5
    assert peak[0] == 1


def test_photo_page_shows_gps_and_a_copyable_path(tmp_path):
    import sqlite3

    _, db = make_gallery(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE files SET gps_lat = 52.37014, gps_lon = -4.89167 WHERE id = 1")
    conn.commit()
    conn.close()
    c = client(db)
    html = c.get("/photo/1").text
    assert "52.37014, -4.89167" in html
    path = c.get("/api/photo/1").json()["path"]
    assert f'data-path="{path}"' in html and 'id="copy-path"' in html
    assert "GPS" not in c.get("/photo/2").text  # only when present


def test_a_photo_whose_file_is_missing_is_flagged(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    assert "file missing" not in c.get(f"/photo/{ids['red_car.png']}").text
    (root / "home" / "red_car.png").unlink()
    page = c.get(f"/photo/{ids['red_car.png']}")
    assert page.status_code == 200 and "file missing" in page.text
    r = c.get(f"/original/{ids['red_car.png']}")
    assert r.status_code == 404 and "The file is missing" in r.text and str(root) not in r.text


def test_a_card_stands_for_its_copies_and_expands_to_them(tmp_path):
    copy = Photo("backup/dog_beach.png", "unused", same_as="trips/dog_beach.png")
    root, db = make_gallery(tmp_path, [*PHOTOS, copy])
    c = client(db)
    hits = c.get("/api/search", params={"q": "dog running on the beach"}).json()["hits"]
    paths = [h["path"] for h in hits]
    assert paths[0] == str(root / "trips/dog_beach.png") and len(paths) == len(PHOTOS)
    (similar,) = hits[0]["similar"]
    assert similar["path"] == str(root / "backup/dog_beach.png") and similar["why"] == "same file"
    assert similar["content_hash"] == hits[0]["content_hash"] and similar["id"] != hits[0]["id"]
    assert all("similar" not in h for h in hits[1:])
    every = c.get("/api/search", params={"q": "dog running on the beach", "all": "1"}).json()
    assert len(every["hits"]) == len(PHOTOS) + 1 and all("similar" not in h for h in every["hits"])

    html = c.get("/", params={"q": "dog running on the beach"}).text
    assert html.count('<details class="group">') == 1 and "2 copies</summary>" in html
    assert f'<a href="/photo/{similar["id"]}"' in html and f"/thumb/{similar['id']}?v=" in html
    every_page = c.get("/", params={"q": "dog", "all": "1"}).text
    assert '<details class="group">' not in every_page
    assert 'name="all" value="1" checked' in every_page  # the next search keeps the choice
    alike = [{"why": "same file"}, {"why": "looks alike"}]
    assert similar_label(alike) == "+2 similar" and similar_label(alike[:1]) == "2 copies"


def test_filters_alone_browse_newest_first_or_say_nothing_matched(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    r = c.get("/", params={"in": str(root / "trips")})
    assert r.status_code == 200
    assert r.text.index("park bench") < r.text.index("on the beach")  # newest first
    assert "newest first" in r.text and "No photos matched" not in r.text
    hits = c.get("/api/search", params={"camera": "apple"}).json()["hits"]
    assert [Path(h["path"]).name for h in hits] == ["cat_sofa.png"] and hits[0]["signals"] == {}
    # this index has no places: a plain message naming the filter, not an empty page
    r = c.get("/", params={"place": "Paris"})
    assert r.status_code == 200
    assert "No photos matched" in r.text and "Filters: place Paris" in r.text
    assert c.get("/api/search").status_code == 400  # nothing asked at all


def test_tags_and_descriptions_show_on_cards_and_the_photo_page(tmp_path):
    from writeback_fixtures import DARKTABLE_SIDECAR, sidecar_with_description

    from indexer.metadata.tags import refresh_tags
    from indexer.store.database import Store

    root, db = make_gallery(tmp_path)
    (root / "trips/dog_beach.png.xmp").write_text(DARKTABLE_SIDECAR)  # Grandma, germany...
    (root / "home/red_car.png.xmp").write_text(sidecar_with_description("Uncle Bob's car"))
    with Store.open(db) as store:
        refresh_tags(store, [str(root)])
    c = client(db)
    assert 'name="tag"' in c.get("/").text  # the filter panel has a Tag field
    r = c.get("/", params={"tag": "grandma"})
    assert '<span class="chip tag">your tag Grandma</span>' in r.text
    assert "cat_sofa" not in r.text
    r = c.get("/", params={"q": "bob", "mode": "keyword"})
    assert '<span class="chip description">your description mentions bob</span>' in r.text
    ids = ids_by_name(c)
    page = c.get(f"/photo/{ids['dog_beach.png']}").text
    assert 'id="tags"' in page and ">Grandma</a>" in page and "/?tag=Grandma" in page
    page = c.get(f"/photo/{ids['red_car.png']}").text
    assert "Uncle Bob&#39;s car" in page

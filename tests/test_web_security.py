"""`imgcap serve` serves a person's photo library: files only by id, Host and Origin checks,
escaping, and no tracebacks to the client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote

import pytest
from search_fixtures import Photo
from serve_fixtures import client, ids_by_name, make_gallery

from search.web.server import allowed_host

XSS = "<img src=x onerror=alert(1)>"


def raw_get(app, raw_path: str, host: str = "127.0.0.1:8765") -> int:
    """Status of a GET with exactly this path (HTTP clients normalise `..` before sending; a
    hostile client does not). The path is decoded as uvicorn decodes it."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
        "query_string": query.encode(), "root_path": "", "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765),
    }  # fmt: skip
    status = []
    sent = []

    async def receive():
        if sent:  # the request was read: now wait, as a connected client does
            await asyncio.sleep(3600)
        sent.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return status[0]


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/%2e%2e/%2e%2e/cli.py",
        "/static/%2e%2e%2f%2e%2e%2fcli.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/style.css%00.js",
        "/static/",
        "/static",
        "/thumb/../../etc/passwd",
        "/thumb/%2e%2e%2fetc%2fpasswd",
        "/thumb/1%00",
        "/thumb//etc/passwd",
        "/original/..%2f1",
        "/original/-1",
        "/original/999",
        "/photo/1/../../etc/passwd",
        "/etc/passwd",
        "/search/server.py",
        "/templates/base.html",
    ],
)
def test_traversal_and_unknown_paths_are_404(tmp_path, path):
    _, db = make_gallery(tmp_path)
    assert raw_get(client(db).app, path) == 404


def test_only_indexed_files_are_served_by_id(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    r = c.get(f"/original/{ids['red_car.png']}")
    assert r.status_code == 200 and r.content == (root / "home/red_car.png").read_bytes()
    assert r.headers["content-security-policy"] == "sandbox"
    assert raw_get(c.app, "/static/app.js") == 200  # the fixed list still works


@pytest.mark.parametrize(
    "host, ok",
    [
        ("127.0.0.1:8765", True),
        ("localhost:8765", True),
        ("[::1]:8765", True),
        ("LOCALHOST.", True),
        ("evil.example", False),
        ("evil.example:8765", False),
        ("127.0.0.1.nip.io:8765", False),
        ("", False),
    ],
)
def test_host_header_check(tmp_path, host, ok):
    _, db = make_gallery(tmp_path)
    status = raw_get(client(db).app, "/api/status", host=host)
    assert (status == 200) is ok, status


def test_host_rules_for_other_bindings():
    import socket

    assert allowed_host("photos.lan:8765", "photos.lan")
    assert allowed_host("192.168.1.20:8765", "0.0.0.0")
    assert allowed_host(f"{socket.gethostname()}:8765", "0.0.0.0")
    assert not allowed_host("attacker.example:8765", "0.0.0.0")
    assert not allowed_host("photos.lan:8765", "127.0.0.1")


def test_caption_edit_refuses_other_origins_and_forms(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    url = f"/api/photo/{ids['red_car.png']}/caption"
    r = c.post(url, json={"caption": "x"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = c.post(url, json={"caption": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = c.post(
        url, content=b"caption=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    assert c.get(url).status_code == 405  # state changes only by POST
    body = c.get(f"/api/photo/{ids['red_car.png']}").json()
    assert body["caption"] == "a red car parked in the street"  # nothing changed


def test_captions_paths_and_exif_are_escaped(tmp_path):
    photos = [
        Photo(f"evil/{XSS.replace('/', '')}.png", XSS, camera_make="<script>alert(2)</script>"),
        Photo("evil/ok.png", 'quote " and <b>bold</b>', content="ok"),
    ]
    _, db = make_gallery(tmp_path, photos)
    c = client(db)
    ids = ids_by_name(c, "img")
    pages = [c.get("/", params={"q": "img onerror"}).text, c.get("/status").text]
    pages += [c.get(f"/photo/{i}").text for i in ids.values()]
    pages += [c.get("/", params={"like": i}).text for i in ids.values()]
    for html in pages:
        assert "<img src=x" not in html and "<script>alert" not in html and "<b>bold" not in html
    photo = c.get(f"/photo/{ids[XSS.replace('/', '') + '.png']}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in photo
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in photo
    r = c.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]  # no inline scripts run


def test_errors_are_logged_never_sent(tmp_path, caplog):
    _, db = make_gallery(tmp_path)
    c = client(db)

    def boom(*a, **k):
        raise RuntimeError("secret detail at /home/someone/private")

    c.app.state.library.photo = boom
    for url in ("/photo/1", "/api/photo/1"):
        r = c.get(url)
        assert r.status_code == 500
        assert "secret" not in r.text and "Traceback" not in r.text
        assert "went wrong" in r.text
    assert "secret detail" in caplog.text


def test_unknown_pages_have_no_listing(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    for url in ("/static/", "/thumb/", "/api/", "/nope"):
        r = c.get(url)
        assert r.status_code == 404 and "Index of" not in r.text
    assert Path  # noqa: B018 - keep the import used in every Python


# ------------------------------------------------------------------ hostile input, no internals
INTERNALS = ("Traceback", "Overflow", "sqlite", "SQLite", "Expression tree", "Recursion", ".db")


def assert_plain(r, status: int | tuple[int, ...], tmp_path: Path) -> None:
    """A 4xx with a short message that names no path, no exception and no SQLite text."""
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.url, r.text)
    assert str(tmp_path) not in r.text
    assert not any(word in r.text for word in INTERNALS), r.text


def test_ids_beyond_sqlite_integers_are_not_found(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    for big in (2**63, 2**64, 10**40):
        for url in ("/thumb", "/preview", "/original", "/photo", "/api/photo", "/api/similar"):
            assert_plain(c.get(f"{url}/{big}"), 404, tmp_path)
        assert_plain(c.get("/api/search", params={"like": big}), 404, tmp_path)
        r = c.get("/", params={"like": big})  # the page re-shows the form with the message
        assert "No such photo" in r.text and str(tmp_path) not in r.text
        assert_plain(c.post(f"/api/photo/{big}/caption", json={"caption": "x"}), 404, tmp_path)


def test_caption_bodies_must_be_an_object_with_a_string(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    car = ids_by_name(c)["red_car.png"]
    url = f"/api/photo/{car}/caption"
    assert c.post(url, json={"caption": "my red car"}).json()["caption_source"] == "user"
    json_type = {"Content-Type": "application/json"}
    bodies = [
        b'{"caption":"\\ud800"}',  # a lone surrogate: not text, cannot be stored as UTF-8
        b'{"caption":"ok \\udfff"}',
        b"[" * 100_000 + b"]" * 100_000,  # past the size cap
        b"[" * 20_000 + b"]" * 20_000,  # under the cap, past json's recursion limit
        b'{"caption":' * 5_000 + b'"x"' + b"}" * 5_000,
        b"[1,2]",  # not an object: must not restore the generated caption
        b'"text"',
        b"{}",  # no caption field: nothing to do
        b'{"caption": 5}',
        b"\xff\xfe",
        b"",
    ]
    for body in bodies:
        r = c.post(url, content=body, headers=json_type)
        assert_plain(r, (400, 413), tmp_path)
        assert set(r.json()) == {"error"}
    photo = c.get(f"/api/photo/{car}").json()
    assert (photo["caption"], photo["caption_source"]) == ("my red car", "user")  # untouched
    assert c.post(url, json={"caption": None}).json()["caption_source"] == "generated"


def test_too_many_filter_values_are_refused_with_the_limit(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    many = ",".join(f"town{i}" for i in range(3000))
    r = c.get("/api/search", params={"q": "dog", "place": many})
    assert_plain(r, 400, tmp_path)
    assert "100" in r.json()["error"]
    r = c.get("/", params={"q": "dog", "place": many})
    assert "100" in r.text and "Expression" not in r.text and str(tmp_path) not in r.text
    r = c.get("/api/search", params={"like": ids_by_name(c)["red_car.png"], "place": many})
    assert_plain(r, 400, tmp_path)
    assert c.get("/api/search", params={"q": "dog", "place": "Paris, France"}).status_code == 200


def test_server_errors_name_no_path(tmp_path):
    c = client(tmp_path / "missing.db")
    r = c.get("/api/search", params={"q": "dog"})
    assert r.status_code == 503 and "error" in r.json()
    assert str(tmp_path) not in r.text and "missing.db" not in r.text


# ------------------------------------------------------- rows that point outside the library
def _set(db: Path, file_id: int, **values) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:
        for column, value in values.items():
            conn.execute(f"UPDATE files SET {column} = ? WHERE id = ?", [value, file_id])
    conn.close()


def _outside_image(tmp_path: Path, root: Path) -> Path:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes((root / "home/red_car.png").read_bytes())
    return secret


def test_rows_outside_every_root_are_never_served(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    secret = _outside_image(tmp_path, root)
    hostile = {
        "cat_sofa.png": str(secret),  # a path under no root
        "kitchen.png": f"{root}/home/../../outside/secret.png",  # textually under the root
        "dog_park.png": "/etc/passwd",
    }
    for name, path in hostile.items():
        _set(db, ids[name], path=path)
    for name in hostile:
        for url in ("/original", "/preview", "/thumb"):
            r = c.get(f"{url}/{ids[name]}")
            assert_plain(r, 404, tmp_path)
            assert secret.read_bytes() not in r.content and b"root:" not in r.content
    assert not (db.parent / (db.name + ".thumbs")).exists()  # nothing made from them either
    r = c.get(f"/original/{ids['red_car.png']}")  # the untouched row is still served
    assert r.status_code == 200 and r.content == (root / "home/red_car.png").read_bytes()


def test_a_photo_linked_into_the_root_from_elsewhere_is_served(tmp_path):
    # The walk indexes symlinked folders and files (another drive linked into ~/Photos): the
    # gallery shows them. Only a row's own path is judged; a link on disk is the person's.
    root, db = make_gallery(tmp_path)
    c = client(db)
    beach = ids_by_name(c)["dog_beach.png"]
    secret = _outside_image(tmp_path, root)
    link = root / "home" / "link.png"
    link.symlink_to(secret)
    _set(db, beach, path=str(link))
    r = c.get(f"/original/{beach}")
    assert r.status_code == 200 and r.content == secret.read_bytes()


def test_a_symlinked_folder_inside_the_root_is_served(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    car = ids_by_name(c)["red_car.png"]
    (root / "linked").symlink_to(root / "home")  # a link that stays inside the root
    _set(db, car, path=str(root / "linked" / "red_car.png"))
    r = c.get(f"/original/{car}")
    assert r.status_code == 200 and r.content == (root / "home/red_car.png").read_bytes()


def test_a_bad_content_hash_writes_nothing(tmp_path):
    # Two folders down: "../../x/PWNED" names DB.thumbs/../../../x, inside tmp_path then,
    # where the test can look.
    root, db = make_gallery(tmp_path / "deep" / "er")
    c = client(db)
    ids = ids_by_name(c)
    bad = ["../../x/PWNED", "./../PWNED", "AB" * 16, "ab" * 15, "ab" * 32, "ab" * 16 + "@1000"]
    for i, h in enumerate(bad):
        file_id = list(ids.values())[i % len(ids)]
        _set(db, file_id, content_hash=h)
        for url in ("/thumb", "/preview"):
            assert_plain(c.get(f"{url}/{file_id}"), 404, tmp_path)
    assert not any(tmp_path.rglob("*PWNED*")) and not (tmp_path / "x").exists()
    thumbs = db.parent / (db.name + ".thumbs")
    assert not thumbs.exists() or not any(p.is_file() for p in thumbs.rglob("*"))


def test_the_thumbnail_cache_refuses_a_bad_key(tmp_path):
    from search.web.thumbnails import ThumbnailCache

    root, db = make_gallery(tmp_path / "deep" / "er")  # as above: escapes land in tmp_path
    cache = ThumbnailCache(db)
    for h in ("../../x/PWNED", "ab" * 15 + "/."):
        with pytest.raises(LookupError):
            cache.get(h, str(root / "home/red_car.png"))
    assert not any(tmp_path.rglob("*PWNED*")) and not cache.dir.exists()
    # A cache folder that is a link out of DB.thumbs/ is not written through either.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.dir.mkdir()
    good = "0123456789abcdef" * 2
    (cache.dir / good[:2]).symlink_to(elsewhere)
    with pytest.raises(LookupError):
        cache.get(good, str(root / "home/red_car.png"))
    assert list(elsewhere.iterdir()) == []


def test_a_database_that_records_no_roots_serves_no_file(tmp_path, caplog):
    import sqlite3

    _, db = make_gallery(tmp_path)
    c = client(db)
    car = ids_by_name(c)["red_car.png"]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM roots")
    conn.close()
    for url in ("/original", "/preview", "/thumb"):
        assert_plain(c.get(f"{url}/{car}"), 404, tmp_path)
    assert "imgcap index" in caplog.text  # the server's log says how to upgrade it

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

"""A file named with bytes that are not UTF-8 (`caf\\xe9.jpg`, from old cameras, Windows copies,
ZIPs) is indexed, found, shown escaped, exported with a flag, captioned, written back, moved and
merged like any other; an empty path is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

from search_fixtures import Photo, fake_loader, make_db
from serve_fixtures import client
from typer.testing import CliRunner
from writeback_fixtures import exif_read, make_photo, needs_exiftool

import cli
from indexer.metadata import xmp
from search.cli.options import Services
from search.export import read_export

NAME = b"caf\xe9.jpg"
SHOWN = "caf\\xe9.jpg"  # as a person reads it: the byte as \xe9, valid UTF-8


def _bytes_file(folder: Path, name: bytes, data: bytes) -> Path:
    """A file created by its bytes name, as a camera or unzip leaves it; its path as Python's os
    functions give it (surrogates)."""
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    """(folder, the photo with a non-UTF-8 name) next to a normal photo; the folder's own name
    is not UTF-8 either (a root's path is matched as a prefix in SQL)."""
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/photos-\xff"))
    make_photo(root / "good.jpg")
    other = make_photo(tmp_path / "source.jpg", colour=(20, 40, 220))
    return root, _bytes_file(root, NAME, other.read_bytes())


def _run(tmp_path: Path, *args, services: Services | None = None):
    env = {
        "IMGCAP_DB": str(tmp_path / "db" / "imgcap.db"),
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }
    res = CliRunner().invoke(cli.app, [str(a) for a in args], env=env, obj=services)
    assert res.exit_code == 0, res.output
    res.stdout_bytes.decode("utf-8")  # strict: whatever was printed is valid UTF-8
    return res


def test_a_folder_with_a_non_utf8_name_is_indexed_found_exported_and_written_back(
    tmp_path, tiny_model_dir
):
    root, odd = _folder(tmp_path)
    shown_root = f"{tmp_path}/photos-\\xff"
    index = ["index", root, "--model", tiny_model_dir, "--device", "cpu", "--workers", "1"]
    summary = json.loads(_run(tmp_path, *index, "--json").stdout)
    assert (summary["new"], summary["captioned"], summary["failed"]) == (2, 2, 0)
    again = json.loads(_run(tmp_path, *index, "--json").stdout)
    assert (again["unchanged"], again["new"], again["changed"], again["captioned"]) == (2, 0, 0, 0)

    # --all: the two photos are alike enough to be one group, and both names are checked here
    text = _run(tmp_path, "search", "photo", "--in", root, "--all").stdout
    assert f"{shown_root}/{SHOWN}" in text and "good.jpg" in text
    found = _run(tmp_path, "search", "photo", "--in", root, "--all", "--json").stdout
    hits = [json.loads(line) for line in found.splitlines()]
    assert sorted(h["path"] for h in hits) == [f"{shown_root}/{SHOWN}", f"{shown_root}/good.jpg"]

    _run(tmp_path, "caption-set", odd, "my own words")
    for ext in ("csv", "jsonl"):
        out = tmp_path / f"export.{ext}"
        _run(tmp_path, "export", out, "--in", root)
        rows = {r["path"]: r for r in read_export(out)}
        assert rows[f"{shown_root}/{SHOWN}"]["path_escaped"] is True
        assert rows[f"{shown_root}/{SHOWN}"]["caption"] == "my own words"
        assert rows[f"{shown_root}/good.jpg"]["path_escaped"] is True  # its folder's name
    assert ",true" in (tmp_path / "export.csv").read_text(encoding="utf-8")

    _run(tmp_path, "write-back", root)
    sidecar = os.fsencode(root) + b"/" + NAME + b".xmp"  # beside the real file, its real name
    with open(sidecar, "rb") as f:
        assert xmp.read_fields(xmp.parse(f.read(), "sidecar")).description == "my own words"
    assert sorted(os.listdir(os.fsencode(root))) == [
        NAME, NAME + b".xmp", b"good.jpg", b"good.jpg.xmp"
    ]  # fmt: skip


def test_such_names_move_and_merge_like_any_other(tmp_path):
    services = Services(encoder_loader=fake_loader())
    root = tmp_path / "old\udcff"  # the folder's name is not UTF-8 either
    db = make_db(
        root, [Photo("caf\udce9.png", "a red car"), Photo("b.png", "a dog")], tmp_path / "a.db"
    )
    moved = Path(os.fsdecode(os.fsencode(tmp_path) + b"/new\xfe"))
    root.rename(moved)
    _run(tmp_path, "roots", "move", root, moved, "--db", db, services=services)
    other = tmp_path / "b.db"
    _run(tmp_path, "merge", db, "--db", other, services=services)
    for each in (db, other):
        res = _run(
            tmp_path, "search", "car", "--in", moved, "--db", each, "--json", services=services
        )
        paths = {json.loads(line)["path"] for line in res.stdout.splitlines()}
        assert f"{tmp_path}/new\\xfe/caf\\xe9.png" in paths


@needs_exiftool
def test_embed_writes_into_the_file_by_its_real_name(tmp_path):
    root = tmp_path / "photos"
    make_db(root, [Photo("caf\udce9.jpg", "a red car")], tmp_path / "imgcap.db")
    _run(tmp_path, "write-back", "--embed", "--db", tmp_path / "imgcap.db",
         services=Services(encoder_loader=fake_loader()))  # fmt: skip
    photo = Path(os.fsdecode(os.fsencode(root) + b"/" + NAME))
    assert exif_read(photo, "-XMP-dc:Description")["XMP-dc:Description"] == "a red car"


def test_the_gallery_shows_such_a_name_escaped(tmp_path):
    db = make_db(tmp_path / "photos", [Photo("caf\udce9.jpg", "a red car")], tmp_path / "g.db")
    c = client(db)
    res = c.get("/api/search", params={"q": "car"})
    assert res.status_code == 200
    (hit,) = res.json()["hits"]
    assert hit["path"].endswith(SHOWN)
    assert c.get(f"/api/photo/{hit['id']}").json()["path"].endswith(SHOWN)
    page = c.get(f"/photo/{hit['id']}")
    assert page.status_code == 200 and SHOWN in page.text
    assert c.get(f"/original/{hit['id']}").status_code == 200
    assert c.get("/", params={"q": "car"}).status_code == 200


def test_an_empty_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `imgcap index ""` indexed the current folder
    res = CliRunner().invoke(cli.app, ["index", "", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 2, res.output
    assert "empty path" in res.output
    assert not (tmp_path / "x.db").exists()
    res = CliRunner().invoke(cli.app, ["roots", "move", "", str(tmp_path)])
    assert res.exit_code == 2 and "empty path" in res.output, res.output

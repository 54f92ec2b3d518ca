"""`imgcap merge OTHER.db` end to end with the tiny model: the merged photos need no model work
afterwards, the vector cache is fresh, a travelling database merges from where it is now."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.store.database import Store

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "IMGCAP_DB": None,
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _cli(tmp_path, *args):
    return runner.invoke(app, [str(a) for a in args], env=_env(tmp_path))


def _index(tmp_path, model_dir, *args) -> dict:
    res = _cli(
        tmp_path,
        "index",
        "--model",
        model_dir,
        "--device",
        "cpu",
        "--workers",
        "1",
        "--json",
        *args,
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_merge_then_index_does_no_model_work(tiny_model_dir, tmp_path):
    desktop, laptop = tmp_path / "desktop", tmp_path / "laptop"
    desktop.mkdir()
    laptop.mkdir()
    Image.new("RGB", (80, 60), (200, 30, 30)).save(desktop / "red.png")
    Image.new("RGB", (60, 80), (30, 30, 200)).save(laptop / "blue.png")
    shutil.copy(desktop / "red.png", laptop / "red copy.png")  # same content on both
    db = tmp_path / "desktop.db"
    _index(tmp_path, tiny_model_dir, desktop, "--db", db)
    # The laptop keeps its index on its drive; the drive is then mounted somewhere else.
    _index(tmp_path, tiny_model_dir, laptop, "--db-here")
    mounted = tmp_path / "mnt" / "laptop"
    shutil.copytree(laptop, mounted)
    shutil.rmtree(laptop)

    res = _cli(tmp_path, "merge", mounted / ".imgcap" / "imgcap.db", "--db", db, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["roots_added"] == [str(mounted)]
    assert (report["files_added"], report["results_added"], report["conflict_count"]) == (2, 1, 0)
    with Store.open(db, create=False) as s:
        paths = sorted(p for (p,) in s.db.execute("SELECT path FROM files"))
    assert paths == sorted(
        [str(desktop / "red.png"), str(mounted / "blue.png"), str(mounted / "red copy.png")]
    )
    from search.vectors.cache import sync_indexes

    assert all(m["fresh"] and not m["rebuilt"] for m in sync_indexes(db).values())
    # Everything merged is known: indexing the laptop's folder here captions nothing.
    again = _index(tmp_path, tiny_model_dir, mounted, "--db", db)
    assert (again["unchanged"], again["captioned"], again["new"]) == (2, 0, 0)

    res = _cli(tmp_path, "merge", mounted / ".imgcap" / "imgcap.db", "--db", db)
    assert res.exit_code == 0, res.output
    assert "Nothing new" in res.stdout


def test_merge_refusal_exit_code(tmp_path):
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.commit()
    conn.close()
    res = _cli(tmp_path, "merge", other, "--db", tmp_path / "mine.db")
    assert res.exit_code == 4 and "not an imgcap database" in res.stderr, res.output


def test_a_hostile_database_merges_only_what_is_safe(tmp_path):
    from test_store_merge import make_hostile

    ours, theirs = make_hostile(tmp_path)
    res = _cli(tmp_path, "merge", theirs, "--db", ours)
    assert res.exit_code == 1, res.output
    assert "root refused: /: it is a whole file system; its files were skipped" in res.stderr
    assert "root refused: /srv: it holds this database's root /srv/photos" in res.stderr
    assert "8 rows skipped (not merged):" in res.stderr
    assert "  files: /etc/passwd: under no root" in res.stderr
    assert "  files: /etc/group: under the refused root /" in res.stderr
    assert "merged" in res.stdout and "3 photos added" in res.stdout
    res = _cli(tmp_path, "merge", theirs, "--db", ours, "--json")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["skipped_count"] == 8 and doc["files_added"] == 0
    assert {s["row"] for s in doc["skipped"]} >= {"/etc/passwd", "/laptop/pics/pwned.jpg"}
    assert sorted(r["root"] for r in doc["roots_refused"]) == ["/", "/etc", "/srv"]
    with Store.open(ours, create=False) as s:
        assert [p for (p,) in s.db.execute("SELECT path FROM roots ORDER BY path")] == [
            "/laptop/pics",
            "/srv/photos",
        ]


def test_a_damaged_database_merges_nothing(tmp_path):
    from test_store_merge import make_hostile

    ours, theirs = make_hostile(tmp_path)
    before = ours.read_bytes()
    data = bytearray(theirs.read_bytes())
    at = data.find(b"/laptop/pics/good.jpg")
    data[at + len("/laptop/pics/")] = ord("X")
    theirs.write_bytes(bytes(data))
    res = _cli(tmp_path, "merge", theirs, "--db", ours)
    assert res.exit_code == 4, res.output
    assert f"{theirs} is damaged (SQLite's integrity check:" in res.stderr
    assert "nothing was merged" in res.stderr and "Traceback" not in res.output
    assert ours.read_bytes() == before


def test_write_back_writes_nothing_outside_the_roots(tmp_path):
    """Rows as a merge by an older imgcap or a hand edit leaves them: a photo outside every root,
    a path that climbs out of its root, a photo in a folder that links out of the root. A photo
    that is itself a link to a file outside gets its sidecar beside the link (inside), but
    --embed, which would rewrite the file it leads to, refuses it."""
    from search_fixtures import Photo, make_db

    root, outside = tmp_path / "photos", tmp_path / "outside"
    db = make_db(root, [Photo("a.png", "a dog"), Photo("b.png", "a cat")], tmp_path / "imgcap.db")
    (outside / "linked").mkdir(parents=True)
    shutil.copy(root / "a.png", outside / "victim.png")
    shutil.copy(root / "b.png", outside / "linked" / "b2.png")
    (root / "linked").symlink_to(outside / "linked")
    shutil.copy(root / "a.png", outside / "fav.png")
    (root / "fav.png").symlink_to(outside / "fav.png")
    conn = sqlite3.connect(db)
    hashes = dict(conn.execute("SELECT path, content_hash FROM files"))
    hostile = {
        str(outside / "victim.png"): hashes[str(root / "a.png")],
        f"{root}/../outside/victim.png": hashes[str(root / "a.png")],
        str(root / "linked" / "b2.png"): hashes[str(root / "b.png")],
    }
    favourite = str(root / "fav.png")
    for path, content in [*hostile.items(), (favourite, hashes[str(root / "a.png")])]:
        st = os.stat(path)
        conn.execute(
            "INSERT INTO files (path, folder, size, mtime_ns, content_hash) VALUES (?, ?, ?, ?, ?)",
            [path, os.path.dirname(path), st.st_size, st.st_mtime_ns, content],
        )
    conn.commit()
    conn.close()

    def files_outside():
        return {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}

    before = files_outside()

    modes = [[]] + ([["--embed"]] if shutil.which("exiftool") else [])
    for mode in modes:
        res = _cli(tmp_path, "write-back", "--db", db, "--json", *mode)
        assert res.exit_code == 0, res.output
        got = {f["path"]: f for f in json.loads(res.stdout)["files"]}
        assert got[str(root / "a.png")]["status"] == "written"
        for path in hostile:
            assert got[path]["status"] == "failed", (mode, got[path])
        assert "outside every index root" in got[str(outside / "victim.png")]["reason"]
        assert "outside every index root" in got[f"{root}/../outside/victim.png"]["reason"]
        linked = got[str(root / "linked" / "b2.png")]["reason"]
        if mode:  # --embed would rewrite the photo where it really is
            assert "outside every index root through a symlink" in linked
            assert "through a symlink" in got[favourite]["reason"]
        else:  # the sidecar would go into the linked folder
            assert "through a symlink" in linked
            assert got[favourite]["status"] == "written" and (root / "fav.png.xmp").is_file()
        assert files_outside() == before, mode

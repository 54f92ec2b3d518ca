"""Text read in photos, as search, export and the gallery show it: the `text` signal and marker,
`--text`, the export's `text` column, the photo page's lines and boxes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from PIL import Image
from search_fixtures import Photo, make_db
from serve_fixtures import client, ids_by_name, make_gallery
from typer.testing import CliRunner

import cli
from indexer.store import photo_text
from indexer.store.database import Store
from search.cli.options import Services
from search.export import read_export


def _search(lib: dict, model_dir: Path, *args: str) -> list[dict]:
    argv = ["search", *args, "--db", str(lib["db"]), "--model", str(model_dir), "--json", "--all"]
    r = CliRunner().invoke(cli.app, argv, obj=Services())
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_search_finds_each_photo_by_a_word_only_its_text_shows(text_library, tiny_model_dir):
    for name, word in text_library["words"].items():
        if word is None:
            continue
        hits = _search(text_library, tiny_model_dir, word)
        top = hits[0]
        assert Path(top["path"]).name == name
        assert top["signals"]["text"]["rank"] == 1  # a signal of its own
        assert top["matched_in"]["text"] == [word]  # the `text` marker: the words found
        assert all(h["signals"]["text"]["rank"] is None for h in hits[1:])
    r = CliRunner().invoke(
        cli.app,
        ["search", "parking", "--db", str(text_library["db"]), "--model", str(tiny_model_dir)],
    )
    assert "text parking" in r.stdout.splitlines()[0]  # piped: why it matched, in words


def test_mode_text_ranks_by_the_text_read_alone(text_library, tiny_model_dir, tmp_path):
    word = next(w for w in text_library["words"].values() if w)
    hits = _search(text_library, tiny_model_dir, word, "--mode", "text")
    assert hits and all(set(h["signals"]) == {"text"} for h in hits)
    assert [h["matched_in"]["text"] for h in hits] == [[word]] * len(hits)
    like = tmp_path / "like.png"
    Image.new("RGB", (8, 8)).save(like)
    argv = ["search", "x", "--mode", "text", "--like", str(like), "--db", str(text_library["db"])]
    r = CliRunner().invoke(cli.app, argv)
    assert r.exit_code == 2 and "--mode text" in r.output


def test_text_filter_is_a_phrase(text_library, tiny_model_dir):
    def names(phrase: str) -> list[str]:
        return [
            Path(h["path"]).name for h in _search(text_library, tiny_model_dir, "--text", phrase)
        ]

    assert names("WIFI  password") == ["screenshot.png"]  # any case, any spacing
    assert names("password wifi") == []  # its words in order
    assert names("Parking") == ["sign.jpg"]


def _with_text(db: Path, name: str, lines: list[str]) -> None:
    conn = sqlite3.connect(db)
    (h,) = conn.execute("SELECT content_hash FROM files WHERE path LIKE ?", [f"%{name}"]).fetchone()
    conn.close()
    with Store.open(db) as store:
        box = (0.1, 0.2, 0.5, 0.2, 0.5, 0.3, 0.1, 0.3)
        photo_text.save(store.db, [(h, [(t, 0.9, box) for t in lines], None)], "test")


def test_export_has_the_text_neutralised_in_csv(tmp_path):
    root = tmp_path / "photos"
    db = make_db(root, [Photo("a.png", "a receipt"), Photo("b.png", "a cat")], tmp_path / "p.db")
    _with_text(db, "a.png", ['=HYPERLINK("http://x")', "TOTAL 42"])
    for name in ("out.csv", "out.jsonl"):
        r = CliRunner().invoke(cli.app, ["export", str(tmp_path / name), "--db", str(db)])
        assert r.exit_code == 0, r.output
        rows = {Path(r["path"]).name: r["text"] for r in read_export(tmp_path / name)}
        assert rows == {"a.png": '=HYPERLINK("http://x")\nTOTAL 42', "b.png": None}
    assert "\"'=HYPERLINK(" in (tmp_path / "out.csv").read_text()  # a formula never runs


def test_photo_page_shows_the_text_escaped_with_its_boxes(tmp_path):
    _, db = make_gallery(tmp_path)
    _with_text(db, "dog_beach.png", ["<script>alert(1)</script>", "quokka crossing"])
    c = client(db)
    page = c.get(f"/photo/{ids_by_name(c)['dog_beach.png']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert '<polygon points="0.1000,0.2000 0.5000,0.2000 0.5000,0.3000 0.1000,0.3000 ">' in page
    results = c.get("/", params={"q": "quokka"}).text
    chip = re.search(r'<span class="chip reads" title="([^"]*)">reads: quokka</span>', results)
    assert chip and chip[1].startswith("text match ")  # the signal's score and rank

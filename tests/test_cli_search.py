"""`imgcap search / export / status` through the CLI, against golden files (paths normalised).

Regenerate the golden files after an intended output change with:
    IMGCAP_UPDATE_GOLDEN=1 pytest tests/test_cli_search.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from search.cli import output
from search.cli.options import Services
from search.query import SearchRequest, search

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

GOLDEN = Path(__file__).parent / "golden"

PHOTOS = [
    Photo("park/dog.png", "a dog on a park bench", taken_at="2019-05-01T10:00:00",
          camera_make="Canon", camera_model="EOS 5D"),
    Photo("park/dog ball.png", "a dog playing with a ball", taken_at="2019-07-01T10:00:00"),
    Photo("street/car.png", "a red car on the street", taken_at="2020-01-02T10:00:00"),
    Photo("party/cake.png", "a birthday cake with candles"),
    Photo("Zürich/café.png", "café crème on a table", content="coffee cup table"),
]  # fmt: skip


@pytest.fixture
def env(tmp_path, monkeypatch):
    db = make_db(tmp_path / "photos", PHOTOS, tmp_path / "photos.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to the terminal width; fix it
    return tmp_path


def invoke(*args):
    result = CliRunner().invoke(cli.app, list(args), obj=FAKE_CLIP)
    return result


def normalise(text: str, root: Path) -> str:
    text = text.replace(str(root), "<ROOT>").replace(root.as_uri(), "file://<ROOT>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", "<TIME>", text)
    # Table widths depend on the temp dir's length: squash padding and rules.
    text = re.sub(r"([━─═]){2,}", r"\1", text)
    text = re.sub(r" {2,}", " ", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("IMGCAP_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (see module docstring)"


def test_search_table(env):
    r = invoke("search", "dog on a bench", "-n", "3")
    assert r.exit_code == 0, r.output
    check_golden("search_table.txt", normalise(r.stdout, env))


def test_search_paths(env):
    r = invoke("search", "dog", "--paths", "-n", "2", "--mode", "keyword")
    assert r.exit_code == 0, r.output
    check_golden("search_paths.txt", normalise(r.stdout, env))


def test_search_json(env):
    r = invoke("search", "red car", "--json", "-n", "2", "--not", "bench")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {"path", "caption", "score", "signals", "matched", "rank", "model"} <= set(rows[0])
    check_golden("search_json.jsonl", normalise(r.stdout, env))


def test_search_filters_and_unicode(env):
    r = invoke("search", "café", "--paths", "--in", str(env / "photos" / "Zürich"))
    assert r.exit_code == 0 and r.stdout.strip().endswith("Zürich/café.png")
    r = invoke("search", "dog", "--paths", "--after", "2019", "--before", "2019-06")
    assert [Path(p).name for p in r.stdout.split("\n") if p] == ["dog.png"]
    r = invoke("search", "dog", "--paths", "--camera", "eos")
    assert [Path(p).name for p in r.stdout.split("\n") if p] == ["dog.png"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", ""], 2, "empty query"),
        (["search", "dog", "--after", "last week"], 2, "YYYY"),
        (["search", "dog", "--model", "nope"], 2, "no results for model"),
        (["search", "dog", "--json", "--paths"], 2, "cannot be combined"),
        (["search", "dog", "--mode", "fuzzy"], 2, "is not one of"),
        (["export", "out.txt"], 2, "format"),
    ],
)
def test_errors_are_one_line_and_exit_codes(env, args, code, message):
    r = invoke(*args)
    assert r.exit_code == code and message in r.output, r.output
    assert "Traceback" not in r.output


def test_no_database(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCAP_DB", str(tmp_path / "none.db"))
    for args in (["search", "dog"], ["status"], ["export", "-"]):
        r = invoke(*args)
        assert r.exit_code == 4 and "no database" in r.output


def test_hostile_query_through_the_cli(env):
    r = invoke("search", '"dog" AND * -:^ NEAR(', "--mode", "keyword", "--paths")
    assert r.exit_code == 0, r.output


def test_export_and_status(env):
    r = invoke("export", "-")
    assert r.exit_code == 0, r.output
    check_golden("export.csv", normalise(r.stdout, env))
    out = env / "captions.jsonl"
    r = invoke("export", str(out))
    assert r.exit_code == 0 and out.is_file()
    r = invoke("status", "--json")
    info = json.loads(r.stdout)
    assert info["files"] == len(PHOTOS)
    assert info["models"]["fake-clip"]["photos"] == len(PHOTOS)
    r = invoke("status")
    assert r.exit_code == 0 and "fake-clip" in r.stdout


def test_copies_are_one_result_marked_similar_unless_all(tmp_path, monkeypatch):
    photos = [*PHOTOS, Photo("backup/dog.png", "unused", same_as="park/dog.png")]
    db = make_db(tmp_path / "photos", photos, tmp_path / "photos.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    shown, copy = str(tmp_path / "photos/park/dog.png"), str(tmp_path / "photos/backup/dog.png")

    lines = invoke("search", "dog on a park bench", "-n", "2").stdout.splitlines()
    fields = lines[0].split("\t")
    assert len(lines) == 2 and fields[2] == shown  # cut -f3 still gives a path
    assert fields[4].endswith(" · +1 similar") and "+1 similar" not in lines[1]
    assert invoke("search", "dog", "--paths", "-n", "9").stdout.count("dog.png\n") == 1
    every = invoke("search", "dog", "--paths", "--all", "-n", "9").stdout.splitlines()
    assert {shown, copy} <= set(every) and "similar" not in invoke("search", "dog", "--all").stdout

    rows = [
        json.loads(x) for x in invoke("search", "dog on a park bench", "--json").stdout.splitlines()
    ]
    assert rows[0]["path"] == shown and rows[0]["similar"] == [{"path": copy, "why": "same file"}]
    assert all("similar" not in row for row in rows[1:])


def test_similar_in_the_table(tmp_path, monkeypatch, capsys):
    photos = [*PHOTOS, Photo("backup/dog.png", "unused", same_as="park/dog.png")]
    db = make_db(tmp_path / "photos", photos, tmp_path / "photos.db")
    monkeypatch.setenv("COLUMNS", "200")
    hits = search(db, SearchRequest(text="dog on a bench", limit=2), Settings(), fake_loader())
    output.print_hits(hits, "hybrid", terminal=True)
    table = capsys.readouterr().out
    assert table.count("+1 similar") == 1 and "backup" not in table


def _json_rows(r) -> list[dict]:
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_filter_alone_lists_its_photos_newest_first(env):
    root = env / "photos"
    r = invoke("search", "--in", str(root / "park"), "--paths")
    assert r.exit_code == 0, r.output
    assert [Path(p).name for p in r.stdout.split("\n") if p] == ["dog ball.png", "dog.png"]
    # the whole library: dated photos newest first, undated after them by path
    rows = _json_rows(invoke("search", "--in", str(root), "--json", "-n", "4"))
    names = [Path(h["path"]).name for h in rows]
    assert names == ["car.png", "dog ball.png", "dog.png", "café.png"]  # Zürich/ < party/
    assert rows[0]["signals"] == {} and rows[0]["score"] == 0.0  # no signal ranks a browse
    assert [h["rank"] for h in rows] == [1, 2, 3, 4]  # -n as usual
    r = invoke("search", "--after", "2019-06", "--paths")
    assert [Path(p).name for p in r.stdout.split("\n") if p] == ["car.png", "dog ball.png"]
    r = invoke("search", "--camera", "canon", "--paths")
    assert [Path(p).name for p in r.stdout.split("\n") if p] == ["dog.png"]


def test_a_filter_that_matches_nothing_names_the_filters(env):
    r = invoke("search", "--camera", "leica", "--after", "2019")
    assert r.exit_code == 0, r.output
    assert "No photos matched the filters: camera leica, after 2019." in r.stderr
    r = invoke("search", "--camera", "leica", "--min-score", "0.2")
    assert r.exit_code == 2 and "--min-score" in r.output and "Traceback" not in r.output


def test_a_query_of_filters_only_is_a_browse(env):
    # "Park" names a folder (typed as a name), 2019 a year: nothing left to rank by
    rows = _json_rows(invoke("search", "photos from the Park 2019", "--json"))
    assert [Path(h["path"]).name for h in rows] == ["dog ball.png", "dog.png"]
    assert rows[0]["signals"] == {} and rows[0]["understood"]["folder"] == "park"
    rows = _json_rows(invoke("search", "photos from 2020", "--json"))
    assert [Path(h["path"]).name for h in rows] == ["car.png"]

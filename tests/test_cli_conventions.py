"""CLI conventions and hostile names: help, version, choices, query parsing, dates, limits, and
file names that try to drive the terminal (issue 8, items 1.2, 2 and 3.5/3.6)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.store.database import Store
from indexer.store.records import FailureRecord
from search import query
from search.cli import output
from search.cli.options import Services

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

HOSTILE = "bad\x1b]0;pwned\x07name\nline\rcr.png"  # retitles the terminal, splits lines

PHOTOS = [
    Photo("park/dog.png", "a dog on a park bench", taken_at="2019-05-01T10:00:00"),
    Photo("park/cat.png", "a cat on a sofa", taken_at="2019-07-01T10:00:00"),
    Photo(f"odd/{HOSTILE}", "a dog with a hostile name", taken_at="2020-01-02T10:00:00"),
    Photo("street/car.png", "a red car on the street", taken_at="2020-01-02T10:00:00"),
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    db = make_db(tmp_path / "photos", PHOTOS, tmp_path / "photos.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    monkeypatch.setenv("COLUMNS", "80")
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(cli.app, list(args), obj=FAKE_CLIP)


def all_help() -> dict[str, str]:
    group = typer.main.get_command(cli.app)
    texts = {"imgcap": invoke("--help").stdout}
    for name in group.list_commands(None):
        texts[name] = invoke(name, "--help").stdout
    for sub in ("download", "tiny"):
        texts[f"models {sub}"] = invoke("models", sub, "--help").stdout
    return texts


# ------------------------------------------------------------------------------ conventions
def test_version_and_short_help():
    from importlib.metadata import version

    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"imgcap {version('imgcap')}"
    for args in (["-h"], ["search", "-h"], ["models", "download", "-h"]):
        r = invoke(*args)
        assert r.exit_code == 0 and r.stdout.startswith("Usage: "), (args, r.output)
        assert "Options:" in r.stdout


def test_help_has_no_type_placeholders_and_lists_choices():
    texts = all_help()
    for name, text in texts.items():
        # typer's <bool>, <str>, <list[Path]>, <int range> and {paths} are noise, not help.
        assert not re.search(r"<(bool|str|int|float|file|dir|path|list)[^>]*>", text), (name, text)
        assert "{" + "paths}" not in text, name
    assert "--mode [hybrid|image|caption|keyword|text]" in texts["search"]
    assert "--device [auto|cpu|cuda|mps]" in texts["index"]
    assert "--precision [auto|fp32|bf16|fp16]" in texts["caption"]
    assert "-0, --null" in texts["search"]


def test_help_paragraphs_are_rewrapped_not_source_lines():
    # Docstrings are wrapped at 100 columns in the source. A leaked source line break shows as a
    # line that ends early: the next line's first word would still have fitted on it.
    for name, text in all_help().items():
        description = text.split("\n\n")[1:]  # after the usage line, before the options
        for para in description:
            if para.lstrip().startswith(("Arguments:", "Options:", "Commands:")):
                break
            lines = para.splitlines()
            for line, nxt in zip(lines, lines[1:], strict=False):
                first = nxt.split()[0]
                assert len(line) + 1 + len(first) > 78, (name, line, nxt)


def test_index_comes_first():
    text = invoke("--help").stdout
    commands = text.split("Commands:")[1]
    listed = re.findall(r"^  ([\w-]+)\s", commands, flags=re.M)
    assert listed[:2] == ["index", "search"], listed
    assert "..." not in commands  # every command's one-line help fits, nothing cut off
    models = invoke("models", "--help").stdout.split("Commands:")[1]
    assert "..." not in models


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["caption", "x.jpg", "--device", "tpu"], "2"),  # refused by the parser
        (["caption", "x.jpg", "--precision", "fp8"], "2"),
        (["caption", "x.jpg", "--model", "no-such-model"], "2"),  # refused by the model lookup
        (["caption", "x.jpg", "--model", "/no/such/dir"], "2"),  # no such folder: a usage error
    ],
)
def test_invalid_options_refused_before_torch(args, code):
    # Importing torch costs 1-2 s: a typo must be answered before that.
    script = (
        "import sys; from typer.testing import CliRunner; from cli import app;"
        f"r = CliRunner().invoke(app, {args!r});"
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(cli.__file__).parent,
    )
    assert out.stdout.split() == [code, "False"], out.stdout + out.stderr


def test_models_json_is_json_lines():
    r = invoke("models", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all({"name", "local", "default"} <= set(row) for row in rows)


# ------------------------------------------------------------------------------- the query
def test_query_words_may_start_with_a_dash(env):
    for args in (["-car"], ["red", "-car"], ["--mode", "keyword", "--", "-car"]):
        r = invoke("search", "--mode", "keyword", "--paths", *args)
        assert r.exit_code == 0, (args, r.output)
        assert r.stdout.strip().endswith("car.png"), (args, r.stdout)
    # Known short options still work, attached values too; unknown long options still fail.
    r = invoke("search", "dog", "-n1", "--mode", "keyword", "--paths")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1
    r = invoke("search", "dog", "--limt", "3")
    assert r.exit_code == 2 and "--limt" in r.output


def test_unquoted_query_is_one_query(env):
    a = invoke("search", "dog", "on", "a", "park", "bench", "--json")
    b = invoke("search", "dog on a park bench", "--json")
    assert a.exit_code == 0 and a.stdout == b.stdout


def test_huge_limit_means_all(env):
    for mode in ("hybrid", "keyword", "image"):
        r = invoke("search", "dog", "-n", "9223372036854775807", "--mode", mode, "--json")
        assert r.exit_code == 0, (mode, r.output)
        assert "Traceback" not in r.output
    assert len(r.stdout.splitlines()) == len(PHOTOS)  # image mode ranks every photo


@pytest.mark.parametrize(
    "value", ["2019-13", "2019-02-30", "2019-13-45", "2019-01-01T25:61", "2019-00", "2019-04-31"]
)
def test_impossible_dates_are_usage_errors(env, value):
    for option in ("--after", "--before"):
        r = invoke("search", "dog", option, value)
        assert r.exit_code == 2, (option, value, r.output)
        assert value in r.output and "Traceback" not in r.output


def test_real_dates_still_work(env):
    r = invoke("search", "dog", "--after", "2020-02-29", "--paths")  # a leap day
    assert r.exit_code == 0
    r = invoke("search", "dog", "--after", "2019-05-01T09:59", "--before", "2019-06", "--paths")
    assert [Path(p).name for p in r.stdout.splitlines()] == ["dog.png"]


def test_inverted_date_range_warns(env):
    r = invoke("search", "dog", "--after", "2020", "--before", "2019")
    assert r.exit_code == 0
    assert "Warning" in r.stderr and "not before" in r.stderr


def test_missing_in_folder_warns(env):
    r = invoke("search", "dog", "--in", str(env / "photos" / "prak"))
    assert "Warning" in r.stderr and "no such folder" in r.stderr and "prak" in r.stderr


# --------------------------------------------------------------------------- hostile names
def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text, repr(text)


def test_search_paths_escape_controls_and_null_gives_exact(env):
    r = invoke("search", "hostile", "--mode", "keyword", "--paths")
    assert r.exit_code == 0
    _no_raw_controls(r.stdout)
    assert len(r.stdout.splitlines()) == 1  # the newline in the name did not split the line
    assert "\\x1b]0;pwned\\x07name\\nline\\rcr.png" in r.stdout
    assert "-0" in r.stderr  # says how to get the exact names
    r = invoke("search", "dog", "--mode", "keyword", "--paths", "-0")
    names = r.stdout_bytes.split(b"\0")
    assert names[-1] == b"" and len(names) == 3
    assert (env / "photos" / "odd" / HOSTILE).as_posix().encode() in names


def test_null_needs_paths(env):
    r = invoke("search", "dog", "-0")
    assert r.exit_code == 2 and "--paths" in r.output


def test_search_table_and_lines_escape_controls(env, monkeypatch):
    r = invoke("search", "hostile dog", "--mode", "keyword")  # piped: tab-separated lines
    _no_raw_controls(r.stdout)
    for line in r.stdout.splitlines():
        assert len(line.split("\t")) == 5, line
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    r = invoke("search", "hostile dog", "--mode", "keyword")
    _no_raw_controls(r.stdout)
    assert "pwned" in r.stdout


def test_failures_escape_controls(tmp_path, monkeypatch):
    db = tmp_path / "f.db"
    with Store.open(db) as s:
        s.record_failures(None, [FailureRecord(f"/p/{HOSTILE}", "not an image", 3, 1)])
    monkeypatch.setenv("IMGCAP_DB", str(db))
    r = invoke("failures")
    assert r.exit_code == 0
    _no_raw_controls(r.stdout)
    assert r.stdout.count("\n") == 1 and "pwned" in r.stdout


def test_caption_errors_escape_controls(tmp_path):
    bad = tmp_path / HOSTILE
    bad.write_bytes(b"not an image")
    r = invoke("caption", str(bad), "--model", str(tmp_path / "no-model"))
    _no_raw_controls(r.output)


def test_printable():
    assert output.printable("a\tb\x1bc\x9bd\u202ee\udcff") == "a\\tb\\x1bc\\x9bd\\u202ee\\xff"
    assert output.printable("Zürich/café 東京.jpg") == "Zürich/café 東京.jpg"


# --------------------------------------------------------------------- readable at 80 columns
def test_table_at_80_columns(env, monkeypatch):
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    r = invoke("search", "dog on a park bench", "-n", "3")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), r.stdout
    root = str(env / "photos")
    # Paths relative to the folder the hits share, named once above the table; whole names.
    assert root not in "\n".join(lines[1:]) and "in " in lines[0]
    assert "park/dog.png" in r.stdout and "┃" not in r.stdout
    assert "a dog on a park bench" in r.stdout
    # Compact why by default (ranks), scores with --why.
    assert "#1" in r.stdout and "0.85" not in r.stdout
    r = invoke("search", "dog on a park bench", "-n", "3", "--why")
    assert re.search(r"\d\.\d\d #1", r.stdout), r.stdout


def test_short_path():
    import os

    home = os.path.expanduser("~")
    assert output.short_path(f"{home}/Photos/a.jpg") == "~/Photos/a.jpg"
    assert output.short_path("/data/p/x/a.jpg", "/data/p") == "x/a.jpg"
    assert output.short_path("/data/pp/a.jpg", "/data/p") == "/data/pp/a.jpg"
    assert output.common_root(["/d/p/a.jpg", "/d/p/x/b.jpg"]) == "/d/p"
    assert output.common_root(["/a.jpg", "/b/c.jpg"]) is None


def test_like_is_checked_before_the_model_loads(env, tmp_path):
    # A non-image (or FIFO, or over-cap photo) given to --like is refused from its header; the
    # CLIP model (seconds to load) is never asked for.
    from indexer.config import Settings
    from indexer.errors import BadImageError

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")

    def loader(model, settings):
        raise AssertionError("the encoder was loaded for a file that is no image")

    with pytest.raises(BadImageError, match="notes.jpg"):
        query.search(env / "photos.db", query.SearchRequest(like=bad, limit=3), Settings(), loader)

"""What a person reads when an option value or a model name is wrong, or the index is not
ready yet: plain words, no internals, an exit code that means something."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.store.database import Store
from indexer.store.lock import writer_lock
from search.cli.options import Services

FAKE_CLIP = Services(encoder_loader=fake_loader())


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli.app, list(args), obj=FAKE_CLIP, env=env)


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    path = make_db(tmp_path / "photos", [Photo("a/dog.png", "a dog")], tmp_path / "p.db")
    monkeypatch.setenv("IMGCAP_DB", str(path))
    return path


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-n", "-1"], "must be at least 1"),
        (["-n", "x"], "must be a whole number"),
        (["--mode", "foo"], "'foo' is not one of 'hybrid', 'image', 'caption', 'keyword'"),
        (["--after", "-5"], "--after '-5': use YYYY"),
        (["--before", "-2020"], "--before '-2020': use YYYY"),
    ],
)
def test_bad_option_values_are_named_in_plain_words(db, args, said):
    r = invoke("search", "dog", *args)
    assert r.exit_code == 2, r.output
    assert said in r.stderr
    assert "Value error" not in r.stderr and "\\x00" not in r.stderr and "\x00" not in r.stderr
    assert "Input should be" not in r.stderr and "unable to parse" not in r.stderr


def test_a_query_word_starting_with_a_dash_is_still_text(db):
    r = invoke("search", "-car", "--json")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", ["search", "index", "caption"])
def test_a_model_folder_that_does_not_exist_is_called_that(db, tmp_path, command):
    missing = tmp_path / "no" / "such" / "dir"
    target = {"search": ["dog"], "index": [str(tmp_path / "photos")]}.get(
        command, [str(tmp_path / "photos" / "a" / "dog.png")]
    )
    r = invoke(command, *target, "--model", str(missing))
    assert r.exit_code == 2, r.output
    assert f"{missing}: no such folder" in r.stderr
    assert "imgcap-model.json" not in r.stderr


def test_models_download_offline_does_not_advise_running_itself_here(tmp_path):
    env = {
        "IMGCAP_OFFLINE": "0",
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: nothing listens there
        "HF_HOME": str(tmp_path / "hf"),
        "IMGCAP_CACHE_DIR": str(tmp_path / "cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
    }
    r = invoke("models", "download", "clipcap-coco", env=env)
    assert r.exit_code == 3, r.output
    assert "cannot reach 127.0.0.1:9" in r.stderr
    assert "on a machine that reaches the hub" in r.stderr
    assert "Fix: on a machine with internet run `imgcap models download" not in r.stderr
    assert "Traceback" not in r.output


def test_search_during_the_first_index_run_says_so_with_exit_0(tmp_path):
    empty = tmp_path / "first.db"
    Store.open(empty).close()
    with writer_lock(empty):  # what `imgcap index` holds while it runs
        r = invoke("search", "dog", "--db", str(empty))
    assert r.exit_code == 0, r.output
    assert "indexing in progress: nothing committed yet" in r.stderr
    assert "Error" not in r.stderr and r.stdout == ""
    r = invoke("search", "dog", "--db", str(empty))  # no run: a real problem
    assert r.exit_code == 4 and "the index is empty" in r.stderr

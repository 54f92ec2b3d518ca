"""`imgcap write-back` and `imgcap caption-set` through the CLI."""

from __future__ import annotations

import json

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner
from writeback_fixtures import exif_read, needs_exiftool

import cli
from indexer.metadata import xmp
from search.cli.options import Services

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

PHOTOS = [
    Photo("trip/beach.jpg", "a dog on a beach"),
    Photo("trip/city.png", "a red car on a street"),
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    db = make_db(root, PHOTOS, tmp_path / "imgcap.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    return root


def invoke(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args], obj=FAKE_CLIP)


def test_dry_run_then_write_then_json(env):
    res = invoke("write-back", env, "--dry-run")
    assert res.exit_code == 0, res.output
    assert f"  + {env / 'trip/beach.jpg.xmp'}" in res.stdout
    assert "Dry run: captions by fake-clip to sidecars (photo.jpg.xmp): 2 would be written" in (
        res.stdout
    )
    assert not (env / "trip/beach.jpg.xmp").exists()

    res = invoke("write-back", "--in", env / "trip", "--naming", "lightroom", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["written"], doc["failed"], doc["naming"]) == (2, 0, "lightroom")
    assert (env / "trip/beach.xmp").is_file()


def test_problems_are_listed_and_the_exit_status_is_zero(env):
    (env / "trip/beach.jpg.xmp").write_text(
        xmp.merge_caption(None, xmp.Caption("x", "m", "g", "d"), "t", False)
        .decode()
        .replace(">x<", ">Written by me<", 1)
        .replace("<imgcap:caption>x</imgcap:caption>", "")
    )
    res = invoke("write-back")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"kept\t{env / 'trip/beach.jpg'}\thas a description imgcap did")
    assert lines[-1].endswith(
        "1 written, 0 unchanged, 1 kept, 0 failed; --force replaces"
        " descriptions imgcap did not write"
    )


def test_bad_option_combinations_are_usage_errors(env):
    assert invoke("write-back", "--sidecar", "--embed").exit_code == 2
    res = invoke("write-back", "--model", "nope")
    assert res.exit_code == 2 and "no captions by model 'nope'" in res.output
    assert invoke("write-back", "--naming", "picasa").exit_code == 2


@needs_exiftool
def test_embed_through_the_cli(env):
    res = invoke("write-back", env / "trip/beach.jpg", "--embed")
    assert res.exit_code == 0, res.output
    got = exif_read(env / "trip/beach.jpg", "-XMP-dc:Description")
    assert got["XMP-dc:Description"] == "a dog on a beach"


def test_ctrl_c_prints_the_summary_and_exits_130(env, monkeypatch):
    from indexer.metadata import writeback

    real = writeback.write_sidecar
    calls = []

    def once_then_stop(item, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(item)
        return real(item, **kw)

    monkeypatch.setattr(writeback, "write_sidecar", once_then_stop)
    res = invoke("write-back")
    assert res.exit_code == 130
    assert "1 written" in res.stdout
    assert "Interrupted" in res.output

"""`imgcap index --captions later`, `imgcap status` and the gallery's status page saying "N of M
captioned", and `imgcap caption-pending` captioning the rest from the stored vectors."""

from __future__ import annotations

import json

from PIL import Image
from serve_fixtures import client
from typer.testing import CliRunner

import cli

runner = CliRunner()


def test_index_later_then_caption_pending(tmp_path, tiny_model_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (80 * i, 90, 200)).save(photos / f"p{i}.png")
    db = tmp_path / "imgcap.db"
    common = ["--db", str(db), "--model", str(tiny_model_dir), "--device", "cpu"]
    r = runner.invoke(cli.app, ["index", str(photos), *common, "--workers", "1",
                                "--captions", "later", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["captions_pending"] == 3

    r = runner.invoke(cli.app, ["status", "--db", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "0 of 3 captioned" in r.stdout, r.output
    [info] = json.loads(runner.invoke(cli.app, ["status", "--db", str(db), "--json"]).stdout)[
        "models"
    ].values()
    assert (info["results"], info["captioned"]) == (3, 0)
    page = client(db).get("/status")
    assert page.status_code == 200 and "0 of 3 captioned" in page.text

    # A search while captions wait: every photo found by its image vector, none by an empty
    # caption (an all-zero caption vector scores 0, never NaN).
    r = runner.invoke(cli.app, ["search", "a photo", *common, "--json"])
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(hits) == 3 and all(h["caption"] == "" for h in hits)
    assert all(h["score"] == h["score"] for h in hits)  # no NaN

    r = runner.invoke(cli.app, ["caption-pending", *common, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["captioned"], report["pending"], report["interrupted"]) == (3, 0, False)
    r = runner.invoke(cli.app, ["status", "--db", str(db)], env={"COLUMNS": "200"})
    assert "captioned" not in r.stdout  # nothing waits: no line about it
    r = runner.invoke(cli.app, ["caption-pending", "--db", str(db)])
    assert r.exit_code == 0 and "Nothing to caption" in r.stdout, r.output

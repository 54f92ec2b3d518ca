"""Honest index summaries: the dry run counts what the run will count, failures standing from
earlier runs are not failures of this run, and a second model's captions are not "updates"."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from indexer.config import Settings
from indexer.models.loading import load_model
from indexer.run.pipeline import index_paths

COUNTS = ("new", "changed", "model_added", "moved", "unchanged", "removed", "failures_standing")


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (40 + i, 30), (60 * i, 90, 200)).save(root / "trip" / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def _settings(tmp_path, model_dir) -> Settings:
    return Settings(
        db_path=tmp_path / "db" / "imgcap.db", model=str(model_dir), device="cpu", workers=1,
        batch_size=4, max_tokens=4,
    )  # fmt: skip


def _counts(summary) -> dict[str, int]:
    return {k: getattr(summary, k) for k in COUNTS}


def _dry_then_real(roots, settings, model):
    dry = index_paths(roots, settings, dry_run=True)
    real = index_paths(roots, settings, model=model)
    return dry, real


def test_dry_run_predicts_moves_and_touches_as_the_run_counts_them(
    folder, tmp_path, tiny_model_dir, tiny_model
):
    settings = _settings(tmp_path, tiny_model_dir)
    index_paths([folder], settings, model=tiny_model)
    (folder / "moved").mkdir()
    os.rename(folder / "trip/p0.png", folder / "moved/p0.png")  # a move keeps size and mtime
    shutil.copy2(folder / "trip/p1.png", folder / "trip/p1 copy.png")  # a duplicate: new
    os.utime(folder / "trip/p2.png", ns=(1, 1))  # touched: same bytes, new mtime
    Image.new("RGB", (41, 30), (0, 0, 0)).save(folder / "trip/p1.png")  # edited
    gone_size = (folder / "trip/p3.png").stat().st_size
    os.remove(folder / "trip/p3.png")
    (folder / "p3.jpg").write_bytes(b"x" * gone_size)  # a move candidate by size, not an image
    dry, real = _dry_then_real([folder], settings, tiny_model)
    assert _counts(dry) == _counts(real)
    assert (real.moved, real.new, real.changed, real.removed) == (1, 1, 1, 1)
    assert real.unchanged == 1 and real.failures_standing == 1
    assert dry.failed_this_run == real.failed_this_run == 1
    assert dry.failed_reasons == real.failed_reasons
    assert dry.would_move == [
        {"from": str(folder / "trip/p0.png"), "to": str(folder / "moved/p0.png")}
    ]
    assert dry.would_remove == [str(folder / "trip/p3.png")]
    assert sorted(dry.would_process) == [
        str(folder / "trip/p1 copy.png"),
        str(folder / "trip/p1.png"),
    ]


def test_failures_standing_are_not_counted_as_failed_again(folder, tmp_path, tiny_model):
    settings = _settings(tmp_path, "unused")
    first = index_paths([folder], settings, model=tiny_model)
    assert (first.failed_this_run, first.failures_standing, first.failed) == (1, 0, 1)
    assert list(first.failed_reasons.values()) == [1]
    again = index_paths([folder], settings, model=tiny_model)
    assert (again.failed_this_run, again.failures_standing, again.failed) == (0, 1, 1)
    assert again.failed_reasons == {} and again.failures == []  # nothing failed in this run
    retried = index_paths([folder], settings, model=tiny_model, retry_failed=True)
    assert (retried.failed_this_run, retried.failures_standing) == (1, 0)


def test_second_model_counts_model_added_not_changed(
    folder, tmp_path, tiny_model, tiny_model_dir_b
):
    settings = _settings(tmp_path, tiny_model_dir_b)
    index_paths([folder], settings, model=tiny_model)
    other = load_model(str(tiny_model_dir_b), Settings(device="cpu"))
    dry, real = _dry_then_real([folder], settings, other)
    assert _counts(dry) == _counts(real)
    assert (real.model_added, real.changed, real.new, real.unchanged) == (4, 0, 0, 0)
    assert real.captioned == 4 and real.model == other.name


def _cli(*args: str):
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, ["index", *args, "--device", "cpu", "--workers", "1"])
    assert res.exit_code == 0, res.output
    return res.stdout


def _text_numbers(text: str, model: str) -> dict[str, int]:
    """The counts the text summary shows, under the JSON key each one stands for."""
    import re

    first = text.splitlines()[0]
    words = {"new": "new", "changed": "changed", "moved": "moved", "unchanged": "unchanged"}
    words |= {"removed": "removed", "failed": "failed_this_run"}
    found = {key: int(n) for n, w in re.findall(r"(\d+) (\w+)\b", first) if (key := words.get(w))}
    if m := re.search(rf"(\d+) captioned with {re.escape(model)}", first):
        found["model_added"] = int(m.group(1))
    if m := re.search(r"(\d+) failures? standing", text):
        found["failures_standing"] = int(m.group(1))
    return found


def test_text_and_json_summaries_agree(folder, tmp_path, tiny_model_dir, tiny_model_dir_b):
    import json

    # Two databases through the same three runs: one reports in JSON, the other in text.
    for model in (tiny_model_dir, tiny_model_dir, tiny_model_dir_b):
        common = (str(folder), "--model", str(model), "--db")
        as_json = json.loads(_cli(*common, str(tmp_path / "json.db"), "--json"))
        text = _cli(*common, str(tmp_path / "text.db"))
        shown = _text_numbers(text, as_json["model"])
        assert shown == {k: as_json[k] for k in shown}, text
        assert set(COUNTS) - {"model_added", "failures_standing"} <= set(shown) | {"failed"}
        assert bool(as_json["model_added"]) == ("model_added" in shown), text
        assert bool(as_json["failures_standing"]) == ("failures_standing" in shown), text
        assert "updated" not in text
    # The last run (a second model over an indexed folder) says what happened.
    assert "4 captioned with tiny-1" in text and "1 failure standing" in text


def test_a_run_with_nothing_to_caption_reports_no_rate(capsys):
    # "0 captioned at 0.0 images/s" reads like a stall; an up-to-date library says so plainly.
    from indexer.run.summary import IndexSummary
    from search.cli.output import print_index_summary

    s = IndexSummary(model="m", dry_run=False)
    s.unchanged, s.seconds = 5, 0.02
    print_index_summary(s)
    out = capsys.readouterr().out
    assert "5 unchanged" in out and "nothing to caption" in out and "images/s" not in out
    s.captioned, s.images_per_s, s.reused = 3, 12.5, 2
    print_index_summary(s)
    out = capsys.readouterr().out
    assert "3 captioned at 12.5 images/s, 2 reused" in out

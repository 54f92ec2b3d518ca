"""Bursts, copies and edits collapsed (issue 22 §2): a perceptual hash per photo at index time
(backfilled for a library indexed before, without model work), near-duplicate groups with the
original first, `imgcap duplicates`. The tiny model's CLIP has random weights, so the
perceptual hash carries these tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from photo_factory import make_duplicate_set
from run_settings import run_settings
from search_fixtures import fake_loader
from typer.testing import CliRunner

import cli
from indexer.run.pipeline import index_paths
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.similar_groups import groups_for
from search.cli.options import Services

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
FOUND_ALWAYS = ("resized", "recompressed", "brightened")  # the minimum


def _library(tmp_path, samples=("astronaut", "coffee"), lookalikes=8):
    photos = tmp_path / "photos"
    made = make_duplicate_set(photos, [SAMPLES / f"{s}.jpg" for s in samples], lookalikes)
    return photos, made


def _groups(db: Path) -> dict[str, str]:
    """path -> group key (the path itself when alone)."""
    conn = connect_readonly(db)
    try:
        files = dict(conn.execute("SELECT path, content_hash FROM files").fetchall())
        keys = groups_for(conn, list(files.values()))
    finally:
        conn.close()
    return {p: keys.get(h, h) for p, h in files.items()}


def test_variants_grouped_and_lookalikes_kept_apart(tmp_path, tiny_model, tiny_model_dir):
    photos, made = _library(tmp_path)
    settings = run_settings(tmp_path, tiny_model_dir)
    summary = index_paths([photos], settings, model=tiny_model)
    assert summary.failed == 0
    key = _rel(_groups(settings.db_path), photos)
    for original, variants in made["groups"].items():
        for v in variants:
            if Path(v).stem in FOUND_ALWAYS:
                assert key[v] == key[original], v
    by_key: dict[str, set[str]] = {}
    for rel, k in key.items():
        scene = rel if rel.startswith("lookalike/") else rel.split("/")[0]
        by_key.setdefault(k, set()).add(scene)
    for members in by_key.values():
        assert len(members) == 1, f"distinct photos grouped: {sorted(members)}"
    assert summary.similar_groups == len(made["groups"])

    # `imgcap duplicates`: the original first, the others with why; one JSON document.
    runner = CliRunner()
    args = ["duplicates", "--db", str(settings.db_path)]
    res = runner.invoke(cli.app, [*args, "--json"], obj=Services(encoder_loader=fake_loader()))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["groups_count"] == len(made["groups"])
    originals = {Path(g["original"]).relative_to(photos).as_posix() for g in doc["groups"]}
    assert originals == set(made["groups"])  # largest pixel count: the untouched original
    whys = [f["why"] for g in doc["groups"] for f in g["files"]]
    assert all(w.startswith("looks alike (pHash d=") for w in whys)
    text = runner.invoke(cli.app, args, obj=Services(encoder_loader=fake_loader()))
    assert text.exit_code == 0 and "(original)" in text.output and "2 groups" in text.output


def _rel(groups: dict[str, str], root: Path) -> dict[str, str]:
    return {Path(p).relative_to(root).as_posix(): k for p, k in groups.items()}


def test_library_indexed_before_gets_hashes_without_captioning(
    tmp_path, tiny_model, tiny_model_dir
):
    photos, _ = _library(tmp_path, samples=("astronaut",), lookalikes=2)
    (photos / "copy").mkdir()
    shutil.copy(photos / "astronaut" / "original.jpg", photos / "copy" / "same.jpg")
    settings = run_settings(tmp_path, tiny_model_dir)
    index_paths([photos], settings, model=tiny_model)
    before = _groups(settings.db_path)
    with Store.open(settings.db_path) as store:  # as a library indexed before m010 looks
        with store.db.atomic():
            store.db.execute("UPDATE files SET perceptual_hash = NULL")
            store.db.execute("DELETE FROM similar_groups")
    again = index_paths([photos], settings, model=tiny_model)
    files = len(before)
    assert again.perceptual_hashed == files
    assert again.captioned == 0 and again.unchanged == files and again.failed == 0
    assert _groups(settings.db_path) == before
    conn = connect_readonly(settings.db_path)
    try:
        missing = "SELECT count(*) FROM files WHERE perceptual_hash IS NULL"
        assert conn.execute(missing).fetchone()[0] == 0
    finally:
        conn.close()
    third = index_paths([photos], settings, model=tiny_model)
    assert third.perceptual_hashed == 0 and third.captioned == 0
    # Exact copies: one content, "same file".
    res = CliRunner().invoke(
        cli.app,
        ["duplicates", "--db", str(settings.db_path), "--json", "--in", str(photos / "copy")],
        obj=Services(encoder_loader=fake_loader()),
    )
    assert res.exit_code == 0, res.output
    (group,) = json.loads(res.output)["groups"]
    pair = {"copy/same.jpg", "astronaut/original.jpg"}
    shown = {Path(group["original"]).relative_to(photos).as_posix(): "original"}
    shown.update({Path(f["path"]).relative_to(photos).as_posix(): f["why"] for f in group["files"]})
    assert sorted(shown[p] for p in pair) == ["original", "same file"]


def test_flat_pictures_of_different_colours_are_not_grouped():
    """A flat colour has no detail for the DCT hash: red and blue would hash alike."""
    from PIL import Image

    from indexer.media.perceptual_hash import FLAT, perceptual_hash
    from indexer.run.similar import Content, group_contents

    flat = [Image.new("RGB", (80, 60), c) for c in ((200, 30, 30), (30, 30, 200), (0, 0, 0))]
    assert [perceptual_hash(im) for im in flat] == [FLAT] * 3
    textured = Image.linear_gradient("L").convert("RGB")
    assert perceptual_hash(textured) != FLAT
    contents = [Content(f"{i:032x}", (f"/p/{i}.png",), 80 * 60, None, 0, FLAT) for i in range(3)]
    assert all(len(g) == 1 for g in group_contents(contents, None).groups)

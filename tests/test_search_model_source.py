"""The index remembers where each model came from: `search` needs no --model after
`index --model DIR`, honours IMGCAP_MODEL, and names the directory when it is gone."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import ModelNotAvailableError
from indexer.run.pipeline import index_paths
from indexer.store.connection import connect_readonly
from indexer.store.queries import model_sources
from search.query import SearchRequest, search


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i, colour in enumerate([(220, 20, 20), (20, 20, 220), (20, 200, 20)]):
        Image.new("RGB", (64, 48), colour).save(root / f"p{i}.png")
    return root


def _settings(tmp_path, model_dir, **kw) -> Settings:
    return Settings(
        db_path=tmp_path / "db" / "imgcap.db",
        model=str(model_dir),
        device="cpu",
        workers=1,
        max_tokens=4,
        **kw,
    )


def test_search_after_index_with_a_model_directory_needs_no_model(photos, tiny_model_dir, tmp_path):
    settings = _settings(tmp_path, tiny_model_dir)
    index_paths([photos], settings)
    conn = connect_readonly(settings.db_path)
    assert model_sources(conn) == {"tiny-0": str(tiny_model_dir.resolve())}
    conn.close()
    from search.status import status

    assert status(settings.db_path)["models"]["tiny-0"]["source"] == str(tiny_model_dir.resolve())
    plain = Settings(db_path=settings.db_path)  # no --model, no IMGCAP_MODEL
    hits = search(settings.db_path, SearchRequest(text="a red square", limit=3), plain)
    assert len(hits) == 3 and {h.model for h in hits} == {"tiny-0"}


def test_imgcap_model_chooses_the_model_to_search(
    photos, tiny_model_dir, tiny_model_dir_b, tmp_path, monkeypatch
):
    index_paths([photos], _settings(tmp_path, tiny_model_dir))
    index_paths([photos], _settings(tmp_path, tiny_model_dir_b))
    db = tmp_path / "db" / "imgcap.db"
    monkeypatch.setenv("IMGCAP_MODEL", str(tiny_model_dir_b))
    monkeypatch.setenv("IMGCAP_DB", str(db))
    hits = search(db, SearchRequest(text="red"), Settings.from_env())
    assert hits and {h.model for h in hits} == {"tiny-1"}  # tiny-0 would win the tie by name
    r = CliRunner().invoke(cli.app, ["search", "red", "--json"])
    assert r.exit_code == 0 and '"model": "tiny-1"' in r.stdout, r.output


def test_a_model_directory_that_is_gone_is_named(photos, tiny_model_dir, tmp_path):
    moved = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model_dir, moved)
    settings = _settings(tmp_path, moved)
    index_paths([photos], settings)
    shutil.rmtree(moved)
    plain = Settings(db_path=settings.db_path)
    with pytest.raises(ModelNotAvailableError, match="--model DIR") as e:
        search(settings.db_path, SearchRequest(text="red"), plain)
    assert str(moved.resolve()) in str(e.value)
    # Keyword search needs no model at all; --model points at the model's new home.
    search(settings.db_path, SearchRequest(text="red", mode="keyword"), plain)
    req = SearchRequest(text="red", model=str(tiny_model_dir))
    assert search(settings.db_path, req, plain)

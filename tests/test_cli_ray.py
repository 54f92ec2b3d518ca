"""`imgcap index --engine ray` options reach the run's Settings (no Ray needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import cli
from indexer.run import pipeline
from indexer.run.summary import IndexSummary
from search.vectors import cache

pytestmark = pytest.mark.ray


def _captured(monkeypatch, tmp_path, *opts):
    seen = {}

    def fake_index_paths(paths, settings, **kw):
        seen["settings"] = settings
        return IndexSummary(model="m")

    monkeypatch.setattr(pipeline, "index_paths", fake_index_paths)
    monkeypatch.setattr(cache, "sync_indexes", lambda db: None)
    (tmp_path / "p").mkdir(exist_ok=True)
    args = ["index", str(tmp_path / "p"), "--db", str(tmp_path / "x.db"), "--json", *opts]
    res = CliRunner().invoke(cli.app, args)
    return res, seen.get("settings")


def test_engine_options_reach_settings(monkeypatch, tmp_path):
    res, s = _captured(monkeypatch, tmp_path)
    assert res.exit_code == 0, res.output
    assert (s.engine, s.ray_address, s.gpus_per_worker) == ("local", None, 0.0)
    opts = ["--engine", "ray", "--ray-address", "auto", "--gpus-per-worker", "0.5"]
    res, s = _captured(monkeypatch, tmp_path, *opts)
    assert res.exit_code == 0, res.output
    assert (s.engine, s.ray_address, s.gpus_per_worker) == ("ray", "auto", 0.5)


def test_unknown_engine_is_a_usage_error(monkeypatch, tmp_path):
    res, s = _captured(monkeypatch, tmp_path, "--engine", "spark")
    assert res.exit_code == 2 and s is None

"""`imgcap models`: what must be copied (names, hub repositories, the Drive id) is never cut, on a
terminal of 80 columns or when piped, where each model is one tab-separated line."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app
from indexer.config import Settings
from indexer.models.download import list_models
from indexer.models.registry import REGISTRY, TEXT_TOWERS
from search.cli.output import print_models

runner = CliRunner()
DRIVE_ID = "1GYPToCqFREwi285wPLhuVExlz7DDUDfJ"


def test_piped_models_are_tab_separated_lines(tmp_path):
    env = {"IMGCAP_CACHE_DIR": str(tmp_path / "hf"), "IMGCAP_MODELS_DIR": str(tmp_path / "m")}
    res = runner.invoke(app, ["models"], env=env)  # CliRunner's stdout is not a terminal
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    rows = [line.split("\t") for line in lines]
    # `cut -f1` gives names to pass to --model, then the text towers
    assert [r[0] for r in rows] == list(REGISTRY) + list(TEXT_TOWERS)
    assert all(len(r) == 6 for r in rows), lines  # name, default, local, mapping, CLIP, source
    assert rows[0][1:3] == ["yes", "no"]  # clipcap-coco: the default, not downloaded
    assert any(DRIVE_ID in r[5] for r in rows)
    assert not any(c in res.stdout for c in "┃━│─…")  # nothing boxed, nothing elided


def test_table_at_80_columns_cuts_no_name_or_id(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    print_models(list_models(Settings()), terminal=True)
    out = capsys.readouterr().out
    assert "…" not in out
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines()), out
    words = set(out.split())
    for entry in REGISTRY.values():
        assert entry.name in words  # whole, on one line
        if entry.checkpoint is not None:
            assert entry.checkpoint.repo in words
    assert DRIVE_ID in out.replace(")", " ").split()

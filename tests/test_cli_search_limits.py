"""A CLI search with thousands of filter values is refused with the limit, not an SQLite crash."""

from __future__ import annotations

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from search.cli.options import Services


@pytest.mark.parametrize("option", ["place", "tag"])
def test_thousands_of_filter_values_are_a_usage_error(tmp_path, monkeypatch, option):
    db = make_db(tmp_path / "photos", [Photo("dog.png", "a dog")], tmp_path / "photos.db")
    monkeypatch.setenv("IMGCAP_DB", str(db))
    if option == "place":
        args = ["--place", ",".join(f"town{i}" for i in range(3000))]
    else:
        args = [a for i in range(3000) for a in ("--tag", f"t{i}")]
    services = Services(encoder_loader=fake_loader())
    result = CliRunner().invoke(cli.app, ["search", "dog", *args], obj=services)
    assert result.exit_code == 2, result.output
    assert "100" in result.output and "Expression" not in result.output
    assert "Traceback" not in result.output

"""`imgcap export` errors through the CLI: exit codes, the path named, nothing on stdout."""

from __future__ import annotations

from search_fixtures import Photo, make_db
from typer.testing import CliRunner

from indexer.store.database import Store


def _export(*args: str):
    import cli

    return CliRunner().invoke(cli.app, ["export", *args])


def test_missing_output_folder_exits_2_naming_it(tmp_path):
    db = make_db(tmp_path / "photos", [Photo("a.png", "a dog")], tmp_path / "p.db")
    target = tmp_path / "nowhere" / "out.csv"
    r = _export(str(target), "--db", str(db))
    assert r.exit_code == 2, r.output
    assert str(tmp_path / "nowhere") in r.stderr and "does not exist" in r.stderr
    assert "Traceback" not in r.output and r.stdout == ""


def test_empty_database_to_stdout_prints_only_the_error(tmp_path):
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    for fmt in ("csv", "jsonl"):
        r = _export("-", "--format", fmt, "--db", str(empty))
        assert r.exit_code == 4, r.output
        assert r.stdout == "" and "empty" in r.stderr

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


def test_a_deleted_file_is_exported_and_counted_as_missing(tmp_path):
    """Without a re-index: export's `missing` column (CSV and JSONL), status's count per root,
    and the line `imgcap status` prints."""
    import json

    import cli
    from indexer.store.roots import add_roots
    from search.export import read_export

    root = tmp_path / "photos"
    db = make_db(root, [Photo("a.png", "a dog"), Photo("b.png", "a cat")], tmp_path / "p.db")
    with Store.open(db) as store:
        add_roots(store.db, [str(root)], db)
    (root / "b.png").unlink()
    for name in ("out.csv", "out.jsonl"):
        r = _export(str(tmp_path / name), "--db", str(db))
        assert r.exit_code == 0, r.output
        rows = read_export(tmp_path / name)
        assert {r["path"]: r["missing"] for r in rows} == {
            str(root / "a.png"): False,
            str(root / "b.png"): True,
        }
    csv_text = (tmp_path / "out.csv").read_text()
    assert "b.png,a cat," in csv_text and ",true\n" in csv_text  # as written: true / false
    runner = CliRunner()
    info = json.loads(runner.invoke(cli.app, ["status", "--db", str(db), "--json"]).stdout)
    assert info["missing_on_disk"] == {str(root): 1}
    r = runner.invoke(cli.app, ["status", "--db", str(db)])
    words = " ".join(r.stdout.split())  # rich wraps long lines at the terminal's width
    assert r.exit_code == 0 and f"1 photos missing on disk (under {root})" in words

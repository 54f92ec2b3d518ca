"""Caption export: CSV / JSONL, formula neutralisation, unicode, exact round trip."""

from __future__ import annotations

import csv
import io
import json

import pytest
from search_fixtures import Photo, make_db

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.queries import FileFilter, export_rows
from search.export import COLUMNS, export, export_row, format_for, read_export

SETTINGS = Settings()

HOSTILE = [
    Photo("ok.png", "a dog on a bench", taken_at="2019-05-01T10:00:00", camera_make="Canon",
          camera_model="EOS 5D"),
    Photo("formula.png", "=HYPERLINK(\"http://evil\",\"click\")"),
    Photo("plus.png", "+1 555 0100"),
    Photo("minus.png", "-2+3"),
    Photo("at.png", "@SUM(A1:A9)"),
    Photo("quote.png", "'already quoted"),
    Photo("tab.png", "\tstarts with a tab"),
    Photo("multi.png", 'line one\nline "two", with comma'),
    Photo("Zürich 日本/ü é.png", "café in Zürich — 東京"),
    Photo("cam.png", "a camera", camera_make="=cmd", camera_model="x"),
]  # fmt: skip


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "photos", HOSTILE, tmp_path / "photos.db")


def _db_rows(db, flt=None):
    conn = connect_readonly(db)
    try:
        return [export_row(r) for r in export_rows(conn, "fake-clip", flt or FileFilter())]
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl"])
@pytest.mark.parametrize("neutralise", [True, False])
def test_round_trip_equals_the_database(db, tmp_path, name, neutralise):
    out = tmp_path / name
    n = export(db, str(out), SETTINGS, neutralise_formulas=neutralise)
    assert n == len(HOSTILE)
    assert read_export(out, neutralised=neutralise) == _db_rows(db)


def test_formula_cells_are_neutralised_by_default(db, tmp_path):
    out = tmp_path / "out.csv"
    export(db, str(out), SETTINGS)
    raw = list(csv.DictReader(open(out, encoding="utf-8", newline="")))
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in raw}
    assert by_name["formula.png"]["caption"].startswith("'=")
    assert by_name["plus.png"]["caption"] == "'+1 555 0100"
    assert by_name["minus.png"]["caption"] == "'-2+3"
    assert by_name["at.png"]["caption"] == "'@SUM(A1:A9)"
    assert by_name["tab.png"]["caption"].startswith("'\t")
    assert by_name["quote.png"]["caption"] == "''already quoted"
    assert by_name["cam.png"]["camera"] == "'=cmd x"
    assert by_name["ok.png"]["caption"] == "a dog on a bench"
    for row in raw:  # no cell a spreadsheet would evaluate
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())

    export(db, str(out), SETTINGS, neutralise_formulas=False)
    raw = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    assert raw["formula.png"]["caption"].startswith("=HYPERLINK")


def test_csv_layout_one_row_per_photo(db, tmp_path):
    out = tmp_path / "out.csv"
    export(db, str(out), SETTINGS)
    text = out.read_bytes().decode("utf-8")  # strict UTF-8, no BOM
    assert text.startswith(",".join(COLUMNS) + "\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(HOSTILE)
    ok = next(r for r in rows if r["path"].endswith("ok.png"))
    assert ok["camera"] == "Canon EOS 5D" and ok["width"] == "640" and ok["model"] == "fake-clip"
    assert any("Zürich 日本/ü é.png" in r["path"] for r in rows)


def test_jsonl_and_stdout(db, tmp_path, capfdbinary):
    assert export(db, "-", SETTINGS, fmt="jsonl") == len(HOSTILE)
    lines = capfdbinary.readouterr().out.decode("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows == _db_rows(db)
    assert "Zürich 日本" in lines[0] or any("東京" in line for line in lines)  # not \u-escaped
    export(db, "-", SETTINGS)  # stdout defaults to CSV
    assert capfdbinary.readouterr().out.decode("utf-8").startswith("path,caption,")


def test_folder_filter_and_format_choice(db, tmp_path):
    folder = str(tmp_path / "photos" / "Zürich 日本")
    out = tmp_path / "sub.jsonl"
    assert export(db, str(out), SETTINGS, flt=FileFilter(folder=folder)) == 1
    assert format_for("x.CSV", None) == "csv" and format_for("x.ndjson", None) == "jsonl"
    assert format_for("x.txt", "jsonl") == "jsonl"
    with pytest.raises(UsageError, match="format"):
        format_for("x.txt", None)
    with pytest.raises(UsageError, match="format"):
        format_for("x.csv", "xml")


def test_empty_and_missing_database(tmp_path):
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    with pytest.raises(StoreError, match="empty"):
        export(empty, str(tmp_path / "o.csv"), SETTINGS)
    assert not (tmp_path / "o.csv").exists(), "no half-written file left behind"
    with pytest.raises(StoreError, match="no database"):
        export(tmp_path / "nope.db", str(tmp_path / "o.csv"), SETTINGS)

"""CSV export safety: line breaks inside cells (bare CR too), formulas after a line break,
one CSV writer for export and failures, and errors that leave stdout empty."""

from __future__ import annotations

import csv
import io
import re

import pytest
from search_fixtures import Photo, make_db

from indexer.config import Settings
from indexer.errors import ImgcapError, StoreError, UsageError
from indexer.store.database import Store
from search.export import csv_line, export, neutralise, read_export, unneutralise, write_csv

SETTINGS = Settings()
FORMULA = ("=", "+", "-", "@")

HOSTILE = [
    Photo("carriage\rreturn.jpg", "a dog"),
    Photo("cam.jpg", "a camera", camera_make="Canon\r=1+1", camera_model="EOS"),
    Photo("lf.jpg", "ok\n-2+3\r\n@SUM(A1)\r\r=x"),
    Photo("plain.jpg", "a cat on a mat"),
]


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "photos", HOSTILE, tmp_path / "photos.db")


def test_bare_carriage_return_is_quoted_and_rows_stay_whole(db, tmp_path):
    out = tmp_path / "out.csv"
    assert export(db, str(out), SETTINGS) == len(HOSTILE)
    raw = out.read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert len(rows) == 1 + len(HOSTILE)  # header + one record per photo, none split
    assert any(r[0].endswith("carriage\rreturn.jpg") for r in rows)
    # What a spreadsheet that splits at every CR/LF sees: no line starts a formula.
    for line in re.split(r"\r\n|\r|\n", raw):
        assert not line.startswith(FORMULA), repr(line)
    # Nor does any line inside any cell.
    for row in rows:
        for cell in row:
            for line in re.split(r"[\r\n]", cell):
                assert not line.startswith(FORMULA), repr(cell)


def test_export_with_line_breaks_round_trips(db, tmp_path):
    out = tmp_path / "out.csv"
    export(db, str(out), SETTINGS)
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in read_export(out)}
    assert set(rows) == {"carriage\rreturn.jpg", "cam.jpg", "lf.jpg", "plain.jpg"}
    assert rows["cam.jpg"]["camera"] == "Canon\r=1+1 EOS"
    assert rows["lf.jpg"]["caption"] == "ok\n-2+3\r\n@SUM(A1)\r\r=x"


@pytest.mark.parametrize(
    "cell",
    ["ok\r=1+1", "\r=1", "a\n'b", "'\n'", "x\r\r\n\n+", "\t\r\t", "plain", "", "a\nb", "'", "\n"],
)
def test_neutralise_is_exactly_undone(cell):
    escaped = neutralise(cell)
    assert unneutralise(escaped) == cell
    for line in re.split(r"[\r\n]", escaped):
        assert not line.startswith((*FORMULA, "\t"))


def test_csv_line_quotes_cr_lf_comma_and_quote_only():
    assert csv_line(["a\rb", "c\nd", 'e"f', "g,h", "plain"]) == (
        '"a\rb","c\nd","e""f","g,h",plain\n'
    )


def test_write_csv_writes_nothing_when_the_first_row_fails():
    def rows():
        raise StoreError("the index is empty")
        yield {}  # pragma: no cover

    stream = io.StringIO()
    with pytest.raises(StoreError):
        write_csv(rows(), stream, ["a"])
    assert stream.getvalue() == ""
    # No rows at all is a header-only CSV, a valid empty export.
    write_csv(iter([]), stream, ["a", "b"])
    assert stream.getvalue() == "a,b\n"


def test_empty_database_to_stdout_prints_nothing(tmp_path, capfdbinary):
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    with pytest.raises(StoreError, match="empty"):
        export(empty, "-", SETTINGS)
    assert capfdbinary.readouterr().out == b""


def test_export_to_a_missing_folder_is_a_usage_error_naming_it(db, tmp_path):
    target = tmp_path / "no" / "such" / "out.csv"
    with pytest.raises(UsageError, match=re.escape(str(target.parent))):
        export(db, str(target), SETTINGS)
    assert not target.parent.exists()
    with pytest.raises(UsageError, match="is a folder"):
        export(db, str(tmp_path), SETTINGS, fmt="csv")


def test_a_full_disk_is_a_clear_error_and_leaves_no_file(db, tmp_path, monkeypatch):
    import errno

    import search.export as export_module

    def full_disk(rows, f, *args):
        f.write("path,caption\n")  # the temporary file exists and holds part, as on a real disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "write_rows", full_disk)
    with pytest.raises(ImgcapError, match="cannot write .*No space left") as e:
        export(db, str(tmp_path / "out.csv"), SETTINGS)
    assert e.value.exit_code == 1
    assert not any(p.name.endswith((".tmp", "out.csv")) for p in tmp_path.iterdir())

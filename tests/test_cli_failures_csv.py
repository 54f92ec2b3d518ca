"""`imgcap failures --csv` goes through the export's CSV writer: a CR in a file name stays inside
its record, and formula-looking cells are neutralised."""

from __future__ import annotations

import csv
import io
import re

from typer.testing import CliRunner

from indexer.store.database import Store
from indexer.store.records import FailureRecord
from search.export import unneutralise

NAMES = ["carriage\rreturn.jpg", "=1+1.jpg", "line\n@SUM(A1).jpg"]


def test_failures_csv_quotes_line_breaks_and_neutralises(tmp_path):
    import cli

    db = tmp_path / "photos.db"
    with Store.open(db) as store:
        store.record_failures(
            "tiny-0",
            [FailureRecord(str(tmp_path / n), "-bad\r=cmd", 3, 7) for n in NAMES],
        )
    r = CliRunner().invoke(cli.app, ["failures", "--csv", "--db", str(db)])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
    assert rows[0] == ["path", "reason", "size", "mtime_ns", "failed_at", "model"]
    assert len(rows) == 1 + len(NAMES)  # no record split at a CR or LF
    assert sorted(unneutralise(row[0]).rsplit("/", 1)[-1] for row in rows[1:]) == sorted(NAMES)
    assert {unneutralise(row[1]) for row in rows[1:]} == {"-bad\r=cmd"}
    assert {(row[2], row[3]) for row in rows[1:]} == {("3", "7")}  # numbers are not escaped
    for line in re.split(r"\r\n|\r|\n", r.stdout):
        assert not line.startswith(("=", "+", "-", "@")), repr(line)

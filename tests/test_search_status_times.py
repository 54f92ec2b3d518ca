"""`imgcap status` shows times in the local time zone, to the minute, with how long ago;
`status --json` keeps ISO 8601 UTC."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from typer.testing import CliRunner

import cli
from indexer.store.database import Store
from search.status import duration, local_time

NOW = dt.datetime(2026, 12, 3, 8, 38, 30, tzinfo=dt.UTC)


@pytest.fixture
def india(monkeypatch):
    """Local time UTC+05:30 (no daylight saving), whatever the machine's zone."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_local_time_is_readable_and_says_how_long_ago(india):
    assert local_time("2026-12-03T08:35:00.000+00:00", now=NOW) == "2026-12-03 14:05 (3 min ago)"
    assert local_time("2026-12-03T08:38:10+00:00", now=NOW) == "2026-12-03 14:08 (just now)"
    assert local_time("2026-12-03T05:00:00", now=NOW) == "2026-12-03 10:30 (3 h ago)"
    assert local_time("2026-11-30T08:00:00+00:00", now=NOW) == "2026-11-30 13:30 (3 days ago)"
    assert local_time("2025-01-01T00:00:00+00:00", now=NOW) == "2025-01-01 05:30"
    assert local_time(None) == "-"
    assert duration("2026-12-03T08:35:00+00:00", "2026-12-03T08:36:12.5+00:00") == "1 min 12 s"
    assert duration("2026-12-03T08:35:00+00:00", None) is None


def test_status_text_is_local_and_json_stays_iso(tmp_path, india):
    db = tmp_path / "imgcap.db"
    with Store.open(db) as store:
        run = store.start_run("m")
        store.finish_run(run, "completed", {"new": 0})
    started = json.loads(CliRunner().invoke(cli.app, ["status", "--db", str(db), "--json"]).stdout)[
        "last_run"
    ]["started_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", started)
    r = CliRunner().invoke(cli.app, ["status", "--db", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    local = dt.datetime.fromisoformat(started).astimezone().strftime("%Y-%m-%d %H:%M")
    assert f"started {local} (just now)" in r.stdout and ", took 0 s" in r.stdout
    assert "+00:00" not in r.stdout and "T" not in local

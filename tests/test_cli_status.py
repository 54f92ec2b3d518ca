"""`imgcap status`: it says why there are fewer results than photos (copies share one) and lists
the index roots, with whether each folder is here now; `--json` carries the roots too."""

from __future__ import annotations

import json
import shutil

from search_fixtures import Photo, make_db
from typer.testing import CliRunner

import cli

runner = CliRunner()


def test_status_explains_results_and_lists_roots(tmp_path):
    db = tmp_path / "imgcap.db"
    home, usb = tmp_path / "Photos", tmp_path / "usb"
    make_db(home, [Photo("a.jpg", "a dog"), Photo("b.jpg", "a dog", same_as="a.jpg")], db)
    make_db(usb, [Photo("c.jpg", "a cat")], db, seed=1)
    shutil.rmtree(usb)  # a drive not mounted

    r = runner.invoke(cli.app, ["status", "--db", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "copies share one" in r.stdout  # 3 photos, 2 results
    home_line = next(line for line in r.stdout.splitlines() if str(home) in line)
    usb_line = next(line for line in r.stdout.splitlines() if str(usb) in line)
    assert "2 photos" in home_line and "not here" not in home_line
    assert "1 photo," in usb_line and "not here" in usb_line

    info = json.loads(runner.invoke(cli.app, ["status", "--db", str(db), "--json"]).stdout)
    roots = {root["path"]: root for root in info["roots"]}
    assert (roots[str(home)]["exists"], roots[str(home)]["photos"]) == (True, 2)
    assert (roots[str(usb)]["exists"], roots[str(usb)]["photos"]) == (False, 1)

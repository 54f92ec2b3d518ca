"""`imgcap export OUT` where OUT is no plain new file: a FIFO, a device, a symlink, a file with
private permissions, a folder holding a planted link. Only OUT (or the file a link names) is
ever written, and nothing is renamed over a FIFO, a device or a link."""

from __future__ import annotations

import os
import secrets
import stat

import pytest
from search_fixtures import Photo, make_db
from typer.testing import CliRunner


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "photos", [Photo("a.png", "a dog"), Photo("b.png", "a cat")],
                   tmp_path / "p.db")  # fmt: skip


def _export(db, out, *args: str):
    import cli

    return CliRunner().invoke(cli.app, ["export", str(out), "--db", str(db), *args])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_gets_the_csv_and_stays_a_fifo(tmp_path, db):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    # Opened by the reader first: the export's open does not block and its few hundred bytes
    # fit the pipe's buffer; a FIFO replaced by a file would read as empty here.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = _export(db, fifo)
        data = os.read(reader, 65536).decode()
    finally:
        os.close(reader)
    assert r.exit_code == 0, r.output
    assert data.startswith("path,caption,") and "a dog" in data and "a cat" in data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_dev_full_fails_with_the_reason_and_stays_a_device(db):
    r = _export(db, "/dev/full", "--format", "csv")
    assert r.exit_code == 1, r.output
    assert "cannot write /dev/full: No space left on device" in r.stderr
    assert "Traceback" not in r.output
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_symlink_gets_its_target_written_and_stays_a_link(tmp_path, db):
    target = tmp_path / "shared" / "captions.csv"
    target.parent.mkdir()
    target.write_text("old export\n")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    r = _export(db, link)
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("path,caption,")


def test_a_link_planted_at_the_temp_name_cannot_redirect_the_export(tmp_path, db, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # At the name the export used to pick (.NAME.PID.tmp) and at the first random name.
    for name in (f".out.csv.{os.getpid()}.tmp", ".out.csv.guessed.tmp"):
        (tmp_path / name).symlink_to(victim)
    names = iter(["guessed", "fresh"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    r = _export(db, tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious"
    out = tmp_path / "out.csv"
    assert not out.is_symlink() and out.read_text().startswith("path,caption,")


def test_a_private_export_stays_private_when_replaced(tmp_path, db):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    old = os.umask(0o022)
    try:
        r = _export(db, out)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "a dog" in out.read_text()

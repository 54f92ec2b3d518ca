"""A killed `write-back --embed` leaves no exiftool running and no file in the temp folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from writeback_fixtures import make_photo, needs_exiftool

pytestmark = [
    needs_exiftool,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal"),
]

ROOT = Path(__file__).resolve().parent.parent

# Writes the first photo, then blocks (the -stay_open exiftool is up) until it is killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from indexer.metadata import xmp
    from indexer.metadata.writeback import Item, write_back

    def written(outcome):
        print(outcome.status, flush=True)
        time.sleep(60)

    caption = xmp.Caption("A red square", "tiny-0", "generated", "2026-12-03T04:00:00Z")
    write_back([Item(p, caption) for p in sys.argv[1:]], mode="embed", on_outcome=written)
    """
)


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if name.isdigit() and int(fields[1]) == pid:
            out.append((int(name), cmd))
    return out


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"  # a zombie has ended


def test_sigkilled_embed_leaves_no_exiftool_and_no_config_file(tmp_path):
    photos = [str(make_photo(tmp_path / "photos" / f"p{i}.jpg")) for i in range(3)]
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, *photos], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    exiftool = []
    try:
        assert proc.stdout.readline().strip() == b"written"
        exiftool = [pid for pid, cmd in _children(proc.pid) if "-stay_open" in cmd]
        assert len(exiftool) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _running(exiftool[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(exiftool[0]), "exiftool outlived the killed write-back"
        assert list(temp.iterdir()) == []  # no exiftool config file, nothing else
    finally:
        proc.kill()
        proc.wait()
        for pid in exiftool:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

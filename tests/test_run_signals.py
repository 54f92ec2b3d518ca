"""An `imgcap index` killed from outside: SIGKILL leaves no process behind (a caller reading its
output sees EOF), SIGTERM stops it like Ctrl-C (summary, run marked interrupted, exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from indexer.store.database import Store

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# `imgcap index` whose captioner is slow and says when a batch reaches it, so the test can
# strike while decode workers are alive and the model is busy.
SLOW_INDEX = str(Path(__file__).parent / "slow_index.py")


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children of children included), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has let go of every file descriptor


@pytest.fixture
def slow_run(tmp_path, tiny_model_dir):
    """Start the slow index run; yields (process, db path, pids of its helpers once busy)."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(24):
        Image.new("RGB", (64, 48), (10 * i, 200 - 5 * i, 40)).save(root / f"p{i:02}.png")
    db = tmp_path / "imgcap.db"
    args = ["index", str(root), "--model", str(tiny_model_dir), "--device", "cpu", "--db", str(db)]
    # One pass: the captioner is busy while the decode workers are alive (with the CPU's
    # default, `after`, the workers are gone before the first caption).
    args += ["--batch-size", "2", "--workers", "2", "--captions", "now"]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, SLOW_INDEX, "0.5", "4", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: a survivor holding either end keeps it open
        text=True,
        env=env,
    )
    helpers: set[int] = set()
    try:
        seen = 0
        deadline = time.monotonic() + 90
        while seen < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line.strip() == "batch"
        assert seen == 2, "the run never got to its second batch"
        helpers |= _descendants(proc.pid)
        # forkserver + resource tracker + 2 decode workers at least
        assert len(helpers) >= 3, helpers
        yield proc, db, helpers
    finally:
        for pid in [proc.pid, *helpers]:  # only what this test started
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait()


def _read_to_eof(proc, seconds: float) -> str | None:
    """The rest of the run's output, or None when the pipe stays open past `seconds`."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    reader.join(seconds)
    return None if reader.is_alive() else out[0]


def _survivors(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


def test_sigkill_takes_workers_forkserver_and_tracker_along(slow_run):
    proc, _, helpers = slow_run
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer does
    proc.wait()
    assert _read_to_eof(proc, 10) is not None, "the dead run's output pipe never reached EOF"
    assert _survivors(helpers, 5) == set()


def test_sigterm_stops_cleanly_like_ctrl_c(slow_run):
    proc, db, helpers = slow_run
    os.kill(proc.pid, signal.SIGTERM)
    rest = _read_to_eof(proc, 30)
    assert rest is not None, "the run did not stop on SIGTERM"
    assert proc.wait(10) == 130
    assert "tiny-0:" in rest and "Interrupted" in rest  # the summary, then the note
    assert _survivors(helpers, 5) == set()
    with Store.open(db, create=False) as store:
        runs = list(store.db["runs"].rows)
        assert [r["status"] for r in runs] == ["interrupted"]
        assert 0 < store.counts()["results"] < 24

"""Nothing an index run starts keeps running after it is killed, and what it leaves in the temp
folder is removed by the next run (indexer/lifetime.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from indexer.lifetime import MP_MARKER, sweep_mp_temp_dirs

ROOT = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")

# A driver with a guard and a child that would outlive it (as raylet's agents do); prints the
# child's pid, releases the guard if asked, then waits to be killed.
DRIVER = textwrap.dedent(
    """
    import subprocess, sys, time
    from indexer.lifetime import Guard

    guard = Guard()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    guard.scan()
    if sys.argv[1] == "release":
        guard.release()
    print(child.pid, guard.proc.pid, flush=True)
    time.sleep(60)
    """
)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"  # a zombie has ended


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


def _driver(mode: str) -> tuple[subprocess.Popen, int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", DRIVER, mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    child, guard = map(int, proc.stdout.readline().split())
    time.sleep(0.3)  # the guard has read its "scan"
    return proc, child, guard


@linux_only
def test_guard_ends_what_a_killed_process_leaves():
    proc, child, guard = _driver("keep")
    try:
        assert _running(child) and _running(guard)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _gone_within(child, 5), "the child outlived its killed parent"
        assert _gone_within(guard, 5)
    finally:
        proc.kill()
        proc.wait()
        if _running(child):
            os.kill(child, signal.SIGKILL)


@linux_only
def test_a_released_guard_ends_nothing():
    proc, child, guard = _driver("release")
    try:
        assert _gone_within(guard, 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        assert _running(child)
    finally:
        proc.kill()
        proc.wait()
        if _running(child):
            os.kill(child, signal.SIGKILL)


def _temp_dir(base: Path, name: str, pid: int | None) -> Path:
    folder = base / name
    folder.mkdir()
    (folder / "listener-x").write_bytes(b"")
    if pid is not None:
        (folder / MP_MARKER).write_text(str(pid))
    return folder


def test_sweep_removes_only_marked_temp_folders_of_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = _temp_dir(tmp_path, "pymp-dead", dead.pid)
    alive = _temp_dir(tmp_path, "pymp-alive", os.getppid())  # pytest's parent: running
    mine = _temp_dir(tmp_path, "pymp-mine", os.getpid())
    unmarked = _temp_dir(tmp_path, "pymp-other", None)  # any Python program's
    other_name = _temp_dir(tmp_path, "elsewhere", dead.pid)
    assert sweep_mp_temp_dirs(str(tmp_path)) == 1
    assert not gone.exists()
    assert alive.exists() and mine.exists() and unmarked.exists() and other_name.exists()


# An index run that uses decode workers, killed while its workers run.
KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from indexer.run.workers import DecodePool, decode_for_model

    pool = DecodePool(1, decode_for_model)
    pool.submit(sys.argv[1], 32).result()
    print("decoding", flush=True)
    time.sleep(60)
    """
)


# The next run: nothing to index, so it starts no workers of its own.
NEXT_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from indexer.config import Settings
    from indexer.run.pipeline import index_paths

    index_paths([sys.argv[1]], Settings(db_path=Path(sys.argv[2]), model="clipcap-coco"))
    """
)


@linux_only
def test_a_killed_runs_multiprocessing_folder_is_removed_by_the_next(tmp_path):
    from writeback_fixtures import make_photo

    photo = make_photo(tmp_path / "a.jpg")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", KILLED_RUN, str(photo)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == b"decoding"
    finally:
        proc.kill()
        proc.wait()
    left = list(temp.glob("pymp-*"))
    assert len(left) == 1 and (left[0] / MP_MARKER).read_text() == str(proc.pid)
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-c", NEXT_RUN, str(tmp_path / "empty"), str(tmp_path / "x.db")]
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
    assert list(temp.iterdir()) == []


# A driver that starts a local Ray instance as `--engine ray` does, then waits to be killed.
RAY_DRIVER = textwrap.dedent(
    """
    import time
    import ray
    from indexer.config import Settings
    from indexer.run.ray_engine import ray_instance

    with ray_instance(ray, Settings(), 1):
        print("up", flush=True)
        time.sleep(120)
    """
)


@linux_only
@pytest.mark.slow  # starting Ray takes 10-15 s on a 2-core machine
@pytest.mark.ray
def test_a_killed_ray_driver_leaves_no_ray_process(tmp_path):
    pytest.importorskip("ray")
    from indexer.lifetime import descendants

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", RAY_DRIVER]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    started: list[int] = []
    try:
        assert proc.stdout.readline().strip() == b"up"
        started = list(descendants(proc.pid))  # gcs, raylet, its agents, workers, the guard
        assert len(started) > 3
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = [pid for pid in started if not _gone_within(pid, 10)]
        assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in left]
    finally:
        proc.kill()
        proc.wait()
        for pid in started:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

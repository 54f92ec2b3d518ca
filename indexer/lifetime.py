"""Process lifetime: nothing imgcap starts outlives it, and what a killed imgcap left behind is
cleared by the next one.

- A child tied to this process dies with it, even when this one is SIGKILLed (the OOM killer):
  on Linux through the kernel's parent-death signal (`die_with_parent` in a child that runs our
  code, such as a decode worker; `dies_with_us` as the `preexec_fn` of a program we start, such
  as exiftool), elsewhere through a watchdog thread where the child runs our code
  (`wait_for_exit`).
- Children that are not ours to arm (a local Ray instance: raylet starts its agents, and they
  outlive a killed driver) are ended by a `Guard`, a small separate process that watches this
  one and ends its remaining descendants if it dies without releasing the guard.
- multiprocessing's temp folder (`/tmp/pymp-XXXXXX`, where the forkserver's socket lives) is
  removed by multiprocessing at a normal exit only. imgcap marks the one it uses with its pid
  (`claim_mp_temp_dir`); `sweep_mp_temp_dirs` removes marked folders whose process is gone.
  Unmarked ones may belong to any live Python program and are never touched.

Linux only where /proc or prctl is needed; elsewhere these are no-ops (and the workers' own
watchdog threads still apply).
"""

from __future__ import annotations

import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

PARENT_POLL_S = 0.5  # where pidfd is missing: how often a watchdog checks that a process lives
GUARD_SCAN_S = 2.0  # how often a Guard notes the guarded process's descendants (~5 ms a scan)
GUARD_GRACE_S = 2.0  # SIGTERM, then this long before SIGKILL
MP_TEMP_PREFIX = "pymp-"  # multiprocessing.util.get_temp_dir's folders
MP_MARKER = "imgcap.pid"  # inside such a folder: the pid of the imgcap process that uses it
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


# ------------------------------------------------------------------ children die with us
@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl (Linux), looked up once, before any fork: a child between fork and exec
    must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent() -> None:
    """Run in a child: SIGKILL it when the process that forked it exits. If that process died
    before the signal was armed, exit now. Best effort: a no-op off Linux."""
    prctl = _prctl()
    if prctl is None:
        return
    parent = os.getppid()
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def dies_with_us() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the program started gets SIGKILL when the thread
    that starts it ends (Linux counts the forking thread, so start long-lived programs from the
    main thread), however this process ends. The signal survives exec, so it reaches a script
    run through its #! interpreter (exiftool is Perl). None off Linux."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl
            os._exit(1)

    return arm


def wait_for_exit(pid: int) -> None:
    """Block until process `pid` has exited (pidfd where the kernel has it, else polling)."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:
            pass  # kernel without pidfd (< 5.3), or not permitted: poll instead
        else:
            try:
                select.select([fd], [], [])  # readable once the process has exited
            finally:
                os.close(fd)
            return
    while _alive(pid):
        threading.Event().wait(PARENT_POLL_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return True


# ----------------------------------------------------------------------------------- Guard
class Guard:
    """A watchdog process for this one's descendants that do not die with it by themselves.

    It notes this process's descendants (with their start times, so a reused pid is never
    taken for one) every GUARD_SCAN_S and on `scan()`. When this process dies without calling
    `release()`, it ends those still running (SIGTERM, then SIGKILL) and exits. It runs in its
    own session, so a Ctrl-C meant for the run does not end the guard first. Linux (/proc)."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # the folder holding `indexer`
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from indexer.lifetime import guard_main; guard_main()"]
            + [str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": path},
        )

    def scan(self) -> None:
        """Note the descendants now (just after starting some)."""
        self._send(b"scan\n")

    def release(self) -> None:
        """This process ended its children itself: the guard leaves, ending nothing."""
        self._send(b"release\n")
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()

    def _send(self, line: bytes) -> None:
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except OSError:
            pass  # the guard is gone (killed with the session's group): nothing to tell


def guard_main() -> None:
    """The guard process (see Guard): argv[1] is the guarded pid; its stdin, a pipe from it,
    reaches EOF when it exits."""
    guarded = int(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start = _start_time(guarded)
    known: dict[int, int] = {}
    received = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], GUARD_SCAN_S)
        chunk = os.read(stdin, 256) if ready else b""
        received += chunk
        if b"release\n" in received:
            return
        if ready and not chunk:
            break  # EOF: the guarded process is gone
        if _start_time(guarded) != start:
            break  # gone although the pipe is open (held by some other process)
        known.update(descendants(guarded))
        received = received[received.rfind(b"\n") + 1 :]
    end_processes(known)


def end_processes(known: dict[int, int]) -> None:
    """SIGTERM the processes `known` (pid -> start time) that still run, and their descendants;
    SIGKILL those left after GUARD_GRACE_S."""
    alive = {p: t for p, t in known.items() if _start_time(p) == t}
    for pid in list(alive):
        alive.update(descendants(pid))
    alive.pop(os.getpid(), None)
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + GUARD_GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {p: t for p, t in alive.items() if _start_time(p) == t}
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # gone meanwhile


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) from /proc/PID/stat, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the name in (...) may hold spaces
    return int(fields[1]), int(fields[19])


def _start_time(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None else st[1]


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every descendant of `root` now (empty without /proc)."""
    children: dict[int, list[tuple[int, int]]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if name.isdigit() and (st := _stat(name)) is not None:
            children.setdefault(st[0], []).append((int(name), st[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in found and pid != os.getpid():
                found[pid] = start
                todo.append(pid)
    return found


# ------------------------------------------------------------- multiprocessing temp folder
def claim_mp_temp_dir() -> None:
    """Mark this process's multiprocessing temp folder (made now if it is not yet) with our
    pid, so that a later imgcap can tell when its owner is gone."""
    from multiprocessing import util

    marker = Path(util.get_temp_dir()) / MP_MARKER
    if not marker.exists():
        marker.write_text(str(os.getpid()))


def sweep_mp_temp_dirs(folder: str | None = None) -> int:
    """Remove the multiprocessing temp folders in `folder` (default: the temp folder) that an
    imgcap process marked and that process is gone (a killed run). Only this user's, only
    marked ones. Returns how many were removed."""
    if not hasattr(os, "getuid"):
        return 0  # Windows: no forkserver, and per-user temp folders
    removed = 0
    base = Path(folder or tempfile.gettempdir())
    try:
        entries = list(base.glob(MP_TEMP_PREFIX + "*"))
    except OSError:
        return 0
    for path in entries:
        try:
            st = path.lstat()
            if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
                continue
            pid = int((path / MP_MARKER).read_text())
        except (OSError, ValueError):
            continue  # unmarked: any live Python program's
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed

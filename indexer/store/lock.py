"""The one-writer lock: an OS file lock beside the database's real file."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.errors import StoreError

# errno values that mean "this location cannot be written", as opposed to a bug.
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def lock_path(db_path: Path) -> Path:
    """Where the lock for `db_path` lives: beside the file that symlinks point at, so two
    names of one database (a symlink, a symlinked folder) share one lock."""
    real = Path(db_path).expanduser().resolve()
    return real.with_name(real.name + ".lock")


@contextmanager
def writer_lock(db_path: Path) -> Iterator[None]:
    """Hold the one-writer lock for `db_path`, or raise StoreError at once if another run has it.

    An OS lock (flock / LockFileEx via `filelock`), so a run killed with SIGKILL releases it and
    the next run starts without any stale-lock clean-up.
    """
    from filelock import FileLock, Timeout

    db_path = Path(db_path)
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        lock.acquire()
    except Timeout:
        real = path.with_name(path.name.removesuffix(".lock"))
        also = "" if real == db_path.expanduser().absolute() else f" (the same file as {real})"
        raise StoreError(
            f"another `imgcap index` is already writing to {db_path}{also}; "
            "wait for it to finish (searching keeps working meanwhile)"
        ) from None
    except OSError as e:
        raise _not_writable(db_path, path, e) from None
    try:
        yield
    finally:
        lock.release()


def writer_active(db_path: Path) -> bool:
    """Whether an `imgcap index` holds the writer lock of `db_path` right now."""
    from filelock import FileLock, Timeout

    path = lock_path(Path(db_path))
    if not path.exists():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return True
    lock.release()
    return False


def _not_writable(db_path: Path, path: Path, e: OSError) -> StoreError:
    why = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"cannot index into {db_path}: the disk holding {path.parent} is full ({why});"
            " free some space and run the same command again"
        )
    if e.errno in _NOT_WRITABLE:
        return StoreError(
            f"cannot index into {db_path}: its folder {path.parent} is not writable ({why})."
            " A read-only database can still be searched; to index, pass --db with a writable"
            " location"
        )
    return StoreError(f"cannot take the writer lock {path} for {db_path}: {why}")

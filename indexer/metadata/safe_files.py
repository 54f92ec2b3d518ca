"""Writing a person's files safely: atomic replace with fsync, owner and mode kept, and the
checks that refuse a read-only file, folder or file system before any work is done.

Used by write-back (sidecars and embedded captions), where a crash must leave the old file or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def same_owner_and_mode(original: Path, copy: Path) -> None:
    shutil.copymode(original, copy)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writing someone's photo: still theirs
        st = original.stat()
        with contextlib.suppress(OSError):
            os.chown(copy, st.st_uid, st.st_gid)


def atomic_write(path: Path, data: bytes) -> None:
    if path.is_symlink():  # a linked sidecar is updated where it lives; the link stays
        path = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            same_owner_and_mode(path, Path(tmp))
        else:
            os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unwritable(file: Path | None, folder: Path) -> str | None:
    """Why a file or its folder can't be written, checked before doing any work. Replacing by
    rename would succeed on a read-only file in a writable folder: a read-only photo or sidecar
    is the user saying 'don't touch', so it is refused."""
    # Mode bits as well as access(): root may write anything, but a file or folder without
    # write permission still says "leave me alone".
    if file is not None and (not os.access(file, os.W_OK) or not file.stat().st_mode & 0o222):
        return f"{file.name} is read-only"
    if not os.access(folder, os.W_OK | os.X_OK) or not folder.stat().st_mode & 0o222:
        return f"its folder {folder} is not writable"
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"its folder {folder} is on a read-only file system"
    except (OSError, AttributeError):
        pass
    return None

"""The checks that refuse a person's file before write-back does any work: a read-only file,
folder or file system, and a sidecar that is a link leading outside the photo's library.

The writes themselves go through indexer.atomic_file (a crash leaves the old file or the new
one, never half of either).
"""

from __future__ import annotations

import os
from pathlib import Path

from indexer.store.roots import under


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


def link_outside(link: Path, library: str | os.PathLike) -> Path | None:
    """Where `link` leads when it is a symlink (dangling or not) whose target, every link
    resolved, is not inside `library`; None for a plain file or a link that stays inside."""
    if not os.path.islink(link):
        return None
    target = os.path.realpath(link)
    return None if under(target, os.path.realpath(library)) else Path(target)

"""The thumbnail cache's files beside the database: where each thumbnail lives, and the pruning
of those whose content no indexed file has any more.

    photos.db.thumbs/<hash[:2]>/<content hash>-<size>.jpg
    photos.db.thumbs/<hash[:2]>/<content hash>@<ms>-<size>.jpg   (a video's still at a keyframe)

The gallery (search/web/thumbnails.py) makes them on request; an index run prunes at its end
(indexer/run/pipeline.py), so the cache holds thumbnails of what is indexed and nothing more.
Without it the cache only grows: every `write-back --embed` gives a photo a new content hash,
and a deleted or edited photo's thumbnails stayed for ever.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from indexer.store.database import Store

SUFFIX = ".thumbs"
THUMB_NAME = re.compile(r"([0-9a-f]{32})(?:@[0-9]+)?-[0-9]+\.jpg")  # what `thumbnail_file` names
STALE_TEMP_S = 3600  # a temp file this old is from a write that was killed (they take ms)


def cache_dir(db_path: Path) -> Path:
    return Path(str(db_path) + SUFFIX)


def thumbnail_file(folder: Path, content_hash: str, size: int, at_ms: int | None = None) -> Path:
    """The thumbnail of content `content_hash` at `size` px in the cache `folder` (of a video,
    its frame at `at_ms` milliseconds; None: its poster)."""
    moment = "" if at_ms is None else f"@{int(at_ms)}"
    return folder / content_hash[:2] / f"{content_hash}{moment}-{size}.jpg"


def prune_thumbnails(store: Store) -> int:
    """Delete the cached thumbnails whose content hash no indexed file has, and temp files of
    killed writes. Only files named as this module names them, never through a link. Returns
    how many files were deleted."""
    folder = cache_dir(store.path)
    if folder.is_symlink() or not folder.is_dir():
        return 0
    keep = {state.content_hash for state in store.file_states().values()}
    stale = time.time() - STALE_TEMP_S
    removed = 0
    try:
        subs = [e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0  # unreadable: the cache is best effort
    for sub in subs:
        try:
            entries = list(os.scandir(sub))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                name = THUMB_NAME.fullmatch(entry.name)
                if name is not None and name.group(1) in keep:
                    continue
                if name is None and not (
                    entry.name.startswith(".")
                    and entry.name.endswith(".tmp")
                    and entry.stat(follow_symlinks=False).st_mtime < stale
                ):
                    continue  # not ours, or a write in progress
                os.unlink(entry.path)
                removed += 1
            except OSError:
                continue  # gone meanwhile, or not ours to delete: the cache is best effort
    return removed

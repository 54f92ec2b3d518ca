"""Database status: location, what it holds per model, failures, photos missing on disk, captions
kept for photos gone, last run, FAISS cache state.

Times are stored and reported by `--json` as ISO 8601 UTC; people read them in their own time
zone, to the minute, with how long ago (`local_time`).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from indexer.store.connection import connect_readonly
from indexer.store.pending_captions import pending_counts
from indexer.store.queries import model_sources, status_counts
from indexer.store.roots import list_roots, paths_by_root
from indexer.store.user_captions import captions_to_review, kept_caption_count

REVIEW_SHOWN = 10  # paths of photos with a caption to review that status lists


def status(db_path: Path) -> dict[str, Any]:
    """Everything `imgcap status` shows, as plain data (nothing is built or written)."""
    from search.vectors.cache import cache_state
    from search.vectors.files import index_dir

    db_path = Path(db_path)
    conn = connect_readonly(db_path)
    try:
        counts = status_counts(conn)
        cache = cache_state(db_path, conn)
        sources = model_sources(conn)
        missing = missing_on_disk(paths_by_root(conn))
        roots, loose = list_roots(conn)
        kept = kept_caption_count(conn)
        to_review, review_paths = captions_to_review(conn, REVIEW_SHOWN)
        pending = pending_counts(conn)
    finally:
        conn.close()
    size = sum(
        p.stat().st_size
        for p in (db_path, Path(str(db_path) + "-wal"))
        if p.is_file()  # the WAL holds commits not yet checkpointed into the main file
    )
    cache_dir = index_dir(db_path)
    cache_size = sum(p.stat().st_size for p in cache_dir.glob("*") if p.is_file())
    models = {
        # source: the model directory (or registry name) a search loads; None before schema 2
        name: {
            **info,
            # results with a caption; the rest have their image vector only (--captions later)
            "captioned": info["results"] - pending.get(name, 0),
            "index": cache.get(name, {"state": "missing"}),
            "source": sources.get(name),
        }
        for name, info in counts["models"].items()
    }
    return {
        "db": str(db_path),
        "db_bytes": size,
        "index_dir": str(cache_dir),
        "index_bytes": cache_size,
        "files": counts["files"],
        "failures": counts["failures"],
        # the folders indexed (id, path, photos, exists here now, db_relative), as `imgcap roots`
        "roots": [root.to_dict() for root in roots],
        "files_under_no_root": loose,
        # indexed photos whose file is not there now: root ("" = under no root) -> count
        "missing_on_disk": missing,
        "kept_captions": kept,  # captions you wrote for photos no longer in the library
        "models": models,
        "last_run": counts["last_run"],
        # Photos whose pixels changed under a caption a person wrote: kept, marked for review.
        "captions_to_review": to_review,
        "captions_to_review_paths": review_paths,
    }


LISTED = 8  # indexed files in one folder from which one listing beats a stat per file


def missing_on_disk(paths: dict[str | None, list[str]]) -> dict[str, int]:
    """root -> how many of its indexed paths are not on disk now ("" for paths under no root).
    A root whose folder is not here (an unmounted drive) is checked once, not per file; a
    folder with many indexed files is listed once instead of a stat per file."""
    out = {}
    for root, files in paths.items():
        if root is not None and not os.path.isdir(root):
            n = len(files)
        else:
            by_folder: dict[str, list[str]] = {}
            for p in files:
                by_folder.setdefault(os.path.dirname(p), []).append(p)
            n = sum(_missing_in(folder, group) for folder, group in by_folder.items())
        if n:
            out[root or ""] = n
    return out


def _missing_in(folder: str, paths: list[str]) -> int:
    if len(paths) < LISTED:
        return sum(not os.path.exists(p) for p in paths)
    try:
        names = set(os.listdir(folder))
    except OSError:
        return len(paths)  # the folder is gone (or unreadable: its files cannot be served)
    return sum(os.path.basename(p) not in names for p in paths)


def local_time(iso: str | None, now: dt.datetime | None = None) -> str:
    """ "2026-12-03 14:05 (3 min ago)": an ISO 8601 time in the local time zone, to the minute.

    Times without an offset are taken as UTC (how the store writes them); a time in the future
    (clock skew) or over a month old gets no "ago"."""
    if not iso:
        return "-"
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    text = t.astimezone().strftime("%Y-%m-%d %H:%M")
    ago = _ago((now - t).total_seconds())
    return f"{text} ({ago})" if ago else text


def _ago(seconds: float) -> str | None:
    if seconds < 0 or seconds >= 31 * 86400:
        return None
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return None


def duration(start_iso: str | None, end_iso: str | None) -> str | None:
    """ "1 min 12 s" between two ISO times, or None when either is missing."""
    try:
        seconds = dt.datetime.fromisoformat(end_iso) - dt.datetime.fromisoformat(start_iso)
    except (TypeError, ValueError):
        return None
    total = max(0, round(seconds.total_seconds()))
    if total < 60:
        return f"{total} s"
    minutes, sec = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"

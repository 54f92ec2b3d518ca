"""Database status: location, what it holds per model, failures, last run, FAISS cache state.

Times are stored and reported by `--json` as ISO 8601 UTC; people read them in their own time
zone, to the minute, with how long ago (`local_time`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from indexer.store.connection import connect_readonly
from indexer.store.queries import model_sources, status_counts


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
        name: {**info, "index": cache.get(name, {"state": "missing"}), "source": sources.get(name)}
        for name, info in counts["models"].items()
    }
    return {
        "db": str(db_path),
        "db_bytes": size,
        "index_dir": str(cache_dir),
        "index_bytes": cache_size,
        "files": counts["files"],
        "failures": counts["failures"],
        "models": models,
        "last_run": counts["last_run"],
    }


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

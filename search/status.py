"""Database status: location, what it holds per model, failures, last run, FAISS cache state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer import store


def status(db_path: Path) -> dict[str, Any]:
    """Everything `imgcap status` shows, as plain data (nothing is built or written)."""
    from search import vectors

    db_path = Path(db_path)
    conn = store.connect_readonly(db_path)
    try:
        counts = store.status_counts(conn)
        cache = vectors.cache_state(db_path, conn)
    finally:
        conn.close()
    size = sum(
        p.stat().st_size
        for p in (db_path, Path(str(db_path) + "-wal"))
        if p.is_file()  # the WAL holds commits not yet checkpointed into the main file
    )
    cache_dir = vectors.index_dir(db_path)
    cache_size = sum(p.stat().st_size for p in cache_dir.glob("*") if p.is_file())
    models = {
        name: {**info, "index": cache.get(name, {"state": "missing"})}
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

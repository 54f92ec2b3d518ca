"""The database: every SQL statement imgcap runs lives in this module (habit 5).

Layout (created by the numbered migrations below):

- `files`: one row per indexed image path (absolute, not resolved) with what change detection
  compares (size, mtime_ns), its content hash, and the metadata decode found.
- `results`: one row per (content_hash, model): caption + raw float32 image and caption vectors.
  Keyed by content, not path, so a moved, renamed or byte-identical file reuses its results with
  no model work, and several models' results live side by side. Results whose hash no file
  references any more are garbage and deleted when files go.
- `results_fts`: FTS5 over results.caption, kept in step by triggers.
- `failures`: files that could not be indexed, with the reason (listed by `imgcap failures`).
- `runs`: one row per `imgcap index` run, with its JSON summary.
- `vector_state`: per model, a generation number bumped in the same transaction as any change to
  that model's results or to the files that reference them, plus the result count. The FAISS cache
  beside the database compares both to know whether it is stale.

Writers hold an OS file lock beside the database (`writer_lock`), so a second `imgcap index` on the
same database is refused with a clear message; readers never take it and keep working (WAL mode).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from indexer.errors import StoreError

migrations = Migrations("imgcap")

# SQLite caps host parameters per statement (32766 since 3.32); chunk IN (...) lists well below.
_CHUNK = 900


@migrations()
def m001_initial(db: Database) -> None:
    db["files"].create(
        {
            "id": int,
            "path": str,  # absolute, symlinks not resolved: the path the user would type
            "folder": str,  # dirname(path), for folder filters and keyword search
            "size": int,
            "mtime_ns": int,
            "content_hash": str,
            "width": int,
            "height": int,
            "taken_at": str,  # ISO 8601 from EXIF, or NULL
            "camera_make": str,
            "camera_model": str,
            "gps_lat": float,
            "gps_lon": float,
            "indexed_at": str,
        },
        pk="id",
        not_null={"path", "size", "mtime_ns", "content_hash"},
    )
    db["files"].create_index(["path"], unique=True)
    db["files"].create_index(["content_hash"])
    db["files"].create_index(["folder"])

    db["results"].create(
        {
            "id": int,
            "content_hash": str,
            "model": str,
            "caption": str,
            "image_vec": bytes,  # float32 little-endian, raw (not normalised), `dim` values
            "caption_vec": bytes,
            "dim": int,
            "created_at": str,
        },
        pk="id",
        not_null={"content_hash", "model", "caption", "image_vec", "caption_vec", "dim"},
    )
    db["results"].create_index(["content_hash", "model"], unique=True)
    db["results"].create_index(["model"])
    db["results"].enable_fts(["caption"], create_triggers=True)

    db["failures"].create(
        {
            "path": str,
            "reason": str,
            "size": int,  # NULL for walk problems (dangling link, unreadable folder, ...)
            "mtime_ns": int,
            "failed_at": str,
            "model": str,
        },
        pk="path",
    )
    db["runs"].create(
        {
            "id": int,
            "model": str,
            "started_at": str,
            "finished_at": str,
            "status": str,  # running | completed | interrupted | failed | abandoned
            "summary": str,  # JSON
        },
        pk="id",
    )
    db["vector_state"].create({"model": str, "generation": int, "count": int}, pk="model")


# ------------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class FileState:
    """What change detection needs about one indexed path."""

    size: int
    mtime_ns: int
    content_hash: str


@dataclass(slots=True)
class FileRecord:
    """One row of `files` as the pipeline writes it."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


# Metadata columns copied from one file to another with the same content hash.
META_COLUMNS = ("width", "height", "taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon")


@dataclass(slots=True)
class ResultRecord:
    """One model's output for one content hash."""

    content_hash: str
    caption: str
    image_vec: np.ndarray  # (D,) float32
    caption_vec: np.ndarray  # (D,) float32


@dataclass(frozen=True, slots=True)
class FailureRecord:
    path: str
    reason: str
    size: int | None = None
    mtime_ns: int | None = None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def vec_to_blob(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def blob_to_vec(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


# --------------------------------------------------------------------------------------- locking
@contextmanager
def writer_lock(db_path: Path) -> Iterator[None]:
    """Hold the one-writer lock for `db_path`, or raise StoreError at once if another run has it.

    An OS lock (flock / LockFileEx via `filelock`), so a run killed with SIGKILL releases it and
    the next run starts without any stale-lock clean-up.
    """
    from filelock import FileLock, Timeout

    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(db_path) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(
            f"another `imgcap index` is already writing to {db_path}; "
            "wait for it to finish (searching keeps working meanwhile)"
        ) from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------- store
class Store:
    """A connection to one imgcap database. Open with `Store.open`."""

    def __init__(self, db: Database, path: Path):
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (and create / migrate when `create`) the database at `path`.

        With create=False a missing database raises StoreError and nothing is written.
        """
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"no database at {path} (run `imgcap index PATH` first)")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            db = Database(path)
            # Wait a little for a writer's commit instead of failing with "database is locked".
            db.execute("PRAGMA busy_timeout = 10000")
            if create:
                db.enable_wal()
                # WAL + NORMAL survives a killed process; only an OS crash can lose recent commits.
                db.execute("PRAGMA synchronous = NORMAL")
                migrations.apply(db)
            elif not db["files"].exists():
                raise StoreError(f"{path} is not an imgcap database")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- reads
    def file_states(self) -> dict[str, FileState]:
        """path -> (size, mtime_ns, content_hash) of every indexed file, in one query."""
        rows = self.db.execute("SELECT path, size, mtime_ns, content_hash FROM files")
        return {p: FileState(s, m, h) for p, s, m, h in rows}

    def result_hashes(self, model: str) -> set[str]:
        """Content hashes that already have results for `model`."""
        rows = self.db.execute("SELECT content_hash FROM results WHERE model = ?", [model])
        return {h for (h,) in rows}

    def failure_states(self) -> dict[str, tuple[int | None, int | None, str]]:
        """path -> (size, mtime_ns, reason) of every recorded failure."""
        rows = self.db.execute("SELECT path, size, mtime_ns, reason FROM failures")
        return {p: (s, m, r) for p, s, m, r in rows}

    def metadata_for_hashes(self, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """content_hash -> metadata of some indexed file with that content (to copy, not decode)."""
        out: dict[str, dict[str, Any]] = {}
        cols = ", ".join(META_COLUMNS)
        for chunk in _chunks(list(hashes)):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT content_hash, {cols} FROM files WHERE content_hash IN ({marks})"
            for row in self.db.execute(sql, chunk):
                out.setdefault(row[0], dict(zip(META_COLUMNS, row[1:], strict=True)))
        return out

    def failures(self) -> list[dict[str, Any]]:
        """Every recorded failure, by path."""
        return list(
            self.db.query(
                "SELECT path, reason, size, mtime_ns, failed_at, model FROM failures ORDER BY path"
            )
        )

    def counts(self) -> dict[str, int]:
        """Row counts, for status output and tests."""
        q = self.db.execute
        return {
            "files": q("SELECT count(*) FROM files").fetchone()[0],
            "results": q("SELECT count(*) FROM results").fetchone()[0],
            "failures": q("SELECT count(*) FROM failures").fetchone()[0],
        }

    def vector_state(self) -> dict[str, tuple[int, int]]:
        """model -> (generation, count)."""
        rows = self.db.execute("SELECT model, generation, count FROM vector_state")
        return {m: (g, c) for m, g, c in rows}

    # --------------------------------------------------------------------------------- writes
    def write_batch(
        self,
        model: str,
        results: Sequence[ResultRecord],
        files: Sequence[FileRecord],
    ) -> None:
        """Store one batch in ONE transaction: new results, then the files that point at them.

        A result that already exists for (hash, model) is kept (the first one wins; no model work
        is ever redone for it). Files are upserted by path; their failure records are dropped.
        """
        if not results and not files:
            return
        stamp = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO results (content_hash, model, caption, image_vec, caption_vec, dim,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (content_hash, model) DO NOTHING",
                [
                    (
                        r.content_hash,
                        model,
                        r.caption,
                        vec_to_blob(r.image_vec),
                        vec_to_blob(r.caption_vec),
                        int(r.image_vec.shape[-1]),
                        stamp,
                    )
                    for r in results
                ],
            )
            old_hashes = set(self._hashes_of_paths([f.path for f in files]).values())
            self.db.conn.executemany(
                "INSERT INTO files (path, folder, size, mtime_ns, content_hash, width, height,"
                " taken_at, camera_make, camera_model, gps_lat, gps_lon, indexed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET folder = excluded.folder,"
                " size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " content_hash = excluded.content_hash, width = excluded.width,"
                " height = excluded.height, taken_at = excluded.taken_at,"
                " camera_make = excluded.camera_make, camera_model = excluded.camera_model,"
                " gps_lat = excluded.gps_lat, gps_lon = excluded.gps_lon,"
                " indexed_at = excluded.indexed_at",
                [
                    (
                        f.path,
                        os.path.dirname(f.path),
                        f.size,
                        f.mtime_ns,
                        f.content_hash,
                        f.width,
                        f.height,
                        f.taken_at,
                        f.camera_make,
                        f.camera_model,
                        f.gps_lat,
                        f.gps_lon,
                        stamp,
                    )
                    for f in files
                ],
            )
            self.db.conn.executemany(
                "DELETE FROM failures WHERE path = ?", [(f.path,) for f in files]
            )
            # An edited file's old content may be unreferenced now: that is left to
            # collect_garbage() at the end of the run, so that a file routed for reuse earlier in
            # the run never points at a result deleted meanwhile.
            touched = {f.content_hash for f in files} | {r.content_hash for r in results}
            self._bump({model} | self._models_of_hashes(touched | old_hashes))

    def record_failures(self, model: str | None, failures: Sequence[FailureRecord]) -> None:
        """Record failures (one transaction). A path that was indexed before leaves `files`:
        its content changed into something unreadable, so its old caption is wrong. Its results
        stay until `collect_garbage`."""
        if not failures:
            return
        stamp = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO failures (path, reason, size, mtime_ns, failed_at, model)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET reason = excluded.reason,"
                " size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " failed_at = excluded.failed_at, model = excluded.model",
                [(f.path, f.reason, f.size, f.mtime_ns, stamp, model) for f in failures],
            )
            self._delete_files([f.path for f in failures])

    def remove_paths(self, paths: Sequence[str]) -> None:
        """Forget files that disappeared (and their failure records); one transaction.
        Their results stay until `collect_garbage`."""
        if not paths:
            return
        with self.db.atomic():
            self.db.conn.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths])
            self._delete_files(paths)

    def collect_garbage(self) -> int:
        """Delete results whose content no indexed file has any more (all models); one
        transaction. Returns how many rows went."""
        with self.db.atomic():
            models = {
                m
                for (m,) in self.db.execute(
                    "SELECT DISTINCT model FROM results"
                    " WHERE content_hash NOT IN (SELECT content_hash FROM files)"
                )
            }
            if not models:
                return 0
            cur = self.db.execute(
                "DELETE FROM results WHERE content_hash NOT IN (SELECT content_hash FROM files)"
            )
            self._bump(models)
        return cur.rowcount

    def start_run(self, model: str) -> int:
        """Record a new run. Runs still 'running' were killed (we hold the writer lock)."""
        with self.db.atomic():
            self.db.execute("UPDATE runs SET status = 'abandoned' WHERE status = 'running'")
            cur = self.db.execute(
                "INSERT INTO runs (model, started_at, status) VALUES (?, ?, 'running')",
                [model, now_iso()],
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                [now_iso(), status, json.dumps(summary), run_id],
            )

    # ------------------------------------------------------------------------------- helpers
    def _hashes_of_paths(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(list(paths)):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT path, content_hash FROM files WHERE path IN ({marks})"
            out.update(self.db.execute(sql, chunk).fetchall())
        return out

    def _models_of_hashes(self, hashes: set[str]) -> set[str]:
        models: set[str] = set()
        for chunk in _chunks(list(hashes)):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT DISTINCT model FROM results WHERE content_hash IN ({marks})"
            models.update(m for (m,) in self.db.execute(sql, chunk))
        return models

    def _delete_files(self, paths: Sequence[str]) -> None:
        """Delete file rows (caller holds a transaction); bump the models whose files changed."""
        old = self._hashes_of_paths(paths)
        if not old:
            return
        self.db.conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in old])
        self._bump(self._models_of_hashes(set(old.values())))

    def _bump(self, models: set[str]) -> None:
        """New generation + current count for each model whose searchable data changed."""
        for model in sorted(models):
            self.db.execute(
                "INSERT INTO vector_state (model, generation, count)"
                " VALUES (?, 1, (SELECT count(*) FROM results WHERE model = ?))"
                " ON CONFLICT (model) DO UPDATE SET generation = generation + 1,"
                " count = excluded.count",
                [model, model],
            )


def _chunks(items: list[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---- reads for search/ ---------------------------------------------------------------------
# Owned by the search side (search/vectors.py, query.py, export.py, `imgcap status`). Plain
# functions over a read-only sqlite3 connection: a search never takes a write lock, so it keeps
# answering while an `imgcap index` run commits batches (WAL).


@dataclass(frozen=True, slots=True)
class FileFilter:
    """Which files a search or export may return. Dates are ISO 8601 prefixes ("2019", "2019-06",
    "2019-06-01"); `after` is inclusive, `before` exclusive, so [2019, 2020) is "in 2019"."""

    folder: str | None = None  # absolute folder; files anywhere below it match
    after: str | None = None
    before: str | None = None
    camera: str | None = None  # case-insensitive substring of "make model"

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.folder, self.after, self.before, self.camera))


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (no migrations, no lock); StoreError if there is no database."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no database at {path} (run `imgcap index PATH` first)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.isolation_level = None  # explicit BEGIN/COMMIT for snapshot reads
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT 1 FROM files LIMIT 1").fetchall()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable imgcap database ({e})") from None
    return conn


def models_with_results(conn: sqlite3.Connection) -> list[str]:
    """Models with at least one result, most results first."""
    rows = conn.execute(
        "SELECT model FROM results GROUP BY model ORDER BY count(*) DESC, model"
    ).fetchall()
    return [m for (m,) in rows]


def vector_state_for(conn: sqlite3.Connection, model: str) -> tuple[int, int]:
    """(generation, result count) for a model; (0, 0) when it has never been written."""
    row = conn.execute(
        "SELECT generation, count FROM vector_state WHERE model = ?", [model]
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def result_vector_shape(conn: sqlite3.Connection, model: str) -> tuple[int, int]:
    """(number of results, vector dimension) for a model."""
    n, dim = conn.execute(
        "SELECT count(*), max(dim) FROM results WHERE model = ?", [model]
    ).fetchone()
    return int(n), int(dim or 0)


def iter_result_vectors(
    conn: sqlite3.Connection, model: str, chunk: int
) -> Iterator[list[tuple[int, bytes, bytes]]]:
    """(result id, image_vec, caption_vec) rows of a model by ascending id, `chunk` at a time."""
    cur = conn.execute(
        "SELECT id, image_vec, caption_vec FROM results WHERE model = ? ORDER BY id", [model]
    )
    while rows := cur.fetchmany(chunk):
        yield rows


def _file_where(flt: FileFilter, alias: str = "f") -> tuple[str, list[Any]]:
    """SQL condition (and parameters) on the `files` row `alias` for a FileFilter."""
    conds: list[str] = []
    params: list[Any] = []
    if flt.folder is not None:
        # A range on the indexed path column instead of LIKE: no wildcard escaping, uses the index.
        # '0' is the character after '/', so [dir/, dir0) is exactly "below dir".
        base = flt.folder.rstrip(os.sep) + os.sep
        conds.append(f"{alias}.path >= ? AND {alias}.path < ?")
        params += [base, base[:-1] + chr(ord(os.sep) + 1)]
    if flt.after is not None:
        conds.append(f"{alias}.taken_at >= ?")
        params.append(flt.after)
    if flt.before is not None:
        conds.append(f"{alias}.taken_at < ?")
        params.append(flt.before)
    if flt.camera is not None:
        escaped = flt.camera.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(
            f"(coalesce({alias}.camera_make, '') || ' ' || coalesce({alias}.camera_model, ''))"
            " LIKE ? ESCAPE '\\'"
        )
        params.append(f"%{escaped}%")
    return (" AND ".join(conds) or "1"), params


def filtered_result_ids(conn: sqlite3.Connection, model: str, flt: FileFilter) -> np.ndarray:
    """Ascending ids of the model's results that at least one file passing `flt` uses."""
    where, params = _file_where(flt)
    rows = conn.execute(
        "SELECT r.id FROM results r WHERE r.model = ? AND r.content_hash IN"
        f" (SELECT f.content_hash FROM files f WHERE {where}) ORDER BY r.id",
        [model, *params],
    ).fetchall()
    return np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))


def keyword_matches(
    conn: sqlite3.Connection, model: str, fts_query: str, limit: int, flt: FileFilter
) -> list[tuple[int, float]]:
    """(result id, BM25) of captions matching an FTS5 query, best first (BM25: higher = better).

    `fts_query` must already be sanitised (search/query.py quotes every term)."""
    where, params = _file_where(flt)
    restrict = (
        f" AND r.content_hash IN (SELECT f.content_hash FROM files f WHERE {where})"
        if flt.active
        else ""
    )
    rows = conn.execute(
        "SELECT r.id, bm25(results_fts) AS rank FROM results_fts"
        " JOIN results r ON r.id = results_fts.rowid"
        f" WHERE results_fts MATCH ? AND r.model = ?{restrict} ORDER BY rank LIMIT ?",
        [fts_query, model, *params, limit],
    ).fetchall()
    return [(int(i), -float(s)) for i, s in rows]  # FTS5's bm25() is negated: flip it back


def keyword_subset(conn: sqlite3.Connection, fts_query: str, result_ids: Sequence[int]) -> set[int]:
    """Which of `result_ids` have a caption matching the FTS5 query (for --not)."""
    out: set[int] = set()
    for chunk in _chunks([int(i) for i in result_ids]):  # type: ignore[arg-type]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT rowid FROM results_fts WHERE results_fts MATCH ? AND rowid IN ({marks})",
            [fts_query, *chunk],
        )
        out.update(int(r) for (r,) in rows)
    return out


_HIT_COLUMNS = (
    "r.id, r.model, r.caption, f.path, f.width, f.height, f.taken_at, f.camera_make,"
    " f.camera_model, f.gps_lat, f.gps_lon, f.indexed_at, f.content_hash"
)
_HIT_KEYS = (
    "result_id", "model", "caption", "path", "width", "height", "taken_at", "camera_make",
    "camera_model", "gps_lat", "gps_lon", "indexed_at", "content_hash",
)  # fmt: skip


def files_for_results(
    conn: sqlite3.Connection, result_ids: Sequence[int], flt: FileFilter
) -> list[dict[str, Any]]:
    """Every file (passing `flt`) that uses one of the given results, ordered by path."""
    where, params = _file_where(flt)
    out: list[dict[str, Any]] = []
    for chunk in _chunks([int(i) for i in result_ids]):  # type: ignore[arg-type]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_HIT_COLUMNS} FROM results r JOIN files f ON f.content_hash = r.content_hash"
            f" WHERE r.id IN ({marks}) AND {where} ORDER BY f.path",
            [*chunk, *params],
        )
        out += [dict(zip(_HIT_KEYS, row, strict=True)) for row in rows]
    return out


def export_rows(conn: sqlite3.Connection, model: str, flt: FileFilter) -> Iterator[dict[str, Any]]:
    """One row per indexed file that has a result for `model`, ordered by path."""
    where, params = _file_where(flt)
    cur = conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM files f JOIN results r ON r.content_hash = f.content_hash"
        f" WHERE r.model = ? AND {where} ORDER BY f.path",
        [model, *params],
    )
    for row in cur:
        yield dict(zip(_HIT_KEYS, row, strict=True))


def status_counts(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts for `imgcap status`: files, failures, per-model photos and results, last run."""
    q = conn.execute
    per_model = q(
        "SELECT r.model, count(DISTINCT r.id), count(f.id) FROM results r"
        " LEFT JOIN files f ON f.content_hash = r.content_hash GROUP BY r.model ORDER BY r.model"
    ).fetchall()
    run = q(
        "SELECT id, model, started_at, finished_at, status, summary FROM runs"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    last_run = None
    if run is not None:
        keys = ("id", "model", "started_at", "finished_at", "status")
        last_run = dict(zip(keys, run[:5], strict=True))
        last_run["summary"] = json.loads(run[5]) if run[5] else None
    return {
        "files": q("SELECT count(*) FROM files").fetchone()[0],
        "failures": q("SELECT count(*) FROM failures").fetchone()[0],
        "models": {m: {"results": nr, "photos": nf} for m, nr, nf in per_model},
        "last_run": last_run,
    }

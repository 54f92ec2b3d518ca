"""The read-write database handle the index pipeline uses: change detection reads, batch writes,
failures, runs, garbage collection and the per-model generations the FAISS cache compares.

Every sqlite3 error leaves as a StoreError naming the file (a full disk, a read-only file, a
damaged page), so a caller can keep what was committed and tell the user why it stopped.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from indexer.errors import StoreError
from indexer.store import frames, path_text, photo_text, roots, schema
from indexer.store.connection import BUSY_TIMEOUT_MS, connect_readonly
from indexer.store.errors import store_error
from indexer.store.records import (
    META_COLUMNS,
    FailureRecord,
    FileRecord,
    FileState,
    ResultRecord,
    now_iso,
    rows_in,
    vec_to_blob,
)


def _sql(fn):
    """sqlite3 errors of a Store method -> StoreError naming the database."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise store_error(e, self.path) from None

    return wrapper


class Store:
    """A connection to one imgcap database. Open with `Store.open`."""

    def __init__(self, db: Database, path: Path):
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (and create / migrate when `create`) the database at `path`.

        With create=False the file is opened read-only (nothing is written, no migration, works
        on read-only media) and a missing database raises StoreError. With create=True a foreign
        SQLite file or one from a newer imgcap is refused before anything is written to it.
        """
        path = Path(path)
        if not create:
            return cls(Database(connect_readonly(path)), path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder for {path}: {e.strerror or e}") from None
        db = None
        try:
            db = Database(path)
            path_text.prepare(db.conn)  # file names that are not UTF-8, both ways
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            schema.check(db.conn, path)  # before WAL mode or any table touches the file
            db.enable_wal()
            # WAL + NORMAL survives a killed process; only an OS crash can lose recent commits.
            db.execute("PRAGMA synchronous = NORMAL")
            schema.migrate(db, path)
            roots.follow(db, path)  # a database kept inside its root, opened from a new place
        except (sqlite3.Error, StoreError) as e:
            if db is not None:
                db.close()
            if isinstance(e, StoreError):
                raise
            raise store_error(e, path) from None
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- reads
    @_sql
    def file_states(self) -> dict[str, FileState]:
        """path -> (size, mtime_ns, content_hash) of every indexed file, in one query."""
        rows = self.db.execute("SELECT path, size, mtime_ns, content_hash FROM files")
        return {p: FileState(s, m, h) for p, s, m, h in rows}

    @_sql
    def result_hashes(self, model: str) -> set[str]:
        """Content hashes that already have results for `model` (videos: every keyframe's)."""
        rows = self.db.execute("SELECT content_hash FROM results WHERE model = ?", [model])
        return {h for (h,) in rows} | frames.done_hashes(self.db.conn, model)

    @_sql
    def failure_states(self) -> dict[str, tuple[int | None, int | None, str]]:
        """path -> (size, mtime_ns, reason) of every recorded failure."""
        rows = self.db.execute("SELECT path, size, mtime_ns, reason FROM failures")
        return {p: (s, m, r) for p, s, m, r in rows}

    @_sql
    def metadata_for_hashes(self, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """content_hash -> metadata of some indexed file with that content (to copy, not decode)."""
        out: dict[str, dict[str, Any]] = {}
        cols = ", ".join(META_COLUMNS)
        sql = f"SELECT content_hash, {cols} FROM files WHERE content_hash IN ({{marks}})"
        for row in rows_in(self.db.conn, sql, hashes):
            out.setdefault(row[0], dict(zip(META_COLUMNS, row[1:], strict=True)))
        return out

    @_sql
    def failures(self) -> list[dict[str, Any]]:
        """Every recorded failure, by path."""
        return list(
            self.db.query(
                "SELECT path, reason, size, mtime_ns, failed_at, model FROM failures ORDER BY path"
            )
        )

    @_sql
    def counts(self) -> dict[str, int]:
        """Row counts, for status output and tests."""
        q = self.db.execute
        return {
            "files": q("SELECT count(*) FROM files").fetchone()[0],
            "results": q("SELECT count(*) FROM results").fetchone()[0],
            "failures": q("SELECT count(*) FROM failures").fetchone()[0],
        }

    @_sql
    def vector_state(self) -> dict[str, tuple[int, int]]:
        """model -> (generation, count)."""
        rows = self.db.execute("SELECT model, generation, count FROM vector_state")
        return {m: (g, c) for m, g, c in rows}

    # --------------------------------------------------------------------------------- writes
    @_sql
    def write_batch(
        self,
        model: str,
        results: Sequence[ResultRecord],
        files: Sequence[FileRecord],
        keyframes: Sequence[frames.FrameRecord] = (),
        videos: Sequence[frames.VideoRecord] = (),
    ) -> None:
        """Store one batch in ONE transaction: new results, then the files that point at them.
        Video keyframes (results under their frame keys) and videos now complete ride along.

        A result that already exists for (hash, model) is kept (the first one wins; no model work
        is ever redone for it). Files are upserted by path; their failure records are dropped.
        """
        if not results and not files:
            return
        stamp = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO results (content_hash, model, caption, image_vec, caption_vec, dim,"
                " created_at, caption_pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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
                        1 if r.pending else None,
                    )
                    for r in results
                ],
            )
            old_of_path = self._hashes_of_paths([f.path for f in files])
            old_hashes = set(old_of_path.values())
            self.db.conn.executemany(
                "INSERT INTO files (path, folder, size, mtime_ns, content_hash, width, height,"
                " taken_at, camera_make, camera_model, gps_lat, gps_lon, indexed_at, pixel_hash,"
                " perceptual_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET folder = excluded.folder,"
                " size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " content_hash = excluded.content_hash, width = excluded.width,"
                " height = excluded.height, taken_at = excluded.taken_at,"
                " camera_make = excluded.camera_make, camera_model = excluded.camera_model,"
                " gps_lat = excluded.gps_lat, gps_lon = excluded.gps_lon,"
                " indexed_at = excluded.indexed_at,"
                # A file not hashed this run (a model switch) keeps the pixel hash of its bytes.
                " pixel_hash = CASE WHEN files.content_hash = excluded.content_hash"
                " THEN coalesce(excluded.pixel_hash, files.pixel_hash)"
                " ELSE excluded.pixel_hash END,"
                " perceptual_hash = CASE WHEN files.content_hash = excluded.content_hash"
                " THEN coalesce(excluded.perceptual_hash, files.perceptual_hash)"
                " ELSE excluded.perceptual_hash END",
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
                        f.pixel_hash,
                        f.perceptual_hash,
                    )
                    for f in files
                ],
            )
            self._keep_user_captions(model, results, files, old_of_path, stamp)
            self.db.conn.executemany(
                "DELETE FROM failures WHERE path = ?", [(f.path,) for f in files]
            )
            frames.write(self.db.conn, model, keyframes, videos, stamp)
            # An edited file's old content may be unreferenced now: that is left to
            # collect_garbage() at the end of the run, so that a file routed for reuse earlier in
            # the run never points at a result deleted meanwhile.
            touched = {f.content_hash for f in files} | {r.content_hash for r in results}
            self._bump({model} | self._models_of_hashes(touched | old_hashes))

    @_sql
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

    @_sql
    def remove_paths(self, paths: Sequence[str]) -> None:
        """Forget files that disappeared (and their failure records); one transaction.
        Their results stay until `collect_garbage`."""
        if not paths:
            return
        with self.db.atomic():
            self.db.conn.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths])
            self._delete_files(paths)

    @_sql
    def collect_garbage(self, purge: Iterable[str] = ()) -> int:
        """Delete results whose content no indexed file has any more (all models); one
        transaction. Returns how many rows went. Also trims the vector change log.

        A result holding a caption a person wrote stays (a person's work is never lost to a
        moved folder, an unmounted drive or `imgcap roots remove`): when the same content is
        indexed again it is reused, the caption with it. `purge`: content hashes whose such
        results go too (`imgcap roots remove --purge`)."""
        with self.db.atomic():
            if self.db["vector_log"].exists():
                from indexer.store import vector_log

                vector_log.prune(self.db.conn)
            # Keyframes of videos no file has any more go first; then a result is garbage
            # when neither a file nor a keyframe row references it.
            frames.collect(self.db.conn)
            unreferenced = (
                "content_hash NOT IN (SELECT content_hash FROM files)"
                " AND content_hash NOT IN (SELECT frame_key FROM video_frames)"
                " AND (caption_edited_at IS NULL"
                " OR content_hash IN (SELECT value FROM json_each(?))"
                # The caption lives on in an indexed photo (carried to its new pixels, or
                # copied to its re-tagged bytes, with the same edit time): this is a husk.
                " OR EXISTS (SELECT 1 FROM results live JOIN files f"
                " ON f.content_hash = live.content_hash WHERE live.model = results.model"
                " AND live.caption_edited_at = results.caption_edited_at"
                " AND live.caption = results.caption))"
            )
            purged = [json.dumps(sorted(set(purge)))]
            models = {
                m
                for (m,) in self.db.execute(
                    f"SELECT DISTINCT model FROM results WHERE {unreferenced}", purged
                )
            }
            if not models:
                photo_text.collect(self.db.conn)
                return 0
            cur = self.db.execute(f"DELETE FROM results WHERE {unreferenced}", purged)
            self._bump(models)
            photo_text.collect(self.db.conn)  # text read in content no result has any more
        return cur.rowcount

    @_sql
    def start_run(self, model: str, source: str | None = None) -> int:
        """Record a new run. Runs still 'running' were killed (we hold the writer lock).

        `source` is where the model was loaded from (an absolute model directory or a registry
        name); it is remembered per model name so a search can load the same model."""
        with self.db.atomic():
            self.db.execute("UPDATE runs SET status = 'abandoned' WHERE status = 'running'")
            if source is not None:
                self.db.execute(
                    "INSERT INTO models (name, source, recorded_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET source = excluded.source,"
                    " recorded_at = excluded.recorded_at",
                    [model, source, now_iso()],
                )
            cur = self.db.execute(
                "INSERT INTO runs (model, started_at, status) VALUES (?, ?, 'running')",
                [model, now_iso()],
            )
        return int(cur.lastrowid)

    @_sql
    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                [now_iso(), status, json.dumps(summary), run_id],
            )

    @_sql
    def reuse_by_pixels(self, model: str, content_hash: str, pixel_hash: str, prefer: str | None):
        """Give `content_hash` (new bytes, no result for `model`) a copy of the results of some
        stored file with the same `pixel_hash` (the same picture, other metadata) that has a
        result for `model`: every model's, every column, a person's caption and its review
        mark included. The content `prefer` (the path's previous one) wins, then one whose
        `model` result a person captioned. Returns the metadata of the file copied from
        (META_COLUMNS), or None when there is none. One transaction: the copies are results no
        file references until the run writes the file's row (a run killed before leaves them
        to the next run, which finds them by content hash, or to garbage collection)."""
        row = self.db.execute(
            "SELECT f.content_hash FROM files f JOIN results r"
            " ON r.content_hash = f.content_hash AND r.model = ?"
            " WHERE f.pixel_hash = ? ORDER BY f.content_hash = ? DESC,"
            " r.caption_edited_at IS NULL, f.id LIMIT 1",
            [model, pixel_hash, prefer],
        ).fetchone()
        if row is None:
            return None
        source = row[0]
        cols = [
            c
            for (c,) in self.db.execute("SELECT name FROM pragma_table_info('results')")
            if c not in ("id", "content_hash")
        ]
        names = ", ".join(cols)
        with self.db.atomic():
            self.db.execute(
                f"INSERT INTO results (content_hash, {names}) SELECT ?, {names} FROM results"
                " WHERE content_hash = ? ON CONFLICT (content_hash, model) DO NOTHING",
                [content_hash, source],
            )
            self._bump(self._models_of_hashes({content_hash}))
        return self.metadata_for_hashes([source]).get(source)

    # ------------------------------------------------------------------------------- helpers
    def _keep_user_captions(
        self,
        model: str,
        results: Sequence[ResultRecord],
        files: Sequence[FileRecord],
        old_of_path: dict[str, str],
        stamp: str,
    ) -> None:
        """A person's caption belongs to the photo: a path whose pixels changed (a crop, an
        exposure fix) and got a new generated caption in this batch keeps the caption a person
        wrote for its previous content, with the new generated one beneath it and the result
        marked for review (caption_review). Only results made in this batch: content that
        already had a result (another photo's) never takes over a caption from elsewhere."""
        fresh = {r.content_hash for r in results}
        previous = {  # new content -> the path's previous content
            f.content_hash: old_of_path[f.path]
            for f in files
            if f.content_hash in fresh and old_of_path.get(f.path, f.content_hash) != f.content_hash
        }
        for new, old in previous.items():
            self.db.execute(
                "UPDATE results SET generated_caption = caption,"
                " generated_caption_vec = caption_vec,"
                " caption = (SELECT o.caption FROM results o WHERE o.content_hash = :old"
                " AND o.model = :model),"
                " caption_vec = (SELECT o.caption_vec FROM results o WHERE o.content_hash = :old"
                " AND o.model = :model),"
                " caption_edited_at = (SELECT o.caption_edited_at FROM results o"
                " WHERE o.content_hash = :old AND o.model = :model), caption_review = :stamp"
                " WHERE content_hash = :new AND model = :model AND caption_edited_at IS NULL"
                " AND EXISTS (SELECT 1 FROM results o WHERE o.content_hash = :old"
                " AND o.model = :model AND o.caption_edited_at IS NOT NULL)",
                {"old": old, "new": new, "model": model, "stamp": stamp},
            )

    def _hashes_of_paths(self, paths: Sequence[str]) -> dict[str, str]:
        sql = "SELECT path, content_hash FROM files WHERE path IN ({marks})"
        return dict(rows_in(self.db.conn, sql, paths))

    def _models_of_hashes(self, hashes: set[str]) -> set[str]:
        sql = "SELECT DISTINCT model FROM results WHERE content_hash IN ({marks})"
        models = {m for (m,) in rows_in(self.db.conn, sql, hashes)}
        return models | frames.models_of_videos(self.db.conn, hashes)

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

"""`imgcap merge OTHER.db`: bring another imgcap database's results into this one.

Everything is keyed the way the index keys it, so nothing is computed again:

- roots: the other database's roots (where its database is now, for one kept inside its root),
  added like an index run adds them;
- files: by path (root + rel_path). A path we do not have comes with its row; the same path with
  the same content is already here; the same path with other content is a conflict: ours kept;
- results: by (content hash, model), only for content some file here has (photos, and video
  keyframes through `video_frames`). Absent here: copied with its vectors. Present: the
  generated captions are compared (a difference is a conflict: ours kept); a user caption the
  other side has and we lack comes along (a person's work is never dropped); two different user
  captions are a conflict: ours kept;
- models: where each model loads from (ours kept on a difference); a model whose vectors have
  another size here is a conflict and none of its results come;
- photo tags, video keyframes and place names come with the files that carry them.

Failures and runs stay behind (they describe the other machine's runs; the next `imgcap index`
here tries those files itself). The other database is only read. The whole merge is one
transaction under the writer lock, so merging twice adds nothing, and an interrupted merge adds
nothing at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import StoreError, UsageError
from indexer.store import roots, schema
from indexer.store.connection import connect_readonly_raw
from indexer.store.database import Store
from indexer.store.errors import store_error
from indexer.store.lock import writer_lock

BATCH = 500  # rows per executemany
CONFLICTS_KEPT = 1000  # conflicts listed in the report; the rest only counted


@dataclass
class MergeReport:
    other: str
    roots_added: list[str] = field(default_factory=list)
    models_added: list[str] = field(default_factory=list)
    files_added: int = 0
    files_same: int = 0  # already here with the same content
    results_added: int = 0
    results_same: int = 0
    user_captions_added: int = 0
    tags_added: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    conflict_count: int = 0

    def conflict(self, **row: Any) -> None:
        self.conflict_count += 1
        if len(self.conflicts) < CONFLICTS_KEPT:
            self.conflicts.append(row)

    @property
    def added_anything(self) -> bool:
        return bool(
            self.roots_added
            or self.models_added
            or self.files_added
            or self.results_added
            or self.user_captions_added
            or self.tags_added
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge(db_path: Path, other_path: Path) -> MergeReport:
    """Merge the database at `other_path` into the one at `db_path` (created if missing).

    StoreError: the other file is missing, not an imgcap database, or from a newer imgcap; or
    another run holds this database. UsageError: both are the same file."""
    db_path, other_path = Path(db_path), Path(other_path)
    if not other_path.is_file():
        raise StoreError(f"no database at {other_path}")
    if db_path.exists() and os.path.samefile(db_path, other_path):
        raise UsageError(f"{other_path} is this database; there is nothing to merge")
    try:
        src, _ = connect_readonly_raw(other_path)  # no relocation: the other file is only read
    except sqlite3.Error as e:
        raise store_error(e, other_path) from None
    try:
        version = schema.schema_version(src)
        if version is None:
            raise StoreError(f"{other_path} is not an imgcap database; nothing was merged")
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{other_path} was written by a newer imgcap (database schema version {version};"
                f" this imgcap reads versions up to {schema.SCHEMA_VERSION}): upgrade imgcap to"
                " merge it; nothing was merged"
            )
        if version == 0:
            raise StoreError(f"{other_path} holds no imgcap index yet; nothing was merged")
        with writer_lock(db_path), Store.open(db_path) as store:
            report = MergeReport(str(other_path))
            try:
                with store.db.atomic():
                    _Merge(store, src, other_path, report).run()
            except sqlite3.Error as e:
                raise store_error(e, db_path) from None
            return report
    except sqlite3.Error as e:
        raise store_error(e, other_path) from None
    finally:
        src.close()


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")]


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [table]).fetchone())


def _batches(cur: sqlite3.Cursor) -> Iterator[list[tuple]]:
    while rows := cur.fetchmany(BATCH):
        yield rows


class _Merge:
    def __init__(self, store: Store, src: sqlite3.Connection, other_path: Path, report):
        self.store = store
        self.dst = store.db.conn
        self.src = src
        self.other_path = other_path
        self.report: MergeReport = report
        self.path_map: dict[str, str] = {}  # their files.path -> the path here
        self.models: set[str] = set()  # models whose searchable data changed
        self.new_hashes: set[str] = set()  # content of the files that came
        self.root_paths: dict[int, str] = {}

    def run(self) -> None:
        self.roots()
        skip = self.model_rows()
        self.files()
        self.frames()
        self.results(skip)
        self.tags()
        self.store._bump(self.models)  # the FAISS cache sees new generations

    # ------------------------------------------------------------------------------- roots
    def their_roots(self) -> dict[int, str]:
        """Their root id -> where that root is: a root kept beside its database follows the
        database to where it is now."""
        if not _has(self.src, "roots"):
            return {}
        db_dir = os.path.dirname(os.path.abspath(self.other_path))
        out = {}
        for root_id, path, rel in self.src.execute("SELECT id, path, db_relative FROM roots"):
            out[root_id] = os.path.normpath(os.path.join(db_dir, rel)) if rel else path
        return out

    def roots(self) -> None:
        self.root_paths = self.their_roots()
        wanted = list(self.root_paths.values())
        if not _has(self.src, "roots"):  # from before schema 6: inferred as migration does
            folders = [f for (f,) in self.src.execute("SELECT DISTINCT folder FROM files")]
            wanted = roots.infer_roots(folders)
        self.report.roots_added = roots.add_roots(self.store.db, wanted, self.store.path)

    # ------------------------------------------------------------------------------ models
    def model_rows(self) -> set[str]:
        """Add their model sources; returns the models whose results must not come (another
        vector size here: the same name for another model)."""
        if _has(self.src, "models"):
            ours = dict(self.dst.execute("SELECT name, source FROM models").fetchall())
            for name, source, recorded in self.src.execute(
                "SELECT name, source, recorded_at FROM models"
            ).fetchall():
                if name not in ours:
                    self.dst.execute(
                        "INSERT INTO models (name, source, recorded_at) VALUES (?, ?, ?)",
                        [name, source, recorded],
                    )
                    self.report.models_added.append(name)
                elif ours[name] != source:
                    self.report.conflict(
                        kind="model source", model=name, ours=ours[name], theirs=source
                    )
        sql = "SELECT model, max(dim) FROM results GROUP BY model"
        ours_dim = dict(self.dst.execute(sql).fetchall())
        skip = set()
        for model, dim in self.src.execute(sql).fetchall():
            if model in ours_dim and ours_dim[model] != dim:
                skip.add(model)
                self.report.conflict(
                    kind="model vectors",
                    model=model,
                    ours=f"{ours_dim[model]} values",
                    theirs=f"{dim} values",
                )
        return skip

    # ------------------------------------------------------------------------------- files
    def files(self) -> None:
        ours_cols = set(_columns(self.dst, "files"))
        skip = {"id", "path", "folder", "root_id", "rel_path", "place_id"}
        cols = [c for c in _columns(self.src, "files") if c in ours_cols and c not in skip]
        has_rel = {"root_id", "rel_path"} <= set(_columns(self.src, "files"))
        places = "place_id" in ours_cols and "place_id" in _columns(self.src, "files")
        places = places and _has(self.src, "places") and _has(self.dst, "places")
        extra = ", root_id, rel_path" if has_rel else ", NULL, NULL"
        extra += ", place_id" if places else ", NULL"
        ours = dict(self.dst.execute("SELECT path, content_hash FROM files").fetchall())
        cur = self.src.execute(f"SELECT path{extra}, {', '.join(cols)} FROM files")
        hash_at = cols.index("content_hash")
        insert = (
            f"INSERT INTO files (path, folder, place_id, {', '.join(cols)})"
            f" VALUES (?, ?, ?, {', '.join('?' * len(cols))})"
        )
        place_ids: dict[int, int | None] = {}
        for rows in _batches(cur):
            new = []
            for their_path, root_id, rel, place_id, *values in rows:
                root = self.root_paths.get(root_id)
                path = os.path.join(root, rel) if root and rel else their_path
                self.path_map[their_path] = path
                have = ours.get(path)
                if have == values[hash_at]:
                    self.report.files_same += 1
                elif have is not None:
                    self.report.conflict(kind="path", path=path, ours=have, theirs=values[hash_at])
                else:
                    if place_id is not None and place_id not in place_ids:
                        place_ids[place_id] = self.place(place_id)
                    here = place_ids.get(place_id)
                    new.append((path, os.path.dirname(path), here, *values))
                    ours[path] = values[hash_at]
            if new:
                self.dst.executemany(insert, new)
                self.dst.executemany(
                    "DELETE FROM failures WHERE path = ?", [(row[0],) for row in new]
                )
                self.report.files_added += len(new)
                self.new_hashes |= {row[3 + hash_at] for row in new}

    def place(self, their_id: int) -> int | None:
        """Our id for their place (added when new), matched by label and country code."""
        cols = [c for c in _columns(self.src, "places") if c != "id"]
        cols = [c for c in cols if c in set(_columns(self.dst, "places"))]
        row = self.src.execute(
            f"SELECT {', '.join(cols)} FROM places WHERE id = ?", [their_id]
        ).fetchone()
        if row is None:
            return None
        values = dict(zip(cols, row, strict=True))
        find = "SELECT id FROM places WHERE label = ? AND country_code IS ?"
        key = [values.get("label"), values.get("country_code")]
        got = self.dst.execute(find, key).fetchone()
        if got is None:
            self.dst.execute(
                f"INSERT INTO places ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                row,
            )
            got = self.dst.execute(find, key).fetchone()
        return got[0] if got else None

    # -------------------------------------------------------------------------- keyframes
    def frames(self) -> None:
        """Video keyframe rows (and finished-video rows) of videos some file here has."""
        if not (_has(self.src, "video_frames") and _has(self.dst, "video_frames")):
            return
        have = {h for (h,) in self.dst.execute("SELECT DISTINCT content_hash FROM files")}
        for table, key in (("video_frames", "video_hash"), ("videos", "content_hash")):
            if not (_has(self.src, table) and _has(self.dst, table)):
                continue
            ours_cols = set(_columns(self.dst, table))
            cols = [c for c in _columns(self.src, table) if c in ours_cols]
            at = cols.index(key)
            marks = ", ".join("?" * len(cols))
            cur = self.src.execute(f"SELECT {', '.join(cols)} FROM [{table}]")
            for rows in _batches(cur):
                keep = [r for r in rows if r[at] in have]
                self.dst.executemany(
                    f"INSERT OR IGNORE INTO [{table}] ({', '.join(cols)}) VALUES ({marks})", keep
                )

    # ----------------------------------------------------------------------------- results
    def results(self, skip_models: set[str]) -> None:
        wanted = {h for (h,) in self.dst.execute("SELECT DISTINCT content_hash FROM files")}
        if _has(self.dst, "video_frames"):
            wanted |= {
                k
                for (k,) in self.dst.execute(
                    "SELECT frame_key FROM video_frames"
                    " WHERE video_hash IN (SELECT content_hash FROM files)"
                )
            }
        ours_cols = set(_columns(self.dst, "results"))
        cols = [c for c in _columns(self.src, "results") if c in ours_cols and c != "id"]
        edited = "generated_caption" in cols
        ours = {
            (h, m): (cap, gen)
            for h, m, cap, gen in self.dst.execute(
                "SELECT content_hash, model, caption, generated_caption FROM results"
            )
        }
        cur = self.src.execute(f"SELECT {', '.join(cols)} FROM results")
        insert = f"INSERT INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for rows in _batches(cur):
            new = []
            for row in rows:
                r = dict(zip(cols, row, strict=True))
                h, model = r["content_hash"], r["model"]
                if h not in wanted or model in skip_models:
                    continue
                if (h, model) not in ours:
                    new.append(row)
                    ours[(h, model)] = (r["caption"], r.get("generated_caption"))
                    self.models.add(model)
                    continue
                self.compare(r, *ours[(h, model)], edited)
            if new:
                self.dst.executemany(insert, new)
                self.report.results_added += len(new)
        # Files that came with no new result are still new hits of their models.
        self.models |= self.store._models_of_hashes(self.new_hashes)
        if _has(self.dst, "video_frames"):  # a video's results are under its keyframes' keys
            from indexer.store import frames

            self.models |= frames.models_of_videos(self.dst, self.new_hashes)

    def compare(self, theirs: dict, our_caption: str, our_generated: str | None, edited: bool):
        """The same content and model on both sides: which captions differ."""
        h, model = theirs["content_hash"], theirs["model"]
        their_generated = theirs.get("generated_caption") if edited else None
        their_user = theirs["caption"] if their_generated is not None else None
        our_user = our_caption if our_generated is not None else None
        gen_ours = our_generated if our_generated is not None else our_caption
        gen_theirs = their_generated if their_generated is not None else theirs["caption"]
        where = {"content_hash": h, "model": model, "path": self.a_path(h)}
        if gen_ours != gen_theirs:
            self.report.conflict(kind="caption", **where, ours=gen_ours, theirs=gen_theirs)
        if their_user is None or their_user == our_user:
            self.report.results_same += gen_ours == gen_theirs
            return
        if our_user is not None:
            self.report.conflict(kind="user caption", **where, ours=our_user, theirs=their_user)
            return
        # Their person's caption, our generated one kept beside it (as user_captions does).
        self.dst.execute(
            "UPDATE results SET generated_caption = caption, generated_caption_vec = caption_vec,"
            " caption = ?, caption_vec = ?, caption_edited_at = ?"
            " WHERE content_hash = ? AND model = ?",
            [their_user, theirs["caption_vec"], theirs.get("caption_edited_at"), h, model],
        )
        self.report.user_captions_added += 1
        self.models.add(model)

    def a_path(self, content_hash: str) -> str | None:
        row = self.dst.execute(
            "SELECT path FROM files WHERE content_hash = ? ORDER BY path LIMIT 1", [content_hash]
        ).fetchone()
        return row[0] if row else None

    # -------------------------------------------------------------------------------- tags
    def tags(self) -> None:
        """The photo tags of their files that came here, where we have none for the path."""
        if not (_has(self.src, "photo_tags") and _has(self.dst, "photo_tags")):
            return
        ours_cols = set(_columns(self.dst, "photo_tags"))
        cols = [c for c in _columns(self.src, "photo_tags") if c in ours_cols]
        at = cols.index("path")
        cur = self.src.execute(f"SELECT {', '.join(cols)} FROM photo_tags")
        sql = (
            f"INSERT INTO photo_tags ({', '.join(cols)})"
            f" SELECT {', '.join('?' * len(cols))} WHERE EXISTS"
            " (SELECT 1 FROM files WHERE path = ?) ON CONFLICT (path) DO NOTHING"
        )
        for rows in _batches(cur):
            batch = []
            for row in rows:
                row = list(row)
                row[at] = self.path_map.get(row[at], row[at])
                batch.append((*row, row[at]))
            before = self.dst.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
            self.dst.executemany(sql, batch)
            after = self.dst.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
            self.report.tags_added += after - before

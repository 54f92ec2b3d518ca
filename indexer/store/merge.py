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
  captions are a conflict: ours kept; a result of ours still waiting for its caption (`imgcap
  index --captions later`) takes theirs, and one of theirs still waiting brings nothing;
- models: where each model loads from (ours kept on a difference); a model whose vectors have
  another size here is a conflict and none of its results come;
- photo tags, video keyframes and place names come with the files that carry them; the text
  read in a picture (OCR) comes for content with a result here that was never read here.

Failures and runs stay behind (they describe the other machine's runs; the next `imgcap index`
here tries those files itself). The whole merge is one transaction under the writer lock, so
merging twice adds nothing, and an interrupted merge adds nothing at all.

The other database is not trusted (it may be damaged, or made by hand to reach outside the
library): it is only read, without a byte written beside it (no -wal or -shm: `_open_other`),
checked whole first (`PRAGMA integrity_check`: a damaged file merges nothing), and every row is
checked before it comes; a row that fails is skipped and reported (`MergeReport.skipped`), the
rest come:

- roots: absolute and normalised; a whole file system (`/`), a system folder (/etc, /proc, ...)
  or a folder above one of our roots is refused (our roots are never replaced) and every file
  under it is skipped; a folder below one of our roots adds no root, its files join ours (as
  `imgcap index SUBFOLDER` does);
- files: under one of their roots, the path rebuilt here from root + rel_path, which must be
  relative and normalised (no `..`) and agree with their stored path; a content hash is 32
  lowercase hex digits (`indexer.media.walk.content_hash`);
- results: keyed by a content hash or a keyframe key ("<hash>@<milliseconds>",
  `frames.frame_key`), vectors of `dim` float32 values, the model's `dim`;
- keyframe and video rows: keys of that form, agreeing with their video hash and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import StoreError, UsageError
from indexer.store import path_text, photo_tags, roots, schema
from indexer.store.cjk import fts_text
from indexer.store.database import Store
from indexer.store.errors import error_kind, store_error
from indexer.store.lock import writer_lock

BATCH = 500  # rows per executemany
CONFLICTS_KEPT = 1000  # conflicts listed in the report; the rest only counted
SKIPPED_KEPT = 1000  # skipped rows listed in the report; the rest only counted
# The content keys imgcap writes: indexer.media.walk.content_hash (BLAKE2b-128, hex) for a file,
# frames.frame_key ("<video hash>@<milliseconds>") for a video's keyframe.
CONTENT_HASH = re.compile(r"[0-9a-f]{32}")
FRAME_KEY = re.compile(r"([0-9a-f]{32})@(0|[1-9][0-9]*)")
# The operating system's own folders: no photo library lives there, and a root there would let a
# crafted database name /etc/passwd or /proc/self/environ as a photo. /run/media holds drives.
SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                  "/run", "/sbin", "/sys", "/usr")  # fmt: skip
USER_MOUNTS = ("/run/media",)


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
    captions_filled: int = 0  # ours waited for a caption (pending_captions.py); theirs had it
    tags_added: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    conflict_count: int = 0
    # Their roots not taken ({"root", "reason", "files": how many files under it were skipped}).
    roots_refused: list[dict[str, Any]] = field(default_factory=list)
    # Their rows that failed a check ({"table", "row": what identifies it, "reason"}).
    skipped: list[dict[str, Any]] = field(default_factory=list)
    skipped_count: int = 0

    def conflict(self, **row: Any) -> None:
        self.conflict_count += 1
        if len(self.conflicts) < CONFLICTS_KEPT:
            self.conflicts.append(row)

    def skip(self, table: str, row: Any, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < SKIPPED_KEPT:
            self.skipped.append({"table": table, "row": row, "reason": reason})

    @property
    def added_anything(self) -> bool:
        return bool(
            self.roots_added
            or self.models_added
            or self.files_added
            or self.results_added
            or self.user_captions_added
            or self.captions_filled
            or self.tags_added
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge(db_path: Path, other_path: Path) -> MergeReport:
    """Merge the database at `other_path` into the one at `db_path` (created if missing).

    StoreError: the other file is missing, damaged, not an imgcap database, or from a newer
    imgcap; or another run holds this database. UsageError: both are the same file."""
    db_path, other_path = Path(db_path), Path(other_path)
    if not other_path.is_file():
        raise StoreError(f"no database at {other_path}")
    if db_path.exists() and os.path.samefile(db_path, other_path):
        raise UsageError(f"{other_path} is this database; there is nothing to merge")
    with contextlib.ExitStack() as stack:
        try:
            src = stack.enter_context(_open_other(other_path))
        except sqlite3.Error as e:
            raise _other_error(e, other_path) from None
        except OSError as e:  # copying it with its log: a full temporary folder, ...
            raise StoreError(f"cannot read {other_path} ({e}); nothing was merged") from None
        report = _merge_from(db_path, src, other_path)
    return report


def _merge_from(db_path: Path, src: sqlite3.Connection, other_path: Path) -> MergeReport:
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
        _check_integrity(src, other_path)
        with writer_lock(db_path), Store.open(db_path) as store:
            report = MergeReport(str(other_path))
            try:
                with store.db.atomic():
                    _Merge(store, src, other_path, report).run()
            except sqlite3.Error as e:
                raise store_error(e, db_path) from None
            return report
    except sqlite3.Error as e:
        raise _other_error(e, other_path) from None


@contextlib.contextmanager
def _open_other(path: Path) -> Iterator[sqlite3.Connection]:
    """The other database, read without writing a byte beside it. A plain read-only open
    (mode=ro) of a WAL database creates its -wal and -shm files and leaves them there; so a file
    whose log is empty or gone (closed cleanly) is opened immutable, and one with commits still
    in its -wal or -journal (a run killed, a copy taken while imgcap wrote) is copied with its
    log into a private temporary folder, where SQLite recovers the log into the copy."""
    logs = [Path(f"{path}{suffix}") for suffix in ("-wal", "-journal")]
    pending = [log for log in logs if log.is_file() and log.stat().st_size > 0]
    with contextlib.ExitStack() as stack:
        if pending:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imgcap-merge-")))
            copy = folder / "other.db"
            shutil.copyfile(path, copy)
            for log in pending:
                shutil.copyfile(log, f"{copy}{log.name[len(path.name) :]}")
            uri = f"{copy.as_uri()}?mode=rw"
        else:
            uri = f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1"
        conn = path_text.prepare(sqlite3.connect(uri, uri=True))
        stack.callback(conn.close)
        yield conn


def _check_integrity(src: sqlite3.Connection, other_path: Path) -> None:
    """StoreError unless SQLite finds the whole file sound: a damaged page could hand the
    merge half a row, or stop it half-way with an error that names this database."""
    problems = [row[0] for row in src.execute("PRAGMA integrity_check(5)").fetchall()]
    if problems != ["ok"]:
        raise StoreError(_damaged(other_path, "; ".join(str(p) for p in problems)))


def _damaged(other_path: Path, detail: str) -> str:
    return (
        f"{other_path} is damaged (SQLite's integrity check: {detail}); nothing was merged."
        " Copy it again from the machine that made it"
    )


def _other_error(e: sqlite3.Error, other_path: Path) -> StoreError:
    if error_kind(e) == "SQLITE_CORRUPT":
        return StoreError(_damaged(other_path, str(e)))
    return store_error(e, other_path)


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
        self.root_paths: dict[int, str] = {}  # their root id -> where it is, for roots taken
        self.stored_roots: dict[int, str] = {}  # their root id -> the path their rows use
        self.refused: dict[int, dict[str, Any]] = {}  # their root id -> its report entry
        self.inferred: list[str] | None = None  # before schema 6: roots inferred from folders
        self.dims: dict[str, int] = {}  # model -> its vectors' size (ours, else theirs)

    def run(self) -> None:
        self.roots()
        skip = self.model_rows()
        self.files()
        self.frames()
        self.results(skip)
        self.tags()
        self.text()
        self.store._bump(self.models)  # the FAISS cache sees new generations

    # ------------------------------------------------------------------------------- roots
    def their_roots(self) -> dict[int, tuple[str, str]]:
        """Their root id -> (the path their rows use, where that root is): a root kept beside
        its database follows the database to where it is now. Before schema 6 (no roots) the
        roots are inferred from the folders as the migration infers them; ids are positions."""
        if not _has(self.src, "roots"):
            folders = [f for (f,) in self.src.execute("SELECT DISTINCT folder FROM files")]
            self.inferred = roots.infer_roots(f for f in folders if isinstance(f, str))
            return {i: (r, r) for i, r in enumerate(self.inferred)}
        db_dir = os.path.dirname(os.path.abspath(self.other_path))
        out = {}
        for root_id, path, rel in self.src.execute("SELECT id, path, db_relative FROM roots"):
            here = path
            if isinstance(rel, str) and rel and "\0" not in rel:
                here = os.path.normpath(os.path.join(db_dir, rel))
            out[root_id] = (path, here)
        return out

    def roots(self) -> None:
        """Take their roots that are safe here; refuse (and report) the others."""
        ours = [p for (p,) in self.dst.execute("SELECT path FROM roots")]
        wanted = []
        # Shortest first: of two nested roots of theirs, the inner one then adds nothing.
        for root_id, (stored, here) in sorted(
            self.their_roots().items(), key=lambda item: len(str(item[1][1]))
        ):
            problem = _root_problem(here, ours)
            if problem is None and not isinstance(stored, str):
                problem = "its stored path is not text"
            if problem is not None:
                entry = {"root": _shown(here), "reason": problem, "files": 0}
                self.refused[root_id] = entry
                self.report.roots_refused.append(entry)
                continue
            self.root_paths[root_id] = here
            self.stored_roots[root_id] = stored
            wanted.append(here)
        self.report.roots_added = roots.add_roots(self.store.db, wanted, self.store.path)

    def place_file(self, their_path: Any, root_id: Any, rel: Any) -> tuple[str | None, str]:
        """(the file's path here, "") for a file of theirs that stays inside its root, or
        (None, why not)."""
        if self.inferred is not None:  # before schema 6: the inferred root holding the path
            if not isinstance(their_path, str):
                return None, "its path is not text"
            root_id = max(
                (i for i, r in enumerate(self.inferred) if roots.inside_root(their_path, r)),
                key=lambda i: len(self.inferred[i]),
                default=None,
            )
            if root_id is None:
                return None, "its path is not absolute and normalised (or is a root itself)"
            rel = their_path[len(self.inferred[root_id].rstrip(roots.SEP)) + 1 :]
        if root_id in self.refused:
            self.refused[root_id]["files"] += 1
            return None, f"under the refused root {self.refused[root_id]['root']}"
        root = self.root_paths.get(root_id)
        if root is None:
            return None, "under no root"
        if not isinstance(rel, str) or not rel or "\0" in rel or os.path.isabs(rel):
            return None, f"its rel_path {_quoted(rel)} is not a path relative to its root"
        path = root.rstrip(roots.SEP) + roots.SEP + rel
        if not roots.inside_root(path, root):
            return None, f"its rel_path {_quoted(rel)} leaves its root or is not normalised"
        if their_path != self.stored_roots[root_id].rstrip(roots.SEP) + roots.SEP + rel:
            return None, f"its path and its rel_path {_quoted(rel)} disagree"
        return path, ""

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
        theirs_dim = self.src.execute(sql).fetchall()
        self.dims = {**dict(theirs_dim), **ours_dim}
        for model, dim in theirs_dim:
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
                path, problem = self.place_file(their_path, root_id, rel)
                problem = problem or _file_problem(dict(zip(cols, values, strict=True)))
                if path is None or problem:
                    self.report.skip("files", _shown(their_path), problem)
                    continue
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
                keep = []
                for r in rows:
                    if r[at] not in have:
                        continue
                    problem = _frame_problem(table, dict(zip(cols, r, strict=True)))
                    if problem:
                        key = "frame_key" if table == "video_frames" else "content_hash"
                        self.report.skip(table, _shown(r[cols.index(key)]), problem)
                        continue
                    keep.append(r)
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
        waiting = {  # ours still without a caption (pending_captions.py): theirs may have one
            (h, m)
            for h, m in self.dst.execute(
                "SELECT content_hash, model FROM results WHERE caption_pending IS NOT NULL"
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
                problem = _result_problem(r, self.dims.get(model))
                if problem:
                    self.report.skip("results", f"{_shown(h)} {_shown(model)}", problem)
                    continue
                if (h, model) not in ours:
                    new.append(row)
                    ours[(h, model)] = (r["caption"], r.get("generated_caption"))
                    self.models.add(model)
                    continue
                if r.get("caption_pending") is not None:
                    continue  # theirs waits for a caption: nothing to take, nothing to compare
                if (h, model) in waiting:
                    self.fill_caption(r, ours[(h, model)][1] is not None)
                    waiting.discard((h, model))
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

    def fill_caption(self, theirs: dict, ours_edited: bool) -> None:
        """Ours waits for a caption that theirs has (captioned on another machine): take it,
        generated caption, vector and their person's caption alike. A caption a person wrote
        here while ours waited stays, their generated one beneath it."""
        h, model = theirs["content_hash"], theirs["model"]
        gen = theirs.get("generated_caption")
        gen_vec = theirs.get("generated_caption_vec")
        if gen is None:
            gen, gen_vec = theirs["caption"], theirs["caption_vec"]
        if ours_edited:
            self.dst.execute(
                "UPDATE results SET generated_caption = ?, generated_caption_vec = ?,"
                " caption_pending = NULL WHERE content_hash = ? AND model = ?",
                [gen, gen_vec, h, model],
            )
        else:
            edited = theirs.get("generated_caption") is not None
            self.dst.execute(
                "UPDATE results SET caption = ?, caption_vec = ?, generated_caption = ?,"
                " generated_caption_vec = ?, caption_edited_at = ?, caption_pending = NULL"
                " WHERE content_hash = ? AND model = ?",
                [
                    theirs["caption"],
                    theirs["caption_vec"],
                    gen if edited else None,
                    gen_vec if edited else None,
                    theirs.get("caption_edited_at") if edited else None,
                    h,
                    model,
                ],
            )
        self.report.captions_filled += 1
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
                if row[at] not in self.path_map:  # tags come only with a file that came
                    continue
                row[at] = self.path_map[row[at]]
                if "words" in cols:  # theirs may predate m011: their CJK without bigrams
                    row[cols.index("words")] = _tag_words(row, cols)
                batch.append((*row, row[at]))
            before = self.dst.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
            self.dst.executemany(sql, batch)
            after = self.dst.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
            self.report.tags_added += after - before

    def text(self) -> None:
        """The text read in their pictures (OCR), for content keys that have a result here and
        were never read here; only well-formed rows (their database is untrusted input)."""
        if not (_has(self.src, "text_reads") and _has(self.dst, "text_reads")):
            return
        wanted = {k for (k,) in self.dst.execute("SELECT DISTINCT content_hash FROM results")}
        wanted -= {k for (k,) in self.dst.execute("SELECT content_hash FROM text_reads")}
        if not wanted:
            return
        reads = self.src.execute(
            "SELECT content_hash, text, lines, reader, problem, read_at FROM text_reads"
        )
        for rows in _batches(reads):
            keep = [r for r in rows if r[0] in wanted and _text_read_ok(r)]
            self.dst.executemany(
                "INSERT OR IGNORE INTO text_reads (content_hash, text, words, lines, reader,"
                " problem, read_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(k, text, fts_text(text), *rest) for k, text, *rest in keep],
            )
        lines = self.src.execute("SELECT content_hash, line, text, confidence, box FROM text_lines")
        for rows in _batches(lines):
            keep = [r for r in rows if r[0] in wanted and _text_line_ok(r)]
            self.dst.executemany(
                "INSERT OR IGNORE INTO text_lines (content_hash, line, text, confidence, box)"
                " VALUES (?, ?, ?, ?, ?)",
                keep,
            )


def _text_read_ok(row: tuple) -> bool:
    _, text, lines, *notes = row
    return (
        isinstance(text, str)
        and isinstance(lines, int)
        and lines >= 0
        and all(n is None or isinstance(n, str) for n in notes)
    )


def _text_line_ok(row: tuple) -> bool:
    _, line, text, confidence, box = row
    if not (isinstance(line, int) and isinstance(text, str) and isinstance(box, str)):
        return False
    if not isinstance(confidence, int | float):
        return False
    try:
        corners = json.loads(box)
    except ValueError:
        return False
    return (
        isinstance(corners, list)
        and len(corners) == 8
        and all(isinstance(v, int | float) and 0 <= v <= 1 for v in corners)
    )


def _tag_words(row: list, cols: list[str]) -> Any:
    """A merged tag row's keyword text as this imgcap writes it (with CJK bigrams), from its
    tags and description; their own text when those don't read as tags."""
    words = row[cols.index("words")]
    if "tags" not in cols:
        return words
    description = row[cols.index("description")] if "description" in cols else None
    try:
        tags = json.loads(row[cols.index("tags")])
    except (TypeError, ValueError):
        return words
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return words
    return photo_tags.words(tags, description if isinstance(description, str) else None)


# ------------------------------------------------------------------------------ row checks
def _shown(value: Any) -> str:
    """A value of theirs as the report shows it: text as a person reads it, anything else as
    Python writes it (a hostile row may hold a number or bytes where a path belongs)."""
    if not isinstance(value, str):
        return repr(value)
    try:  # bytes of a file name that are not UTF-8 as \xe9
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    except UnicodeError:
        return value.encode("utf-8", "backslashreplace").decode()


def _quoted(value: Any) -> str:
    return f"'{_shown(value)}'" if isinstance(value, str) else _shown(value)


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and CONTENT_HASH.fullmatch(value) is not None


def _root_problem(path: Any, ours: list[str]) -> str | None:
    """Why a root of theirs can't be taken here, or None. A root below one of ours is fine: its
    files join our root."""
    if not isinstance(path, str) or "\0" in path:
        return "its path is not text"
    if not os.path.isabs(path) or os.path.normpath(path) != path:
        return "it is not an absolute, normalised folder path"
    if roots.is_whole_volume(path):
        return "it is a whole file system; its files were skipped"
    system = [f for f in SYSTEM_FOLDERS if roots.under(path, f)]
    if system and not roots.under_any(path, USER_MOUNTS):
        return (
            f"it is in the system folder {system[0]}, not a photo library; its files were skipped"
        )
    held = sorted(o for o in ours if o != path and roots.under(o, path))
    if held:
        return (
            f"it holds this database's root {_shown(held[0])}, and our roots are never"
            " replaced; its files were skipped"
        )
    return None


def _file_problem(row: dict[str, Any]) -> str:
    """Why a file row of theirs (beyond its path) can't come, or ""."""
    h = row.get("content_hash")
    if not _is_hash(h):
        return f"its content hash {_quoted(h)} is not one imgcap writes (32 hex digits)"
    for column in ("size", "mtime_ns"):
        if column in row and not isinstance(row[column], int):
            return f"its {column} {_quoted(row[column])} is not a number"
    return ""


def _frame_problem(table: str, row: dict[str, Any]) -> str:
    """Why a keyframe or finished-video row of theirs can't come, or ""."""
    if table == "videos":
        return "" if _is_hash(row.get("content_hash")) else "its content hash is not imgcap's"
    key = row.get("frame_key")
    m = FRAME_KEY.fullmatch(key) if isinstance(key, str) else None
    if m is None:
        return "its keyframe key is not one imgcap writes (<content hash>@<milliseconds>)"
    if (m.group(1), int(m.group(2))) != (row.get("video_hash"), row.get("at_ms")):
        return "its keyframe key does not match its video and time"
    return ""


def _result_problem(row: dict[str, Any], dim: int | None) -> str:
    """Why a result row of theirs can't come, or ""."""
    h = row["content_hash"]
    if not (_is_hash(h) or (isinstance(h, str) and FRAME_KEY.fullmatch(h))):
        return "its content key is not one imgcap writes"
    if not isinstance(row.get("caption"), str):
        return "its caption is not text"
    if not isinstance(row.get("dim"), int) or row["dim"] != dim:
        return f"its vectors' size {_quoted(row.get('dim'))} is not the model's {dim}"
    for column in ("image_vec", "caption_vec", "generated_caption_vec"):
        vec = row.get(column)
        if column == "generated_caption_vec" and vec is None:
            continue
        if not isinstance(vec, bytes) or len(vec) != 4 * dim:
            return f"its {column} is not {dim} float32 values"
    return ""

"""Index roots: the folders photos are stored relative to (schema 6: `roots`, files.root_id and
files.rel_path).

Where a photo is, for good, is (files.root_id, files.rel_path). `files.path` stays the absolute
path derived from them (the root's path + os.sep + rel_path) because search, serve, export,
write-back, status and the failures list read it; it is rewritten, with every other table's
`path` under the root, in ONE transaction whenever a root moves:

- `imgcap roots move OLD NEW` (`move_root`): a drive mounted elsewhere, a folder renamed;
- a database kept inside its root (`imgcap index --db-here`: ROOT/.imgcap/imgcap.db) opened from
  a new place (`follow`): such a root is also stored relative to the database's folder
  (`roots.db_relative`, "..") and the pair travels together.

Roots are disjoint folders. Indexing a folder under a root adds none; indexing a folder above
some roots absorbs them (their files get the longer rel_path). New file rows find their root by
trigger (the longest root that is a prefix of the path), so every writer (the pipeline, merge,
the Ray runner) fills root_id/rel_path without knowing about roots; a file under no root keeps
root_id NULL and its absolute path, as before schema 6.

rel_path uses the separator of the system that wrote it: a database moves between machines and
drive letters, not between Windows and POSIX.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlite_utils import Database

from indexer.errors import UsageError
from indexer.store.errors import store_error, translated
from indexer.store.path_text import encode, stored_length
from indexer.store.records import now_iso

SEP = os.sep
DB_FOLDER = ".imgcap"  # config.DB_HERE's folder: a database in it travels with its root

# Folders that hold mounted drives: an inferred root never goes above the drive's own folder
# (/media/USER/DRIVE, /Volumes/DRIVE, ...), so `roots move` can repoint one drive at a time.
_MOUNT_PARENTS = (("media",), ("run", "media"), ("mnt",), ("Volumes",), ("home",), ("Users",))


def create(db: Database) -> None:
    """The table, the files columns and triggers, and roots inferred for the files already
    indexed (schema migration 6; one transaction with it)."""
    if not db["roots"].exists():
        db["roots"].create(
            {
                "id": int,
                "path": str,  # absolute, where the root is now (symlinks kept, as typed)
                "db_relative": str,  # the root relative to the database's folder, or NULL
                "added_at": str,
            },
            pk="id",
            not_null={"path"},
        )
        db["roots"].create_index(["path"], unique=True)
    columns = {c.name for c in db["files"].columns}
    if "root_id" not in columns:
        db["files"].add_column("root_id", int)
    if "rel_path" not in columns:
        db["files"].add_column("rel_path", str)
    db.execute("CREATE INDEX IF NOT EXISTS idx_files_root ON files (root_id, rel_path)")
    # A new path (or a rewritten one) finds its root: the longest root that is its prefix, in
    # one UPDATE (no matching root: no row, both NULL). rtrim keeps a root of "/" (or "C:\\")
    # from needing a doubled separator.
    stem = f"rtrim(path, '{SEP}')"
    find = (
        f"(SELECT id, substr(NEW.path, length({stem}) + 2) FROM roots"
        f" WHERE substr(NEW.path, 1, length({stem}) + 1) = {stem} || '{SEP}'"
        " ORDER BY length(path) DESC LIMIT 1)"
    )
    for name, event, when in (
        ("files_root_insert", "INSERT", "WHEN NEW.root_id IS NULL"),
        ("files_root_path", "UPDATE OF path", ""),
    ):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON files {when} BEGIN"
            f" UPDATE files SET (root_id, rel_path) = {find} WHERE id = NEW.id; END"
        )
    folders = [f for (f,) in db.execute("SELECT DISTINCT folder FROM files WHERE root_id IS NULL")]
    add_roots(db, infer_roots(folders), _db_file(db.conn))


# ------------------------------------------------------------------------------- pure rules
def under(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip(SEP) + SEP)


def under_any(path: str, roots: Iterable[str]) -> bool:
    return any(under(path, root) for root in roots)


def is_whole_volume(root: str) -> bool:
    """Whether `root` is a file system's top (`/`, `C:\\`): a root that would hold everything."""
    return os.path.dirname(root) == root


def inside_root(path: str, root: str) -> bool:
    """Whether `path` lies strictly below `root` as written: both absolute and normalised (no
    `..`, `.` or doubled separators, no NUL), and `path` starts with the root and a separator.
    Pure string rules, no file system access (see `outside_roots` for symlinks)."""
    if not (isinstance(path, str) and isinstance(root, str)) or "\0" in path or "\0" in root:
        return False
    if not (os.path.isabs(path) and os.path.isabs(root)):
        return False
    if os.path.normpath(path) != path or os.path.normpath(root) != root:
        return False
    return path.startswith(root.rstrip(SEP) + SEP)


def outside_roots(
    path: str, roots: Iterable[str], *, follow_last: bool = True, resolve: bool = True
) -> str | None:
    """Why a file named by a database row must not be read, written or served, or None when it
    may: it lies inside one of `roots` as written (`inside_root`) and where it really is (its
    real path, symlinks resolved, inside the real path of one of the roots), and that root is
    not a whole file system. The one guard for every code path that touches a file because a
    row names it, so a row that got in some other way (a hand-edited database, a merge by an
    older imgcap) still cannot reach outside the library. A file that does not exist yet (a
    sidecar to create) is checked through its folder; `follow_last=False` resolves only the
    folders (the file itself, if a link, is the caller's to judge); `resolve=False` checks the
    path as written only (reading a file the walk indexed through a symlinked folder)."""
    roots = [r for r in roots if isinstance(r, str)]
    whole = [r for r in roots if is_whole_volume(r)]
    roots = [r for r in roots if r not in whole]
    if not any(inside_root(path, r) for r in roots):
        if any(inside_root(path, r) for r in whole):
            # Such a root holds every file there is: as a guard it would guard nothing.
            return f"its root {whole[0]} is a whole file system; index the photo folders instead"
        return "it is outside every index root (a damaged or hand-made database row)"
    if not resolve:
        return None
    if follow_last:
        real = os.path.realpath(path)
    else:
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    # A real path (no links left in it) below a root as written is below that root for real;
    # only otherwise are the roots' own real paths needed (a root that is itself a link).
    if not any(inside_root(real, r) for r in roots) and not any(
        inside_root(real, os.path.realpath(r)) for r in roots
    ):
        return f"it leads outside every index root through a symlink (to {real})"
    return None


def infer_roots(folders: Iterable[str]) -> list[str]:
    """Roots for files indexed before roots were recorded: per top-level folder (per drive
    below /media, /mnt, /Volumes, per user below /home; per drive letter on Windows), the
    deepest folder that holds all its files."""
    common: dict[str, str] = {}
    for folder in folders:
        if not folder:
            continue
        key = _volume(folder)
        have = common.get(key)
        common[key] = folder if have is None else os.path.commonpath([have, folder])
    return sorted(set(common.values()))


def _volume(folder: str) -> str:
    drive, rest = os.path.splitdrive(folder)
    parts = [p for p in rest.split(SEP) if p]
    if drive:
        return drive
    for prefix in _MOUNT_PARENTS:
        n = len(prefix)
        if tuple(parts[:n]) == prefix and len(parts) > n:
            # /media/USER/DRIVE and /run/media/USER/DRIVE: the drive, not the user
            depth = n + (2 if prefix[-1] == "media" else 1)
            return SEP + SEP.join(parts[:depth])
    return SEP + (parts[0] if parts else "")


def db_relative(root: str, db_path: Path | str) -> str | None:
    """The root relative to the database's folder when the database is kept inside the root
    the way `index --db-here` keeps it (ROOT/.imgcap/imgcap.db -> ".."), so the two travel
    together; else None. Only a `.imgcap` folder counts: a default database that happens to
    lie under an indexed home folder must not drag the root along when it is copied away."""
    if not db_path:
        return None  # an in-memory database
    db_dir = os.path.dirname(os.path.abspath(db_path))
    if os.path.basename(db_dir) != DB_FOLDER or not under(db_dir, root):
        return None
    return os.path.relpath(root, db_dir)


def folders_of(paths: Iterable[str]) -> list[str]:
    """The root folder of each index argument: a folder itself, a file's folder."""
    return [p if os.path.isdir(p) else os.path.dirname(p) for p in paths]


# -------------------------------------------------------------------------------- writes
def add_roots(db: Database, folders: Iterable[str], db_path: Path | str) -> list[str]:
    """Record absolute `folders` as roots (the caller holds the writer lock; one transaction,
    or a savepoint in the caller's). A folder under a root adds nothing; one above roots absorbs
    them. Files under no root that lie below a new root join it. Returns the roots added."""
    try:
        return _add_roots(db, folders, db_path)
    except sqlite3.Error as e:
        raise store_error(e, db_path) from None


def _add_roots(db: Database, folders: Iterable[str], db_path: Path | str) -> list[str]:
    added: list[str] = []
    with db.atomic():
        for folder in folders:
            folder = os.path.normpath(folder)
            roots = dict(db.execute("SELECT path, id FROM roots").fetchall())
            if any(under(folder, r) for r in roots):
                continue
            cur = db.execute(
                "INSERT INTO roots (path, db_relative, added_at) VALUES (?, ?, ?)",
                [folder, db_relative(folder, db_path), now_iso()],
            )
            new_id = cur.lastrowid
            for inner, inner_id in roots.items():
                if under(inner, folder):
                    prefix = os.path.relpath(inner, folder)
                    db.execute(
                        "UPDATE files SET root_id = ?, rel_path = ? || rel_path WHERE root_id = ?",
                        [new_id, prefix + SEP, inner_id],
                    )
                    db.execute("DELETE FROM roots WHERE id = ?", [inner_id])
            stem = folder.rstrip(SEP) + SEP
            db.execute(
                "UPDATE files SET root_id = ?, rel_path = substr(path, ?)"
                " WHERE root_id IS NULL AND substr(path, 1, ?) = ?",
                [new_id, stored_length(stem) + 1, stored_length(stem), stem],
            )
            added.append(folder)
    return added


def repoint(db: Database | sqlite3.Connection, root_id: int, old: str, new: str) -> int:
    """Move root `root_id` from `old` to `new`: the root, its files' paths and folders, and the
    `path` of every other table (failures, photo tags, ...) under it. The caller holds a
    transaction. Returns the number of photos whose path changed."""
    run = db.execute
    run("UPDATE roots SET path = ? WHERE id = ?", [new, root_id])
    old_stem, new_stem = old.rstrip(SEP) + SEP, new.rstrip(SEP) + SEP
    # The path trigger recomputes root_id/rel_path: the same root, the same rel_path.
    cur = run(
        "UPDATE files SET path = ? || rel_path,"
        " folder = CASE WHEN folder = ? THEN ? ELSE ? || substr(folder, ?) END"
        " WHERE root_id = ?",
        [new_stem, old, new, new_stem, stored_length(old_stem) + 1, root_id],
    )
    moved = cur.rowcount
    for table in _path_tables(db):
        # OR REPLACE: a stale row already at the new path gives way to the moved one.
        run(
            f"UPDATE OR REPLACE [{table}] SET path = ? || substr(path, ?)"
            " WHERE substr(path, 1, ?) = ?",
            [new_stem, stored_length(old_stem) + 1, stored_length(old_stem), old_stem],
        )
    return moved


def _path_tables(db: Database | sqlite3.Connection) -> list[str]:
    """Tables other than `files` with a `path` column (failures, photo_tags, and whatever
    later schema steps key by path): their rows under a moved root move with it."""
    names = [
        n
        for (n,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
        ).fetchall()
        if n not in ("files", "roots") and not n.startswith(("sqlite_", "_"))
    ]
    return [
        n
        for n in names
        if "path" in {row[1] for row in db.execute(f"PRAGMA table_info([{n}])").fetchall()}
    ]


def moves_needed(conn: sqlite3.Connection, db_path: Path | str) -> list[tuple[int, str, str]]:
    """(root_id, stored path, where it is now) for roots that travel with the database and
    whose stored path is not where the database's folder now puts them."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'roots'").fetchone():
        return []  # a database from before schema 6, read as it is
    db_dir = os.path.dirname(os.path.abspath(db_path))
    out = []
    for root_id, path, rel in conn.execute(
        "SELECT id, path, db_relative FROM roots WHERE db_relative IS NOT NULL"
    ).fetchall():
        now = os.path.normpath(os.path.join(db_dir, rel))
        if now != path:
            out.append((root_id, path, now))
    return out


def follow(db: Database, db_path: Path | str) -> int:
    """Writers' open: repoint the roots that travel with the database to where it is now (one
    transaction). Returns the number of roots repointed."""
    moves = moves_needed(db.conn, db_path)
    if moves:
        with db.atomic():
            for root_id, old, new in moves:
                repoint(db, root_id, old, new)
    return len(moves)


def shadow(conn: sqlite3.Connection, moves: list[tuple[int, str, str]]) -> None:
    """Make one read-only connection see moved roots: a TEMP view per table with paths, named
    like the table, which SQLite resolves before the main schema's (same columns, rowid kept
    for FTS joins). Nothing is written to the database file."""

    def lit(text: str) -> str:  # SQL text is not a parameter: no adapter stores it
        return "'" + encode(text).replace("'", "''") + "'"

    def length(root: str) -> int:
        return stored_length(root.rstrip(SEP))

    def moved(column: str) -> str:  # a path under an old root, rewritten to the new one
        cases = " ".join(
            f"WHEN {column} = {lit(old)} THEN {lit(new)}"
            f" WHEN substr({column}, 1, {length(old) + 1}) = {lit(old.rstrip(SEP) + SEP)}"
            f" THEN {lit(new.rstrip(SEP) + SEP)} || substr({column}, {length(old) + 2})"
            for _, old, new in moves
        )
        return f"CASE {cases} ELSE {column} END"

    root_path = "CASE " + " ".join(f"WHEN id = {i} THEN {lit(new)}" for i, _, new in moves)
    rewrite = {
        "files": {"path": moved("path"), "folder": moved("folder")},
        "roots": {"path": root_path + " ELSE path END"},
    }
    for table in ["files", "roots", *_path_tables(conn)]:
        cols = [row[1] for row in conn.execute(f"PRAGMA main.table_info([{table}])")]
        exprs = rewrite.get(table, {"path": moved("path")})
        select = ", ".join(f"{exprs.get(c, f'[{c}]')} AS [{c}]" for c in cols)
        conn.execute(
            f"CREATE TEMP VIEW IF NOT EXISTS [{table}] AS"
            f" SELECT rowid AS rowid, {select} FROM main.[{table}]"
        )


def move_root(db: Database, db_path: Path | str, old: str, new: str) -> dict:
    """`imgcap roots move`: repoint the root at `old` to the existing folder `new` (absolute),
    one transaction, no model work. UsageError for an unknown root or a clash with another."""
    old, new = os.path.normpath(old), os.path.normpath(new)
    roots = dict(db.execute("SELECT path, id FROM roots").fetchall())
    if old not in roots:
        known = ", ".join(sorted(roots)) or "none"
        raise UsageError(f"{old} is not an index root (roots: {known}; see `imgcap roots`)")
    if not os.path.isdir(new):
        raise UsageError(f"{new} is not a folder here; mount or create it first")
    root_id = roots[old]
    for other in roots:
        if other not in (old, new) and (under(new, other) or under(other, new)):
            raise UsageError(f"{new} overlaps the index root {other}; roots cannot nest")
    merging = new != old and new in roots  # NEW was indexed already: one root of the two
    rels = [r for (r,) in db.execute("SELECT rel_path FROM files WHERE root_id = ?", [root_id])]
    if merging:  # OLD's photos indexed at NEW too keep NEW's rows: not repointed
        taken = {
            r for (r,) in db.execute("SELECT rel_path FROM files WHERE root_id = ?", [roots[new]])
        }
        rels = [r for r in rels if r not in taken]
    with db.atomic():
        if merging:
            photos = _merge(db, root_id, roots[new], old, new)
        else:
            photos = repoint(db, root_id, old, new) if new != old else 0
        db.execute(
            "UPDATE roots SET db_relative = ? WHERE id = ?", [db_relative(new, db_path), root_id]
        )
    found = sum(os.path.exists(os.path.join(new, r)) for r in rels)
    return {"root": root_id, "from": old, "to": new, "photos": photos, "found": found}


def _merge(db: Database, root_id: int, into_id: int, old: str, new: str) -> int:
    """Move root `root_id` onto the root `into_id`, which is at `new` already (the moved folder
    was indexed at its new place before `roots move`). A photo indexed at both places keeps its
    row at NEW (read from the file there); OLD's other rows are repointed. Caller holds a
    transaction. Returns the number of photos whose path changed."""
    run = db.execute
    old_stem, new_stem = old.rstrip(SEP) + SEP, new.rstrip(SEP) + SEP
    run(
        "DELETE FROM files WHERE root_id = ?"
        " AND ? || rel_path IN (SELECT path FROM files WHERE root_id = ?)",
        [root_id, new_stem, into_id],
    )
    for table in _path_tables(db):
        run(
            f"DELETE FROM [{table}] WHERE substr(path, 1, ?) = ?"
            f" AND ? || substr(path, ?) IN (SELECT path FROM [{table}])",
            [stored_length(old_stem), old_stem, new_stem, stored_length(old_stem) + 1],
        )
    run("DELETE FROM roots WHERE id = ?", [into_id])
    moved = repoint(db, root_id, old, new)
    run("UPDATE files SET root_id = ? WHERE root_id = ?", [root_id, into_id])
    return moved


def drop_root(db: Database, root_id: int, root: str) -> None:
    """Delete the root and every row keyed by a path under it in the tables other than `files`
    (failures, photo tags, ...). The caller deletes the files' rows first (the Store does, to
    bump the vector generations) and holds the transaction."""
    stem = root.rstrip(SEP) + SEP
    for table in _path_tables(db):
        db.execute(
            f"DELETE FROM [{table}] WHERE substr(path, 1, ?) = ?", [stored_length(stem), stem]
        )
    db.execute("DELETE FROM roots WHERE id = ?", [root_id])


# --------------------------------------------------------------------------------- reads
def root_ids(conn: sqlite3.Connection) -> dict[str, int]:
    """root path -> id."""
    return dict(conn.execute("SELECT path, id FROM roots").fetchall())


@translated
def root_folders(conn: sqlite3.Connection) -> list[str]:
    """Every root's path, cheaply (the gallery asks once per file it sends); [] for a database
    from before schema 6, which records none."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'roots'").fetchone():
        return []
    return [p for (p,) in conn.execute("SELECT path FROM roots")]


def find_root(conn: sqlite3.Connection, root: str) -> int:
    """The id of the root at `root` (absolute, normalised); UsageError naming the roots else."""
    roots = root_ids(conn)
    if root not in roots:
        known = ", ".join(sorted(roots)) or "none"
        raise UsageError(f"{root} is not an index root (roots: {known}; see `imgcap roots`)")
    return roots[root]


def root_files(conn: sqlite3.Connection, root_id: int) -> dict[str, tuple[int, int, str]]:
    """rel_path -> (size, mtime_ns, content_hash) of every indexed file under a root."""
    rows = conn.execute(
        "SELECT rel_path, size, mtime_ns, content_hash FROM files WHERE root_id = ?", [root_id]
    )
    return {rel: (size, mtime, h) for rel, size, mtime, h in rows}


def root_paths(conn: sqlite3.Connection, root_id: int) -> list[tuple[str, str]]:
    """(path, content_hash) of every indexed file under a root."""
    return conn.execute(
        "SELECT path, content_hash FROM files WHERE root_id = ?", [root_id]
    ).fetchall()


def shared_content(conn: sqlite3.Connection, root_id: int, folder: str) -> tuple[int, int]:
    """(how many of the root's files have content that a file under `folder` has too, how
    many files the root has)."""
    stem = folder.rstrip(SEP) + SEP
    # A range on the indexed path instead of substr(): "below folder" is [folder/, folder0).
    return conn.execute(
        "SELECT count(*) FILTER (WHERE content_hash IN (SELECT content_hash FROM files"
        " WHERE path >= ? AND path < ?)), count(*) FROM files WHERE root_id = ?",
        [stem, stem[:-1] + chr(ord(SEP) + 1), root_id],
    ).fetchone()


def root_contents(conn: sqlite3.Connection, root_id: int, root: str) -> dict[str, int]:
    """What dropping a root drops: its photos, the failures and photo-tag rows under it, and how
    many of its photos carry a caption a person wrote (kept: see Store.collect_garbage)."""
    stem = root.rstrip(SEP) + SEP
    count = {
        "photos": conn.execute(
            "SELECT count(*) FROM files WHERE root_id = ?", [root_id]
        ).fetchone()[0]
    }
    for table, key in (("failures", "failures"), ("photo_tags", "tagged")):
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [table]).fetchone()
        count[key] = (
            conn.execute(
                f"SELECT count(*) FROM [{table}] WHERE substr(path, 1, ?) = ?",
                [stored_length(stem), stem],
            ).fetchone()[0]
            if has
            else 0
        )
    edited = "caption_edited_at" in {r[1] for r in conn.execute("PRAGMA table_info(results)")}
    count["your_captions"] = (
        conn.execute(
            "SELECT count(*) FROM results WHERE caption_edited_at IS NOT NULL AND content_hash"
            " IN (SELECT content_hash FROM files WHERE root_id = ?)",
            [root_id],
        ).fetchone()[0]
        if edited
        else 0
    )
    return count


def paths_by_root(conn: sqlite3.Connection) -> dict[str | None, list[str]]:
    """root path (None: under no root) -> the indexed paths under it."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'roots'").fetchone():
        return {None: [p for (p,) in conn.execute("SELECT path FROM files")]}
    out: dict[str | None, list[str]] = {}
    rows = conn.execute("SELECT r.path, f.path FROM files f LEFT JOIN roots r ON r.id = f.root_id")
    for root, path in rows:
        out.setdefault(root, []).append(path)
    return out


@dataclass(frozen=True, slots=True)
class Root:
    id: int
    path: str
    photos: int  # indexed files under it
    exists: bool  # whether the folder is there now, on this machine
    db_relative: str | None  # set when it travels with the database

    def to_dict(self) -> dict:
        return asdict(self)


def list_roots(conn: sqlite3.Connection) -> tuple[list[Root], int]:
    """The roots, and the number of indexed files under none (written by a caller that never
    recorded a root)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'roots'").fetchone():
        return [], conn.execute("SELECT count(*) FROM files").fetchone()[0]
    rows = conn.execute(
        "SELECT r.id, r.path, r.db_relative, (SELECT count(*) FROM files f WHERE f.root_id = r.id)"
        " FROM roots r ORDER BY r.path"
    ).fetchall()
    loose = conn.execute("SELECT count(*) FROM files WHERE root_id IS NULL").fetchone()[0]
    return [Root(i, p, n, os.path.isdir(p), rel) for i, p, rel, n in rows], loose


# ------------------------------------------------------------------------------ helpers
def _db_file(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""

"""The schema: numbered migrations, the schema version, and which files are imgcap databases.

The version lives in the file header (`PRAGMA user_version`) and the file is marked as ours by
`PRAGMA application_id`, both written in the same transaction as the migration they describe.
Schema version N means MIGRATIONS[:N] have run. Databases made before versions were recorded
(application_id 0, only `m001_initial` in sqlite-utils' `_sqlite_migrations`) are version 1.

- older version: migrated forward by the writer (`imgcap index`); readers read it as it is;
- newer version: refused by everyone, since its columns may mean something this imgcap does not
  know;
- not ours: refused, so imgcap never adds its tables to some other application's database;
  an empty SQLite file (no tables) is fine and becomes an imgcap database.

m001 is still recorded in `_sqlite_migrations` by sqlite-utils: imgcap releases before schema
versions look there, and re-running m001 on an existing database would fail.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from indexer.errors import StoreError

APPLICATION_ID = 0x696D6763  # "imgc": `file` and sqlite3 show it; 0 = an unmarked SQLite file

migrations = Migrations("imgcap")


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


def m002_models(db: Database) -> None:
    # Where each stored model name was loaded from, so `imgcap search` can load the same query
    # encoder without --model: an absolute model directory, or a registry name.
    db["models"].create({"name": str, "source": str, "recorded_at": str}, pk="name")


def m003_user_captions(db: Database) -> None:
    # A person's caption (imgcap serve, caption-set) replaces `caption`/`caption_vec`, so search,
    # FTS and export read one column; the model's own ones move here (NULL = never edited).
    # indexer/store/user_captions.py writes them.
    db["results"].add_column("generated_caption", str)
    db["results"].add_column("generated_caption_vec", bytes)
    db["results"].add_column("caption_edited_at", str)


def m004_photo_tags(db: Database) -> None:
    # The user's own tags and descriptions per photo (not per content: two copies can
    # carry different tags), read at index time; see indexer/store/photo_tags.py.
    from indexer.store import photo_tags

    photo_tags.create(db)


def m005_places(db: Database) -> None:
    # Place names from EXIF GPS (offline reverse geocoding at index time): search, --place,
    # query understanding, export; see indexer/store/places.py. The next index run names the
    # places of photos indexed before (their GPS is already stored).
    from indexer.store import places

    places.create(db)


def m006_roots(db: Database) -> None:
    # Index roots and root-relative paths, so a database travels with its photos: `roots`,
    # files.root_id + files.rel_path (filled by trigger), roots inferred for rows already
    # indexed; see indexer/store/roots.py.
    from indexer.store import roots

    roots.create(db)


def m007_video_frames(db: Database) -> None:
    # Videos indexed by keyframe: each keyframe is a result under its own content key, mapped to
    # its video and time; a video is done for a model once every keyframe has that model's
    # result. See indexer/store/frames.py.
    from indexer.store import frames

    frames.create(db)


def m008_vector_log(db: Database) -> None:
    # Which results' vectors changed, by triggers on `results`, so the FAISS cache adds and
    # masks rows incrementally instead of rebuilding; see indexer/store/vector_log.py.
    from indexer.store import vector_log

    vector_log.create(db)


def m009_pixel_hash(db: Database) -> None:
    # files.pixel_hash: the image data's hash with metadata left out (indexer/media/pixel_hash.py;
    # NULL = not known: another format, or indexed before), so a metadata-only edit reuses the
    # results. results.caption_review: when the pixels changed under a person's caption (ISO
    # time; NULL otherwise), kept for them to review; see indexer/store/user_captions.py.
    # Idempotent, as m004-m008 are: a file whose version number was set back keeps its columns.
    if "pixel_hash" not in db["files"].columns_dict:
        db["files"].add_column("pixel_hash", str)
    db["files"].create_index(["pixel_hash"], if_not_exists=True)
    if "caption_review" not in db["results"].columns_dict:
        db["results"].add_column("caption_review", str)


def m010_similar_groups(db: Database) -> None:
    # files.perceptual_hash: a 64-bit DCT hash of the picture (indexer/media/perceptual_hash.py;
    # NULL = not computed yet: a video, or a photo indexed before, which the next run decodes for
    # it without model work). similar_groups: content hash -> the content hash of its group's
    # original, for contents in a group of near-duplicates (indexer/run/similar.py), rebuilt at
    # the end of each completed index run; a content in no group has no row.
    if "perceptual_hash" not in db["files"].columns_dict:
        db["files"].add_column("perceptual_hash", int)
    db.execute(
        "CREATE TABLE IF NOT EXISTS similar_groups (content_hash TEXT PRIMARY KEY,"
        " group_key TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS similar_groups_key ON similar_groups (group_key)")


def m011_cjk_fts(db: Database) -> None:
    # Chinese, Japanese and Korean tags and descriptions are found by a word inside them: the
    # keyword text gets their character bigrams (indexer/store/cjk.py). Rows written before
    # are rewritten here, so an old library gets CJK search without re-indexing.
    from indexer.store import photo_tags

    photo_tags.add_cjk_bigrams(db)


def m012_ocr_text(db: Database) -> None:
    # The text read in each picture (OCR), per content key like results: `text_reads` (one row
    # per key read, '' when it shows none), `text_lines` (lines with confidence and box),
    # `text_reads_fts`. Pictures indexed before are read by the next index run, without
    # re-captioning; see indexer/store/photo_text.py.
    from indexer.store import photo_text

    photo_text.create(db)


def m013_caption_later(db: Database) -> None:
    # results.caption_pending: 1 while a result has its image vector but no caption yet (`imgcap
    # index --captions after|later`: searchable first, captioned from the stored vector next);
    # NULL once captioned. Its caption is "" and its caption_vec all zeros until then (cosine 0:
    # never a caption hit). See indexer/store/pending_captions.py.
    if "caption_pending" not in db["results"].columns_dict:
        db["results"].add_column("caption_pending", int)
    db.execute(
        "CREATE INDEX IF NOT EXISTS results_caption_pending ON results (model, id)"
        " WHERE caption_pending IS NOT NULL"
    )


def m014_written_captions(db: Database) -> None:
    # The captions a person wrote, found without reading every result row (each holds its
    # vectors): a search asks for them on every query, and most libraries have few or none.
    db.execute(
        "CREATE INDEX IF NOT EXISTS results_written ON results (model, id)"
        " WHERE caption_edited_at IS NOT NULL"
    )


# Append only: a migration that shipped is never edited (databases in the wild ran it).
MIGRATIONS = (
    m001_initial,
    m002_models,
    m003_user_captions,
    m004_photo_tags,
    m005_places,
    m006_roots,
    m007_video_frames,
    m008_vector_log,
    m009_pixel_hash,
    m010_similar_groups,
    m011_cjk_fts,
    m012_ocr_text,
    m013_caption_later,
    m014_written_captions,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The imgcap schema version of a database: 0 for an empty file, None if it is not ours."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    if not names and app_id == 0:
        return 0
    if app_id == 0 and {"_sqlite_migrations", "files", "results"} <= names:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'imgcap'"
        ).fetchall()
        if ("m001_initial",) in rows:
            return 1  # made by imgcap before schema versions were recorded
    return None


def check(conn: sqlite3.Connection, path: Path | str) -> int:
    """The schema version, or StoreError for a foreign database or one from a newer imgcap."""
    version = schema_version(conn)
    if version is None:
        tables = sorted(
            n
            for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not n.startswith("sqlite_")
        )
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(
            f"{path} is not an imgcap database (it holds other tables: {shown or 'none'});"
            " imgcap leaves it untouched. Pass --db with a new file name"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer imgcap (database schema version {version}; this"
            f" imgcap reads versions up to {SCHEMA_VERSION}). Upgrade imgcap to use it"
        )
    return version


def migrate(db: Database, path: Path | str) -> int:
    """Bring the database to SCHEMA_VERSION (each step one transaction); returns the version
    it had before."""
    before = check(db.conn, path)
    for version in range(before + 1, SCHEMA_VERSION + 1):
        if version == 1:
            migrations.apply(db)  # records m001 where older imgcap releases look for it
            with db.atomic():
                _stamp(db, 1)
            continue
        with db.atomic():
            MIGRATIONS[version - 1](db)
            _stamp(db, version)
    return before


def _stamp(db: Database, version: int) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {int(version)}")

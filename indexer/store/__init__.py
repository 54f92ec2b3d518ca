"""The database: every SQL statement imgcap runs lives in this package (habit 5).

Layout (created by the numbered migrations in `schema`):

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
- `models` (schema 2): per model name, the model directory or registry name it was loaded from.
- `photo_tags`, `photo_tags_fts` (schema 4): the user's own tags and description per photo
  path (not content: copies can differ), with what was read when; rows go with their file.
- `roots` (schema 6): the index roots; files.root_id + files.rel_path say where a photo is,
  files.path is derived from them (rewritten when a root moves; `roots`).
- `video_frames`, `videos` (schema 7): each video keyframe's result key ("<video hash>@<ms>")
  with its video and time, and the videos whose keyframes all have a model's results (`frames`).
- `vector_log` (schema 8): filled by triggers on `results` (insert, delete, vector update): which
  results' vectors changed, so the FAISS cache applies only those (`vector_log`).

Modules, one noun each:

- `schema`: migrations, the schema version in the file header, foreign and newer databases;
- `connection`: read-only / immutable connections, sqlite3 errors -> StoreError naming the file;
- `lock`: the one-writer lock (`writer_lock`), taken on the real file behind any symlink;
- `records`: the row dataclasses and the float32 BLOB encoding;
- `database`: `Store`, the pipeline's read-write handle (change detection, batches, runs);
- `queries`: the read-only queries search/, export and status use;
- `photo_tags`: the user's own tags (keyword matches, `--tag`); `writeback`: write-back's
  rows and the embedded rewrite's new content hash.
- `places` (schema 5): place names per photo from GPS (`--place`, keyword matches, labels);
  `vocabulary`: what query understanding asks of the index (dates, folders, cameras, videos).
- `frames` (schema 7): video keyframes, the joins that reach a video's file from a keyframe's
  result, done videos for change detection, their garbage.
- `vector_log` (schema 8): the change log's table and triggers, what changed since a position,
  pruning (by `collect_garbage`).
- `cjk`: Chinese, Japanese and Korean text as the keyword index sees it (character bigrams;
  `photo_tags.words` holds them since m011), and CJK query words as FTS5 phrases.

Writers hold an OS file lock beside the database, so a second `imgcap index` on the same database
is refused with a clear message; readers never take it and keep working (WAL mode).
"""

import sys

if "sqlite_utils" not in sys.modules and "pandas" not in sys.modules:
    # sqlite-utils imports pandas when it is installed (the `ray` extra brings it), only to map
    # pandas values on insert, which imgcap never passes; that import was 0.2-0.3 s of every
    # cold `imgcap search` (BENCHMARKS.md). Hide pandas from that one import; later imports of
    # pandas (the Ray engine's) work as usual.
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]

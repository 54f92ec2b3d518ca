"""Reads for search/: plain functions over a read-only sqlite3 connection.

Owned by the search side (search/vectors/cache.py, query.py, export.py, `imgcap status`). A search
never takes a write lock, so it keeps answering while an `imgcap index` run commits batches
(WAL). sqlite3 errors leave as StoreErrors naming the file (`translated`); generators
(`iter_result_vectors`, `export_rows`) translate inside, where the rows are fetched.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.store import frames, photo_tags, photo_text, places
from indexer.store.errors import conn_path, store_error, translated
from indexer.store.photos import user_caption_columns
from indexer.store.records import rows_in


@dataclass(frozen=True, slots=True)
class FileFilter:
    """Which files a search or export may return. Dates are ISO 8601 prefixes ("2019", "2019-06",
    "2019-06-01"); `after` is inclusive, `before` exclusive, so [2019, 2020) is "in 2019"."""

    folder: str | None = None  # absolute folder; files anywhere below it match
    folder_name: str | None = None  # a folder of this name (as spelled) is in the file's path
    after: str | None = None
    before: str | None = None
    camera: str | None = None  # case-insensitive substring of "make model"
    tags: tuple[str, ...] = ()  # the photo carries every one of these tags (any case)
    place: tuple[str, ...] = ()  # its place is called all of these (city/region/country names)
    media: str | None = None  # "video" or "photo" (query understanding; needs schema 7)
    text: str | None = None  # FTS5 query the text read in it must match (--text; schema 12)

    @property
    def active(self) -> bool:
        values = (self.folder, self.folder_name, self.after, self.before, self.camera, self.text)
        active = any(v is not None for v in values) or self.media is not None
        return active or bool(self.tags) or bool(self.place)


@translated
def models_with_results(conn: sqlite3.Connection) -> list[str]:
    """Models with at least one result, most results first."""
    # Each distinct name by one probe of the model index (a skip scan), not a count of every
    # result: every search asks, and most libraries hold one model (~8 ms at 100,000 photos).
    names = [
        m
        for (m,) in conn.execute(
            "WITH RECURSIVE m(model) AS (SELECT min(model) FROM results UNION ALL"
            " SELECT (SELECT min(model) FROM results WHERE model > m.model) FROM m"
            " WHERE m.model IS NOT NULL) SELECT model FROM m WHERE model IS NOT NULL"
        )
    ]
    if len(names) < 2:
        return names
    count = "SELECT count(*) FROM results WHERE model = ?"
    counts = {m: conn.execute(count, [m]).fetchone()[0] for m in names}
    return sorted(names, key=lambda m: (-counts[m], m))


@translated
def vector_state_for(conn: sqlite3.Connection, model: str) -> tuple[int, int]:
    """(generation, result count) for a model; (0, 0) when it has never been written."""
    row = conn.execute(
        "SELECT generation, count FROM vector_state WHERE model = ?", [model]
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


@translated
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
    try:
        cur = conn.execute(
            "SELECT id, image_vec, caption_vec FROM results WHERE model = ? ORDER BY id", [model]
        )
        while rows := cur.fetchmany(chunk):
            yield rows
    except sqlite3.Error as e:
        raise store_error(e, conn_path(conn)) from None


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
    if flt.folder_name is not None:
        # Any path component: "Work" matches /photos/Work and /photos/2019/Work/sub.
        conds.append(f"instr(? || {alias}.folder || ?, ?) > 0")
        params += [os.sep, os.sep, os.sep + flt.folder_name + os.sep]
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
    if flt.tags:
        cond, tag_params = photo_tags.tag_condition(flt.tags, alias)
        conds.append(cond)
        params += tag_params
    if flt.place:
        cond, place_params = places.condition(flt.place, alias)
        conds.append(cond)
        params += place_params
    if flt.media is not None:  # a video is a file with keyframes (indexer/store/frames.py)
        video = f"EXISTS (SELECT 1 FROM video_frames v WHERE v.video_hash = {alias}.content_hash)"
        conds.append(video if flt.media == "video" else f"NOT {video}")
    if flt.text is not None:
        cond, text_params = photo_text.condition(flt.text, alias)
        conds.append(cond)
        params += text_params
    return (" AND ".join(conds) or "1"), params


@translated
def filtered_result_ids(conn: sqlite3.Connection, model: str, flt: FileFilter) -> np.ndarray:
    """Ascending ids of the model's results that at least one file passing `flt` uses."""
    hashes, params = _hashes_where(conn, *_file_where(flt))
    rows = conn.execute(
        f"SELECT r.id FROM results r WHERE r.model = ? AND r.content_hash IN ({hashes})"
        " ORDER BY r.id",
        [model, *params],
    ).fetchall()
    return np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))


@translated
def keyword_matches(
    conn: sqlite3.Connection,
    model: str,
    fts_query: str,
    limit: int,
    flt: FileFilter,
    generated: bool = True,
) -> list[tuple[int, float]]:
    """(result id, BM25) of results whose caption, or whose photo's own tags and description,
    match an FTS5 query, best first (BM25 of both added; higher = better). `generated=False`:
    only captions a person wrote, never generated ones (English: a query in another language
    must not match them by accident, "die" or "art").

    `fts_query` must already be sanitised (search/query.py quotes every term)."""
    if generated:
        found = _caption_matches(conn, model, fts_query, limit, flt)
    else:
        found = _written_caption_matches(conn, model, fts_query, limit, flt)
    where, params = _file_where(flt)
    tagged = photo_tags.keyword_matches(
        conn, model, fts_query, limit, where, params, _join(conn, from_results=False)
    )
    placed = places.keyword_matches(
        conn, model, fts_query, limit, where, params, _join(conn, from_results=False)
    )
    if not tagged and not placed:
        return found
    scores = dict(found)
    for rid, score in tagged + placed:
        scores[rid] = scores.get(rid, 0.0) + score
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:limit]


@translated
def text_matches(
    conn: sqlite3.Connection, model: str, fts_query: str, limit: int, flt: FileFilter
) -> list[tuple[int, float]]:
    """(result id, BM25; higher = better) of `model`'s results whose picture's text (OCR,
    indexer/store/photo_text.py) matches the FTS5 query, best first; `flt` restricts the files."""
    if not flt.active:
        return photo_text.keyword_matches(conn, model, fts_query, limit)
    hashes, params = _hashes_where(conn, *_file_where(flt))
    return photo_text.keyword_matches(conn, model, fts_query, limit, hashes, params)


@translated
def _caption_matches(
    conn: sqlite3.Connection, model: str, fts_query: str, limit: int, flt: FileFilter
) -> list[tuple[int, float]]:
    """(result id, BM25) of captions matching an FTS5 query, best first (BM25: higher = better).

    `fts_query` must already be sanitised (search/query.py quotes every term)."""
    if not flt.active and _only_model(conn) == model:
        # Every caption is this model's: no join with `results` to check it. Common words ("a",
        # "on") match nearly every caption, and the per-row join was most of the keyword
        # signal's time (100k captions: 175 -> 65 ms; BENCHMARKS.md, imgcap serve).
        rows = conn.execute(
            "SELECT rowid, bm25(results_fts) AS rank FROM results_fts"
            " WHERE results_fts MATCH ? ORDER BY rank LIMIT ?",
            [fts_query, limit],
        ).fetchall()
        return [(int(i), -float(s)) for i, s in rows]
    hashes, params = _hashes_where(conn, *_file_where(flt))
    restrict = f" AND r.content_hash IN ({hashes})" if flt.active else ""
    rows = conn.execute(
        "SELECT r.id, bm25(results_fts) AS rank FROM results_fts"
        " JOIN results r ON r.id = results_fts.rowid"
        f" WHERE results_fts MATCH ? AND r.model = ?{restrict} ORDER BY rank LIMIT ?",
        [fts_query, model, *params, limit],
    ).fetchall()
    return [(int(i), -float(s)) for i, s in rows]  # FTS5's bm25() is negated: flip it back


@translated
def _written_caption_matches(
    conn: sqlite3.Connection, model: str, fts_query: str, limit: int, flt: FileFilter
) -> list[tuple[int, float]]:
    """(result id, BM25) of captions a person wrote (not generated) matching the query."""
    if not _has_written_captions(conn, model):
        return []
    hashes, params = _hashes_where(conn, *_file_where(flt))
    restrict = f" AND r.content_hash IN ({hashes})" if flt.active else ""
    rows = conn.execute(
        "SELECT r.id, bm25(results_fts) AS rank FROM results_fts"
        " JOIN results r ON r.id = results_fts.rowid"
        " WHERE results_fts MATCH ? AND r.model = ? AND r.caption_edited_at IS NOT NULL"
        f"{restrict} ORDER BY rank LIMIT ?",
        [fts_query, model, *params, limit],
    ).fetchall()
    return [(int(i), -float(s)) for i, s in rows]


def _has_written_captions(conn: sqlite3.Connection, model: str) -> bool:
    """Whether a person wrote a caption for any of `model`'s results: one probe of the partial
    index m014 makes. Without it (no caption ever written) the match over every caption is
    skipped, ~25 ms a query at 100,000 photos when common words match most captions."""
    if not user_caption_columns(conn):
        return False
    sql = "SELECT 1 FROM results WHERE model = ? AND caption_edited_at IS NOT NULL LIMIT 1"
    return conn.execute(sql, [model]).fetchone() is not None


def _only_model(conn: sqlite3.Connection) -> str | None:
    """The one model every result belongs to, or None when there are several (or none).
    Two separate min/max subqueries: each is one index probe, a combined one scans the table."""
    lo, hi = conn.execute(
        "SELECT (SELECT min(model) FROM results), (SELECT max(model) FROM results)"
    ).fetchone()
    return lo if lo == hi else None


@translated
def keyword_subset(conn: sqlite3.Connection, fts_query: str, result_ids: Sequence[int]) -> set[int]:
    """Which of `result_ids` have a caption matching the FTS5 query (for --not)."""
    sql = "SELECT rowid FROM results_fts WHERE results_fts MATCH ? AND rowid IN ({marks})"
    ids = [int(i) for i in result_ids]  # type: ignore[arg-type]
    return {int(r) for (r,) in rows_in(conn, sql, ids, before=[fts_query])}


_HIT_COLUMNS = (
    "r.id, r.model, r.caption, f.path, f.width, f.height, f.taken_at, f.camera_make,"
    " f.camera_model, f.gps_lat, f.gps_lon, f.indexed_at, f.content_hash"
)
_HIT_KEYS = (
    "result_id", "model", "caption", "path", "width", "height", "taken_at", "camera_make",
    "camera_model", "gps_lat", "gps_lon", "indexed_at", "content_hash", "place", "at_s",
)  # fmt: skip
# at_s: a video keyframe's time in seconds (None for a photo); see indexer/store/frames.py


def _hit_columns(conn: sqlite3.Connection) -> str:
    """_HIT_COLUMNS and the photo's place label (NULL in databases from before places)."""
    if places.exists(conn):
        cols = _HIT_COLUMNS + ", (SELECT p.label FROM places p WHERE p.id = f.place_id)"
    else:
        cols = _HIT_COLUMNS + ", NULL"
    return cols + (", vf.at_ms / 1000.0 AS at_s" if frames.exists(conn) else ", NULL AS at_s")


def _hashes_where(conn: sqlite3.Connection, where: str, params: list) -> tuple[str, list]:
    """A SELECT of the result content keys of files passing `where` (videos: their keyframes')."""
    if frames.exists(conn):
        return frames.hashes_sql(where, params)
    return f"SELECT f.content_hash FROM files f WHERE {where}", params


def _join(conn: sqlite3.Connection, from_results: bool) -> str:
    """JOIN from `results r` to `files f` (or back): directly, or through a video keyframe."""
    if frames.exists(conn):
        return frames.RESULT_FILE_JOIN if from_results else frames.FILE_RESULT_JOIN
    if from_results:
        return "JOIN files f ON f.content_hash = r.content_hash"
    return "JOIN results r ON r.content_hash = f.content_hash"


@translated
def files_for_results(
    conn: sqlite3.Connection, result_ids: Sequence[int], flt: FileFilter
) -> list[dict[str, Any]]:
    """Every file (passing `flt`) that uses one of the given results, ordered by path."""
    where, params = _file_where(flt)
    sql = (
        f"SELECT {_hit_columns(conn)} FROM results r {_join(conn, True)}"
        f" WHERE r.id IN ({{marks}}) AND {where} ORDER BY f.path"
    )
    ids = [int(i) for i in result_ids]  # type: ignore[arg-type]
    return [dict(zip(_HIT_KEYS, row, strict=True)) for row in rows_in(conn, sql, ids, after=params)]


@translated
def own_word_matches(
    conn: sqlite3.Connection, model: str, fts_query: str, limit: int, flt: FileFilter
) -> list[int]:
    """Ids of `model`'s results with a photo (passing `flt`) whose own words match the FTS5
    query: its tags or description, its place, a caption a person wrote; at most `limit` of
    each, best first. The keyword signal's list mixes these with generated captions and cuts
    them all at one depth, where a tag can lose to a thousand captions saying its word."""
    where, params = _file_where(flt)
    join = _join(conn, from_results=False)
    found = photo_tags.keyword_matches(conn, model, fts_query, limit, where, params, join)
    found += places.keyword_matches(conn, model, fts_query, limit, where, params, join)
    if _has_written_captions(conn, model):
        hashes, hash_params = _hashes_where(conn, where, params)
        restrict = f" AND r.content_hash IN ({hashes})" if flt.active else ""
        rows = conn.execute(
            "SELECT r.id, 0 FROM results_fts JOIN results r ON r.id = results_fts.rowid"
            " WHERE results_fts MATCH ? AND r.model = ? AND r.caption_edited_at IS NOT NULL"
            f"{restrict} ORDER BY bm25(results_fts) LIMIT ?",
            [fts_query, model, *hash_params, limit],
        ).fetchall()
        found += rows
    return list(dict.fromkeys(int(i) for i, _ in found))


@translated
def own_words(
    conn: sqlite3.Connection, result_ids: Sequence[int], flt: FileFilter
) -> list[tuple[int, str, str]]:
    """(result id, path, the photo's own words) for every file (passing `flt`) that uses one of
    the given results. A photo's own words are the ones a person gave it: its tags and
    description, a caption a person wrote (never the generated one), its place's names, and the
    names of the folders it sits in below its root (outside any root: its folder's own name),
    one line each. One query for all of them: search ranks its candidates by these."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    edited = "caption_edited_at" in {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    rel = "f.rel_path" if "rel_path" in cols else "NULL"
    tags = "(SELECT t.words FROM photo_tags t WHERE t.path = f.path)"
    caption = "CASE WHEN r.caption_edited_at IS NOT NULL THEN r.caption END"
    place = "(SELECT p.label FROM places p WHERE p.id = f.place_id)"
    own = ", ".join(
        [
            rel,
            tags if photo_tags.exists(conn) else "NULL",
            caption if edited else "NULL",
            place if places.exists(conn) else "NULL",
        ]
    )
    where, params = _file_where(flt)
    sql = (
        f"SELECT r.id, f.path, f.folder, {own} FROM results r {_join(conn, True)}"
        f" WHERE r.id IN ({{marks}}) AND {where}"
    )
    ids = [int(i) for i in result_ids]  # type: ignore[arg-type]
    out = []
    for rid, path, folder, rel_path, tagged, written, label in rows_in(
        conn, sql, ids, after=params
    ):
        # Below the root, every folder is the person's; the root itself ("Pictures") is not.
        below = os.path.basename(folder or "") if rel_path is None else os.path.dirname(rel_path)
        words = [below.replace(os.sep, "\n"), tagged, written, label]
        out.append((int(rid), path, "\n".join(w for w in words if w)))
    return out


@translated
def paths_with_hashes(
    conn: sqlite3.Connection, content_hashes: Sequence[str], flt: FileFilter
) -> list[tuple[str, str]]:
    """(path, content hash) of every file (passing `flt`) with one of the given contents, by path
    (the look-alikes hidden behind a search hit)."""
    where, params = _file_where(flt)
    sql = (
        "SELECT f.path, f.content_hash FROM files f"
        f" WHERE f.content_hash IN ({{marks}}) AND {where}"
    )
    return sorted(rows_in(conn, sql, content_hashes, after=params))


def export_rows(conn: sqlite3.Connection, model: str, flt: FileFilter) -> Iterator[dict[str, Any]]:
    """One row per indexed file that has a result for `model`, ordered by path."""
    where, params = _file_where(flt)
    try:
        cur = conn.execute(
            f"SELECT {_hit_columns(conn)} FROM files f {_join(conn, False)}"
            f" WHERE r.model = ? AND {where} ORDER BY f.path, at_s",
            [model, *params],
        )
        for row in cur:
            yield dict(zip(_HIT_KEYS, row, strict=True))
    except sqlite3.Error as e:
        raise store_error(e, conn_path(conn)) from None


def browse_rows(
    conn: sqlite3.Connection, model: str, flt: FileFilter, chunk: int = 256
) -> Iterator[dict[str, Any]]:
    """Files (passing `flt`) with a result for `model`, newest taken first, then those without
    a date; ties by path. A video comes once per keyframe, earliest first. Lazy: a browse
    reads only as far as its page. Only the ids are sorted, the rows read `chunk` at a time: a
    sort carrying every column was 3x slower (5,000 photos: 16 -> 5 ms)."""
    where, params = _file_where(flt)
    join = _join(conn, False)
    at = ", vf.at_ms" if frames.exists(conn) else ""
    sql = (
        f"SELECT f.id, {_hit_columns(conn)} FROM files f {join}"
        " WHERE r.model = ? AND f.id IN ({marks})"
    )
    try:
        order = conn.execute(
            f"SELECT f.id, r.id FROM files f {join} WHERE r.model = ? AND {where}"
            # NULLs sort last in DESC: the newest first, undated after, as the taken_at index
            # walks backwards; only ties are sorted, so a first page reads a page, not the
            # library (10,000 photos: 50-90 -> 1 ms to the first 256; BENCHMARKS.md).
            f" ORDER BY f.taken_at DESC, f.path{at}",
            [model, *params],
        )
        while pairs := order.fetchmany(chunk):
            ids = sorted({fid for fid, _ in pairs})
            rows = {(fid, row[0]): row for fid, *row in rows_in(conn, sql, ids, before=[model])}
            for pair in pairs:
                if pair in rows:  # else gone since the sort (an index run committed)
                    yield dict(zip(_HIT_KEYS, rows[pair], strict=True))
    except sqlite3.Error as e:
        raise store_error(e, conn_path(conn)) from None


@translated
def status_counts(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts for `imgcap status`: files, failures, per-model photos and results, last run."""
    q = conn.execute
    # A video counts once among the photos, its keyframes each among the results.
    join = "LEFT JOIN files f ON f.content_hash = r.content_hash"
    if frames.exists(conn):
        join = (
            "LEFT JOIN video_frames vf ON vf.frame_key = r.content_hash"
            " LEFT JOIN files f ON f.content_hash = coalesce(vf.video_hash, r.content_hash)"
        )
    per_model = q(
        f"SELECT r.model, count(DISTINCT r.id), count(DISTINCT f.id) FROM results r {join}"
        " GROUP BY r.model ORDER BY r.model"
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


@translated
def model_sources(conn: sqlite3.Connection) -> dict[str, str]:
    """model name -> where it was loaded from when indexed (an absolute model directory or a
    registry name). Empty for databases from before schema version 2 (no `models` table)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'models'").fetchone():
        return {}
    return dict(conn.execute("SELECT name, source FROM models").fetchall())

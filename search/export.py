"""Caption export: one row per photo as CSV or JSON lines, UTF-8, to a file or stdout.

CSV cells a spreadsheet would run as a formula (starting with = + - @, or tab / carriage return,
per OWASP's CSV-injection advice) get a leading apostrophe, which spreadsheets show as plain
text. Cells that already start with an apostrophe get one too, so `read_export` can undo the
escaping exactly: what is written and read back equals what the database holds. The same holds
after every line break inside a cell (`ok\r=1+1` is written `ok\r'=1+1`): some spreadsheets
treat each line of a cell as a fresh start. JSON lines are never escaped (nothing evaluates them).

A path whose file name holds bytes that are not UTF-8 is exported as it is shown everywhere
(`caf\\xe9.jpg`, search/display.py `shown_path`) with `path_escaped` true, so the file stays
findable (`os.fsencode` of the name with `\\xNN` turned back into bytes) and a real name that
contains a backslash is not mistaken for one.

`write_csv` is the one CSV writer (export and `imgcap failures --csv`). It quotes every cell that
holds a comma, a quote, a CR or an LF. Python's csv module with "\n" line ends leaves a bare CR
unquoted, and spreadsheets then split the row there.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from indexer.atomic_file import atomic_file
from indexer.config import Settings
from indexer.errors import ImgcapError, UsageError
from indexer.store import photos
from indexer.store.connection import connect_readonly
from indexer.store.queries import FileFilter, export_rows
from search.display import path_escaped, shown_path
from search.photos import camera_name

# source: "user" when a person wrote the caption (imgcap serve, caption-set), else "generated".
COLUMNS = (
    "path", "caption", "model", "width", "height", "taken_at", "camera", "indexed_at", "source",
    "tags", "place", "text", "path_escaped", "missing",
)  # fmt: skip
# tags: the photo's own tags (read at index time; per path, copies can differ), in one cell
# place: "city, region, country" named from the photo's GPS at index time (empty without GPS)
# path_escaped: true when `path` shows bytes of the name that are not UTF-8 as \xNN
# missing: true when the file is not on disk now (deleted, moved, its drive not mounted)
# text: the text read in the photo (imgcap index --ocr), one line per line; a video's keyframes'
# distinct texts in time order; empty when none was read (untrusted: neutralised like the rest)
TAG_SEPARATOR = "; "  # not ",": commas occur inside tags ("Berlin, Germany")
# A video is one row whose caption joins its keyframes' distinct captions in time order; with
# `keyframes=True` (export --keyframes) each keyframe is a row, its time in this extra column.
KEYFRAME_COLUMNS = (*COLUMNS, "at_seconds")
KEYFRAME_SEPARATOR = " | "
FORMATS = ("csv", "jsonl")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INT_COLUMNS = ("width", "height")
# A line break inside a cell followed by what would start a formula (or by the escape itself).
_LINE_FORMULA = re.compile(r"([\r\n])(?=[=+\-@\t\r'])")
_LINE_ESCAPED = re.compile(r"([\r\n])'")
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def format_for(out: str, fmt: str | None) -> str:
    """The explicit --format, else the output's extension (.csv, .jsonl/.ndjson); stdout: csv."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} (csv or jsonl)")
        return fmt
    if out == "-":
        return "csv"
    ext = Path(out).suffix.lower()
    if ext in (".csv",):
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise UsageError(f"cannot tell the format of {out!r}: name it .csv or .jsonl, or use --format")


def neutralise(cell: str) -> str:
    """A leading ' on the cell and on each line of it that a spreadsheet could run."""
    if cell.startswith(_FORMULA_START) or cell.startswith("'"):
        cell = "'" + cell
    return _LINE_FORMULA.sub(r"\1'", cell)


def unneutralise(cell: str) -> str:
    """Exactly undoes `neutralise`."""
    cell = cell[1:] if cell.startswith("'") else cell
    return _LINE_ESCAPED.sub(r"\1", cell)


def csv_line(cells: Iterable[str]) -> str:
    """One CSV record ending in "\n"; cells with , " CR or LF are quoted (RFC 4180)."""
    quoted = ('"' + c.replace('"', '""') + '"' if _NEEDS_QUOTES.search(c) else c for c in cells)
    return ",".join(quoted) + "\n"


def write_csv(
    rows: Iterable[dict[str, Any]],
    stream: TextIO,
    columns: Sequence[str],
    neutralise_formulas: bool = True,
    plain_columns: Sequence[str] = (),
) -> int:
    """Header, then one record per row (None -> empty cell); returns the number of rows.

    Cells of every column but `plain_columns` (numbers) are neutralised unless told otherwise.
    Nothing is written before the first row is fetched, so an error raised while fetching it
    leaves the stream empty, not a header followed by an error message."""
    it = iter(rows)
    first = next(it, _END)
    stream.write(csv_line(columns))
    if first is _END:
        return 0
    n = 0
    for row in itertools.chain([first], it):
        cells = []
        for k in columns:
            v = row[k]
            text = "" if v is None else _cell(v)
            escape = neutralise_formulas and k not in plain_columns
            cells.append(neutralise(text) if escape else text)
        stream.write(csv_line(cells))
        n += 1
    return n


_END = object()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown_path(str(value))  # a str holding a non-UTF-8 name cannot be written as UTF-8


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    """A store row -> the exported columns (camera = make and model joined)."""
    out = {k: row.get(k) for k in COLUMNS}
    out["camera"] = camera_name(row)
    out["path_escaped"] = path_escaped(row["path"])
    out["missing"] = not os.path.exists(row["path"])
    out["source"] = row.get("source") or "generated"
    if "at_seconds" in row:  # export --keyframes
        out["at_seconds"] = row["at_seconds"]
    return out


def write_rows(
    rows: Iterable[dict[str, Any]],
    stream: TextIO,
    fmt: str,
    neutralise_formulas: bool = True,
    columns: Sequence[str] = COLUMNS,
) -> int:
    """Write exported rows to a text stream; returns how many were written."""
    if fmt == "jsonl":
        n = 0
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    return write_csv(rows, stream, columns, neutralise_formulas, (*_INT_COLUMNS, "at_seconds"))


def iter_export(
    db_path: Path,
    settings: Settings,
    model: str | None,
    flt: FileFilter,
    keyframes: bool = False,
) -> Iterator:
    from search.query_encoder import resolve_model

    conn = connect_readonly(db_path)
    try:
        name = resolve_model(conn, model, settings)
        edited = photos.edited_result_ids(conn, name)
        batch: list[dict[str, Any]] = []
        for row in _per_video(export_rows(conn, name, flt), edited, keyframes):
            batch.append(row)
            if len(batch) >= 500:
                yield from _tagged(conn, _with_text(conn, batch))
                batch = []
        yield from _tagged(conn, _with_text(conn, batch))
    finally:
        conn.close()


def _per_video(
    rows: Iterable[dict[str, Any]], edited: set[int], keyframes: bool
) -> Iterator[dict[str, Any]]:
    """Store rows (a video's keyframes consecutive, in time order) with their `source`; one row
    per video unless `keyframes` (then each keyframe's time is in `at_seconds`)."""
    video: dict[str, Any] | None = None
    for row in rows:
        row["source"] = "user" if row["result_id"] in edited else "generated"
        row["result_ids"] = [row["result_id"]]  # a video's: all its keyframes' (the text)
        at = row.get("at_s")
        if keyframes or at is None:
            if keyframes:
                row["at_seconds"] = at
            if video is not None:
                yield video
                video = None
            yield row
            continue
        if video is not None and video["path"] == row["path"]:
            if row["caption"] not in video["caption"].split(KEYFRAME_SEPARATOR):
                video["caption"] += KEYFRAME_SEPARATOR + row["caption"]
            if row["source"] == "user":
                video["source"] = "user"
            video["result_ids"].append(row["result_id"])
            continue
        if video is not None:
            yield video
        video = dict(row)
    if video is not None:
        yield video


def _with_text(conn, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store rows -> exported rows, each with the text read in its picture (a video: the
    distinct texts of its keyframes, in time order)."""
    from indexer.store import photo_text

    read = photo_text.texts_for_results(conn, [i for r in rows for i in r["result_ids"]])
    out = []
    for row in rows:
        texts = list(dict.fromkeys(read[i] for i in row["result_ids"] if i in read))
        row["text"] = "\n".join(texts) or None
        out.append(export_row(row))
    return out


def _tagged(conn, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its photo's own tags, and its path as shown."""
    from indexer.store import photo_tags

    tags = photo_tags.tags_for_paths(conn, [r["path"] for r in rows])
    for row in rows:
        found = tags.get(row["path"])
        row["tags"] = TAG_SEPARATOR.join(found) if found else None
        row["path"] = shown_path(row["path"])
    return rows


def export(
    db_path: Path,
    out: str,
    settings: Settings,
    fmt: str | None = None,
    model: str | None = None,
    flt: FileFilter | None = None,
    neutralise_formulas: bool = True,
    keyframes: bool = False,
) -> int:
    """Export every photo's caption; `out` is a path or "-" (stdout). Returns the row count.
    Videos: one row each, or one per keyframe with `keyframes` (KEYFRAME_COLUMNS).

    A file is written to a temporary file beside it and renamed (indexer.atomic_file), so a
    failed export never leaves half a file where the previous one was."""
    fmt = format_for(out, fmt)
    if out != "-":
        check_output(out)
    rows = iter_export(db_path, settings, model, flt or FileFilter(), keyframes)
    columns = KEYFRAME_COLUMNS if keyframes else COLUMNS
    if out == "-":
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            return write_rows(rows, stream, fmt, neutralise_formulas, columns)
        finally:
            stream.flush()
            stream.detach()  # leave sys.stdout usable
    try:
        # A FIFO or device (/dev/stdout, `>(gzip)`) is written straight; a symlink's target is
        # replaced and the link kept.
        with atomic_file(out, encoding="utf-8", newline="", special="write") as f:
            return write_rows(rows, f, fmt, neutralise_formulas, columns)
    except OSError as e:  # permission denied, read-only media, disk full, ...
        raise ImgcapError(f"cannot write {out}: {e.strerror or e}") from None


def check_output(out: str) -> None:
    """Refuse an output path that cannot be a file (exit 2) before any work is done."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"{out} is a folder: give a file name, e.g. {path / 'captions.csv'}")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {out}: the folder {path.parent} does not exist")


def read_export(path: Path, neutralised: bool = True) -> list[dict[str, Any]]:
    """Read an export back into rows equal to what was written (for checks and round trips)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        if format_for(str(path), None) == "jsonl":
            return [json.loads(line) for line in f if line.strip()]
        rows = []
        for rec in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k in KEYFRAME_COLUMNS if "at_seconds" in rec else COLUMNS:
                v = rec[k]
                if v == "":
                    row[k] = None
                elif k in _INT_COLUMNS:
                    row[k] = int(v)
                elif k == "at_seconds":
                    row[k] = float(v)
                elif k in ("path_escaped", "missing"):
                    row[k] = v == "true"
                else:
                    row[k] = unneutralise(v) if neutralised else v
            rows.append(row)
        return rows

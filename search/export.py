"""Caption export: one row per photo as CSV or JSON lines, UTF-8, to a file or stdout.

CSV cells a spreadsheet would run as a formula (starting with = + - @, or tab / carriage return,
per OWASP's CSV-injection advice) get a leading apostrophe, which spreadsheets show as plain
text. Cells that already start with an apostrophe get one too, so `read_export` can undo the
escaping exactly: what is written and read back equals what the database holds. JSON lines are
never escaped (nothing evaluates them).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from indexer import store
from indexer.config import Settings
from indexer.errors import UsageError
from indexer.store import FileFilter

COLUMNS = ("path", "caption", "model", "width", "height", "taken_at", "camera", "indexed_at")
FORMATS = ("csv", "jsonl")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INT_COLUMNS = ("width", "height")


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
    if cell.startswith(_FORMULA_START) or cell.startswith("'"):
        return "'" + cell
    return cell


def unneutralise(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    """A store row -> the exported columns (camera = make and model joined)."""
    camera = " ".join(x for x in (row.get("camera_make"), row.get("camera_model")) if x) or None
    out = {k: row.get(k) for k in COLUMNS}
    out["camera"] = camera
    return out


def write_rows(
    rows: Iterable[dict[str, Any]], stream: TextIO, fmt: str, neutralise_formulas: bool = True
) -> int:
    """Write exported rows to a text stream; returns how many were written."""
    n = 0
    if fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        cells = []
        for k in COLUMNS:
            v = row[k]
            text = "" if v is None else str(v)
            escape = neutralise_formulas and k not in _INT_COLUMNS
            cells.append(neutralise(text) if escape else text)
        writer.writerow(cells)
        n += 1
    return n


def iter_export(db_path: Path, settings: Settings, model: str | None, flt: FileFilter) -> Iterator:
    from search.query import resolve_model

    conn = store.connect_readonly(db_path)
    try:
        name = resolve_model(conn, model, settings)
        for row in store.export_rows(conn, name, flt):
            yield export_row(row)
    finally:
        conn.close()


def export(
    db_path: Path,
    out: str,
    settings: Settings,
    fmt: str | None = None,
    model: str | None = None,
    flt: FileFilter | None = None,
    neutralise_formulas: bool = True,
) -> int:
    """Export every photo's caption; `out` is a path or "-" (stdout). Returns the row count.

    A file is written to a temporary name and renamed, so a failed export never leaves half a
    file where the previous one was."""
    fmt = format_for(out, fmt)
    rows = iter_export(db_path, settings, model, flt or FileFilter())
    if out == "-":
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            return write_rows(rows, stream, fmt, neutralise_formulas)
        finally:
            stream.flush()
            stream.detach()  # leave sys.stdout usable
    path = Path(out)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            n = write_rows(rows, f, fmt, neutralise_formulas)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_export(path: Path, neutralised: bool = True) -> list[dict[str, Any]]:
    """Read an export back into rows equal to what was written (for checks and round trips)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        if format_for(str(path), None) == "jsonl":
            return [json.loads(line) for line in f if line.strip()]
        rows = []
        for rec in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k in COLUMNS:
                v = rec[k]
                if v == "":
                    row[k] = None
                elif k in _INT_COLUMNS:
                    row[k] = int(v)
                else:
                    row[k] = unneutralise(v) if neutralised else v
            rows.append(row)
        return rows

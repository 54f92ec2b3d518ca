"""Rows as the pipeline writes them, and the float32 BLOB encoding of vectors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# SQLite caps host parameters per statement (32766 since 3.32); chunk IN (...) lists well below.
CHUNK = 900


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
    # The image data's hash without metadata (indexer/media/pixel_hash.py); None: not known
    # (another format, or not hashed this run: a stored one for the same content is kept).
    pixel_hash: str | None = None
    # The picture's 64-bit DCT hash (indexer/media/perceptual_hash.py), signed; None: a video, or
    # not decoded this run (a stored one for the same content is kept).
    perceptual_hash: int | None = None


# Metadata columns copied from one file to another with the same content hash (the perceptual
# hash too: a function of the pixels).
META_COLUMNS = (
    "width",
    "height",
    "taken_at",
    "camera_make",
    "camera_model",
    "gps_lat",
    "gps_lon",
    "perceptual_hash",
)


@dataclass(slots=True)
class ResultRecord:
    """One model's output for one content hash."""

    content_hash: str
    caption: str
    image_vec: np.ndarray  # (D,) float32
    caption_vec: np.ndarray  # (D,) float32
    # No caption yet (indexer/store/pending_captions.py): caption "" and caption_vec all zeros.
    pending: bool = False


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


def chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rows_in(
    conn, sql: str, values: Iterable, before: Sequence = (), after: Sequence = ()
) -> Iterator[tuple]:
    """The rows of `sql` for all of `values`, a chunk at a time (SQLite caps the parameters of
    one statement): its `{marks}` becomes one `?` per value of the chunk; `before` and `after`
    are the statement's other parameters, on either side of them."""
    for chunk in chunks(list(values)):
        marks = ", ".join("?" * len(chunk))
        yield from conn.execute(sql.replace("{marks}", marks), [*before, *chunk, *after])

"""The thumbnail cache: small JPEGs made on first request, kept beside the database.

Layout beside `photos.db` (a cache like `photos.db.faiss`: delete it any time, it is rebuilt):

    photos.db.thumbs/<hash[:2]>/<content hash>-<size>.jpg
    photos.db.thumbs/<hash[:2]>/<content hash>@<ms>-<size>.jpg   (a video's still at a keyframe)

(named in indexer/store/thumbnail_files.py, where an index run prunes the thumbnails of content
no indexed file has any more). Keyed by content hash, so a moved or renamed photo (same bytes,
new path, maybe new file id) keeps its thumbnail, and duplicates share one. Images go through
the indexer's own decode path (EXIF orientation, draft-mode JPEG, HEIC, RAW previews), so a
thumbnail looks the way the photo was captioned. Generation is capped at a few decodes at once:
a grid of 200 cold thumbnails must not start 200 full-size decodes (each a 12 MP photo = ~36 MB
of pixels before draft reduction).
"""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from indexer.atomic_file import write_atomic
from indexer.store.roots import inside_root
from indexer.store.thumbnail_files import cache_dir, thumbnail_file

THUMB_SIZE = 320  # grid thumbnails: long side, px (two columns on a phone, 5-6 on a laptop)
PREVIEW_SIZE = 1600  # the photo page's large preview
SIZES = (THUMB_SIZE, PREVIEW_SIZE)
JPEG_QUALITY = {THUMB_SIZE: 82, PREVIEW_SIZE: 88}
# A file's content hash as imgcap writes it (indexer/media/walk.py content_hash: hex BLAKE2b-128,
# a video's too). Anything else in that column (`../../x`, a keyframe's "hash@ms" key) is no key
# of this cache: it would name a file elsewhere.
CONTENT_HASH = re.compile(r"[0-9a-f]{32}")

# Placeholder for a file that cannot be decoded (gone, damaged, over the pixel cap): an <img>
# shows it at the grid's size instead of a broken-image icon, and the page never gets a 500.
PLACEHOLDER_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
    b'<rect width="320" height="240" fill="#e3e3e3"/>'
    b'<path d="M120 160l30-40 25 30 15-18 30 28z" fill="#b5b5b5"/>'
    b'<circle cx="200" cy="95" r="12" fill="#b5b5b5"/></svg>'
)


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail: a cached file to send, JPEG bytes made now (cache not writable), or None
    when the photo could not be decoded (the caller sends PLACEHOLDER_SVG)."""

    path: Path | None = None
    data: bytes | None = None
    reason: str | None = None  # why there is no image


class ThumbnailCache:
    """Thumbnails of one database. Thread-safe: the server calls `get` from worker threads."""

    def __init__(self, db_path: Path, max_decodes: int | None = None, max_pixels: int = 0):
        self.dir = cache_dir(db_path)
        # One decode per core: they are CPU bound, more only queue inside the OS.
        self._slots = threading.BoundedSemaphore(max_decodes or os.cpu_count() or 2)
        self._max_pixels = max_pixels or 120_000_000
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.generated = 0  # decodes done (tests and the benchmark read it)

    def file_for(self, content_hash: str, size: int, at_ms: int | None = None) -> Path:
        """The cache file of this content at this size. LookupError for a key that is not a
        content hash, or a file that would lie outside this cache's folder once every link is
        resolved (a link planted in it): nothing is read or written there."""
        if not isinstance(content_hash, str) or not CONTENT_HASH.fullmatch(content_hash):
            raise LookupError(f"not a content hash: {content_hash!r}")
        target = thumbnail_file(self.dir, content_hash, size, at_ms)
        if not inside_root(os.path.realpath(target), os.path.realpath(self.dir)):
            raise LookupError(f"{target} leads outside {self.dir}")
        return target

    def get(
        self,
        content_hash: str,
        source: str,
        size: int = THUMB_SIZE,
        expect: tuple[int, int] | None = None,
        at_ms: int | None = None,
    ) -> Thumbnail:
        """The thumbnail of the content `content_hash`, made from the file `source` if not cached;
        LookupError for a key that is no content hash (see `file_for`).

        `expect` = (size, mtime_ns) the index recorded for `source`: when the file on disk no
        longer matches, it may hold other content than the hash names, so the thumbnail made from
        it is sent but not cached under that hash. `at_ms`: a video's frame at that moment (one
        of its keyframes: the caller checks) instead of its poster."""
        if size not in SIZES:
            raise ValueError(f"thumbnail size {size} (one of {SIZES})")
        target = self.file_for(content_hash, size, at_ms)
        if target.is_file():
            return Thumbnail(path=target)
        # One decode per key at a time: ten requests for one cold photo wait for the first.
        with self._key_lock(target.name):
            if target.is_file():
                return Thumbnail(path=target)
            with self._slots:
                try:
                    data = self._render(source, size, at_ms)
                except Exception as e:  # noqa: BLE001 - any decoder failure becomes a placeholder
                    return Thumbnail(reason=str(getattr(e, "reason", None) or e))
            if expect is not None and not _unchanged(source, expect):
                return Thumbnail(data=data)
            try:
                _write_atomic(target, data)
            except OSError:
                return Thumbnail(data=data)  # read-only folder or full disk: serve, don't cache
            return Thumbnail(path=target)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 10_000:  # forget idle locks now and then (bounded memory)
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(key, threading.Lock())

    def _render(self, source: str, size: int, at_ms: int | None = None) -> bytes:
        from PIL import Image

        from indexer.media.decode import decode_image
        from indexer.media.kinds import is_video
        from indexer.media.video import poster, still_at

        if is_video(source) and at_ms is not None:  # one keyframe's moment
            image = still_at(source, at_ms / 1000, size, self._max_pixels)
        elif is_video(source):  # a still from its first seconds (the `video` extra)
            image = poster(source, size, self._max_pixels)
        else:
            # min_side=size: the draft decode may shrink a JPEG by up to 8x but keeps the short
            # side at least `size`, so the thumbnail is never upscaled from a too-small draft.
            image = decode_image(source, min_side=size, max_pixels=self._max_pixels).image
        image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=JPEG_QUALITY[size], optimize=True, progressive=True)
        self.generated += 1
        return buf.getvalue()


def _unchanged(source: str, expect: tuple[int, int]) -> bool:
    try:
        st = os.stat(source)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == tuple(expect)


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, durable=False)  # a cache: a lost thumbnail is made again

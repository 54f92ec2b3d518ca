"""The text-reading step of an index run: every picture with a result and no read yet is read
for text (indexer/models/ocr.py) and the lines stored per content key (indexer/store/photo_text.py).

It runs after the model work, from the store, in the process that owns the run, so the local and
the Ray engine share it unchanged, and whatever the store holds decides what is read: a copy, a
moved or renamed file, or a file reused by content has the same key and is never read again; a
library indexed before this step existed is read on its next run, with no re-captioning; a run
killed half-way keeps every batch it committed. A picture is decoded again here at the
detector's size (a reduced JPEG decode, a few ms), and once more, sharper, only when text was
found.

A picture the reader fails on gets a row with the reason (`problem`), never a stopped run; so
does a file that cannot be decoded any more. Models that fail to load stop the step, not the
run: a warning says why, and the next run tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from indexer.config import Settings
from indexer.errors import BadImageError, ImgcapError, UsageError
from indexer.store import photo_text
from indexer.store.database import Store

BATCH = 16  # pictures per transaction: a killed run loses at most this many reads
SHARP_SIDE = 1472  # short side decoded for recognition once text is found (2 × the detector's)
PROBLEMS_SHOWN = 20  # pictures not read, named in the summary's warnings; the rest counted


@dataclass
class TextOutcome:
    read: int = 0  # pictures read in this run (photos and keyframes)
    with_text: int = 0  # of those, pictures that show some text
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def wants_text(settings: Settings) -> bool:
    """Whether this run reads text: only when asked (--ocr, IMGCAP_OCR=1). Off by default: on a
    CPU its detector pass alone costs more than the captioning of a photo (BENCHMARKS.md, "Text
    in photos"), over the 25 % a default may add. UsageError when asked for and the extra is
    missing."""
    from indexer.models.ocr import OCR_NEEDS_EXTRA, extra_installed

    if not settings.ocr:
        return False
    if not extra_installed():
        raise UsageError(OCR_NEEDS_EXTRA)
    return True


def read_new_text(
    store: Store,
    settings: Settings,
    max_pixels: int,
    reader: Any = None,
    on_batch: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH,
) -> TextOutcome:
    """Read every picture in the store that was never read. `reader`: a loaded TextReader
    (tests count its calls; None: loaded here, only if some picture needs it). `on_batch(done,
    total)` after each committed batch of `batch_size` pictures."""
    out = TextOutcome()
    t0 = time.monotonic()
    todo = photo_text.unread(store.db.conn)
    if not todo:
        return out
    if reader is None:
        from indexer.models.ocr import TextReader

        try:
            reader = TextReader()
        except ImgcapError as e:
            out.warnings.append(f"text in photos not read: {e}")
            return out
    problems: list[str] = []
    videos: dict[str, list[tuple[str, int]]] = {}
    batch: list[tuple[str, list, str | None]] = []

    def flush() -> None:
        photo_text.save(store.db, batch, reader.name)
        out.read += len(batch)
        out.with_text += sum(1 for _, lines, _ in batch if lines)
        batch.clear()
        if on_batch is not None:
            on_batch(out.read, len(todo))

    for key, path, at_ms in todo:
        if at_ms is not None:
            videos.setdefault(path, []).append((key, at_ms))
            continue
        lines, problem = _read_photo(reader, path, max_pixels)
        if problem is not None:
            problems.append(f"{path}: {problem}")
        batch.append((key, lines, problem))
        if len(batch) >= batch_size:
            flush()
    for path, frames in videos.items():
        for key, lines, problem in _read_video(reader, path, frames, settings, max_pixels):
            if problem is not None:
                problems.append(f"{path}: {problem}")
            batch.append((key, lines, problem))
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()
    shown = problems[:PROBLEMS_SHOWN]
    out.warnings.extend(f"text not read: {p}" for p in shown)
    if len(problems) > len(shown):
        out.warnings.append(f"text not read from {len(problems) - len(shown)} more pictures")
    out.seconds = time.monotonic() - t0
    return out


def _lines(found: list) -> list[tuple[str, float, tuple[float, ...]]]:
    return [(ln.text, ln.confidence, ln.box) for ln in found]


def _read_photo(reader: Any, path: str, max_pixels: int) -> tuple[list, str | None]:
    """(lines, None) or ([], why it could not be read)."""
    from indexer.media.decode import decode_image
    from indexer.models.ocr import DETECT_SIDE

    try:
        small = decode_image(path, min_side=DETECT_SIDE, max_pixels=max_pixels).image

        def sharper() -> Any:
            return decode_image(path, min_side=SHARP_SIDE, max_pixels=max_pixels).image

        return _lines(reader.read(small, sharper)), None
    except BadImageError as e:
        return [], e.reason
    except Exception as e:  # noqa: BLE001 - one strange picture must never stop a run
        return [], f"text reader error: {type(e).__name__}: {e}"


def _read_video(
    reader: Any, path: str, frames: list[tuple[str, int]], settings: Settings, max_pixels: int
) -> list[tuple[str, list, str | None]]:
    """The keyframes `frames` [(key, ms)] of one video, decoded again as the run chose them."""
    from indexer.media.video import select_keyframes
    from indexer.models.ocr import DETECT_SIDE

    try:
        _, found = select_keyframes(
            path, DETECT_SIDE, settings.video_gap, settings.video_max_frames, max_pixels
        )
    except Exception as e:  # noqa: BLE001 - BadImageError, a missing extra, a decoder bug
        reason = getattr(e, "reason", None) or f"video decoder error: {type(e).__name__}: {e}"
        return [(key, [], reason) for key, _ in frames]
    # The keys the run stored: milliseconds of the keyframe time rounded to 3 places.
    images = {round(round(f.at, 3) * 1000): f.image for f in found}
    out = []
    for key, at_ms in frames:
        image = images.get(at_ms)
        if image is None:
            out.append((key, [], "keyframe not found when the video was decoded again"))
            continue
        try:
            out.append((key, _lines(reader.read(image)), None))
        except Exception as e:  # noqa: BLE001 - one strange picture must never stop a run
            out.append((key, [], f"text reader error: {type(e).__name__}: {e}"))
    return out

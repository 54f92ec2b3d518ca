"""The rows one committed batch writes: results for the pictures that needed the model, file
rows (a video's keyframes share one), keyframe and finished-video rows, and which files are now
complete. Pure: every engine (indexer/run/local_engine.py, indexer/run/ray_engine.py) reaches it
through the run's `commit` (indexer/run/pipeline.py), which writes the rows in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.errors import ImgcapError
from indexer.run.scan import Item
from indexer.run.work import BatchOutput, DecodedItem
from indexer.store.frames import FrameRecord, VideoRecord, frame_key
from indexer.store.records import FileRecord, ResultRecord


def result_key(item: Item, d: DecodedItem) -> str:
    """The content key a picture's result is stored under: the file's hash, or for a video
    keyframe its video's hash and time (indexer/store/frames.py)."""
    if "at_s" in d.extra:
        return frame_key(item.content_hash, round(d.extra["at_s"] * 1000))
    return item.content_hash


def file_record(item: Item, meta: dict) -> FileRecord:
    e = item.entry
    return FileRecord(
        path=item.path,
        size=e.size,
        mtime_ns=e.mtime_ns,
        content_hash=item.content_hash,
        pixel_hash=item.pixel_hash,
        **meta,
    )


@dataclass
class BatchRows:
    results: list[ResultRecord] = field(default_factory=list)
    files: dict[str, FileRecord] = field(default_factory=dict)  # by path
    keyframes: list[FrameRecord] = field(default_factory=list)
    videos: list[VideoRecord] = field(default_factory=list)
    done: list[Item] = field(default_factory=list)  # photos, and videos with their last keyframe
    dups: list[Item] = field(default_factory=list)  # identical files that waited for the batch


def batch_rows(
    batch: list[tuple[Item, DecodedItem]],
    out: BatchOutput | None,
    needs_model: Callable[[Item, DecodedItem], bool],
    waiters: dict[str, list[Item]],
) -> BatchRows:
    """`out` row i belongs to the i-th entry for which `needs_model` holds (None: none does).
    Duplicates waiting on a finished file's hash are popped from `waiters`."""
    work = [(it, d) for it, d in batch if needs_model(it, d)]
    if len(work) != (len(out.captions) if out is not None else 0):
        # A runner that chose its model work by another rule would store captions under
        # the wrong pictures: refuse loudly instead.
        raise ImgcapError(f"internal: {len(work)} pictures need the model, output differs")
    rows = BatchRows(
        results=[
            ResultRecord(
                result_key(it, d),
                out.captions[i],
                out.image_vecs[i],
                out.caption_vecs[i],
                pending=out.pending,
            )
            for i, (it, d) in enumerate(work)
        ]
    )
    for it, d in batch:
        rows.files[it.path] = file_record(it, d.meta)
        if "at_s" in d.extra:
            # A video's row is written with its first keyframes, so a run killed half-way
            # keeps them (the next one skips their model work); it counts as done, and
            # duplicates follow, only with its last keyframe.
            rows.keyframes.append(FrameRecord(it.content_hash, round(d.extra["at_s"] * 1000)))
            if d.frame < d.extra["keyframes"] - 1:
                continue
            n = d.extra["keyframes"]
            rows.videos.append(VideoRecord(it.content_hash, n, d.extra.get("duration")))
        rows.done.append(it)
        for dup in waiters.pop(it.content_hash, []):
            rows.files[dup.path] = file_record(dup, d.meta)
            rows.dups.append(dup)
    return rows

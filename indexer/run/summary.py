"""What an index run reports: live `Progress` counters while it runs, an `IndexSummary` at the
end (the `--json` output of `imgcap index`). The library only counts; the CLI renders."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Progress:
    """Live counters for the progress display (the CLI renders them; the library only counts)."""

    found: int = 0  # image files the walk found
    todo: int = 0  # files that need hashing / decoding / model work
    done: int = 0  # of todo: finished (indexed, reused or failed)
    skipped: int = 0  # unchanged, or failed before with the same size and mtime
    failed: int = 0
    captioned: int = 0  # images that went through the model
    started: float = field(default_factory=time.monotonic)
    model_started: float | None = None  # first model batch began (for images/s)
    phase: str = "scanning"  # scanning | indexing | finishing | captioning

    def images_per_s(self) -> float:
        if self.model_started is None or not self.captioned:
            return 0.0
        return self.captioned / max(time.monotonic() - self.model_started, 1e-9)


@dataclass
class IndexSummary:
    """What a run did, by file: the `--json` output of `imgcap index`."""

    model: str
    # Each file under the roots is counted once, in one of: new, changed, model_added, moved,
    # unchanged, failed_this_run, failures_standing. The text summary prints these same words.
    new: int = 0  # paths not indexed before (including duplicates of indexed content)
    changed: int = 0  # indexed paths whose content changed
    model_added: int = 0  # indexed paths, content unchanged, captioned with this model first now
    updated: int = 0  # changed + model_added: `--json` scripts read this one number
    moved: int = 0  # new paths whose content left an old path in this run (old path dropped)
    unchanged: int = 0
    removed: int = 0  # indexed paths that disappeared (moves not included)
    failed_this_run: int = 0  # files tried in this run that failed (`failures` lists them)
    failures_standing: int = 0  # failed before and unchanged since: not tried again
    failed: int = 0  # failed_this_run + failures_standing: files not indexed because they fail
    captioned: int = 0  # images that went through the model (unique content, so <= files)
    # --captions after|later (indexer/run/pending_captions.py): results captioned in this run
    # from their stored image vectors, and results still waiting for a caption after it.
    captioned_from_vectors: int = 0
    captions_pending: int = 0
    reused: int = 0  # files that got stored results by content hash, with no model work
    places_named: int = 0  # photos whose place was named from their GPS (metadata/places.py)
    # Pictures (photos, keyframes) read for text in this run (indexer/run/text_reading.py), and
    # how many of them show some.
    text_read: int = 0
    text_found: int = 0
    # Unchanged photos indexed before perceptual hashes existed, decoded for one (no model work).
    perceptual_hashed: int = 0
    similar_groups: int = 0  # groups of near-duplicates after the run (indexer/run/similar.py)
    failed_reasons: dict[str, int] = field(default_factory=dict)  # this run's: reason -> count
    failures: list[dict[str, str]] = field(default_factory=list)  # [{path, reason}] of this run
    interrupted: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    images_per_s: float = 0.0  # captioned images / model-phase seconds
    batch_size: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # model, store, waiting for decode
    would_process: list[str] = field(default_factory=list)  # dry run: paths to decode/reuse
    would_move: list[dict[str, str]] = field(default_factory=list)  # dry run: [{from, to}]
    would_remove: list[str] = field(default_factory=list)  # dry run: paths to drop
    warnings: list[str] = field(default_factory=list)  # e.g. a root that looks unmounted
    # Roots gone from here found whole in a folder given to the run, repointed there first
    # (as `imgcap roots move`): [{from, to, photos}].
    roots_moved: list[dict[str, Any]] = field(default_factory=list)
    # Files the walk skipped as not images (not hidden, not excluded): extension -> count.
    unsupported: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

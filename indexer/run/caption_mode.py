"""The caption mode of an index run: when its photos get their captions (`--captions`).

now: in one pass with the image vector; after: every photo's image vector first, then captions
from the stored vectors in the same run (indexer/run/pending_captions.py); later: image vectors
only, captioned by `imgcap caption-pending` or a later run; auto: picked for the device.
"""

from __future__ import annotations

from typing import Any

from indexer.config import Settings
from indexer.errors import UsageError

CAPTION_MODES = ("auto", "now", "after", "later")


def needs_grid(model: Any) -> bool:
    """Whether `model`'s captioner needs CLIP's grid, which the store does not keep."""
    return bool(getattr(model.captioner, "needs_grid", False))


def caption_mode(settings: Settings, model: Any = None) -> str:
    """now | after | later for a run with `settings` (and its loaded `model`, if any).

    auto: now on a CUDA GPU, where captions are expected to keep up with decoding (not measured
    here: no GPU was lent; BENCHMARKS.md's GPU targets are 20,000 greedy captions/s against 600
    decoded 12 MP photos/s, and the CPU figures put the captioner at about 1/3 of CLIP's cost per
    image per core), after elsewhere, where captions are most of the time (BENCHMARKS.md
    "Searchable first"). A
    captioner that needs CLIP's grid always captions now."""
    if settings.captions not in CAPTION_MODES:
        raise UsageError(f"unknown --captions {settings.captions!r} ({', '.join(CAPTION_MODES)})")
    if model is not None and needs_grid(model):
        return "now"
    if settings.captions != "auto":
        return settings.captions
    if model is not None:
        device = getattr(getattr(model, "device", None), "type", "cpu")
    else:
        from indexer.models.loading import resolve_device

        device = resolve_device(settings.device).type
    return "now" if device == "cuda" else "after"

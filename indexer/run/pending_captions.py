"""The captioning phase: captions for results stored with their image vector only.

`imgcap index --captions after` makes every new photo searchable by its CLIP image vector first
(plus tags, places, near-duplicate groups: nothing there needs a caption), then captions the
stored vectors in this phase, without decoding a photo again; `--captions later` stops before it,
and `imgcap caption-pending` (or any later `imgcap index` with captions now or after) runs it,
on this machine or on another one the database was copied to (indexer/store/merge.py brings the
captions back). Each batch is one transaction (indexer/store/pending_captions.py), so a phase
killed at any moment resumes where it stopped, with no caption made twice.

Captions made here are the captions one pass makes: a ClipCap prefix is the raw float32 CLIP
image vector (clipcap-reference.md §0: not L2-normalised for the MLP checkpoints; the transformer
checkpoint normalises inside the captioner, from the same raw vector), and the store keeps that
vector bit for bit (float32 little-endian, results.image_vec), so both paths feed the captioner
the same tensor. Batches differ between the two paths; greedy and beam decoding are batch
invariant (tests/test_models_clipcap.py). A captioner that also attends over CLIP's grid (the
show-attend-tell LSTM, `needs_grid`) needs more than the stored vector: it always captions in
one pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.run.caption_mode import needs_grid
from indexer.run.runner import _is_oom
from indexer.run.signals import sigterm_as_ctrl_c
from indexer.store.database import Store
from indexer.store.pending_captions import fill_captions, pending_batch, pending_counts


def count_pending(store: Store, model: str) -> int:
    """How many of `model`'s results wait for a caption."""
    return pending_counts(store.db.conn).get(model, 0)


def caption_stored(
    store: Store,
    model: Any,
    settings: Settings,
    on_batch: Callable[[int], None] = lambda n: None,
) -> int:
    """Caption every pending result of `model` from its stored image vector, batch by batch,
    one transaction each; `on_batch(n)` after each commit (a KeyboardInterrupt raised from it,
    or anywhere, loses at most the batch in flight). Returns how many were captioned."""
    import torch

    if needs_grid(model):
        raise UsageError(
            f"model {model.name!r} attends over CLIP's image grid, which the database does not"
            " keep: it captions in one pass only (imgcap index --captions now)"
        )
    device_type = getattr(getattr(model, "device", None), "type", "cpu")
    size = settings.batch_size_for(device_type)
    done = 0
    after = 0
    while True:
        batch = pending_batch(store.db.conn, model.name, size, after)
        if not batch.ids:
            return done
        try:
            with torch.no_grad():
                feats = torch.from_numpy(batch.image_vecs.copy())  # the stored float32, as is
                caps = model.captioner.caption(
                    feats, beams=settings.beams, max_tokens=settings.max_tokens
                )
                txt = model.encoder.encode_texts(list(caps)).float().numpy()
        except Exception as e:  # out of memory: half the batch, as the one-pass runner does
            if not _is_oom(e) or size == 1:
                raise
            size = max(1, size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        after = batch.ids[-1]
        done += fill_captions(store, model.name, batch.ids, list(caps), txt)
        on_batch(len(batch.ids))


@dataclass
class CaptionReport:
    """What `caption_database` did (the `--json` output of `imgcap caption-pending`)."""

    model: str | None = None  # the model whose results were captioned (None: none waited)
    captioned: int = 0
    pending: int = 0  # of this model's results, still without a caption afterwards
    other_models: dict[str, int] = field(default_factory=dict)  # model -> results still waiting
    interrupted: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def caption_database(
    settings: Settings,
    model: Any = None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> CaptionReport:
    """Caption the pending results of the database at `settings.db_path` (made here or on another
    machine) with the model `settings` names (the database's own, by default), under the writer
    lock. `on_progress(done, total)` after each batch. The model is loaded only when some result
    waits. Ctrl-C (or SIGTERM) keeps the batches committed: `interrupted` is set."""
    from indexer.store.lock import writer_lock

    t0 = time.monotonic()
    report = CaptionReport()
    if not settings.db_path.is_file():
        raise UsageError(f"{settings.db_path}: no such database")
    with sigterm_as_ctrl_c(), writer_lock(settings.db_path):
        with Store.open(settings.db_path) as store:  # migrated: it may come from an older imgcap
            waiting = pending_counts(store.db.conn)
            if waiting:
                if model is None:
                    from indexer.models.loading import load_model

                    model = load_model(settings.model, settings)
                report.model = model.name
                total = waiting.pop(model.name, 0)
                report.other_models = waiting

                def counted(n: int) -> None:
                    report.captioned += n
                    on_progress(report.captioned, total)

                if total:
                    try:
                        caption_stored(store, model, settings, counted)
                    except KeyboardInterrupt:
                        report.interrupted = True
                report.pending = count_pending(store, model.name)
    report.seconds = round(time.monotonic() - t0, 3)
    return report

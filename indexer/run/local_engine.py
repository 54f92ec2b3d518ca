"""The local engine of an index run (`--engine local`, the default): decode in worker processes
on this machine (indexer/run/workers.py), the model in batches in this process
(indexer/run/runner.py); every batch goes to the run's `commit`.

Up to `prefetch` images are in flight, so workers keep decoding while the model runs. A worker
that dies (a decoder bug, the OOM killer) is pinned on one file, which fails alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

from indexer.run.runner import ModelRunner
from indexer.run.scan import Item
from indexer.run.work import BatchOutput, DecodedItem, DecodeFailure, items_from_task
from indexer.run.workers import DecodePool, decode_for_model


class LocalEngine:
    """The decode worker pool and one model in this process, for one run at a time.

    `decode_task`: what a worker runs per file, `decode_task(path, size, resize=..., max_pixels=...,
    video=...)` → the decode task protocol (indexer/run/work.py `items_from_task`); tests pass one
    that crashes on some files.
    """

    def __init__(self, decode_task: Callable[..., tuple] = decode_for_model):
        self.decode_task = decode_task
        self.pool: DecodePool | None = None
        self.runner: ModelRunner | None = None

    @property
    def batch_size(self) -> int:
        """The model batch size at the end (halved on out-of-memory; 0: the model never ran)."""
        return self.runner.batch_size if self.runner else 0

    def before_plan(self, run) -> None:
        """A run begins (a killed local run leaves nothing but committed batches)."""
        self.runner = None

    def process(self, run, todo: list[Item]) -> None:
        """`run`: the index run (indexer/run/pipeline.py `Run`). Hash → route → decode in
        workers → model batches → store."""
        routed = run.routed(todo)
        pending: deque[tuple[Item, Future]] = deque()
        batch: list[tuple[Item, DecodedItem]] = []
        batch_size = 0
        prefetch = 0

        def fill() -> None:
            while len(pending) < prefetch:
                item = next(routed, None)
                if item is None:
                    return
                pending.append((item, self.pool.submit(item.path, size)))

        # Reuse-only runs (moves, duplicates) never touch the model or the workers.
        first = next(routed, None)
        if first is None:
            return
        settings = run.settings
        video = (settings.video_gap, settings.video_max_frames)
        self.pool = DecodePool(
            run.workers, self.decode_task, run.max_pixels, video, resize=settings.resize
        )
        # Loading the model (imports, weights: seconds, one core) and decoding the first photos
        # overlap when the model's files say its input size; a wrong guess is decoded again.
        size = _input_size_hint(run)
        if size:
            pending.append((first, self.pool.submit(first.path, size)))
            prefetch = 2 * settings.batch_size_for("cpu") + 2 * run.workers
            fill()
        model = run.load_model(settings)
        device_type = getattr(getattr(model, "device", None), "type", "cpu")
        self.runner = ModelRunner(model, settings, settings.batch_size_for(device_type))
        batch_size = self.runner.batch_size
        # Enough decoded images queued that workers keep going while a batch is in the model.
        prefetch = 2 * batch_size + 2 * run.workers
        if size != model.encoder.image_size:
            size = model.encoder.image_size
            queued = [first] if not pending else [it for it, _ in pending]
            for _, fut in pending:
                fut.cancel()
            pending.clear()
            pending.extend((it, self.pool.submit(it.path, size)) for it in queued)
        fill()
        while pending:
            item, fut = pending.popleft()
            t = time.monotonic()
            try:
                res = fut.result()
            except BrokenProcessPool:
                # A worker died (a decoder bug, the OOM killer) and took every queued task with
                # it. Retry this file alone in a fresh pool: if that dies too, it is the culprit.
                # The rest are resubmitted; a culprit among them reaches the head and is caught.
                res = self.pool.isolated(item.path, size)
                again = [(it, self.pool.submit(it.path, size)) for it, _ in pending]
                pending.clear()
                pending.extend(again)
            run.timings["decode_wait"] += time.monotonic() - t
            fill()
            decoded = items_from_task(item.path, res)
            if isinstance(decoded, DecodeFailure):
                run.failed(item, decoded.reason)
                continue
            batch.extend((item, d) for d in decoded)
            # A video brings all its keyframes at once: batches stay batch_size, each its own
            # transaction, so a run killed inside a long video keeps what it captioned.
            while len(batch) >= batch_size:
                self._run_batch(run, batch[:batch_size])
                batch = batch[batch_size:]
                fill()
        if batch:
            self._run_batch(run, batch)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def _run_batch(self, run, batch: list[tuple[Item, DecodedItem]]) -> None:
        """Model work for one batch (work.process_tensor through the runner), then `commit`."""
        work = [d for it, d in batch if run.needs_model(it, d)]
        out: BatchOutput | None = None
        if work:
            if run.progress.model_started is None:
                run.progress.model_started = time.monotonic()
            t = time.monotonic()
            out = self.runner.process([d.pixels for d in work])
            run.timings["model"] += time.monotonic() - t
        run.commit(batch, out)


def _input_size_hint(run) -> int | None:
    """The model input side before the model is loaded: the given model's, or what its files
    say (None: unknown, decoding waits for the load)."""
    from indexer.models.loading import expected_input_size

    if run.model is not None:
        return run.model.encoder.image_size
    return expected_input_size(run.settings.model, run.settings)

"""One index run: walk → skip unchanged → hash → reuse → decode (workers) → CLIP → caption →
caption vectors → store, one transaction per batch.

Stages, all driven from `index_paths` in the main process:

1. walk the roots (nothing opened) and compare each file with the store: same path, size and
   mtime_ns and a result for this model → unchanged, skipped without opening it;
2. hash the rest in a few threads (hashlib releases the GIL); a content hash that already has a
   result for this model is reused with no model work (moved, renamed, duplicated, touched files);
3. decode the rest in worker PROCESSES: decode_image (draft-mode JPEG, EXIF orientation) plus the
   CLIP eval resize + centre crop, sent back as (S, S, 3) uint8 — 4× less to pickle than float32.
   Up to `_prefetch` images are in flight, so workers keep decoding while the model runs;
4. per batch: normalise → `encode_images` ONCE → the same features go to the captioner and are
   stored as the image vector → `encode_texts(captions)` → one store transaction.

Failures of single files are recorded (store `failures`) and reported, never fatal. Garbage
(results no file references) is collected once at the end, so reuse routed earlier in a run can
never point at a result deleted meanwhile. Ctrl-C abandons the batch in flight (its transaction
never commits), records what was learned and returns a summary with `interrupted=True`. A SIGKILL
loses at most the batch in flight: the next run skips everything committed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.errors import BadImageError, ImgcapError, UsageError
from indexer.store import (
    META_COLUMNS,
    FailureRecord,
    FileRecord,
    FileState,
    ResultRecord,
    Store,
    writer_lock,
)
from indexer.walk import FileEntry, WalkProblem, content_hash, walk

# Default images per model batch when Settings.batch_size is 0. CPU: large enough to amortise
# per-call overhead, small enough that the first results land quickly; GPU: fills an H100 with
# ViT-B/32 + GPT-2 greedy decoding and halves itself on out-of-memory.
HASH_THREADS = 4  # hashing is I/O + C code that releases the GIL; a few threads keep disks busy
WORKER_NICENESS = 10  # decode workers yield the CPU to the model (see _init_worker)
MAX_CRASHES_IN_A_ROW = 3  # decode worker deaths, each pinned on one file, before giving up
REUSE_FLUSH = 512  # files reused without model work are written in transactions of this size


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
    phase: str = "scanning"  # scanning | indexing | finishing

    def images_per_s(self) -> float:
        if self.model_started is None or not self.captioned:
            return 0.0
        return self.captioned / max(time.monotonic() - self.model_started, 1e-9)


@dataclass
class IndexSummary:
    """What a run did, by file: the `--json` output of `imgcap index`."""

    model: str
    new: int = 0  # paths not indexed before (including duplicates of indexed content)
    updated: int = 0  # indexed paths whose content changed, or that lacked this model's results
    moved: int = 0  # new paths whose content left an old path in this run (old path dropped)
    unchanged: int = 0
    removed: int = 0  # indexed paths that disappeared
    failed: int = 0  # files that are not indexed because they failed (this run or before)
    captioned: int = 0  # images that went through the model
    reused: int = 0  # files that got stored results by content hash, with no model work
    failed_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count, top first
    failures: list[dict[str, str]] = field(default_factory=list)  # [{path, reason}] of this run
    interrupted: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    images_per_s: float = 0.0  # captioned images / model-phase seconds
    batch_size: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # model, store, waiting for decode
    would_process: list[str] = field(default_factory=list)  # dry run: paths to hash/decode
    would_remove: list[str] = field(default_factory=list)  # dry run: paths to drop
    warnings: list[str] = field(default_factory=list)  # e.g. a root that looks unmounted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Item:
    """One file on its way through the pipeline."""

    entry: FileEntry
    path: str
    known: FileState | None  # the stored row for this path, if any
    content_hash: str | None = None
    kind: str = "new"  # new | updated | moved | unchanged: what the summary counts it as
    need_model: bool = True  # False: results exist, only the metadata must be decoded


# ------------------------------------------------------------------------------ worker process
def _init_worker() -> None:
    # Ctrl-C goes to the whole process group: the main process decides what happens, workers
    # must not die with half-sent results.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # On a CPU-only machine the model's OpenMP threads and the decoders share the cores; an
    # OpenMP barrier that waits on a descheduled thread stalls a whole scheduler slice (3-6×
    # slower model measured on 2 busy cores). Decoding is ~10 % of the model's CPU time, so it
    # runs at a lower priority and fills the gaps; with a GPU nobody competes and it changes
    # nothing.
    if hasattr(os, "nice"):
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass


def decode_for_model(path: str, size: int) -> tuple:
    """Worker task: decode one file and apply CLIP's eval geometry (bicubic shortest-side resize
    to `size`, centre crop). Returns ("ok", metadata dict, (size, size, 3) uint8 array) or
    ("bad", reason). Top-level so that spawn/forkserver workers can import it."""
    from indexer.decode import decode_image

    try:
        decoded = decode_image(path, min_side=size)
        pixels = clip_geometry(decoded.image, size)
    except BadImageError as e:
        return ("bad", e.reason)
    except Exception as e:  # noqa: BLE001 - one strange file must never stop a run
        return ("bad", f"decoder error: {type(e).__name__}: {e}")
    meta = {k: getattr(decoded, k) for k in META_COLUMNS}
    return ("ok", meta, pixels)


def clip_geometry(image, size: int) -> np.ndarray:
    """The geometric half of open_clip's eval transform, on PIL: Resize(size, BICUBIC) of the
    short side (torchvision rounds the long side down) then CenterCrop(size). (S, S, 3) uint8."""
    from PIL import Image

    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


# The worker task; a module attribute so that fault-injection tests can swap in a crashing one.
DECODE_TASK = decode_for_model


def _pool_context() -> multiprocessing.context.BaseContext:
    # Never plain fork: the main process has torch's thread pools running. forkserver forks
    # workers from a clean server process (cheap per worker); spawn where that does not exist.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # "__main__" once in the server, or every worker re-runs the main script (pytest, typer:
        # seconds per worker); indexer.decode brings Pillow along.
        ctx.set_forkserver_preload(["__main__", "indexer.decode"])
    return ctx


# ---------------------------------------------------------------------------------- the model
def pixels_to_tensor(pixels: list[np.ndarray], mean, std, device=None):
    """List of (S, S, 3) uint8 → (B, 3, S, S) float32 normalised: ToTensor + Normalize.

    The uint8 batch moves to `device` first: 4× less to copy to a GPU than float32, and the
    float work happens there."""
    import torch

    x = torch.from_numpy(np.stack(pixels))  # (B, S, S, 3) uint8
    if device is not None and torch.device(device).type != "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def _is_oom(e: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


class _ModelRunner:
    """Runs batches through CLIP once + captioner + text encoder; halves the batch on OOM."""

    def __init__(self, model, settings: Settings, batch_size: int):
        self.model = model
        self.settings = settings
        self.batch_size = batch_size
        enc = model.encoder
        self.mean = getattr(enc, "mean", (0.48145466, 0.4578275, 0.40821073))
        self.std = getattr(enc, "std", (0.26862954, 0.26130258, 0.27577711))

    def run(self, pixels: list[np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(B, S, S, 3) uint8 images → image vectors (B, D), captions, caption vectors (B, D)."""
        import torch

        x = pixels_to_tensor(pixels, self.mean, self.std, getattr(self.model, "device", None))
        out_img, out_cap, out_txt = [], [], []
        i = 0
        while i < len(pixels):
            chunk = x[i : i + self.batch_size]
            try:
                feats = self.model.encoder.encode_images(chunk)  # (b, D) raw, float32, CPU
                caps = self.model.captioner.caption(
                    feats, beams=self.settings.beams, max_tokens=self.settings.max_tokens
                )
                txt = self.model.encoder.encode_texts(caps)  # (b, D)
            except Exception as e:
                if not _is_oom(e) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            out_img.append(feats.float().numpy())
            out_cap.extend(caps)
            out_txt.append(txt.float().numpy())
            i += len(chunk)
        return np.concatenate(out_img), out_cap, np.concatenate(out_txt)


# ------------------------------------------------------------------------------------- the run
def index_paths(
    roots: list[Path],
    settings: Settings,
    *,
    dry_run: bool = False,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    model: Any = None,
) -> IndexSummary:
    """Index every image under `roots` into the database at `settings.db_path`.

    `model`: an already loaded Model (tests, benchmarks); by default `load_model(settings.model)`
    is called, and only when some image needs model work. Raises StoreError when another run
    holds the database; per-file problems end up in the summary and the `failures` table.
    """
    top = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots]
    if not top:
        raise UsageError("give at least one folder or file to index")
    missing = [r for r in top if not os.path.exists(r)]
    if missing:
        raise UsageError(f"not found: {', '.join(missing)}")
    if dry_run:
        return _dry_run(top, settings, retry_failed)
    with writer_lock(settings.db_path), Store.open(settings.db_path) as store:
        return _Run(top, settings, store, retry_failed, on_progress, model).execute()


def _model_name(settings: Settings, model: Any) -> str:
    """The name results are stored under, without loading weights when the registry can tell."""
    if model is not None:
        return model.name
    from indexer import models

    name = settings.model
    if models.is_model_dir(name):
        return models.read_spec(Path(name).expanduser())["name"]
    if name in models.REGISTRY:
        return name  # a registry model's spec carries its registry name
    return models.load_model(name, settings).name  # raises the error that explains the name


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _scan(top: list[str], settings: Settings, progress: Progress | None = None):
    """Walk the roots: (entries, problems)."""
    entries: list[FileEntry] = []
    problems: list[WalkProblem] = []
    for found in walk(top, extensions=settings.extensions, include_hidden=settings.include_hidden):
        if isinstance(found, WalkProblem):
            problems.append(found)
        else:
            entries.append(found)
            if progress is not None:
                progress.found += 1
    return entries, problems


def _dry_run(top: list[str], settings: Settings, retry_failed: bool) -> IndexSummary:
    """What a run would do, reading nothing but the walk and the database (no hashing, no
    model): moved files show up as new + removed, since telling them apart needs their hash."""
    entries, problems = _scan(top, settings)
    known: dict[str, FileState] = {}
    failed: dict[str, tuple] = {}
    have: set[str] = set()
    name = settings.model
    if settings.db_path.exists():
        with Store.open(settings.db_path, create=False) as store:
            known, failed = store.file_states(), store.failure_states()
            try:
                name = _model_name(settings, None)
            except ImgcapError:
                name = settings.model  # model not available: count as if no results yet
            have = store.result_hashes(name)
    summary = IndexSummary(model=name, dry_run=True)
    seen = set()
    for e in entries:
        p = str(e.path)
        seen.add(p)
        k = known.get(p)
        if k and (k.size, k.mtime_ns) == (e.size, e.mtime_ns) and k.content_hash in have:
            summary.unchanged += 1
        elif p in failed and failed[p][:2] == (e.size, e.mtime_ns) and not retry_failed:
            summary.failed += 1
        else:
            summary.would_process.append(p)
            if k:
                summary.updated += 1
            else:
                summary.new += 1
    reasons = Counter(pr.reason for pr in problems)
    reasons.update(failed[p][2] for p in failed if p in seen and failed[p][:2] != (None, None))
    summary.failed += len(problems)
    summary.failed_reasons = dict(reasons.most_common())
    blocked = [pr.path for pr in problems]
    summary.would_remove = sorted(
        p for p in known if _under(p, top) and p not in seen and not _under(p, blocked)
    )
    summary.removed = len(summary.would_remove)
    return summary


class _Run:
    """State of one (non-dry) run. `execute` is the whole algorithm; the rest are its steps."""

    def __init__(self, top, settings, store, retry_failed, on_progress, model):
        self.top: list[str] = top
        self.settings: Settings = settings
        self.store: Store = store
        self.retry_failed: bool = retry_failed
        self.on_progress = on_progress or (lambda p: None)
        self.model = model
        self.progress = Progress()
        self.runner: _ModelRunner | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.timings = Counter()
        self.failures: list[FailureRecord] = []  # recorded at the end (see module docstring)
        self.reuse_files: list[FileRecord] = []
        self.waiters: dict[str, list[_Item]] = {}  # content hash in flight -> later duplicates
        self.inflight: set[str] = set()
        self.last_report = 0.0
        self.crashes = 0  # consecutive files a decode worker died on

    # ----------------------------------------------------------------------------- algorithm
    def execute(self) -> IndexSummary:
        t0 = time.monotonic()
        name = _model_name(self.settings, self.model)
        self.summary = summary = IndexSummary(model=name)
        run_id = self.store.start_run(name)
        self._report(force=True)

        entries, problems = _scan(self.top, self.settings, self.progress)
        known = self.store.file_states()
        self.have = self.store.result_hashes(name)
        failed_before = self.store.failure_states()
        seen = {str(e.path) for e in entries}
        blocked = [pr.path for pr in problems]  # unreadable folders: keep what is under them
        # A root folder that is now completely empty while photos under it are indexed is far
        # more likely an unmounted drive's mount point than a deliberate delete: keep its rows.
        for root in self.top:
            if os.path.isdir(root) and not os.listdir(root):
                kept = sum(1 for p in known if _under(p, [root]))
                if kept:
                    blocked.append(root)
                    summary.warnings.append(
                        f"{root} is empty but {kept} indexed photos were under it (unmounted "
                        "drive?): kept them. If they were deleted on purpose, index the parent "
                        "folder to drop them."
                    )
        gone = [
            p for p in known if _under(p, self.top) and p not in seen and not _under(p, blocked)
        ]
        # Content that left an old path: a new path with the same hash is a move, not new.
        self.gone_hashes = Counter(known[p].content_hash for p in gone)

        todo: list[_Item] = []
        reasons = Counter()
        for e in entries:
            p = str(e.path)
            k = known.get(p)
            if k and (k.size, k.mtime_ns) == (e.size, e.mtime_ns):
                if k.content_hash in self.have:
                    summary.unchanged += 1
                    continue
                # Same bytes, but this model has no result yet (a model switch): no hashing.
                todo.append(_Item(e, p, k, content_hash=k.content_hash, kind="updated"))
            elif (
                p in failed_before
                and failed_before[p][:2] == (e.size, e.mtime_ns)
                and not self.retry_failed
            ):
                summary.failed += 1
                reasons[failed_before[p][2]] += 1
            else:
                todo.append(_Item(e, p, k))
        for pr in problems:
            self.failures.append(FailureRecord(pr.path, pr.reason))
        self.progress.skipped = summary.unchanged + summary.failed
        self.progress.todo = len(todo)
        self.progress.phase = "indexing"
        self._report(force=True)

        status = "completed"
        try:
            self._process(todo)
        except KeyboardInterrupt:
            summary.interrupted = True
            status = "interrupted"
        except BaseException:
            self._shutdown()
            self.store.finish_run(run_id, "failed", summary.to_dict())
            raise
        self._shutdown()

        self.progress.phase = "finishing"
        self._report(force=True)
        self._flush_reuse()
        self.store.record_failures(name, self.failures)
        if not summary.interrupted:
            # Removing needs the full walk + every new path processed (moves!), so only after a
            # completed run; an interrupted run leaves the old rows for the next one.
            problem_paths = set(blocked)  # recorded again above
            stale_failures = [
                p
                for p in failed_before
                if _under(p, self.top) and p not in seen and p not in problem_paths
            ]
            self.store.remove_paths(gone + stale_failures)
            summary.removed = max(0, len(gone) - summary.moved)
        self.store.collect_garbage()

        reasons.update(f.reason for f in self.failures)
        summary.failed += len(self.failures)
        summary.failed_reasons = dict(reasons.most_common())
        summary.failures = [{"path": f.path, "reason": f.reason} for f in self.failures]
        summary.captioned = self.progress.captioned
        summary.seconds = round(time.monotonic() - t0, 3)
        summary.images_per_s = round(self.progress.images_per_s(), 2)
        summary.batch_size = self.runner.batch_size if self.runner else 0
        summary.timings = {k: round(v, 3) for k, v in self.timings.items()}
        self.store.finish_run(run_id, status, summary.to_dict())
        self._report(force=True)
        return summary

    def _process(self, todo: list[_Item]) -> None:
        """Hash → route → decode in workers → model batches → store."""
        routed = self._route(self._hashed(todo))
        pending: deque[tuple[_Item, Future]] = deque()
        batch: list[tuple[_Item, dict, np.ndarray]] = []
        batch_size = 0
        prefetch = 0

        def fill() -> None:
            while len(pending) < prefetch:
                item = next(routed, None)
                if item is None:
                    return
                pending.append((item, self._submit(item, size)))

        # Reuse-only runs (moves, duplicates) never touch the model or the workers.
        first = next(routed, None)
        if first is None:
            return
        self._ensure_model()
        size = self.runner.model.encoder.image_size
        batch_size = self.runner.batch_size
        workers = self.settings.workers or os.cpu_count() or 1
        # Enough decoded images queued that workers keep going while a batch is in the model.
        prefetch = 2 * batch_size + 2 * workers
        self._new_pool(workers)
        pending.append((first, self._submit(first, size)))
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
                res = self._isolated(item, size, workers)
                again = [(it, self._submit(it, size)) for it, _ in pending]
                pending.clear()
                pending.extend(again)
            self.timings["decode_wait"] += time.monotonic() - t
            fill()
            if res[0] == "bad":
                self._failed(item, res[1])
                continue
            batch.append((item, res[1], res[2]))
            if len(batch) >= batch_size:
                self._run_batch(batch)
                batch = []
                fill()
        if batch:
            self._run_batch(batch)

    # ---------------------------------------------------------------------------------- steps
    def _new_pool(self, workers: int) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            workers, mp_context=_pool_context(), initializer=_init_worker
        )

    def _submit(self, item: _Item, size: int) -> Future:
        return self.pool.submit(DECODE_TASK, item.path, size)

    def _isolated(self, item: _Item, size: int, workers: int) -> tuple:
        self._new_pool(workers)
        try:
            res = self._submit(item, size).result()
        except BrokenProcessPool:
            self.crashes += 1
            if self.crashes >= MAX_CRASHES_IN_A_ROW:
                # Not one bad file but workers that cannot run at all (broken install, no memory).
                raise ImgcapError(
                    f"decode workers died on {self.crashes} files in a row (last: {item.path}); "
                    "try --workers 1, and check memory and the Pillow installation"
                ) from None
            self._new_pool(workers)
            return ("bad", "the decoder crashed on this file")
        self.crashes = 0
        return res

    def _hashed(self, todo: list[_Item]) -> Iterator[_Item]:
        """Items with their content hash, computed a few files ahead in threads."""
        with ThreadPoolExecutor(HASH_THREADS) as hasher:
            ahead: deque[tuple[_Item, Future | None]] = deque()
            it = iter(todo)
            for item in it:
                fut = None if item.content_hash else hasher.submit(content_hash, item.path)
                ahead.append((item, fut))
                if len(ahead) >= 64:
                    break
            while ahead:
                item, fut = ahead.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    f2 = None if nxt.content_hash else hasher.submit(content_hash, nxt.path)
                    ahead.append((nxt, f2))
                if fut is not None:
                    try:
                        item.content_hash = fut.result()
                    except OSError as e:
                        reason = (
                            "vanished during the scan"
                            if isinstance(e, FileNotFoundError)
                            else (e.strerror or str(e)).lower()
                        )
                        self._failed(item, reason)
                        continue
                yield item

    def _route(self, items: Iterator[_Item]) -> Iterator[_Item]:
        """Decide per hashed item: reuse stored results, wait for an identical file already in
        flight, or decode (yielded, in order)."""
        for item in items:
            h = item.content_hash
            assert h is not None
            if item.known is None:
                if self.gone_hashes[h] > 0:
                    self.gone_hashes[h] -= 1
                    item.kind = "moved"
            elif item.known.content_hash == h and h in self.have:
                item.kind = "unchanged"  # touched: new mtime, same bytes, results there
            else:
                item.kind = "updated"
            if h in self.inflight:
                self.waiters.setdefault(h, []).append(item)
                continue
            if h in self.have:
                meta = self.store.metadata_for_hashes([h]).get(h)
                if meta is not None:
                    self._reused(item, meta)
                    continue
                item.need_model = False  # results exist, but nothing to copy metadata from
            self.inflight.add(h)
            yield item

    def _reused(self, item: _Item, meta: dict) -> None:
        self.reuse_files.append(self._record(item, meta))
        self._count(item, reused=True)
        if len(self.reuse_files) >= REUSE_FLUSH:
            self._flush_reuse()

    def _flush_reuse(self) -> None:
        if self.reuse_files:
            t = time.monotonic()
            self.store.write_batch(self.summary.model, [], self.reuse_files)
            self.timings["store"] += time.monotonic() - t
            self.reuse_files = []
            self._report()

    def _run_batch(self, batch: list[tuple[_Item, dict, np.ndarray]]) -> None:
        """Model work for one batch, then ONE transaction with its results and files."""
        work = [(it, meta, px) for it, meta, px in batch if it.need_model]
        results: list[ResultRecord] = []
        if work:
            if self.progress.model_started is None:
                self.progress.model_started = time.monotonic()
            t = time.monotonic()
            img, caps, txt = self.runner.run([px for _, _, px in work])
            self.timings["model"] += time.monotonic() - t
            results = [
                ResultRecord(it.content_hash, caps[i], img[i], txt[i])
                for i, (it, _, _) in enumerate(work)
            ]
        files = []
        dups: list[_Item] = []  # identical files that waited for this batch's results
        for it, meta, _ in batch:
            files.append(self._record(it, meta))
            for dup in self.waiters.pop(it.content_hash, []):
                files.append(self._record(dup, meta))
                dups.append(dup)
        files.extend(self.reuse_files)  # ride along in the same transaction
        t = time.monotonic()
        self.store.write_batch(self.summary.model, results, files)
        self.timings["store"] += time.monotonic() - t
        self.reuse_files = []
        self.have.update(it.content_hash for it, _, _ in batch)
        for it, _, _ in batch:
            self.inflight.discard(it.content_hash)
            self._count(it, reused=not it.need_model)
        for dup in dups:
            self._count(dup, reused=True)
        self.progress.captioned += len(work)
        self._report()

    def _failed(self, item: _Item, reason: str) -> None:
        e = item.entry
        self.failures.append(FailureRecord(item.path, reason, e.size, e.mtime_ns))
        self.progress.failed += 1
        self.progress.done += 1
        h = item.content_hash
        if h is not None and h in self.inflight:
            self.inflight.discard(h)
            for dup in self.waiters.pop(h, []):  # byte-identical: fails the same way
                dup_e = dup.entry
                self.failures.append(FailureRecord(dup.path, reason, dup_e.size, dup_e.mtime_ns))
                self.progress.failed += 1
                self.progress.done += 1
        self._report()

    def _count(self, item: _Item, reused: bool) -> None:
        s = self.summary
        setattr(s, item.kind, getattr(s, item.kind) + 1)
        if reused:
            s.reused += 1
        self.progress.done += 1

    @staticmethod
    def _record(item: _Item, meta: dict) -> FileRecord:
        e = item.entry
        return FileRecord(
            path=item.path, size=e.size, mtime_ns=e.mtime_ns, content_hash=item.content_hash, **meta
        )

    def _ensure_model(self) -> None:
        if self.runner is not None:
            return
        model = self.model
        if model is None:
            from indexer.models import load_model

            t = time.monotonic()
            model = load_model(self.settings.model, self.settings)
            self.timings["load_model"] += time.monotonic() - t
        if model.name != self.summary.model:
            raise ImgcapError(f"model name changed while loading: {model.name}")
        device_type = getattr(getattr(model, "device", None), "type", "cpu")
        self.runner = _ModelRunner(model, self.settings, self.settings.batch_size_for(device_type))

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report >= 0.1:
            self.last_report = now
            self.on_progress(self.progress)

"""One index run: walk → skip unchanged → hash → reuse → decode (workers) → CLIP → caption →
caption vectors → store, one transaction per batch.

Stages, all driven from `index_paths` in the main process:

1. walk the roots (nothing opened) and compare each file with the store (indexer/run/scan.py): same
   path, size and mtime_ns and a result for this model → unchanged, skipped without opening it;
2. hash the rest in a few threads (hashlib releases the GIL), each file's header checked first
   (decode.check_header: a huge non-image or an image over the pixel cap fails without being
   read); a content hash that already has a result for this model is reused with no model work
   (moved, renamed, duplicated, touched files), and so is a pixel hash (the image data without
   its metadata, indexer/media/pixel_hash.py) that some stored file with a result has: tags
   edited in another program, same picture, the result copied with a person's caption;
3. decode the rest and run the model on them, in the run's engine: worker PROCESSES on this
   machine and the model in this one (indexer/run/local_engine.py, the default), or Ray Data
   tasks and actors on a cluster (indexer/run/ray_engine.py);
4. per batch (indexer/run/runner.py): normalise → `encode_images` ONCE → the same features go to
   the captioner and are stored as the image vector → `encode_texts(captions)` → one store
   transaction (`Run.commit`, the same for every engine). With `--captions after|later`
   (indexer/run/caption_mode.py) a batch stores the image vectors alone, and the captioning
   phase (indexer/run/pending_captions.py) captions them from the stored vectors once
   everything else is done: searchable first, captioned after.

Failures of single files are recorded (store `failures`) and reported, never fatal. Garbage
(results no file references) is collected once at the end, so reuse routed earlier in a run can
never point at a result deleted meanwhile. Ctrl-C abandons the batch in flight (its transaction
never commits), records what was learned and returns a summary with `interrupted=True`. A SIGKILL
loses at most the batch in flight: the next run skips everything committed.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from indexer.config import Settings
from indexer.errors import BadImageError, ImgcapError, StoreError, UsageError
from indexer.lifetime import sweep_mp_temp_dirs
from indexer.media import walk
from indexer.media.decode import check_header
from indexer.media.exif import file_metadata
from indexer.media.pixel_hash import pixel_hash
from indexer.run import scan
from indexer.run.batch_rows import batch_rows, file_record, result_key
from indexer.run.caption_mode import caption_mode, needs_grid
from indexer.run.local_engine import LocalEngine
from indexer.run.pending_captions import caption_stored, count_pending
from indexer.run.scan import (
    Item,
    Plan,
    RootMove,
    classify,
    hash_error,
    model_name,
    moved_root_warnings,
    plan,
)
from indexer.run.signals import sigterm_as_ctrl_c
from indexer.run.summary import IndexSummary, Progress
from indexer.run.work import BatchOutput, DecodedItem
from indexer.store.database import Store
from indexer.store.lock import writer_lock
from indexer.store.records import FailureRecord, FileRecord
from indexer.store.roots import add_roots, folders_of, move_root, under_any
from indexer.store.thumbnail_files import prune_thumbnails

HASH_THREADS = 4  # hashing is I/O + C code that releases the GIL; a few threads keep disks busy
REUSE_FLUSH = 512  # files reused without model work are written in transactions of this size
TAG_WARNINGS = 20  # problems with photos' own tags named in the summary; the rest counted


class Engine(Protocol):
    """How a run decodes and captions the files that need it: a decode pool on this machine
    (indexer/run/local_engine.py) or Ray Data (indexer/run/ray_engine.py). The `Run` does the
    rest, and an engine reaches it only through the run's public attributes and methods. One
    engine object serves one run at a time."""

    batch_size: int  # the model batch size the run ended with, for the summary (0: no model)

    def before_plan(self, run: Run) -> None:
        """A run begins, before its walk: recover what a killed run left (Ray's staged shards)."""

    def process(self, run: Run, todo: list[Item]) -> None:
        """Decode and caption the files of `run.routed(todo)`, committing batch by batch with
        `run.commit` and recording bad files with `run.failed`."""

    def close(self) -> None:
        """Release workers; called once after `process`, also when it raised."""


def index_paths(
    roots: list[Path],
    settings: Settings,
    *,
    dry_run: bool = False,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    model: Any = None,
    engine: Engine | None = None,
    text_reader: Any = None,
) -> IndexSummary:
    """Index every image under `roots` into the database at `settings.db_path`.

    `model`: an already loaded Model (tests, benchmarks); by default `load_model(settings.model)`
    is called, and only when some image needs model work. `engine`: what decodes and captions
    (tests, benchmarks); by default the one `settings.engine` names. `text_reader`: a loaded
    indexer/models/ocr.py TextReader (tests, benchmarks); by default one is loaded when some
    picture needs reading and the run reads text (text_reading.wants_text). Raises StoreError when
    another run holds the database; per-file problems end up in the summary and the `failures`
    table.
    """
    if any(os.fspath(r) == "" for r in roots):
        # abspath("") is the current folder: a shell variable that expanded to nothing would
        # index it and make it a root.
        raise UsageError("an empty path was given: name the folder (`imgcap index .` for this one)")
    top = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots]
    if not top:
        raise UsageError("give at least one folder or file to index")
    missing = [r for r in top if not os.path.exists(r)]
    if missing:
        raise UsageError(f"not found: {', '.join(missing)}")
    if settings.engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {settings.engine!r} (local or ray)")
    if settings.engine == "ray":
        # Ray's actors caption in one pass (its rows carry no pending mark): a cluster's GPUs
        # keep up with decoding anyway.
        if settings.captions in ("after", "later"):
            raise UsageError("--captions after|later works with --engine local only")
        settings = replace(settings, captions="now")
    if engine is None and not dry_run:
        engine = _engine_for(settings)
    from indexer.run.text_reading import wants_text

    read_text = wants_text(settings)  # before any work: a missing extra asked for is an error
    sweep_mp_temp_dirs()  # what killed runs left in the temp folder
    with sigterm_as_ctrl_c():
        if dry_run:
            return scan.dry_run(top, settings, retry_failed)
        with writer_lock(settings.db_path), Store.open(settings.db_path) as store:
            # A root gone from here whose photos are all in a folder given now moved there:
            # repointed first, so the run finds them unchanged (scan.moved_roots).
            moves = scan.moved_roots(store, folders_of(top))
            for m in scan.unambiguous(moves):
                move_root(store.db, settings.db_path, m.old, m.new)
            # Before any file row is written, so each finds its root (a trigger).
            add_roots(store.db, folders_of(top), settings.db_path)
            run = Run(top, settings, store, engine, retry_failed, on_progress, model)
            run.root_moves = moves
            run.read_text, run.text_reader = read_text, text_reader
            return run.execute()


def _engine_for(settings: Settings) -> Engine:
    """The engine `settings.engine` names. Ray is imported here, before any work, so that a
    missing Ray is a UsageError that says how to install it."""
    if settings.engine == "ray":
        from indexer.run.ray_engine import RayEngine, import_ray

        import_ray()
        return RayEngine()
    return LocalEngine()


def _model_source(settings: Settings, name: str) -> str | None:
    """Where the model stored as `name` loads from (remembered in the database, so a search
    needs no --model): the absolute model directory, or the registry name."""
    from indexer.models.model_dir import is_model_dir

    if is_model_dir(settings.model):
        return str(Path(settings.model).expanduser().resolve())
    return settings.model if settings.model == name else None  # None: a model passed in


class Run:
    """State of one (non-dry) run. `execute` is the whole algorithm; the rest are its steps.

    What an engine uses: `settings`, `store`, `model` (the one handed to index_paths, or None),
    `workers`, `max_pixels`, `progress`, `timings` and `summary` (read, or counters added to),
    and the steps `routed`, `load_model`, `needs_model`, `commit` and `failed`.
    """

    def __init__(
        self,
        top: list[str],
        settings: Settings,
        store: Store,
        engine: Engine,
        retry_failed: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
        model: Any = None,
    ):
        self.top = top
        self.settings = settings
        self.store = store
        self.engine = engine
        self.retry_failed = retry_failed
        self.on_progress = on_progress or (lambda p: None)
        self.model = model
        self.root_moves: list[RootMove] = []  # set by index_paths (scan.moved_roots)
        self.progress = Progress()
        self.timings: Counter[str] = Counter()  # seconds by step, into the summary
        self.failures: list[FailureRecord] = []  # recorded at the end (see module docstring)
        self.reuse_files: list[FileRecord] = []
        self.waiters: dict[str, list[Item]] = {}  # content hash in flight -> later duplicates
        self.inflight: set[str] = set()
        self.last_report = 0.0
        # Unchanged photos decoded only for their perceptual hash (indexed before it existed).
        self.backfill: set[str] = set()
        self.read_text = False  # set by index_paths (text_reading.wants_text)
        self.text_reader: Any = None  # a loaded TextReader handed to index_paths, or None
        self.loaded: Any = None  # the model `load_model` loaded for this run's settings
        self.workers = settings.workers or os.cpu_count() or 1
        self.max_pixels = settings.max_pixels_for(self.workers)  # --max-megapixels or memory

    # ----------------------------------------------------------------------------- algorithm
    def execute(self) -> IndexSummary:
        t0 = time.monotonic()
        name = model_name(self.settings, self.model)
        self.summary = summary = IndexSummary(model=name)
        done = scan.unambiguous(self.root_moves)
        summary.warnings.extend(moved_root_warnings(self.root_moves, done))
        summary.roots_moved = [{"from": m.old, "to": m.new, "photos": m.photos} for m in done]
        run_id = self.store.start_run(name, source=_model_source(self.settings, name))
        found: Plan | None = None
        status = "completed"
        try:
            self._report(force=True)
            self.engine.before_plan(self)
            self.have = self.store.result_hashes(name)  # grows as batches commit
            self.had = frozenset(self.have)
            found = self._plan()
            self.engine.process(self, found.todo)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see signals.sigterm_as_ctrl_c)
            summary.interrupted = True
            status = "interrupted"
        except BaseException as e:
            self.engine.close()
            self._stopped(run_id, "failed", e)
            raise
        try:
            self.engine.close()
            self._finish(found)
        except BaseException as e:
            # A second Ctrl-C while finishing: what was committed is kept, and the run is
            # marked for what it is, not left 'running'.
            stopped = summary.interrupted or isinstance(e, KeyboardInterrupt)
            self._stopped(run_id, "interrupted" if stopped else "failed", e)
            raise
        try:
            if not summary.interrupted:
                self._caption_stored()
        except KeyboardInterrupt:  # captions committed so far are kept; the next run resumes
            summary.interrupted = True
            status = "interrupted"
        except BaseException as e:
            self._stopped(run_id, "failed", e)
            raise
        summary.captions_pending = count_pending(self.store, summary.model)
        summary.seconds = round(time.monotonic() - t0, 3)
        self.store.finish_run(run_id, status, summary.to_dict())
        self._report(force=True)
        return summary

    def _stopped(self, run_id: int, status: str, error: BaseException) -> None:
        """The run stops on `error`. Mark it, if the database still takes a write (a full disk
        may not; the user then sees the first error, not this one). A StoreError carries the
        summary of what was committed, so the CLI can print it before the message."""
        self.summary.captioned = self.progress.captioned
        try:
            self.store.finish_run(run_id, status, self.summary.to_dict())
        except StoreError:
            pass
        if isinstance(error, StoreError):
            error.summary = self.summary

    def _plan(self) -> Plan:
        """Walk and compare with the store; count what needs no work."""
        summary = self.summary
        found = plan(
            self.top,
            self.settings,
            self.store.file_states(),
            self.store.failure_states(),
            self.have,
            self.retry_failed,
            self.progress,
        )
        summary.warnings.extend(found.warnings)
        summary.unsupported = dict(found.unsupported.most_common())
        summary.unchanged = found.unchanged
        self._add_backfill(found)
        summary.failures_standing = sum(found.standing.values())
        # Content that left an old path: a new path with the same hash is a move, not new.
        self.gone_hashes = Counter(found.known[path].content_hash for path in found.gone)
        for pr in found.problems:
            self.failures.append(FailureRecord(pr.path, pr.reason))
        self.progress.skipped = summary.unchanged + summary.failures_standing
        self.progress.todo = len(found.todo)
        self.progress.phase = "indexing"
        self._report(force=True)
        return found

    def _add_backfill(self, found: Plan) -> None:
        """Unchanged photos with no perceptual hash go to the to-do list as decode-only items
        (need_model False): they get one without model work; counted apart, as unchanged."""
        from indexer.media.kinds import is_video
        from indexer.store.similar_groups import paths_without_perceptual_hash

        missing = paths_without_perceptual_hash(self.store.db.conn)
        if not missing:
            return
        queued = {it.path for it in found.todo}
        for e in found.entries:
            path = str(e.path)
            k = found.known.get(path)
            if path not in missing or path in queued or is_video(path) or k is None:
                continue
            if (k.size, k.mtime_ns) == (e.size, e.mtime_ns) and k.content_hash in self.have:
                item = Item(e, path, k, content_hash=k.content_hash, kind="unchanged")
                item.need_model = False
                found.todo.append(item)
                self.backfill.add(path)

    def _finish(self, found: Plan | None) -> None:
        """Record what was learned; after a complete walk and run, drop what disappeared.
        `found` is None when the run was stopped before the walk ended."""
        summary = self.summary
        self.progress.phase = "finishing"
        self._report(force=True)
        self._flush_reuse()
        self.store.record_failures(summary.model, self.failures)
        if found is not None and not summary.interrupted:
            # Removing needs the full walk + every new path processed (moves!), so only after a
            # completed run; an interrupted run leaves the old rows for the next one.
            problem_paths = set(found.blocked)  # recorded again above
            stale_failures = [
                p
                for p in found.failed_before
                if under_any(p, self.top) and p not in found.seen and p not in problem_paths
            ]
            self.store.remove_paths(found.gone + stale_failures)
            summary.removed = max(0, len(found.gone) - summary.moved)
        self.store.collect_garbage()
        if found is not None and not summary.interrupted:
            # Photos of a root gone from here found in this run's folders by content.
            copies = scan.copied_roots(self.store, folders_of(self.top), self.root_moves)
            summary.warnings.extend(moved_root_warnings(copies, []))
        if not summary.interrupted:
            self._read_tags()
            self._name_places()
            self._read_texts()
            self._group_similar()
            # The gallery's thumbnails of content no file has any more (deleted, edited).
            prune_thumbnails(self.store)

        # Failures standing from earlier runs are counted apart, never as this run's failures.
        summary.failed_this_run = len(self.failures)
        summary.failed = summary.failed_this_run + summary.failures_standing
        summary.failed_reasons = dict(Counter(f.reason for f in self.failures).most_common())
        summary.failures = [{"path": f.path, "reason": f.reason} for f in self.failures]
        summary.captioned = self.progress.captioned
        summary.images_per_s = round(self.progress.images_per_s(), 2)
        summary.batch_size = self.engine.batch_size
        summary.timings = {k: round(v, 3) for k, v in self.timings.items()}

    def _caption_stored(self) -> None:
        """Searchable already: caption the results stored without one (this run's, with
        --captions after, or an earlier run's), from their stored image vectors."""
        if caption_mode(self.settings, self.loaded) == "later":
            return
        todo = count_pending(self.store, self.summary.model)
        if not todo:
            return
        model = self.loaded or self.load_model(self.settings)
        if needs_grid(model):
            return  # none of its results can be pending: it captions in one pass
        p = self.progress
        p.phase, p.todo, p.done = "captioning", todo, 0
        self._report(force=True)

        def counted(n: int) -> None:
            p.done += n
            self.summary.captioned_from_vectors += n
            self._report(force=True)  # once a batch: a few a second at most

        t = time.monotonic()
        try:
            caption_stored(self.store, model, self.settings, counted)
        finally:
            p.phase = "finishing"  # the run's last report, as after any run
            self.timings["caption_stored"] += time.monotonic() - t
            self.summary.timings["caption_stored"] = round(self.timings["caption_stored"], 3)

    def _read_tags(self) -> None:
        """The user's own tags of new, changed and re-tagged photos (a sidecar edited since
        the last run counts); never re-captions. Unreadable sources become warnings."""
        from indexer.metadata.tags import refresh_tags

        self.progress.phase = "reading tags"
        self._report(force=True)
        found = refresh_tags(self.store, self.top)
        shown = found.problems[:TAG_WARNINGS]
        self.summary.warnings.extend(f"tags not read: {p}" for p in shown)
        if len(found.problems) > len(shown):
            more = len(found.problems) - len(shown)
            self.summary.warnings.append(f"tags not read from {more} more sources")

    def _name_places(self) -> None:
        """Place names from stored GPS for photos that have none yet (offline gazetteer, loaded
        only when some photo needs it); photos indexed before places existed included."""
        from indexer.metadata.places import refresh_places

        self.progress.phase = "naming places"
        self._report(force=True)
        found = refresh_places(self.store)
        self.summary.places_named = found.geocoded
        if found.problem:
            self.summary.warnings.append(f"places not named: {found.problem}")

    def _read_texts(self) -> None:
        """The text in every picture with a result and no read yet (indexer/run/text_reading.py):
        this run's new content, and a library indexed before the step existed; never re-captions."""
        if not self.read_text:
            return
        from indexer.run.text_reading import read_new_text

        self.progress.phase = "reading text"
        self._report(force=True)

        def on_batch(done: int, total: int) -> None:
            self.progress.phase = f"reading text {done}/{total}"
            self._report()

        found = read_new_text(
            self.store, self.settings, self.max_pixels, self.text_reader, on_batch
        )
        self.summary.text_read, self.summary.text_found = found.read, found.with_text
        self.summary.warnings.extend(found.warnings)
        self.timings["read_text"] += found.seconds

    def _group_similar(self) -> None:
        """Rebuild the near-duplicate groups search collapses (indexer/run/similar.py): seconds
        for 100,000 photos, so skipped when this run changed no file row."""
        from indexer.run.similar import refresh_groups
        from indexer.store.similar_groups import count_groups

        s = self.summary
        touched = (s.new, s.changed, s.model_added, s.moved, s.removed, s.perceptual_hashed)
        if not any(touched) and not self.failures:
            s.similar_groups = count_groups(self.store.db.conn)
            return
        self.progress.phase = "grouping similar photos"
        self._report(force=True)
        t = time.monotonic()
        self.summary.similar_groups = refresh_groups(self.store.db, self.summary.model)
        self.timings["group_similar"] += time.monotonic() - t

    # ------------------------------------------------------------------ steps engines call
    def routed(self, todo: list[Item]) -> Iterator[Item]:
        """The items of `todo` that need decoding, in order, each with its content hash. The
        others are handled on the way: reused (stored results for the same content), held back
        behind an identical file in flight (they follow it in `commit`), or failed."""
        return self._route(self._hashed(todo))

    def load_model(self, settings: Settings) -> Any:
        """The model handed to index_paths, or else the one `settings` names, loaded (the run's
        settings, or an engine's variant of them: the Ray driver's copy runs on the CPU)."""
        model = self.model
        if model is None:
            from indexer.models.loading import load_model

            t = time.monotonic()
            model = load_model(settings.model, settings)
            self.timings["load_model"] += time.monotonic() - t
        if model.name != self.summary.model:
            raise ImgcapError(f"model name changed while loading: {model.name}")
        if settings is self.settings:
            self.loaded = model  # the captioning phase runs it again, not a second copy
        return model

    def needs_model(self, item: Item, d: DecodedItem) -> bool:
        """Whether picture `d` of `item` needs model work: a video keyframe captioned by an
        earlier, interrupted run needs none."""
        if "at_s" in d.extra:
            return item.need_model and result_key(item, d) not in self.have
        return item.need_model

    def commit(self, batch: list[tuple[Item, DecodedItem]], out: BatchOutput | None) -> None:
        """ONE transaction with a batch's results and files. `out` row i belongs to the i-th
        entry for which `needs_model` holds (None: none does). Every engine ends here."""
        rows = batch_rows(batch, out, self.needs_model, self.waiters)
        t = time.monotonic()
        self.store.write_batch(
            self.summary.model,
            rows.results,
            [*rows.files.values(), *self.reuse_files],  # reused files ride along
            keyframes=rows.keyframes,
            videos=rows.videos,
        )
        self.timings["store"] += time.monotonic() - t
        self.reuse_files = []
        self.have.update(r.content_hash for r in rows.results)
        self.have.update(it.content_hash for it in rows.done)
        for it in rows.done:
            self.inflight.discard(it.content_hash)
            self._count(it, reused=not it.need_model)
        for dup in rows.dups:
            self._count(dup, reused=True)
        self.progress.captioned += len(rows.results)
        self._report()

    def failed(self, item: Item, reason: str) -> None:
        """`item` cannot be indexed (recorded at the end); identical files waiting on it fail
        with it."""
        e = item.entry
        h = item.content_hash
        if item.path in self.backfill:
            # Indexed and unchanged: a decode that fails now (a lower pixel cap, an extra
            # uninstalled) must not drop it from the index; it just gets no perceptual hash.
            self.progress.done += 1
            if h in self.inflight:
                self.inflight.discard(h)
                self.progress.done += len(self.waiters.pop(h, []))
            return
        self.failures.append(FailureRecord(item.path, reason, e.size, e.mtime_ns))
        self.progress.failed += 1
        self.progress.done += 1
        if h is not None and h in self.inflight:
            self.inflight.discard(h)
            for dup in self.waiters.pop(h, []):  # byte-identical: fails the same way
                dup_e = dup.entry
                self.failures.append(FailureRecord(dup.path, reason, dup_e.size, dup_e.mtime_ns))
                self.progress.failed += 1
                self.progress.done += 1
        self._report()

    # ---------------------------------------------------------------------------------- steps
    def _hashed(self, todo: list[Item]) -> Iterator[Item]:
        """Items with their content hash, computed a few files ahead in threads."""
        with ThreadPoolExecutor(HASH_THREADS) as hasher:
            ahead: deque[tuple[Item, Future | None]] = deque()
            it = iter(todo)
            for item in it:
                fut = None if item.content_hash else hasher.submit(self._hash, item.path)
                ahead.append((item, fut))
                if len(ahead) >= 64:
                    break
            while ahead:
                item, fut = ahead.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    f2 = None if nxt.content_hash else hasher.submit(self._hash, nxt.path)
                    ahead.append((nxt, f2))
                if fut is not None:
                    try:
                        item.content_hash, item.pixel_hash = fut.result()
                    except BadImageError as e:
                        self.failed(item, e.reason)
                        continue
                    except OSError as e:
                        self.failed(item, hash_error(e))
                        continue
                yield item

    def _hash(self, path: str) -> tuple[str, str | None]:
        """The content and pixel hashes, only for a file whose header says it will be decoded:
        a 20 GB sparse ".jpg" is refused in milliseconds instead of read for 80 s. The pixel
        hash reads the file a second time (from the page cache): about the content hash's cost
        again for a JPEG, PNG or WebP, nothing for other formats."""
        check_header(path, self.max_pixels)
        return walk.content_hash(path), pixel_hash(path)

    def _route(self, items: Iterator[Item]) -> Iterator[Item]:
        """Decide per hashed item: reuse stored results, wait for an identical file already in
        flight, or decode (yielded, in order)."""
        for item in items:
            h = item.content_hash
            assert h is not None
            # Against the results there were before this run, as the dry run predicts it.
            item.kind = classify(item, self.gone_hashes, self.had)
            if h in self.inflight:
                self.waiters.setdefault(h, []).append(item)
                continue
            if h in self.have and item.need_model:  # else decode-only already (backfill)
                meta = self.store.metadata_for_hashes([h]).get(h)
                if meta is not None:
                    self._reused(item, meta)
                    continue
                item.need_model = False  # results exist, but nothing to copy metadata from
            elif item.pixel_hash is not None and self._reused_by_pixels(item):
                continue
            self.inflight.add(h)
            yield item

    def _reused_by_pixels(self, item: Item) -> bool:
        """New bytes, same picture as a stored file (its tags were edited): copy that file's
        result, a person's caption included, and take the tags and EXIF fields from this file's
        header; no decoding, no model. Counted as its kind (a changed path stays "changed")."""
        prefer = item.known.content_hash if item.known is not None else None
        h = item.content_hash
        source = self.store.reuse_by_pixels(self.summary.model, h, item.pixel_hash, prefer)
        if source is None:
            return False
        self.have.add(h)
        self._reused(item, {**source, **file_metadata(item.path)})
        return True

    def _reused(self, item: Item, meta: dict) -> None:
        self.reuse_files.append(file_record(item, meta))
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

    def _count(self, item: Item, reused: bool) -> None:
        s = self.summary
        if item.path in self.backfill:  # counted as unchanged by the plan already
            s.perceptual_hashed += 1
            self.progress.done += 1
            return
        setattr(s, item.kind, getattr(s, item.kind) + 1)
        if item.kind in ("changed", "model_added"):
            s.updated += 1
        if reused:
            s.reused += 1
        self.progress.done += 1

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_report >= 0.1:
            self.last_report = now
            self.on_progress(self.progress)

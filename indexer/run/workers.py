"""Decode workers: the processes that open images for an index run.

Each worker runs `decode_for_model` (indexer/media/preprocess.py model_pixels: decode_image +
the geometric half of CLIP's eval transform, in the run's --resize mode) and sends back
(S, S, 3) uint8 pixels, 4× less to pickle than float32. `DecodePool` owns the process pool and
its crash handling: a worker that dies is pinned on one file, which fails alone. The run's
options (--resize, the pixel cap, video keyframes) travel with every task.

Workers never outlive the run. They are forked by the forkserver, not by the main process, so a
parent-death signal alone would follow the forkserver; each worker also watches the main process
itself (see `_watch_parent`). The forkserver leaves by itself when the main process is gone (its
"alive" pipe reaches EOF), and the resource tracker when the last process holding its pipe has.
The temp folder multiprocessing leaves behind is removed by the next run (indexer/lifetime.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from indexer.errors import BadImageError, ImgcapError
from indexer.lifetime import claim_mp_temp_dir, die_with_parent, wait_for_exit
from indexer.store.records import META_COLUMNS

WORKER_NICENESS = 10  # decode workers yield the CPU to the model (see init_worker)
MAX_CRASHES_IN_A_ROW = 3  # decode worker deaths, each pinned on one file, before giving up


def init_worker(parent_pid: int | None = None) -> None:
    """Runs once in every worker. `parent_pid`: the index run's process, which the worker must
    not outlive (None: rely on the parent-death signal only, e.g. in benchmarks)."""
    # Ctrl-C goes to the whole process group, and a service manager's SIGTERM to the whole
    # cgroup: the main process decides what happens (a clean stop), workers must not die with
    # half-sent results. They still never outlive it (below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent()
    if parent_pid is not None:
        threading.Thread(
            target=_watch_parent, args=(parent_pid,), name="imgcap-parent-watch", daemon=True
        ).start()
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


def _watch_parent(pid: int) -> None:
    """Daemon thread: end this worker as soon as process `pid` (the index run) is gone, even
    if it was SIGKILLed (the OOM killer) and nothing could tell us."""
    wait_for_exit(pid)
    os._exit(1)  # no cleanup: the run that wanted our results is gone


def decode_for_model(
    path: str,
    size: int,
    resize: str = "fast",
    max_pixels: int = 120_000_000,
    video: tuple[float, int] = (5.0, 60),
) -> tuple:
    """Worker task: decode one file and apply CLIP's eval geometry (bicubic shortest-side resize
    to `size`, centre crop) in `resize` mode ("fast" or "exact", indexer/media/preprocess.py),
    refusing images over `max_pixels` (the run's cap, Settings.max_pixels_for). Returns ("ok",
    metadata dict, (size, size, 3) uint8 array) or ("bad", reason). Top-level so that
    spawn/forkserver workers can import it. A video gives its keyframes instead, chosen by
    `video` = (Settings.video_gap, video_max_frames): ("ok", metadata, (K, size, size, 3),
    [{"at_s": ...}, ...]). The defaults are Settings' defaults."""
    from indexer.media.kinds import is_video
    from indexer.media.perceptual_hash import perceptual_hash
    from indexer.media.preprocess import model_pixels

    if is_video(path):
        from indexer.media import video as videos

        return videos.decode_for_model(path, size, *video, max_pixels)

    try:
        decoded, pixels = model_pixels(path, size, resize, max_pixels=max_pixels)
    except BadImageError as e:
        return ("bad", e.reason)
    except Exception as e:  # noqa: BLE001 - one strange file must never stop a run
        return ("bad", f"decoder error: {type(e).__name__}: {e}")
    meta = {k: getattr(decoded, k, None) for k in META_COLUMNS}
    # From the decoded picture already here: about 1 ms, no second decode (issue 22 §2).
    meta["perceptual_hash"] = perceptual_hash(decoded.image, decoded.extent)
    return ("ok", meta, pixels)


def pool_context() -> multiprocessing.context.BaseContext:
    # Never plain fork: the main process has torch's thread pools running. forkserver forks
    # workers from a clean server process (cheap per worker); spawn where that does not exist.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # "__main__" once in the server, or every worker re-runs the main script (pytest, typer:
        # seconds per worker); indexer.media.decode brings Pillow along.
        ctx.set_forkserver_preload(["__main__", "indexer.media.decode"])
    return ctx


class DecodePool:
    """`workers` decode processes running `task(path, size, resize=..., max_pixels=...,
    video=...)`, the options given here (None: the task's default). A worker death (a decoder
    bug, the OOM killer) breaks the whole pool; `isolated` then pins it on one file."""

    def __init__(
        self,
        workers: int,
        task: Callable[..., tuple],
        max_pixels: int | None = None,
        video: tuple[float, int] | None = None,
        resize: str = "fast",
    ):
        self.workers = workers
        self.task = task
        # Settings.resize, Settings.max_pixels_for, (Settings.video_gap, video_max_frames)
        options = {"resize": resize, "max_pixels": max_pixels, "video": video}
        self.options = {k: v for k, v in options.items() if v is not None}
        self.crashes = 0  # consecutive files a decode worker died on
        self.pool: ProcessPoolExecutor | None = None
        self._new_pool()

    def _new_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        # The forkserver's socket lives in multiprocessing's temp folder, left behind if this
        # process is killed: marked as ours, the next run removes it (indexer/lifetime.py).
        claim_mp_temp_dir()
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=pool_context(),
            initializer=init_worker,
            initargs=(os.getpid(),),
        )

    def submit(self, path: str, size: int) -> Future:
        """`path` decoded at `size`, in a worker. A pool a worker already broke (photos are
        decoded while the model loads, so nobody may have waited on the culprit yet) refuses
        new work: the future then carries BrokenProcessPool, and its reader isolates the file
        and renews the pool as for any crash."""
        try:
            return self.pool.submit(self.task, path, size, **self.options)
        except BrokenProcessPool as e:
            broken: Future = Future()
            broken.set_exception(e)
            return broken

    def isolated(self, path: str, size: int) -> tuple:
        """Decode `path` alone in a fresh pool, after the pool broke with it in flight: if the
        worker dies again, this file is the culprit and fails; the pool is renewed either way."""
        self._new_pool()
        try:
            res = self.submit(path, size).result()
        except BrokenProcessPool:
            self.crashes += 1
            if self.crashes >= MAX_CRASHES_IN_A_ROW:
                # Not one bad file but workers that cannot run at all (broken install, no memory).
                raise ImgcapError(
                    f"decode workers died on {self.crashes} files in a row (last: {path}); "
                    "try --workers 1, and check memory and the Pillow installation"
                ) from None
            self._new_pool()
            return ("bad", "the decoder crashed on this file")
        self.crashes = 0
        return res

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

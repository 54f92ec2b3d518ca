"""`imgcap index --engine ray`: the engine of an index run (indexer/run/pipeline.py `Run`) that
does its decode and model work on Ray Data, so one run can use the cores and GPUs of many
machines.

The driver (this process, the run) does everything around the model as with the local engine:
walk, change detection, hashing, reuse by content hash, duplicates, moves, failures, garbage,
tags; only the files that need decoding go to Ray:

    work list → from_items → map_batches(decode_batch)  CPU tasks: work.decode
              → map_batches(ModelActor)                 actor pool, one model per actor:
                                                        work.process_tensor via ModelRunner
              → driver: Parquet shard in the staging folder → one SQLite transaction (the run's
                `commit`) → shard gone

Ray Data streams between the stages with backpressure, and retries tasks and restarts actors
lost with a worker. A file that cannot be decoded comes back as a failure row, never as an error.

Staging (`<db>.ray-staging/`, beside the database) is the driver's write-ahead log: each block
of results is written there (atomically) before its transaction and deleted after the commit.
A driver killed in between leaves shards; the next run merges them before it plans (the engine's
`before_plan`), so work that
came back is never redone. Merging is idempotent (results are keyed by content hash and model,
files by path), and a shard's file row is taken only while the file still has the size and
mtime it was hashed with. Shards travel to the driver through Ray's object store, so the
cluster needs no shared folder for them (the photos themselves must be at the same paths on
every node).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.atomic_file import atomic_path
from indexer.config import DECODE_BYTES_PER_PIXEL, Settings
from indexer.errors import ImgcapError, UsageError
from indexer.lifetime import Guard
from indexer.run.runner import ModelRunner
from indexer.run.scan import Item
from indexer.run.work import BatchOutput, DecodedItem, DecodeFailure, decode
from indexer.store.database import Store
from indexer.store.records import META_COLUMNS, FailureRecord, FileRecord, ResultRecord

INSTALL_HINT = "--engine ray needs Ray, which is not installed: pip install 'imgcap[ray]'"
STAGING_SUFFIX = ".ray-staging"
SHARD_SUFFIX = ".parquet"
# Files per decode task: a Ray task costs ~1-5 ms to schedule, a 12 MP JPEG ~50-100 ms to
# decode, so 16 keeps overhead small while a few hundred files still spread over many cores.
DECODE_BATCH = 16
MAX_DECODE_MEMORY = 1 << 30  # a decode task's memory request at most: schedulable on any node


def import_ray():
    """Ray, or a UsageError (exit 2) that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the `data` part is what the extra adds
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def staging_dir(db_path: Path) -> Path:
    return Path(db_path).with_name(Path(db_path).name + STAGING_SUFFIX)


# ----------------------------------------------------------------------------- Ray stages
_niced = False


def decode_batch(
    batch: dict[str, np.ndarray], size: int, settings: Settings, max_pixels: int
) -> dict[str, Any]:
    """Ray task: a block of the work list → one row per decoded picture (failures as rows with
    ok=False and blank pixels, so a bad file never fails the task)."""
    global _niced
    if not _niced and hasattr(os, "nice"):
        # As the local engine's workers (see workers.WORKER_NICENESS): decode fills the gaps
        # the model leaves when both share CPU cores.
        from indexer.run.workers import WORKER_NICENESS

        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass
        _niced = True
    paths = [str(p) for p in batch["path"]]
    key_of = dict(zip(paths, batch["key"].tolist(), strict=True))
    need = dict(zip(paths, batch["need_model"].tolist(), strict=True))
    items, failures = decode(paths, size, settings, max_pixels)
    rows: list[tuple[str, DecodedItem | DecodeFailure]] = [(d.path, d) for d in items]
    rows += [(f.path, f) for f in failures]
    blank = np.zeros((size, size, 3), np.uint8)
    good = [d if isinstance(d, DecodedItem) else None for _, d in rows]
    return {
        "key": np.array([key_of[p] for p, _ in rows], np.int64),
        "frame": np.array([g.frame if g else 0 for g in good], np.int64),
        "ok": np.array([g is not None for g in good], bool),
        "need_model": np.array([need[p] for p, _ in rows], bool),
        "reason": np.array(
            [d.reason if g is None else "" for (_, d), g in zip(rows, good, strict=True)]
        ),
        "meta": np.array([_json(g.meta) if g else "" for g in good]),
        "extra": np.array([_json(g.extra) if g else "" for g in good]),
        "pixels": np.stack([g.pixels if g else blank for g in good] or [blank])[: len(rows)],
    }


def _json(facts: dict) -> str:
    """Metadata as JSON; NumPy scalars (a video's keyframe times) as their Python values."""
    return json.dumps(facts, default=lambda o: o.item() if hasattr(o, "item") else str(o))


class ModelActor:
    """Ray actor: holds one model (for its lifetime) and runs the model stage on its blocks."""

    def __init__(self, settings: Settings, shipped: list, batch_size: int):
        import ray
        import torch

        model = shipped[0] if shipped else None
        if isinstance(model, ray.ObjectRef):
            model = ray.get(model)  # the driver's model (CPU actors)
        if model is None:
            from indexer.models.loading import load_model

            model = load_model(settings.model, settings)  # on this actor's GPU
        if getattr(model.device, "type", "cpu") == "cpu":
            # Ray gives an actor OMP_NUM_THREADS=1 (its CPU reservation); a CPU model wants
            # the node's cores, as with the local engine, where decode runs at a lower priority.
            torch.set_num_threads(os.cpu_count() or 1)
        self.runner = ModelRunner(model, settings, batch_size)
        self.dim = int(model.encoder.embed_dim)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        n = len(batch["key"])
        todo = np.flatnonzero(batch["ok"] & batch["need_model"])
        img = np.zeros((n, self.dim), np.float32)
        txt = np.zeros((n, self.dim), np.float32)
        caps = [""] * n
        if len(todo):
            out = self.runner.process([batch["pixels"][i] for i in todo])
            img[todo] = out.image_vecs
            txt[todo] = out.caption_vecs
            for j, i in enumerate(todo):
                caps[i] = out.captions[j]
        keep = ("key", "frame", "ok", "need_model", "reason", "meta", "extra")
        return {
            **{k: batch[k] for k in keep},
            "caption": np.array(caps, dtype=object),
            "image_vec": img,
            "caption_vec": txt,
        }


# --------------------------------------------------------------------------------- shards
def write_shard(folder: Path, model: str, rows: dict[str, Any]) -> Path:
    """Rows (the model stage's columns plus the driver's path/size/mtime_ns/content_hash) as one
    Parquet file, atomically: written under a temporary name, fsynced, renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = rows["image_vec"].shape[1]
    cols = {k: v for k, v in rows.items() if k not in ("image_vec", "caption_vec")}
    table = pa.table({k: pa.array(list(v)) for k, v in cols.items()})
    for k in ("image_vec", "caption_vec"):
        flat = pa.array(np.ascontiguousarray(rows[k], np.float32).reshape(-1))
        table = table.append_column(k, pa.FixedSizeListArray.from_arrays(flat, dim))
    table = table.replace_schema_metadata({"imgcap_model": model})
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    final = folder / (name + SHARD_SUFFIX)
    with atomic_path(final) as tmp:  # fsynced: the shard stands for committed work
        pq.write_table(table, tmp)
    return final


def read_shard(path: Path) -> tuple[str, dict[str, Any]]:
    """(model, columns) of a shard; vectors as (N, D) float32."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    model = (table.schema.metadata or {}).get(b"imgcap_model", b"").decode()
    cols: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name in ("image_vec", "caption_vec"):
            dim = col.type.list_size
            cols[name] = col.flatten().to_numpy().astype(np.float32).reshape(-1, dim)
        else:
            cols[name] = col.to_pylist()
    return model, cols


# ------------------------------------------------------------------------------------ run
class RayEngine:
    """Decode and model work of one run at a time on Ray Data. `files_per_task`: files per
    decode task (tests make it small, so that a run has several blocks to commit)."""

    def __init__(self, files_per_task: int = DECODE_BATCH):
        self.files_per_task = files_per_task
        self.batch_size = 0  # the model actors' batch size, for the summary
        self.staging: Path | None = None  # set when a run begins (before_plan)

    def before_plan(self, run) -> None:
        """`run`: the index run (indexer/run/pipeline.py `Run`). Merge the shards a killed or
        interrupted run left, so that its work is not done again (see module doc)."""
        self.batch_size = 0
        self.staging = staging_dir(run.settings.db_path)
        _merge_leftovers(run.store, self.staging)

    def process(self, run, todo: list[Item]) -> None:
        """Hash and route on the driver, then decode and caption on Ray (see module doc)."""
        routed = list(run.routed(todo))
        if not routed:
            return  # reuse only: no model, no Ray
        ray = import_ray()
        # The model on the driver's CPU: fails fast with the local run's model errors, gives
        # the input size for decode. Actors load their own copy (see _run_dataset).
        shipped = run.model is not None
        model = run.load_model(replace(run.settings, device="cpu"))
        with ray_instance(ray, run.settings, run.workers):
            self._run_dataset(ray, run, model, shipped, routed)

    def close(self) -> None:
        """Nothing to release: `process` stops the Ray instance it started."""

    # ----------------------------------------------------------------------------- steps
    def _run_dataset(self, ray, run, model, shipped: bool, routed: list[Item]) -> None:
        settings = run.settings
        actors, per, device_type = _actors(ray, settings)
        batch = self.batch_size = settings.batch_size_for(device_type)
        size = model.encoder.image_size
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # imgcap's own progress display is the one shown
        from ray.util.debug import log_once

        log_once("ray_data_progress_manager_disabled")  # Ray Data's "bars disabled" warning
        ctx.print_on_execution_start = False
        # Actors load the model themselves (onto their GPU), from --model as the driver did; a
        # model object handed to index_paths (tests, benchmarks) is shipped to them instead.
        to_actors = [ray.put(model)] if shipped else []
        by_key = dict(enumerate(routed))
        work = [
            {"key": k, "path": it.path, "need_model": it.need_model} for k, it in by_key.items()
        ]
        blocks = math.ceil(len(work) / self.files_per_task)
        ds = ray.data.from_items(work, override_num_blocks=blocks)
        ds = ds.map_batches(
            decode_batch,
            batch_size=self.files_per_task,
            fn_kwargs={"size": size, "settings": settings, "max_pixels": run.max_pixels},
            num_cpus=1,
            # The memory one decode at the pixel cap takes (what the local run budgets per
            # worker). It also keeps Ray from fusing decode into the model actors, where it
            # would run in turn with the model instead of beside it.
            memory=min(run.max_pixels * DECODE_BYTES_PER_PIXEL, MAX_DECODE_MEMORY),
        )
        # Ray Data's defaults handle a lost worker: actors restart, their calls and the decode
        # tasks are retried.
        ds = ds.map_batches(
            ModelActor,
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "settings": settings,
                "shipped": to_actors,
                "batch_size": batch,
            },
            num_gpus=per or None,
            num_cpus=1,
        )
        run.progress.model_started = time.monotonic()
        t = time.monotonic()
        try:
            for block in ds.iter_batches(batch_size=None, batch_format="numpy"):
                run.timings["ray"] += time.monotonic() - t
                self._merge_block(run, block, by_key)
                t = time.monotonic()
        except ray.exceptions.RayError as e:
            # Retries spent (a decoder that kills its worker every time, a model that cannot
            # load on a node): what was committed stays; the message names the first cause.
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ImgcapError(f"the Ray job failed: {first}") from None
        _remove_if_empty(self.staging)

    def _merge_block(self, run, block: dict[str, Any], by_key: dict[int, Item]) -> None:
        """One block of results: staged as a shard, committed in one transaction, unstaged."""
        items = [by_key[int(k)] for k in block["key"]]
        rows = dict(block)
        rows["path"] = [it.path for it in items]
        rows["size"] = [it.entry.size for it in items]
        rows["mtime_ns"] = [it.entry.mtime_ns for it in items]
        rows["content_hash"] = [it.content_hash for it in items]
        t = time.monotonic()
        shard = write_shard(self.staging, run.summary.model, rows)
        run.timings["staging"] += time.monotonic() - t
        entries: list[tuple[Item, DecodedItem]] = []
        work: list[int] = []  # rows whose vectors are results (order of commit's work list)
        for i, it in enumerate(items):
            if not block["ok"][i]:
                run.failed(it, str(block["reason"][i]))
                continue
            meta = json.loads(str(block["meta"][i]))
            extra = json.loads(str(block["extra"][i]))
            d = DecodedItem(it.path, meta, _NO_PIXELS, int(block["frame"][i]), extra)
            entries.append((it, d))
            if run.needs_model(it, d):  # the actor computed every need_model row: a subset
                work.append(i)
        out = BatchOutput(
            block["image_vec"][work],
            [str(block["caption"][i]) for i in work],
            block["caption_vec"][work],
        )
        if entries:
            run.commit(entries, out if work else None)
        shard.unlink()


@contextmanager
def ray_instance(ray, settings: Settings, workers: int) -> Iterator[None]:
    """Ray for one run (see `_connect`), let go of at the end. A local instance started here
    also ends if this process is killed: raylet's agents (ray::DashboardAgent,
    ray::RuntimeEnvAgent) would outlive a SIGKILLed driver, so a Guard (indexer/lifetime.py)
    ends them. A cluster joined (--ray-address, or the instance this process already has) is
    never touched."""
    local = not settings.ray_address and not ray.is_initialized()
    guard = Guard() if local else None
    try:
        started = _connect(ray, settings, workers)
        if guard is not None:
            guard.scan()  # raylet and its agents, now that they run
        try:
            yield
        finally:
            if started:
                ray.shutdown()
    finally:
        if guard is not None:
            guard.release()


def _connect(ray, settings: Settings, workers: int) -> bool:
    """Join the Ray instance this process already has, or the cluster at --ray-address, or
    start one on this machine with `workers` CPUs. True when this run started (and must stop)
    it."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    if settings.ray_address:
        kwargs["address"] = settings.ray_address
    else:
        kwargs["address"] = "local"  # never a cluster found by accident
        kwargs["num_cpus"] = workers
    # ray.init makes SIGTERM exit the process at once; the run's own handler (a clean stop
    # like Ctrl-C, indexer/run/signals.py sigterm_as_ctrl_c) must stay.
    on_term = signal.getsignal(signal.SIGTERM)
    ray.init(**kwargs)
    if threading.current_thread() is threading.main_thread() and on_term is not None:
        signal.signal(signal.SIGTERM, on_term)
    return True


def _actors(ray, settings: Settings) -> tuple[int, float, str]:
    """(model actors, GPUs per actor, device type) from the cluster's resources."""
    gpus = float(ray.cluster_resources().get("GPU", 0))
    per = settings.gpus_per_worker or (1.0 if gpus else 0.0)
    if per and not gpus:
        raise UsageError("--gpus-per-worker: the Ray cluster has no GPUs")
    if per:
        return max(1, int(gpus // per)), per, "cuda"
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return max(1, len(nodes)), 0.0, "cpu"


def _merge_leftovers(store: Store, staging: Path) -> None:
    """Shards an interrupted run left in staging: merged before planning (see module doc)."""
    if not staging.is_dir():
        return
    for tmp in staging.glob("*.tmp"):
        tmp.unlink(missing_ok=True)  # written half: its block was never committed
    for shard in sorted(staging.glob("*" + SHARD_SUFFIX)):
        try:
            model, cols = read_shard(shard)
        except Exception:  # noqa: BLE001 - unreadable: its work is simply done again
            shard.unlink(missing_ok=True)
            continue
        _merge_staged(store, model, cols)
        shard.unlink()
    _remove_if_empty(staging)


def _merge_staged(store: Store, model: str, cols: dict[str, Any]) -> None:
    results: list[ResultRecord] = []
    files: list[FileRecord] = []
    failures: list[FailureRecord] = []
    for i, path in enumerate(cols["path"]):
        size, mtime_ns = cols["size"][i], cols["mtime_ns"][i]
        try:
            st = os.stat(path)
        except OSError:
            continue  # gone since: the next walk decides
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            continue  # changed since: done again by this run
        if "at_s" in cols["extra"][i]:
            continue  # a video keyframe: keyed by frame, redone (cheaply) by this run
        if not cols["ok"][i]:
            failures.append(FailureRecord(path, cols["reason"][i], size, mtime_ns))
            continue
        h = cols["content_hash"][i]
        meta = json.loads(cols["meta"][i])
        files.append(FileRecord(path, size, mtime_ns, h, **{k: meta.get(k) for k in META_COLUMNS}))
        if cols["need_model"][i]:
            results.append(
                ResultRecord(h, cols["caption"][i], cols["image_vec"][i], cols["caption_vec"][i])
            )
    store.write_batch(model, results, files)
    store.record_failures(model, failures)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (another run's shards stay for it), or already gone


_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # merged rows carry no pixels (they stayed in Ray)

"""`imgcap train`: fine-tune (or train from scratch) a ClipCap captioner on captioned photos.

This module is the resumable run itself: read the data, cache CLIP features once per image
(indexer/train/features.py, not once per caption as the reference did), then epochs of shuffled
batches, validation, and publishing the best epoch. The pieces it runs live beside it:

    indexer/train/recipe.py   TrainConfig, the learning-rate schedule, batches, the caption loss
    indexer/train/base.py     the model a run starts from (--from, or GPT-2 small + new mapper)
    indexer/train/folder.py   the output folder: resume state, history, the model directory
    indexer/train/history.py  TrainProgress, EpochStats, TrainResult (what a run reports)
    indexer/train/scst.py           the SCST loop, run on this module's setup when cfg.scst

state.pt is written atomically after every epoch and every `checkpoint_every_s` seconds (and on
Ctrl-C), so running the same command again after a kill continues where the last save was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.train import lstm
from indexer.train.base import load_base, mapper_config
from indexer.train.folder import RunFolder
from indexer.train.history import EpochStats, TrainProgress, TrainResult
from indexer.train.recipe import (
    IGNORE_INDEX,
    TRAIN_SPLITS,
    TrainConfig,
    caption_loss,
    caption_token_cap,
    lr_factor,
    make_batch,
    warmup_steps,
)


# ---------------------------------------------------------------------------------- the run
def train(
    cfg: TrainConfig,
    settings: Settings,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train, resuming from OUT/training/state.pt when it is there; returns the history."""
    return _Run(cfg, settings, on_progress or (lambda p: None)).execute()


class _Run:
    def __init__(self, cfg: TrainConfig, settings: Settings, on_progress):
        self.cfg = cfg
        self.settings = settings
        self.emit = on_progress
        self.out = Path(cfg.out)
        self.work = self.out / "training"
        self.name = cfg.name or self.out.resolve().name
        self.folder = RunFolder(self.out, self.name)
        self._published = False  # OUT's model directory was written by this run

    # ---- data
    def _examples(self):
        from indexer.train.datasets import load_dataset

        ds = load_dataset(self.cfg.data)
        problems = [str(p) for p in ds.problems]
        train = [e for e in ds.examples if e.split in TRAIN_SPLITS]
        if self.cfg.val is not None:
            vds = load_dataset(self.cfg.val)
            problems += [str(p) for p in vds.problems]
            val = [e for e in vds.examples if e.split in ("val", "")] or list(vds.examples)
        else:
            val = [e for e in ds.examples if e.split == "val"]
        if not train:
            splits = sorted({e.split for e in ds.examples})
            raise UsageError(
                f"{self.cfg.data}: no training examples"
                + (f" (splits found: {', '.join(splits)})" if splits else "")
                + (f"; {len(problems)} rows skipped, e.g. {problems[0]}" if problems else "")
            )
        return train, val, problems

    def _samples(self, examples, features, tokenizer, cap: int | None):
        """(feature row, token ids) per caption of every example whose image has features."""
        rows, texts = [], []
        for ex in examples:
            if ex.image_path in features:
                for c in ex.captions:
                    rows.append(features[ex.image_path])
                    texts.append(c)
        ids = tokenizer.encode_batch(texts)
        if cap is None:
            cap = caption_token_cap([len(t) for t in ids])
        return rows, [list(t[:cap]) for t in ids], cap

    # ---- state
    def _fingerprint(self, n_train: int, n_val: int) -> dict:
        c = self.cfg
        return {
            "data": str(Path(c.data).resolve()),
            "val": str(Path(c.val).resolve()) if c.val else None,
            "base": c.base,
            "mapping": c.mapping,
            **({"arch": c.arch} if c.arch else {}),  # only when set: older states keep resuming
            "prefix_only": c.prefix_only,
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "warmup": c.warmup,
            "seed": c.seed,
            "train_captions": n_train,
            "val_captions": n_val,
            # SCST settings only when set: states of cross-entropy runs keep resuming.
            **({"scst": True, "reward": c.reward, "samples": c.samples, "top_k": c.top_k}
               if c.scst else {}),
        }  # fmt: skip

    def _save_state(self, pos: dict) -> None:
        trainable = {k: v for k, v in self.net.state_dict().items() if self._is_trainable(k)}
        self.folder.save_state(self.fingerprint, trainable, self.opt, self.sched, pos)

    def _is_trainable(self, key: str) -> bool:
        return not (self.cfg.prefix_only and key.startswith("gpt."))

    def _publish(
        self, epoch: int, val_loss: float | None, train_loss: float, extra: dict | None = None
    ) -> None:
        trained = {
            "base": self.base.name,
            "data": str(Path(self.cfg.data).resolve()),
            "epoch": epoch,
            "epochs": self.cfg.epochs,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "prefix_only": self.cfg.prefix_only,
            **(extra or {}),
        }
        # A run that did not resume rewrites OUT whole the first time: what is there (a model
        # replaced with --force, or one left by a deleted state) may differ in CLIP or mapper.
        self.folder.publish(self.net, self.base, trained, whole=not self._published)
        self._published = True

    # ---- setup shared by cross-entropy and SCST
    def execute(self) -> TrainResult:
        self._setup()
        if self.cfg.scst:
            from indexer.train.scst import run_scst

            return run_scst(self)
        return self._cross_entropy()

    def _setup(self) -> None:
        """Data, base model, CLIP features (cached), token cap and the network to train."""
        import torch

        from indexer.models.loading import resolve_device, resolve_dtype
        from indexer.train.features import FeatureCache, clip_identity, compute_features

        cfg = self.cfg
        self.device = device = resolve_device(self.settings.device)
        self.dtype = dtype = resolve_dtype(self.settings.precision, device)
        self.folder.claim(cfg.base, cfg.force)
        self.out.mkdir(parents=True, exist_ok=True)
        train_ex, val_ex, problems = self._examples()
        self.train_ex, self.val_ex, self.problems = train_ex, val_ex, problems
        torch.manual_seed(cfg.seed)
        self.base = base = load_base(cfg, self.settings, device, dtype)
        self.arch = lstm.run_arch(cfg.arch, base.net)  # --arch, or the base model's
        lstm.check_options(self.arch, cfg.mapping, cfg.prefix_only)
        grids = {} if lstm.needs_grid(self.arch) else None  # show-attend-tell's grid

        # CLIP features, once per image (cached across runs and resumes).
        paths = list(dict.fromkeys([e.image_path for e in train_ex + val_ex]))
        resize = self.settings.resize
        cache = FeatureCache.open(self.work, clip_identity(base.clip_dir, base.quick_gelu, resize))

        self.feat_stats = feat_stats = {"computed": 0, "seconds": 0.0}

        def feat_progress(p) -> None:
            feat_stats.update(computed=p.computed, seconds=p.seconds)
            self.emit(
                TrainProgress(
                    "features",
                    step=p.done,
                    steps=p.total,
                    samples_per_s=p.computed / p.seconds if p.seconds else 0.0,
                )
            )

        feats_by_path, bad = compute_features(
            paths,
            base.encoder,
            cache,
            cfg.feature_batch_size,
            on_progress=feat_progress,
            resize=resize,
            grids=grids,
        )
        problems += [f"{p}: {reason}" for p, reason in bad.items()]
        base.encoder.model.to("cpu")  # not needed on the device any more
        self.index = index = {p: i for i, p in enumerate(feats_by_path)}  # path -> feature row
        self.feat_matrix = (
            torch.stack(list(feats_by_path.values())).to(device)
            if feats_by_path
            else torch.empty(0)
        )  # (N_images, D)
        self.grid_matrix = None  # (N_images, N, C) float16: show-attend-tell only
        if grids is not None and feats_by_path:
            self.grid_matrix = torch.stack([grids[p] for p in feats_by_path]).to(device)
        self.train_rows, self.train_ids, self.cap = self._samples(
            train_ex, index, base.tokenizer, None
        )
        self.val_rows, self.val_ids, _ = self._samples(val_ex, index, base.tokenizer, self.cap)
        if not self.train_ids:
            raise UsageError(f"{cfg.data}: none of the training images could be read")

        # Model: the base, or a fresh mapper on the base GPT-2 when --mapping changes it; for
        # show-and-tell / show-attend-tell, --from's LSTM or a new one (lstm_training.py).
        net = base.net
        if self.arch != "clipcap":
            grid_dim = self.grid_matrix.shape[-1] if self.grid_matrix is not None else 0
            net = lstm.build_net(self.arch, base, grid_dim)
        elif net is None or lstm.net_arch(net) != "clipcap":
            raise UsageError("--arch clipcap starts from a ClipCap model (--from) or GPT-2 small")
        elif cfg.mapping is not None and cfg.mapping != net.cfg.mapping:
            from indexer.models.clipcap import ClipCapModel

            fresh = ClipCapModel(mapper_config(cfg.mapping, net.cfg))
            fresh.gpt.load_state_dict(net.gpt.state_dict())
            net = fresh
        self.net = net = net.float().to(device)
        if cfg.prefix_only:
            net.gpt.requires_grad_(False)
        self.params = [p for n, p in net.named_parameters() if p.requires_grad]

    def batch_features(self, rows: list[int]):
        """The features one batch trains on: rows of the (N_images, D) feature matrix (and for
        show-attend-tell the pair (those rows, their (B, N, C) grids))."""
        import torch

        idx = torch.tensor(rows, device=self.device)
        if self.grid_matrix is not None:
            return self.feat_matrix[idx], self.grid_matrix[idx].float()
        return self.feat_matrix[idx]

    def make_optimiser(self, steps_per_epoch: int) -> None:
        """AdamW (the recipe's settings) and warm-up + linear decay over the whole run."""
        import torch

        total = steps_per_epoch * self.cfg.epochs
        warm = warmup_steps(self.cfg, total)
        self.opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, betas=(0.9, 0.999), eps=1e-6,
                                     weight_decay=0.0)  # fmt: skip
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, warm, total)
        )

    def resume(self) -> dict | None:
        """Load OUT/training/state.pt into the net, optimiser, scheduler and RNG when it is
        this run's (same fingerprint); returns it (for the loop position), or None."""
        import torch

        state = self.folder.read_state(self.fingerprint, start_over=self.cfg.force)
        if state is None:
            return None
        self._published = True  # the model in OUT, if any, is this run's
        net = self.net
        expected = {k for k in net.state_dict() if self._is_trainable(k)}
        if set(state["model"]) != expected:
            raise UsageError(f"{self.work / 'state.pt'}: weights do not match the model")
        net.load_state_dict({**net.state_dict(), **state["model"]})
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return state

    def autocast(self):
        import contextlib

        import torch

        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def result(self, history, best_epoch, best_val, resumed, n_captions, n_val, **extra):
        return TrainResult(
            out=self.out,
            name=self.name,
            history=history,
            best_epoch=best_epoch,
            best_val_loss=best_val,
            resumed_from=resumed,
            problems=self.problems,
            n_images=len(self.index),
            n_captions=n_captions,
            n_val_captions=n_val,
            feature_seconds=self.feat_stats["seconds"],
            features_computed=self.feat_stats["computed"],
            **extra,
        )

    # ---- the cross-entropy loop
    def _cross_entropy(self) -> TrainResult:
        import torch

        cfg, net, device = self.cfg, self.net, self.device
        train_rows, train_ids = self.train_rows, self.train_ids
        val_rows, val_ids = self.val_rows, self.val_ids
        steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
        self.make_optimiser(steps_per_epoch)
        self.fingerprint = self._fingerprint(len(train_ids), len(val_ids))

        history: list[EpochStats] = []
        best_epoch, best_val = None, None
        start_epoch, start_step, resumed = 0, 0, None
        loss_sum, loss_n = 0.0, 0
        state = self.resume()
        if state is not None:
            start_epoch, start_step = state["epoch"], state["step_in_epoch"]
            loss_sum, loss_n = state["loss_sum"], state["loss_n"]
            history = [EpochStats(**h) for h in state["history"]]
            best_epoch, best_val = state["best_epoch"], state["best_val"]
            resumed = (start_epoch, start_step)

        scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        autocast = self.autocast

        def position(epoch: int, step: int) -> dict:
            return {
                "epoch": epoch,
                "step_in_epoch": step,
                "loss_sum": loss_sum,
                "loss_n": loss_n,
                "history": [asdict(h) for h in history],
                "best_epoch": best_epoch,
                "best_val": best_val,
            }

        def run_batch(rows, ids, train: bool):
            if self.arch != "clipcap":  # show-and-tell / show-attend-tell
                with autocast():
                    return lstm.batch_loss(net, ids, self.batch_features(rows), train)
            tokens, labels, mask = make_batch(ids, net.cfg.prefix_length)
            prefix = self.batch_features(rows)
            tokens, labels = tokens.to(device), labels.to(device)
            mask = mask.to(device) if mask is not None else None
            with autocast():
                if train:
                    return caption_loss(net, tokens, labels, prefix, mask)
                loss = caption_loss(net, tokens, labels, prefix, mask, reduction="sum")
                return loss, int((labels != IGNORE_INDEX).sum())

        with torch.enable_grad():  # load_model switched autograd off process-wide
            for epoch in range(start_epoch, cfg.epochs):
                net.train()
                if cfg.prefix_only:
                    net.gpt.eval()  # frozen GPT-2 without dropout, like ClipCaptionPrefix
                gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
                order = torch.randperm(len(train_ids), generator=gen).tolist()
                first = start_step if epoch == start_epoch else 0
                if first == 0:
                    loss_sum, loss_n = 0.0, 0
                t0, seen = time.perf_counter(), 0
                last_save = time.monotonic()
                step = first
                try:
                    for step in range(first, steps_per_epoch):
                        sel = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                        loss = run_batch(
                            [train_rows[i] for i in sel], [train_ids[i] for i in sel], True
                        )
                        self.opt.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                        scaler.step(self.opt)
                        scaler.update()
                        self.sched.step()
                        loss_sum += float(loss.detach())
                        loss_n += 1
                        seen += len(sel)
                        rate = seen / max(1e-9, time.perf_counter() - t0)
                        self.emit(
                            TrainProgress(
                                "train",
                                epoch + 1,
                                cfg.epochs,
                                step + 1,
                                steps_per_epoch,
                                loss_sum / loss_n,
                                self.sched.get_last_lr()[0],
                                rate,
                            )
                        )
                        if time.monotonic() - last_save > cfg.checkpoint_every_s:
                            self._save_state(position(epoch, step + 1))
                            last_save = time.monotonic()
                except KeyboardInterrupt:
                    # Ctrl-C: keep what this epoch has done; the next run starts from here.
                    self._save_state(position(epoch, step))
                    raise
                seconds = time.perf_counter() - t0
                train_loss = loss_sum / max(1, loss_n)
                val_loss = self._validate(net, val_rows, val_ids, run_batch, epoch)
                # Without validation data every epoch is kept (the last one wins), and none
                # is called best: there is nothing to compare.
                better = val_loss is not None and (best_val is None or val_loss < best_val)
                if better or val_loss is None:
                    best_epoch, best_val = epoch + 1, val_loss
                    self._publish(epoch + 1, val_loss, train_loss)
                stats = EpochStats(
                    epoch + 1,
                    train_loss,
                    val_loss,
                    seconds,
                    seen / max(1e-9, seconds),
                    better,
                )
                history.append(stats)
                loss_sum, loss_n = 0.0, 0
                self._save_state(position(epoch + 1, 0))
                self.folder.write_history(history)
                self.emit(TrainProgress("epoch", epoch + 1, cfg.epochs, stats=stats))

        return self.result(history, best_epoch, best_val, resumed, len(train_ids), len(val_ids))

    def _validate(self, net, rows, ids, run_batch, epoch: int) -> float | None:
        """Mean cross-entropy per caption token over the validation captions."""
        import torch

        if not ids:
            return None
        net.eval()
        total, count = 0.0, 0
        bs = self.cfg.batch_size
        n_steps = math.ceil(len(ids) / bs)
        with torch.no_grad():
            for step in range(n_steps):
                sl = slice(step * bs, (step + 1) * bs)
                loss, n = run_batch(rows[sl], ids[sl], False)
                total += float(loss)
                count += n
                self.emit(
                    TrainProgress(
                        "val", epoch + 1, self.cfg.epochs, step + 1, n_steps, total / max(1, count)
                    )
                )
        return total / max(1, count)

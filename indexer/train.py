"""`imgcap train`: fine-tune (or train from scratch) a ClipCap captioner on captioned photos.

The recipe is the reference's (clipcap-reference.md §6): one sample per (image, caption) pair,
GPT-2 input = mapped CLIP prefix + caption tokens (no BOS), cross-entropy of the logits at
positions [K-1, K+T-1) against the T caption tokens, AdamW (lr 2e-5, betas 0.9/0.999, eps 1e-6,
no weight decay: transformers.AdamW's defaults, which the reference used), linear warm-up then
linear decay to 0, batch 40, 10 epochs, shuffled. Captions end with "." (`load_dataset` makes
sure), so the trained model learns to stop.

Deviations from the reference, on purpose:
- Padding: the reference padded with token 0 and used ignore_index=0, so the real token "!" (id 0)
  could never be learned. We pad labels with -100 (not a token id) and pass an attention mask
  that covers the prefix and the real tokens; batches are padded to their own longest caption.
- Warm-up: 5000 steps is ~3.5 % of a COCO run; on a small dataset it would be longer than the
  whole run, so by default warm-up is min(5000, 10 % of all steps). An explicit --warmup is kept.
- The last, smaller batch of an epoch is kept (the reference dropped it): on small datasets it
  is a large share of the data.
- CLIP features are computed once per image and cached (indexer/features.py), not per caption.

A run lives in its output folder, which is also the finished model directory:

    OUT/imgcap-model.json, clipcap.pt, clip/, tokenizer/   the best epoch so far (`--model OUT`)
    OUT/training/state.pt          weights + optimiser + scheduler + position, for resuming
    OUT/training/history.json      loss per epoch
    OUT/training/features-*.safetensors   the CLIP feature cache

state.pt is written atomically after every epoch and every `checkpoint_every_s` seconds (and on
Ctrl-C), so running the same command again after a kill continues where the last save was.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import ModelNotAvailableError, UsageError

STATE_FORMAT = 1
IGNORE_INDEX = -100  # label of padding positions: not a token id (the reference used 0 = "!")
TRAIN_SPLITS = ("train", "restval", "")  # Karpathy trains on train + restval
DEFAULT_WARMUP = 5000
WARMUP_CAP = 0.1  # default warm-up is at most this share of all steps


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # dataset in any format `load_dataset` reads; its train (+restval) split is used
    out: Path  # run folder = the resulting model directory
    base: str | None = None  # --from: registry name or model dir; None = GPT-2 from the hub
    mapping: str | None = None  # mlp | transformer; None = the base model's (mlp from scratch)
    prefix_only: bool = False  # freeze GPT-2 (eval mode) and train only the mapper
    epochs: int = 10
    batch_size: int = 40  # captions per optimiser step
    lr: float = 2e-5
    warmup: int | None = None  # None = min(5000, 10 % of all steps)
    val: Path | None = None  # validation dataset; None = DATA's "val" split if it has one
    seed: int = 0
    feature_batch_size: int = 64  # images per CLIP batch while caching features
    checkpoint_every_s: float = 900.0  # mid-epoch resume point at least this often
    name: str | None = None  # model name stored with results; None = the out folder's name

    def __post_init__(self):
        if self.mapping not in (None, "mlp", "transformer"):
            raise UsageError(f"unknown mapping {self.mapping!r} (mlp or transformer)")
        for field_name in ("epochs", "batch_size"):
            if getattr(self, field_name) < 1:
                raise UsageError(f"{field_name} must be at least 1")
        if not self.lr > 0:
            raise UsageError("the learning rate must be positive")


@dataclass
class TrainProgress:
    phase: str  # "features" | "train" | "val" | "epoch"
    epoch: int = 0  # 1-based
    epochs: int = 0
    step: int = 0  # within the epoch (train/val), or images done (features)
    steps: int = 0
    loss: float | None = None  # running mean of the epoch so far (train), or val loss
    lr: float = 0.0
    samples_per_s: float = 0.0
    stats: EpochStats | None = None  # phase "epoch": the finished epoch


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float | None
    seconds: float
    samples_per_s: float
    best: bool  # this epoch's weights are now the model in OUT


@dataclass
class TrainResult:
    out: Path
    name: str
    history: list[EpochStats]
    best_epoch: int | None
    best_val_loss: float | None
    resumed_from: tuple[int, int] | None  # (completed epochs, steps into the next) when resumed
    problems: list[str] = field(default_factory=list)  # skipped rows and unreadable images
    n_images: int = 0
    n_captions: int = 0
    n_val_captions: int = 0
    feature_seconds: float = 0.0  # time spent computing (not loading) CLIP features
    features_computed: int = 0


# --------------------------------------------------------------------------------- schedule
def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.warmup is not None:
        return max(0, min(cfg.warmup, total_steps))
    return min(DEFAULT_WARMUP, math.ceil(WARMUP_CAP * total_steps))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """transformers' get_linear_schedule_with_warmup: 0 -> 1 over warmup, then 1 -> 0 at total."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


# ----------------------------------------------------------------------------------- batching
def caption_token_cap(lengths: list[int]) -> int:
    """The reference's max caption length: min(mean + 10 std, longest); longer ones are cut."""
    import statistics

    if not lengths:
        return 1
    std = statistics.pstdev(lengths) if len(lengths) > 1 else 0.0
    return max(1, min(int(statistics.fmean(lengths) + 10 * std), max(lengths)))


def make_batch(token_lists: list[list[int]], prefix_length: int):
    """Pad a batch to its longest caption.

    Returns tokens (B, T) (pads are 0, any id would do: they are masked and never labels),
    labels (B, T) with IGNORE_INDEX at pads, and the attention mask (B, K + T): ones over the
    prefix and the real tokens, or None when nothing is padded (lets SDPA take its causal path).
    """
    import torch

    t = max(len(ids) for ids in token_lists)
    b = len(token_lists)
    tokens = torch.zeros(b, t, dtype=torch.long)
    labels = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros(b, prefix_length + t, dtype=torch.long)
    for i, ids in enumerate(token_lists):
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[i, : len(ids)] = tokens[i, : len(ids)]
        mask[i, : prefix_length + len(ids)] = 1
    return tokens, labels, (None if bool(mask.all()) else mask)


def caption_loss(model, tokens, labels, prefix, mask, reduction: str = "mean"):
    """Cross-entropy of the caption tokens given the prefix; logits (B, K + T, V)."""
    import torch.nn.functional as F

    k = model.cfg.prefix_length
    logits = model(tokens, prefix, mask)
    # Position K-1+j (the last prefix slot, then each caption token) predicts caption token j.
    pred = logits[:, k - 1 : -1, :]  # (B, T, V)
    return F.cross_entropy(
        pred.reshape(-1, pred.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


# --------------------------------------------------------------------------------- base model
@dataclass
class _Base:
    name: str
    net: Any  # ClipCapModel, float32
    encoder: Any  # ClipEncoder
    tokenizer: Any
    clip_dir: Path
    tok_dir: Path
    quick_gelu: bool


def mapper_config(mapping: str, base_cfg):
    """ClipCapConfig for a new mapper on top of base_cfg's GPT-2 and CLIP.

    Transformer: the reference's training settings (prefix 40, clip length 40, 8 layers, on
    L2-normalised features, as the published transformer release); on a GPT-2 narrower than
    GPT-2 small (the tiny test model) the base prefix length is kept.
    """
    from indexer.captioner import ClipCapConfig

    full = base_cfg.n_embd >= 768
    if mapping == "mlp":
        k = 10 if full else base_cfg.prefix_length
        return ClipCapConfig("mlp", base_cfg.prefix_dim, k, gpt2=dict(base_cfg.gpt2))
    k = 40 if full else base_cfg.prefix_length
    return ClipCapConfig(
        "transformer",
        base_cfg.prefix_dim,
        prefix_length=k,
        clip_length=k,
        num_layers=8,
        normalize_prefix=True,
        gpt2=dict(base_cfg.gpt2),
    )


def _load_base(cfg: TrainConfig, settings: Settings, device, dtype) -> _Base:
    from indexer.encoder import load_clip
    from indexer.models import _rel, load_model, load_tokenizer, read_spec, resolve_model_dir

    if cfg.base is not None:
        model_dir = resolve_model_dir(cfg.base, settings)
        spec = read_spec(model_dir)
        model = load_model(str(model_dir), settings)
        net = model.captioner.model.float()
        return _Base(
            spec["name"],
            net,
            model.encoder,
            model.captioner.tokenizer,
            _rel(model_dir, spec["clip"]["dir"]),
            _rel(model_dir, spec["tokenizer"]),
            bool(spec["clip"].get("quick_gelu", True)),
        )
    # From scratch: CLIP + tokenizer of the default model, GPT-2 small from its hub weights.
    from indexer.captioner import ClipCapConfig, ClipCapModel
    from indexer.models import REGISTRY, _hub_file

    entry = REGISTRY[DEFAULT_MODEL]
    clip_paths = [_hub_file(entry, f, settings, True) for f in entry.clip_files]
    tok_paths = [_hub_file(entry, f, settings, True) for f in entry.tokenizer_files]
    clip_dir, tok_dir = clip_paths[0].parent, tok_paths[0].parent
    encoder = load_clip(clip_dir, entry.quick_gelu, device, dtype)
    net = ClipCapModel(ClipCapConfig(**entry.clipcap))
    load_hub_gpt2(net, settings)
    return _Base("gpt2", net, encoder, load_tokenizer(tok_dir), clip_dir, tok_dir, entry.quick_gelu)


# GPT-2 small's weights, pinned to the revision the tokenizer files come from (indexer/models.py).
GPT2_WEIGHTS = (
    "openai-community/gpt2",
    "model.safetensors",
    "607a30d783dfa663caf39e06633721c8d4cfcd7e",
)


def load_hub_gpt2(net, settings: Settings) -> None:
    """Copy GPT-2 small's hub weights into net.gpt (keys checked like load_clipcap does)."""
    import torch
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    from indexer.models import _hub_unreachable, _short_reason

    repo, filename, rev = GPT2_WEIGHTS
    cache = str(settings.cache_dir) if settings.cache_dir else None
    path = None
    try:
        path = hf_hub_download(repo, filename, revision=rev, cache_dir=cache, local_files_only=True)
    except Exception:  # not cached yet
        reason = "offline mode is on (--offline / IMGCAP_OFFLINE / HF_HUB_OFFLINE)"
        if not settings.offline:
            reason = _hub_unreachable()
            if reason is None:
                try:
                    path = hf_hub_download(repo, filename, revision=rev, cache_dir=cache)
                except Exception as e:  # 404, 429, disk full, ...
                    reason = _short_reason(e)
        if path is None:
            raise ModelNotAvailableError(
                f"training from scratch needs GPT-2's weights ({repo}/{filename} @ {rev[:7]}), "
                f"which are not in the local cache and could not be downloaded: {reason}.\n"
                "Fix: run once with internet access, or start from a local model with "
                "--from DIR (e.g. `imgcap models tiny DIR` for a tiny offline model)."
            ) from None
    sd = {
        "gpt.transformer." + k: v
        for k, v in load_file(path).items()
        if not k.endswith((".attn.bias", ".attn.masked_bias"))
    }
    expected = {k for k in net.state_dict() if k.startswith("gpt.")} - {"gpt.lm_head.weight"}
    if set(sd) != expected:
        raise ModelNotAvailableError(f"{path}: unexpected GPT-2 weight names")
    with torch.no_grad():
        net.load_state_dict(sd, strict=False)  # clip_project stays freshly initialised
        net.gpt.tie_weights()


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

    # ---- data
    def _examples(self):
        from indexer.datasets import load_dataset

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
        ids = tokenizer(texts)["input_ids"] if texts else []
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
            "prefix_only": c.prefix_only,
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "warmup": c.warmup,
            "seed": c.seed,
            "train_captions": n_train,
            "val_captions": n_val,
        }

    def _read_state(self, fingerprint: dict) -> dict | None:
        import torch

        path = self.work / "state.pt"
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - say which file, never a traceback
            raise UsageError(
                f"{path}: cannot resume from it ({type(e).__name__}); delete it to start over"
            ) from None
        old = state.get("fingerprint", {})
        diff = [k for k in fingerprint if old.get(k) != fingerprint[k]]
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {fingerprint[k]!r}" for k in diff)
            raise UsageError(
                f"{self.out} holds a training run with other settings ({shown}). Use another "
                f"--out, or delete {path} to start this one over."
            )
        return state

    def _save_state(self, pos: dict) -> None:
        import torch

        self.work.mkdir(parents=True, exist_ok=True)
        trainable = {k: v for k, v in self.net.state_dict().items() if self._is_trainable(k)}
        state = {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "model": trainable,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": torch.get_rng_state(),
            **pos,
        }
        tmp = self.work / "state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.work / "state.pt")  # atomic: a kill leaves the old or the new one

    def _is_trainable(self, key: str) -> bool:
        return not (self.cfg.prefix_only and key.startswith("gpt."))

    # ---- publishing the model directory
    def _publish(self, epoch: int, val_loss: float | None, train_loss: float) -> None:
        import torch

        from indexer.models import SPEC_FILE, published_state_dict, write_model_dir

        out = self.out
        trained = {
            "base": self.base.name,
            "data": str(Path(self.cfg.data).resolve()),
            "epoch": epoch,
            "epochs": self.cfg.epochs,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "prefix_only": self.cfg.prefix_only,
        }
        if not (out / SPEC_FILE).is_file() or not (out / "clip").is_dir():
            # First time: the whole directory is written aside and moved in, spec last.
            tmp = self.work / "publish"
            shutil.rmtree(tmp, ignore_errors=True)
            enc = self.base.encoder.model
            clip_cfg = json.loads((self.base.clip_dir / "open_clip_config.json").read_text())
            write_model_dir(
                tmp,
                self.name,
                self.net,
                clip_cfg.get("model_cfg", clip_cfg),
                {k: v.detach().cpu() for k, v in enc.state_dict().items()},
                self.base.tok_dir,
                self.base.quick_gelu,
                f"trained by imgcap train from {self.base.name}",
            )
            for part in ("clip", "tokenizer"):
                if (out / part).exists():
                    shutil.rmtree(out / part)
                os.replace(tmp / part, out / part)
            os.replace(tmp / "clipcap.pt", out / "clipcap.pt")
            spec = json.loads((tmp / SPEC_FILE).read_text())
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp_ckpt = out / "clipcap.pt.tmp"
            torch.save(published_state_dict(self.net), tmp_ckpt)
            os.replace(tmp_ckpt, out / "clipcap.pt")
            spec = json.loads((out / SPEC_FILE).read_text())
        spec["trained"] = trained
        tmp_spec = out / (SPEC_FILE + ".tmp")
        tmp_spec.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_spec, out / SPEC_FILE)

    # ---- main loop
    def execute(self) -> TrainResult:
        import torch

        from indexer.features import FeatureCache, clip_identity, compute_features
        from indexer.models import resolve_device, resolve_dtype

        cfg = self.cfg
        device = resolve_device(self.settings.device)
        dtype = resolve_dtype(self.settings.precision, device)
        self.out.mkdir(parents=True, exist_ok=True)
        train_ex, val_ex, problems = self._examples()
        torch.manual_seed(cfg.seed)
        self.base = base = _load_base(cfg, self.settings, device, dtype)

        # CLIP features, once per image (cached across runs and resumes).
        paths = list(dict.fromkeys([e.image_path for e in train_ex + val_ex]))
        cache = FeatureCache.open(self.work, clip_identity(base.clip_dir, base.quick_gelu))

        feat_stats = {"computed": 0, "seconds": 0.0}

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
            paths, base.encoder, cache, cfg.feature_batch_size, on_progress=feat_progress
        )
        problems += [f"{p}: {reason}" for p, reason in bad.items()]
        base.encoder.model.to("cpu")  # not needed on the device any more
        index = {p: i for i, p in enumerate(feats_by_path)}
        feat_matrix = (
            torch.stack(list(feats_by_path.values())).to(device)
            if feats_by_path
            else torch.empty(0)
        )  # (N_images, D)
        train_rows, train_ids, cap = self._samples(train_ex, index, base.tokenizer, None)
        val_rows, val_ids, _ = self._samples(val_ex, index, base.tokenizer, cap)
        if not train_ids:
            raise UsageError(f"{cfg.data}: none of the training images could be read")

        # Model: the base, or a fresh mapper on the base GPT-2 when --mapping changes it.
        net = base.net
        if cfg.mapping is not None and cfg.mapping != net.cfg.mapping:
            from indexer.captioner import ClipCapModel

            fresh = ClipCapModel(mapper_config(cfg.mapping, net.cfg))
            fresh.gpt.load_state_dict(net.gpt.state_dict())
            net = fresh
        self.net = net = net.float().to(device)
        if cfg.prefix_only:
            net.gpt.requires_grad_(False)
        params = [p for n, p in net.named_parameters() if p.requires_grad]

        steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        warm = warmup_steps(cfg, total)
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6,
                                     weight_decay=0.0)  # fmt: skip
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, warm, total)
        )
        self.fingerprint = self._fingerprint(len(train_ids), len(val_ids))

        history: list[EpochStats] = []
        best_epoch, best_val = None, None
        start_epoch, start_step, resumed = 0, 0, None
        loss_sum, loss_n = 0.0, 0
        state = self._read_state(self.fingerprint)
        if state is not None:
            expected = {k for k in net.state_dict() if self._is_trainable(k)}
            if set(state["model"]) != expected:
                raise UsageError(f"{self.work / 'state.pt'}: weights do not match the model")
            net.load_state_dict({**net.state_dict(), **state["model"]})
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start_epoch, start_step = state["epoch"], state["step_in_epoch"]
            loss_sum, loss_n = state["loss_sum"], state["loss_n"]
            history = [EpochStats(**h) for h in state["history"]]
            best_epoch, best_val = state["best_epoch"], state["best_val"]
            resumed = (start_epoch, start_step)

        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

        def autocast():
            import contextlib

            if dtype == torch.float32:
                return contextlib.nullcontext()
            return torch.autocast(device_type=device.type, dtype=dtype)

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
            tokens, labels, mask = make_batch(ids, net.cfg.prefix_length)
            prefix = feat_matrix[torch.tensor(rows, device=device)]
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
                better = val_loss is None or best_val is None or val_loss < best_val
                if better:
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
                self._write_history(history)
                self.emit(TrainProgress("epoch", epoch + 1, cfg.epochs, stats=stats))

        return TrainResult(
            out=self.out,
            name=self.name,
            history=history,
            best_epoch=best_epoch,
            best_val_loss=best_val,
            resumed_from=resumed,
            problems=problems,
            n_images=len(feats_by_path),
            n_captions=len(train_ids),
            n_val_captions=len(val_ids),
            feature_seconds=feat_stats["seconds"],
            features_computed=feat_stats["computed"],
        )

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

    def _write_history(self, history: list[EpochStats]) -> None:
        tmp = self.work / "history.json.tmp"
        tmp.write_text(json.dumps([asdict(h) for h in history], indent=1) + "\n")
        os.replace(tmp, self.work / "history.json")

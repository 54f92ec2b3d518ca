"""The ClipCap training recipe: settings, learning-rate schedule, batches and the caption loss.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import UsageError

IGNORE_INDEX = -100  # label of padding positions: not a token id (the reference used 0 = "!")
TRAIN_SPLITS = ("train", "restval", "")  # Karpathy trains on train + restval
DEFAULT_WARMUP = 5000
WARMUP_CAP = 0.1  # default warm-up is at most this share of all steps
SCST_REWARDS = ("cider-d",)


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # dataset in any format `load_dataset` reads; its train (+restval) split is used
    out: Path  # run folder = the resulting model directory
    base: str | None = None  # --from: registry name or model dir; None = GPT-2 from the hub
    mapping: str | None = None  # mlp | transformer; None = the base model's (mlp from scratch)
    # clipcap | show-and-tell | show-attend-tell (indexer/train/lstm.py); None = the base
    # model's (clipcap from scratch)
    arch: str | None = None
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
    force: bool = False  # replace a model already in OUT (even --from's own), or a run with
    # other settings; without it both are refused. A resumable run of these settings is resumed.
    # SCST (indexer/train/scst.py): fine-tune --from's cross-entropy model on a CIDEr-D reward.
    scst: bool = False
    reward: str = "cider-d"  # the only reward so far
    samples: int = 5  # captions sampled per image; baseline = mean reward of the others
    top_k: int = 0  # sample among the k likeliest tokens; 0 = the full distribution

    def __post_init__(self):
        if self.mapping not in (None, "mlp", "transformer"):
            raise UsageError(f"unknown mapping {self.mapping!r} (mlp or transformer)")
        archs = ("clipcap", "show-and-tell", "show-attend-tell")
        if self.arch not in (None, *archs):
            raise UsageError(f"unknown architecture {self.arch!r} ({', '.join(archs)})")
        if self.scst:
            if self.base is None:
                raise UsageError(
                    "--scst fine-tunes a trained captioner: give the cross-entropy model to "
                    "start from with --from MODEL"
                )
            if self.mapping is not None:
                raise UsageError("--scst keeps --from's mapping network; drop --mapping")
            if self.reward not in SCST_REWARDS:
                raise UsageError(f"unknown reward {self.reward!r} ({', '.join(SCST_REWARDS)})")
            if self.samples < 2:
                raise UsageError("--samples must be at least 2 (the baseline is the others' mean)")
            if self.top_k < 0:
                raise UsageError("--top-k must be 0 (off) or more")
        for field_name in ("epochs", "batch_size"):
            if getattr(self, field_name) < 1:
                raise UsageError(f"{field_name} must be at least 1")
        if not self.lr > 0:
            raise UsageError("the learning rate must be positive")


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

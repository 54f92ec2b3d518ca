"""What a training run reports: live progress, one record per epoch, and the run's result.

Shared by the cross-entropy loop (indexer/train/loop.py) and SCST (indexer/train/scst.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    reward: float | None = None  # SCST "train": running mean reward of the sampled captions


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float | None
    seconds: float
    samples_per_s: float
    best: bool  # lowest validation loss (SCST: highest val CIDEr-D) so far; never without val
    # SCST epochs only (None for cross-entropy): mean reward of the sampled captions, their share
    # ending with "." (the rest ran into the token cap), distinct-2 over them (indexer/
    # caption_stats.py), and the validation images' greedy CIDEr-D.
    reward: float | None = None
    ends_with_period: float | None = None
    distinct_2: float | None = None
    val_cider: float | None = None


@dataclass
class TrainResult:
    out: Path
    name: str
    history: list[EpochStats]
    best_epoch: int | None  # the epoch whose weights are in OUT (the last one without val data)
    best_val_loss: float | None
    resumed_from: tuple[int, int] | None  # (completed epochs, steps into the next) when resumed
    problems: list[str] = field(default_factory=list)  # skipped rows and unreadable images
    n_images: int = 0
    n_captions: int = 0
    n_val_captions: int = 0
    feature_seconds: float = 0.0  # time spent computing (not loading) CLIP features
    features_computed: int = 0
    best_val_cider: float | None = None  # SCST: the kept epoch's validation CIDEr-D
    scst: bool = False

    @property
    def selected_by(self) -> str:
        """How the epoch in OUT was chosen: "val_loss" (SCST: "val_cider"), or "last_epoch"
        without val data."""
        if not self.n_val_captions:
            return "last_epoch"
        return "val_cider" if self.scst else "val_loss"

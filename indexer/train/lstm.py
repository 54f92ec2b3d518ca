"""`imgcap train --arch show-and-tell|show-attend-tell`: what the training run
(indexer/train/loop.py) does differently for the LSTM captioners, kept here so the run itself stays
one loop.

Same data, feature cache, schedule, checkpoints and resume as ClipCap; the differences are
  - the network: a new LstmCaptionNet on the base model's CLIP and tokenizer (or --from's own
    LSTM, continued), sized from the CLIP feature width;
  - show-attend-tell's features: the CLIP grid is cached with the global feature
    (indexer/train/features.py) and a batch is the pair (global rows, grid rows);
  - the loss: teacher-forced cross-entropy (+ the doubly stochastic attention penalty);
  - the published directory: lstm.safetensors + an "arch"/"lstm" spec (lstm_captioner.py).

Training settings: the recipe's AdamW and warm-up/decay schedule; the LSTM has no pretrained
part, so a useful --lr is much larger than ClipCap's fine-tuning 2e-5 (the paper used 4e-4 with
Adam/RMSProp; see docs/training.md).
"""

from __future__ import annotations

from pathlib import Path

from indexer.errors import UsageError
from indexer.models.model_dir import (
    ARCHS as ALL_ARCHS,  # torch is imported only once a run needs it
)


def net_arch(net) -> str:
    """The architecture of a network: "clipcap", "show-and-tell" or "show-attend-tell"."""
    from indexer.models.lstm import LstmCaptionNet

    return net.cfg.arch if isinstance(net, LstmCaptionNet) else "clipcap"


def run_arch(requested: str | None, base_net) -> str:
    """--arch, or the base model's architecture when it is not given (None)."""
    if requested is None:
        return net_arch(base_net) if base_net is not None else "clipcap"
    if requested not in ALL_ARCHS:
        raise UsageError(f"unknown architecture {requested!r} ({', '.join(ALL_ARCHS)})")
    return requested


def needs_grid(arch: str) -> bool:
    return arch == "show-attend-tell"


def sizes_for(feature_dim: int) -> dict:
    """LSTM sizes: the paper's 512 for real CLIPs; small ones for the tiny test CLIP (32-d),
    where a 512-wide LSTM would only slow the tests down."""
    if feature_dim >= 256:
        return {"embed_dim": 512, "hidden_dim": 512, "attention_dim": 512}
    return {"embed_dim": 128, "hidden_dim": 128, "attention_dim": 64, "dropout": 0.1}


def build_net(arch: str, base, grid_dim: int):
    """--from's own LSTM when it has this architecture (continued); otherwise a new one on the
    base model's CLIP and tokenizer."""
    from indexer.models.lstm import LstmCaptionNet, LstmConfig

    if net_arch(base.net) == arch:
        return base.net
    feature_dim = int(base.encoder.embed_dim)
    cfg = LstmConfig(
        arch,
        feature_dim=feature_dim,
        vocab_size=len(base.tokenizer),
        grid_dim=grid_dim if needs_grid(arch) else 0,
        **sizes_for(feature_dim),
    )
    return LstmCaptionNet(cfg)


def batch_loss(net, ids: list[list[int]], features, train: bool):
    """The training loss of one batch (train), or (summed cross-entropy, tokens) (validation).
    features: (B, D) global rows, or (global, grid) for show-attend-tell."""
    from indexer.models.lstm import IGNORE_INDEX, lstm_loss, pad_batch, split_features

    feats, grid = split_features(features)
    tokens, labels = pad_batch(ids)
    tokens, labels = tokens.to(feats.device), labels.to(feats.device)
    if train:
        return lstm_loss(net, tokens, labels, feats, grid)
    loss = lstm_loss(net, tokens, labels, feats, grid, reduction="sum")
    return loss, int((labels != IGNORE_INDEX).sum())


def write_dir(tmp: Path, name: str, net, clip_cfg: dict, clip_state: dict, base, description):
    """The whole model directory of `net` in tmp (train_folder.publish moves it into OUT)."""
    from indexer.models.lstm import CHECKPOINT, write_lstm_model_dir

    write_lstm_model_dir(
        tmp, name, net, clip_cfg, clip_state, base.tok_dir, base.quick_gelu, description
    )
    return CHECKPOINT


def write_checkpoint(net, out: Path) -> None:
    from indexer.models.lstm import CHECKPOINT, write_lstm_checkpoint

    write_lstm_checkpoint(net, Path(out) / CHECKPOINT)


def check_options(arch: str, mapping: str | None, prefix_only: bool) -> None:
    if arch == "clipcap":
        return
    if mapping is not None:
        raise UsageError(f"--mapping is a ClipCap option; {arch} has no mapping network")
    if prefix_only:
        raise UsageError(f"--prefix-only is a ClipCap option; {arch} trains the whole LSTM")

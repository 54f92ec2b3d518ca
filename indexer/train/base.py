"""The model a training run starts from: --from's ClipCap, or GPT-2 small and a new mapper.

Also the mapper a changed --mapping gets (`mapper_config`), and GPT-2 small's pinned hub weights
for training from scratch (checked key by key, as `load_clipcap` does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import ModelNotAvailableError
from indexer.train.recipe import TrainConfig


@dataclass
class BaseModel:
    name: str
    net: Any  # ClipCapModel or LstmCaptionNet, float32; None: from scratch for an LSTM
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
    from indexer.models.clipcap import ClipCapConfig

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


def load_base(cfg: TrainConfig, settings: Settings, device, dtype) -> BaseModel:
    import torch

    from indexer.models.clip import load_clip
    from indexer.models.gpt2_tokenizer import GPT2Tokenizer
    from indexer.models.loading import load_model, resolve_model_dir
    from indexer.models.model_dir import read_spec, rel

    if cfg.base is not None:
        model_dir = resolve_model_dir(cfg.base, settings)
        spec = read_spec(model_dir)
        # The trainer's precision, not load_model's own `auto` (bf16 on bf16 CPUs): the base
        # model's CLIP features are training inputs.
        precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        model = load_model(str(model_dir), replace(settings, precision=precision))
        net = model.captioner.model.float()
        return BaseModel(
            spec["name"],
            net,
            model.encoder,
            model.captioner.tokenizer,
            rel(model_dir, spec["clip"]["dir"]),
            rel(model_dir, spec["tokenizer"]),
            bool(spec["clip"].get("quick_gelu", True)),
        )
    # From scratch: CLIP + tokenizer of the default model, GPT-2 small from its hub weights.
    from indexer.models.clipcap import ClipCapConfig, ClipCapModel
    from indexer.models.download import hub_file
    from indexer.models.registry import REGISTRY

    entry = REGISTRY[DEFAULT_MODEL]
    clip_paths = [hub_file(entry, f, settings, True) for f in entry.clip_files]
    tok_paths = [hub_file(entry, f, settings, True) for f in entry.tokenizer_files]
    clip_dir, tok_dir = clip_paths[0].parent, tok_paths[0].parent
    encoder = load_clip(clip_dir, entry.quick_gelu, device, dtype)
    net = None  # an LSTM captioner (--arch show-and-tell / show-attend-tell) needs no GPT-2
    if cfg.arch in (None, "clipcap"):
        net = ClipCapModel(ClipCapConfig(**entry.clipcap))
        load_hub_gpt2(net, settings)
    return BaseModel(
        "gpt2", net, encoder, GPT2Tokenizer(tok_dir), clip_dir, tok_dir, entry.quick_gelu
    )


# GPT-2 small's weights, pinned to the revision the tokenizer files come from
# (indexer/models/loading.py).
GPT2_WEIGHTS = (
    "openai-community/gpt2",
    "model.safetensors",
    "607a30d783dfa663caf39e06633721c8d4cfcd7e",
)


def load_hub_gpt2(net, settings: Settings) -> None:
    """Copy GPT-2 small's hub weights into net.gpt (keys checked like load_clipcap does)."""
    import torch
    from safetensors.torch import load_file

    from indexer.models.download import hub_download, hub_unreachable, short_reason

    repo, filename, rev = GPT2_WEIGHTS
    path = None
    try:
        path = hub_download(repo, filename, rev, settings, cached=True)
    except Exception:  # not cached yet
        reason = "offline mode is on (--offline / IMGCAP_OFFLINE / HF_HUB_OFFLINE)"
        if not settings.offline:
            reason = hub_unreachable(settings.hub_endpoint)
            if reason is None:
                try:
                    path = hub_download(repo, filename, rev, settings, cached=False)
                except Exception as e:  # 404, 429, disk full, ...
                    reason = short_reason(e)
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
        # Copied in place, so lm_head (the same tensor as wte) gets wte's weights too.
        net.load_state_dict(sd, strict=False)  # clip_project stays freshly initialised

"""CLIP's two towers in plain torch: open_clip's ViT image tower and text tower, same parameter
names, same operations in the same order, so they load open_clip's weights unchanged and compute
its `encode_image` / `encode_text` bit for bit.

`import open_clip` runs its package `__init__`, which imports its training, CoCa, Hugging Face
and timm modules (timm, torchvision, transformers): about 3 s of a cold `imgcap caption` on two
cores before any work. The towers themselves are ~150 lines of torch. `clip_net_config` accepts
only the open_clip configs built from exactly these operations (every registry ViT model); any
other option (ResNet, attentional pooling, layer scale, custom blocks, timm or Hugging Face
towers, ...) makes it return None and the caller builds the model with open_clip itself.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ClipNetConfig:
    embed_dim: int  # width of the joint image/text space (512 for ViT-B/32)
    image_size: tuple[int, int]  # (height, width) in pixels
    patch_size: tuple[int, int]
    vision_width: int
    vision_layers: int
    vision_heads: int  # open_clip: vision width // head_width
    vision_mlp_ratio: float
    context_length: int  # text positions (77)
    vocab_size: int
    text_width: int
    text_layers: int
    text_heads: int
    text_mlp_ratio: float
    quick_gelu: bool  # OpenAI's x * sigmoid(1.702 x) instead of nn.GELU
    text_proj_bias: bool  # text_projection is an nn.Linear (with bias) instead of a matrix
    nonscalar_logit_scale: bool  # logit_scale of shape (1,) instead of ()
    logit_bias: bool  # SigLIP-style models also carry a logit_bias parameter


# Config fields, by what clip_net does with them. `_SIZES` are read; `_DEFAULTS` must keep
# open_clip's default (any other value is an operation this module doesn't have); `_IGNORED`
# only matter to towers or modes that the defaults rule out (timm, Hugging Face, pooling by an
# eos id, the attentional pooler). A key in none of them is unknown: not ours.
_VISION_SIZES = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size"}
# The transformer block's options, the same in both towers' configs.
_BLOCK_DEFAULTS = {
    "ls_init_value": None,
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
_VISION_DEFAULTS = {
    **_BLOCK_DEFAULTS,
    "patch_dropout": 0.0,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "final_ln_after_pool": False,
    "pool_type": "tok",
    "output_tokens": False,
    "timm_model_name": None,
}
_VISION_IGNORED = {
    "attn_pooler_queries",
    "attn_pooler_heads",
    "timm_model_pretrained",
    "timm_pool",
    "timm_proj",
    "timm_proj_bias",
    "timm_drop",
    "timm_drop_path",
}
_TEXT_SIZES = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "proj_bias"}
_TEXT_DEFAULTS = {
    **_BLOCK_DEFAULTS,
    "hf_tokenizer_name": None,
    "tokenizer_mode": None,
    "tokenizer_kwargs": None,
    "embed_cls": False,
    "no_causal_mask": False,
    "final_ln_after_pool": False,
    "pool_type": "argmax",
    "proj_type": "linear",
    "output_tokens": False,
    "hf_model_name": None,
}
_TEXT_IGNORED = {"pad_id", "eos_id", "hf_model_pretrained", "hf_proj_type", "hf_pooler_type"}
_MODEL_DEFAULTS = {"custom_text": False}
_MODEL_KEYS = {
    "embed_dim",
    "vision_cfg",
    "text_cfg",
    "quick_gelu",
    "init_logit_scale",  # the value is in the weights
    "init_logit_bias",  # a number adds a logit_bias parameter
    "nonscalar_logit_scale",
}
_MODEL_IGNORED = {"output_dict"}


def clip_net_config(model_cfg: dict, quick_gelu: bool) -> ClipNetConfig | None:
    """The ClipNetConfig for open_clip_config.json's model_cfg, or None when open_clip would build
    anything these towers don't compute (then open_clip builds it). quick_gelu forces QuickGELU
    as open_clip's force_quick_gelu does."""
    if not isinstance(model_cfg, dict):
        return None
    vision = model_cfg.get("vision_cfg") or {}
    text = model_cfg.get("text_cfg") or {}
    if not isinstance(vision, dict) or not isinstance(text, dict):
        return None
    for cfg, sizes, defaults, ignored in (
        (model_cfg, _MODEL_KEYS, _MODEL_DEFAULTS, _MODEL_IGNORED),
        (vision, _VISION_SIZES, _VISION_DEFAULTS, _VISION_IGNORED),
        (text, _TEXT_SIZES, _TEXT_DEFAULTS, _TEXT_IGNORED),
    ):
        for key, value in cfg.items():
            if key in sizes or key in ignored:
                continue
            if key not in defaults or not _is_default(key, value, defaults[key]):
                return None
    bias = model_cfg.get("init_logit_bias")
    if not (bias is None or _number(bias)):
        return None
    # open_clip's dataclass defaults (CLIPVisionCfg, CLIPTextCfg)
    layers = vision.get("layers", 12)
    width = vision.get("width", 768)
    head_width = vision.get("head_width", 64)
    sizes = [
        model_cfg.get("embed_dim"),
        layers,
        width,
        head_width,
        text.get("context_length", 77),
        text.get("vocab_size", 49408),
        text.get("width", 512),
        text.get("heads", 8),
        text.get("layers", 12),
    ]
    if not all(_positive_int(v) for v in sizes) or width % head_width:
        return None
    image_size = _pair(vision.get("image_size", 224))
    patch_size = _pair(vision.get("patch_size", 16))
    mlp = (vision.get("mlp_ratio", 4.0), text.get("mlp_ratio", 4.0))
    if image_size is None or patch_size is None or not all(_number(r) and r > 0 for r in mlp):
        return None
    if text.get("width", 512) % text.get("heads", 8) or not isinstance(
        text.get("proj_bias", False), bool
    ):
        return None
    return ClipNetConfig(
        embed_dim=model_cfg["embed_dim"],
        image_size=image_size,
        patch_size=patch_size,
        vision_width=width,
        vision_layers=layers,
        vision_heads=width // head_width,
        vision_mlp_ratio=mlp[0],
        context_length=text.get("context_length", 77),
        vocab_size=text.get("vocab_size", 49408),
        text_width=text.get("width", 512),
        text_layers=text.get("layers", 12),
        text_heads=text.get("heads", 8),
        text_mlp_ratio=mlp[1],
        quick_gelu=bool(quick_gelu or model_cfg.get("quick_gelu", False)),
        text_proj_bias=text.get("proj_bias", False),
        nonscalar_logit_scale=bool(model_cfg.get("nonscalar_logit_scale", False)),
        logit_bias=model_cfg.get("init_logit_bias") is not None,
    )


def _is_default(key: str, value, default) -> bool:
    if key == "block_type":  # open_clip picks "default" for None when no custom feature is on
        return value in (None, "default")
    return value == default


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _pair(v) -> tuple[int, int] | None:
    """open_clip's to_2tuple for an int or a two-item list, or None for anything else."""
    if _positive_int(v):
        return (v, v)
    if isinstance(v, list | tuple) and len(v) == 2 and all(_positive_int(x) for x in v):
        return (v[0], v[1])
    return None


class LayerNorm(nn.LayerNorm):
    """open_clip's LayerNorm: torch's, cast back to the input dtype (under autocast layer_norm
    returns float32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig_type = x.dtype
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.to(orig_type)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); batch-first (B, L, width)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, hidden)),
                    ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
                    ("c_proj", nn.Linear(hidden, width)),
                ]
            )
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        mask = attn_mask.to(h.dtype) if attn_mask is not None else None
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)]
        )

    def get_cast_dtype(self) -> torch.dtype:
        """The dtype the embeddings are cast to before the blocks (the weights' dtype)."""
        return self.resblocks[0].mlp.c_fc.weight.dtype

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class VisionTransformer(nn.Module):
    """Patches -> class token + patch tokens -> blocks -> ln_post -> class token @ proj."""

    def __init__(self, cfg: ClipNetConfig):
        super().__init__()
        self.image_size = cfg.image_size
        self.patch_size = cfg.patch_size
        self.grid_size = (
            cfg.image_size[0] // cfg.patch_size[0],
            cfg.image_size[1] // cfg.patch_size[1],
        )
        width = cfg.vision_width
        patch = cfg.patch_size
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        # Filled from the weights (built on the meta device, see checkpoint.empty_parameters).
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(
            torch.empty(self.grid_size[0] * self.grid_size[1] + 1, width)
        )
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(
            width, cfg.vision_layers, cfg.vision_heads, cfg.vision_mlp_ratio, cfg.quick_gelu
        )
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, cfg.embed_dim))

    def forward_with_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> (pooled (B, embed_dim), patch tokens after ln_post (B, N, width))."""
        x = self.conv1(x)  # (B, width, gh, gw)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, N, width)
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + N, width)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(x)
        return x[:, 0] @ self.proj, x[:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_grid(x)[0]


class ClipNet(nn.Module):
    """open_clip's CLIP for a ClipNetConfig: `visual` plus the text tower's parts at the top level
    (where open_clip's state dict has them), with the causal mask as a non-persistent buffer."""

    def __init__(self, cfg: ClipNetConfig):
        super().__init__()
        self.visual = VisionTransformer(cfg)
        width = cfg.text_width
        self.context_length = cfg.context_length
        self.vocab_size = cfg.vocab_size
        self.token_embedding = nn.Embedding(cfg.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, width))
        self.transformer = Transformer(
            width, cfg.text_layers, cfg.text_heads, cfg.text_mlp_ratio, cfg.quick_gelu
        )
        self.ln_final = LayerNorm(width)
        if cfg.text_proj_bias:
            self.text_projection = nn.Linear(width, cfg.embed_dim)
        else:
            self.text_projection = nn.Parameter(torch.empty(width, cfg.embed_dim))
        self.text_pool_type = "argmax"  # pooled at the end-of-text token, the highest id
        mask = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)  # (L, L) additive, causal
        shape = [1] if cfg.nonscalar_logit_scale else []
        self.logit_scale = nn.Parameter(torch.empty(shape))
        self.logit_bias = nn.Parameter(torch.empty(shape)) if cfg.logit_bias else None

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, embed_dim) raw features."""
        return self.visual(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """(B, context_length) token ids -> (B, embed_dim) raw features."""
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(text).to(cast)  # (B, L, width)
        x = x + self.positional_embedding.to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]  # (B, width)
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection

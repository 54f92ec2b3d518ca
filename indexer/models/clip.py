"""CLIP: the image tower feeds both search and the caption prefix; the text tower embeds captions
and queries. open_clip's ViT models are built from indexer.models.clip_net (plain torch, the same
arithmetic) so the caption path never imports open_clip; other towers go through open_clip.

The published ClipCap MLP checkpoints were trained on OpenAI ViT-B/32, which uses QuickGELU.
open_clip >= 2.29 builds a standard-GELU model for the plain `ViT-B-32` name and only warns, so
the model spec always says `quick_gelu` explicitly and we force it here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from indexer.errors import ModelFormatError
from indexer.models.checkpoint import (
    assign_state_dict,
    describe_load_error,
    empty_parameters,
    key_problems,
    read_state_dict,
)


class ClipEncoder:
    def __init__(
        self, model, preprocess_cfg: dict, tokenizer, device: torch.device, dtype: torch.dtype
    ):
        """model: a ClipNet or an open_clip CLIP; preprocess_cfg: open_clip's preprocessing dict
        for it (size, mean, std, interpolation, resize_mode, ...); tokenizer: texts ->
        (B, context_length) int64 ids."""
        self.model = model
        self.preprocess_cfg = dict(preprocess_cfg)
        self._preprocess = None  # open_clip's EVAL transform (never the train one), made on use
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        size = preprocess_cfg["size"]
        self.image_size: int = int(size[0] if isinstance(size, tuple | list) else size)
        self.embed_dim: int = int(_text_dim(model)) if _has_text(model) else 0
        self.mean = tuple(preprocess_cfg["mean"])
        self.std = tuple(preprocess_cfg["std"])

    def preprocess(self, image) -> torch.Tensor:
        """PIL RGB image -> (3, S, S) float32: bicubic short-side resize, centre crop, normalise.

        open_clip's own transform, built on first use: only training on synthetic scenes calls
        this (indexing decodes and resizes in indexer.media), so captioning never imports it."""
        if self._preprocess is None:
            from open_clip.transform import PreprocessCfg, image_transform_v2

            self._preprocess = image_transform_v2(PreprocessCfg(**self.preprocess_cfg), False)
        return self._preprocess(image)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D) raw (not normalised) float32 features on the CPU."""
        with self._autocast():
            feats = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return feats.float().cpu()

    @torch.no_grad()
    def encode_images_grid(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (features (B, D) as `encode_images`, grid (B, N, C)), one pass.

        The grid is what show-attend-tell attends over: a ViT's patch tokens after its final
        LayerNorm (N = (S / patch)^2, C = width: 49 x 768 for ViT-B/32), or a ResNet's last
        spatial map before attention pooling (N = (S / 32)^2, C = channels). Row-major, so
        token n sits at (n // side, n % side) of the image."""
        with self._autocast():
            feats, grid = visual_with_grid(self.model.visual, pixels.to(self.device))
        return feats.float().cpu(), grid.float().cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (B, D) raw float32 features on the CPU (truncated at the context length)."""
        if not texts:
            return torch.empty(0, self.embed_dim)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with self._autocast():
            feats = self._encode_tokens(tokens)
        return feats.float().cpu()

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP's encode_text over only the first L positions, L = the longest text.

        Attention is causal and the output is read at the end-of-text token, so the padding after
        it can't change the result; captions are ~20 of the 77 positions, so this is 2-4x less
        work (L rounded up to 16s), with the same vectors bit for bit. Any other text tower runs
        its own encode_text unchanged."""
        m = self.model
        if getattr(m, "text_pool_type", None) != "argmax" or getattr(m, "attn_mask", None) is None:
            return m.encode_text(tokens)
        # End-of-text has the highest token id. torch's CPU attention sums over the keys in SIMD
        # blocks plus a scalar tail, so cutting the masked keys off changes the order of the sums
        # (the last bits of the vectors) unless the cut falls on a block boundary. Measured with
        # no SIMD, AVX2 and AVX-512: every length rounded up to a multiple of 16, or the whole
        # context, gives the full-context vectors bit for bit; the exact length does not.
        step = _TEXT_POSITION_STEP
        length = int(tokens.argmax(dim=-1).max()) + 1
        length = min(-(-length // step) * step, tokens.shape[1])
        tokens = tokens[:, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)  # (B, L, width)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        if isinstance(m.text_projection, torch.nn.Linear):
            return m.text_projection(x)
        return x @ m.text_projection  # (B, D)

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


# The text tower runs over a multiple of this many positions (see ClipEncoder._encode_tokens).
_TEXT_POSITION_STEP = 16


def visual_with_grid(visual, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image tower's forward, also returning the grid it pools: the same operations as
    its forward (clip_net's, or open_clip's VisionTransformer / ModifiedResNet), so the pooled
    output is identical."""
    from indexer.models.clip_net import VisionTransformer

    if isinstance(visual, VisionTransformer):
        return visual.forward_with_grid(x)
    if hasattr(visual, "_embeds") and hasattr(visual, "_pool") and hasattr(visual, "transformer"):
        tokens = visual.transformer(visual._embeds(x))  # (B, 1 + N, width)
        pooled, grid = visual._pool(tokens)  # grid: (B, N, width), after ln_post
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled, grid
    if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
        fmap = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))
        grid = fmap.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)
        return visual.attnpool(fmap), grid
    raise ModelFormatError(
        f"this CLIP image tower ({type(visual).__name__}) gives no grid of patch tokens or "
        "spatial features; show-attend-tell needs a ViT or ResNet CLIP"
    )


def _has_text(model) -> bool:
    return getattr(model, "text_projection", None) is not None


def _text_dim(model) -> int:
    proj = model.text_projection
    return proj.out_features if isinstance(proj, torch.nn.Linear) else proj.shape[1]


# open_clip's preference when a folder holds several weight files.
_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)


def _weights_file(clip_dir: Path) -> Path | None:
    found = [p for p in clip_dir.iterdir() if p.suffix in (".safetensors", ".bin", ".pth")]
    for name in _WEIGHT_NAMES:
        if clip_dir / name in found:
            return clip_dir / name
    found.sort(key=lambda p: (p.suffix != ".safetensors", p.name))
    return found[0] if found else None


def load_clip(
    clip_dir: Path, quick_gelu: bool, device: torch.device, dtype: torch.dtype, on_step=None
) -> ClipEncoder:
    """Load CLIP from a directory in open_clip's hub layout: open_clip_config.json + weights file
    (open_clip_model.safetensors, or open_clip_pytorch_model.bin read with weights_only; a pickle
    that would run code is refused). on_step(text) is told when building and loading start."""
    import json

    step = on_step or (lambda _text: None)
    clip_dir = Path(clip_dir)
    config = clip_dir / "open_clip_config.json"
    if not config.is_file():
        raise ModelFormatError(f"{clip_dir}: missing open_clip_config.json")
    weights = _weights_file(clip_dir)
    if weights is None:
        # open_clip would only warn and go on with random weights: refuse instead.
        raise ModelFormatError(f"{clip_dir}: no CLIP weights file (open_clip_model.safetensors)")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{config}: unreadable ({e})") from None
    problem = clip_config_problem(cfg)
    if problem:
        raise ModelFormatError(f"{config}: {problem}")
    step("read CLIP weights")
    sd = read_state_dict(weights)  # safe for any file: safetensors, or tensors-only pickles
    model = pp = None
    if _plain_clip(cfg):
        step("build CLIP")
        model, pp = _build_plain_clip(cfg, quick_gelu, sd, step)
    if model is None:  # a layout open_clip converts on load (or another tower): its own loader
        import open_clip

        step("build CLIP (open_clip loader)")
        ref = f"local-dir:{clip_dir}"
        try:
            model = open_clip.create_model(ref, force_quick_gelu=quick_gelu, weights_only=True)
        except Exception as e:  # unreadable weights, config open_clip rejects, ...
            why = describe_load_error(e)
            raise ModelFormatError(f"{clip_dir}: cannot load CLIP ({why})") from None
        pp = model.visual.preprocess_cfg
    text_cfg = cfg["model_cfg"].get("text_cfg")
    tokenizer = _tokenizer(clip_dir, text_cfg if isinstance(text_cfg, dict) else {})
    model = model.to(device).eval()
    return ClipEncoder(model, pp, tokenizer, device, dtype)


def _tokenizer(clip_dir: Path, text_cfg: dict):
    """texts -> (B, context_length) ids: open_clip's default tokenizer without open_clip, or
    open_clip's get_tokenizer for the configs that pick another (a Hugging Face tokenizer or
    other cleaning)."""
    from indexer.models.clip_tokenizer import ClipTokenizer, bpe_vocab_path

    bpe = bpe_vocab_path()
    if (
        bpe is not None
        and not text_cfg.get("hf_tokenizer_name")
        and not text_cfg.get("tokenizer_kwargs")
    ):
        return ClipTokenizer(bpe, int(text_cfg.get("context_length", 77)))
    import open_clip

    try:
        return open_clip.get_tokenizer(f"local-dir:{clip_dir}")
    except Exception as e:
        raise ModelFormatError(f"{clip_dir}: cannot load the CLIP tokenizer ({e})") from None


# Bounds on the sizes a CLIP config may ask for, checked before anything is built: some buffers
# are real even in a meta build (the text tower's causal mask is context_length squared). Every
# open_clip model is far inside them (ViT-bigG: width 1664, 48 layers, 224 px, 77 tokens).
_CLIP_LIMITS = {
    "embed_dim": 16384,
    "image_size": 4096,
    "patch_size": 1024,
    "width": 16384,
    "head_width": 4096,
    "layers": 256,
    "heads": 512,
    "context_length": 4096,
    "vocab_size": 1_000_000,
}


def clip_config_problem(cfg) -> str | None:
    """What is wrong with open_clip_config.json's sizes (naming the field), or None."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        return "field 'model_cfg' must be an object"
    m = cfg["model_cfg"]
    parts = [("model_cfg", m)] + [
        (f"model_cfg.{k}", m[k]) for k in ("vision_cfg", "text_cfg") if isinstance(m.get(k), dict)
    ]
    for where, d in parts:
        for key, hi in _CLIP_LIMITS.items():
            v = d.get(key)
            values = v if isinstance(v, list) else [v]  # ResNet layers, (h, w) image sizes
            if v is None or all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x <= hi for x in values
            ):
                continue
            return f"field '{where}.{key}' must be an integer in 1..{hi} (got {v!r})"
    return None


def _plain_clip(cfg) -> bool:
    """An open_clip CLIP built from its own towers (OpenAI ViT/ResNet layouts), which is what
    every registry model uses; timm/HF towers and CoCa go through open_clip's loader."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        return False
    m = cfg["model_cfg"]
    return not (
        m.get("custom_text")
        or "multimodal_cfg" in m
        or "timm_model_name" in (m.get("vision_cfg") or {})
        or "hf_model_name" in (m.get("text_cfg") or {})
    )


def _build_plain_clip(cfg: dict, quick_gelu: bool, sd: dict, step):
    """(model, preprocessing config), built without random init and loaded by assignment, or
    (None, None) when sd needs open_clip's conversions (then its loader handles the file).

    A ViT config clip_net computes is built from it, anything else from open_clip's CLIP; both
    mirror open_clip's create_model for a local directory: same config overrides, same
    preprocessing config (defaults <- file <- the model's image size)."""
    from indexer.models.clip_net import ClipNet, clip_net_config

    model_cfg = dict(cfg["model_cfg"])
    net_cfg = clip_net_config(model_cfg, quick_gelu)
    if net_cfg is not None:
        with empty_parameters():
            model = ClipNet(net_cfg)
    else:
        from open_clip.model import CLIP

        model_cfg.pop("custom_text", None)  # open_clip pops it too (False here: _plain_clip)
        if quick_gelu:
            model_cfg["quick_gelu"] = True
        try:
            with empty_parameters():
                model = CLIP(**model_cfg)
        except (TypeError, ValueError, KeyError):  # a config only open_clip's factory understands
            return None, None
    if key_problems(model, sd):
        return None, None
    step("assign CLIP weights")
    assign_state_dict(model, sd)
    pp = preprocess_cfg(cfg.get("preprocess_cfg"))
    pp["size"] = model.visual.image_size
    return model, pp


# open_clip's PreprocessCfg defaults (open_clip/transform.py; OpenAI's dataset mean and std).
_PREPROCESS_DEFAULTS = {
    "size": 224,
    "mode": "RGB",
    "mean": (0.48145466, 0.4578275, 0.40821073),
    "std": (0.26862954, 0.26130258, 0.27577711),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}


def preprocess_cfg(overlay) -> dict:
    """open_clip's merge_preprocess_dict(asdict(PreprocessCfg()), overlay): the defaults, then
    the overlay's known keys whose values are not None."""
    pp = dict(_PREPROCESS_DEFAULTS)
    if isinstance(overlay, dict):
        pp.update({k: v for k, v in overlay.items() if k in pp and v is not None})
    return pp

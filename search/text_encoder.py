"""The CLIP text tower in NumPy, for queries: a cold `imgcap search` never imports torch.

Importing torch and open_clip and building the full CLIP model takes seconds on a small CPU, more
than the whole cold-search budget; one query needs only the text tower. This module reads just
the text weights from the model's safetensors file (memory-mapped), tokenizes with
indexer.models.clip_tokenizer (open_clip's BPE without importing open_clip), and runs the
forward pass of open_clip's `CLIP.encode_text` in float32. tests/test_search_text_encoder.py
checks it against the torch encoder. Anything it does not reproduce exactly (a Hugging Face text
tower, another tokenizer, pooling or projection) makes `load_text_encoder` return None and the
caller uses torch.

Because attention is causal and the output is read at the end-of-text token, positions after
that token cannot change the result: only the real tokens are computed, not all 77.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from indexer.models.clip_tokenizer import ClipTokenizer, bpe_vocab_path

# Text-config keys whose default values we implement; any other key means "not ours".
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_MODEL_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "custom_text"}


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray, quick: bool) -> np.ndarray:
    if quick:  # OpenAI CLIP's QuickGELU
        return x / (1.0 + np.exp(-1.702 * x))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float32))  # exact, like nn.GELU


class NumpyTextEncoder:
    """`encode_texts(list[str]) -> (B, D)` raw float32 text features, identical to open_clip's."""

    def __init__(self, weights: dict[str, np.ndarray], cfg: dict, quick_gelu: bool, tokenizer):
        self.w = weights
        self.heads = int(cfg["heads"])
        self.layers = int(cfg["layers"])
        self.quick = quick_gelu
        self.tokenizer = tokenizer
        self.embed_dim = int(weights["text_projection"].shape[1])

    def _encode_one(self, ids: list[int]) -> np.ndarray:
        w = self.w
        n = len(ids)  # causal attention: tokens after end-of-text never reach its output
        x = w["token_embedding.weight"][ids] + w["positional_embedding"][:n]  # (n, W)
        width = x.shape[1]
        hd = width // self.heads
        mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
        for i in range(self.layers):
            p = f"transformer.resblocks.{i}."
            h = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
            qkv = h @ w[p + "attn.in_proj_weight"].T + w[p + "attn.in_proj_bias"]  # (n, 3W)
            q, k, v = (
                qkv[:, j * width : (j + 1) * width].reshape(n, self.heads, hd) for j in range(3)
            )
            att = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask  # (heads, n, n)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(n, width)
            x = x + o @ w[p + "attn.out_proj.weight"].T + w[p + "attn.out_proj.bias"]
            h = _layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
            h = _gelu(h @ w[p + "mlp.c_fc.weight"].T + w[p + "mlp.c_fc.bias"], self.quick)
            x = x + h @ w[p + "mlp.c_proj.weight"].T + w[p + "mlp.c_proj.bias"]
        x = _layer_norm(x, w["ln_final.weight"], w["ln_final.bias"])
        eot = int(np.argmax(ids))  # open_clip pools at the highest token id: end-of-text
        return (x[eot] @ w["text_projection"]).astype(np.float32)  # (D,)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.embed_dim), np.float32)
        return np.stack([self._encode_one(self.tokenizer.ids(t)) for t in texts])


@lru_cache(maxsize=4)
def load_text_encoder(clip_dir: Path, quick_gelu: bool) -> NumpyTextEncoder | None:
    """The NumPy text tower for an open_clip directory, or None when it cannot be exact."""
    clip_dir = Path(clip_dir)
    weights_file = clip_dir / "open_clip_model.safetensors"
    bpe = bpe_vocab_path()
    try:
        cfg = json.loads((clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    except (OSError, ValueError, KeyError):
        return None
    text_cfg = cfg.get("text_cfg", {})
    if (
        not weights_file.is_file()
        or bpe is None
        or set(cfg) - _MODEL_KEYS
        or cfg.get("custom_text")
        or set(text_cfg) - _TEXT_KEYS
        or text_cfg.get("mlp_ratio", 4) != 4
    ):
        return None
    keys = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_proj")
    weights = _mapped_float32(weights_file, keys)
    if weights is None:
        from safetensors import safe_open

        with safe_open(str(weights_file), framework="np") as f:
            names = [k for k in f.keys() if k.startswith(keys)]
            weights = {k: np.asarray(f.get_tensor(k), dtype=np.float32) for k in names}
    if "text_projection" not in weights or weights["text_projection"].ndim != 2:
        return None
    tokenizer = ClipTokenizer(bpe, int(text_cfg.get("context_length", 77)))
    return NumpyTextEncoder(weights, text_cfg, quick_gelu or bool(cfg.get("quick_gelu")), tokenizer)


def _mapped_float32(path: Path, prefixes: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The float32 tensors named `prefixes*` of a safetensors file, memory-mapped, not read:
    a query reads a few rows of the 100 MB token embedding, so copying all of it (and the rest
    of the tower) was ~0.13 s of every cold search. None when any wanted tensor is not float32
    or the header is not what the format says (the caller then reads it with safetensors)."""
    import sys

    if sys.byteorder != "little":
        return None  # safetensors data is little-endian
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100_000_000:
                return None
            header = json.loads(fh.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
        out = {}
        for name, info in header.items():
            if name == "__metadata__" or not name.startswith(prefixes):
                continue
            start, end = info["data_offsets"]
            shape = tuple(info["shape"])
            if info["dtype"] != "F32" or end - start != 4 * int(np.prod(shape, dtype=np.int64)):
                return None
            out[name] = data[start:end].view(np.float32).reshape(shape)
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None

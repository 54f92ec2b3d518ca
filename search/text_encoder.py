"""The CLIP text tower in NumPy, for queries: a cold `imgcap search` never imports torch.

Importing torch and open_clip and building the full CLIP model takes seconds on a small CPU, more
than the whole cold-search budget; one query needs only the text tower. This module reads just
the text weights from the model's safetensors file (memory-mapped), tokenizes with open_clip's
BPE vocabulary (the same file, read without importing open_clip), and runs the forward pass of
open_clip's `CLIP.encode_text` in float32. tests/test_search_text_encoder.py checks it against the
torch encoder. Anything it does not reproduce exactly (a Hugging Face text tower, another tokenizer,
pooling or projection) makes `load_text_encoder` return None and the caller uses torch.

Because attention is causal and the output is read at the end-of-text token, positions after
that token cannot change the result: only the real tokens are computed, not all 77.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

# Text-config keys whose default values we implement; any other key means "not ours".
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_MODEL_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "custom_text"}


def _bpe_path() -> Path | None:
    spec = importlib.util.find_spec("open_clip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class ClipTokenizer:
    """open_clip's SimpleTokenizer (clean='lower'), returning plain token-id lists."""

    def __init__(self, bpe_path: Path, context_length: int = 77):
        import regex

        merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        pairs = [tuple(m.split()) for m in merges]
        self.byte_encoder = _bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(p) for p in pairs]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.ranks = {p: i for i, p in enumerate(pairs)}
        self.sot, self.eot = self.encoder["<start_of_text>"], self.encoder["<end_of_text>"]
        self.context_length = context_length
        self.pat = regex.compile(
            r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
            r"|[^\s\p{L}\p{N}]+",
            regex.IGNORECASE,
        )
        self.cache: dict[str, str] = {}

    def _bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
            best = min(pairs, key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = " ".join(text.split()).lower()
        ids: list[int] = []
        for token in self.pat.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids += [self.encoder[t] for t in self._bpe(token).split(" ")]
        return ids

    def __call__(self, text: str) -> list[int]:
        ids = [self.sot, *self.encode(text), self.eot]
        if len(ids) > self.context_length:
            ids = ids[: self.context_length]
            ids[-1] = self.eot
        return ids


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
        return np.stack([self._encode_one(self.tokenizer(t)) for t in texts])


@lru_cache(maxsize=4)
def load_text_encoder(clip_dir: Path, quick_gelu: bool) -> NumpyTextEncoder | None:
    """The NumPy text tower for an open_clip directory, or None when it cannot be exact."""
    clip_dir = Path(clip_dir)
    weights_file = clip_dir / "open_clip_model.safetensors"
    bpe = _bpe_path()
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

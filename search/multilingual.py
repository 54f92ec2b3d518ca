"""The multilingual query text tower in NumPy: DistilBERT, mean pooling and the Dense projection
of a sentence-transformers tower (indexer/models/text_tower.py), giving a query vector in CLIP's
text space for a question in German, Chinese, Spanish, ...

Like search/text_encoder.py for CLIP's own tower, it runs without torch: importing torch and
transformers costs ~2.7 s on the 2-core box, past the whole 2 s budget of a cold non-English
search. The weights are memory-mapped from the safetensors files (a query reads a handful of the
119,547 embedding rows), the tokenizer is Hugging Face `tokenizers` (Rust, ~0.07 s to import).
tests/test_models_text_tower.py checks the output against transformers' DistilBertModel.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from indexer.errors import ModelFormatError
from indexer.models.text_tower import TowerConfig, expected_shapes, read_tower, weights_file
from search.text_encoder import _gelu, _layer_norm, _mapped_float32

_EPS = 1e-12  # DistilBERT's LayerNorm epsilon


def _read_weights(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The tensors `shapes` names from a safetensors file, memory-mapped when float32; any other
    tensor set, shape or a malformed file is refused naming the file."""
    weights = _mapped_float32(path, ("",))
    if weights is None:
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as f:
                weights = {k: np.asarray(f.get_tensor(k), dtype=np.float32) for k in f.keys()}
        except Exception as e:  # safetensors raises its own types for a bad header or data
            raise ModelFormatError(f"{path}: not a readable safetensors file ({e})") from None
    for name, shape in shapes.items():
        if name not in weights:
            # save_pretrained of a model with a head prefixes the base model's names
            if f"distilbert.{name}" in weights:
                weights[name] = weights[f"distilbert.{name}"]
            else:
                raise ModelFormatError(f"{path}: tensor {name!r} is missing")
        if tuple(weights[name].shape) != shape:
            raise ModelFormatError(
                f"{path}: tensor {name!r} has shape {tuple(weights[name].shape)}, the config"
                f" says {shape}"
            )
    return {k: weights[k] for k in shapes}


class MultilingualTextEncoder:
    """`encode_texts(list[str]) -> (B, out_dim)` raw float32 query vectors (unnormalised, as
    sentence-transformers returns them; search normalises)."""

    def __init__(self, tower_dir: Path):
        from tokenizers import Tokenizer

        tower_dir = Path(tower_dir)
        self.cfg: TowerConfig = read_tower(tower_dir)
        c = self.cfg
        self.w = _read_weights(weights_file(tower_dir), expected_shapes(c))
        dense = {"linear.weight": (c.out_dim, c.dim)}
        if c.dense_bias:
            dense["linear.bias"] = (c.out_dim,)
        self.dense = _read_weights(weights_file(tower_dir / "2_Dense"), dense)
        try:
            self.tokenizer = Tokenizer.from_file(str(tower_dir / "tokenizer.json"))
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise ModelFormatError(f"{tower_dir / 'tokenizer.json'}: unreadable ({e})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(min(c.max_tokens, c.max_positions))
        self.embed_dim = c.out_dim

    def token_ids(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text).ids
        if any(i >= self.cfg.vocab_size for i in ids):
            raise ModelFormatError("the text tower's tokenizer is larger than its vocabulary")
        return ids

    def _encode_one(self, ids: list[int]) -> np.ndarray:
        w, c = self.w, self.cfg
        n, hd = len(ids), c.dim // c.n_heads
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], _EPS)
        for i in range(c.n_layers):
            p = f"transformer.layer.{i}."

            def lin(h, name, p=p):
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q, k, v = (
                lin(x, f"attention.{n_}").reshape(n, c.n_heads, hd)
                for n_ in ("q_lin", "k_lin", "v_lin")
            )
            att = np.einsum("qhd,khd->hqk", q / math.sqrt(hd), k)  # one query: no padding mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = lin(np.einsum("hqk,khd->qhd", att, v).reshape(n, c.dim), "attention.out_lin")
            x = _layer_norm(x + o, w[p + "sa_layer_norm.weight"], w[p + "sa_layer_norm.bias"], _EPS)
            h = lin(_gelu(lin(x, "ffn.lin1"), quick=False), "ffn.lin2")
            x = _layer_norm(
                x + h, w[p + "output_layer_norm.weight"], w[p + "output_layer_norm.bias"], _EPS
            )
        pooled = x.mean(0)  # mean pooling over every token, [CLS] and [SEP] included
        out = pooled @ self.dense["linear.weight"].T
        if "linear.bias" in self.dense:
            out = out + self.dense["linear.bias"]
        return out.astype(np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.embed_dim), np.float32)
        return np.stack([self._encode_one(self.token_ids(t)) for t in texts])


@lru_cache(maxsize=2)
def load_multilingual_encoder(tower_dir: Path) -> MultilingualTextEncoder:
    """The tower of a checked directory (indexer/models/loading.resolve_tower_dir), once per
    process: the gallery answers every query with the same one."""
    return MultilingualTextEncoder(Path(tower_dir))

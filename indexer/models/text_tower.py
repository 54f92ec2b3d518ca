"""A multilingual text tower's directory: the sentence-transformers hub layout, its validation,
and writing one with random weights (the tiny test twin, the real-size benchmark tower).

A text tower is query-side only: a text encoder trained into the text space of one CLIP model
(OpenAI ViT-B/32 for the registry's tower), so its vectors are compared with the image and
caption vectors already in the index. The layout is the hub repository's own:

    tower/
      config.json                 DistilBERT config (model_type "distilbert")
      model.safetensors           DistilBertModel weights (safetensors only: no pickles)
      tokenizer.json              the WordPiece tokenizer (Hugging Face `tokenizers` format)
      sentence_bert_config.json   max_seq_length (optional; 128)
      1_Pooling/config.json       mean pooling (optional; anything else is refused)
      2_Dense/config.json         in_features, out_features, bias, Identity activation
      2_Dense/model.safetensors   linear.weight (out, in) [, linear.bias]

Every file is untrusted input: sizes are bounded before anything is allocated from them and
tensors' shapes are checked against the config (search/multilingual.py reads the weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from indexer.atomic_file import write_atomic
from indexer.errors import ModelFormatError

# Bounds a config may ask for: the published tower (119,547 x 768, 6 layers) fits with room; a
# hostile config (dim 10**9) does not.
_LIMITS = {
    "vocab_size": (1, 300_000),
    "dim": (1, 4096),
    "n_layers": (1, 48),
    "n_heads": (1, 64),
    "hidden_dim": (1, 16384),
    "max_position_embeddings": (2, 8192),
}
_IDENTITY = ("torch.nn.modules.linear.Identity", "Identity", None)
PICKLES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")


@dataclass(frozen=True)
class TowerConfig:
    dim: int
    n_layers: int
    n_heads: int
    hidden_dim: int
    vocab_size: int
    max_positions: int
    out_dim: int
    dense_bias: bool
    max_tokens: int  # sentence-transformers' max_seq_length: longer queries are cut


def is_tower_dir(path: str | Path) -> bool:
    p = Path(path).expanduser()
    return (p / "config.json").is_file() and (p / "2_Dense").is_dir()


def _json(path: Path, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise ModelFormatError(
                f"{path}: missing (a text tower needs it; layout in docs/languages.md)"
            )
        return None
    if path.stat().st_size > 1_000_000:
        raise ModelFormatError(f"{path}: {path.stat().st_size:,} bytes is not a config file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{path}: unreadable JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: must be a JSON object")
    return data


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def weights_file(folder: Path) -> Path:
    """`model.safetensors` in folder; a folder holding only pickled weights is refused, never
    unpickled (a pickle can run code; the pinned hub revision has safetensors)."""
    st = folder / "model.safetensors"
    if st.is_file():
        return st
    pickled = [p for p in PICKLES if (folder / p).is_file()]
    if pickled:
        raise ModelFormatError(
            f"{folder / pickled[0]}: pickled weights are not loaded (a pickle can run code);"
            " a text tower needs model.safetensors (the pinned hub revision has it)"
        )
    raise ModelFormatError(f"{st}: missing (a text tower needs its weights as safetensors)")


def read_tower(tower_dir: Path) -> TowerConfig:
    """The checked configuration of a text tower directory; ModelFormatError naming the file and
    the field when anything is missing, malformed or out of bounds."""
    tower_dir = Path(tower_dir)
    cfg_path = tower_dir / "config.json"
    cfg = _json(cfg_path)
    if cfg.get("model_type") != "distilbert":
        raise ModelFormatError(
            f"{cfg_path}: field 'model_type' must be distilbert (got {cfg.get('model_type')!r})"
        )
    for key, (lo, hi) in _LIMITS.items():
        v = cfg.get(key)
        if not (_int(v) and lo <= v <= hi):
            raise ModelFormatError(
                f"{cfg_path}: field {key!r} must be an integer in {lo}..{hi} (got {v!r})"
            )
    if cfg["dim"] % cfg["n_heads"]:
        raise ModelFormatError(f"{cfg_path}: field 'dim' must be a multiple of 'n_heads'")
    if cfg.get("activation", "gelu") != "gelu" or cfg.get("sinusoidal_pos_embds", False):
        raise ModelFormatError(
            f"{cfg_path}: only gelu activation and learned positions are supported"
        )
    pool = _json(tower_dir / "1_Pooling" / "config.json", required=False)
    if pool is not None:
        modes = sorted(k for k, v in pool.items() if k.startswith("pooling_mode") and v is True)
        if modes != ["pooling_mode_mean_tokens"]:
            raise ModelFormatError(
                f"{tower_dir / '1_Pooling' / 'config.json'}: only mean pooling is supported"
                f" (got {', '.join(modes) or 'none'})"
            )
    dense_path = tower_dir / "2_Dense" / "config.json"
    dense = _json(dense_path)
    if dense.get("in_features") != cfg["dim"]:
        raise ModelFormatError(
            f"{dense_path}: field 'in_features' must be the encoder's dim {cfg['dim']}"
            f" (got {dense.get('in_features')!r})"
        )
    out = dense.get("out_features")
    if not (_int(out) and 1 <= out <= 4096):
        raise ModelFormatError(
            f"{dense_path}: field 'out_features' must be an integer in 1..4096 (got {out!r})"
        )
    if not isinstance(dense.get("bias", True), bool):
        raise ModelFormatError(f"{dense_path}: field 'bias' must be true or false")
    if dense.get("activation_function") not in _IDENTITY:
        raise ModelFormatError(
            f"{dense_path}: field 'activation_function' must be Identity"
            f" (got {dense.get('activation_function')!r})"
        )
    st = _json(tower_dir / "sentence_bert_config.json", required=False) or {}
    max_tokens = st.get("max_seq_length", 128)
    if not (_int(max_tokens) and 2 <= max_tokens <= cfg["max_position_embeddings"]):
        raise ModelFormatError(
            f"{tower_dir / 'sentence_bert_config.json'}: field 'max_seq_length' must be an"
            f" integer in 2..{cfg['max_position_embeddings']} (got {max_tokens!r})"
        )
    if not (tower_dir / "tokenizer.json").is_file():
        raise ModelFormatError(f"{tower_dir / 'tokenizer.json'}: missing (the tower's tokenizer)")
    weights_file(tower_dir)
    weights_file(tower_dir / "2_Dense")
    return TowerConfig(
        dim=cfg["dim"],
        n_layers=cfg["n_layers"],
        n_heads=cfg["n_heads"],
        hidden_dim=cfg["hidden_dim"],
        vocab_size=cfg["vocab_size"],
        max_positions=cfg["max_position_embeddings"],
        out_dim=out,
        dense_bias=bool(dense.get("bias", True)),
        max_tokens=max_tokens,
    )


def expected_shapes(c: TowerConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the encoder's model.safetensors and its shape (DistilBertModel names)."""
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (c.vocab_size, c.dim),
        "embeddings.position_embeddings.weight": (c.max_positions, c.dim),
        "embeddings.LayerNorm.weight": (c.dim,),
        "embeddings.LayerNorm.bias": (c.dim,),
    }
    for i in range(c.n_layers):
        p = f"transformer.layer.{i}."
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            shapes[p + f"attention.{lin}.weight"] = (c.dim, c.dim)
            shapes[p + f"attention.{lin}.bias"] = (c.dim,)
        for norm in ("sa_layer_norm", "output_layer_norm"):
            shapes[p + f"{norm}.weight"] = (c.dim,)
            shapes[p + f"{norm}.bias"] = (c.dim,)
        shapes[p + "ffn.lin1.weight"] = (c.hidden_dim, c.dim)
        shapes[p + "ffn.lin1.bias"] = (c.hidden_dim,)
        shapes[p + "ffn.lin2.weight"] = (c.dim, c.hidden_dim)
        shapes[p + "ffn.lin2.bias"] = (c.dim,)
    return shapes


# ------------------------------------------------------------------ writing random-weight towers
def write_random_tower(
    out: Path,
    words: list[str],
    dim: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    hidden_dim: int = 64,
    out_dim: int = 32,
    max_positions: int = 64,
    vocab_size: int | None = None,
    seed: int = 0,
) -> Path:
    """A text tower in the hub layout with random weights and a WordPiece vocabulary of `words`
    (padded with made-up pieces up to vocab_size): the tiny test twin, or (real sizes) the
    benchmark tower. It loads through exactly the code that loads the published one."""
    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    out = Path(out)
    (out / "2_Dense").mkdir(parents=True, exist_ok=True)
    (out / "1_Pooling").mkdir(parents=True, exist_ok=True)
    vocab_words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab_words += [w for w in dict.fromkeys(words) if w not in vocab_words]
    n = max(vocab_size or 0, len(vocab_words))
    vocab_words += [f"##x{i}" for i in range(n - len(vocab_words))]
    vocab = {w: i for i, w in enumerate(vocab_words)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(out / "tokenizer.json"))

    max_tokens = min(128, max_positions)
    cfg = TowerConfig(
        dim, n_layers, n_heads, hidden_dim, n, max_positions, out_dim, False, max_tokens
    )
    config = {
        "architectures": ["DistilBertModel"],
        "model_type": "distilbert",
        "activation": "gelu",
        "dim": dim,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "hidden_dim": hidden_dim,
        "vocab_size": n,
        "max_position_embeddings": max_positions,
        "sinusoidal_pos_embds": False,
        "pad_token_id": 0,
    }
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(cfg).items():
        if "LayerNorm" in name or "layer_norm" in name:
            base = 1.0 if name.endswith("weight") else 0.0
            tensors[name] = (base + 0.05 * rng.standard_normal(shape)).astype(np.float32)
        else:
            tensors[name] = (0.05 * rng.standard_normal(shape)).astype(np.float32)
    save_file(tensors, str(out / "model.safetensors"))
    dense = {"linear.weight": (0.1 * rng.standard_normal((out_dim, dim))).astype(np.float32)}
    save_file(dense, str(out / "2_Dense" / "model.safetensors"))
    _write_json(out / "config.json", config)
    _write_json(
        out / "2_Dense" / "config.json",
        {
            "in_features": dim,
            "out_features": out_dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        },
    )
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": dim, "pooling_mode_mean_tokens": True},
    )
    _write_json(
        out / "sentence_bert_config.json", {"max_seq_length": max_tokens, "do_lower_case": False}
    )
    return out


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))

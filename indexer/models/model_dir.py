"""Local model directories: the spec file, its validation, and writing a complete directory.

    my-model/
      imgcap-model.json        spec: name, ClipCap config, file names (checked by read_spec)
      clipcap.pt               ClipCap state dict, published key layout (gpt.*, clip_project.*)
      clipcap.safetensors      written by imgcap on first load: the same tensors, memory-mappable
      clip/open_clip_config.json
      clip/open_clip_model.safetensors   (or open_clip_pytorch_model.bin)
      tokenizer/vocab.json, tokenizer/merges.txt   (GPT-2 BPE files)

A spec is untrusted input (it may come with a downloaded folder): every field is type-checked
and every size bounded before anything is allocated from it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from indexer.atomic_file import atomic_file, atomic_path, write_atomic
from indexer.errors import ModelFormatError

SPEC_FILE = "imgcap-model.json"
SPEC_FORMAT = 1

# Sizes a spec may ask for. GPT-2 XL (1600 wide, 48 layers, 25 heads) and every published
# ClipCap fit with room to spare; a typo or a hostile file (n_embd 1000000 asked for 12 TB) won't.
_INT_LIMITS = {
    "prefix_dim": (1, 8192),
    "prefix_length": (1, 512),
    "clip_length": (1, 512),
    "num_layers": (1, 64),
    "num_heads": (1, 128),
}
_GPT2_INT_LIMITS = {
    "vocab_size": (1, 300_000),
    "n_positions": (1, 8192),
    "n_embd": (1, 8192),
    "n_layer": (1, 96),
    "n_head": (1, 128),
    "n_inner": (1, 32768),
}
# The captioner architectures a spec may name ("arch"; absent = clipcap, every older spec).
ARCHS = ("clipcap", "show-and-tell", "show-attend-tell")
_LSTM_INT_LIMITS = {
    "feature_dim": (1, 8192),
    "vocab_size": (1, 300_000),
    "grid_dim": (0, 8192),
    "embed_dim": (1, 8192),
    "hidden_dim": (1, 8192),
    "attention_dim": (1, 8192),
}
_GPT2_FLOATS = (
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "layer_norm_epsilon",
    "initializer_range",
)
_GPT2_STRINGS = ("activation_function",)


def is_model_dir(name_or_dir: str) -> bool:
    return (Path(name_or_dir).expanduser() / SPEC_FILE).is_file()


def stored_name(name_or_dir: str) -> str:
    """The name results are stored under: a model directory's spec names it; a registry name is
    its own."""
    if is_model_dir(name_or_dir):
        return read_spec(Path(name_or_dir).expanduser())["name"]
    return name_or_dir


def write_spec(out: Path, spec: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / SPEC_FILE, (json.dumps(spec, indent=2) + "\n").encode("utf-8"))


def read_spec(model_dir: Path) -> dict:
    path = Path(model_dir) / SPEC_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{path}: unreadable model spec ({e})") from None
    problem = spec_problem(spec)
    if problem:
        raise ModelFormatError(f"{path}: {problem}")
    return spec


def spec_problem(spec) -> str | None:
    """What is wrong with a parsed spec (naming the field), or None."""
    if not isinstance(spec, dict):
        return "the spec must be a JSON object"
    arch = spec.get("arch", "clipcap")
    if arch not in ARCHS:
        return f"field 'arch' must be one of {', '.join(ARCHS)} (got {arch!r})"
    config = "clipcap" if arch == "clipcap" else "lstm"
    for key in ("name", config, "checkpoint", "clip", "tokenizer"):
        if key not in spec:
            return f"missing field {key!r}"
    fmt = spec.get("format", SPEC_FORMAT)
    if not _is_int(fmt) or fmt < 1:
        return f"field 'format' must be a positive integer (got {fmt!r})"
    if fmt > SPEC_FORMAT:
        return f"written by a newer imgcap (format {fmt})"
    name = spec["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        return f"field 'name' must be a non-empty string of at most 200 characters (got {name!r})"
    if not name.isprintable():
        return "field 'name' contains control characters"
    for key in ("checkpoint", "tokenizer"):
        if not isinstance(spec[key], str) or not spec[key]:
            return f"field {key!r} must be a file path string (got {spec[key]!r})"
    clip = spec["clip"]
    if not isinstance(clip, dict) or not isinstance(clip.get("dir"), str):
        return "field 'clip' must be an object with a 'dir' path string"
    if not isinstance(clip.get("quick_gelu", True), bool):
        return f"field 'clip.quick_gelu' must be true or false (got {clip['quick_gelu']!r})"
    keys = spec.get("checkpoint_keys")
    if keys is not None and not (_is_int(keys) and keys > 0):
        return f"field 'checkpoint_keys' must be a positive integer (got {keys!r})"
    if arch != "clipcap":
        return lstm_problem(spec["lstm"], arch)
    return clipcap_problem(spec["clipcap"])


def lstm_problem(cfg, arch: str) -> str | None:
    """Type and size checks of a spec's `lstm` object (indexer/lstm_captioner.LstmConfig)."""
    if not isinstance(cfg, dict):
        return "field 'lstm' must be an object"
    unknown = sorted(set(cfg) - set(_LSTM_INT_LIMITS) - {"dropout", "alpha_c"})
    if unknown:
        return f"unknown field 'lstm.{unknown[0]}'"
    for key in ("feature_dim", "vocab_size") + (("grid_dim",) if arch == ARCHS[2] else ()):
        if key not in cfg:
            return f"missing field 'lstm.{key}'"
    problem = _ints(cfg, _LSTM_INT_LIMITS, "lstm")
    if problem:
        return problem
    if arch == ARCHS[2] and cfg["grid_dim"] < 1:
        return "field 'lstm.grid_dim' must be positive for show-attend-tell"
    dropout = cfg.get("dropout", 0.5)
    if not (_is_number(dropout) and 0 <= dropout < 1):
        return f"field 'lstm.dropout' must be a number in [0, 1) (got {dropout!r})"
    alpha_c = cfg.get("alpha_c", 1.0)
    if not (_is_number(alpha_c) and 0 <= alpha_c <= 100):
        return f"field 'lstm.alpha_c' must be a number in [0, 100] (got {alpha_c!r})"
    return None


def clipcap_problem(cfg) -> str | None:
    """Type and size checks of a spec's `clipcap` object (ClipCapConfig fields)."""
    if not isinstance(cfg, dict):
        return "field 'clipcap' must be an object"
    known = set(_INT_LIMITS) | {"mapping", "mlp_ratio", "normalize_prefix", "gpt2"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        return f"unknown field 'clipcap.{unknown[0]}'"
    if cfg.get("mapping", "mlp") not in ("mlp", "transformer"):
        return f"field 'clipcap.mapping' must be mlp or transformer (got {cfg['mapping']!r})"
    problem = _ints(cfg, _INT_LIMITS, "clipcap")
    if problem:
        return problem
    ratio = cfg.get("mlp_ratio", 2.0)
    if not (_is_number(ratio) and 0 < ratio <= 16):
        return f"field 'clipcap.mlp_ratio' must be a number in (0, 16] (got {ratio!r})"
    if not isinstance(cfg.get("normalize_prefix", False), bool):
        return "field 'clipcap.normalize_prefix' must be true or false"
    gpt2 = cfg.get("gpt2", {})
    if not isinstance(gpt2, dict):
        return "field 'clipcap.gpt2' must be an object"
    problem = _ints(gpt2, _GPT2_INT_LIMITS, "clipcap.gpt2", allow_null=("n_inner",))
    if problem:
        return problem
    for key, value in gpt2.items():
        if key in _GPT2_INT_LIMITS:
            continue
        if key in _GPT2_FLOATS:
            if not (_is_number(value) and 0 <= value < 1):
                return f"field 'clipcap.gpt2.{key}' must be a number in [0, 1) (got {value!r})"
        elif key in _GPT2_STRINGS:
            if not isinstance(value, str):
                return f"field 'clipcap.gpt2.{key}' must be a string (got {value!r})"
            if key == "activation_function" and value != "gelu_new":
                # indexer/models/gpt2.py has GPT-2's own activation only.
                return f"field 'clipcap.gpt2.{key}' must be \"gelu_new\" (got {value!r})"
        elif key in ("bos_token_id", "eos_token_id"):
            if value is not None and not _is_int(value):
                return f"field 'clipcap.gpt2.{key}' must be an integer or null"
        else:
            return f"unknown field 'clipcap.gpt2.{key}'"
    n_embd = gpt2.get("n_embd", 768)
    if n_embd % gpt2.get("n_head", 12):
        return "field 'clipcap.gpt2.n_embd' must be a multiple of 'clipcap.gpt2.n_head'"
    if cfg.get("mapping") == "transformer" and n_embd % cfg.get("num_heads", 8):
        return "field 'clipcap.gpt2.n_embd' must be a multiple of 'clipcap.num_heads'"
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _ints(d: dict, limits: dict, where: str, allow_null: tuple = ()) -> str | None:
    for key, (lo, hi) in limits.items():
        if key not in d or (d[key] is None and key in allow_null):
            continue
        v = d[key]
        if not (_is_int(v) and lo <= v <= hi):
            return f"field '{where}.{key}' must be an integer in {lo}..{hi} (got {v!r})"
    return None


def rel(model_dir: Path, p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else Path(model_dir) / path


# ---------------------------------------------------------------------- writing model folders
def published_state_dict(model) -> dict:
    """state_dict in the published layout, legacy causal-mask buffers included, so the file also
    loads strictly in the reference code (transformers <= 4.29)."""
    import torch

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    n_pos = model.gpt.config.n_positions
    mask = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.uint8)).view(1, 1, n_pos, n_pos)
    for i in range(model.gpt.config.n_layer):
        sd[f"gpt.transformer.h.{i}.attn.bias"] = mask
        sd[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return sd


OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def write_model_dir(
    out: Path,
    name: str,
    clipcap_model,
    clip_model_cfg: dict,
    clip_state: dict,
    tokenizer_dir: Path,
    quick_gelu: bool,
    description: str = "",
) -> Path:
    """Write a complete local model directory (spec, checkpoint, CLIP, tokenizer)."""
    import torch

    out = Path(out)
    write_clip_and_tokenizer(out, clip_model_cfg, clip_state, tokenizer_dir)
    with atomic_file(out / "clipcap.pt") as f:
        torch.save(published_state_dict(clipcap_model), f)
    (out / "clipcap.safetensors").unlink(missing_ok=True)  # a twin of an older clipcap.pt
    cfg = asdict(clipcap_model.cfg)
    write_spec(
        out,
        {
            "format": SPEC_FORMAT,
            "name": name,
            "description": description,
            "clipcap": cfg,
            "checkpoint": "clipcap.pt",
            "clip": {"dir": "clip", "quick_gelu": quick_gelu},
            "tokenizer": "tokenizer",
        },
    )
    return out


def write_clip_and_tokenizer(
    out: Path, clip_model_cfg: dict, clip_state: dict, tokenizer_dir: Path
) -> None:
    """The parts every architecture's directory shares: clip/ (config + weights), tokenizer/."""
    from safetensors.torch import save_file

    out = Path(out)
    (out / "clip").mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": clip_model_cfg, "preprocess_cfg": OPENAI_PREPROCESS}
    write_atomic(out / "clip" / "open_clip_config.json", json.dumps(config, indent=2).encode())
    with atomic_path(out / "clip" / "open_clip_model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in clip_state.items()}, str(tmp))
    if Path(tokenizer_dir).resolve() != (out / "tokenizer").resolve():
        shutil.copytree(tokenizer_dir, out / "tokenizer", dirs_exist_ok=True)

"""Model registry, downloads and local model directories.

A model is three things: a ClipCap checkpoint (published format), CLIP weights (open_clip hub
layout) and a GPT-2 BPE tokenizer. Named models map to Hugging Face hub files at pinned revisions
and are fetched through huggingface_hub (its cache, its progress bars). Any model can also be a
local directory, so air-gapped users and the tests load through exactly the same code:

    my-model/
      imgcap-model.json        spec: name, ClipCap config, file names (see MODEL_SPEC below)
      clipcap.pt               ClipCap state dict, published key layout (gpt.*, clip_project.*)
      clip/open_clip_config.json
      clip/open_clip_model.safetensors   (or open_clip_pytorch_model.bin)
      tokenizer/vocab.json, tokenizer/merges.txt   (GPT-2 BPE files)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import ModelFormatError, ModelNotAvailableError, UsageError

SPEC_FILE = "imgcap-model.json"
SPEC_FORMAT = 1


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str
    revision: str  # pinned commit (full or short sha) so a repo update never changes our model


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    clipcap: dict  # ClipCapConfig fields
    checkpoint: HubFile | None  # None = no hub mirror; the user supplies the file
    clip_files: tuple[HubFile, ...]
    quick_gelu: bool
    tokenizer_files: tuple[HubFile, ...]
    manual: str = ""  # where to get a checkpoint that has no hub mirror


# OpenAI CLIP weights as open_clip publishes them on the hub (open_clip >= 2.29 reads these).
_VIT_B32 = "timm/vit_base_patch32_clip_224.openai"
_VIT_B32_REV = "a6f597a30f7b82c51704746581f9a4e41421e878"
_RN50X4 = "timm/resnet50x4_clip.openai"
_RN50X4_REV = "main"  # full commit not recorded yet; pin it once verified online
_GPT2 = "openai-community/gpt2"
_GPT2_REV = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


def _clip(repo: str, rev: str) -> tuple[HubFile, ...]:
    return (
        HubFile(repo, "open_clip_config.json", rev),
        HubFile(repo, "open_clip_model.safetensors", rev),
    )


_TOKENIZER = (HubFile(_GPT2, "vocab.json", _GPT2_REV), HubFile(_GPT2, "merges.txt", _GPT2_REV))

REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            name="clipcap-coco",
            description="ClipCap MLP + fine-tuned GPT-2, COCO captions (published default)",
            clipcap={"mapping": "mlp", "prefix_dim": 512, "prefix_length": 10},
            checkpoint=HubFile(
                "akhaliq/CLIP-prefix-captioning-COCO-weights", "coco_weights.pt", "cecb9cd"
            ),
            clip_files=_clip(_VIT_B32, _VIT_B32_REV),
            quick_gelu=True,
            tokenizer_files=_TOKENIZER,
        ),
        RegistryEntry(
            name="clipcap-conceptual",
            description="ClipCap MLP + fine-tuned GPT-2, Conceptual Captions",
            clipcap={"mapping": "mlp", "prefix_dim": 512, "prefix_length": 10},
            checkpoint=HubFile(
                "akhaliq/CLIP-prefix-captioning-conceptual-weights",
                "conceptual_weights.pt",
                "7851f7b",
            ),
            clip_files=_clip(_VIT_B32, _VIT_B32_REV),
            quick_gelu=True,
            tokenizer_files=_TOKENIZER,
        ),
        RegistryEntry(
            name="clipcap-coco-transformer",
            description="ClipCap transformer mapper, frozen GPT-2, CLIP RN50x4, COCO",
            clipcap={
                "mapping": "transformer",
                "prefix_dim": 640,
                "prefix_length": 40,
                "clip_length": 40,
                "num_layers": 8,
                "normalize_prefix": True,
            },
            checkpoint=None,
            clip_files=_clip(_RN50X4, _RN50X4_REV),
            quick_gelu=True,  # only the text tower has GELUs in RN50x4; keep it OpenAI-exact
            tokenizer_files=_TOKENIZER,
            manual=(
                "Google Drive id 1GYPToCqFREwi285wPLhuVExlz7DDUDfJ "
                "(https://drive.google.com/file/d/1GYPToCqFREwi285wPLhuVExlz7DDUDfJ)"
            ),
        ),
    )
}


@dataclass
class Model:
    name: str  # stored with every result, so several models' results can live side by side
    spec: dict
    encoder: Any  # indexer.encoder.ClipEncoder
    captioner: Any  # indexer.captioner.Captioner, or None when loaded for search only
    device: Any  # torch.device


# ------------------------------------------------------------------------------ device / dtype
def resolve_device(name: str = "auto"):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r} (auto, cpu, cuda or mps)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (try --device cpu)")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UsageError("--device mps: MPS is not available (try --device cpu)")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: let torch decide at run time
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(precision: str, device):
    """auto: bf16 (fp16 without bf16) autocast on CUDA, fp32 elsewhere."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision not in table:
        raise UsageError(f"unknown precision {precision!r} (auto, fp32, bf16 or fp16)")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is not supported on the CPU; use bf16 or fp32")
    return table[precision]


# --------------------------------------------------------------------------------- resolution
def is_model_dir(name_or_dir: str) -> bool:
    return (Path(name_or_dir).expanduser() / SPEC_FILE).is_file()


def resolve_model_dir(name_or_dir: str, settings: Settings, download: bool = True) -> Path:
    """A directory in the local layout for a registry name (downloading if needed) or a path."""
    path = Path(name_or_dir).expanduser()
    if (path / SPEC_FILE).is_file():
        return path
    if name_or_dir in REGISTRY:
        return _materialise(REGISTRY[name_or_dir], settings, download)
    if path.exists() or "/" in name_or_dir or "\\" in name_or_dir:
        raise ModelFormatError(
            f"{path}: not a model directory (no {SPEC_FILE}); see README 'Models offline' "
            "for the layout, or `imgcap models tiny DIR` for an example"
        )
    raise UsageError(
        f"unknown model {name_or_dir!r}; known: {', '.join(REGISTRY)} (or a model directory)"
    )


def _materialise(entry: RegistryEntry, settings: Settings, download: bool) -> Path:
    """Fetch (or find in the cache) every file of a registry model; write a spec dir pointing at
    them. The spec dir lives under models_dir; the big files stay in the Hugging Face cache."""
    if entry.checkpoint is None:
        ckpt = settings.models_dir / entry.name / "clipcap.pt"
        if not ckpt.is_file():
            raise ModelNotAvailableError(
                f"model {entry.name!r} has no hub mirror; its checkpoint comes from "
                f"{entry.manual}.\nDownload it in a browser, then run: "
                f"imgcap models download {entry.name} --file PATH\n"
                f"(it is copied to {ckpt})."
            )
    else:
        ckpt = _hub_file(entry, entry.checkpoint, settings, download)
    clip_paths = [_hub_file(entry, f, settings, download) for f in entry.clip_files]
    tok_paths = [_hub_file(entry, f, settings, download) for f in entry.tokenizer_files]
    out = settings.models_dir / entry.name
    spec = {
        "format": SPEC_FORMAT,
        "name": entry.name,
        "description": entry.description,
        "clipcap": entry.clipcap,
        "checkpoint": str(ckpt),
        "clip": {"dir": str(clip_paths[0].parent), "quick_gelu": entry.quick_gelu},
        "tokenizer": str(tok_paths[0].parent),
    }
    _write_spec(out, spec)
    return out


def _hub_file(entry: RegistryEntry, f: HubFile, settings: Settings, download: bool) -> Path:
    """Path of one pinned hub file: from the cache if there, else downloaded (unless offline)."""
    from huggingface_hub import hf_hub_download

    cache = str(settings.cache_dir) if settings.cache_dir else None
    try:
        return Path(
            hf_hub_download(
                f.repo, f.filename, revision=f.revision, cache_dir=cache, local_files_only=True
            )
        )
    except Exception:  # not cached: fall through to a download
        pass
    reason = "offline mode is on (--offline / IMGCAP_OFFLINE / HF_HUB_OFFLINE)"
    if download and not settings.offline:
        reason = _hub_unreachable()
        if reason is None:
            try:
                return Path(
                    hf_hub_download(f.repo, f.filename, revision=f.revision, cache_dir=cache)
                )
            except Exception as e:  # 404, 429, disk full, ...: all become one clear message
                reason = _short_reason(e)
    raise ModelNotAvailableError(
        f"model {entry.name!r} needs {f.filename} from the Hugging Face Hub "
        f"({f.repo} @ {f.revision}), which is not in the local cache and could not be "
        f"downloaded: {reason}.\n"
        f"Fix: on a machine with internet run `imgcap models download {entry.name}` (files go to "
        "the Hugging Face cache, ~/.cache/huggingface/hub by default; copy that folder over or "
        "point HF_HOME / IMGCAP_CACHE_DIR at it), or pass --model DIR with a local model directory "
        "(layout in README, 'Models offline')."
    )


_REACHABILITY: dict[str, str | None] = {}


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """None if the hub's host answers a TCP connect, else why not. Checked once per process so an
    offline machine fails in milliseconds instead of after huggingface_hub's ~25 s of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )
    if host not in _REACHABILITY:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                _REACHABILITY[host] = None
        except OSError as e:
            _REACHABILITY[host] = f"cannot reach {host}:{port} ({e.strerror or e})"
    return _REACHABILITY[host]


def _short_reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _write_spec(out: Path, spec: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (SPEC_FILE + ".tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / SPEC_FILE)


def read_spec(model_dir: Path) -> dict:
    path = model_dir / SPEC_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{path}: unreadable model spec ({e})") from None
    for key in ("name", "clipcap", "checkpoint", "clip", "tokenizer"):
        if key not in spec:
            raise ModelFormatError(f"{path}: missing field {key!r}")
    if spec.get("format", SPEC_FORMAT) > SPEC_FORMAT:
        raise ModelFormatError(f"{path}: written by a newer imgcap (format {spec['format']})")
    return spec


def _rel(model_dir: Path, p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else model_dir / path


# --------------------------------------------------------------------------------------- load
def load_model(name_or_dir: str, settings: Settings, captioner: bool = True) -> Model:
    """Load CLIP (+ the ClipCap captioner unless captioner=False) for a name or directory."""
    import torch

    from indexer.captioner import Captioner, ClipCapConfig, load_clipcap
    from indexer.encoder import load_clip

    model_dir = resolve_model_dir(name_or_dir, settings)
    spec = read_spec(model_dir)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.precision, device)
    clip = spec["clip"]
    clip_dir = _rel(model_dir, clip["dir"])
    encoder = load_clip(clip_dir, bool(clip.get("quick_gelu", True)), device, dtype)
    cap = None
    if captioner:
        try:
            cfg = ClipCapConfig(**spec["clipcap"])
        except TypeError as e:
            raise ModelFormatError(f"{model_dir / SPEC_FILE}: bad clipcap config ({e})") from None
        if encoder.embed_dim and cfg.prefix_dim != encoder.embed_dim:
            raise ModelFormatError(
                f"{model_dir}: ClipCap expects {cfg.prefix_dim}-d CLIP features but the CLIP model "
                f"gives {encoder.embed_dim}-d"
            )
        net = load_clipcap(_rel(model_dir, spec["checkpoint"]), cfg).to(device)
        tok = load_tokenizer(_rel(model_dir, spec["tokenizer"]))
        if len(tok) > cfg.gpt2.get("vocab_size", 50257):
            raise ModelFormatError(f"{model_dir}: tokenizer is larger than GPT-2's vocabulary")
        cap = Captioner(net, tok, device, dtype)
    torch.set_grad_enabled(False)
    return Model(name=spec["name"], spec=spec, encoder=encoder, captioner=cap, device=device)


def load_tokenizer(tok_dir: Path):
    from transformers import GPT2TokenizerFast

    vocab, merges = tok_dir / "vocab.json", tok_dir / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise ModelFormatError(f"{tok_dir}: tokenizer needs vocab.json and merges.txt")
    # from_pretrained on a directory reads only local files (the constructor changed in 5.x).
    return GPT2TokenizerFast.from_pretrained(str(tok_dir))


# ---------------------------------------------------------------------------- list / download
def list_models(settings: Settings) -> list[dict]:
    rows = []
    for e in REGISTRY.values():
        rows.append(
            {
                "name": e.name,
                "default": e.name == DEFAULT_MODEL,
                "local": _is_local(e, settings),
                "mapping": e.clipcap["mapping"],
                "clip": e.clip_files[0].repo.split("/")[-1],
                "source": e.checkpoint.repo
                if e.checkpoint
                else "manual (" + e.manual.split(" (")[0] + ")",
                "description": e.description,
            }
        )
    return rows


def _is_local(entry: RegistryEntry, settings: Settings) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cache = str(settings.cache_dir) if settings.cache_dir else None
    files = list(entry.clip_files + entry.tokenizer_files)
    if entry.checkpoint is None:
        if not (settings.models_dir / entry.name / "clipcap.pt").is_file():
            return False
    else:
        files.append(entry.checkpoint)
    for f in files:
        hit = try_to_load_from_cache(f.repo, f.filename, cache_dir=cache, revision=f.revision)
        if not isinstance(hit, str):
            return False
    return True


def download_model(name: str, settings: Settings, checkpoint_file: Path | None = None) -> Path:
    """Fetch every file a registry model needs now, so later runs work offline."""
    if name not in REGISTRY:
        raise UsageError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    if checkpoint_file is not None:
        if entry.checkpoint is not None:
            raise UsageError(f"{name} is downloaded from the hub; --file is only for manual models")
        from indexer.captioner import ClipCapConfig, load_clipcap

        load_clipcap(
            Path(checkpoint_file), ClipCapConfig(**entry.clipcap)
        )  # validate before copying
        dest = settings.models_dir / name / "clipcap.pt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint_file, dest)
    return _materialise(entry, settings, download=True)


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
    from safetensors.torch import save_file

    out = Path(out)
    (out / "clip").mkdir(parents=True, exist_ok=True)
    torch.save(published_state_dict(clipcap_model), out / "clipcap.pt")
    (out / "clip" / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": clip_model_cfg, "preprocess_cfg": _OPENAI_PREPROCESS}, indent=2)
    )
    save_file(
        {k: v.contiguous() for k, v in clip_state.items()},
        str(out / "clip" / "open_clip_model.safetensors"),
    )
    if Path(tokenizer_dir).resolve() != (out / "tokenizer").resolve():
        shutil.copytree(tokenizer_dir, out / "tokenizer", dirs_exist_ok=True)
    cfg = asdict(clipcap_model.cfg)
    _write_spec(
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


_OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

# A tiny CLIP: same code as ViT-B/32, a fraction of the size. 64 px so simple scenes stay legible.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_GPT2 = {"vocab_size": 512, "n_positions": 128, "n_embd": 64, "n_layer": 2, "n_head": 2}

# Words the tiny tokenizer learns merges for: COCO-style captions and the synthetic scenes.
_TINY_CORPUS = """a man riding a bike down a street. a woman holding an umbrella in the rain.
a dog sitting on a park bench. a cat lying on a bed. a red car parked on the street.
a plate of food with broccoli and rice. two people playing tennis on a court.
a group of people standing around a table. a bus driving down a city street.
a birthday cake with candles on a table. a train on the tracks near a station.
one two three red green blue yellow white black orange purple circle circles square squares
triangle triangles star stars cross crosses on a background with and of the left right top bottom.
"""


def write_tiny_model(out: Path, seed: int = 0, name: str | None = None) -> Path:
    """A tiny seeded random model in the local layout: tiny open_clip config, tiny GPT-2, a small
    BPE tokenizer. Loaded by `load_model` exactly like the real ones."""
    import open_clip
    import torch

    from indexer.captioner import ClipCapConfig, ClipCapModel

    out = Path(out)
    torch.manual_seed(seed)
    clip = open_clip.CLIP(**{k: v for k, v in TINY_CLIP_CFG.items()})
    tok_dir = out / "tokenizer"
    train_bpe_tokenizer(tok_dir, _TINY_CORPUS.split("\n") * 4, TINY_GPT2["vocab_size"])
    cfg = ClipCapConfig(mapping="mlp", prefix_dim=32, prefix_length=4, gpt2=dict(TINY_GPT2))
    net = ClipCapModel(cfg)
    # Random weights love the 256 single-byte tokens, most of which decode to control characters
    # or broken UTF-8; damp them (lm_head is tied to wte) so smoke runs print word-piece nonsense.
    from transformers import GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(str(tok_dir))
    with torch.no_grad():
        for i in range(len(tok)):
            piece = tok.decode([i])
            if not piece.strip() or not piece.isprintable():
                net.gpt.transformer.wte.weight[i] *= 0.1
    return write_model_dir(
        out,
        name or f"tiny-{seed}",
        net,
        TINY_CLIP_CFG,
        clip.state_dict(),
        tok_dir,
        True,
        "tiny random model for tests (captions are nonsense)",
    )


def write_random_model(out: Path, arch: str = "clipcap-coco", seed: int = 0) -> Path:
    """Full-size architecture of a registry model with random weights, for benchmarks (FLOPs
    don't depend on the weights). The tokenizer is a synthetic BPE of GPT-2's vocabulary size."""
    import open_clip
    import torch

    from indexer.captioner import ClipCapConfig, ClipCapModel

    entry = REGISTRY[arch]
    clip_name = {
        "timm/vit_base_patch32_clip_224.openai": "ViT-B-32-quickgelu",
        "timm/resnet50x4_clip.openai": "RN50x4",
    }[entry.clip_files[0].repo]
    torch.manual_seed(seed)
    clip_cfg = open_clip.get_model_config(clip_name)
    clip = open_clip.create_model(clip_name, pretrained=None)
    cfg = ClipCapConfig(**entry.clipcap)
    net = ClipCapModel(cfg)
    tok_dir = Path(out) / "tokenizer"
    synthetic_bpe_tokenizer(tok_dir, cfg.gpt2["vocab_size"], seed=seed)
    return write_model_dir(
        out,
        f"random-{arch}",
        net,
        clip_cfg,
        clip.state_dict(),
        tok_dir,
        entry.quick_gelu,
        f"{arch} architecture, random weights (benchmarks only)",
    )


def train_bpe_tokenizer(out: Path, texts: list[str], vocab_size: int) -> None:
    """Byte-level BPE (GPT-2's scheme) learned from texts; writes vocab.json + merges.txt."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # room for <|endoftext|>
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    _save_bpe(out, tok.get_vocab(), _merges_of(tok))


def synthetic_bpe_tokenizer(out: Path, vocab_size: int, seed: int = 0) -> None:
    """A valid byte-level BPE vocabulary of exactly vocab_size tokens built from random merges.
    Only for random-weight benchmarks, where the real GPT-2 files can't be downloaded."""
    import random

    from tokenizers import pre_tokenizers

    rng = random.Random(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tokens = list(alphabet)
    merges = []
    while len(vocab) < vocab_size - 1:
        a, b = rng.choice(tokens), rng.choice(tokens)
        if len(a) + len(b) > 8 or (a + b) in vocab:
            continue
        merges.append((a, b))
        vocab[a + b] = len(vocab)
        tokens.append(a + b)
    _save_bpe(out, vocab, merges)


def _merges_of(tok) -> list[tuple[str, str]]:
    data = json.loads(tok.to_str())
    return [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]
    ]


def _save_bpe(out: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = dict(vocab)
    vocab.setdefault("<|endoftext|>", len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

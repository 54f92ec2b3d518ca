"""Loading a model: a registry name or a local model directory -> CLIP encoder + ClipCap captioner
on a device, ready to caption.

A model is three things: a ClipCap checkpoint (published format), CLIP weights (open_clip hub
layout) and a GPT-2 BPE tokenizer. Beside this module in indexer/models/:

    registry.py        named models, pinned hub files, size/key checks for unverified pins
    download.py        hub downloads (pinned, offline-aware), `imgcap models` listing
    model_dir.py       the local directory layout, spec validation, writing a directory
    random_weights.py  the tiny test model and full-size random-weight models
    checkpoint.py      safe weight reading, init-free building, safetensors twins
    text_tower.py      a multilingual query text tower's directory (search/multilingual.py runs it)
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.atomic_file import atomic_file
from indexer.config import Settings
from indexer.errors import ImgcapError, ModelFormatError, ModelNotAvailableError, UsageError
from indexer.models.download import check_key_count, materialise, materialise_tower
from indexer.models.gpt2_tokenizer import GPT2Tokenizer
from indexer.models.model_dir import (
    SPEC_FILE,
    read_spec,
    rel,
)
from indexer.models.quiet import quiet_third_party
from indexer.models.registry import REGISTRY, TEXT_TOWERS
from indexer.models.text_tower import is_tower_dir, read_tower


@dataclass
class Model:
    name: str  # stored with every result, so several models' results can live side by side
    spec: dict
    encoder: Any  # indexer.models.clip.ClipEncoder
    # indexer.models.clipcap.Captioner (or lstm_captioner.LstmCaptioner, a subclass whose
    # `needs_grid` says it also takes CLIP grid features), or None when loaded for search only
    captioner: Any
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


def resolve_dtype(precision: str, device, cpu_bf16: bool = False):
    """auto: bf16 (fp16 without bf16) autocast on CUDA; on a CPU, bf16 autocast when cpu_bf16
    (the caller's cpu_has_bf16(): native bf16 instructions), else fp32. Elsewhere fp32.

    Why bf16 on such CPUs: CLIP and greedy captions run 2.2-2.4x faster than fp32 (BENCHMARKS.md,
    issue 23) and a trained captioner changed none of 360 captions; fp32 stays one option away
    and is the reference's arithmetic bit for bit. Training keeps fp32 unless asked."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_bf16:
            return torch.bfloat16
        return torch.float32
    if precision not in table:
        raise UsageError(f"unknown precision {precision!r} (auto, fp32, bf16 or fp16)")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is not supported on the CPU; use bf16 or fp32")
    return table[precision]


# --------------------------------------------------------------------------------- resolution
def resolve_model_dir(name_or_dir: str, settings: Settings, download: bool = True) -> Path:
    """A directory in the local layout for a registry name (downloading if needed) or a path."""
    path = Path(name_or_dir).expanduser()
    if (path / SPEC_FILE).is_file():
        return path
    if name_or_dir in REGISTRY:
        return materialise(REGISTRY[name_or_dir], settings, download)
    if not path.exists() and ("/" in name_or_dir or "\\" in name_or_dir):
        raise UsageError(f"{path}: no such folder (a model is a registry name or a model folder)")
    if path.exists():
        raise ModelFormatError(
            f"{path}: not a model directory (no {SPEC_FILE}); see docs/models-offline.md "
            "for the layout, or `imgcap models tiny DIR` for an example"
        )
    raise UsageError(
        f"unknown model {name_or_dir!r}; known: {', '.join(REGISTRY)} (or a model directory)"
    )


def resolve_tower_dir(name_or_dir: str, settings: Settings, download: bool = True) -> Path:
    """The directory of a text tower: a registry name (from the hub cache, downloading if needed
    and allowed) or a local directory in the hub layout; checked (read_tower) either way."""
    path = Path(name_or_dir).expanduser()
    if name_or_dir in TEXT_TOWERS:
        path = materialise_tower(TEXT_TOWERS[name_or_dir], settings, download)
    elif not is_tower_dir(path):
        if path.exists():
            raise ModelFormatError(
                f"{path}: not a text tower directory (config.json and 2_Dense/ expected;"
                " layout in docs/languages.md)"
            )
        raise UsageError(
            f"unknown text tower {name_or_dir!r}; known: {', '.join(TEXT_TOWERS)}"
            " (or a tower directory)"
        )
    read_tower(path)
    return path


def expected_input_size(name_or_dir: str, settings: Settings) -> int | None:
    """The CLIP input side the model will have, read from its files without importing torch:
    an index run starts decoding photos at this size while the model loads. None when the files
    aren't here yet or don't say (load_model then finds or reports the problem)."""
    import json

    try:
        model_dir = resolve_model_dir(name_or_dir, settings, download=False)
        spec = read_spec(model_dir)
        cfg_file = rel(model_dir, spec["clip"]["dir"]) / "open_clip_config.json"
        size = json.loads(cfg_file.read_text(encoding="utf-8"))["model_cfg"]["vision_cfg"]
        size = size["image_size"]
    except (ImgcapError, OSError, ValueError, KeyError, TypeError):
        return None
    size = size[0] if isinstance(size, list) and size else size
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


# ------------------------------------------------------------------------------ load progress
Step = Callable[[str], None]
_STEP: contextvars.ContextVar[Step | None] = contextvars.ContextVar("load_step", default=None)


@contextlib.contextmanager
def loading_steps(callback: Step) -> Iterator[None]:
    """Report load_model's steps ("build CLIP", "load ClipCap weights", ...) to callback while
    the block runs, wherever in the call tree load_model is called (the CLI's progress display
    uses this around `index` and `caption`). A callback passed to load_model directly wins."""
    token = _STEP.set(callback)
    try:
        yield
    finally:
        _STEP.reset(token)


# --------------------------------------------------------------------------------------- load
def load_model(
    name_or_dir: str, settings: Settings, captioner: bool = True, on_step: Step | None = None
) -> Model:
    """Load CLIP (+ the ClipCap captioner unless captioner=False) for a name or directory.

    on_step(text) is called as each step starts (default: the `loading_steps` callback)."""
    step = on_step or _STEP.get() or (lambda _text: None)
    with quiet_third_party():  # huggingface_hub warns too, while files are found
        step("find model files")
        model_dir = resolve_model_dir(name_or_dir, settings)
        spec = read_spec(model_dir)
        import torch

        from indexer.models.clip import load_clip
        from indexer.models.clipcap import Captioner, ClipCapConfig

        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.precision, device, cpu_bf16=cpu_has_bf16())
        clip = spec["clip"]
        clip_dir = rel(model_dir, clip["dir"])
        encoder = load_clip(clip_dir, bool(clip.get("quick_gelu", True)), device, dtype, step)
        cap = None
        if captioner and spec.get("arch", "clipcap") != "clipcap":
            cap = _load_lstm_captioner(model_dir, spec, encoder, device, dtype, step)
        elif captioner:
            try:
                cfg = ClipCapConfig(**spec["clipcap"])
            except TypeError as e:
                spec_path = model_dir / SPEC_FILE
                raise ModelFormatError(f"{spec_path}: bad clipcap config ({e})") from None
            if encoder.embed_dim and cfg.prefix_dim != encoder.embed_dim:
                raise ModelFormatError(
                    f"{model_dir}: ClipCap expects {cfg.prefix_dim}-d CLIP features but the CLIP "
                    f"model gives {encoder.embed_dim}-d"
                )
            net = _load_clipcap(model_dir, spec, cfg, step).to(device)
            step("load tokenizer")
            tok = GPT2Tokenizer(rel(model_dir, spec["tokenizer"]))
            if len(tok) > cfg.gpt2.get("vocab_size", 50257):
                raise ModelFormatError(f"{model_dir}: tokenizer is larger than GPT-2's vocabulary")
            cap = Captioner(net, tok, device, dtype)
        torch.set_grad_enabled(False)
    return Model(name=spec["name"], spec=spec, encoder=encoder, captioner=cap, device=device)


def _load_lstm_captioner(model_dir: Path, spec: dict, encoder, device, dtype, step: Step):
    """A show-and-tell / show-attend-tell captioner (indexer/models/lstm.py)."""
    from indexer.models.lstm import LstmCaptioner, load_lstm, lstm_config

    cfg = lstm_config(spec, model_dir / SPEC_FILE)
    if encoder.embed_dim and cfg.feature_dim != encoder.embed_dim:
        raise ModelFormatError(
            f"{model_dir}: the {cfg.arch} captioner expects {cfg.feature_dim}-d CLIP features "
            f"but the CLIP model gives {encoder.embed_dim}-d"
        )
    step(f"load {cfg.arch} weights")
    net = load_lstm(rel(model_dir, spec["checkpoint"]), cfg).to(device)
    step("load tokenizer")
    tok = GPT2Tokenizer(rel(model_dir, spec["tokenizer"]))
    if len(tok) > cfg.vocab_size:
        raise ModelFormatError(f"{model_dir}: tokenizer is larger than the model's vocabulary")
    return LstmCaptioner(net, tok, device, dtype)


def _load_clipcap(model_dir: Path, spec: dict, cfg, step: Step):
    """The ClipCap network from the checkpoint's safetensors twin when it is up to date; else from
    the checkpoint itself, writing the twin for next time (the original is kept)."""
    from indexer.models.checkpoint import fresh_twin, twin_path, write_twin
    from indexer.models.clipcap import load_clipcap

    ckpt = rel(model_dir, spec["checkpoint"])
    if ckpt.suffix == ".safetensors":
        step("load ClipCap weights")
        return load_clipcap(ckpt, cfg, on_step=step)
    twin = twin_path(ckpt, model_dir)
    if fresh_twin(ckpt, twin):
        step("load ClipCap weights")
        return load_clipcap(twin, cfg, on_step=step)
    step("read ClipCap checkpoint (converted to safetensors once)")
    sd = _checked_pickle(ckpt, spec)
    net = load_clipcap(ckpt, cfg, sd=sd, on_step=step)
    step("write safetensors copy of the checkpoint")
    tied = "gpt.lm_head.weight"  # stored once, as wte; load_clipcap ties it again
    write_twin(ckpt, twin, {k: v for k, v in net.state_dict().items() if k != tied})
    return net


def _checked_pickle(ckpt: Path, spec: dict) -> dict:
    from indexer.models.checkpoint import read_state_dict
    from indexer.models.clipcap import clipcap_state_dict

    raw = read_state_dict(ckpt)
    keys = spec.get("checkpoint_keys")
    if keys:  # a registry download behind an unverified pin: it must be the published file
        check_key_count(ckpt, keys, len(raw))
    return clipcap_state_dict(ckpt, raw)


def prepare_checkpoint(model_dir: Path) -> None:
    """Validate a model directory's checkpoint and write its safetensors twin now (after a
    download), so the first caption doesn't pay for the conversion."""
    from indexer.models.clipcap import ClipCapConfig

    spec = read_spec(model_dir)
    with quiet_third_party():
        _load_clipcap(Path(model_dir), spec, ClipCapConfig(**spec["clipcap"]), lambda _t: None)


# ------------------------------------------------------------------------------- download
def download_model(name: str, settings: Settings, checkpoint_file: Path | None = None) -> Path:
    """Fetch every file a registry model needs now, so later runs work offline; then convert the
    checkpoint to safetensors once (the pickle is kept), so every later load is a fast mmap."""
    if name in TEXT_TOWERS:
        if checkpoint_file is not None:
            raise UsageError(f"{name} is downloaded from the hub; --file is only for manual models")
        try:
            return resolve_tower_dir(name, settings)
        except ModelNotAvailableError as e:
            raise ModelNotAvailableError(e.download_fix) from None
    if name not in REGISTRY:
        known = ", ".join([*REGISTRY, *TEXT_TOWERS])
        raise UsageError(f"unknown model {name!r}; known: {known}")
    entry = REGISTRY[name]
    if checkpoint_file is not None:
        if entry.checkpoint is not None:
            raise UsageError(f"{name} is downloaded from the hub; --file is only for manual models")
        from indexer.models.clipcap import ClipCapConfig, load_clipcap

        load_clipcap(
            Path(checkpoint_file), ClipCapConfig(**entry.clipcap)
        )  # validate before copying
        dest = settings.models_dir / name / "clipcap.pt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(checkpoint_file, "rb") as src, atomic_file(dest) as f:
            shutil.copyfileobj(src, f)
    try:
        out = materialise(entry, settings, download=True)
    except ModelNotAvailableError as e:
        raise ModelNotAvailableError(e.download_fix) from None
    prepare_checkpoint(out)
    return out

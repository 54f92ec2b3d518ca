"""Weight files: read them without running code, build modules without a random initialisation the
weights would overwrite, load strictly, and keep a safetensors twin of a published pickle.

A cold `imgcap caption` used to spend more time initialising ~290M random parameters (CLIP 3.9 s,
GPT-2 2.4 s on 2 cores) than loading the real ones. Here a model is built with its parameters on
the meta device (no memory, no init), every key and shape is checked against the file, and the
file's tensors are assigned in place (`load_state_dict(assign=True)`): from a safetensors file
they are memory-mapped, so loading costs page-cache reads instead of copies.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from indexer.atomic_file import atomic_path
from indexer.errors import ModelFormatError

# torch's weights_only refusal tells the reader to retry with weights_only=False, i.e. to run the
# file's code. A model file never needs that, so that advice is never passed on.
_UNSAFE_GLOBAL = re.compile(r"(?:unsupported GLOBAL|global:\s*GLOBAL)\s+([\w.]+)", re.I)
_ADVICE = re.compile(r"weights_only|safe_globals|trusted source|documentation", re.I)


def describe_load_error(e: BaseException) -> str:
    """One line on why torch.load refused a file, without torch's advice to disable the check."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch bolds its advice with ANSI escapes
    text = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text)
    m = _UNSAFE_GLOBAL.search(text)
    if m:
        return (
            f"it is a pickle that would call {m.group(1)}, and imgcap never runs code from a "
            "model file (a checkpoint holds only tensors)"
        )
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s.strip() for s in sentences if s.strip() and not _ADVICE.search(s)]
    detail = " ".join(kept)[:300]
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from a .safetensors file (memory-mapped) or a torch pickle read with
    weights_only (plain tensors only: a pickle that would run code is refused, never retried)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: checkpoint file not found") from None
    except Exception as e:  # pickle refused by weights_only, truncated download, ...
        why = describe_load_error(e)
        raise ModelFormatError(f"{path}: not a readable checkpoint ({why})") from None
    if isinstance(sd, dict) and len(sd) == 1 and next(iter(sd)) in ("state_dict", "model"):
        sd = next(iter(sd.values()))  # tolerate one level of wrapping
    if not isinstance(sd, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise ModelFormatError(f"{path}: expected a flat state dict of tensors")
    return sd


@contextlib.contextmanager
def empty_parameters() -> Iterator[None]:
    """Build modules with every parameter on the meta device: no memory, no random init.

    Buffers stay real (causal masks and the like are computed, not loaded), so after a strict
    `assign_state_dict` the module is complete. Not thread-safe: it patches
    nn.Module.register_parameter for the duration (construction only), and Tensor.normal_, whose
    meta kernel is the one init that imports torch._dynamo (~2 s of a cold start) to draw
    nothing."""
    original = nn.Module.register_parameter
    original_normal = torch.Tensor.normal_

    def normal(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if tensor.is_meta:
            return tensor
        return original_normal(tensor, *args, **kwargs)

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(
                param.to("meta"), requires_grad=param.requires_grad
            )

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    torch.Tensor.normal_ = normal  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
        torch.Tensor.normal_ = original_normal  # type: ignore[method-assign]


def key_problems(model: nn.Module, sd: dict[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrong-shape keys of sd against model (meta or real), as phrases."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong_shape = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    parts = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", wrong_shape),
    ):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            parts.append(f"{label} keys: {shown}")
    return parts


def assign_state_dict(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Strict load that adopts sd's tensors (no copy). Floating tensors become float32 (a no-op
    for fp32 files), so an fp16 checkpoint computes like the fp32 reference."""
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a parameter the state dict did not cover would silently stay empty
        raise ModelFormatError(f"no weights for {', '.join(left[:8])}")


# ------------------------------------------------------------------------- safetensors twins
TWIN_FORMAT = "imgcap-safetensors-1"


def twin_path(checkpoint: Path, model_dir: Path) -> Path:
    """Where the safetensors twin of a pickled checkpoint lives: in the model directory (the
    pickle itself may sit in the read-only Hugging Face cache)."""
    return Path(model_dir) / (Path(checkpoint).stem + ".safetensors")


def _source_stamp(source: Path) -> dict[str, str]:
    st = source.stat()
    return {"source_size": str(st.st_size), "source_mtime_ns": str(st.st_mtime_ns)}


def fresh_twin(source: Path, twin: Path) -> bool:
    """True if twin was converted from source as it is now (same size and mtime)."""
    if not twin.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(twin), framework="pt") as f:
            meta = f.metadata() or {}
        return meta.get("format") == TWIN_FORMAT and all(
            meta.get(k) == v for k, v in _source_stamp(source).items()
        )
    except Exception:  # unreadable twin: convert again
        return False


def write_twin(source: Path, twin: Path, sd: dict[str, torch.Tensor]) -> bool:
    """Save sd (already validated) as source's safetensors twin; the original is kept. Tensors
    shared with another key (tied weights) are written once. False if the folder isn't writable
    (read-only media): the pickle then simply stays the file that is loaded."""
    from safetensors.torch import save_file

    seen: set[tuple[int, int]] = set()
    out = {}
    for k, v in sd.items():
        ident = (v.untyped_storage().data_ptr(), v.storage_offset())
        if ident in seen:
            continue
        seen.add(ident)
        out[k] = v.contiguous()
    try:
        twin.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(twin) as tmp:
            save_file(out, str(tmp), metadata={"format": TWIN_FORMAT, **_source_stamp(source)})
    except OSError:
        return False
    return True

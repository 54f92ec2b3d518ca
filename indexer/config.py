"""Settings for every imgcap command, in one frozen dataclass.

Environment variables are read here and nowhere else (habit 2): cli.py builds a Settings from its
options via `Settings.from_env(**overrides)` and passes it down explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_MODEL = "clipcap-coco"

# Extensions indexed by default (lower case, without the dot). HEIC/HEIF go through pillow-heif.
DEFAULT_EXTENSIONS = (
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif",
)  # fmt: skip


# Images per model batch when --batch-size is 0. CPU: 64 measured best on 2 cores (greedy
# captions/s 20.9 at 64 vs 16.6 at 32 in fp32; bf16 index 10.8 vs 7.6 images/s, BENCHMARKS.md).
DEFAULT_BATCH = {"cuda": 256, "mps": 64, "cpu": 64}


def default_data_dir() -> Path:
    """Where the database and FAISS cache live: XDG on Linux, platform conventions elsewhere."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("imgcap", appauthor=False))


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=lambda: default_data_dir() / "imgcap.db")
    model: str = DEFAULT_MODEL  # registry name or a local model directory
    device: str = "auto"  # auto | cpu | cuda | mps
    # "auto" = bf16/fp16 autocast on CUDA, fp32 on CPU; "bf16" also allowed on CPUs that have it.
    precision: str = "auto"
    batch_size: int = 0  # 0 = choose from the device (see pipeline/captioner)
    beams: int = 1  # 1 = greedy (the published default); >1 = beam search of that width
    max_tokens: int = 67  # reference `entry_length`
    workers: int = 0  # decode workers; 0 = one per CPU core
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    include_hidden: bool = False
    offline: bool = False  # never touch the network; missing files fail fast
    cache_dir: Path | None = None  # Hugging Face cache override (None = huggingface_hub default)
    # Checkpoints with no hub mirror (the ClipCap transformer release) are kept here.
    models_dir: Path = field(default_factory=lambda: default_data_dir() / "models")

    def batch_size_for(self, device_type: str) -> int:
        """The batch size to use on a device: the user's, or the device default."""
        return self.batch_size or DEFAULT_BATCH.get(device_type, DEFAULT_BATCH["cpu"])

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then environment variables, then explicit (non-None) overrides."""
        env: dict = {}
        if os.environ.get("IMGCAP_DB"):
            env["db_path"] = Path(os.environ["IMGCAP_DB"]).expanduser()
        if os.environ.get("IMGCAP_MODEL"):
            env["model"] = os.environ["IMGCAP_MODEL"]
        if os.environ.get("IMGCAP_DEVICE"):
            env["device"] = os.environ["IMGCAP_DEVICE"]
        if _truthy(os.environ.get("IMGCAP_OFFLINE")) or _truthy(os.environ.get("HF_HUB_OFFLINE")):
            env["offline"] = True
        if os.environ.get("IMGCAP_CACHE_DIR"):
            env["cache_dir"] = Path(os.environ["IMGCAP_CACHE_DIR"]).expanduser()
        if os.environ.get("IMGCAP_MODELS_DIR"):
            env["models_dir"] = Path(os.environ["IMGCAP_MODELS_DIR"]).expanduser()
        given = {k: v for k, v in overrides.items() if v is not None}
        if "db_path" in given:
            given["db_path"] = Path(given["db_path"]).expanduser()
        return replace(cls(**env), **given)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}

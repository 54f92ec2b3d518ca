"""Settings for every imgcap command, in one frozen dataclass.

Environment variables are read here and nowhere else (habit 2): cli.py builds a Settings from its
options via `Settings.from_env(**overrides)` and passes it down explicitly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from indexer.errors import UsageError

DEFAULT_MODEL = "clipcap-coco"

# RAW camera files: decoded through their embedded preview (indexer.media.raw; rawpy via the `raw`
# extra, Pillow for TIFF-based previews).
RAW_EXTENSIONS = ("cr2", "cr3", "nef", "arw", "dng", "orf", "rw2", "raf")

# Videos: indexed by keyframe (indexer.media.video) when the `video` extra (PyAV) is installed, else
# counted as skipped with the reason.
VIDEO_EXTENSIONS = ("mp4", "mov", "m4v", "mkv", "webm", "avi")

# Extensions indexed by default (lower case, without the dot). HEIC/HEIF go through pillow-heif.
DEFAULT_EXTENSIONS = (
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif", *RAW_EXTENSIONS,
)  # fmt: skip

# Folders/files never walked, whatever --exclude adds (NAS thumbnails, VCS, JS deps, desktop
# thumbnail caches, NAS and Windows recycle bins), as rclip does. Globs matched by name.
DEFAULT_EXCLUDES = (
    "@eaDir", ".git", "node_modules", ".thumbnails", "#recycle", "$RECYCLE.BIN", ".imgcap",
)  # fmt: skip

# --max-megapixels default (0 = auto): half the available memory, shared by the decode
# workers, at DECODE_BYTES_PER_PIXEL each, clamped to [MIN, MAX]. Measured peaks per pixel
# (30 MP): PNG/TIFF 4-4.5 (Pillow keeps RGB/RGBA as 4 bytes; conversion goes by strips), HEIC 7
# (without an embedded thumbnail that covers the model input), animated WebP 15.5 (Pillow's
# decoder holds three canvases). JPEGs (1/8 DCT scale), HEICs with a thumbnail and still WebPs
# (libwebp scales while decoding) cost well under 1. 8 covers all but a large animated WebP.
DECODE_BYTES_PER_PIXEL = 8
MIN_AUTO_MEGAPIXELS = 24.0  # never below a 24 MP photo, even on a crowded small machine
MAX_AUTO_MEGAPIXELS = 120.0  # the historical cap: larger is a decompression bomb, not a photo


# The signals search fuses (search/fusion.py), and their weights unless IMGCAP_FUSION_WEIGHTS
# says otherwise: equal, as the fusion was measured (BENCHMARKS.md "Fusion").
FUSION_SIGNALS = ("image", "caption", "keyword")
DEFAULT_FUSION_WEIGHTS = tuple((signal, 1.0) for signal in FUSION_SIGNALS)


# Images per model batch when --batch-size is 0. CPU: 64 measured best on 2 cores (greedy
# captions/s 20.9 at 64 vs 16.6 at 32 in fp32; bf16 index 10.8 vs 7.6 images/s, BENCHMARKS.md).
DEFAULT_BATCH = {"cuda": 256, "mps": 64, "cpu": 64}


def default_data_dir() -> Path:
    """Where the database and FAISS cache live: XDG on Linux, platform conventions elsewhere."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("imgcap", appauthor=False))


# `imgcap index --db-here FOLDER` keeps the database inside the folder, so it travels with it.
DB_HERE = Path(".imgcap") / "imgcap.db"


def find_db_here(start: Path | None = None) -> Path | None:
    """The database of the nearest folder at or above `start` (default: the current folder)
    that holds one (FOLDER/.imgcap/imgcap.db), as git finds .git; None when there is none."""
    try:
        here = Path(os.path.abspath(start or os.getcwd()))
    except OSError:  # the current folder was deleted
        return None
    for folder in (here, *here.parents):
        if (folder / DB_HERE).is_file():
            return folder / DB_HERE
    return None


def default_db_path() -> Path:
    """--db, then $IMGCAP_DB (Settings.from_env), then a --db-here database found from the
    current folder upwards, then the user data dir."""
    return find_db_here() or default_data_dir() / "imgcap.db"


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=default_db_path)
    model: str = DEFAULT_MODEL  # registry name or a local model directory
    # Whether --model or IMGCAP_MODEL named `model`; when neither did, `imgcap index` uses the
    # model its database already holds (indexer/run/run_model.py), as a search does.
    model_named: bool = False
    device: str = "auto"  # auto | cpu | cuda | mps
    # "auto" = bf16/fp16 autocast on CUDA, fp32 on CPU; "bf16" also allowed on CPUs that have it.
    precision: str = "auto"
    batch_size: int = 0  # 0 = choose from the device (see pipeline/captioner)
    beams: int = 1  # 1 = greedy (the published default); >1 = beam search of that width
    max_tokens: int = 67  # reference `entry_length`
    workers: int = 0  # decode workers; 0 = one per CPU core
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    include_hidden: bool = False
    exclude: tuple[str, ...] = ()  # --exclude globs, added to DEFAULT_EXCLUDES
    max_megapixels: float = 0.0  # images larger than this are refused; 0 = auto (see above)
    # CLIP input from a file (indexer/media/preprocess.py): "fast" reduces while decoding (never
    # below 2.5x the model input), "exact" = open_clip's eval transform of the full image, bit for
    # bit.
    resize: str = "fast"
    offline: bool = False  # never touch the network; missing files fail fast
    cache_dir: Path | None = None  # Hugging Face cache override (None = huggingface_hub default)
    # The hub's address ($HF_ENDPOINT, a mirror); None = huggingface_hub's own (huggingface.co).
    hub_endpoint: str | None = None
    # Checkpoints with no hub mirror (the ClipCap transformer release) are kept here.
    models_dir: Path = field(default_factory=lambda: default_data_dir() / "models")
    # Videos (indexer/media/video.py): at most one keyframe every `video_gap` seconds, at most
    # `video_max_frames` per video (past it the gap doubles, so long films stay spread out).
    video_gap: float = 5.0
    video_max_frames: int = 60
    # RAM the FAISS cache may take (GB, both vector kinds together): past it, vectors are
    # compressed (IVF-PQ in memory, full vectors memory-mapped from disk for exact re-ranking).
    vector_memory_gb: float = 8.0
    engine: str = "local"  # index runner: local (worker processes) | ray (Ray Data, `ray` extra)
    # --engine ray: None = a Ray instance started for the run on this machine; "auto" or
    # host:port = an existing cluster (Ray's own address rules).
    ray_address: str | None = None
    gpus_per_worker: float = 0.0  # GPUs per model actor; 0 = 1 when the cluster has GPUs
    # Search fusion (search/fusion.py): score = sum over signals of weight / (fusion_k + rank).
    # A larger k flattens the gap between ranks; a weight of 0 leaves that signal out.
    # `imgcap eval --retrieval --sweep` measures both on labelled queries.
    fusion_k: int = 60
    fusion_weights: tuple[tuple[str, float], ...] = DEFAULT_FUSION_WEIGHTS  # (signal, weight)

    def batch_size_for(self, device_type: str) -> int:
        """The batch size to use on a device: the user's, or the device default."""
        return self.batch_size or DEFAULT_BATCH.get(device_type, DEFAULT_BATCH["cpu"])

    @property
    def excludes(self) -> tuple[str, ...]:
        """Every glob the walk skips: the defaults, then the user's --exclude globs."""
        return DEFAULT_EXCLUDES + tuple(self.exclude)

    def max_pixels_for(self, workers: int) -> int:
        """The pixel cap for one decode: the user's --max-megapixels, or the memory rule."""
        if self.max_megapixels > 0:
            return int(self.max_megapixels * 1_000_000)
        return auto_max_pixels(workers, available_memory())

    def fusion_weight(self, signal: str) -> float:
        """A signal's weight in the search fusion (1.0 for a signal the settings don't name)."""
        return dict(self.fusion_weights).get(signal, 1.0)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then environment variables, then explicit (non-None) overrides."""
        env: dict = {}
        if os.environ.get("IMGCAP_DB"):
            env["db_path"] = Path(os.environ["IMGCAP_DB"]).expanduser()
        if os.environ.get("IMGCAP_MODEL"):
            env["model"], env["model_named"] = os.environ["IMGCAP_MODEL"], True
        if os.environ.get("IMGCAP_DEVICE"):
            env["device"] = os.environ["IMGCAP_DEVICE"]
        if _truthy(os.environ.get("IMGCAP_OFFLINE")) or _truthy(os.environ.get("HF_HUB_OFFLINE")):
            env["offline"] = True
        if os.environ.get("IMGCAP_CACHE_DIR"):
            env["cache_dir"] = Path(os.environ["IMGCAP_CACHE_DIR"]).expanduser()
        if os.environ.get("HF_ENDPOINT"):
            env["hub_endpoint"] = os.environ["HF_ENDPOINT"].rstrip("/")
        if os.environ.get("IMGCAP_MODELS_DIR"):
            env["models_dir"] = Path(os.environ["IMGCAP_MODELS_DIR"]).expanduser()
        if os.environ.get("IMGCAP_VECTOR_MEMORY_GB"):
            env["vector_memory_gb"] = float(os.environ["IMGCAP_VECTOR_MEMORY_GB"])
        if os.environ.get("IMGCAP_FUSION_K", "").strip():
            env["fusion_k"] = parse_fusion_k(os.environ["IMGCAP_FUSION_K"])
        if os.environ.get("IMGCAP_FUSION_WEIGHTS", "").strip():
            env["fusion_weights"] = parse_fusion_weights(os.environ["IMGCAP_FUSION_WEIGHTS"])
        given = {k: v for k, v in overrides.items() if v is not None}
        if "model" in given:
            given.setdefault("model_named", True)
        if "db_path" in given:
            given["db_path"] = Path(given["db_path"]).expanduser()
        return replace(cls(**env), **given)


def parse_fusion_k(text: str) -> int:
    """IMGCAP_FUSION_K's value: a whole number of at least 1."""
    try:
        k = int(text.strip())
    except ValueError:
        k = 0
    if k < 1:
        raise UsageError(f"IMGCAP_FUSION_K={text!r}: the fusion's k must be a whole number >= 1")
    return k


def parse_fusion_weights(text: str) -> tuple[tuple[str, float], ...]:
    """IMGCAP_FUSION_WEIGHTS's value, "image=1,caption=0.5,keyword=2": every signal in
    FUSION_SIGNALS order, a signal not named keeping weight 1.0."""
    given: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = (x.strip() for x in item.partition("="))
        where = f"IMGCAP_FUSION_WEIGHTS={text!r}"
        if name not in FUSION_SIGNALS:
            known = ", ".join(FUSION_SIGNALS)
            raise UsageError(f"{where}: unknown signal {name!r} (the signals: {known})")
        if name in given:
            raise UsageError(f"{where}: {name} is given twice")
        try:
            weight = float(value) if sep else math.nan
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):
            raise UsageError(f"{where}: {name}'s weight must be a number >= 0, as in {name}=0.5")
        given[name] = weight
    weights = tuple((signal, given.get(signal, 1.0)) for signal in FUSION_SIGNALS)
    if not any(weight > 0 for _, weight in weights):
        raise UsageError(f"IMGCAP_FUSION_WEIGHTS={text!r}: at least one weight must be above 0")
    return weights


def auto_max_pixels(workers: int, available: int | None) -> int:
    """Default pixel cap: half of `available` bytes shared by `workers` decodes at
    DECODE_BYTES_PER_PIXEL each, clamped to [MIN_AUTO_MEGAPIXELS, MAX_AUTO_MEGAPIXELS]."""
    if not available:
        return int(MAX_AUTO_MEGAPIXELS * 1_000_000)
    mp = available / 2 / max(1, workers) / DECODE_BYTES_PER_PIXEL / 1_000_000
    return int(min(MAX_AUTO_MEGAPIXELS, max(MIN_AUTO_MEGAPIXELS, mp)) * 1_000_000)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: physical memory not in use
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}

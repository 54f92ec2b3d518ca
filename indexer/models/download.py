"""Hub downloads: fetch a registry model's pinned files through huggingface_hub (its cache, its
progress bars), check files whose pin doesn't fix their content, and write the model's spec
directory so it then loads like any local model directory."""

from __future__ import annotations

from pathlib import Path

from indexer.config import DEFAULT_MODEL, Settings
from indexer.errors import ModelFormatError, ModelNotAvailableError
from indexer.models.model_dir import SPEC_FORMAT, write_spec
from indexer.models.registry import REGISTRY, TEXT_TOWERS, HubFile, RegistryEntry, TextTowerEntry


def materialise(entry: RegistryEntry, settings: Settings, download: bool) -> Path:
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
        ckpt = hub_file(entry, entry.checkpoint, settings, download)
    clip_paths = [hub_file(entry, f, settings, download) for f in entry.clip_files]
    tok_paths = [hub_file(entry, f, settings, download) for f in entry.tokenizer_files]
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
    if entry.checkpoint is not None and entry.checkpoint.keys:
        spec["checkpoint_keys"] = entry.checkpoint.keys  # checked when the pickle is first read
    write_spec(out, spec)
    return out


def materialise_tower(entry: TextTowerEntry, settings: Settings, download: bool) -> Path:
    """Fetch (or find in the cache) every file of a registry text tower: they sit in one hub
    snapshot folder, in the hub's own layout, which is the tower directory."""
    paths = [hub_file(entry, f, settings, download) for f in entry.files]
    return paths[0].parent


def hub_download(repo: str, filename: str, revision: str, settings: Settings, cached: bool) -> Path:
    """One pinned file through huggingface_hub: from its cache only (`cached`), or downloaded into
    it, from `settings.hub_endpoint` (a mirror) when set. Raises what huggingface_hub raises."""
    from huggingface_hub import hf_hub_download

    cache = str(settings.cache_dir) if settings.cache_dir else None
    path = hf_hub_download(
        repo,
        filename,
        revision=revision,
        cache_dir=cache,
        local_files_only=cached,
        endpoint=settings.hub_endpoint,
    )
    return Path(path)


def hub_file(
    entry: RegistryEntry | TextTowerEntry, f: HubFile, settings: Settings, download: bool
) -> Path:
    """Path of one pinned hub file: from the cache if there, else downloaded (unless offline)."""
    try:
        return check_size(f, hub_download(f.repo, f.filename, f.revision, settings, cached=True))
    except ModelFormatError:
        raise
    except Exception:  # not cached: fall through to a download
        pass
    reason = "offline mode is on (--offline / IMGCAP_OFFLINE / HF_HUB_OFFLINE)"
    if download and not settings.offline:
        reason = hub_unreachable(settings.hub_endpoint)
        if reason is None:
            try:
                path = hub_download(f.repo, f.filename, f.revision, settings, cached=False)
            except Exception as e:  # 404, 429, disk full, ...: all become one clear message
                reason = short_reason(e)
            else:
                return check_size(f, path)
    local = "pass --model DIR with a local model directory (layout in docs/models-offline.md)"
    if isinstance(entry, TextTowerEntry):
        local = (
            "set IMGCAP_TEXT_TOWER to a local tower directory (docs/languages.md), or search "
            "with --lang en (CLIP's own English text tower)"
        )
    what = (
        f"model {entry.name!r} needs {f.filename} from the Hugging Face Hub "
        f"({f.repo} @ {f.revision}), which is not in the local cache and could not be "
        f"downloaded: {reason}."
    )
    raise ModelNotAvailableError(
        f"{what}\nFix: on a machine with internet run `imgcap models download {entry.name}` "
        "(files go to the Hugging Face cache, ~/.cache/huggingface/hub by default; copy that "
        f"folder over or point HF_HOME / IMGCAP_CACHE_DIR at it), or {local}.",
        download_fix=f"{what}\nFix: run `imgcap models download {entry.name}` on a machine "
        "that reaches the hub (or set HF_ENDPOINT to a mirror this one reaches), then copy its "
        "Hugging Face cache (~/.cache/huggingface/hub) to this machine or point HF_HOME / "
        f"IMGCAP_CACHE_DIR at the copy; or {local}.",
    )


def check_size(f: HubFile, path: Path) -> Path:
    """Refuse a file whose size can't be the pinned one (truncated, or another file behind a
    branch or short-hash pin). Files pinned by a full commit hash have no range: the hash fixes
    their content."""
    if f.size_range is None:
        return path
    lo, hi = f.size_range
    size = path.stat().st_size
    if not lo <= size <= hi:
        raise ModelFormatError(
            f"{path}: {size:,} bytes, but {f.repo}/{f.filename} @ {f.revision} should be "
            f"{lo:,}-{hi:,} bytes (its pin is not a full commit hash, so size and keys are "
            "checked instead). The download is truncated or a different file: delete it and run "
            "`imgcap models download` again."
        )
    return path


def check_key_count(path: Path, keys: int, found: int) -> None:
    """The published checkpoints hold exactly `keys` tensors (legacy buffers included)."""
    if found != keys:
        raise ModelFormatError(
            f"{path}: {found} tensors, but the published checkpoint has {keys} "
            "(a different file behind an unverified pin): delete it and download it again"
        )


_REACHABILITY: dict[str, str | None] = {}


def hub_unreachable(endpoint: str | None = None, timeout: float = 5.0) -> str | None:
    """None if the hub's host answers a TCP connect, else why not. Checked once per process so an
    offline machine fails in milliseconds instead of after huggingface_hub's ~25 s of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(endpoint or constants.ENDPOINT)
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


def short_reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


# ---------------------------------------------------------------------------- list / download
def list_models(settings: Settings) -> list[dict]:
    rows = []
    for e in REGISTRY.values():
        rows.append(
            {
                "name": e.name,
                "default": e.name == DEFAULT_MODEL,
                "local": is_local(e, settings),
                "mapping": e.clipcap["mapping"],
                "clip": e.clip_files[0].repo.split("/")[-1],
                "source": e.checkpoint.repo
                if e.checkpoint
                else "manual (" + e.manual.split(" (")[0] + ")",
                "description": e.description,
            }
        )
    for t in TEXT_TOWERS.values():
        rows.append(
            {
                "name": t.name,
                "default": False,
                "local": all(_cached(f, settings) for f in t.files),
                "mapping": "text tower",
                "clip": t.clip_repo.split("/")[-1],
                "source": t.files[0].repo,
                "description": t.description,
            }
        )
    return rows


def _cached(f: HubFile, settings: Settings) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cache = str(settings.cache_dir) if settings.cache_dir else None
    hit = try_to_load_from_cache(f.repo, f.filename, cache_dir=cache, revision=f.revision)
    return isinstance(hit, str)


def is_local(entry: RegistryEntry, settings: Settings) -> bool:
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

"""Hub pins: files behind a pin that is not a full commit hash are checked by size and key count;
the registry's expected figures follow from the architectures; docs/models-offline.md lists the
unverified pins."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import indexer.models.registry as registry
from cli import app
from indexer.config import Settings
from indexer.errors import ModelFormatError
from indexer.models.checkpoint import empty_parameters, read_state_dict
from indexer.models.clipcap import ClipCapConfig, ClipCapModel
from indexer.models.loading import download_model
from indexer.models.model_dir import read_spec

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture()
def fake_hub(monkeypatch, tiny_model_dir, tmp_path):
    """hf_hub_download serving files from a dict {(repo, filename): path}; the tiny model's CLIP
    and tokenizer stand in for the real ones."""
    import huggingface_hub

    files: dict[tuple[str, str], Path] = {}
    entry = registry.REGISTRY["clipcap-coco"]
    for f in entry.clip_files:
        files[(f.repo, f.filename)] = tiny_model_dir / "clip" / f.filename
    for f in entry.tokenizer_files:
        files[(f.repo, f.filename)] = tiny_model_dir / "tokenizer" / f.filename

    def download(repo, filename, revision=None, cache_dir=None, local_files_only=False, **kw):
        if (repo, filename) not in files:
            raise FileNotFoundError(filename)
        return str(files[(repo, filename)])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return files


def _tiny_entry(monkeypatch, checkpoint: Path, keys: int) -> registry.HubFile:
    """clipcap-coco with the tiny architecture and a size/key expectation for `checkpoint`."""
    entry = registry.REGISTRY["clipcap-coco"]
    size = checkpoint.stat().st_size
    ckpt = dataclasses.replace(entry.checkpoint, size_range=(size, size), keys=keys)
    spec = read_spec(checkpoint.parent)["clipcap"]
    tiny = dataclasses.replace(entry, checkpoint=ckpt, clipcap=spec)
    monkeypatch.setitem(registry.REGISTRY, "clipcap-coco", tiny)
    return ckpt


def _settings(tmp_path) -> Settings:
    return Settings(device="cpu", models_dir=tmp_path / "models", cache_dir=tmp_path / "hf")


def test_download_with_the_wrong_size_is_refused(fake_hub, tmp_path):
    short = tmp_path / "coco_weights.pt"
    short.write_bytes(b"\0" * 1000)  # a truncated download
    entry = registry.REGISTRY["clipcap-coco"]
    fake_hub[(entry.checkpoint.repo, entry.checkpoint.filename)] = short
    with pytest.raises(ModelFormatError) as err:
        download_model("clipcap-coco", _settings(tmp_path))
    msg = str(err.value)
    assert str(short) in msg and "1,000 bytes" in msg and "636,217,392" in msg
    assert "cecb9cd" in msg and "not a full commit hash" in msg


def test_wrong_size_through_the_cli_exits_3(fake_hub, tmp_path):
    short = tmp_path / "coco_weights.pt"
    short.write_bytes(b"\0" * 1000)
    entry = registry.REGISTRY["clipcap-coco"]
    fake_hub[(entry.checkpoint.repo, entry.checkpoint.filename)] = short
    env = {
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
    }
    res = runner.invoke(app, ["models", "download", "clipcap-coco"], env=env)
    assert res.exit_code == 3 and "Traceback" not in res.output
    assert "1,000 bytes" in res.stderr


def test_download_with_the_wrong_key_set_is_refused(
    fake_hub, tmp_path, tiny_model_dir, monkeypatch
):
    ckpt = tiny_model_dir / "clipcap.pt"
    found = len(read_state_dict(ckpt))
    hub = _tiny_entry(monkeypatch, ckpt, keys=found + 1)
    fake_hub[(hub.repo, hub.filename)] = ckpt
    with pytest.raises(ModelFormatError, match=rf"{found} tensors, but the published checkpoint"):
        download_model("clipcap-coco", _settings(tmp_path))
    assert not (tmp_path / "models" / "clipcap-coco" / "clipcap.safetensors").exists()


def test_download_with_the_right_size_and_keys_is_converted(
    fake_hub, tmp_path, tiny_model_dir, monkeypatch
):
    ckpt = tiny_model_dir / "clipcap.pt"
    hub = _tiny_entry(monkeypatch, ckpt, keys=len(read_state_dict(ckpt)))
    fake_hub[(hub.repo, hub.filename)] = ckpt
    out = download_model("clipcap-coco", _settings(tmp_path))
    assert read_spec(out)["checkpoint_keys"] == hub.keys
    assert (out / "clipcap.safetensors").is_file()  # converted once, right after the download


# ----------------------------------------------------------------------------- registry data
def test_every_pin_is_a_full_hash_or_checked():
    for entry in registry.REGISTRY.values():
        weights = [f for f in (entry.checkpoint, *entry.clip_files) if f is not None]
        for f in weights:
            if f.filename.endswith(".json"):
                continue
            assert f.verified_pin or f.size_range, f
        if entry.checkpoint is not None:
            assert entry.checkpoint.keys == 177
    unverified = {(f.repo, f.revision) for f in registry.unverified_pins()}
    assert unverified == {
        ("akhaliq/CLIP-prefix-captioning-COCO-weights", "cecb9cd"),
        ("timm/resnet50x4_clip.openai", "main"),
    }
    conceptual = registry.REGISTRY["clipcap-conceptual"].checkpoint
    assert conceptual.revision == "7851f7b3a552313405818648fe807ada460478b0"  # the hub's full hash


def test_expected_sizes_follow_from_the_architectures():
    import open_clip

    with empty_parameters():
        net = ClipCapModel(ClipCapConfig())
    sd = net.state_dict()
    sd.pop("gpt.lm_head.weight")  # tied to wte: stored once
    n_layer = net.gpt.config.n_layer
    masks = n_layer * (1024 * 1024 * 1 + 4)  # uint8 causal mask + fp32 masked_bias per layer
    assert sum(v.numel() * v.element_size() for v in sd.values()) + masks == (
        registry.CLIPCAP_MLP_BYTES
    )
    assert len(sd) + 1 + 2 * n_layer == registry.CLIPCAP_MLP_KEYS
    for name, want in (
        ("ViT-B-32-quickgelu", registry.VIT_B32_BYTES),
        ("RN50x4", registry.RN50X4_BYTES),
    ):
        with empty_parameters():
            clip = open_clip.create_model(name, pretrained=None, device="meta")
        assert sum(v.numel() * v.element_size() for v in clip.state_dict().values()) == want


def test_the_docs_name_every_unverified_pin():
    page = (ROOT / "docs" / "models-offline.md").read_text(encoding="utf-8")
    section = re.search(r"^#+ Model pins\n(.*?)(?=^#+ |\Z)", page, re.S | re.M)
    assert section, "docs/models-offline.md needs a 'Model pins' section"
    for f in registry.unverified_pins():
        assert f.repo in section.group(1) and f"`{f.revision}`" in section.group(1), f
    table = [line for line in section.group(1).splitlines() if line.startswith("| `")]
    pinned = [e.checkpoint for e in registry.REGISTRY.values() if e.checkpoint is not None]
    for f in (f for f in pinned if f.verified_pin):  # a full hash is not in the unverified table
        assert not any(f"`{f.repo}`" in line for line in table), f

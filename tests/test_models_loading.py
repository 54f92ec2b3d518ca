"""Cold-start loading: models are built without random init (parameters on the meta device) and
load exactly the file's weights; a pickled checkpoint gets a safetensors twin once; load_model
reports its steps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import open_clip
import pytest
import torch

from indexer.config import Settings
from indexer.models.checkpoint import read_state_dict
from indexer.models.clip_net import ClipNet
from indexer.models.clipcap import ClipCapConfig, ClipCapModel, greedy_decode
from indexer.models.loading import load_model, loading_steps, prepare_checkpoint
from indexer.models.model_dir import read_spec

CPU = Settings(device="cpu", precision="fp32")  # compared with open_clip's fp32


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    (out / "clipcap.safetensors").unlink(missing_ok=True)  # as written: only the pickle
    return out


def test_models_are_built_without_random_init(model_copy, monkeypatch):
    """Both networks are constructed with meta parameters (nothing allocated or initialised)."""
    seen: dict[str, str] = {}
    real_clip_init, real_cap_init = ClipNet.__init__, ClipCapModel.__init__

    def clip_init(self, *a, **kw):
        real_clip_init(self, *a, **kw)
        seen["clip"] = next(self.parameters()).device.type

    def cap_init(self, *a, **kw):
        real_cap_init(self, *a, **kw)
        seen["gpt2"] = next(self.gpt.parameters()).device.type

    monkeypatch.setattr(ClipNet, "__init__", clip_init)
    monkeypatch.setattr(ClipCapModel, "__init__", cap_init)
    model = load_model(str(model_copy), CPU)
    assert seen == {"clip": "meta", "gpt2": "meta"}
    tensors = [*model.encoder.model.state_dict().values()]
    tensors += [*model.captioner.model.state_dict().values()]
    assert not any(t.is_meta for t in tensors)


def test_loaded_weights_are_exactly_the_files(model_copy):
    model = load_model(str(model_copy), CPU)
    ckpt = read_state_dict(model_copy / "clipcap.pt")
    got = model.captioner.model.state_dict()
    for k, v in got.items():
        assert torch.equal(v, ckpt[k]), k
    clip = read_state_dict(model_copy / "clip" / "open_clip_model.safetensors")
    for k, v in model.encoder.model.state_dict().items():
        assert torch.equal(v, clip[k]), k
    # the causal mask open_clip computes (a buffer, not in the file) is real, not meta
    assert torch.isinf(model.encoder.model.attn_mask).any()


def test_tied_lm_head_is_one_parameter(model_copy):
    net = load_model(str(model_copy), CPU).captioner.model
    assert net.gpt.lm_head.weight is net.gpt.transformer.wte.weight
    assert len(list(net.parameters())) == len({id(p) for p in net.parameters()})


def test_clip_matches_open_clips_own_loader(model_copy):
    """Our init-free CLIP build gives open_clip's model: same features, same preprocessing."""
    ours = load_model(str(model_copy), CPU, captioner=False).encoder
    ref, _, ref_pre = open_clip.create_model_and_transforms(
        f"local-dir:{model_copy / 'clip'}", force_quick_gelu=True
    )
    ref.eval()
    from PIL import Image

    img = Image.new("RGB", (97, 61), (200, 120, 30))
    assert torch.equal(ours.preprocess(img), ref_pre(img))
    pixels = torch.randn(2, 3, ours.image_size, ours.image_size)
    with torch.no_grad():
        assert torch.allclose(ours.encode_images(pixels), ref.encode_image(pixels), atol=1e-6)
        texts = ["a red square", "two blue circles"]
        want = ref.encode_text(open_clip.get_tokenizer(f"local-dir:{model_copy / 'clip'}")(texts))
        assert torch.allclose(ours.encode_texts(texts), want, atol=1e-5)


def test_decoding_is_identical_to_a_conventionally_loaded_model(model_copy):
    """Same tokens as a model built the usual way (random init, then load_state_dict copies)."""
    fast = load_model(str(model_copy), CPU).captioner.model
    spec = read_spec(model_copy)
    slow = ClipCapModel(ClipCapConfig(**spec["clipcap"]))
    sd = read_state_dict(model_copy / "clipcap.pt")
    slow.load_state_dict(
        {k: v for k, v in sd.items() if ".attn.bias" not in k and "masked" not in k}
    )
    slow.eval()
    torch.manual_seed(3)
    prefix_feats = torch.randn(4, 32)
    with torch.inference_mode():
        a = greedy_decode(fast, fast.prefix_embeddings(prefix_feats), 12, None)
        b = greedy_decode(slow, slow.prefix_embeddings(prefix_feats), 12, None)
    assert a == b


# ------------------------------------------------------------------------- safetensors twin
def test_pickle_gets_a_safetensors_twin_once_and_is_kept(model_copy, monkeypatch):
    original = (model_copy / "clipcap.pt").read_bytes()
    first = load_model(str(model_copy), CPU)
    twin = model_copy / "clipcap.safetensors"
    assert twin.is_file()
    assert (model_copy / "clipcap.pt").read_bytes() == original  # the original is kept

    def no_pickles(*a, **kw):
        raise AssertionError("the pickle was read although its twin is up to date")

    monkeypatch.setattr(torch, "load", no_pickles)
    second = load_model(str(model_copy), CPU)
    feats = torch.randn(2, 32)
    assert first.captioner.caption(feats, max_tokens=8) == second.captioner.caption(
        feats, max_tokens=8
    )


def test_a_replaced_checkpoint_refreshes_its_twin(model_copy, tiny_model_dir_b):
    load_model(str(model_copy), CPU)  # writes the twin of seed 0's weights
    shutil.copyfile(tiny_model_dir_b / "clipcap.pt", model_copy / "clipcap.pt")
    os.utime(model_copy / "clipcap.pt", ns=(1, 1))  # a different stamp, whatever the clock
    got = load_model(str(model_copy), CPU).captioner.model.state_dict()
    want = read_state_dict(tiny_model_dir_b / "clipcap.pt")
    assert torch.equal(got["clip_project.model.0.weight"], want["clip_project.model.0.weight"])


def test_unwritable_model_dir_loads_from_the_pickle(model_copy, monkeypatch):
    """Read-only media (or a folder the user can't write): no twin, no error."""
    import safetensors.torch

    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(safetensors.torch, "save_file", refuse)
    model = load_model(str(model_copy), CPU)
    assert model.captioner.caption(torch.randn(1, 32), max_tokens=4)
    assert not list(model_copy.glob("clipcap.safetensors*"))


def test_prepare_checkpoint_converts_ahead_of_the_first_caption(model_copy):
    prepare_checkpoint(model_copy)
    assert (model_copy / "clipcap.safetensors").is_file()


# ------------------------------------------------------------------------------ load steps
def test_load_steps_are_reported(model_copy):
    steps: list[str] = []
    load_model(str(model_copy), CPU, on_step=steps.append)
    for expected in ("build CLIP", "build ClipCap (GPT-2)", "load tokenizer"):
        assert expected in steps
    assert any("safetensors" in s for s in steps)  # first load converts

    later: list[str] = []
    with loading_steps(later.append):  # the CLI's way: no argument threaded through
        load_model(str(model_copy), CPU)
    assert "load ClipCap weights" in later and not any("safetensors" in s for s in later)


def test_clip_files_open_clip_must_convert_still_load(model_copy):
    """A CLIP pickle in another layout (DataParallel 'module.' prefixes) isn't ours to assign:
    it goes through open_clip's own loader, read with weights_only, and gives the same model."""
    clip = model_copy / "clip"
    want = load_model(str(model_copy), CPU, captioner=False).encoder
    sd = read_state_dict(clip / "open_clip_model.safetensors")
    (clip / "open_clip_model.safetensors").unlink()
    torch.save({f"module.{k}": v for k, v in sd.items()}, clip / "open_clip_pytorch_model.bin")
    got = load_model(str(model_copy), CPU, captioner=False).encoder
    pixels = torch.randn(1, 3, want.image_size, want.image_size)
    assert torch.allclose(got.encode_images(pixels), want.encode_images(pixels), atol=1e-6)


def test_weights_changed_in_memory_never_reach_the_files(model_copy):
    """Memory-mapped weights are copy-on-write: fine-tuning a loaded model (imgcap train --from)
    must not write into the model directory's files."""
    load_model(str(model_copy), CPU)  # writes the twin; the next load maps it
    files = [model_copy / "clipcap.safetensors", model_copy / "clip/open_clip_model.safetensors"]
    before = [p.read_bytes() for p in files]
    model = load_model(str(model_copy), CPU)
    with torch.no_grad():
        model.captioner.model.gpt.transformer.wte.weight.add_(1.0)
        model.encoder.model.visual.conv1.weight.mul_(2.0)
    assert [p.read_bytes() for p in files] == before


def test_clip_config_variants_open_clip_accepts_still_load(model_copy):
    import json

    want = load_model(str(model_copy), CPU, captioner=False).encoder
    config = model_copy / "clip" / "open_clip_config.json"
    data = json.loads(config.read_text())
    data["model_cfg"]["custom_text"] = False  # open_clip's factory drops it
    config.write_text(json.dumps(data))
    got = load_model(str(model_copy), CPU, captioner=False).encoder
    pixels = torch.randn(1, 3, want.image_size, want.image_size)
    assert torch.allclose(got.encode_images(pixels), want.encode_images(pixels), atol=1e-6)

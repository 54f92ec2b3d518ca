"""Malicious or malformed model files are refused with a ModelFormatError (exit 3) that names the
file and the field, never with a traceback or with torch's advice to disable weights_only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli import app
from indexer.config import Settings
from indexer.errors import ModelFormatError
from indexer.models.loading import load_model
from indexer.models.model_dir import SPEC_FILE, read_spec

runner = CliRunner()
CPU = Settings(device="cpu")


class Evil:  # a pickle global that weights_only must refuse to build
    def __reduce__(self):
        return (print, ("code from an untrusted file ran",))


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    return out


@pytest.fixture()
def photo(tmp_path) -> Path:
    p = tmp_path / "red.png"
    Image.new("RGB", (80, 60), (220, 20, 20)).save(p)
    return p


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf-cache"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "models"),
        "IMGCAP_OFFLINE": "1",
    }


def _caption(photo: Path, model_dir: Path, tmp_path: Path):
    args = ["caption", str(photo), "--model", str(model_dir)]
    return runner.invoke(app, args, env=_env(tmp_path))


def _pickled_clip(model_dir: Path) -> Path:
    """Replace the CLIP safetensors by a pickle that would call print() when unpickled."""
    clip = model_dir / "clip"
    (clip / "open_clip_model.safetensors").unlink()
    path = clip / "open_clip_pytorch_model.bin"
    torch.save({"visual.proj": Evil()}, path)
    return path


def test_pickled_clip_bin_is_refused_with_exit_3(model_copy, photo, tmp_path, capfd):
    bad = _pickled_clip(model_copy)
    res = _caption(photo, model_copy, tmp_path)
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output and "UnpicklingError" not in res.output
    assert str(bad) in res.stderr and "never runs code" in res.stderr
    assert "weights_only" not in res.output  # torch's "retry with weights_only=False" advice
    assert "untrusted file ran" not in res.output + capfd.readouterr().out


def test_refusal_of_a_pickled_clipcap_never_passes_on_the_advice(model_copy):
    torch.save({"gpt.x": Evil()}, model_copy / "clipcap.pt")
    (model_copy / "clipcap.safetensors").unlink(missing_ok=True)
    with pytest.raises(ModelFormatError) as err:
        load_model(str(model_copy), CPU)
    msg = str(err.value)
    assert "clipcap.pt" in msg and "would call print" in msg
    assert "weights_only" not in msg and "trusted source" not in msg


def _edit_spec(model_dir: Path, **changes) -> Path:
    path = model_dir / SPEC_FILE
    spec = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"clipcap__gpt2__n_embd": 1_000_000}, "clipcap.gpt2.n_embd"),
        ({"clipcap__gpt2__n_positions": 10**9}, "clipcap.gpt2.n_positions"),
        ({"clipcap__gpt2__n_layer": "12"}, "clipcap.gpt2.n_layer"),
        ({"clipcap__gpt2__vocab_size": True}, "clipcap.gpt2.vocab_size"),
        ({"clipcap__prefix_length": -3}, "clipcap.prefix_length"),
        ({"clipcap__prefix_dim": 1.5}, "clipcap.prefix_dim"),
        ({"clipcap__mapping": ["mlp"]}, "clipcap.mapping"),
        ({"clipcap__gpt2__n_head": 3}, "clipcap.gpt2.n_embd"),  # 64 is not a multiple of 3
        ({"clipcap__gpt2__eval": "os.system"}, "clipcap.gpt2.eval"),
        ({"clipcap__gpt2__activation_function": "relu"}, "clipcap.gpt2.activation_function"),
        ({"format": "1"}, "'format'"),
        ({"format": 1.0}, "'format'"),
        ({"name": 42}, "'name'"),
        ({"name": ""}, "'name'"),
        ({"name": "evil\x1b]0;pwned\x07"}, "'name'"),
        ({"clip__quick_gelu": "yes"}, "clip.quick_gelu"),
        ({"checkpoint": None}, "'checkpoint'"),
    ],
)
def test_spec_fields_are_type_and_size_checked(model_copy, change, field):
    spec_path = _edit_spec(model_copy, **change)
    with pytest.raises(ModelFormatError) as err:
        read_spec(model_copy)
    assert str(spec_path) in str(err.value) and field in str(err.value)


def test_huge_spec_sizes_fail_before_anything_is_allocated(model_copy, photo, tmp_path):
    _edit_spec(model_copy, clipcap__gpt2__n_embd=1_000_000)
    res = _caption(photo, model_copy, tmp_path)
    assert res.exit_code == 3
    assert "clipcap.gpt2.n_embd" in res.stderr and "1000000" in res.stderr


def test_a_spec_that_is_not_an_object_is_refused(model_copy):
    (model_copy / SPEC_FILE).write_text("[1, 2, 3]")
    with pytest.raises(ModelFormatError, match="JSON object"):
        read_spec(model_copy)


def test_specs_the_writers_produce_pass(tiny_model_dir):
    assert read_spec(tiny_model_dir)["name"] == "tiny-0"


def test_a_clip_config_nobody_understands_is_a_model_error(model_copy):
    config = model_copy / "clip" / "open_clip_config.json"
    data = json.loads(config.read_text())
    data["model_cfg"]["vision_cfg"]["layers"] = "many"
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="clip"):
        load_model(str(model_copy), CPU)


def test_clip_config_sizes_are_bounded_before_building(model_copy):
    config = model_copy / "clip" / "open_clip_config.json"
    data = json.loads(config.read_text())
    data["model_cfg"]["text_cfg"]["context_length"] = 1_000_000  # a 4 TB causal mask
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError) as err:
        load_model(str(model_copy), CPU)
    assert str(config) in str(err.value)
    assert "model_cfg.text_cfg.context_length" in str(err.value)

"""The multilingual text tower: the tiny random twin, written in the hub layout, loads through the
same code as the published tower and gives what transformers' DistilBertModel + mean pooling +
the Dense layer give; malformed or malicious towers are refused naming the file; offline, the
download fails with the clear message (exit 3)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from indexer.config import Settings
from indexer.errors import ModelFormatError, ModelNotAvailableError
from indexer.models.loading import resolve_tower_dir
from indexer.models.registry import TEXT_TOWERS
from indexer.models.text_tower import write_random_tower
from search.multilingual import MultilingualTextEncoder

WORDS = ["Hund", "am", "Strand", "猫", "fiesta", "de", "cumple", "##años", "##s", "2019"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    return write_random_tower(tmp_path_factory.mktemp("tower") / "t", WORDS, out_dim=16, seed=3)


@pytest.fixture()
def copy(twin, tmp_path) -> Path:
    shutil.copytree(twin, tmp_path / "t")
    return tmp_path / "t"


def test_the_twin_loads_through_the_real_loader_and_matches_transformers(twin):
    import torch
    from safetensors.torch import load_file
    from transformers import DistilBertModel

    tower = resolve_tower_dir(str(twin), Settings(offline=True))
    enc = MultilingualTextEncoder(tower)
    text = "Hund am Strand 猫 fiesta de cumpleaños 2019"
    ids = enc.token_ids(text)
    assert len(ids) == 11 and ids[1] != 1  # [CLS] ... [SEP], words known, "cumpleaños" in pieces
    ref_model = DistilBertModel.from_pretrained(str(twin)).eval()
    with torch.no_grad():
        hidden = ref_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    dense = load_file(str(twin / "2_Dense" / "model.safetensors"))["linear.weight"]
    ref = (hidden.mean(0) @ dense.T).numpy()
    got = enc.encode_texts([text])
    assert got.shape == (1, 16)
    np.testing.assert_allclose(got[0], ref, atol=1e-5, rtol=1e-4)


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("file", "change", "says"),
    [
        ("config.json", {"dim": 10**9}, "field 'dim'"),
        ("config.json", {"model_type": "bert"}, "model_type"),
        ("2_Dense/config.json", {"in_features": 7}, "in_features"),
        ("2_Dense/config.json", {"activation_function": "torch.nn.Tanh"}, "Identity"),
        ("1_Pooling/config.json", {"pooling_mode_cls_token": True}, "mean pooling"),
    ],
)
def test_a_malformed_config_is_refused_naming_file_and_field(copy, file, change, says):
    _edit_json(copy / file, **change)
    with pytest.raises(ModelFormatError, match=says) as e:
        MultilingualTextEncoder(copy)
    assert file.split("/")[-1] in str(e.value)


def test_pickled_weights_are_never_unpickled(copy, tmp_path):
    (copy / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    with open(copy / "pytorch_model.bin", "wb") as f:
        pickle.dump(_Evil(str(marker)), f)
    with pytest.raises(ModelFormatError, match="pickled weights are not loaded"):
        resolve_tower_dir(str(copy), Settings(offline=True))
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_truncated_weights_are_refused(copy):
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="model.safetensors"):
        MultilingualTextEncoder(copy)


def test_a_dense_of_another_shape_is_refused(copy):
    _edit_json(copy / "2_Dense" / "config.json", out_features=8)  # its weights are 16 x 32
    with pytest.raises(ModelFormatError, match="linear.weight"):
        MultilingualTextEncoder(copy)


def test_offline_the_download_fails_with_the_clear_message(tmp_path):
    env = {
        "IMGCAP_CACHE_DIR": str(tmp_path / "hf"),
        "IMGCAP_MODELS_DIR": str(tmp_path / "m"),
        "IMGCAP_OFFLINE": "1",
    }
    res = CliRunner().invoke(app, ["models", "download", "clip-multilingual"], env=env)
    assert res.exit_code == 3, res.output
    entry = TEXT_TOWERS["clip-multilingual"]
    assert entry.files[0].repo in res.output and "offline mode is on" in res.output
    assert "Traceback" not in res.output


def test_no_network_fails_fast_with_the_reason(tmp_path):
    settings = Settings(cache_dir=tmp_path / "hf", hub_endpoint="http://127.0.0.1:9")
    with pytest.raises(ModelNotAvailableError, match="cannot reach 127.0.0.1:9") as e:
        resolve_tower_dir("clip-multilingual", settings)
    assert "--lang en" in str(e.value)  # the way to search without the tower


def test_the_registry_pin_is_a_full_commit():
    assert all(f.verified_pin for t in TEXT_TOWERS.values() for f in t.files)

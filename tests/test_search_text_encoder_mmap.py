"""The NumPy text tower's weights are memory-mapped from the safetensors file, equal to what
safetensors reads; anything but float32 falls back to safetensors."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file, save_file

from search.text_encoder import _mapped_float32


def test_mapped_tensors_equal_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "token_embedding.weight": rng.standard_normal((50, 8)).astype(np.float32),
        "transformer.resblocks.0.attn.in_proj_weight": rng.standard_normal((24, 8)).astype(
            np.float32
        ),
        "text_projection": rng.standard_normal((8, 4)).astype(np.float32),
        "visual.proj": rng.standard_normal((3, 5)).astype(np.float32),  # not wanted
    }
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    got = _mapped_float32(path, ("token_embedding.", "transformer.", "text_proj"))
    assert set(got) == set(tensors) - {"visual.proj"}
    ref = load_file(str(path))
    for name, arr in got.items():
        assert arr.dtype == np.float32 and arr.shape == ref[name].shape
        np.testing.assert_array_equal(arr, ref[name])


def test_other_dtypes_and_damaged_files_fall_back(tmp_path):
    half = tmp_path / "half.safetensors"
    save_file({"text_projection": np.ones((4, 4), np.float16)}, str(half))
    assert _mapped_float32(half, ("text_proj",)) is None
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{}")
    assert _mapped_float32(bad, ("text_proj",)) is None

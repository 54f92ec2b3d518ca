"""The Ray engine's stages as plain functions (no Ray instance): decode rows, the model actor
against core.process_batch, and Parquet shards round-tripping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from indexer.config import Settings
from indexer.run.work import process_batch

pytestmark = pytest.mark.ray
pytest.importorskip("ray")
pytest.importorskip("pyarrow")

SETTINGS = Settings(device="cpu", max_tokens=6)


def _batch(tmp_path, n=3):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = tmp_path / f"p{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (50, 60 + i, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    paths.insert(1, str(bad))
    keys = np.arange(10, 10 + len(paths))
    need = np.array([True, True, False, True][: len(paths)])
    return {"key": keys, "path": np.array(paths), "need_model": need}


def test_decode_rows_carry_keys_failures_and_metadata(tmp_path):
    from indexer.run.ray_engine import decode_batch

    out = decode_batch(_batch(tmp_path), 32, SETTINGS, 10_000_000)
    by_key = {int(k): i for i, k in enumerate(out["key"])}
    assert sorted(by_key) == [10, 11, 12, 13]
    bad = by_key[11]
    assert not out["ok"][bad] and out["reason"][bad] and out["meta"][bad] == ""
    good = [by_key[k] for k in (10, 12, 13)]
    assert all(out["ok"][i] and out["reason"][i] == "" for i in good)
    assert out["pixels"].shape == (4, 32, 32, 3) and out["pixels"].dtype == np.uint8
    assert json.loads(out["meta"][by_key[13]])["width"] == 62
    assert list(out["need_model"][[by_key[k] for k in (10, 11, 12, 13)]]) == [1, 1, 0, 1]


def test_model_actor_equals_process_batch_on_the_rows_that_need_it(tmp_path, tiny_model):
    from indexer.run.ray_engine import ModelActor, decode_batch

    size = tiny_model.encoder.image_size
    rows = decode_batch(_batch(tmp_path), size, SETTINGS, 10_000_000)
    import torch

    threads = torch.get_num_threads()
    try:
        out = ModelActor(SETTINGS, [tiny_model], batch_size=2)(rows)  # sets torch's threads
    finally:
        torch.set_num_threads(threads)
    todo = np.flatnonzero(rows["ok"] & rows["need_model"])
    assert len(todo) == 2
    ref = process_batch(tiny_model, [rows["pixels"][i] for i in todo], SETTINGS)
    assert [out["caption"][i] for i in todo] == ref.captions
    np.testing.assert_allclose(out["image_vec"][todo], ref.image_vecs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["caption_vec"][todo], ref.caption_vecs, rtol=1e-6, atol=1e-6)
    rest = np.setdiff1d(np.arange(len(rows["key"])), todo)
    assert all(out["caption"][i] == "" for i in rest) and not out["image_vec"][rest].any()
    assert "pixels" not in out  # pixels stay in Ray


def test_shards_round_trip(tmp_path):
    from indexer.run.ray_engine import read_shard, write_shard

    rng = np.random.default_rng(2)
    rows = {
        "key": np.array([1, 2]),
        "ok": np.array([True, False]),
        "reason": np.array(["", "truncated file"]),
        "caption": np.array(["a cat", ""], dtype=object),
        "path": ["/p/a.jpg", "/p/ü b.jpg"],
        "size": [10, 20],
        "image_vec": rng.standard_normal((2, 8)).astype(np.float32),
        "caption_vec": rng.standard_normal((2, 8)).astype(np.float32),
    }
    shard = write_shard(tmp_path / "staging", "tiny-0", rows)
    assert shard.suffix == ".parquet" and not list(shard.parent.glob("*.tmp"))
    model, cols = read_shard(shard)
    assert model == "tiny-0"
    assert cols["path"] == rows["path"] and cols["ok"] == [True, False]
    assert cols["reason"] == ["", "truncated file"] and cols["caption"] == ["a cat", ""]
    np.testing.assert_array_equal(cols["image_vec"], rows["image_vec"])
    np.testing.assert_array_equal(cols["caption_vec"], rows["caption_vec"])

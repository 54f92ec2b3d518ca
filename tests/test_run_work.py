"""indexer/run/work.py: decode and process_batch, against naive calls written from the spec."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexer.config import Settings
from indexer.run.runner import ModelRunner
from indexer.run.work import DecodedItem, DecodeFailure, decode, items_from_task, process_batch

SETTINGS = Settings(device="cpu", max_tokens=6, captions="now")  # process_batch: one pass


def _photos(tmp_path, n=5):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = tmp_path / f"p{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_decode_keeps_order_and_reports_bad_files(tmp_path):
    paths = _photos(tmp_path, 3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    items, failures = decode([paths[0], str(bad), paths[1], paths[2]], 32)
    assert [d.path for d in items] == paths
    assert all(d.pixels.shape == (32, 32, 3) and d.pixels.dtype == np.uint8 for d in items)
    assert [d.frame for d in items] == [0, 0, 0]
    assert items[1].meta["height"] == 47 and items[1].meta["width"] == 50
    assert [f.path for f in failures] == [str(bad)] and failures[0].reason


def test_items_from_task_splits_several_pictures_of_one_file():
    px = np.zeros((3, 8, 8, 3), np.uint8)
    px[1] += 1
    out = items_from_task("v.mp4", ("ok", {"width": 8}, px, [{"at_s": 0.0}, {"at_s": 1.5}, {}]))
    assert [(d.frame, d.extra, int(d.pixels.max())) for d in out] == [
        (0, {"at_s": 0.0}, 0),
        (1, {"at_s": 1.5}, 1),
        (2, {}, 0),
    ]
    assert isinstance(items_from_task("x", ("bad", "why")), DecodeFailure)
    one = items_from_task("p.jpg", ("ok", {}, px[0]))
    assert isinstance(one[0], DecodedItem) and len(one) == 1


def test_process_batch_is_one_clip_pass_feeding_captions_and_vectors(tmp_path, tiny_model):
    import torch

    items, _ = decode(_photos(tmp_path), tiny_model.encoder.image_size)
    pixels = [d.pixels for d in items]
    out = process_batch(tiny_model, pixels, SETTINGS)

    # Naive, from the spec: ToTensor + Normalize per image, CLIP, caption, text vectors.
    enc = tiny_model.encoder
    x = torch.stack(
        [
            (
                torch.from_numpy(p.copy()).permute(2, 0, 1).float() / 255.0
                - torch.tensor(enc.mean)[:, None, None]
            )
            / torch.tensor(enc.std)[:, None, None]
            for p in pixels
        ]
    )
    feats = enc.encode_images(x)
    caps = tiny_model.captioner.caption(feats, max_tokens=6)
    np.testing.assert_allclose(out.image_vecs, feats.numpy(), atol=1e-6)
    assert out.captions == caps
    np.testing.assert_allclose(out.caption_vecs, enc.encode_texts(caps).numpy(), atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_runner_batched_equals_unbatched(tmp_path, tiny_model, batch_size):
    items, _ = decode(_photos(tmp_path), tiny_model.encoder.image_size)
    pixels = [d.pixels for d in items]
    whole = process_batch(tiny_model, pixels, SETTINGS)
    out = ModelRunner(tiny_model, SETTINGS, batch_size).process(pixels)
    assert out.captions == whole.captions
    np.testing.assert_allclose(out.image_vecs, whole.image_vecs, atol=1e-5)
    np.testing.assert_allclose(out.caption_vecs, whole.caption_vecs, atol=1e-5)


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_decode_follows_the_runs_resize_mode(tmp_path, mode):
    from indexer.run.workers import decode_for_model

    p = tmp_path / "big.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (900, 1300, 3), dtype=np.uint8)).save(p, quality=90)
    items, _ = decode([str(p)], 64, Settings(resize=mode))
    np.testing.assert_array_equal(items[0].pixels, decode_for_model(str(p), 64, mode)[2])


def test_process_batch_leaves_captions_for_later_with_the_same_vectors(tmp_path, tiny_model):
    from dataclasses import replace

    items, _ = decode(_photos(tmp_path), tiny_model.encoder.image_size)
    pixels = [d.pixels for d in items]
    now = process_batch(tiny_model, pixels, SETTINGS)
    later = process_batch(tiny_model, pixels, replace(SETTINGS, captions="later"))
    assert later.pending and not now.pending
    np.testing.assert_array_equal(later.image_vecs, now.image_vecs)
    assert later.captions == [""] * len(pixels) and not later.caption_vecs.any()

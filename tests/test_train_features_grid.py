"""The training feature cache with CLIP grids (show-attend-tell): computed in the same pass as the
global features, stored float16 beside them, read back, and filled in for images that were
cached without one."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from indexer.train.features import FeatureCache, compute_features


class CountingEncoder:
    """The tiny model's CLIP, counting the images it encodes (and how)."""

    def __init__(self, encoder):
        self.inner = encoder
        self.image_size = encoder.image_size
        self.preprocess = encoder.preprocess
        self.mean, self.std = encoder.mean, encoder.std
        self.plain = self.grid = 0

    def encode_images(self, pixels):
        self.plain += len(pixels)
        return self.inner.encode_images(pixels)

    def encode_images_grid(self, pixels):
        self.grid += len(pixels)
        return self.inner.encode_images_grid(pixels)


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (70, 64), (40 * i, 200 - 50 * i, 90)).save(p)
        paths.append(p)
    return paths


def test_grid_cached_beside_features_and_filled_in_later(tiny_model, images, tmp_path):
    enc = CountingEncoder(tiny_model.encoder)
    folder = tmp_path / "cache"

    # a show-and-tell run: global features only
    feats, failed = compute_features(images[:2], enc, FeatureCache.open(folder, "clip"))
    assert not failed and enc.plain == 2 and enc.grid == 0

    # show-attend-tell: the two cached images lack a grid, so all three go through the grid pass
    grids: dict = {}
    cache = FeatureCache.open(folder, "clip")
    assert not cache.grid
    feats2, _ = compute_features(images[:3], enc, cache, grids=grids)
    assert enc.grid == 3 and set(grids) == set(images[:3])
    for p in images[:2]:
        assert torch.equal(feats2[p], feats[p])  # the same features from either pass

    # read back: float16 grids equal to a fresh pass; nothing encoded again
    grids_again: dict = {}
    compute_features(images[:3], enc, FeatureCache.open(folder, "clip"), grids=grids_again)
    assert enc.grid == 3 and enc.plain == 2
    images = images[:3]
    pixels = torch.stack(
        [tiny_model.encoder.preprocess(Image.open(p).convert("RGB")) for p in images]
    )
    _, want = tiny_model.encoder.encode_images_grid(pixels)
    for i, p in enumerate(images):
        got = grids_again[p]
        assert got.dtype == torch.float16 and got.shape == want[i].shape == (16, 64)
        assert torch.allclose(got.float(), want[i], atol=2e-2, rtol=1e-2)


def test_grids_are_appended_in_shards_never_rewritten(tiny_model, images, tmp_path):
    enc = CountingEncoder(tiny_model.encoder)
    folder = tmp_path / "cache"
    compute_features(images[:3], enc, FeatureCache.open(folder, "clip"), grids={})
    shards = sorted(folder.glob("*.grid-*.safetensors"))
    assert [p.name.split(".")[1] for p in shards] == ["grid-0000"]
    before = shards[0].stat().st_mtime_ns
    grids: dict = {}
    compute_features(images, enc, FeatureCache.open(folder, "clip"), grids=grids)
    shards = sorted(folder.glob("*.grid-*.safetensors"))
    assert len(shards) == 2 and shards[0].stat().st_mtime_ns == before  # the first kept as is
    assert enc.grid == 4 and set(grids) == set(images)  # only the new image was encoded
    assert set(FeatureCache.open(folder, "clip").grid) == set(
        FeatureCache.open(folder, "clip").rows
    )

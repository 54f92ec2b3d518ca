"""One preprocessing implementation behind every way a photo reaches CLIP: index workers,
`imgcap caption`, `imgcap eval` (exact by default), the training feature cache and
`search --like`, each honouring --resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

import cli
import indexer.media.preprocess as preprocess
from indexer.config import Settings
from indexer.media.preprocess import encoder_tensor, model_pixels
from indexer.run.workers import DecodePool, decode_for_model

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A 2000x1500 photo with real detail, EXIF-rotated: fast and exact differ on it."""
    tile = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    im = Image.new("RGB", (2000, 1500))
    for y in range(0, 1500, 512):
        for x in range(0, 2000, 512):
            im.paste(tile, (x, y))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    im.save(path, quality=90, exif=exif.tobytes())
    return path


@pytest.fixture()
def modes(monkeypatch) -> list[str]:
    """The --resize mode of every model_pixels call in this process."""
    seen: list[str] = []
    real = preprocess.model_pixels

    def spy(path, size, resize="fast", max_pixels=120_000_000):
        seen.append(resize)
        return real(path, size, resize, max_pixels)

    monkeypatch.setattr(preprocess, "model_pixels", spy)
    return seen


def test_fast_and_exact_differ_on_the_big_photo(big):
    fast, exact = model_pixels(big, 64, "fast")[1], model_pixels(big, 64, "exact")[1]
    assert not np.array_equal(fast, exact)


def test_decode_workers_use_the_run_s_mode(big):
    size = 64
    exact = model_pixels(big, size, "exact")[1]
    fast = model_pixels(big, size, "fast")[1]
    assert np.array_equal(decode_for_model(str(big), size, "exact")[2], exact)
    pool = DecodePool(1, decode_for_model, resize="exact")
    try:
        got = pool.submit(str(big), size).result()
    finally:
        pool.shutdown()
    assert got[0] == "ok" and np.array_equal(got[2], exact)
    assert np.array_equal(decode_for_model(str(big), size)[2], fast)  # this process: default


def test_caption_cli_passes_resize(big, tiny_model_dir, modes):
    for args, want in (([], "fast"), (["--resize", "exact"], "exact")):
        modes.clear()
        r = CliRunner().invoke(
            cli.app, ["caption", str(big), "--model", str(tiny_model_dir), "--device", "cpu", *args]
        )
        assert r.exit_code == 0, r.output
        assert modes == [want]


def test_bad_resize_value_is_a_usage_error(big, tiny_model_dir):
    r = CliRunner().invoke(cli.app, ["caption", str(big), "--resize", "quick"])
    assert r.exit_code == 2


def test_eval_defaults_to_exact(tiny_model_dir, tmp_path, modes):
    from indexer.train.synthetic import write_dataset

    data = write_dataset(tmp_path, 2, seed=0, fmt="coco", size=64, split="test")
    base = ["eval", str(data), "--model", str(tiny_model_dir), "--device", "cpu", "--json"]
    r = CliRunner().invoke(cli.app, base)
    assert r.exit_code == 0, r.output
    assert modes and set(modes) == {"exact"}
    modes.clear()
    r = CliRunner().invoke(cli.app, [*base, "--resize", "fast"])
    assert r.exit_code == 0, r.output
    assert set(modes) == {"fast"}


def test_feature_cache_features_are_open_clip_s_in_exact_mode(big, tiny_model, tmp_path):
    from indexer.train.features import FeatureCache, clip_identity, compute_features

    enc = tiny_model.encoder
    feats = {}
    for mode in ("exact", "fast"):
        cache = FeatureCache.open(tmp_path / mode, f"tiny;resize={mode}")
        got, failed = compute_features([big], enc, cache, resize=mode)
        assert not failed
        feats[mode] = got[big]
    full = ImageOps.exif_transpose(Image.open(big)).convert("RGB")
    reference = enc.encode_images(enc.preprocess(full)[None])[0]
    assert torch.equal(feats["exact"], reference)
    assert not torch.equal(feats["fast"], reference)
    d = Path(tmp_path)
    assert clip_identity(d, True, "exact") != clip_identity(d, True, "fast")


def test_search_like_uses_the_settings_mode(big, tiny_model, tmp_path):
    from search.query import SearchRequest
    from search.query_encoder import query_vectors, unit_vector

    enc = tiny_model.encoder
    full = ImageOps.exif_transpose(Image.open(big)).convert("RGB")
    # As query_vectors builds it: the unit image vector, summed over parts, made unit again.
    ref = unit_vector(unit_vector(np.asarray(enc.encode_images(enc.preprocess(full)[None]))[0]))
    req = SearchRequest(like=big)
    got = {}
    for mode in ("exact", "fast"):
        settings = Settings(db_path=tmp_path / "x.db", device="cpu", resize=mode)
        got[mode] = query_vectors(req, "tiny-0", settings, lambda m, s: enc)[0]
    assert np.array_equal(got["exact"], ref)
    assert not np.array_equal(got["fast"], got["exact"])
    assert float(got["fast"] @ got["exact"]) > 0.99  # close: >= 40 dB apart in pixels


def test_encoder_tensor_is_the_encoder_s_normalisation(tiny_model):
    enc = tiny_model.encoder
    px = np.random.default_rng(0).integers(0, 256, (enc.image_size, enc.image_size, 3), np.uint8)
    expected = enc.preprocess(Image.fromarray(px))
    assert torch.equal(encoder_tensor(enc, px), expected)


def test_index_cli_stores_open_clip_s_vector_with_resize_exact(
    big, tiny_model, tiny_model_dir, tmp_path
):
    """The whole index path (walk, decode workers, model batch, store) in exact mode stores the
    image vector of open_clip's own transform of the full photo."""
    from indexer.store.database import Store
    from indexer.store.records import blob_to_vec

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "big.jpg").write_bytes(big.read_bytes())
    db = tmp_path / "x.db"
    args = ["index", str(folder), "--db", str(db), "--model", str(tiny_model_dir)]
    r = CliRunner().invoke(
        cli.app, [*args, "--device", "cpu", "--workers", "1", "--resize", "exact"]
    )
    assert r.exit_code == 0, r.output
    with Store.open(db) as store:
        stored = blob_to_vec(next(iter(store.db["results"].rows))["image_vec"])
    enc = tiny_model.encoder
    full = ImageOps.exif_transpose(Image.open(big)).convert("RGB")
    want = enc.encode_images(enc.preprocess(full)[None])[0].numpy()
    np.testing.assert_allclose(stored, want, rtol=0, atol=1e-6)
    # ...a tolerance that tells the modes apart: fast's vector is much farther away.
    fast = enc.encode_images(encoder_tensor(enc, model_pixels(big, enc.image_size)[1])[None])[0]
    assert np.abs(fast.numpy() - want).max() > 1e-4

"""The NumPy query text tower gives the torch encoder's vectors, token for token."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.config import Settings
from indexer.models.loading import load_model
from indexer.models.model_dir import read_spec
from indexer.models.random_weights import write_tiny_model
from search.text_encoder import load_text_encoder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_numpy_text_tower_matches_open_clip(tiny):
    clip = read_spec(tiny)["clip"]
    fast = load_text_encoder(tiny / clip["dir"], bool(clip.get("quick_gelu", True)))
    assert fast is not None
    ref = load_model(str(tiny), Settings(device="cpu", precision="fp32"), captioner=False).encoder
    texts = [
        "a dog on a park bench",
        "Café crème &amp; ünïcode 🐶 — “quotes”",
        "word " * 100,  # longer than the 77-token context: truncated the same way
        "",
        "AND OR NOT * : -",
    ]
    for text in texts:
        assert (
            fast.tokenizer.ids(text)
            == ref.tokenizer([text])[0][: len(fast.tokenizer.ids(text))].tolist()
        )
    got = fast.encode_texts(texts)
    want = ref.encode_texts(texts).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unsupported_layouts_fall_back(tmp_path):
    assert load_text_encoder(tmp_path, True) is None  # no config, no weights


def test_search_end_to_end_with_the_tiny_model(tiny, tmp_path):
    """The default loader: NumPy text tower for words, the torch encoder for --like."""
    import hashlib

    from PIL import Image

    from indexer.media.decode import decode_image
    from indexer.store.database import Store
    from indexer.store.records import FileRecord, ResultRecord
    from search.query import SearchRequest, search

    settings = Settings(device="cpu", precision="fp32")
    enc = load_model(str(tiny), settings, captioner=False).encoder
    name = read_spec(tiny)["name"]
    captions = ["a red car on the street", "a dog sitting on a park bench", "a birthday cake"]
    colours = [(220, 30, 30), (30, 160, 50), (30, 70, 220)]
    results, files = [], []
    for i, (caption, colour) in enumerate(zip(captions, colours, strict=True)):
        path = tmp_path / f"p{i}.png"
        Image.new("RGB", (96, 80), colour).save(path)
        pixels = enc.preprocess(decode_image(path, enc.image_size).image)[None]
        img = enc.encode_images(pixels)[0].numpy()
        cap = enc.encode_texts([caption])[0].numpy()
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        results.append(ResultRecord(h, caption, img, cap))
        files.append(FileRecord(str(path), path.stat().st_size, 1, h))
    db = tmp_path / "t.db"
    with Store.open(db) as s:
        s.write_batch(name, results, files)

    hits = search(db, SearchRequest("dog on a bench", mode="caption", model=str(tiny)), settings)
    assert hits[0].caption == captions[1]
    q = enc.encode_texts(["dog on a bench"])[0].numpy()
    cap = results[1].caption_vec
    cosine = float(q @ cap / np.linalg.norm(q) / np.linalg.norm(cap))
    assert hits[0].signals["caption"].score == pytest.approx(cosine, abs=1e-4)
    probe = tmp_path / "elsewhere.png"
    Image.new("RGB", (96, 80), colours[2]).save(probe)
    hits = search(db, SearchRequest(like=probe, mode="image", model=str(tiny)), settings)
    assert hits[0].path.endswith("p2.png")
    assert hits[0].signals["image"].score == pytest.approx(1.0, abs=1e-4)

"""The CLIP encoder wrapper: same features as open_clip itself, shapes, no normalisation."""

from __future__ import annotations

import torch


def test_text_features_equal_open_clip_encode_text(tiny_model):
    enc = tiny_model.encoder
    texts = ["a dog.", "two red circles on a blue background.", "", "café crème " * 30]
    ours = enc.encode_texts(texts)
    with torch.inference_mode():
        ref = enc.model.encode_text(enc.tokenizer(texts)).float()
    assert ours.shape == (4, enc.embed_dim)
    assert torch.equal(ours, ref)
    # The batch's longest text sets the length: results don't depend on the batch, and a batch
    # of short captions (fewer positions than the full 77) gives the 77-position vectors exactly.
    for batch in (texts[:1], texts[:2], texts[2:3]):
        with torch.inference_mode():
            full = enc.model.encode_text(enc.tokenizer(batch)).float()
        assert torch.equal(enc.encode_texts(batch), full), batch


def test_image_features_are_raw_and_on_cpu(tiny_model):
    enc = tiny_model.encoder
    pixels = torch.randn(3, 3, enc.image_size, enc.image_size)
    feats = enc.encode_images(pixels)
    with torch.inference_mode():
        ref = enc.model.encode_image(pixels).float()
    torch.testing.assert_close(feats, ref)
    assert feats.device.type == "cpu" and not torch.allclose(feats.norm(dim=-1), torch.ones(3))
    assert enc.encode_texts([]).shape == (0, enc.embed_dim)

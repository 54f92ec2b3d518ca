"""Precision on the CPU: `auto` is fp32, the reference's arithmetic bit for bit; bf16 autocast
only when asked for (BENCHMARKS.md issue 23: it is slower for one photo on this CPU)."""

from __future__ import annotations

import torch
from naive_clipcap import naive_greedy

from indexer.config import Settings
from indexer.models.loading import load_model, resolve_dtype


def test_auto_on_a_cpu_is_fp32_and_bf16_is_opt_in():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16


def test_fp32_is_the_reference_arithmetic_bit_for_bit(tiny_model_dir):
    model = load_model(str(tiny_model_dir), Settings(device="cpu", precision="fp32"))
    enc, cap = model.encoder, model.captioner
    assert enc.dtype == cap.dtype == torch.float32
    pixels = torch.randn(3, 3, enc.image_size, enc.image_size, generator=torch.Generator())
    feats = enc.encode_images(pixels)
    with torch.inference_mode():
        assert torch.equal(feats, enc.model.encode_image(pixels))  # no autocast anywhere
    for i, toks in enumerate(cap.decode_tokens(feats, max_tokens=8, stop_token=None)):
        prefix = cap.model.prefix_embeddings(feats[i : i + 1])
        assert toks == naive_greedy(cap.model, prefix, max_tokens=8, stop_token=None)

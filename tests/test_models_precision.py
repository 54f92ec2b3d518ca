"""Precision: `auto` is bf16 autocast on CPUs with native bf16 (and on GPUs), fp32 elsewhere;
`fp32` is the reference's arithmetic, bit for bit."""

from __future__ import annotations

import torch
from naive_clipcap import naive_greedy

from indexer.config import Settings
from indexer.models.loading import cpu_has_bf16, load_model, resolve_dtype

CPU = torch.device("cpu")


def test_auto_is_bf16_only_on_cpus_with_native_bf16():
    assert resolve_dtype("auto", CPU, native_bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", CPU, native_bf16=False) == torch.float32
    assert resolve_dtype("fp32", CPU, native_bf16=True) == torch.float32
    assert resolve_dtype("bf16", CPU, native_bf16=False) == torch.bfloat16
    assert resolve_dtype("auto", CPU) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


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

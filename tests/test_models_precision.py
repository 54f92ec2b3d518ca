"""Precision on the CPU: `auto` is bf16 autocast where the CPU has native bf16 instructions
(2.2-2.4x faster there, BENCHMARKS.md issue 23) and fp32 elsewhere; fp32 is the reference's
arithmetic bit for bit; bf16 decoding casts each weight once per batch, not at every step."""

from __future__ import annotations

import torch
from naive_clipcap import naive_greedy
from torch.profiler import ProfilerActivity, profile

from indexer.config import Settings
from indexer.models.loading import load_model, resolve_dtype


def test_auto_on_a_cpu_is_bf16_only_with_native_bf16():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu, cpu_bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", cpu, cpu_bf16=False) == torch.float32
    assert resolve_dtype("auto", cpu) == torch.float32  # training asks without the flag
    assert resolve_dtype("fp32", cpu, cpu_bf16=True) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16


def test_bf16_decoding_casts_each_weight_once_not_per_step(tiny_model_dir):
    """Under inference_mode autocast re-casts every weight at every call (measured: a one-photo
    bf16 caption 1.5x slower than fp32); the decoders run under no_grad, where it caches."""
    model = load_model(str(tiny_model_dir), Settings(device="cpu", precision="bf16"))
    cap = model.captioner
    feats = torch.randn(3, model.encoder.embed_dim, generator=torch.Generator())
    weights = [p for p in cap.model.parameters() if p.dim() == 2]
    shapes = {tuple(p.shape) for p in weights}
    weight_casts = {}
    for steps in (4, 12):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            cap.decode_tokens(feats, max_tokens=steps, stop_token=None)
        weight_casts[steps] = sum(
            e.count
            for e in prof.key_averages(group_by_input_shape=True)
            if e.key == "aten::_to_copy" and e.input_shapes and tuple(e.input_shapes[0]) in shapes
        )
    assert 0 < weight_casts[4] == weight_casts[12] <= len(weights), weight_casts


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

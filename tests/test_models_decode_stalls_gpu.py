"""On a GPU: the decoders sync with the host once per check, not once per token, and the check
interval does not change the tokens. Marked `gpu` (deselected by default; benchmarks/gpu_check.sh
runs them)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from indexer.models.clipcap import beam_decode, greedy_decode

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
STOP = 13


@pytest.fixture(scope="module")
def nets(tiny_model):
    cpu = copy.deepcopy(tiny_model.captioner.model).eval()
    with torch.no_grad():
        cpu.gpt.transformer.wte.weight[STOP] *= 5  # captions stop at many different steps
    return cpu, copy.deepcopy(cpu).to("cuda")


def _syncs(fn) -> int:
    """Host syncs torch reports while fn runs (set_sync_debug_mode 'warn')."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in seen)


def test_greedy_on_gpu_matches_cpu_and_syncs_per_check(nets):
    cpu, gpu = nets
    feats = torch.randn(16, 32, generator=torch.Generator().manual_seed(0)) * 2
    want = greedy_decode(cpu, cpu.prefix_embeddings(feats), 40, STOP)
    prefix = gpu.prefix_embeddings(feats.cuda())
    # Same batch at every step (no shrinking): the same kernels, so exactly the same tokens.
    every_step = greedy_decode(gpu, prefix, 40, STOP, check_every=1, shrink_share=1.0)
    assert greedy_decode(gpu, prefix, 40, STOP, check_every=8, shrink_share=1.0) == every_step
    # Against the CPU, other kernels may break a near tie: nearly all captions agree.
    got = greedy_decode(gpu, prefix, 40, STOP, check_every=8)
    assert sum(a == b for a, b in zip(got, want, strict=True)) >= 14
    # A stop token never produced: 40 steps, 5 checks, each a couple of small copies.
    n = _syncs(lambda: greedy_decode(gpu, prefix, 40, 10**9, check_every=8))
    assert n <= 5 * 3 + 4, n


def test_beam_on_gpu_matches_cpu_and_syncs_per_check(nets):
    cpu, gpu = nets
    feats = torch.randn(6, 32, generator=torch.Generator().manual_seed(3)) * 2
    want = beam_decode(cpu, cpu.prefix_embeddings(feats), 3, 24, STOP)
    prefix = gpu.prefix_embeddings(feats.cuda())
    got = beam_decode(gpu, prefix, 3, 24, STOP, check_every=8)
    assert sum(a == b for a, b in zip(got, want, strict=True)) >= 5  # near ties may differ
    n = _syncs(lambda: beam_decode(gpu, prefix, 3, 24, 10**9, check_every=8))
    assert n <= 3 * 3 + 6, n

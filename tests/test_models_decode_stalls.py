"""Decoding without per-step host syncs or per-step KV-cache copies: the host checks for
finished captions only every few steps, the KV cache is written in place, and the tokens stay
exactly those of the one-image reference decoders, whatever the check interval."""

from __future__ import annotations

import copy

import pytest
import torch
from naive_clipcap import naive_beam, naive_greedy

from indexer.models.clipcap import Captioner, beam_decode, greedy_decode
from indexer.models.kv_cache import KVCache, LayerCache

STOP = 13


@pytest.fixture(scope="module")
def stoppy(tiny_model):
    """The tiny captioner with '.' made likely, so captions stop at many different steps."""
    net = copy.deepcopy(tiny_model.captioner.model)
    with torch.no_grad():
        net.gpt.transformer.wte.weight[STOP] *= 5
    return Captioner(net, tiny_model.captioner.tokenizer, torch.device("cpu"), torch.float32)


def _prefix(cap: Captioner, n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return cap.model.prefix_embeddings(torch.randn(n, 32, generator=g) * 2)


@pytest.mark.parametrize("every,share", [(1, 0.0), (3, 0.0), (4, 0.25), (8, 1.0), (50, 0.5)])
def test_greedy_any_check_interval_gives_the_reference_tokens(stoppy, every, share):
    prefix = _prefix(stoppy)
    got = greedy_decode(stoppy.model, prefix, 20, STOP, check_every=every, shrink_share=share)
    lengths = sorted(len(t) for t in got)
    assert lengths[0] < 20 and lengths[-1] == 20  # some stop early, some run to the limit
    for i, toks in enumerate(got):
        assert toks == naive_greedy(stoppy.model, prefix[i : i + 1], 20, STOP), (every, i)


@pytest.mark.parametrize("every", [1, 3, 8])
def test_beam_any_check_interval_gives_the_reference_tokens(stoppy, every):
    prefix = _prefix(stoppy, n=6, seed=3)
    got = beam_decode(stoppy.model, prefix, 3, 12, STOP, check_every=every)
    assert any(t[-1] == STOP for t in got)
    for i, toks in enumerate(got):
        assert toks == naive_beam(stoppy.model, prefix[i : i + 1], 3, 12, STOP), (every, i)


def _count_host_reads(monkeypatch) -> list[int]:
    """Count the ways a tensor's values reach the host (each one a sync on a GPU)."""
    calls = [0]
    for name in ("cpu", "item", "tolist", "__bool__", "__int__", "__index__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **kw):
            calls[0] += 1
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def _reads(calls, run) -> int:
    calls[0] = 0
    run()
    return calls[0]


def test_greedy_reads_the_host_once_per_check_not_per_step(stoppy, monkeypatch):
    """32 more steps cost at most 4 more checks' reads; a per-step sync would cost 32+."""
    prefix = _prefix(stoppy, n=4)
    never = 10**9  # a stop token that is never produced: every check finds nothing
    calls = _count_host_reads(monkeypatch)
    for stop, per_check in ((None, 0), (never, 3)):
        short = _reads(
            calls, lambda s=stop: greedy_decode(stoppy.model, prefix, 16, s, check_every=8)
        )
        long = _reads(
            calls, lambda s=stop: greedy_decode(stoppy.model, prefix, 48, s, check_every=8)
        )
        assert long - short <= 4 * per_check, (stop, short, long)


def test_beam_reads_the_host_once_per_check_not_per_step(stoppy, monkeypatch):
    prefix = _prefix(stoppy, n=3)
    calls = _count_host_reads(monkeypatch)
    short = _reads(calls, lambda: beam_decode(stoppy.model, prefix, 3, 16, 10**9, check_every=8))
    long = _reads(calls, lambda: beam_decode(stoppy.model, prefix, 3, 48, 10**9, check_every=8))
    assert long - short <= 4 * 3, (short, long)


class _CatLayer:
    """The naive cache: concatenate every step, gather into fresh tensors."""

    def __init__(self):
        self.keys = self.values = None

    def update(self, k, v):
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat((self.keys, k), dim=-2)
            self.values = torch.cat((self.values, v), dim=-2)
        return self.keys, self.values

    def reorder_cache(self, idx):
        self.keys, self.values = self.keys[idx], self.values[idx]

    batch_select_indices = reorder_cache

    def batch_repeat_interleave(self, n):
        self.keys = self.keys.repeat_interleave(n, dim=0)
        self.values = self.values.repeat_interleave(n, dim=0)

    def seq_length(self):
        return self.keys.shape[-2]


def test_layer_cache_matches_concatenation_and_reorders_in_place():
    g = torch.Generator().manual_seed(0)
    ref, buf = _CatLayer(), LayerCache(capacity=12)

    def kv(b, n):
        return torch.randn(b, 2, n, 4, generator=g), torch.randn(b, 2, n, 4, generator=g)

    k, v = kv(3, 5)
    ref.update(k, v)
    buf.update(k, v)
    ref.batch_repeat_interleave(2)
    buf.batch_repeat_interleave(2)
    for _ in range(6):
        k, v = kv(6, 1)
        a, b = ref.update(k, v), buf.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        idx = torch.randint(0, 6, (6,), generator=g)
        before = {buf._k.data_ptr(), buf._spare[0].data_ptr()} if buf._spare else None
        ref.reorder_cache(idx)
        buf.reorder_cache(idx)
        if before is not None:  # steady state: the two buffers swap, nothing is allocated
            assert {buf._k.data_ptr(), buf._spare[0].data_ptr()} == before
        assert torch.equal(ref.keys, buf.keys) and torch.equal(ref.values, buf.values)
    keep = torch.tensor([0, 2, 5])
    ref.batch_select_indices(keep)
    buf.batch_select_indices(keep)
    assert torch.equal(ref.keys, buf.keys) and buf.seq_length() == ref.seq_length() == 11
    k, v = kv(3, 4)  # past the capacity of 12: the buffer grows
    assert torch.equal(ref.update(k, v)[0], buf.update(k, v)[0])


def test_gpt2_fills_the_cache_in_place(stoppy):
    cache = KVCache(stoppy.model.gpt.config.n_layer, 16)
    prefix = _prefix(stoppy, n=2)
    stoppy.model.gpt(inputs_embeds=prefix, cache=cache)
    assert cache.seq_length() == prefix.shape[1]
    buffers = [layer._k.data_ptr() for layer in cache.layers]
    stoppy.model.gpt(input_ids=torch.tensor([[1], [2]]), cache=cache)
    assert cache.seq_length() == prefix.shape[1] + 1
    assert [layer._k.data_ptr() for layer in cache.layers] == buffers

"""Our GPT-2 and its tokenizer against transformers' (the reference implementation, a test-only
dependency): same weights give bit-identical fp32 logits on the CPU, for the whole-sequence pass,
the cached decoding steps and the padded training forward (gradients too), and the tokenizer gives
GPT2TokenizerFast's ids and texts."""

from __future__ import annotations

import pytest
import torch

from indexer.errors import ModelFormatError
from indexer.models.gpt2 import GPT2, GPT2Config
from indexer.models.gpt2_tokenizer import GPT2Tokenizer
from indexer.models.kv_cache import KVCache

TINY = {"vocab_size": 300, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 4}
NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def _pair(**extra):
    """transformers' GPT2LMHeadModel (seeded random weights) and ours with its state dict."""
    from transformers import GPT2Config as RefConfig
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    ref = GPT2LMHeadModel(RefConfig(**TINY, **extra, bos_token_id=None, eos_token_id=None))
    ours = GPT2(GPT2Config(**TINY, **extra))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


@pytest.fixture(scope="module")
def pair():
    return _pair()


def test_same_parameter_names_and_shapes_and_a_tied_head():
    ref, ours = _pair()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    assert ours.lm_head.weight is ours.transformer.wte.weight


def test_a_seed_gives_the_weights_transformers_draws():
    """Test and benchmark models are written from a seed; the same seed gives the same model
    and leaves the generator in the same state."""
    from transformers import GPT2Config as RefConfig
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    ref = GPT2LMHeadModel(RefConfig(**TINY, bos_token_id=None, eos_token_id=None))
    ref_next = torch.rand(3)
    torch.manual_seed(0)
    ours = GPT2(GPT2Config(**TINY))
    assert torch.equal(torch.rand(3), ref_next)
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k


@torch.no_grad()
def test_whole_sequence_logits_are_bit_identical(pair):
    ref, ours = pair
    g = torch.Generator().manual_seed(1)
    embeds = torch.randn(3, 7, TINY["n_embd"], generator=g)
    assert torch.equal(ours(inputs_embeds=embeds), ref(inputs_embeds=embeds).logits)
    ids = torch.randint(0, TINY["vocab_size"], (3, 9), generator=g)
    assert torch.equal(ours(input_ids=ids), ref(input_ids=ids).logits)


@torch.no_grad()
def test_cached_steps_are_bit_identical_and_match_a_full_recompute(pair):
    from transformers import DynamicCache

    ref, ours = pair
    g = torch.Generator().manual_seed(2)
    prefix = torch.randn(4, 5, TINY["n_embd"], generator=g)
    ref_cache, cache = DynamicCache(), KVCache(TINY["n_layer"], 8)  # grows past 8
    got = ours(inputs_embeds=prefix, cache=cache, last_only=True)
    want = ref(inputs_embeds=prefix, cache=ref_cache, use_cache=True, logits_to_keep=1).logits
    assert got.shape == (4, 1, TINY["vocab_size"]) and torch.equal(got, want)
    seq = prefix
    for _ in range(6):
        nxt = got[:, -1].argmax(-1, keepdim=True)  # (4, 1)
        got = ours(input_ids=nxt, cache=cache, last_only=True)
        want = ref(input_ids=nxt, cache=ref_cache, use_cache=True, logits_to_keep=1).logits
        assert torch.equal(got, want)
        seq = torch.cat((seq, ours.transformer.wte(nxt)), dim=1)
        full = ours(inputs_embeds=seq)[:, -1:]  # no cache: a different kernel shape
        torch.testing.assert_close(got, full, rtol=0, atol=1e-5)
    assert cache.seq_length() == 11


@torch.enable_grad()  # load_model (other tests, same process) turns grad off process-wide
def test_padded_training_forward_and_gradients_match():
    ref, ours = _pair(**NO_DROPOUT)
    ref.train(), ours.train()
    g = torch.Generator().manual_seed(3)
    embeds = torch.randn(3, 8, TINY["n_embd"], generator=g)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[0, 5:] = 0  # right padding, as the training batches have
    mask[2, 3:] = 0
    for m in (mask, torch.ones_like(mask)):  # an all-real mask takes the plain causal path
        got = ours(inputs_embeds=embeds, attention_mask=m)
        want = ref(inputs_embeds=embeds, attention_mask=m).logits
        assert torch.equal(got, want)
        weights = torch.randn(got.shape, generator=g)
        (got * weights).sum().backward()
        (want * weights).sum().backward()
        ref_grads = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            assert torch.equal(p.grad, ref_grads[name].grad), name
        ours.zero_grad(), ref.zero_grad()


def test_config_from_a_spec_ignores_token_ids_and_refuses_other_activations():
    cfg = GPT2Config.from_spec({**TINY, "bos_token_id": None, "eos_token_id": 50256})
    assert cfg.n_embd == 32 and cfg.layer_norm_epsilon == 1e-5
    with pytest.raises(ModelFormatError, match="relu"):
        GPT2Config.from_spec({"activation_function": "relu"})
    with pytest.raises(ModelFormatError, match="n_ctx"):
        GPT2Config.from_spec({"n_ctx": 5})


TEXTS = [
    "a man riding a bike down a street.",
    "A dog, a cat; and: two birds!? ",
    "  leading and  double  spaces   ",
    "line one\nline two\r\n\tindented",
    "don't it's we'll they're I'M you've",
    "héllo wörld — «quotes» naïve café",
    "日本語のテキスト 中文 한국어",
    "emoji 🙂🚲 and a flag 🇫🇷",
    "<|endoftext|>a caption<|endoftext|>",
    "numbers 1234567 3.14 -42",
    "",
    " ",
    ".",
]


def test_tokenizer_matches_gpt2_tokenizer_fast(tiny_model_dir):
    from transformers import GPT2TokenizerFast

    tok_dir = tiny_model_dir / "tokenizer"
    ours, ref = GPT2Tokenizer(tok_dir), GPT2TokenizerFast.from_pretrained(str(tok_dir))
    assert len(ours) == len(ref)
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == ref.encode(text), text
        assert ours.decode(ids) == ref.decode(ids, clean_up_tokenization_spaces=False) == text
    assert ours.encode_batch(TEXTS) == [ref.encode(t) for t in TEXTS]
    every = list(range(len(ours)))  # each piece alone, broken UTF-8 included
    for i in every:
        assert ours.decode([i]) == ref.decode([i], clean_up_tokenization_spaces=False), i


def test_tokenizer_without_its_files_says_which(tmp_path):
    with pytest.raises(ModelFormatError, match="vocab.json and merges.txt"):
        GPT2Tokenizer(tmp_path)

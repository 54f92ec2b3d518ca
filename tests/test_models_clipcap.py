"""ClipCap: published checkpoint layout, strict loading, and decoding that matches the reference."""

from __future__ import annotations

import copy

import pytest
import torch
from naive_clipcap import naive_beam, naive_greedy

from indexer.errors import ModelFormatError
from indexer.models.clipcap import (
    GPT2_SMALL,
    Captioner,
    ClipCapConfig,
    ClipCapModel,
    MapperAttention,
    beam_decode,
    clean_up_spaces,
    greedy_decode,
    load_clipcap,
)
from indexer.models.model_dir import published_state_dict
from indexer.models.random_weights import TINY_GPT2

STOP = 13  # "." in GPT-2 BPE and in the tiny tokenizer


# --------------------------------------------------------------------------- published layout
def _expected_gpt2_keys(n_layer: int = 12) -> dict[str, tuple]:
    keys = {
        "gpt.transformer.wte.weight": (50257, 768),
        "gpt.transformer.wpe.weight": (1024, 768),
        "gpt.transformer.ln_f.weight": (768,),
        "gpt.transformer.ln_f.bias": (768,),
        "gpt.lm_head.weight": (50257, 768),
    }
    for i in range(n_layer):
        h = f"gpt.transformer.h.{i}."
        keys.update(
            {
                h + "ln_1.weight": (768,), h + "ln_1.bias": (768,),
                h + "attn.bias": (1, 1, 1024, 1024), h + "attn.masked_bias": (),
                h + "attn.c_attn.weight": (768, 2304), h + "attn.c_attn.bias": (2304,),
                h + "attn.c_proj.weight": (768, 768), h + "attn.c_proj.bias": (768,),
                h + "ln_2.weight": (768,), h + "ln_2.bias": (768,),
                h + "mlp.c_fc.weight": (768, 3072), h + "mlp.c_fc.bias": (3072,),
                h + "mlp.c_proj.weight": (3072, 768), h + "mlp.c_proj.bias": (768,),
            }
        )  # fmt: skip
    return keys


@pytest.fixture(scope="module")
def full_mlp_published(tmp_path_factory):
    """A full-size random ClipCap MLP checkpoint written in the published layout."""
    torch.manual_seed(0)
    model = ClipCapModel(ClipCapConfig())
    sd = published_state_dict(model)
    # The published pickles store lm_head and wte as one tensor.
    sd["gpt.lm_head.weight"] = sd["gpt.transformer.wte.weight"]
    path = tmp_path_factory.mktemp("ckpt") / "coco_weights.pt"
    torch.save(sd, path)
    return path, sd


def test_mlp_state_dict_matches_published_layout(full_mlp_published):
    _, sd = full_mlp_published
    expected = _expected_gpt2_keys()
    expected.update(
        {
            "clip_project.model.0.weight": (3840, 512),
            "clip_project.model.0.bias": (3840,),
            "clip_project.model.2.weight": (7680, 3840),
            "clip_project.model.2.bias": (7680,),
        }
    )
    assert len(expected) == 177
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert sd["gpt.transformer.h.0.attn.bias"].dtype == torch.uint8
    assert all(v.dtype == torch.float32 for k, v in sd.items() if not k.endswith("attn.bias"))


def test_full_size_published_checkpoint_loads_strictly(full_mlp_published):
    path, sd = full_mlp_published
    model = load_clipcap(path, ClipCapConfig())
    loaded = model.state_dict()
    assert torch.equal(loaded["clip_project.model.2.weight"], sd["clip_project.model.2.weight"])
    assert torch.equal(
        loaded["gpt.transformer.h.11.mlp.c_fc.weight"], sd["gpt.transformer.h.11.mlp.c_fc.weight"]
    )
    # lm_head stays tied to wte after loading.
    assert model.gpt.lm_head.weight.data_ptr() == model.gpt.transformer.wte.weight.data_ptr()


def test_transformer_mapper_matches_published_layout():
    cfg = ClipCapConfig(
        mapping="transformer",
        prefix_dim=640,
        prefix_length=40,
        clip_length=40,
        num_layers=8,
        normalize_prefix=True,
    )
    sd = published_state_dict(ClipCapModel(cfg))
    mapper = {k: tuple(v.shape) for k, v in sd.items() if k.startswith("clip_project.")}
    expected = {"clip_project.prefix_const": (40, 768), "clip_project.linear.weight": (30720, 640),
                "clip_project.linear.bias": (30720,)}  # fmt: skip
    for layer in range(8):
        p = f"clip_project.transformer.layers.{layer}."
        expected.update(
            {
                p + "norm1.weight": (768,), p + "norm1.bias": (768,),
                p + "attn.to_queries.weight": (768, 768),
                p + "attn.to_keys_values.weight": (1536, 768),
                p + "attn.project.weight": (768, 768), p + "attn.project.bias": (768,),
                p + "norm2.weight": (768,), p + "norm2.bias": (768,),
                p + "mlp.fc1.weight": (1536, 768), p + "mlp.fc1.bias": (1536,),
                p + "mlp.fc2.weight": (768, 1536), p + "mlp.fc2.bias": (768,),
            }
        )  # fmt: skip
    assert mapper == expected
    assert len(sd) == 272
    assert sum(v.numel() for k, v in sd.items() if k.startswith("clip_project.")) == 57_520_128


def _tiny_cfg(**kw) -> ClipCapConfig:
    return ClipCapConfig(prefix_dim=16, prefix_length=4, gpt2=dict(TINY_GPT2), **kw)


def test_wrong_checkpoint_names_the_keys_and_file(tmp_path):
    sd = published_state_dict(ClipCapModel(_tiny_cfg()))
    del sd["clip_project.model.0.bias"]
    sd["clip_project.extra.weight"] = torch.zeros(3)
    sd["gpt.transformer.wpe.weight"] = torch.zeros(7, 64)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(ModelFormatError) as err:
        load_clipcap(path, _tiny_cfg())
    msg = str(err.value)
    assert str(path) in msg
    assert "missing keys: clip_project.model.0.bias" in msg
    assert "unexpected keys: clip_project.extra.weight" in msg
    assert "gpt.transformer.wpe.weight (7, 64) != (128, 64)" in msg


def test_mapping_type_mismatch_is_an_error(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(published_state_dict(ClipCapModel(_tiny_cfg())), path)
    with pytest.raises(ModelFormatError, match="clip_project.model.0.weight"):
        load_clipcap(
            path, _tiny_cfg(mapping="transformer", clip_length=3, num_layers=1, num_heads=2)
        )


def test_untied_lm_head_is_rejected(tmp_path):
    sd = published_state_dict(ClipCapModel(_tiny_cfg()))
    sd["gpt.lm_head.weight"] = sd["gpt.lm_head.weight"] + 1
    path = tmp_path / "untied.pt"
    torch.save(sd, path)
    with pytest.raises(ModelFormatError, match="lm_head"):
        load_clipcap(path, _tiny_cfg())


def test_checkpoint_without_lm_head_key_loads(tmp_path):
    model = ClipCapModel(_tiny_cfg())
    sd = published_state_dict(model)
    del sd["gpt.lm_head.weight"]
    path = tmp_path / "nohead.pt"
    torch.save(sd, path)
    loaded = load_clipcap(path, _tiny_cfg())
    assert torch.equal(loaded.gpt.lm_head.weight, model.gpt.transformer.wte.weight)


class Evil:  # a pickle global that weights_only must refuse to build
    def __reduce__(self):
        return (print, ("code from an untrusted file ran",))


def test_checkpoint_is_loaded_with_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"gpt.x": Evil()}, path)
    with pytest.raises(ModelFormatError, match="not a readable checkpoint"):
        load_clipcap(path, _tiny_cfg())
    assert "untrusted" not in capsys.readouterr().out


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelFormatError, match="garbage.pt"):
        load_clipcap(path, _tiny_cfg())


# ------------------------------------------------------------------------------------ mapping
def test_mapper_attention_matches_reference_einsum():
    """Our SDPA attention = the reference's einsum formulation (keys|values split, 8 heads)."""
    torch.manual_seed(0)
    attn = MapperAttention(dim=48, num_heads=4)
    x = torch.randn(3, 7, 48)
    b, n, c = x.shape
    h = 4
    q = attn.to_queries(x).reshape(b, n, h, c // h)
    kv = attn.to_keys_values(x).reshape(b, n, 2, h, c // h)
    k, v = kv[:, :, 0], kv[:, :, 1]
    att = torch.einsum("bnhd,bmhd->bnmh", q, k) * (c // h) ** -0.5
    att = att.softmax(dim=2)
    ref = attn.project(torch.einsum("bnmh,bmhd->bnhd", att, v).reshape(b, n, c))
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-5)


def test_mlp_prefix_is_raw_and_transformer_prefix_normalised():
    torch.manual_seed(0)
    feats = torch.randn(2, 16)
    mlp = ClipCapModel(_tiny_cfg()).eval()
    assert not torch.allclose(mlp.prefix_embeddings(feats), mlp.prefix_embeddings(feats * 3))
    trf = ClipCapModel(
        _tiny_cfg(
            mapping="transformer", clip_length=3, num_layers=1, num_heads=2, normalize_prefix=True
        )
    ).eval()
    out = trf.prefix_embeddings(feats)
    assert out.shape == (2, 4, 64)
    torch.testing.assert_close(out, trf.prefix_embeddings(feats * 3))


# ----------------------------------------------------------------------------------- decoding
@pytest.fixture(scope="module", params=["mlp", "transformer"])
def stoppy(request, tiny_model):
    """(captioner, stop token, kind). The '.' embedding is scaled up so that, with the MLP mapper,
    some captions stop early and others run to the limit: both paths get exercised. The
    'transformer' kind puts a tiny transformer mapper over the same GPT-2 (decoding is
    mapper-agnostic; this checks the transformer prefix path end to end)."""
    torch.manual_seed(1)
    base = tiny_model.captioner
    net = copy.deepcopy(base.model)
    if request.param == "transformer":
        cfg = ClipCapConfig(
            mapping="transformer",
            prefix_dim=32,
            prefix_length=4,
            clip_length=3,
            num_layers=2,
            num_heads=2,
            normalize_prefix=True,
            gpt2=dict(TINY_GPT2),
        )
        trf = ClipCapModel(cfg)
        trf.gpt = net.gpt
        net = trf.eval()
    with torch.no_grad():
        net.gpt.transformer.wte.weight[STOP] *= 5
    cap = Captioner(net, base.tokenizer, torch.device("cpu"), torch.float32)
    return cap, STOP, request.param


def _features(n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 32, generator=g) * 2


def test_greedy_batched_equals_one_at_a_time_and_naive(stoppy):
    stoppy, stop, kind = stoppy
    feats = _features()
    batched = stoppy.decode_tokens(feats, beams=1, max_tokens=20, stop_token=stop)
    lengths = [len(t) for t in batched]
    if kind == "mlp":
        assert min(lengths) < 20 and max(lengths) == 20  # both stopping and running to the limit
    for i, toks in enumerate(batched):
        single = stoppy.decode_tokens(feats[i : i + 1], beams=1, max_tokens=20, stop_token=stop)[0]
        prefix = stoppy.model.prefix_embeddings(feats[i : i + 1])
        naive = naive_greedy(stoppy.model, prefix, max_tokens=20, stop_token=stop)
        assert toks == single == naive
        assert stop not in toks[:-1]  # generation ends at the first stop token, which is kept


def test_beam_batched_equals_one_at_a_time_and_naive(stoppy):
    stoppy, stop, kind = stoppy
    feats = _features(8, seed=3)
    for beams in (2, 4):
        batched = stoppy.decode_tokens(feats, beams=beams, max_tokens=16, stop_token=stop)
        if kind == "mlp":
            assert any(t[-1] == stop for t in batched)
        for i, toks in enumerate(batched):
            one = feats[i : i + 1]
            single = stoppy.decode_tokens(one, beams=beams, max_tokens=16, stop_token=stop)[0]
            prefix = stoppy.model.prefix_embeddings(one)
            naive = naive_beam(stoppy.model, prefix, beams=beams, max_tokens=16, stop_token=stop)
            assert toks == single == naive, (beams, i)


def test_greedy_respects_max_tokens_and_fixed_length(stoppy):
    stoppy, _, _ = stoppy
    feats = _features(6)
    prefix = stoppy.model.prefix_embeddings(feats)
    fixed = greedy_decode(stoppy.model, prefix, max_tokens=9, stop_token=None)
    assert [len(t) for t in fixed] == [9] * 6
    fixed_beam = beam_decode(stoppy.model, prefix, beams=3, max_tokens=9, stop_token=None)
    assert [len(t) for t in fixed_beam] == [9] * 6
    assert all(len(t) <= 67 for t in stoppy.decode_tokens(feats))


def test_caption_text_keeps_the_stop_token_and_cleans_spaces(stoppy):
    stoppy, _, _ = stoppy
    feats = _features()
    toks = stoppy.decode_tokens(feats, max_tokens=20)
    texts = stoppy.caption(feats, max_tokens=20)
    for t, text in zip(toks, texts, strict=True):
        if t[-1] == STOP:
            assert text.endswith(".")
        assert text == " ".join(clean_up_spaces(stoppy.tokenizer.decode(t)).split())


def test_detokenize_drops_control_characters(tiny_model):
    cap = tiny_model.captioner
    tok = cap.tokenizer
    ids = tok.encode("a dog") + tok.encode("\x10\x10") + tok.encode(" on a bench .")
    assert "\x10" in tok.decode(ids)
    assert cap.detokenize(ids) == "a dog on a bench."


def test_clean_up_spaces_matches_transformers_4():
    assert clean_up_spaces("a man 's dog , running .") == "a man's dog, running."
    assert clean_up_spaces("it is n't here ! really ?") == "it isn't here! really?"


def test_bf16_autocast_runs_on_cpu(tiny_model):
    cap = tiny_model.captioner
    bf = Captioner(cap.model, cap.tokenizer, torch.device("cpu"), torch.bfloat16)
    out = bf.decode_tokens(_features(3), max_tokens=5, stop_token=None)
    assert [len(t) for t in out] == [5, 5, 5]


def test_gpt2_small_defaults():
    assert GPT2_SMALL == {
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
    }

"""The CLIP encoder wrapper: same features as open_clip itself, shapes, no normalisation."""

from __future__ import annotations

import pytest
import torch


def test_text_features_equal_open_clip_encode_text(tiny_model_fp32):
    enc = tiny_model_fp32.encoder
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


def test_text_vectors_are_the_full_context_ones_at_every_length(tiny_model):
    """The tower stops after the longest text (rounded up to 16 positions): every caption
    length gives the 77-position vectors bit for bit, in fp32 and under bf16 autocast."""
    enc = tiny_model.encoder
    differing = []
    for n in range(76):
        tokens = enc.tokenizer(["café " * n])  # start + n + end = n + 2 positions
        with torch.inference_mode():
            same = torch.equal(enc._encode_tokens(tokens), enc.model.encode_text(tokens))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                same &= torch.equal(enc._encode_tokens(tokens), enc.model.encode_text(tokens))
        if not same:
            differing.append(n + 2)
    assert differing == []


def test_image_features_are_raw_and_on_cpu(tiny_model_fp32):
    enc = tiny_model_fp32.encoder
    pixels = torch.randn(3, 3, enc.image_size, enc.image_size)
    feats = enc.encode_images(pixels)
    with torch.inference_mode():
        ref = enc.model.encode_image(pixels).float()
    torch.testing.assert_close(feats, ref)
    assert feats.device.type == "cpu" and not torch.allclose(feats.norm(dim=-1), torch.ones(3))
    assert enc.encode_texts([]).shape == (0, enc.embed_dim)


# ------------------------------------------------------------------- clip_net against open_clip
# A second tiny config exercising what the first leaves at its defaults: nn.GELU, a biased text
# projection, a non-square image, another MLP ratio, a (1,)-shaped logit scale and a logit bias.
VARIANT_CFG = {
    "embed_dim": 24,
    "init_logit_bias": -10.0,
    "nonscalar_logit_scale": True,
    "vision_cfg": {"image_size": [48, 32], "layers": 1, "width": 32, "head_width": 16,
                   "patch_size": 16, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2,
                 "proj_bias": True},
}  # fmt: skip


def _open_clip_and_clip_net(model_cfg: dict, quick_gelu: bool):
    import open_clip

    from indexer.models.checkpoint import assign_state_dict, empty_parameters
    from indexer.models.clip_net import ClipNet, clip_net_config

    torch.manual_seed(0)
    ref = open_clip.CLIP(**{**model_cfg, "quick_gelu": quick_gelu}).eval()
    for p in ref.parameters():  # open_clip leaves some at zero or one: make every one count
        torch.nn.init.normal_(p, std=0.05)
    cfg = clip_net_config(model_cfg, quick_gelu)
    assert cfg is not None
    with empty_parameters():
        net = ClipNet(cfg)
    assign_state_dict(net, {k: v.clone() for k, v in ref.state_dict().items()})
    return ref, net.eval()


@pytest.mark.parametrize("name", ["tiny", "variant"])
def test_clip_net_computes_open_clips_features_bit_for_bit(name):
    from indexer.models.clip_tokenizer import ClipTokenizer, bpe_vocab_path
    from indexer.models.random_weights import TINY_CLIP_CFG

    model_cfg, quick = {"tiny": (TINY_CLIP_CFG, True), "variant": (VARIANT_CFG, False)}[name]
    ref, net = _open_clip_and_clip_net(model_cfg, quick)
    assert set(net.state_dict()) == set(ref.state_dict())
    assert isinstance(net.transformer.resblocks[0].mlp.gelu, torch.nn.GELU) != quick
    h, w = ref.visual.image_size
    pixels = torch.randn(3, 3, h, w)
    tokens = ClipTokenizer(bpe_vocab_path(), net.context_length)(
        ["a dog.", "two red circles on a blue background", "", "word " * 90]
    )
    with torch.inference_mode():
        assert torch.equal(net.encode_image(pixels), ref.encode_image(pixels))
        assert torch.equal(net.encode_text(tokens), ref.encode_text(tokens))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img, want_img = net.encode_image(pixels), ref.encode_image(pixels)
            txt, want_txt = net.encode_text(tokens), ref.encode_text(tokens)
    assert img.dtype == want_img.dtype == torch.bfloat16
    assert torch.equal(img, want_img) and torch.equal(txt, want_txt)


@pytest.mark.parametrize(
    "change",
    [
        {"vision_cfg": {"layers": [1, 1, 1, 1], "width": 16}},  # ResNet
        {"vision_cfg": {"ls_init_value": 0.1}},
        {"vision_cfg": {"attentional_pool": True}},
        {"vision_cfg": {"patch_dropout": 0.5}},
        {"vision_cfg": {"no_ln_pre": True}},
        {"vision_cfg": {"final_ln_after_pool": True}},
        {"vision_cfg": {"pool_type": "avg"}},
        {"vision_cfg": {"qk_norm": True}},
        {"vision_cfg": {"norm_kwargs": {"eps": 1e-6}}},
        {"vision_cfg": {"timm_model_name": "vit_base_patch32_224"}},
        {"vision_cfg": {"something_new": 1}},
        {"text_cfg": {"pool_type": "last"}},
        {"text_cfg": {"no_causal_mask": True}},
        {"text_cfg": {"embed_cls": True}},
        {"text_cfg": {"proj_type": "none"}},
        {"text_cfg": {"hf_tokenizer_name": "bert-base-uncased"}},
        {"text_cfg": {"hf_model_name": "bert-base-uncased"}},
        {"custom_text": True},
        {"multimodal_cfg": {}},
    ],
)
def test_other_open_clip_options_are_left_to_open_clip(change):
    from indexer.models.clip_net import clip_net_config
    from indexer.models.random_weights import TINY_CLIP_CFG

    cfg = {**TINY_CLIP_CFG, **{k: v for k, v in change.items() if not isinstance(v, dict)}}
    for tower in ("vision_cfg", "text_cfg", "multimodal_cfg"):
        if tower in change:
            cfg[tower] = {**TINY_CLIP_CFG.get(tower, {}), **change[tower]}
    assert clip_net_config(TINY_CLIP_CFG, True) is not None
    assert clip_net_config(cfg, True) is None


def test_load_clip_builds_other_towers_with_open_clip(tmp_path):
    """A config clip_net doesn't compute (layer scale here) loads through open_clip, unchanged."""
    import json

    import open_clip
    from safetensors.torch import save_file

    from indexer.models.clip import load_clip
    from indexer.models.random_weights import TINY_CLIP_CFG

    cfg = {**TINY_CLIP_CFG, "vision_cfg": {**TINY_CLIP_CFG["vision_cfg"], "ls_init_value": 0.5}}
    torch.manual_seed(0)
    ref = open_clip.CLIP(**cfg).eval()
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file(ref.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    enc = load_clip(tmp_path, True, torch.device("cpu"), torch.float32)
    assert isinstance(enc.model, open_clip.CLIP)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(enc.encode_images(pixels), ref.encode_image(pixels))


def test_preprocess_config_is_open_clips_merge():
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    from indexer.models.clip import preprocess_cfg

    overlays = [None, {}, {"mean": [0.5, 0.5, 0.5], "std": None, "resize_mode": "squash",
                           "interpolation": "bilinear", "size": 336, "unknown": 1}]  # fmt: skip
    for overlay in overlays:
        want = merge_preprocess_dict(asdict(PreprocessCfg()), overlay or {})
        assert preprocess_cfg(overlay) == want, overlay


def test_grid_and_pooled_features_come_from_one_pass(tiny_model):
    enc = tiny_model.encoder
    pixels = torch.randn(2, 3, enc.image_size, enc.image_size)
    feats, grid = enc.encode_images_grid(pixels)
    assert torch.equal(feats, enc.encode_images(pixels))
    assert grid.shape == (2, (enc.image_size // 16) ** 2, 64)


def test_captioning_a_photo_never_imports_open_clip(tiny_model_dir):
    """A fresh process loads CLIP and encodes images and texts without `import open_clip`
    (its package imports timm, torchvision and transformers: seconds of a cold start) or
    torch._dynamo (~2 s; a normal_() init on the meta device imports it)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from indexer.models.clip import load_clip\n"
        f"enc = load_clip({str(tiny_model_dir / 'clip')!r}, True, torch.device('cpu'), "
        "torch.float32)\n"
        "x = torch.randn(1, 3, enc.image_size, enc.image_size)\n"
        "assert enc.encode_images(x).shape == (1, 32)\n"
        "assert enc.encode_images_grid(x)[1].shape[0] == 1\n"
        "assert enc.encode_texts(['a dog']).shape == (1, 32)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('open_clip', 'torch._dynamo'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout

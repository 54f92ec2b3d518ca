"""Model writers for tests and benchmarks: a tiny seeded random model, the full-size architecture
of a registry model with random weights, and the BPE tokenizers they need. Both write a normal
local model directory, so they load through exactly the code the real models use."""

from __future__ import annotations

import json
from pathlib import Path

from indexer.models.gpt2_tokenizer import GPT2Tokenizer
from indexer.models.model_dir import write_model_dir
from indexer.models.registry import REGISTRY

# A tiny CLIP: same code as ViT-B/32, a fraction of the size. 64 px so simple scenes stay legible.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_GPT2 = {"vocab_size": 512, "n_positions": 128, "n_embd": 64, "n_layer": 2, "n_head": 2}

# Words the tiny tokenizer learns merges for: COCO-style captions and the synthetic scenes.
_TINY_CORPUS = """a man riding a bike down a street. a woman holding an umbrella in the rain.
a dog sitting on a park bench. a cat lying on a bed. a red car parked on the street.
a plate of food with broccoli and rice. two people playing tennis on a court.
a group of people standing around a table. a bus driving down a city street.
a birthday cake with candles on a table. a train on the tracks near a station.
one two three red green blue yellow white black orange purple circle circles square squares
triangle triangles star stars cross crosses on a background with and of the left right top bottom.
"""


def write_tiny_model(out: Path, seed: int = 0, name: str | None = None) -> Path:
    """A tiny seeded random model in the local layout: tiny open_clip config, tiny GPT-2, a small
    BPE tokenizer. Loaded by `load_model` exactly like the real ones."""
    import open_clip
    import torch

    from indexer.models.clipcap import ClipCapConfig, ClipCapModel

    out = Path(out)
    torch.manual_seed(seed)
    clip = open_clip.CLIP(**{k: v for k, v in TINY_CLIP_CFG.items()})
    tok_dir = out / "tokenizer"
    train_bpe_tokenizer(tok_dir, _TINY_CORPUS.split("\n") * 4, TINY_GPT2["vocab_size"])
    cfg = ClipCapConfig(mapping="mlp", prefix_dim=32, prefix_length=4, gpt2=dict(TINY_GPT2))
    net = ClipCapModel(cfg)
    # Random weights love the 256 single-byte tokens, most of which decode to control characters
    # or broken UTF-8; damp them (lm_head is tied to wte) so smoke runs print word-piece nonsense.
    tok = GPT2Tokenizer(tok_dir)
    with torch.no_grad():
        for i in range(len(tok)):
            piece = tok.decode([i])
            if not piece.strip() or not piece.isprintable():
                net.gpt.transformer.wte.weight[i] *= 0.1
    return write_model_dir(
        out,
        name or f"tiny-{seed}",
        net,
        TINY_CLIP_CFG,
        clip.state_dict(),
        tok_dir,
        True,
        "tiny random model for tests (captions are nonsense)",
    )


def write_random_model(out: Path, arch: str = "clipcap-coco", seed: int = 0) -> Path:
    """Full-size architecture of a registry model with random weights, for benchmarks (FLOPs
    don't depend on the weights). The tokenizer is a synthetic BPE of GPT-2's vocabulary size."""
    import open_clip
    import torch

    from indexer.models.clipcap import ClipCapConfig, ClipCapModel

    entry = REGISTRY[arch]
    clip_name = {
        "timm/vit_base_patch32_clip_224.openai": "ViT-B-32-quickgelu",
        "timm/resnet50x4_clip.openai": "RN50x4",
    }[entry.clip_files[0].repo]
    torch.manual_seed(seed)
    clip_cfg = open_clip.get_model_config(clip_name)
    clip = open_clip.create_model(clip_name, pretrained=None)
    cfg = ClipCapConfig(**entry.clipcap)
    net = ClipCapModel(cfg)
    tok_dir = Path(out) / "tokenizer"
    synthetic_bpe_tokenizer(tok_dir, cfg.gpt2["vocab_size"], seed=seed)
    return write_model_dir(
        out,
        f"random-{arch}",
        net,
        clip_cfg,
        clip.state_dict(),
        tok_dir,
        entry.quick_gelu,
        f"{arch} architecture, random weights (benchmarks only)",
    )


def train_bpe_tokenizer(out: Path, texts: list[str], vocab_size: int) -> None:
    """Byte-level BPE (GPT-2's scheme) learned from texts; writes vocab.json + merges.txt."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # room for <|endoftext|>
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    _save_bpe(out, tok.get_vocab(), _merges_of(tok))


def synthetic_bpe_tokenizer(out: Path, vocab_size: int, seed: int = 0) -> None:
    """A valid byte-level BPE vocabulary of exactly vocab_size tokens built from random merges.
    Only for random-weight benchmarks, where the real GPT-2 files can't be downloaded."""
    import random

    from tokenizers import pre_tokenizers

    rng = random.Random(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tokens = list(alphabet)
    merges = []
    while len(vocab) < vocab_size - 1:
        a, b = rng.choice(tokens), rng.choice(tokens)
        if len(a) + len(b) > 8 or (a + b) in vocab:
            continue
        merges.append((a, b))
        vocab[a + b] = len(vocab)
        tokens.append(a + b)
    _save_bpe(out, vocab, merges)


def _merges_of(tok) -> list[tuple[str, str]]:
    data = json.loads(tok.to_str())
    return [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]
    ]


def _save_bpe(out: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = dict(vocab)
    vocab.setdefault("<|endoftext|>", len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

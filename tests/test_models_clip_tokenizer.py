"""CLIP's tokenizer without open_clip gives open_clip's token tensors exactly."""

from __future__ import annotations

import open_clip
import torch

from indexer.models.clip_tokenizer import ClipTokenizer, bpe_vocab_path

TEXTS = [
    "a dog on a park bench",
    "A DOG   on a\tPark\nBench.",
    "Café crème &amp;amp; ünïcode 🐶 — “quotes” 東京タワー",
    "it's, we'll, they'd: don't!! 3.14159 and 1,000,000",
    "<start_of_text> hello <end_of_text> world",
    "",
    "   ",
    "word " * 75,  # start + 75 + end = 77: fits exactly
    "word " * 76,  # one too many: truncated, the last id made end-of-text
    "café crème brûlée " * 40,  # far longer than the context
]


def test_token_tensors_equal_open_clips():
    ours = ClipTokenizer(bpe_vocab_path(), 77)
    want = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    got = ours(TEXTS)
    assert got.dtype == torch.long and got.shape == (len(TEXTS), 77)
    assert torch.equal(got, want)
    for text, row in zip(TEXTS, want, strict=True):
        ids = ours.ids(text)
        assert ids == row[: len(ids)].tolist() and not row[len(ids) :].any()


def test_a_shorter_context_truncates_like_open_clip():
    ours = ClipTokenizer(bpe_vocab_path(), 16)
    want = open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS)
    assert torch.equal(ours(TEXTS), want)

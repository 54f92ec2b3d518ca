"""CLIP's text tokenizer: open_clip's SimpleTokenizer (byte-level BPE, clean='lower') reproduced,
reading the BPE vocabulary file from open_clip's package folder without importing open_clip.

`import open_clip` costs seconds (its package imports its training and third-party tower modules);
a query or a caption needs only this file and ~100 lines. The NumPy query tower uses `ids`; the
torch encoder calls the tokenizer on a list of texts for the (B, context_length) tensor that
`open_clip.get_tokenizer(...)` returns. tests/test_search_text_encoder.py compares both with
open_clip's tokenizer.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import math
from pathlib import Path

_SPECIAL = ("<start_of_text>", "<end_of_text>")


def bpe_vocab_path() -> Path | None:
    """open_clip's bpe_simple_vocab_16e6.txt.gz, found without importing open_clip, or None."""
    spec = importlib.util.find_spec("open_clip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class ClipTokenizer:
    """open_clip's SimpleTokenizer with its default cleaning (ftfy, HTML unescape, whitespace,
    lower case) and truncation (the first context_length ids, the last one made end-of-text)."""

    def __init__(self, bpe_path: Path, context_length: int = 77):
        import regex

        merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        pairs = [tuple(m.split()) for m in merges]
        self.byte_encoder = _bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(p) for p in pairs]
        vocab += list(_SPECIAL)
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.ranks = {p: i for i, p in enumerate(pairs)}
        self.sot, self.eot = (self.encoder[t] for t in _SPECIAL)
        self.context_length = context_length
        self.pat = regex.compile(
            r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
            r"|[^\s\p{L}\p{N}]+",
            regex.IGNORECASE,
        )
        # Special tokens written in the text stay one token each, as in open_clip.
        self.cache: dict[str, str] = {t: t for t in _SPECIAL}

    def _bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
            best = min(pairs, key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """The BPE ids of text, without start/end tokens or truncation."""
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = " ".join(text.split()).lower()
        ids: list[int] = []
        for token in self.pat.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids += [self.encoder[t] for t in self._bpe(token).split(" ")]
        return ids

    def ids(self, text: str) -> list[int]:
        """start, text's ids, end; at most context_length of them, still ending at end-of-text."""
        ids = [self.sot, *self.encode(text), self.eot]
        if len(ids) > self.context_length:
            ids = ids[: self.context_length]
            ids[-1] = self.eot
        return ids

    def __call__(self, texts: list[str]):
        """(B, context_length) int64 tensor of `ids` padded with zeros, as open_clip returns."""
        import torch

        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.ids(text)
            out[i, : len(ids)] = torch.tensor(ids)
        return out

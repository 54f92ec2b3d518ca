"""GPT-2's byte-level BPE tokenizer, read from vocab.json + merges.txt with Hugging Face
`tokenizers` (Rust, ~0.07 s to import) instead of transformers' GPT2TokenizerFast (which pulls
in transformers itself). Same pipeline as GPT2TokenizerFast: BPE without dropout or word
affixes, ByteLevel pre-tokenizer without a prefix space, ByteLevel decoder, `<|endoftext|>` a
special token; tests/test_models_gpt2.py checks its ids and texts against GPT2TokenizerFast."""

from __future__ import annotations

from pathlib import Path

from indexer.errors import ModelFormatError

END_OF_TEXT = "<|endoftext|>"


class GPT2Tokenizer:
    """Text <-> GPT-2 token ids; no BOS/EOS added, nothing cleaned up on decode."""

    def __init__(self, tok_dir: Path):
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        vocab, merges = Path(tok_dir) / "vocab.json", Path(tok_dir) / "merges.txt"
        if not (vocab.is_file() and merges.is_file()):
            raise ModelFormatError(f"{tok_dir}: tokenizer needs vocab.json and merges.txt")
        try:
            bpe = models.BPE.from_file(str(vocab), str(merges))
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise ModelFormatError(f"{tok_dir}: unreadable tokenizer files ({e})") from None
        tok = Tokenizer(bpe)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        if tok.token_to_id(END_OF_TEXT) is not None:
            tok.add_special_tokens([AddedToken(END_OF_TEXT, special=True, normalized=False)])
        self._tok = tok

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)] if texts else []

    def decode(self, ids: list[int]) -> str:
        """The text of ids, special tokens kept, spaces exactly as encoded."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

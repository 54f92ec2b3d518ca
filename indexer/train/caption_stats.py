"""Caption statistics the metrics hide: length, vocabulary, distinct captions and n-grams.

A captioner that says "a man standing in a room." for every photo can still get a fair BLEU; mode
collapse and repetitive captions show up here instead. Words are coco-caption's tokens
(`indexer.train.ptb.tokenize`: lower-cased, punctuation dropped), the ones the metrics score.

distinct-n (Li et al. 2016): distinct n-grams / all n-grams over the whole set of captions; 1.0 =
no n-gram repeats anywhere, near 0 = the same few phrases over and over.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def distinct_ngrams(token_lists: Sequence[Sequence[str]], n: int) -> float:
    """distinct-n over all captions (0.0 when there is no n-gram at all)."""
    grams = [tuple(w[i : i + n]) for w in token_lists for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def caption_stats(captions: Sequence[str]) -> dict:
    """Length statistics (words), vocabulary size, distinct captions share, distinct-1/2, and the
    share of captions that end with "." (the decoder's stop: the rest were cut off)."""
    from indexer.train.ptb import tokenize

    words = [tokenize(c).split() for c in captions]
    lengths = [len(w) for w in words] or [0]
    n = len(captions)
    return {
        "captions": n,
        "length_mean": statistics.fmean(lengths),
        "length_median": statistics.median(lengths),
        "length_min": min(lengths),
        "length_max": max(lengths),
        "vocabulary": len({t for w in words for t in w}),
        # Distinct as the user sees them: after tokenising, so "A dog." and "a dog ." are one.
        "distinct_captions": len({" ".join(w) for w in words}) / n if n else 0.0,
        "distinct_1": distinct_ngrams(words, 1),
        "distinct_2": distinct_ngrams(words, 2),
        "ends_with_period": sum(c.rstrip().endswith(".") for c in captions) / n if n else 0.0,
    }

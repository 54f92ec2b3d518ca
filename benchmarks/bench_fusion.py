"""How should the three signals be fused? A simulation across collections of different character.

    python benchmarks/bench_fusion.py

No labelled photo collection can be downloaded here, so this simulates one: per query, 10 of 5,000
photos are relevant. Each signal scores photos on its own scale, the way the real ones do:
  image    cosine ~ 0.20 +- 0.03, relevant photos higher by `image_gap`
  caption  cosine ~ 0.55 +- 0.08, relevant photos higher by `caption_gap`
  keyword  BM25 only for captions sharing a query word (relevant: `kw_hit` of them; others 2%),
           heavy-tailed, and absent (no rank) for the rest
Collections differ in which signal is good (a weak captioner, queries with words no caption uses,
a strong CLIP). A fusion that needs no per-collection tuning should be near the best single
signal everywhere and beat it where signals complement each other. Reported: mean nDCG@10.
"""

from __future__ import annotations

import numpy as np

N, RELEVANT, QUERIES, K = 5000, 10, 300, 10

SCENARIOS = {
    # name: (image_gap, caption_gap, kw_hit)
    "balanced": (0.03, 0.08, 0.6),
    "weak captioner": (0.04, 0.02, 0.2),
    "query words not in captions": (0.03, 0.08, 0.05),
    "strong CLIP, noisy keywords": (0.06, 0.06, 0.3),
    "keywords decisive": (0.01, 0.03, 0.9),
}


def signals(rng, image_gap, caption_gap, kw_hit):
    rel = np.zeros(N, bool)
    rel[rng.choice(N, RELEVANT, replace=False)] = True
    image = rng.normal(0.20, 0.03, N) + image_gap * rel
    caption = rng.normal(0.55, 0.08, N) + caption_gap * rel
    hits = np.where(rel, rng.random(N) < kw_hit, rng.random(N) < 0.02)
    keyword = np.where(hits, rng.gamma(2.0, 1.5, N) + 1.5 * rel, np.nan)  # NaN: no match
    return rel, {"image": image, "caption": caption, "keyword": keyword}


def ranks(score):
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    r = np.empty(N)
    r[order] = np.arange(1, N + 1)
    return np.where(np.isnan(score), np.inf, r)


def fuse(sig, method):
    if method in ("image", "caption", "keyword"):
        return np.nan_to_num(sig[method], nan=-np.inf)
    if method == "rrf":  # what search/query.py does
        return sum(1.0 / (60 + ranks(s)) for s in sig.values())
    if method == "raw sum":
        return sum(np.nan_to_num(s, nan=0.0) for s in sig.values())
    if method == "min-max sum":
        out = 0
        for s in sig.values():
            lo, hi = np.nanmin(s), np.nanmax(s)
            out = out + np.nan_to_num((s - lo) / (hi - lo + 1e-9), nan=0.0)
        return out
    if method == "z-score sum":
        out = 0
        for s in sig.values():
            out = out + np.nan_to_num((s - np.nanmean(s)) / (np.nanstd(s) + 1e-9), nan=0.0)
        return out
    raise ValueError(method)


def ndcg(score, rel):
    top = np.argsort(-score, kind="stable")[:K]
    dcg = sum(1 / np.log2(i + 2) for i, d in enumerate(top) if rel[d])
    ideal = sum(1 / np.log2(i + 2) for i in range(min(K, rel.sum())))
    return dcg / ideal


def main():
    methods = ["image", "caption", "keyword", "raw sum", "min-max sum", "z-score sum", "rrf"]
    print("| collection | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    worst_gap = {m: 0.0 for m in methods}
    for name, params in SCENARIOS.items():
        rng = np.random.default_rng(0)
        scores = {m: [] for m in methods}
        for _ in range(QUERIES):
            rel, sig = signals(rng, *params)
            for m in methods:
                scores[m].append(ndcg(fuse(sig, m), rel))
        means = {m: float(np.mean(v)) for m, v in scores.items()}
        best = max(means.values())
        for m in methods:
            worst_gap[m] = max(worst_gap[m], best - means[m])
        print(f"| {name} | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " |")
    print("| worst gap to the best | " + " | ".join(f"{worst_gap[m]:.3f}" for m in methods) + " |")


if __name__ == "__main__":
    main()

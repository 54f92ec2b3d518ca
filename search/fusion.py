"""Rank fusion: ranked lists of results, one per signal, into one score per result.

Weighted reciprocal-rank fusion (Cormack et al., 2009): a result's score is the sum over the
signals whose list holds it of weight / (k + rank). It ignores the raw score scales, which differ
wildly between signals (image-text cosines sit around 0.2-0.35, text-text cosines around 0.5-0.9,
BM25 is unbounded and depends on caption length and collection size). k and the weights are
settings (Settings.fusion_k, Settings.fusion_weights); `imgcap eval --retrieval --sweep` calls
`fuse` on stored ranked lists to compare values without searching again.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from indexer.errors import UsageError


def fuse(
    ranked: Mapping[str, Sequence[Hashable]],
    k: int,
    weights: Mapping[str, float] | None = None,
) -> dict[Hashable, float]:
    """Weighted reciprocal-rank fusion of one ranked list of result ids per signal.

    `ranked[signal]` holds result ids best first (rank 1 = first; an id listed twice keeps its
    first rank). A result's score is sum over signals of weights[signal] / (k + rank), divided by
    the most any result could get, sum of the given signals' weights / (k + 1): 1.0 means "first in
    every signal", including signals whose list came back empty. A signal missing from `weights`
    weighs 1.0; one weighing 0 is left out, so results only it found are not returned.

    Returns {result id: score}, in the order the results were first met (signals in `ranked`
    order); sorting and tie-breaking are the caller's. With k=60 and every weight 1.0 the scores
    are, bit for bit, the unweighted fusion's.
    """
    if k < 1:
        raise UsageError(f"the fusion's k must be at least 1, not {k}")
    weight = {s: 1.0 if weights is None else weights.get(s, 1.0) for s in ranked}
    if any(not w >= 0 for w in weight.values()):  # `not >=` also catches NaN
        raise UsageError(f"fusion weights must be numbers >= 0: {weight}")
    total = sum(w for w in weight.values() if w > 0)
    if total == 0:
        raise UsageError(
            f"the fusion weights give 0 to every signal this search uses ({', '.join(ranked)}):"
            " set IMGCAP_FUSION_WEIGHTS so that one of them weighs more than 0"
        )
    fused: dict[Hashable, float] = {}
    for signal, ids in ranked.items():
        w = weight[signal]
        if w == 0:
            continue
        seen: set[Hashable] = set()
        for r, rid in enumerate(ids, start=1):
            if rid in seen:
                continue
            seen.add(rid)
            fused[rid] = fused.get(rid, 0.0) + w / (k + r)
    top = total / (k + 1)
    return {rid: v / top for rid, v in fused.items()}

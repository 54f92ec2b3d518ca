"""`imgcap eval --compare A B`: two models on the same images, differences with bootstrap CIs.

Both models caption the same split of the same dataset (`evaluate`), and every metric is reported
for A, for B, and as B - A with a paired bootstrap confidence interval over images: `bootstrap`
resamples of the images (with replacement, numpy's PCG64 seeded with `seed`, so a rerun prints
the same interval), each scored for both models on the same resample; the interval is the 2.5th
and 97.5th percentile of the resampled differences (95 %).

How a resample is scored: BLEU-1..4 as corpus BLEU from the resampled images' summed n-gram
counts (`metrics.bleu_counts`), exactly as coco-caption scores a corpus; every other metric as the
mean of its per-image scores (CIDEr-D's document frequencies stay those of the full split; for
METEOR, whose corpus score is not a mean over images, the interval is over per-image scores).

Only images both models captioned are compared; when one model failed on some, both are scored
again on the shared images, so A and B always see the same set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from indexer.atomic_file import write_atomic
from indexer.config import Settings
from indexer.errors import UsageError

CONFIDENCE = 0.95


@dataclass
class MetricDiff:
    name: str
    a: float
    b: float
    diff: float  # b - a
    low: float  # the bootstrap interval of b - a
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


@dataclass
class Comparison:
    models: tuple[str, str]  # model names (the specs'), A then B
    split: str
    n_images: int
    metrics: list[MetricDiff]
    caption_stats: tuple[dict, dict]  # per model, indexer/train/caption_stats.py
    unavailable: dict[str, str]
    bootstrap: int
    seed: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "models": list(self.models),
            "split": self.split,
            "n_images": self.n_images,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": CONFIDENCE,
            "metrics": {
                m.name: {
                    "a": m.a,
                    "b": m.b,
                    "diff": m.diff,
                    "ci": [m.low, m.high],
                    "significant": m.significant,
                }
                for m in self.metrics
            },  # fmt: skip
            "caption_stats": {"a": self.caption_stats[0], "b": self.caption_stats[1]},
            "unavailable": self.unavailable,
            "warnings": self.warnings,
            "problems": self.problems,
        }


def compare_models(
    data: str | Path,
    settings: Settings,
    model_a: str,
    model_b: str,
    split: str = "test",
    bootstrap: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] | None = None,
) -> Comparison:
    """Caption DATA's split with both models and compare them (see the module docstring)."""
    from indexer.train.caption_stats import caption_stats
    from indexer.train.evaluate import evaluate
    from indexer.train.metrics import ALL_METRICS, score_captions

    if bootstrap < 1:
        raise UsageError("--bootstrap must be at least 1")
    wanted = tuple(metrics or ALL_METRICS)
    ra = evaluate(data, dataclasses.replace(settings, model=model_a), split, metrics=wanted)
    rb = evaluate(data, dataclasses.replace(settings, model=model_b), split, metrics=wanted)
    a_rows = {r["image_id"]: r for r in ra.images}
    b_rows = {r["image_id"]: r for r in rb.images}
    ids = [i for i in a_rows if i in b_rows]
    if not ids:
        raise UsageError("the two models captioned no image in common")
    refs = {i: a_rows[i]["references"] for i in ids}
    problems = [f"A ({ra.model}): {p}" for p in ra.problems]
    problems += [f"B ({rb.model}): {p}" for p in rb.problems]
    reports = []
    for result, rows in ((ra, a_rows), (rb, b_rows)):
        if len(rows) == len(ids):
            reports.append((result.scores, {i: rows[i]["scores"] for i in ids}))
        else:  # this model captioned images the other could not: score the shared ones again
            report = score_captions({i: rows[i]["caption"] for i in ids}, refs, wanted)
            reports.append((report.scores, report.per_image))
    unavailable = {**ra.unavailable, **rb.unavailable}
    diffs = _bootstrap(ids, a_rows, b_rows, refs, reports, bootstrap, seed)
    return Comparison(
        models=(ra.model or model_a, rb.model or model_b),
        split=split,
        n_images=len(ids),
        metrics=diffs,
        caption_stats=(
            caption_stats([a_rows[i]["caption"] for i in ids]),
            caption_stats([b_rows[i]["caption"] for i in ids]),
        ),
        unavailable=unavailable,
        bootstrap=bootstrap,
        seed=seed,
        problems=problems,
        warnings=list(dict.fromkeys(ra.warnings + rb.warnings)),
    )


def _bootstrap(ids, a_rows, b_rows, refs, reports, n_boot: int, seed: int) -> list[MetricDiff]:
    import numpy as np

    from indexer.train.metrics import BLEU_NAMES, bleu_counts
    from indexer.train.ptb import tokenize

    n = len(ids)
    rng = np.random.Generator(np.random.PCG64(seed))
    # weights[r, i] = how often image i is drawn in resample r: every statistic below is a
    # weighted sum over images, so one matrix product scores all resamples.
    draws = rng.integers(0, n, size=(n_boot, n))
    weights = np.zeros((n_boot, n))
    np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)

    (scores_a, per_a), (scores_b, per_b) = reports
    out: list[MetricDiff] = []
    tok_refs = [[tokenize(r) for r in refs[i]] for i in ids]
    bleu_boot = {}
    if any(scores_a.get(name) is not None for name in BLEU_NAMES):
        for side, rows in (("a", a_rows), ("b", b_rows)):
            counts = bleu_counts([tokenize(rows[i]["caption"]) for i in ids], tok_refs)
            stats = np.array([[*c, *g, t, r] for c, g, t, r in counts], dtype=float)  # (n, 10)
            bleu_boot[side] = _bleu_vectorised(weights @ stats)  # (n_boot, 4)
    lo_q, hi_q = (1 - CONFIDENCE) / 2 * 100, (1 + CONFIDENCE) / 2 * 100
    for name, a in scores_a.items():
        b = scores_b.get(name)
        if a is None or b is None:
            continue
        if name in BLEU_NAMES:
            k = BLEU_NAMES.index(name)
            resampled = bleu_boot["b"][:, k] - bleu_boot["a"][:, k]
        else:
            per_image = np.array([per_b[i][name] - per_a[i][name] for i in ids])
            resampled = weights @ per_image / n
        low, high = np.percentile(resampled, [lo_q, hi_q])
        out.append(MetricDiff(name, float(a), float(b), float(b - a), float(low), float(high)))
    return out


def _bleu_vectorised(sums):
    """metrics._bleu_from_counts over rows of summed counts (R, 10) -> BLEU-1..4 (R, 4)."""
    import numpy as np

    small, tiny = 1e-9, 1e-15  # bleu_scorer's constants, as metrics.py
    correct, guess, test_len, ref_len = sums[:, :4], sums[:, 4:8], sums[:, 8], sums[:, 9]
    product = np.cumprod((correct + tiny) / (guess + small), axis=1)
    scores = product ** (1.0 / np.arange(1, 5))
    ratio = (test_len + tiny) / (ref_len + small)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / np.minimum(ratio, 1)), 1.0)
    return scores * penalty[:, None]


def write_comparison(result: Comparison, out: str | Path) -> None:
    """The comparison as JSON (what --json prints), written atomically."""
    import json

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))

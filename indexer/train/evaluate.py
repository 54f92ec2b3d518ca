"""`imgcap eval`: caption a dataset's images (or read captions made elsewhere) and score them.

Scores are the coco-caption definitions (indexer/train/metrics.py): BLEU-1..4, METEOR, ROUGE-L,
CIDEr-D, SPICE, each candidate against ALL the reference captions of its image. METEOR and SPICE
need Java; when it is missing they are listed as unavailable with the reason, the others still
count.

Captions made elsewhere come in the COCO results format, `[{"image_id": ..., "caption": ...}]`,
or as the results file this module writes (its "images" list); image ids are matched as strings
against the dataset's ids (COCO ids, Karpathy cocoid/imgid, CSV image_id or path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from indexer.atomic_file import write_atomic
from indexer.config import Settings
from indexer.errors import UsageError


@dataclass
class EvalResult:
    model: str | None  # None when the captions came from a file
    split: str
    scores: dict[str, float | None]  # coco-caption scale (0-1; CIDEr-D 0-10)
    unavailable: dict[str, str]  # metric -> why it did not run
    images: list[dict]  # per image: image_id, path, caption, references, scores
    problems: list[str] = field(default_factory=list)  # skipped rows, unreadable images, ...
    n_images: int = 0
    # Scored images whose dataset gives them no split (a CSV without a split column, a folder
    # without train/val/test): they count in every split, which `warnings` says.
    unsplit_images: int = 0
    warnings: list[str] = field(default_factory=list)
    # What the metrics hide (mode collapse, cut-off captions): length statistics, vocabulary,
    # share of distinct captions, distinct-1/2 of the scored captions
    # (indexer/train/caption_stats.py).
    caption_stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "split": self.split,
            "n_images": self.n_images,
            "unsplit_images": self.unsplit_images,
            "warnings": self.warnings,
            "scores": self.scores,
            "caption_stats": self.caption_stats,
            "unavailable": self.unavailable,
            "problems": self.problems,
            "images": self.images,
        }


def eval_examples(data: str | Path, split: str):
    """The examples of one split (formats without splits: all), and the dataset's problems."""
    from indexer.train.datasets import load_dataset

    ds = load_dataset(data)
    examples = ds.split(split)
    if not examples:
        splits = sorted({e.split for e in ds.examples})
        raise UsageError(
            f"{data}: no examples in split {split!r}"
            + (f" (splits found: {', '.join(splits)})" if splits else "")
        )
    return examples, [str(p) for p in ds.problems]


def split_warning(data: str | Path, split: str, scored, n_unsplit: int) -> str | None:
    """The warning for scored images that have no split (they count in every split), or None."""
    if not n_unsplit:
        return None
    if n_unsplit == len(scored):
        return (
            f"{data} has no splits (e.g. no split column), so all {n_unsplit} images are "
            f"scored, not only split {split!r}"
        )
    return f"{n_unsplit} images of {data} have no split and are scored as part of {split!r}"


def read_captions_file(path: str | Path) -> dict[str, str]:
    """image id (str) -> caption, from a COCO results list or our own results file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{p}: cannot read captions JSON ({e})") from None
    rows = data.get("images") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise UsageError(f'{p}: expected a list of {{"image_id": ..., "caption": ...}}')
    out: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "image_id" not in row or row.get("caption") is None:
            raise UsageError(f"{p}: entry {i} has no image_id or caption")
        out.setdefault(str(row["image_id"]), str(row["caption"]))  # first caption per image wins
    return out


def evaluate(
    data: str | Path,
    settings: Settings,
    split: str = "test",
    captions_file: str | Path | None = None,
    metrics: tuple[str, ...] | None = None,
) -> EvalResult:
    """Caption (with settings.model, beams, batch_size) or read the captions, then score them."""
    from indexer.train.metrics import ALL_METRICS, score_captions

    examples, problems = eval_examples(data, split)
    by_id = {e.image_id: e for e in examples}
    unsplit = {e.image_id for e in examples if not e.split}
    model_name: str | None = None
    if captions_file is not None:
        candidates = read_captions_file(captions_file)
        unknown = [i for i in candidates if i not in by_id]
        if unknown:
            problems.append(
                f"{captions_file}: {len(unknown)} caption(s) for images not in split "
                f"{split!r} of {data}, ignored (e.g. image_id {unknown[0]})"
            )
        candidates = {i: c for i, c in candidates.items() if i in by_id}
        if len(candidates) < len(by_id):
            problems.append(
                f"{len(by_id) - len(candidates)} image(s) of split {split!r} have no caption "
                "in the file and are not scored"
            )
    else:
        candidates, failed, model_name = _caption(examples, settings)
        problems += [f"{e.image_path}: {reason}" for e, reason in failed]
    if not candidates:
        raise UsageError("no captions to score")
    report = score_captions(
        candidates, {i: by_id[i].captions for i in candidates}, metrics or ALL_METRICS
    )
    n_unsplit = sum(1 for i in candidates if i in unsplit)
    warning = split_warning(data, split, candidates, n_unsplit)
    images = [
        {
            "image_id": i,
            "path": str(by_id[i].image_path),
            "caption": caption,
            "references": list(by_id[i].captions),
            "scores": report.per_image.get(i, {}),
        }
        for i, caption in candidates.items()
    ]
    from indexer.train.caption_stats import caption_stats

    return EvalResult(
        caption_stats=caption_stats(list(candidates.values())),
        model=model_name,
        split=split,
        scores=report.scores,
        unavailable=report.unavailable,
        images=images,
        problems=problems,
        n_images=report.n_images,
        unsplit_images=n_unsplit,
        warnings=[warning] if warning else [],
    )


def _caption(examples, settings: Settings):
    """Caption every example's image in batches; (captions by image id, failures, model name)."""
    from indexer.models.loading import resolve_model_dir
    from indexer.models.model_dir import read_spec
    from indexer.run.caption_files import caption_files

    by_path: dict[Path, list] = {}
    for e in examples:
        by_path.setdefault(Path(e.image_path), []).append(e)
    captions: dict[str, str] = {}
    failed: list[tuple] = []

    def emit(path: Path, text: str | None, error: str | None) -> None:
        for e in by_path[path]:
            if error is not None:
                failed.append((e, error))
            else:
                captions[e.image_id] = text or ""

    caption_files(list(by_path), settings, emit)
    name = read_spec(resolve_model_dir(settings.model, settings, download=False))["name"]
    return (
        {e.image_id: captions[e.image_id] for e in examples if e.image_id in captions},
        failed,
        name,
    )


def write_results(result: EvalResult, out: str | Path) -> None:
    """Scores and per-image captions as JSON, written atomically."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))

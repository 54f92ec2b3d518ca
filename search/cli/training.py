"""`imgcap train` and `imgcap eval`: fine-tune a captioner and score captions. Parse options, call
one library function, print through search/cli/output.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from indexer.config import Settings
from indexer.errors import UsageError
from search.cli import output
from search.cli.options import (
    BatchOpt,
    BeamsOpt,
    DeviceOpt,
    JsonDocOpt,
    ModelOpt,
    OfflineOpt,
    PrecisionOpt,
    ResizeOpt,
)
from search.cli.output import err
from search.cli.progress import TrainProgress

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Captioned images: COCO captions JSON, Karpathy split JSON, CSV of path,caption, "
        "or a folder of photos with .txt captions.",
        show_default=False,
    ),
]

# SCST (indexer/train/scst.py): after cross-entropy, fine-tune on the CIDEr-D of sampled captions.
ScstOpt = Annotated[
    bool,
    typer.Option(
        "--scst",
        help="Self-critical sequence training: fine-tune --from's cross-entropy model on the "
        "CIDEr-D of captions it samples.",
    ),
]
RewardOpt = Annotated[str, typer.Option("--reward", help="SCST reward: cider-d.")]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=2, help="SCST: captions sampled per image.")
]
TopKOpt = Annotated[
    int, typer.Option("--top-k", min=0, help="SCST: sample among the k likeliest tokens (0: all).")
]

CompareOpt = Annotated[
    tuple[str, str] | None,
    typer.Option(
        "--compare",
        metavar="A B",
        help="Score two models (names or directories) on the same split: each one's scores, "
        "B - A and a bootstrap 95% interval over images.",
        show_default=False,
    ),
]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", min=1, help="--compare: bootstrap resamples of the images.")
]
EvalSeedOpt = Annotated[int, typer.Option("--seed", help="--compare: bootstrap random seed.")]


def train(
    data: DataArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", file_okay=False, help="Run folder; becomes the model directory."
        ),
    ],
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start from this model (registry name or directory): its GPT-2, mapper, CLIP "
            "and tokenizer. Default: GPT-2 small from the hub and a new mapper.",
        ),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping", help="mlp or transformer (default: the base model's; a change = new)."
        ),
    ] = None,
    prefix_only: Annotated[
        bool, typer.Option("--prefix-only", help="Freeze GPT-2; train only the mapping network.")
    ] = False,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="clipcap, show-and-tell (LSTM from CLIP's feature) or show-attend-tell (LSTM "
            "attending over CLIP's grid). Default: the --from model's (clipcap from scratch).",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 10,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Captions per optimiser step.")
    ] = 40,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (AdamW).")] = 2e-5,
    warmup: Annotated[
        int | None,
        typer.Option("--warmup", min=0, help="Warm-up steps (default: min(5000, 10% of steps))."),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option("--val", help="Validation data (default: DATA's val split, if any)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a model already in OUT (even --from's own), or start over a run there "
            "with other settings.",
        ),
    ] = False,
    scst: ScstOpt = False,
    reward: RewardOpt = "cider-d",
    samples: SamplesOpt = 5,
    top_k: TopKOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
    resize: ResizeOpt = None,
) -> None:
    """Fine-tune a captioner on your captioned photos (ClipCap recipe), keeping the best epoch.

    Running the same command again after an interruption resumes the run. The result loads
    everywhere with --model OUT. --arch show-and-tell / show-attend-tell train an LSTM captioner
    on CLIP instead of ClipCap (same data, cache, resume and SCST).
    """
    from indexer.train.loop import train as run_train
    from indexer.train.recipe import TrainConfig

    settings = Settings.from_env(
        device=device, precision=precision, offline=offline or None, resize=resize
    )
    cfg = TrainConfig(
        data=data,
        out=out,
        base=from_model,
        mapping=mapping,
        arch=arch,
        prefix_only=prefix_only,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        val=val,
        seed=seed,
        force=force,
        scst=scst,
        reward=reward,
        samples=samples,
        top_k=top_k,
    )
    with TrainProgress() as show:
        result = run_train(cfg, settings, show)
    if json_out:
        print(json.dumps(output.train_summary(result), ensure_ascii=False))
        return
    output.print_train_summary(result)


def eval_(
    data: DataArg,
    model: ModelOpt = None,
    split: Annotated[
        str, typer.Option("--split", help="Split to score (formats without splits: all).")
    ] = "test",
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    captions: Annotated[
        Path | None,
        typer.Option(
            "--captions",
            exists=True,
            dir_okay=False,
            help='Score these captions instead ([{"image_id": ..., "caption": ...}]).',
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="Write scores + per-image captions."),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
    resize: ResizeOpt = None,
    compare: CompareOpt = None,
    bootstrap: BootstrapOpt = 1000,
    seed: EvalSeedOpt = 0,
) -> None:
    """Score captions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and SPICE (coco-caption).

    Captions the images of DATA's split with the model, or scores --captions made elsewhere.
    Images go to CLIP as open_clip's own transform makes them (--resize exact), so scores are
    comparable with published ones.
    METEOR and SPICE need Java; without it they are listed as unavailable. Caption length,
    vocabulary and distinct-caption statistics are printed too (mode collapse hides in metrics).
    """
    from indexer.train.evaluate import evaluate, write_results

    if compare is not None:
        _compare(data, compare, split, beams, batch_size, device, precision, offline, resize,
                 bootstrap, seed, model, captions, out, json_out)  # fmt: skip
        return

    settings = Settings.from_env(
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
        resize=resize or "exact",  # published numbers were measured on the reference pixels
    )
    result = evaluate(data, settings, split=split, captions_file=captions)
    for warning in result.warnings:  # also with --json: stderr never mixes into the document
        err(f"Warning: {warning}")
    if out is not None:
        write_results(result, out)
    if json_out:
        summary = {k: v for k, v in result.to_dict().items() if k != "images"}
        print(json.dumps(summary, ensure_ascii=False))
        return
    output.print_eval(result)
    if out is not None:
        typer.echo(f"results written to {out}")


def _compare(data, models, split, beams, batch_size, device, precision, offline, resize,
             bootstrap, seed, model, captions, out, json_out) -> None:  # fmt: skip
    """`imgcap eval --compare A B`."""
    from indexer.train.compare import compare_models, write_comparison

    refused = "--compare takes the two models to score: "
    if model is not None:
        raise UsageError(refused + "drop --model")
    if captions is not None:
        raise UsageError(refused + "--captions scores a single set of captions")
    settings = Settings.from_env(
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
        resize=resize or "exact",
    )
    result = compare_models(
        data, settings, models[0], models[1], split=split, bootstrap=bootstrap, seed=seed
    )
    for warning in result.warnings:
        err(f"Warning: {warning}")
    if out is not None:
        write_comparison(result, out)
    if json_out:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    output.print_compare(result)
    if out is not None:
        typer.echo(f"results written to {out}")

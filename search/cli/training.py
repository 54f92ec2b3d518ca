"""`imgcap train` and `imgcap eval`: fine-tune a captioner, score captions, and (`eval --retrieval`)
score search. Parse options, call one library function, print through search/cli/output.py."""

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
    services,
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
EvalDataArg = Annotated[
    Path,
    typer.Argument(
        help="Captioned images: COCO captions JSON, Karpathy split JSON, CSV of path,caption, "
        "or a folder of photos with .txt captions. With --retrieval also a query file: CSV or "
        "JSON lines of query, relevant paths (none: no answer), tags; PhotoBench query JSON "
        "(the file's folder is the collection searched).",
        show_default=False,
    ),
]

# `imgcap eval --retrieval` (search/retrieval_eval.py): search quality instead of captions.
RetrievalOpt = Annotated[
    bool,
    typer.Option(
        "--retrieval",
        help="Score search instead of captions: recall@1/5/10, MRR, nDCG@10 of each signal and "
        "of the fusion, each query run through `imgcap search`'s own code.",
    ),
]
EvalDbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="FILE",
        dir_okay=False,
        help="--retrieval: search this database (DATA's photos are indexed into it unless it "
        "holds every relevant one). Default: OUT.db next to --out (kept for the next run), "
        "else a temporary one.",
    ),
]
MinScoreOpt = Annotated[
    float | None,
    typer.Option(
        "--min-score",
        help="--retrieval: also search with this cutoff: how often queries with no answer "
        "correctly get nothing, and how often it drops a found answer.",
    ),
]
SweepOpt = Annotated[
    bool,
    typer.Option(
        "--sweep",
        help="--retrieval: re-fuse the signals over a grid of IMGCAP_FUSION_K and "
        "IMGCAP_FUSION_WEIGHTS values; each one's scores and the best.",
    ),
]
DepthOpt = Annotated[
    int,
    typer.Option("--depth", min=10, help="--retrieval: results kept per query (MRR@depth)."),
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
    ctx: typer.Context,
    data: EvalDataArg,
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
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Write scores + per-image captions (--retrieval: per query, JSON lines: its "
            "relevant photos, each mode's ranked paths and their ranks).",
        ),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
    resize: ResizeOpt = None,
    compare: CompareOpt = None,
    bootstrap: BootstrapOpt = 1000,
    seed: EvalSeedOpt = 0,
    retrieval: RetrievalOpt = False,
    db: EvalDbOpt = None,
    min_score: MinScoreOpt = None,
    sweep: SweepOpt = False,
    depth: DepthOpt = 100,
) -> None:
    """Score captions with BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and SPICE (coco-caption), or
    (--retrieval) search with recall@k, MRR and nDCG@10.

    Captions the images of DATA's split with the model, or scores --captions made elsewhere.
    Images go to CLIP as open_clip's own transform makes them (--resize exact), so scores are
    comparable with published ones.
    METEOR and SPICE need Java; without it they are listed as unavailable. Caption length,
    vocabulary and distinct-caption statistics are printed too (mode collapse hides in metrics).

    --retrieval: each query (a caption of DATA's split, or a line of a query file) runs through
    `imgcap search` in each mode; DATA's photos are indexed first unless --db holds them.
    Example: imgcap eval --retrieval dataset_flickr30k.json --split test --sweep
    """
    from indexer.train.evaluate import evaluate, write_results

    if retrieval:
        if compare is not None or captions is not None:
            raise UsageError("--retrieval scores search: drop --compare and --captions")
        settings = Settings.from_env(
            device=device, offline=offline or None, resize=resize or "exact"
        )  # exact: the pixels published retrieval figures were measured on
        _retrieval(ctx, data, settings, model, split, db, out, min_score, sweep, depth, json_out)
        return
    if db is not None or min_score is not None or sweep:
        raise UsageError("--db, --min-score and --sweep go with --retrieval")
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


def _retrieval(ctx, data, settings, model, split, db, out, min_score, sweep, depth,
               json_out) -> None:  # fmt: skip
    """`imgcap eval --retrieval`: the database chosen here, the work in search/retrieval_eval.py."""
    import dataclasses
    import tempfile

    from search.retrieval_eval import (
        ensure_indexed,
        evaluate_retrieval,
        load_queries,
        write_per_query,
    )

    qs = load_queries(data, split)
    # Never the person's own library unless named: a fresh database, kept next to --out so that
    # a second run (another --min-score, --sweep) searches it without indexing again.
    with tempfile.TemporaryDirectory(prefix="imgcap-eval-") as tmp:
        kept = out.with_name(out.name + ".db") if out is not None else None  # never OUT itself
        db_path = db or kept or Path(tmp) / "eval.db"
        settings = dataclasses.replace(settings, db_path=db_path, model=model or settings.model)
        indexed = ensure_indexed(qs, settings)
        if indexed is not None:
            err(f"indexed {indexed['new']} new photos into {db_path} ({indexed['seconds']} s)")
        report = evaluate_retrieval(
            qs,
            settings,
            model=model,
            depth=depth,
            min_score=min_score,
            sweep=sweep,
            encoder_loader=services(ctx).encoder_loader,
            on_query=_every_1000,
        )
    report.indexed = indexed
    for problem in report.problems[:10]:
        err(f"skipped: {problem}")
    if out is not None:
        write_per_query(report, out)
    if json_out:
        output.print_json(report.to_dict())
        return
    output.print_retrieval(report)
    if out is not None:
        typer.echo(f"per-query results written to {out}")


def _every_1000(n: int, total: int) -> None:
    """A line on stderr per 1,000 queries: COCO 5k is 25,000 of them, four searches each."""
    if n % 1000 == 0:
        output.echo(f"searched {n} of {total} queries", err=True)

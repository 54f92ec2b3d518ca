"""`imgcap index`, `imgcap failures` and `imgcap status`: build the index, list the files it could
not read, report on the database. Parse options, call one library function, print."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from indexer.config import Settings
from indexer.errors import ImgcapError
from search.cli import output
from search.cli.options import (
    BatchOpt,
    BeamsOpt,
    DbOpt,
    DeviceOpt,
    JsonDocOpt,
    JsonOpt,
    MaxMpOpt,
    ModelOpt,
    OfflineOpt,
    PrecisionOpt,
    ResizeOpt,
    database_model,
    db_path,
)
from search.cli.output import err
from search.cli.progress import IndexProgress

FAILURE_COLUMNS = ("path", "reason", "size", "mtime_ns", "failed_at", "model")


def index(
    paths: Annotated[
        # str, not Path: Path("") is ".", and an empty argument must be refused, not indexed
        list[str], typer.Argument(help="Folders (or files) to index.", show_default=False)
    ],
    db: DbOpt = None,
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Decode processes (0 = one per CPU core).")
    ] = 0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what would be done, counted as a run counts it; write nothing.",
        ),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try again the files that failed before.")
    ] = False,
    include_hidden: Annotated[
        bool, typer.Option("--include-hidden", help="Also index hidden files and folders.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Skip files and folders matching GLOB (repeatable), besides @eaDir, .git, "
            "node_modules, .thumbnails, #recycle, $RECYCLE.BIN and .imgcap.",
            show_default=False,
        ),
    ] = None,
    max_megapixels: MaxMpOpt = 0.0,
    resize: ResizeOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(
            "--engine",
            help="local: worker processes on this machine. ray: Ray Data across a Ray cluster"
            " (pip install 'imgcap[ray]').",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="--engine ray: 'auto' or host:port of a running Ray cluster (default: start one"
            " on this machine).",
            show_default=False,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float,
        typer.Option(
            "--gpus-per-worker",
            min=0,
            help="--engine ray: GPUs per model actor, e.g. 0.5 for two per GPU (0 = one each"
            " when the cluster has GPUs).",
        ),
    ] = 0.0,
    video_gap: Annotated[
        float | None,
        typer.Option(
            "--video-gap",
            metavar="SECONDS",
            min=0.1,
            help="Videos: at most one keyframe every SECONDS (default 5; for videos not yet"
            " indexed).",
            show_default=False,
        ),
    ] = None,
    video_max_frames: Annotated[
        int | None,
        typer.Option(
            "--video-max-frames",
            metavar="N",
            min=1,
            help="Videos: at most N keyframes per video; longer ones get a wider gap (default 60).",
            show_default=False,
        ),
    ] = None,
    ocr: Annotated[
        bool | None,
        typer.Option(
            "--ocr/--no-ocr",
            help="Read the text in photos and video keyframes, so search finds them by it"
            " (pip install 'imgcap[ocr]'; off by default, or IMGCAP_OCR=1). Each picture is"
            " read once; a library indexed before is read on the next run with --ocr.",
            show_default=False,
        ),
    ] = None,
    captions: Annotated[
        Literal["auto", "now", "after", "later"],
        typer.Option(
            "--captions",
            help="When photos are captioned. now: with their image vectors, in one pass. after:"
            " every photo searchable by its image vector first, then captioned from the stored"
            " vectors in the same run (no photo decoded again). later: image vectors only;"
            " `imgcap caption-pending` (here or on another machine) or the next run captions"
            " them. auto: now on a CUDA GPU, after elsewhere.",
        ),
    ] = "auto",
    db_here: Annotated[
        bool,
        typer.Option(
            "--db-here",
            help="Keep the database inside the folder (FOLDER/.imgcap/imgcap.db), so it travels"
            " with it; commands run in or below the folder find it.",
        ),
    ] = False,
) -> None:
    """Caption every photo under PATHS and make it searchable, incrementally.

    Unchanged files are skipped without being opened; moved, renamed and duplicated files reuse
    their results; files gone from under PATHS leave the index. Bad files are reported (see
    `imgcap failures`) and never stop the run.

    Model: --model, else $IMGCAP_MODEL, else the model this database already holds (from where
    its last run loaded it), else clipcap-coco.

    Exit status: 0 when the run completed (even with bad files), 130 when interrupted (committed
    batches stay; run again to resume), 4 when another run holds the database.
    """
    from indexer.models.loading import loading_steps
    from indexer.run.pipeline import index_paths
    from indexer.run.roots import db_here as db_in_folder

    if db_here:
        db = db_in_folder(paths, db)
    settings = Settings.from_env(
        db_path=db,
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        workers=workers,
        include_hidden=include_hidden or None,
        exclude=tuple(exclude) if exclude else None,
        max_megapixels=max_megapixels or None,
        resize=resize,
        offline=offline or None,
        engine=engine,
        ray_address=ray_address,
        gpus_per_worker=gpus_per_worker or None,
        video_gap=video_gap,
        video_max_frames=video_max_frames,
        ocr=ocr,
        captions=captions,
    )
    settings = database_model(settings)
    stopped = None  # a run stopped by a full disk (say) still reports the work it committed
    with IndexProgress(enabled=not dry_run) as show, loading_steps(show.loading):
        try:
            summary = index_paths(
                paths, settings, dry_run=dry_run, retry_failed=retry_failed, on_progress=show
            )
        except ImgcapError as e:
            if getattr(e, "summary", None) is None:
                raise
            stopped, summary = e, e.summary
    if not dry_run and stopped is None:
        from search.vectors.cache import sync_indexes

        sync_indexes(settings.db_path)  # searches rebuild the cache anyway; this saves the wait
    if json_out:
        for warning in summary.warnings:  # stdout stays one JSON document; people see these
            err(f"Warning: {warning}")
        output.print_json(summary.to_dict())
    else:
        output.print_index_summary(summary)
    if stopped is not None:
        raise stopped  # after the summary, with its own message and exit code
    if summary.interrupted:
        err("Interrupted: committed batches are kept; run the same command again to resume.")
        raise typer.Exit(130)


def caption_pending(
    db: DbOpt = None,
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
) -> None:
    """Caption the photos indexed with --captions later (or stopped while captioning), from
    their stored image vectors: no photo is opened, so the database may have been made on
    another machine (copy it back, or `imgcap merge` it into the original).

    Exit status: 0 when every waiting photo of the model is captioned, 130 when interrupted
    (captions committed so far stay; run again to resume), 4 when a run holds the database.
    """
    from indexer.models.loading import loading_steps
    from indexer.run.pending_captions import caption_database
    from indexer.run.run_model import model_for_run

    settings = Settings.from_env(
        db_path=db,
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
    )
    settings = model_for_run(settings)  # no --model: the model this database holds
    with IndexProgress(enabled=True) as show, loading_steps(show.loading):
        report = caption_database(settings, on_progress=show.captioning)
    if report.captioned:
        from search.vectors.cache import sync_indexes

        sync_indexes(settings.db_path)
    if json_out:
        output.print_json(report.to_dict())
    elif report.model is None:
        typer.echo("Nothing to caption: every photo has its caption.")
    else:
        typer.echo(
            f"{output.printable(report.model)}: {report.captioned} captioned from their stored"
            f" image vectors, {report.pending} still waiting ({report.seconds:.1f} s)"
        )
        for name, n in report.other_models.items():
            typer.echo(f"  {n} results of model {output.printable(name)} wait too (--model NAME)")
    if report.interrupted:
        err("Interrupted: captions made so far are kept; run the same command again to resume.")
        raise typer.Exit(130)


def failures(
    db: DbOpt = None,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """List every file that could not be indexed, with the reason."""
    from indexer.store.database import Store

    with Store.open(db_path(db), create=False) as store:
        rows = store.failures()
    if json_out:
        for row in rows:
            output.print_json(row)
    elif csv_out:
        from search.export import write_csv  # the one CSV writer: quoting, formula escapes

        write_csv(rows, sys.stdout, FAILURE_COLUMNS, plain_columns=("size", "mtime_ns"))
    elif not rows:
        typer.echo("No failures.")
    else:
        for row in rows:
            typer.echo(output.printable(row["path"]) + "\t" + output.printable(row["reason"]))


def status(db: DbOpt = None, json_out: JsonDocOpt = False) -> None:
    """Show the database: location and size, the folders indexed, photos per model, failures,
    last run, search index."""
    from search.status import status as read_status

    info = read_status(db_path(db))
    if json_out:
        output.print_json(info)
        return
    output.print_status(info)

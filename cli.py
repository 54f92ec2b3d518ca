"""imgcap command line: parse options -> build Settings -> call one library function -> print.

Nothing heavy is imported at module level, so `imgcap --help` never imports torch. Every expected
error is an `ImgcapError`; `_run` turns it into one red line and its exit code, never a traceback.

Exit codes (documented in README):
  0  success (for index: the run completed, even if some files were reported as failed)
  1  some inputs failed (e.g. `caption` could not read one of the images) / generic error
  2  usage error (bad options)
  3  model not available (offline, download failed, bad model directory)
  4  database problem (locked by another run, unreadable)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from indexer.errors import ImgcapError
from search.cli import captions, models, output, roots, search, training
from search.cli.options import (
    HELP_SETTINGS,
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
    QueryCommand,
    ResizeOpt,
    print_version,
)
from search.cli.options import Commands as _Commands
from search.cli.options import db_path as _db_path
from search.cli.options import file_filter as _file_filter
from search.cli.options import make_settings as _settings
from search.cli.options import reraise as _raise
from search.cli.options import run as _run
from search.cli.output import err as _err
from search.cli.progress import IndexProgress, ModelLoading

# Plain click-style help (rich_markup_mode=None), as sqlite-utils and llm print it: choices as
# [a|b], no <bool> or <list[Path]> type placeholders, paragraphs rewrapped to the terminal.
app = typer.Typer(
    cls=_Commands,
    help="Caption, embed and search your photos by meaning (ClipCap + CLIP + SQLite + FAISS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_SETTINGS,
)
app.add_typer(models.models_app, name="models")
app.add_typer(roots.roots_app, name="roots")


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Caption, embed and search your photos by meaning (ClipCap + CLIP + SQLite + FAISS)."""


# --------------------------------------------------------------------------------------- caption
@app.command()
def caption(
    images: Annotated[
        list[Path], typer.Argument(help="Image files to caption.", show_default=False)
    ],
    model: ModelOpt = None,
    beams: BeamsOpt = 1,
    batch_size: BatchOpt = 0,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    offline: OfflineOpt = False,
    max_megapixels: MaxMpOpt = 0.0,
    resize: ResizeOpt = None,
    json_out: JsonOpt = False,
    attention: Annotated[
        Path | None,
        typer.Option(
            "--attention",
            dir_okay=False,
            help="Save the attention map of each word to this PNG (one photo, show-attend-tell "
            "models).",
        ),
    ] = None,
) -> None:
    """Caption image files and print one caption per image (nothing is stored). A video's
    caption is its keyframes' captions, joined by ' | '.

    Exit status 0 when every image was captioned, 1 when some could not be read (each named).
    """
    from indexer.models.loading import loading_steps
    from indexer.run.caption_files import caption_files

    if attention is not None and len(images) != 1:
        _err("Error: --attention draws the maps of one photo; give exactly one image.")
        raise typer.Exit(2)

    settings = _settings(
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
        max_megapixels=max_megapixels or None,
        resize=resize,
    )
    failed = 0

    def emit(path: Path, text: str | None, error: str | None) -> None:
        nonlocal failed
        loading.done()  # the model is ready once anything comes out
        if error is not None:
            failed += 1
            if json_out:
                print(json.dumps({"path": str(path), "caption": None, "error": error}))
            else:
                _err(f"{path}: {error}")
            return
        if json_out:
            print(json.dumps({"path": str(path), "caption": text}, ensure_ascii=False))
        else:
            typer.echo(f"{output.printable(str(path))}\t{output.printable(text or '')}")

    if attention is not None:  # one photo, its words' attention maps drawn into a PNG
        from indexer.models.attention_map import save_attention

        with ModelLoading() as loading, loading_steps(loading):
            got = _run(lambda: save_attention(images[0], settings, attention))
        emit(images[0], got.caption, None)
        shown = output.printable(str(attention))
        _err(f"attention maps of {len(got.words)} words written to {shown}")
        raise typer.Exit(0)
    with ModelLoading() as loading, loading_steps(loading):
        _run(lambda: caption_files(images, settings, emit))
    raise typer.Exit(1 if failed else 0)


# ------------------------------------------------------------------------- search, export, status
@app.command()
def export(
    out: Annotated[str, typer.Argument(help="Output file (.csv or .jsonl), or - for stdout.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the extension).")
    ] = None,
    in_dir: Annotated[
        Path | None, typer.Option("--in", file_okay=False, help="Only photos below this folder.")
    ] = None,
    model: ModelOpt = None,
    db: DbOpt = None,
    no_neutralise: Annotated[
        bool,
        typer.Option(
            "--no-neutralise",
            help="Write CSV cells starting with = + - @ as they are (by default they get a leading"
            " ' so spreadsheets never run them as formulas).",
        ),
    ] = False,
    keyframes: Annotated[
        bool,
        typer.Option(
            "--keyframes",
            help="One row per video keyframe, its time in an at_seconds column (by default one"
            " row per video, its keyframes' captions joined by ' | ').",
        ),
    ] = False,
) -> None:
    """Export captions, one row per photo: path, caption, model, width, height, taken_at,
    camera, indexed_at (UTF-8)."""
    from search.export import export as run_export

    settings = _settings(db_path=db)
    n = _run(
        lambda: run_export(
            settings.db_path,
            out,
            settings,
            fmt=fmt,
            model=model,
            flt=_file_filter(in_dir, None, None, None),
            neutralise_formulas=not no_neutralise,
            keyframes=keyframes,
        )
    )
    if out != "-":
        noun = "row" if keyframes else "photo"  # a keyframe row is no photo
        _err_plain(f"exported {n} {noun}{'s' if n != 1 else ''} to {out}")


def _err_plain(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def status(db: DbOpt = None, json_out: JsonDocOpt = False) -> None:
    """Show the database: location and size, photos per model, failures, last run, vector index."""
    from search.status import status as run_status

    info = _run(lambda: run_status(_db_path(db)))
    if json_out:
        print(json.dumps(info, ensure_ascii=False))
        return
    output.print_status(info)


@app.command()
def serve(
    db: DbOpt = None,
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to listen on (others get a warning)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0 = any free port).")
    ] = 8765,
    open_: Annotated[bool, typer.Option("--open", help="Open the gallery in a browser.")] = False,
    model: ModelOpt = None,
) -> None:
    """Browse and search the library in a web browser: thumbnails, why each photo matched,
    similar photos, caption editing, and a JSON API under /api. Stop with Ctrl-C."""
    import os

    # As for `search`: one query is a few small matmuls, and idle BLAS threads spinning on a
    # busy 2-core machine made some queries take a second. Must be set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from search.web.server import serve as run_server

    settings = _settings(db_path=db)
    _run(lambda: run_server(settings, host, port, open_, model, say=typer.echo, warn=_err))


# ------------------------------------------------------------------------------ index, failures
_INDEX_HELP = (
    "Caption and embed every photo under PATHS into the database, incrementally.\n\n"
    "Unchanged files are skipped without being opened; moved, renamed and duplicated files "
    "reuse their results; files gone from under PATHS leave the index. Bad files are reported "
    "(see `imgcap failures`) and never stop the run.\n\n"
    "Exit status: 0 when the run completed (even with bad files), 130 when interrupted "
    "(committed batches stay; run again to resume), 4 when another run holds the database."
)


@app.command(help=_INDEX_HELP)
def index(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders (or files) to index.", show_default=False)
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
    db_here: Annotated[
        bool,
        typer.Option(
            "--db-here",
            help="Keep the database inside the folder (FOLDER/.imgcap/imgcap.db), so it travels"
            " with it; commands run in or below the folder find it.",
        ),
    ] = False,
) -> None:
    from indexer.run.pipeline import index_paths
    from indexer.run.roots import db_here as _db_here

    if db_here:
        db = _run(lambda: _db_here(paths, db))

    settings = _settings(
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
    )
    stopped: list[ImgcapError] = []  # a run stopped by a full disk (say) still reports its work

    def run():
        try:
            return index_paths(
                paths, settings, dry_run=dry_run, retry_failed=retry_failed, on_progress=show
            )
        except ImgcapError as e:
            if getattr(e, "summary", None) is None:
                raise
            stopped.append(e)
            return e.summary

    from indexer.models.loading import loading_steps

    with IndexProgress(enabled=not dry_run) as show, loading_steps(show.loading):
        summary = _run(run)
    if not dry_run and not stopped:
        _sync_vectors(settings.db_path)
    if json_out:
        for warning in summary.warnings:  # stdout stays one JSON document; people see these
            _err(f"Warning: {warning}")
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        output.print_index_summary(summary)
    if stopped:
        _run(lambda: _raise(stopped[0]))  # the error after the summary, with its exit code
    if summary.interrupted:
        _err("Interrupted: committed batches are kept; run the same command again to resume.")
        raise typer.Exit(130)


def _sync_vectors(db_path: Path) -> None:
    """Bring the FAISS cache in line with what this run committed (searches rebuild it anyway)."""
    try:
        from search.vectors.cache import sync_indexes
    except ImportError:  # search/ not installed alongside: the cache is rebuilt on first search
        return
    _run(lambda: sync_indexes(db_path))


@app.command()
def failures(
    db: DbOpt = None,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """List every file that could not be indexed, with the reason."""
    from indexer.store.database import Store

    def read() -> list[dict]:
        with Store.open(_db_path(db), create=False) as store:
            return store.failures()

    rows = _run(read)
    if json_out:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    elif csv_out:
        from search.export import write_csv  # the one CSV writer: quoting, formula escapes

        write_csv(rows, sys.stdout, _FAILURE_COLUMNS, plain_columns=("size", "mtime_ns"))
    elif not rows:
        typer.echo("No failures.")
    else:
        for row in rows:
            typer.echo(output.printable(row["path"]) + "\t" + output.printable(row["reason"]))


_FAILURE_COLUMNS = ("path", "reason", "size", "mtime_ns", "failed_at", "model")


app.command(cls=QueryCommand)(search.search)
app.command()(training.train)
app.command("eval")(training.eval_)
app.command("caption-set", short_help="Set your own caption for a photo (or --clear it).")(
    captions.caption_set
)
app.command("write-back", short_help="Write captions into XMP sidecars or the photos.")(
    captions.write_back
)
app.command("merge")(roots.merge)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`imgcap caption`, `imgcap caption-set` and `imgcap write-back`: captions for image files
(nothing stored), a person's own caption into the index, and the captions out to where photo tools
read them. Parse options, call one library function, print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from indexer.config import Settings
from indexer.errors import UsageError
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
    services,
)
from search.cli.output import err
from search.cli.progress import ModelLoading, progress_bar


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
        raise UsageError("--attention draws the maps of one photo; give exactly one image.")
    settings = Settings.from_env(
        model=model,
        beams=beams,
        batch_size=batch_size,
        device=device,
        precision=precision,
        offline=offline or None,
        max_megapixels=max_megapixels or None,
        resize=resize,
    )
    settings = database_model(settings)
    failed = 0

    def emit(path: Path, text: str | None, error: str | None) -> None:
        nonlocal failed
        loading.done()  # the model is ready once anything comes out
        if error is not None:
            failed += 1
            if json_out:
                output.print_json({"path": str(path), "caption": None, "error": error})
            else:
                err(f"{path}: {error}")
            return
        if json_out:
            output.print_json({"path": str(path), "caption": text})
        else:
            typer.echo(f"{output.printable(str(path))}\t{output.printable(text or '')}")

    if attention is not None:  # one photo, its words' attention maps drawn into a PNG
        from indexer.models.attention_map import save_attention

        with ModelLoading() as loading, loading_steps(loading):
            got = save_attention(images[0], settings, attention)
        emit(images[0], got.caption, None)
        shown = output.printable(str(attention))
        err(f"attention maps of {len(got.words)} words written to {shown}")
        return
    with ModelLoading() as loading, loading_steps(loading):
        caption_files(images, settings, emit)
    raise typer.Exit(1 if failed else 0)


def caption_set(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="An indexed photo or video.", show_default=False)],
    text: Annotated[
        str | None,
        typer.Argument(help="Your caption for it (none with --clear).", show_default=False),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget your caption: back to the generated one.")
    ] = False,
    model: ModelOpt = None,
    db: DbOpt = None,
    device: DeviceOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonDocOpt = False,
) -> None:
    """Set your own caption for a photo or a video (a video's caption is the whole video's). It
    replaces the generated caption in search (keyword and meaning), export and write-back, and
    every later `imgcap index` keeps it. --clear removes it.

    Example: imgcap caption-set ~/Photos/IMG_0042.jpg "Grandma's 80th birthday, 2019"
    """
    from search.captions import set_caption

    if clear == (text is not None):
        raise UsageError("give the caption text, or --clear (not both)")
    if text is not None and not text.split():
        # Never a silent clear: an empty argument is more often a shell slip than a wish.
        raise UsageError(
            "the caption is empty; nothing was changed. To remove your caption and go back to"
            " the generated one, use --clear"
        )
    settings = Settings.from_env(db_path=db, device=device, offline=offline or None)
    photo = set_caption(
        settings, str(path), None if clear else text, model, services(ctx).encoder_loader
    )
    if json_out:
        output.print_json(photo)
        return
    typer.echo(
        f"{output.printable(photo['path'])}\t{output.printable(photo['caption'] or '')}"
        f"\t({photo['caption_source']})"
    )


def write_back(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Photos or folders (default: every indexed photo).", show_default=False
        ),
    ] = None,
    in_dir: Annotated[
        Path | None,
        typer.Option("--in", file_okay=False, help="Only photos below this folder."),
    ] = None,
    sidecar: Annotated[
        bool,
        typer.Option("--sidecar", help="Write XMP sidecars next to the photos (the default)."),
    ] = False,
    embed: Annotated[
        bool,
        typer.Option(
            "--embed",
            help="Write into the photos (XMP, IPTC and EXIF descriptions; needs exiftool); "
            "pixels are checked unchanged.",
        ),
    ] = False,
    naming: Annotated[
        Literal["darktable", "lightroom"],
        typer.Option(
            "--naming",
            metavar="[darktable|lightroom]",
            help="Sidecar names: photo.jpg.xmp (darktable, digiKam) or photo.xmp (Lightroom, "
            "Bridge, Capture One).",
        ),
    ] = "darktable",
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace descriptions that imgcap did not write."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be written; write nothing.")
    ] = False,
    model: ModelOpt = None,
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
) -> None:
    """Write captions where photo tools read them: XMP sidecars (default) or, with --embed, into
    the photos. Other metadata stays; a description imgcap did not write is kept unless --force.
    Files that can't be written are reported, never stop the run.

    Example: imgcap write-back ~/Photos/2019 --dry-run
    """
    from indexer.metadata.writeback import run_write_back

    if sidecar and embed:
        raise UsageError("--sidecar and --embed: choose one")
    targets = [os.fspath(p) for p in paths or []] + ([os.fspath(in_dir)] if in_dir else [])
    settings = Settings.from_env(db_path=db)
    bar = _Progress("writing" if not dry_run else "checking")
    with bar:
        summary = run_write_back(
            settings.db_path,
            targets,
            model=model,
            configured_model=settings.model,
            mode="embed" if embed else "sidecar",
            naming=naming,
            force=force,
            dry_run=dry_run,
            on_start=bar.start,
            on_outcome=bar.step,
        )
    if json_out:
        output.print_json(summary.to_json())
    else:
        _print_write_back(summary, dry_run)
    if summary.interrupted:
        err("Interrupted: each photo counted was written whole; run the same command to go on.")
        raise typer.Exit(130)


def _print_write_back(summary, dry_run: bool) -> None:
    for o in summary.outcomes:
        if o.status in ("failed", "kept"):
            typer.echo(
                f"{o.status}\t{output.printable(o.path)}\t{output.printable(o.reason or '')}"
            )
        elif dry_run and o.status == "written":
            typer.echo(f"  + {output.printable(o.target or o.path)}")
    if summary.model is None:
        err("Warning: nothing to write: the index holds no captions yet")
    typer.echo(summary.headline())


class _Progress:
    """A progress bar on stderr when it is a terminal (photos done of all); nothing otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar = None
        self.task = None

    def start(self, total: int) -> None:
        from rich.console import Console

        console = Console(stderr=True)
        if total and console.is_terminal:
            self.bar = progress_bar(console)
            self.task = self.bar.add_task(self.label, total=total)

    def step(self, outcome) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

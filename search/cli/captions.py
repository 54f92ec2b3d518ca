"""`imgcap caption-set` and `imgcap write-back`: a person's caption into the index, and the
captions out to where photo tools read them (cli.py registers them). Parse options, call one
library function, print."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from search.cli import output
from search.cli.options import (
    DbOpt,
    DeviceOpt,
    JsonDocOpt,
    ModelOpt,
    OfflineOpt,
    make_settings,
    raise_usage,
    run,
)
from search.cli.output import err
from search.cli.progress import progress_bar


def caption_set(
    path: Annotated[Path, typer.Argument(help="An indexed photo.", show_default=False)],
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
    """Set your own caption for a photo. It replaces the generated caption in search (keyword and
    meaning), export and write-back, and every later `imgcap index` keeps it.

    Example: imgcap caption-set ~/Photos/IMG_0042.jpg "Grandma's 80th birthday, 2019"
    """
    from search.captions import set_caption

    if clear == (text is not None):
        run(raise_usage("give the caption text, or --clear (not both)"))
    settings = make_settings(db_path=db, device=device, offline=offline or None)
    photo = run(lambda: set_caption(settings, str(path), None if clear else text, model))
    if json_out:
        print(json.dumps(photo, ensure_ascii=False))
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
        run(raise_usage("--sidecar and --embed: choose one"))
    targets = [os.fspath(p) for p in paths or []] + ([os.fspath(in_dir)] if in_dir else [])
    settings = make_settings(db_path=db)
    bar = _Progress("writing" if not dry_run else "checking")
    with bar:
        summary = run(
            lambda: run_write_back(
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
        )
    if json_out:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
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

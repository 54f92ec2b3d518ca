"""`imgcap export`: the captions as CSV or JSON lines. Parse options, call search/export.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.config import Settings
from search.cli.options import DbOpt, ModelOpt, file_filter


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
    from search.export import export as write_export

    settings = Settings.from_env(db_path=db)
    n = write_export(
        settings.db_path,
        out,
        settings,
        fmt=fmt,
        model=model,
        flt=file_filter(in_dir, None, None, None),
        neutralise_formulas=not no_neutralise,
        keyframes=keyframes,
    )
    if out != "-":
        noun = "row" if keyframes else "photo"  # a keyframe row is no photo
        typer.echo(f"exported {n} {noun}{'s' if n != 1 else ''} to {out}", err=True)

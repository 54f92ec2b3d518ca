"""`imgcap models`: list, download and write captioning models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from indexer.config import Settings
from search.cli import output
from search.cli.options import JsonOpt, command_group

models_app = command_group("List and download captioning models.", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models_list(
    ctx: typer.Context,
    json_out: JsonOpt = False,
) -> None:
    """List the captioning models and whether each is available locally.

    Piped, one tab-separated line per model: name, default, local, mapping, CLIP, source."""
    if ctx.invoked_subcommand is not None:
        return
    from indexer.models.download import list_models

    rows = list_models(Settings.from_env())
    if json_out:
        for row in rows:
            print(json.dumps(row))
        return
    output.print_models(rows)


@models_app.command("download", short_help="Fetch a model's files ahead of time (for offline use).")
def models_download(
    name: Annotated[str, typer.Argument(help="Registry name, e.g. clipcap-coco.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="Checkpoint you downloaded yourself, for models with no hub mirror "
            "(clipcap-coco-transformer).",
        ),
    ] = None,
) -> None:
    """Fetch everything a model needs (checkpoint, CLIP weights, tokenizer) ahead of time."""
    from indexer.models.loading import download_model

    path = download_model(name, Settings.from_env(), checkpoint_file=file)
    typer.echo(f"{name}: ready ({path})")


@models_app.command("tiny", short_help="Write a tiny random-weight model (tests, smoke runs).")
def models_tiny(
    out: Annotated[Path, typer.Argument(help="Directory to write the tiny model into.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
) -> None:
    """Write a tiny random-weight model (for tests and smoke runs; its captions are nonsense)."""
    from indexer.models.random_weights import write_tiny_model

    write_tiny_model(out, seed=seed)
    typer.echo(f"tiny model written to {out} (use --model {out})")

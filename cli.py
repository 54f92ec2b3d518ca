"""imgcap command line: the table of contents. Each command lives in search/cli/ (parse options ->
build Settings -> call one library function -> print); here they are registered, in the order
`imgcap --help` lists them, with the one line each shows there.

Nothing heavy is imported at module level, so `imgcap --help` never imports torch. Every expected
error is an `ImgcapError`; the group class (`search.cli.options.Commands`) turns it into one red
line and its exit code, never a traceback.

Exit codes (documented in docs/reference.md):
  0  success (for index: the run completed, even if some files were reported as failed)
  1  some inputs failed (e.g. `caption` could not read one of the images) / generic error
  2  usage error (bad options)
  3  model not available (offline, download failed, bad model directory)
  4  database problem (locked by another run, unreadable)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from search.cli import captions, duplicates, export, index, models, roots, search, serve, training
from search.cli.options import QueryCommand, command_group, print_version

app = command_group(
    "Caption your photos and search them by meaning, on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Caption your photos and search them by meaning, on your own machine."""


# One line each in `imgcap --help` (click would cut a longer first sentence with "...").
# Typer lists mounted groups (roots, models) after all commands; Commands sorts by COMMAND_ORDER.
app.command("index", short_help="Caption every photo under PATHS and make it searchable.")(
    index.index
)
app.command(
    "search",
    cls=QueryCommand,
    short_help="Search photos by meaning; every hit says why it matched.",
)(search.search)
app.command("serve", short_help="Browse and search the library in a web browser.")(serve.serve)
app.command(
    "caption", short_help="Caption image files and print the captions (nothing is stored)."
)(captions.caption)
app.command("caption-set", short_help="Set your own caption for a photo (or --clear it).")(
    captions.caption_set
)
app.command("export", short_help="Export captions as CSV or JSON lines.")(export.export)
app.command("write-back", short_help="Write captions into XMP sidecars or the photos.")(
    captions.write_back
)
app.command("status", short_help="Show the database: size, photos per model, failures, last run.")(
    index.status
)
app.command("failures")(index.failures)
app.command("caption-pending", short_help="Caption photos indexed with --captions later.")(
    index.caption_pending
)
app.command("duplicates", short_help="List copies and near-duplicates, original first.")(
    duplicates.duplicates
)
app.add_typer(
    roots.roots_app,
    name="roots",
    short_help="List the folders the index covers; move or remove one.",
)
app.command("merge", short_help="Bring another imgcap database's results into this one.")(
    roots.merge
)
app.add_typer(models.models_app, name="models")
app.command("train", short_help="Fine-tune a captioner on your captioned photos.")(training.train)
app.command("eval", short_help="Score captions: BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE.")(
    training.eval_
)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

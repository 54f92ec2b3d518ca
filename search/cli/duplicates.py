"""`imgcap duplicates`: groups of exact copies and near-duplicates, original first (thin: the
groups come from search/duplicates.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search.cli import output
from search.cli.options import DbOpt, JsonDocOpt, db_path


def duplicates(
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
    in_dir: Annotated[
        Path | None,
        typer.Option("--in", metavar="DIR", help="Only groups with a file under DIR."),
    ] = None,
) -> None:
    """List groups of copies and near-duplicates (bursts, resized, re-encoded, cropped or edited
    copies): the file that looks like the original first, then the others and why."""
    from search.display import shown_path
    from search.duplicates import duplicate_groups

    found = duplicate_groups(db_path(db), None if in_dir is None else str(in_dir))
    if json_out:
        output.print_json(found)
        return
    for g in found["groups"]:
        typer.echo(output.printable(shown_path(g["original"])) + "\t(original)")
        for f in g["files"]:
            typer.echo("  " + output.printable(shown_path(f["path"])) + "\t" + f["why"])
    n, files = found["groups_count"], found["files_count"]
    if n:
        typer.echo(f"{n} group{'' if n == 1 else 's'}, {files} files")
    else:
        typer.echo("No duplicates.")

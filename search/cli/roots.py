"""`imgcap roots` (list, move) and `imgcap merge`: a portable, mergeable index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from search.cli import output
from search.cli.options import DbOpt, JsonDocOpt, JsonOpt, command_group, db_path

roots_app = command_group("List the folders the index covers, or move one.", no_args_is_help=False)

CONFLICTS_SHOWN = 20  # in the human report; --json lists up to the store's cap


@roots_app.callback(invoke_without_command=True)
def roots_list(ctx: typer.Context, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List the index roots: the folders photos are stored relative to, with how many photos
    each holds and whether it exists here now (a drive not mounted, a folder moved: see
    `imgcap roots move`)."""
    ctx.obj = db  # `imgcap roots --db X move ...`
    if ctx.invoked_subcommand is not None:
        return
    from indexer.run.roots import list_roots

    roots, loose = list_roots(db_path(db))
    if json_out:
        for root in roots:
            print(json.dumps(root.to_dict(), ensure_ascii=False))
        return
    if not roots and not loose:
        typer.echo("No roots yet: run `imgcap index FOLDER`.")
        return
    typer.echo("  photos  here  root")
    for root in roots:
        travels = f"  (with the database: {root.db_relative})" if root.db_relative else ""
        here = "yes" if root.exists else "NO "
        typer.echo(f"{root.photos:>8}  {here}   {output.printable(root.path)}{travels}")
    if loose:
        typer.echo(f"{loose:>8}  photos under no root (absolute paths)")
    if any(not r.exists for r in roots):
        output.err("A root that is not here: mount it, or `imgcap roots move OLD NEW`.")


@roots_app.command("move", short_help="Point a root at its new place (no captioning again).")
def roots_move(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(metavar="OLD", help="The root as `imgcap roots` lists it.")],
    new: Annotated[Path, typer.Argument(metavar="NEW", help="Where that folder is now.")],
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
) -> None:
    """Point a root at its new place (a drive mounted elsewhere, a renamed folder): stored
    paths are rewritten in one transaction; nothing is decoded or captioned again."""
    from indexer.run.roots import move_root

    moved = move_root(db_path(db if db is not None else ctx.obj), old, new)
    if json_out:
        print(json.dumps(moved, ensure_ascii=False))
        return
    typer.echo(
        f"{output.printable(moved['from'])} -> {output.printable(moved['to'])}:"
        f" {moved['photos']} photos repointed, {moved['found']} of them found there"
    )
    if moved["found"] < moved["photos"]:
        output.err(
            f"Warning: {moved['photos'] - moved['found']} photos are not at the new place;"
            " the next `imgcap index` of it drops them"
        )


def merge(
    other: Annotated[
        Path,
        typer.Argument(metavar="OTHER.db", help="The imgcap database to bring in (only read)."),
    ],
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
) -> None:
    """Bring another imgcap database's photos and results into this one: reused by content, so
    nothing is captioned again; model versions kept; conflicts reported (ours kept). Merging
    twice adds nothing."""
    from indexer.store.merge import merge as merge_databases
    from search.vectors.cache import sync_indexes

    path = db_path(db)
    report = merge_databases(path, other)
    sync_indexes(path)  # as after an index run: searches need not rebuild the cache
    if json_out:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    r = report
    typer.echo(
        f"merged {output.printable(r.other)}: {r.files_added} photos added"
        f" ({r.files_same} already here), {r.results_added} captions added"
        f" ({r.results_same} already here), {r.user_captions_added} of your captions,"
        f" {r.tags_added} tagged photos"
    )
    for what, items in (("roots", r.roots_added), ("models", r.models_added)):
        if items:
            typer.echo(f"{what} added: " + ", ".join(output.printable(i) for i in items))
    if not r.added_anything:
        typer.echo("Nothing new: everything in it is here already.")
    if r.conflict_count:
        output.err(f"{r.conflict_count} conflicts (ours kept):")
        for c in r.conflicts[:CONFLICTS_SHOWN]:
            where, ours, theirs = (
                output.printable(str(c.get(k) or c.get("model")))
                for k in ("path", "ours", "theirs")
            )
            output.err(f"  {c['kind']}: {where}: ours {ours} / theirs {theirs}")
        if r.conflict_count > CONFLICTS_SHOWN:
            output.err(f"  ... and {r.conflict_count - CONFLICTS_SHOWN} more (--json lists them)")

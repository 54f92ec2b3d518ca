"""`imgcap roots` (list, move, remove) and `imgcap merge`: a portable, mergeable index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search.cli import output
from search.cli.options import DbOpt, JsonDocOpt, JsonOpt, command_group, db_path

roots_app = command_group(
    "List the folders the index covers; move or remove one.", no_args_is_help=False
)

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
            output.print_json(root.to_dict())
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
    new: Annotated[str, typer.Argument(metavar="NEW", help="Where that folder is now.")],
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
) -> None:
    """Point a root at its new place (a drive mounted elsewhere, a renamed folder): stored
    paths are rewritten in one transaction; nothing is decoded or captioned again."""
    from indexer.run.roots import move_root

    moved = move_root(db_path(db if db is not None else ctx.obj), old, new)
    if json_out:
        output.print_json(moved)
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


@roots_app.command("remove", short_help="Drop a root and its photos from the index.")
def roots_remove(
    ctx: typer.Context,
    root: Annotated[
        str, typer.Argument(metavar="ROOT", help="The root as `imgcap roots` lists it.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be dropped.")
    ] = False,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also forget the captions you wrote for these photos."),
    ] = False,
    db: DbOpt = None,
    json_out: JsonDocOpt = False,
) -> None:
    """Drop a root and its photos from the index (their results, failures and tags; the files
    themselves are never touched). Captions you wrote are kept, so the same photos indexed
    again get them back; --purge forgets them too."""
    from indexer.run.roots import remove_root

    r = remove_root(db_path(db if db is not None else ctx.obj), root, dry_run, purge)
    if json_out:
        output.print_json(r)
        return
    verb = "would drop" if dry_run else "dropped"
    typer.echo(
        f"{output.printable(r['root'])}: {verb} {r['photos']} photos, {r['failures']} failures,"
        f" the tags of {r['tagged']} photos"
        + ("" if dry_run else f"; {r['results']} captions no other photo uses deleted")
    )
    if r["your_captions"]:
        gone = "would be forgotten" if dry_run else "forgotten"
        kept = gone if purge else "kept (back if these photos are indexed again)"
        typer.echo(f"{r['your_captions']} captions you wrote: {kept}")
    if dry_run:
        typer.echo("Nothing changed (--dry-run).")


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
    twice adds nothing. The other database is checked first (a damaged one merges nothing) and
    row by row: a root that would hold ours, the whole disk or a system folder, a path leaving
    its root or a malformed hash is skipped and listed, and the exit status is then 1."""
    from indexer.store.merge import merge as merge_databases
    from search.vectors.cache import sync_indexes

    path = db_path(db)
    report = merge_databases(path, other)
    sync_indexes(path)  # as after an index run: searches need not rebuild the cache
    refused = bool(report.skipped_count or report.roots_refused)
    if json_out:
        output.print_json(report.to_dict())
        raise typer.Exit(1 if refused else 0)
    r = report
    typer.echo(
        f"merged {output.printable(r.other)}: {r.files_added} photos added"
        f" ({r.files_same} already here), {r.results_added} captions added"
        f" ({r.results_same} already here), {r.user_captions_added} of your captions,"
        f" {r.tags_added} tagged photos"
        + (f", {r.captions_filled} captions for photos that had none" if r.captions_filled else "")
    )
    for what, items in (("roots", r.roots_added), ("models", r.models_added)):
        if items:
            typer.echo(f"{what} added: " + ", ".join(output.printable(i) for i in items))
    if not r.added_anything and not refused:
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
    for root in r.roots_refused:
        output.err(
            f"root refused: {output.printable(root['root'])}: {output.printable(root['reason'])}"
        )
    if r.skipped_count:
        output.err(f"{r.skipped_count} rows skipped (not merged):")
        for s in r.skipped[:CONFLICTS_SHOWN]:
            row, why = output.printable(s["row"]), output.printable(s["reason"])
            output.err(f"  {s['table']}: {row}: {why}")
        if r.skipped_count > CONFLICTS_SHOWN:
            output.err(f"  ... and {r.skipped_count - CONFLICTS_SHOWN} more (--json lists them)")
    if refused:
        raise typer.Exit(1)

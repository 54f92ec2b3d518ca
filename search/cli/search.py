"""`imgcap search`: options -> SearchRequest -> search.query -> search.output (thin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from search.cli import output
from search.cli.options import DbOpt, DeviceOpt, JsonOpt, ModelOpt, ModeOpt, OfflineOpt, ResizeOpt
from search.cli.options import file_filter as _file_filter
from search.cli.options import make_settings as _settings
from search.cli.options import query_text as _text
from search.cli.options import raise_usage as _raise_usage
from search.cli.options import run as _run
from search.cli.output import err as _err


def search(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="QUERY",
            help="What to look for, in words (quotes optional; a word may start with -).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Number of photos (at most).")
    ] = 20,
    mode: ModeOpt = "hybrid",
    like: Annotated[
        Path | None,
        typer.Option("--like", exists=True, dir_okay=False, help="Find photos like this image."),
    ] = None,
    not_: Annotated[
        str | None, typer.Option("--not", help="Push down photos that match this text.")
    ] = None,
    in_dir: Annotated[
        Path | None, typer.Option("--in", file_okay=False, help="Only photos below this folder.")
    ] = None,
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="DATE", help="Taken on or after DATE (YYYY[-MM[-DD]])."),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", metavar="DATE", help="Taken before DATE (YYYY[-MM[-DD]])."),
    ] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Camera make/model contains TEXT.")
    ] = None,
    place: Annotated[
        str | None,
        typer.Option(
            "--place",
            metavar="NAME",
            help="Taken in a city, region or country of this name (from GPS; any case,"
            " accents optional; 'Paris, France' for both).",
        ),
    ] = None,
    literal: Annotated[
        bool,
        typer.Option(
            "--literal",
            help="Search the words as typed: no dates, places, folders or cameras read from"
            " the query.",
        ),
    ] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="WORD",
            help="Only photos you tagged WORD (any case; repeatable: all of them).",
            show_default=False,
        ),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            help="Minimum CLIP similarity of the photo to the query (of its caption in caption"
            " mode); about 0.2-0.3 is typical for a real match with ViT-B/32.",
        ),
    ] = None,
    model: ModelOpt = None,
    db: DbOpt = None,
    device: DeviceOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
    paths: Annotated[
        bool, typer.Option("--paths", help="Print only paths, one per line (for piping).")
    ] = False,
    null: Annotated[
        bool,
        typer.Option(
            "--null", "-0", help="With --paths: end each path with NUL, not a newline (xargs -0)."
        ),
    ] = False,
    why: Annotated[
        bool,
        typer.Option("--why", help="Show each signal's score and rank (img, cap, kw) in full."),
    ] = False,
    resize: ResizeOpt = None,
) -> None:
    """Search indexed photos by meaning; every hit says why it matched.

    Example: imgcap search dog on a park bench --after 2019 --before 2020 -n 20

    Output: a table on a terminal, tab-separated lines when piped (rank, score, path, caption,
    why), --paths for paths alone, --json for one JSON object per line.
    """
    import os

    # One query is a few tiny matmuls: BLAS worker threads only spin, and on a busy 2-core
    # machine they tripled the cold search (3.2 s -> 1.1 s wall, bench_search.py cold). Must be
    # set before numpy loads; an explicit user setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from search.query import SearchRequest
    from search.query import search_understood as run_search

    if json_out and paths:
        _run(_raise_usage("--json and --paths cannot be combined"))
    if null and not paths:
        _run(_raise_usage("-0/--null goes with --paths"))
    text = " ".join(_text(w) for w in query) if query else None
    settings = _settings(db_path=db, device=device, offline=offline or None, resize=resize)
    req = _run(
        lambda: SearchRequest(
            text=text,
            like=like,
            negative=_text(not_),
            limit=limit,
            mode=mode,
            filters=_file_filter(in_dir, after, before, _text(camera), tag, _text(place)),
            min_score=min_score,
            model=model,
            understand=not literal,
        )
    )
    hits, understood = _run(lambda: run_search(settings.db_path, req, settings))
    if understood is not None and understood.any and not json_out:
        output.print_understood(understood.label())
    if json_out:
        for hit in hits:
            print(json.dumps(hit.to_dict(), ensure_ascii=False))
    elif paths:
        output.print_paths([hit.path for hit in hits], null=null)
    else:
        output.print_hits(hits, mode, full_why=why)
    if not hits:
        _err("No photos matched.")

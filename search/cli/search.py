"""`imgcap search`: options -> SearchRequest -> search/query.py -> search/cli/output.py (thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.config import Settings
from indexer.errors import UsageError
from search.cli import output
from search.cli.options import (
    DbOpt,
    DeviceOpt,
    JsonOpt,
    ModelOpt,
    ModeOpt,
    OfflineOpt,
    ResizeOpt,
    file_filter,
    query_text,
    services,
)
from search.cli.output import err


def search(
    ctx: typer.Context,
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
    text_phrase: Annotated[
        str | None,
        typer.Option(
            "--text",
            metavar="PHRASE",
            help="Only photos whose text (read by `imgcap index --ocr`) holds PHRASE, its words"
            " in order (any case).",
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
    all_files: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every file its own result. Default: copies and look-alikes (bursts, resized or"
            " edited versions) are one result, the best match, marked '+N similar'.",
        ),
    ] = False,
    resize: ResizeOpt = None,
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            metavar="CODE",
            help="The query's language: auto (detected), en (CLIP's own text tower) or a code"
            " such as de, fr, zh (the multilingual tower; docs/languages.md).",
        ),
    ] = "auto",
) -> None:
    """Search indexed photos by meaning; every hit says why it matched.

    Example: imgcap search dog on a park bench --after 2019 --before 2020 -n 20

    Dates, places, folders and cameras are read from the words themselves: "kids in Paris last
    summer" finds photos of kids taken in Paris last summer, "sunset in Holidays" looks in your
    Holidays folder, "beach with iphone" only at photos from an iPhone. What was read is shown
    first ("understood: ..."); --literal searches the words exactly as typed.

    With no words, filters alone (--in, --tag, --place, --camera, --after, --before) list
    their photos, newest first.

    Output: a table on a terminal, tab-separated lines when piped (rank, score, path, caption,
    why), --paths for paths alone, --json for one JSON object per line. A photo with copies or
    look-alikes is shown once, with "+N similar" (--json: "similar", their paths); --all
    shows each file.
    """
    import os

    # One query is a few tiny matmuls: BLAS worker threads only spin, and on a busy 2-core
    # machine they tripled the cold search (3.2 s -> 1.1 s wall, bench_search.py cold). Must be
    # set before numpy loads; an explicit user setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from dataclasses import replace

    from search.language import check_lang
    from search.query import SearchRequest, filters_label, phrase_query, search_understood

    if json_out and paths:
        raise UsageError("--json and --paths cannot be combined")
    if null and not paths:
        raise UsageError("-0/--null goes with --paths")
    text = " ".join(query_text(w) for w in query) if query else None
    settings = Settings.from_env(db_path=db, device=device, offline=offline or None, resize=resize)
    filters = file_filter(in_dir, after, before, query_text(camera), tag, query_text(place))
    if text_phrase is not None:
        phrase = phrase_query(query_text(text_phrase))
        if phrase is None:
            raise UsageError("--text needs a word or more to look for")
        filters = replace(filters, text=phrase)
    req = SearchRequest(
        text=text,
        like=like,
        negative=query_text(not_),
        limit=limit,
        mode=mode,
        filters=filters,
        min_score=min_score,
        model=model,
        understand=not literal,
        all_files=all_files,
        lang=check_lang(lang),
    )
    hits, understood = search_understood(
        settings.db_path, req, settings, services(ctx).encoder_loader
    )
    if understood is not None and understood.any and not json_out:
        output.print_understood(understood.label())
    if hits and hits[0].language not in (None, "en") and not json_out:
        output.print_language(hits[0].language, hits[0].text_tower, settings.text_tower)
    if json_out:
        for hit in hits:
            output.print_json(hit.to_dict())
    elif paths:
        output.print_paths([hit.path for hit in hits], null=null)
    else:
        output.print_hits(hits, mode, full_why=why)
    if not hits and text is None and like is None and req.filters.active:
        err(f"No photos matched the filters: {filters_label(req.filters)}.")
    elif not hits:
        err("No photos matched.")

"""`imgcap serve`: the web gallery (search/web/server.py) on a local port."""

from __future__ import annotations

from typing import Annotated

import typer

from indexer.config import Settings
from search.cli.options import DbOpt, ModelOpt
from search.cli.output import err


def serve(
    db: DbOpt = None,
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to listen on (others get a warning)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0 = any free port).")
    ] = 8765,
    open_: Annotated[bool, typer.Option("--open", help="Open the gallery in a browser.")] = False,
    model: ModelOpt = None,
) -> None:
    """Browse and search the library in a web browser: thumbnails, why each photo matched,
    similar photos, caption editing, and a JSON API under /api. Stop with Ctrl-C."""
    import os

    # As for `search`: one query is a few small matmuls, and idle BLAS threads spinning on a
    # busy 2-core machine made some queries take a second. Must be set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from search.web.server import serve as run_server

    settings = Settings.from_env(db_path=db)
    run_server(settings, host, port, open_, model, say=typer.echo, warn=err)

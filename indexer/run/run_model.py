"""The model an index run uses when none is named: the one its database already holds.

A search without --model reads the model the database holds (search/query_encoder.py); an index
run without one adds to that same model instead of loading (and downloading) the default beside
it. The rule is the search's: the default model when the database has results for it, else the
model with the most results, loaded from where the database remembers it was loaded from (the
`models` table: a registry name, or an absolute model folder). --model and IMGCAP_MODEL always
win; a database with no results yet takes the default.
"""

from __future__ import annotations

import os
from dataclasses import replace

from indexer.config import Settings
from indexer.errors import ModelNotAvailableError, StoreError


def model_for_run(settings: Settings) -> Settings:
    """`settings`, with `model` set to where the database's model loads from when neither
    --model nor IMGCAP_MODEL named one."""
    from indexer.store.connection import connect_readonly
    from indexer.store.queries import model_sources, models_with_results

    if settings.model_named or not settings.db_path.is_file():
        return settings
    try:
        conn = connect_readonly(settings.db_path)
    except StoreError:
        return settings  # no index in it yet, or one the run itself will explain
    try:
        indexed = models_with_results(conn)
        sources = model_sources(conn)
    finally:
        conn.close()
    if not indexed or settings.model in indexed:
        return settings
    name = indexed[0]
    return replace(settings, model=_source(name, sources.get(name)))


def _source(name: str, source: str | None) -> str:
    """Where the stored model `name` loads from, as a search loads it: its remembered folder or
    registry name, else (a database from before the `models` table) the name itself, which the
    loader explains when it is not a registry name."""
    from indexer.models.model_dir import is_model_dir

    if source is None or not os.path.isabs(source) or is_model_dir(source):
        return source or name
    raise ModelNotAvailableError(
        f"this database was indexed with model {name!r} from the folder {source}, which is no"
        " longer there: pass --model DIR with that model's folder (or --model NAME to index"
        " with another model)"
    )

"""`imgcap caption-set`: a person's caption for one photo, by path, through the one user-caption
store the gallery (`imgcap serve`) edits too (search/library.py, indexer/store/user_captions.py).
"""

from __future__ import annotations

import os
from typing import Any

from indexer.config import Settings
from indexer.errors import ImgcapError


def set_caption(
    settings: Settings, path: str, text: str | None, model: str | None = None
) -> dict[str, Any]:
    """Set (text) or clear (None) the user's caption of the indexed photo at `path`; returns
    the photo as the gallery shows it (path, caption, caption_source, ...)."""
    from indexer.store import photos as photo_rows
    from indexer.store.connection import connect_readonly
    from search.web.library import Library

    # abspath, not resolve: stored paths are absolute with symlinks kept, as the user typed.
    wanted = os.path.abspath(os.path.expanduser(path))
    conn = connect_readonly(settings.db_path)
    try:
        ids = photo_rows.file_ids(conn, [wanted])
    finally:
        conn.close()
    if wanted not in ids:
        raise ImgcapError(f"{path} is not in the index: run `imgcap index` on it first")
    return Library(settings, model).set_caption(ids[wanted][0], text)

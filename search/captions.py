"""A person's caption for a photo: the one caption-edit API, used by `imgcap caption-set` (by
path) and the gallery's caption editor (by file id), over indexer/store/user_captions.py.

The caption vector comes from the same CLIP text tower the index used, so the edit is found by
caption search at once; the store bumps the model's generation so the FAISS cache is rebuilt
with it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.errors import ImgcapError, StoreError, UsageError
from indexer.store import photos as photo_rows
from indexer.store import user_captions
from indexer.store.connection import connect_readonly
from search import photos
from search.query_encoder import EncoderLoader, load_encoder, model_source

MAX_CHARS = 2000


def set_caption(
    settings: Settings,
    path: str,
    text: str | None,
    model: str | None = None,
    encoder_loader: EncoderLoader | None = None,
) -> dict[str, Any]:
    """Set (text) or clear (None) the user's caption of the indexed photo at `path`; returns
    the photo as the gallery shows it (path, caption, caption_source, ...)."""
    # abspath, not resolve: stored paths are absolute with symlinks kept, as the user typed.
    wanted = os.path.abspath(os.path.expanduser(path))
    conn = connect_readonly(settings.db_path)
    try:
        ids = photo_rows.file_ids(conn, [wanted])
    finally:
        conn.close()
    if wanted not in ids:
        raise ImgcapError(f"{path} is not in the index: run `imgcap index` on it first")
    return set_caption_of(settings, ids[wanted][0], text, model, encoder_loader)


def set_caption_of(
    settings: Settings,
    file_id: int,
    text: str | None,
    model: str | None = None,
    encoder_loader: EncoderLoader | None = None,
) -> dict[str, Any]:
    """Store the user's caption for the photo `file_id` (None or blank: back to the generated
    one) for the model a search with `--model model` reads; returns the photo as the gallery
    shows it. LookupError when no indexed file has this id. `encoder_loader(source, settings)`
    gives the CLIP text tower (default `load_encoder`; the gallery passes its warm one)."""
    encoder_loader = encoder_loader or load_encoder
    text = " ".join(text.split()) if text else ""
    if len(text) > MAX_CHARS:
        raise UsageError(f"a caption holds at most {MAX_CHARS} characters")
    conn = connect_readonly(settings.db_path)
    try:
        stored, row = photos.photo_row(conn, file_id, model, settings)
        if row["result_id"] is None:
            raise StoreError(f"photo {file_id} has no result for model {stored!r} to edit")
        source = model_source(conn, stored, model, settings)
    finally:
        conn.close()
    if not text:
        user_captions.clear_user_caption(settings.db_path, int(file_id), stored)
    else:
        encoder = encoder_loader(source, settings)
        vec = np.asarray(encoder.encode_texts([text]), dtype=np.float32)[0]  # (D,) raw
        user_captions.set_user_caption(settings.db_path, int(file_id), stored, text, vec)
    conn = connect_readonly(settings.db_path)
    try:
        return photos.photo(conn, file_id, model, settings)
    finally:
        conn.close()

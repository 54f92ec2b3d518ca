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
EMPTY = "the caption is empty; nothing was saved (to go back to the generated caption, clear yours)"


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
        failed = None if wanted in ids else photo_rows.failure_reason(conn, wanted)
    finally:
        conn.close()
    if failed is not None:
        raise ImgcapError(f"{path} failed to index: {failed}")
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
    """Store the user's caption for the photo `file_id` (None: back to the generated one) for
    the model a search with `--model model` reads; returns the photo as the gallery shows it.
    A video's caption is the whole video's (the store puts it on every keyframe). A blank text
    is a UsageError, never a silent clear: a person who emptied the box by mistake keeps their
    caption. LookupError when no indexed file has this id. `encoder_loader(source, settings)`
    gives the CLIP text tower (default `load_encoder`; the gallery passes its warm one)."""
    encoder_loader = encoder_loader or load_encoder
    if text is not None:
        text = " ".join(text.split())
        if not text:
            raise UsageError(EMPTY)
    if text is not None and len(text) > MAX_CHARS:
        raise UsageError(f"a caption holds at most {MAX_CHARS} characters")
    conn = connect_readonly(settings.db_path)
    try:
        stored, row = photos.photo_row(conn, file_id, model, settings)
        if row["result_id"] is None:
            raise StoreError(
                f"{row['path']} has no caption by model {stored!r} to edit (run imgcap index"
                " on it with that model)"
            )
        source = model_source(conn, stored, model, settings)
    finally:
        conn.close()
    if text is None:
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

"""The query side of CLIP for search: which stored model a search reads, where its encoder
loads from, and the unit query vectors (text, --like image, --not) it searches with."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from indexer.config import Settings
from indexer.errors import IndexingInProgress, ModelNotAvailableError, StoreError, UsageError
from indexer.models.model_dir import stored_name
from indexer.store.errors import conn_path
from indexer.store.lock import writer_active
from indexer.store.queries import model_sources, models_with_results

NEGATIVE_WEIGHT = 1.0  # query vector = q - w * negative (as rclip does): both unit length


class TextImageEncoder:
    """What search needs from CLIP (indexer.models.clip.ClipEncoder satisfies it)."""

    image_size: int

    def encode_texts(self, texts: list[str]): ...  # -> (B, D)
    def encode_images(self, pixels): ...  # (B, 3, S, S) -> (B, D)


EncoderLoader = Callable[[str, Settings], TextImageEncoder]


def load_encoder(model: str, settings: Settings) -> TextImageEncoder:
    """CLIP only (never the captioner): a search needs nothing else from the model.

    Text goes through the NumPy text tower when it can reproduce the model exactly (no torch
    import: the cold-start budget); images (--like) and other models load the torch encoder,
    only when first used."""
    return _QueryEncoder(model, settings)


class _QueryEncoder:
    def __init__(self, model: str, settings: Settings):
        from indexer.models.loading import resolve_model_dir
        from indexer.models.model_dir import read_spec
        from search.text_encoder import load_text_encoder

        self.model, self.settings = model, settings
        self._torch = None
        model_dir = resolve_model_dir(model, settings)
        clip = read_spec(model_dir)["clip"]
        clip_dir = Path(clip["dir"]).expanduser()
        clip_dir = clip_dir if clip_dir.is_absolute() else model_dir / clip_dir
        self._text = load_text_encoder(clip_dir, bool(clip.get("quick_gelu", True)))

    def _torch_encoder(self):
        if self._torch is None:
            from indexer.models.loading import load_model

            self._torch = load_model(self.model, self.settings, captioner=False).encoder
        return self._torch

    def encode_texts(self, texts: list[str]):
        if self._text is not None:
            return self._text.encode_texts(texts)
        return self._torch_encoder().encode_texts(texts)

    @property
    def image_size(self) -> int:
        return self._torch_encoder().image_size

    @property
    def mean(self) -> tuple:  # the CLIP's Normalize, for indexer.media.preprocess.encoder_tensor
        return self._torch_encoder().mean

    @property
    def std(self) -> tuple:
        return self._torch_encoder().std

    def encode_images(self, pixels):
        return self._torch_encoder().encode_images(pixels)


def unit_vector(v: np.ndarray) -> np.ndarray:
    """v as a flat float32 vector of length 1 (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def resolve_model(conn: sqlite3.Connection, requested: str | None, settings: Settings) -> str:
    """The stored model name to search. An explicit name (or model directory) must have results;
    without one, the settings' model if it has results, else the model with the most results."""
    indexed = models_with_results(conn)
    if not indexed:
        if writer_active(Path(conn_path(conn))):
            raise IndexingInProgress(
                "indexing in progress: nothing committed yet; search again in a moment"
            )
        raise StoreError("the index is empty: run `imgcap index PATH` first")
    if requested is None:
        wanted = stored_name(settings.model)  # IMGCAP_MODEL may name a model directory
        return wanted if wanted in indexed else indexed[0]
    if requested in indexed:
        return requested
    from indexer.models.model_dir import is_model_dir, read_spec

    path = Path(requested).expanduser()
    if ("/" in requested or "\\" in requested) and not path.exists():
        raise UsageError(f"--model {path}: no such folder")
    if is_model_dir(requested):
        name = read_spec(Path(requested).expanduser())["name"]
        if name in indexed:
            return name
    raise UsageError(
        f"no results for model {requested!r} in this index; indexed: {', '.join(indexed)}"
    )


def model_source(
    conn: sqlite3.Connection, model: str, requested: str | None, settings: Settings
) -> str:
    """What to load the query encoder from for the stored model `model`: what the user named
    (--model, or IMGCAP_MODEL when it names this model), else where `imgcap index` loaded it
    from (remembered in the database), else the name itself (a registry name)."""
    if requested is not None:
        return requested
    if settings.model != model and stored_name(settings.model) == model:
        return settings.model
    source = model_sources(conn).get(model)
    if source is None or not os.path.isabs(source):
        return source or model
    from indexer.models.model_dir import is_model_dir

    if not is_model_dir(source):
        raise ModelNotAvailableError(
            f"this index was made with model {model!r} from the directory {source}, which is"
            " no longer there: pass --model DIR with its model directory (or use --mode keyword)"
        )
    return source


CLIP_TOWER = "clip"  # CLIP's own text tower (English queries)
MULTILINGUAL_TOWER = "multilingual"  # the query-side multilingual tower (other languages)


@lru_cache(maxsize=4)
def _tower_dir(name: str, settings: Settings, download: bool) -> Path:
    """The checked tower directory, once per process (a registry tower is seven hub-cache
    look-ups; the gallery asks on every query). A failure is not remembered: the next try
    looks again."""
    from indexer.models.loading import resolve_tower_dir

    return resolve_tower_dir(name, settings, download)


def multilingual_encoder(settings: Settings, dim: int, forced: bool):
    """The multilingual text encoder for an index of `dim`-d vectors, or None when it can't
    serve: not downloaded (a forced language downloads it, as --model does a model), or
    trained for another CLIP's space.
    Those are errors only when `forced` (--lang named the language): a detected language falls
    back to CLIP's own tower, which the output says."""
    from search.multilingual import load_multilingual_encoder

    try:
        # Detected, not forced: only a tower already here (no 540 MB download unasked).
        encoder = load_multilingual_encoder(_tower_dir(settings.text_tower, settings, forced))
    except ModelNotAvailableError:
        if forced:
            raise
        return None
    if encoder.embed_dim != dim:
        if forced:
            raise UsageError(
                f"the text tower {settings.text_tower!r} makes {encoder.embed_dim}-d vectors but"
                f" this index holds {dim}-d ones (another CLIP): search with --lang en"
            )
        return None
    return encoder


def query_vectors(
    req, model: str, settings: Settings, loader: EncoderLoader, text_encoder=None
) -> tuple[np.ndarray, np.ndarray]:
    """(the query vector, the vector actually searched with): unit text and/or image vectors;
    --not subtracts its text vector from the searched one (inner product is linear, so that is
    the same as ranking by cos(q) - w * cos(neg)). `text_encoder`: what encodes the text (the
    multilingual tower); None = the model's CLIP, which is then loaded only if needed."""
    if req.like is not None:
        from indexer.media.decode import check_header

        # Refuse a FIFO, a non-image or an over-cap photo from its header, before the model loads.
        check_header(req.like, settings.max_pixels_for(1))
    encoder = None
    if text_encoder is None or req.like is not None:
        try:
            encoder = loader(model, settings)
        except UsageError:
            raise UsageError(
                f"this index was made by model {model!r}, which is not a registry name: pass"
                " --model DIR (its model directory) to search by meaning, or use --mode keyword"
            ) from None
    texts = text_encoder or encoder
    parts = []
    if req.text and req.text.strip():
        parts.append(unit_vector(np.asarray(texts.encode_texts([req.text.strip()]))[0]))
    if req.like is not None:
        from indexer.media.preprocess import encoder_tensor, model_pixels

        size = getattr(encoder, "image_size", 224)
        _, px = model_pixels(req.like, size, settings.resize, settings.max_pixels_for(1))
        pixels = encoder_tensor(encoder, px)[None]  # (1, 3, S, S), as `imgcap index` sees it
        parts.append(unit_vector(np.asarray(encoder.encode_images(pixels))[0]))
    q = unit_vector(np.sum(parts, axis=0))
    searched = q
    if req.negative and req.negative.strip():
        neg = unit_vector(np.asarray(texts.encode_texts([req.negative.strip()]))[0])
        searched = q - NEGATIVE_WEIGHT * neg
    return q, searched

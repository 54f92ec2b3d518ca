"""Duplicate groups as `imgcap duplicates` shows them: exact copies (files with one content hash)
and near-duplicates (indexer/run/similar.py), each group's original first and every other file
with why it belongs ("same file", or "looks alike" with the perceptual hash distance and image
vector cosine to the original). Computed fresh from the store, so it never lags the index."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import StoreError
from indexer.media.perceptual_hash import hamming
from indexer.run.similar import Grouping, load_grouping, normalised, original_order
from indexer.store.connection import connect_readonly
from indexer.store.roots import under
from indexer.store.schema import MIGRATIONS, m010_similar_groups, schema_version
from indexer.store.similar_groups import image_vectors, latest_model

# The first schema with perceptual hashes.
PERCEPTUAL_SCHEMA = MIGRATIONS.index(m010_similar_groups) + 1


def duplicate_groups(db_path: Path, in_dir: str | None = None) -> dict[str, Any]:
    """{"model", "groups": [{"original": path, "files": [{"path", "why", "distance",
    "cosine"}...]}], "groups_count", "files_count", "without_perceptual_hash"}: the groups with
    a file under `in_dir` (None: all), each with the original's other paths first."""
    conn = connect_readonly(Path(db_path))
    try:
        if schema_version(conn) < PERCEPTUAL_SCHEMA:
            raise StoreError(
                f"{db_path} was indexed before perceptual hashes existed: run `imgcap index`"
                " on its folders once (no photo is captioned again), then `imgcap duplicates`"
            )
        model = latest_model(conn)
        grouping = load_grouping(conn, model)
        groups = _groups(grouping, conn, model)
        unhashed = sum(1 for c in grouping.contents if c.perceptual_hash is None)
    finally:
        conn.close()
    if in_dir is not None:
        top = os.path.abspath(os.path.expanduser(in_dir))
        groups = [
            g
            for g in groups
            if under(g["original"], top) or any(under(f["path"], top) for f in g["files"])
        ]
    return {
        "model": model,
        "groups": groups,
        "groups_count": len(groups),
        "files_count": sum(1 + len(g["files"]) for g in groups),
        # Contents never compared as near-duplicates: videos, or photos indexed before
        # perceptual hashes existed (the next `imgcap index` adds theirs).
        "without_perceptual_hash": unhashed,
    }


def _groups(grouping: Grouping, conn, model: str | None) -> list[dict[str, Any]]:
    contents = grouping.contents
    grouped = {i for g in grouping.groups for i in g}
    # Exact copies outside every near-duplicate group are groups of their own.
    alone = [[i] for i, c in enumerate(contents) if i not in grouped and len(c.paths) > 1]
    every = [*grouping.groups, *alone]
    every.sort(key=lambda g: original_order(contents[g[0]]))
    vec_of: dict[str, np.ndarray] = {}
    if model is not None and grouping.groups:
        keys, vecs = image_vectors(conn, model, [contents[i].content_hash for i in grouped])
        vec_of = dict(zip(keys, normalised(vecs), strict=True)) if keys else {}
    out = []
    for g in every:
        first = contents[g[0]]
        files = [{"path": p, "why": "same file"} for p in first.paths[1:]]
        for i in g[1:]:
            c = contents[i]
            d = hamming(first.perceptual_hash, c.perceptual_hash)
            va, vb = vec_of.get(first.content_hash), vec_of.get(c.content_hash)
            cos = None if va is None or vb is None else round(float(va @ vb), 3)
            why = f"looks alike (pHash d={d}" + (f", cosine {cos:.2f})" if cos is not None else ")")
            for p in c.paths:
                files.append({"path": p, "why": why, "distance": d, "cosine": cos})
        out.append({"original": first.paths[0], "files": files})
    return out

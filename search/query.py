"""Ranking: one query against three signals, fused, with an explanation on every hit.

Signals (each a ranked list of results of one model):
  image    cosine of the query's CLIP vector with the photo's image vector   (FAISS)
  caption  cosine of the query's CLIP vector with the caption's text vector  (FAISS)
  keyword  FTS5 BM25 of the query words over the captions                    (SQLite)

Fusion is reciprocal-rank fusion (Cormack et al., 2009): score = sum over signals of
1 / (RRF_K + rank). It needs no per-collection tuning because it ignores the raw score scales,
which differ wildly (image-text cosines sit around 0.2-0.35, text-text cosines around 0.5-0.9,
BM25 is unbounded and depends on caption length and collection size). The fused score shown is
divided by its maximum (first in every signal), so 1.0 = "best by every signal".
benchmarks/bench_fusion.py measures it against score-sum fusions.

Filters restrict the candidates inside each signal (FAISS selector / exact subset search, SQL
for keywords), and the candidate depth grows until `limit` hits survive the filters, the
on-disk check and --min-score, or the signals run out. Hits are files: duplicates that share
one result appear once each.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.store import photo_tags, places
from indexer.store.connection import connect_readonly
from indexer.store.queries import (
    FileFilter,
    files_for_results,
    filtered_result_ids,
    keyword_matches,
    keyword_subset,
)
from search.photos import camera_name
from search.query_encoder import (
    EncoderLoader,
    load_encoder,
    model_source,
    query_vectors,
    resolve_model,
)

MODES = ("hybrid", "image", "caption", "keyword")
RRF_K = 60  # the constant from the RRF paper; damps the difference between ranks 1 and 2
MIN_CANDIDATES = 100  # first candidate depth per signal; grows x4 while hits are missing
MAX_KEYWORD_DEPTH = 1 << 40  # SQLite LIMIT is a signed 64-bit integer; far above any library


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None  # natural-language query
    like: Path | None = None  # query by example: an image file (need not be indexed)
    negative: str | None = None  # --not: photos matching this are pushed down
    limit: int = 20
    mode: str = "hybrid"
    filters: FileFilter = field(default_factory=FileFilter)
    min_score: float | None = None  # minimum cosine (image signal; caption signal in caption mode)
    model: str | None = None  # None = the settings' model if indexed, else the largest one
    understand: bool = False  # read dates, places, folders, cameras out of `text` (understand.py)
    today: date | None = None  # what relative dates count from (None: today, local time)
    min_candidates: int = MIN_CANDIDATES  # first candidate depth per signal


@dataclass
class Signal:
    score: float | None  # cosine for image/caption, BM25 for keyword (None: did not match)
    rank: int | None  # 1-based rank in this signal's candidate list (None: not in it)


@dataclass
class Hit:
    rank: int
    score: float  # fused (hybrid) or the single signal's score
    path: str
    caption: str
    model: str
    signals: dict[str, Signal]
    matched: list[str]  # query words that occur in the caption
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    indexed_at: str | None = None
    tags: list[str] = field(default_factory=list)  # the photo's own tags the query matched
    at_seconds: float | None = None  # a video: its best-matching keyframe's time (seconds)
    place: str | None = None  # "Paris, Île-de-France, France", named from the photo's GPS
    understood: dict[str, Any] | None = None  # what the query was read as (understand.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; scores rounded to 4 places (float noise is not information)."""
        d = asdict(self)
        d["score"] = round(self.score, 4)
        d["signals"] = {
            k: {"score": None if v.score is None else round(v.score, 4), "rank": v.rank}
            for k, v in self.signals.items()
        }
        if not d["tags"]:
            del d["tags"]  # only photos with matching tags say so
        if d["at_seconds"] is None:
            del d["at_seconds"]  # only videos have a moment
        for key in ("place", "understood"):
            if d[key] is None:
                del d[key]  # only photos with a place, only queries read as more than words
        return d


def hit_from_row(
    row: dict[str, Any],
    rank: int,
    score: float,
    model: str,
    signals: dict[str, Signal],
    matched: list[str],
    with_place: bool = True,
) -> Hit:
    """The hit for one file row of `files_for_results`."""
    return Hit(
        rank=rank,
        score=score,
        path=row["path"],
        caption=row["caption"],
        model=model,
        signals=signals,
        matched=matched,
        width=row["width"],
        height=row["height"],
        taken_at=row["taken_at"],
        camera=camera_name(row),
        indexed_at=row["indexed_at"],
        place=row.get("place") if with_place else None,
        at_seconds=row.get("at_s"),
    )


# ----------------------------------------------------------------------------------- helpers
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(text: str | None) -> list[str]:
    """Words of a query, casefolded, deduplicated, in order (what keyword search and the
    explanation use; punctuation and FTS operators are not words here)."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(text or ""):
        seen.setdefault(w.casefold(), None)
    return list(seen)


def fts_query(words: list[str]) -> str | None:
    """A safe FTS5 MATCH expression: every word quoted (so AND, NEAR, '*', ':' and '-' are plain
    text, never syntax), any word may match; BM25 ranks captions with more of them higher."""
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def matched_words(caption: str, words: list[str]) -> list[str]:
    caption_words = {w.casefold() for w in _WORD.findall(caption)}
    return [w for w in words if w in caption_words]


def _validate(req: SearchRequest) -> None:
    if req.mode not in MODES:
        raise UsageError(f"unknown mode {req.mode!r} (one of {', '.join(MODES)})")
    if req.limit < 1:
        raise UsageError("--limit must be at least 1")
    text = (req.text or "").strip()
    if not text and req.like is None:
        raise UsageError("empty query: give some words to search for, or --like PHOTO")
    if req.mode == "keyword":
        if req.like is not None:
            raise UsageError("--like needs an image or caption search, not --mode keyword")
        if not query_words(text):
            raise UsageError(f"no words to search for in {text!r}")
        if req.min_score is not None:
            raise UsageError("--min-score is a CLIP similarity; --mode keyword has none")


# ------------------------------------------------------------------------------------ search
def search(
    db_path: Path,
    req: SearchRequest,
    settings: Settings,
    encoder_loader: EncoderLoader | None = None,
) -> list[Hit]:
    """Run one search against the database at db_path (read-only; safe during an index run).

    `encoder_loader(model, settings)` gives the CLIP encoder (default: `load_encoder`); it is only
    called when a vector signal is needed, so keyword searches never import torch."""
    return search_understood(db_path, req, settings, encoder_loader)[0]


def search_understood(
    db_path: Path,
    req: SearchRequest,
    settings: Settings,
    encoder_loader: EncoderLoader | None = None,
) -> tuple[list[Hit], Any]:
    """`search`, and what the query was read as (an understand.Understood; None when
    `req.understand` is off). Every hit carries it too (`Hit.understood`) when it found more
    than words."""
    filter_only = [" ".join(req.filters.tags)] if req.filters.tags else []
    if req.filters.place:
        filter_only.append(" ".join(req.filters.place))
    if not (req.text or "").strip() and req.like is None and filter_only:
        # `imgcap search --tag grandma` / `--place Paris`: those photos, ranked by the words.
        req = replace(req, text=" ".join(filter_only))
    _validate(req)
    encoder_loader = encoder_loader or load_encoder
    conn = connect_readonly(db_path)
    try:
        got = None
        if req.understand and (req.text or "").strip():
            from search import understand

            got = understand.understand(
                req.text,
                understand.IndexVocabulary(conn),
                today=req.today,
                skip=understand.skipped_kinds(req.filters),
            )
            req = replace(req, text=got.text, filters=understand.apply(req.filters, got))
        hits = _search(conn, Path(db_path), req, settings, encoder_loader)
        if got is not None and got.any:
            for hit in hits:
                hit.understood = got.to_dict()
        return hits, got
    finally:
        conn.close()


def _search(
    conn: sqlite3.Connection,
    db_path: Path,
    req: SearchRequest,
    settings: Settings,
    encoder_loader: EncoderLoader,
) -> list[Hit]:
    model = resolve_model(conn, req.model, settings)
    words = query_words(req.text)
    signals = {
        "hybrid": ["image", "caption", "keyword"] if words else ["image", "caption"],
        "image": ["image"],
        "caption": ["caption"],
        "keyword": ["keyword"],
    }[req.mode]
    vector_signals = [s for s in signals if s != "keyword"]

    if req.filters.tags and not photo_tags.exists(conn):
        return []  # indexed before tags were read: no photo has any yet
    if req.filters.place and not places.exists(conn):
        return []  # indexed before places were named: no photo has one yet
    allowed = filtered_result_ids(conn, model, req.filters) if req.filters.active else None
    if allowed is not None and len(allowed) == 0:
        return []

    indexes: dict = {}
    q = searched = None
    if vector_signals:
        from search.vectors import cache

        indexes = cache.load_model(db_path, conn, model, settings.vector_memory_gb)
        # Load by what the user named (a model directory's stored name is not a path).
        source = model_source(conn, model, req.model, settings)
        q, searched = query_vectors(req, source, settings, encoder_loader)
        dim = indexes["image"].index.d
        if len(q) != dim:
            raise StoreError(
                f"the index for {model!r} holds {dim}-d vectors but the model makes {len(q)}-d"
                " ones; re-index with this model"
            )
    # The similarity --min-score is compared with (the positive query, never the --not one).
    gate = "caption" if req.mode == "caption" else "image"
    kw = fts_query(words)
    neg_kw = fts_query(query_words(req.negative))

    # More than the collection holds means "all of them": cap the candidate depth at the index
    # size (+1, so a full list still reads as exhausted), or -n 9223372036854775807 overflows.
    cap = max((ix.ntotal for ix in indexes.values()), default=MAX_KEYWORD_DEPTH) + 1
    depth = min(max(req.min_candidates, 4 * min(req.limit, cap)), max(cap, req.min_candidates))
    while True:
        lists: dict[str, list[tuple[int, float]]] = {}
        exhausted = True
        for s in signals:
            if s == "keyword":
                found = keyword_matches(conn, model, kw, depth, req.filters)
                if neg_kw and found:
                    bad = keyword_subset(conn, neg_kw, [i for i, _ in found])
                    # Push down, not out: matches of --not go after every other keyword match.
                    found = sorted(found, key=lambda x: x[0] in bad)  # stable sort
            else:
                ids, sims = indexes[s].search(searched, depth, allowed)
                found = list(zip(ids.tolist(), sims.tolist(), strict=True))
            exhausted &= len(found) < depth
            lists[s] = found

        relevance: dict[int, float] = {}
        if req.min_score is not None:
            cands = np.array(sorted({i for lst in lists.values() for i, _ in lst}), dtype=np.int64)
            relevance = indexes[gate].scores(q, cands)
            for s in lists:
                lists[s] = [x for x in lists[s] if relevance.get(x[0], -1.0) >= req.min_score]
            # The gate list is sorted by that very cosine (unless --not reorders it): once it drops
            # below the cutoff, deeper candidates cannot pass either.
            if not req.negative and gate in lists and len(lists[gate]) < depth:
                exhausted = True

        hits = _fuse_and_expand(conn, lists, req, model, words, indexes, q)
        if len(hits) >= req.limit or exhausted:
            return hits[: req.limit]
        depth = min(depth * 4, max(cap, req.min_candidates))


def _fuse_and_expand(
    conn: sqlite3.Connection,
    lists: dict[str, list[tuple[int, float]]],
    req: SearchRequest,
    model: str,
    words: list[str],
    indexes: dict,
    q: np.ndarray | None,
) -> list[Hit]:
    ranks = {s: {rid: r for r, (rid, _) in enumerate(lst, start=1)} for s, lst in lists.items()}
    raw = {s: dict(lst) for s, lst in lists.items()}
    fused: dict[int, float] = {}
    for rs in ranks.values():
        for rid, r in rs.items():
            fused[rid] = fused.get(rid, 0.0) + 1.0 / (RRF_K + r)
    if len(lists) == 1:
        # One signal: its own score is the meaningful number (a cosine, or BM25).
        (only,) = lists
        fused = dict(raw[only])
    else:
        top = len(lists) / (RRF_K + 1)
        fused = {rid: v / top for rid, v in fused.items()}
    best_rank = {rid: min(rs.get(rid, math.inf) for rs in ranks.values()) for rid in fused}
    if len(lists) == 1:
        order = sorted(fused, key=lambda rid: best_rank[rid])  # the list's order (--not included)
    else:
        order = sorted(fused, key=lambda rid: (-fused[rid], best_rank[rid], rid))

    # Cosines for every shown result in every vector signal, even where it was not a candidate.
    exact: dict[str, dict[int, float]] = {}
    if q is not None:
        ids = np.array(order, dtype=np.int64)
        exact = {s: indexes[s].scores(q, ids) for s in lists if s in indexes}

    by_result: dict[int, list[dict[str, Any]]] = {}
    for row in files_for_results(conn, order, req.filters):
        by_result.setdefault(row["result_id"], []).append(row)
    # Tags are per photo, results per content: in a keyword search a copy whose caption
    # doesn't match is shown only if its own tags or description do.
    tags_only: set[int] = set()
    own_match: set[str] = set()
    if "keyword" in lists and words:
        kw = fts_query(words)
        paths = [r["path"] for rows in by_result.values() for r in rows]
        own_match = photo_tags.matching_paths(conn, kw, paths)
        own_match |= places.matching_paths(conn, kw, paths)  # a photo's place is its own too
        if req.mode == "keyword":
            tags_only = set(order) - keyword_subset(conn, kw, order)

    hits: list[Hit] = []
    shown_videos: set[str] = set()  # a video is shown once, at its best keyframe (first in order)
    for rid in order:
        # copies whose own tags matched first
        for row in sorted(by_result.get(rid, []), key=lambda r: r["path"] not in own_match):
            if not os.path.exists(row["path"]):
                continue  # deleted or moved since the last index run: never shown
            if rid in tags_only and row["path"] not in own_match:
                continue  # found through another copy's tags, not this photo's
            if row.get("at_s") is not None:
                if row["path"] in shown_videos:
                    continue
                shown_videos.add(row["path"])
            sig = {}
            for s in lists:
                score = exact.get(s, {}).get(rid, raw[s].get(rid))
                sig[s] = Signal(score=score, rank=ranks[s].get(rid))
            matched = matched_words(row["caption"], words)
            hits.append(hit_from_row(row, len(hits) + 1, float(fused[rid]), model, sig, matched))
            if len(hits) >= req.limit:
                return _with_tags(conn, hits, words)
    return _with_tags(conn, hits, words)


def _with_tags(conn: sqlite3.Connection, hits: list[Hit], words: list[str]) -> list[Hit]:
    """Mark each hit with its own tags that the query words occur in (the `tag` marker of
    "why it matched")."""
    if not words:
        return hits
    tags = photo_tags.tags_for_paths(conn, [h.path for h in hits])
    for hit in hits:
        hit.tags = [t for t in tags.get(hit.path, []) if matched_words(t, words)]
    return hits

"""Ranking: one query against three signals, fused, with an explanation on every hit.

Signals (each a ranked list of results of one model):
  image    cosine of the query's CLIP vector with the photo's image vector   (FAISS)
  caption  cosine of the query's CLIP vector with the caption's text vector  (FAISS)
  keyword  FTS5 BM25 of the query words over the captions                    (SQLite)

Fusion is weighted reciprocal-rank fusion (search/fusion.py): score = sum over signals of
weight / (k + rank), k and the weights from Settings (equal weights and k = 60 by default). It
ignores the raw score scales, which differ wildly between signals. The fused score shown is
divided by its maximum (first in every signal), so 1.0 = "best by every signal".
benchmarks/bench_fusion.py measures it against score-sum fusions.

A person's own words rank first (`own_words_first`, a step after the fusion): in a hybrid search
with words, the candidates whose photo's own words (tags, description, a caption a person wrote,
place, the folders below its root; never the generated caption) hold every query word come
before all others, each part in fused order (`Hit.own_words_all`; benchmarks/bench_ranking.py).
The photos whose tags, description, place or own caption match a query word are candidates on
their own too: the keyword list cuts them, with generated captions, at the candidate depth.
`--like` alone ranks by the image signal only: the visually nearest first.

Filters restrict the candidates inside each signal (FAISS selector / exact subset search, SQL
for keywords), and the candidate depth grows until `limit` hits survive the filters, the
on-disk check and --min-score, or the signals run out.

Hits are groups by default: byte-identical copies (one content hash, so one result) and
near-duplicates (burst frames, resized or edited exports: a group the index run found) are ONE
hit, the best-ranked member of the group, with the group's other files (passing the filters, on
disk) in `Hit.similar`, each marked "same file" or "looks alike". Members rank alike only when
they share a result (copies); then the one whose own tags matched comes first, then the
shortest path.
`limit` counts groups. `SearchRequest.all_files` (`imgcap search --all`): every file its own
hit, `similar` empty.

Filters alone are a search too (`browse`): `imgcap search --in DIR`, `--tag Grandma`, or a
query read as nothing but filters ("photos from Paris 2019"). The photos passing them come
newest taken first, undated ones after (by path), grouped as above; no signal ranks them.

Every hit says which query words it matched (`matched`) and, when some matched the photo's own
words (tags, description, place, the folders below its root), where (`matched_in`).
"""

from __future__ import annotations

import itertools
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
from indexer.store import cjk, photo_tags, photo_text, places, similar_groups
from indexer.store.connection import connect_readonly
from indexer.store.places import fold
from indexer.store.queries import (
    FileFilter,
    browse_rows,
    files_for_results,
    filtered_result_ids,
    keyword_matches,
    keyword_subset,
    own_word_matches,
    own_words,
    paths_with_hashes,
    text_matches,
)
from indexer.store.roots import root_folders, under
from search.fusion import fuse
from search.language import AUTO, ENGLISH, check_lang, function_words, query_language
from search.photos import camera_name
from search.query_encoder import (
    CLIP_TOWER,
    MULTILINGUAL_TOWER,
    EncoderLoader,
    load_encoder,
    model_source,
    multilingual_encoder,
    query_vectors,
    resolve_model,
)

MODES = ("hybrid", "image", "caption", "keyword", "text")  # text: the words read in photos (OCR)
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
    all_files: bool = False  # every file its own hit (--all), not one hit per group of copies
    # Hybrid: photos whose own words hold every query word first (`own_words_first`); off only
    # to measure the fusion alone (benchmarks/bench_ranking.py)
    own_words_first: bool = True
    # The query's language (search/language.py): "auto" = detected; "en" = CLIP's own text tower
    # and keywords over everything; any other = the multilingual tower, and keywords over the
    # photo's own words only (generated captions are English)
    lang: str = "auto"
    detected: str | None = None  # the language of the words as typed (before understanding)


@dataclass
class Signal:
    score: float | None  # cosine for image/caption, BM25 for keyword (None: did not match)
    rank: int | None  # 1-based rank in this signal's candidate list (None: not in it)


SAME_FILE = "same file"  # byte-identical to the hit's file (one content hash)
LOOKS_ALIKE = "looks alike"  # in the hit's near-duplicate group (a burst frame, a resized copy)


@dataclass
class SimilarFile:
    path: str
    why: str  # SAME_FILE or LOOKS_ALIKE


@dataclass
class Hit:
    rank: int
    score: float  # fused (hybrid) or the single signal's score
    path: str
    caption: str
    model: str
    signals: dict[str, Signal]
    matched: list[str]  # query words that occur in the caption or the photo's own words
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    indexed_at: str | None = None
    tags: list[str] = field(default_factory=list)  # the photo's own tags the query matched
    at_seconds: float | None = None  # a video: its best-matching keyframe's time (seconds)
    place: str | None = None  # "Paris, Île-de-France, France", named from the photo's GPS
    understood: dict[str, Any] | None = None  # what the query was read as (understand.py)
    # Its own words (tags, description, a person's caption, place, folders) hold every query
    # word, so it ranks above every photo whose own words don't (`own_words_first`)
    own_words_all: bool = False
    # Where `matched` words occur, when one occurs in the photo's own words: {"caption": [...],
    # "tag": [...], "description": [...], "place": [...], "folder": [...]} (keys with words only)
    matched_in: dict[str, list[str]] = field(default_factory=dict)
    # The group's other files, hidden behind this hit ("+N similar"); empty with --all
    similar: list[SimilarFile] = field(default_factory=list)
    language: str | None = None  # the query's language ("de"); None without query words
    text_tower: str | None = None  # "clip" or "multilingual"; None when no text was encoded

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
        for key in ("place", "understood", "language", "text_tower"):
            if d[key] is None:
                del d[key]  # only photos with a place, only queries read as more than words
        if not d["similar"]:
            del d["similar"]  # only photos with copies or look-alikes
        if not d["own_words_all"]:
            del d["own_words_all"]  # only photos ranked first by their own words
        if not d["matched_in"]:
            del d["matched_in"]  # only photos matched in their own words, not the caption alone
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
    # A CJK word is the phrase of its character bigrams (indexer/store/cjk.py)
    return " OR ".join(cjk.fts_term(w) for w in words)


def phrase_query(text: str | None) -> str | None:
    """The FTS5 phrase for `imgcap search --text`: its words in order, next to each other (case,
    punctuation and line breaks between them don't count). None: no words."""
    words = [w.casefold() for w in _WORD.findall(text or "")]
    return '"' + " ".join(words) + '"' if words else None


def matched_words(caption: str, words: list[str]) -> list[str]:
    caption_words = {w.casefold() for w in _WORD.findall(caption)}
    return [w for w in words if w in caption_words or (cjk.has_cjk(w) and cjk.contains(caption, w))]


def _validate(req: SearchRequest) -> None:
    if req.mode not in MODES:
        raise UsageError(f"unknown mode {req.mode!r} (one of {', '.join(MODES)})")
    if req.limit < 1:
        raise UsageError("--limit must be at least 1")
    text = (req.text or "").strip()
    if not text and req.like is None:
        if not req.filters.active:
            raise UsageError(
                "empty query: give some words to search for, --like PHOTO, or a filter"
                " (--in, --tag, --place, --camera, --after, --before)"
            )
        _validate_browse(req)
        return
    if req.mode in ("keyword", "text"):
        if req.like is not None:
            raise UsageError(f"--like needs an image or caption search, not --mode {req.mode}")
        if not query_words(text):
            raise UsageError(f"no words to search for in {text!r}")
        if req.min_score is not None:
            raise UsageError(f"--min-score is a CLIP similarity; --mode {req.mode} has none")


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
    _validate(req)
    if (req.text or "").strip():
        # Read from the words as typed: understanding may take "Sommer 2019" out of them.
        req = replace(req, detected=query_language(req.text, check_lang(req.lang)))
    encoder_loader = encoder_loader or load_encoder
    conn = connect_readonly(db_path)
    try:
        got = None
        if req.filters.place:
            req = replace(req, filters=replace(req.filters, place=_place_names(conn, req)))
        if req.understand and (req.text or "").strip():
            from search import understand

            got = understand.understand(
                req.text,
                understand.IndexVocabulary(conn),
                today=req.today,
                skip=understand.skipped_kinds(req.filters),
            )
            asked = req.text
            req = replace(req, text=got.text, filters=understand.apply(req.filters, got))
            if req.like is None and req.filters.active and not leftover_words(asked, got.words):
                req = replace(req, text=None)  # "photos from Paris 2019": filters alone
                _validate(req)
        if not (req.text or "").strip() and req.like is None:
            hits = browse(conn, req, settings)
        else:
            hits = _search(conn, Path(db_path), req, settings, encoder_loader)
        if got is not None and got.any:
            for hit in hits:
                hit.understood = got.to_dict()
        return hits, got
    finally:
        conn.close()


def _place_names(conn: sqlite3.Connection, req: SearchRequest) -> tuple[str, ...]:
    """The --place names as the index spells them: another name of an indexed place
    ("München", "Köln"'s "Cologne", "北京") becomes the gazetteer's (place_names.py)."""
    from search import understand

    known = understand.IndexVocabulary(conn).places()
    return tuple(known.get(fold(name), name) for name in req.filters.place)


def _search(
    conn: sqlite3.Connection,
    db_path: Path,
    req: SearchRequest,
    settings: Settings,
    encoder_loader: EncoderLoader,
) -> list[Hit]:
    model = resolve_model(conn, req.model, settings)
    words = query_words(req.text)
    language = (req.detected or query_language(req.text, check_lang(req.lang))) if words else None
    foreign = language not in (None, ENGLISH)
    # --like alone: the visually nearest first. The caption signal (the photo's image vector
    # against caption text vectors) pushed the nearest out of the top 3, so it is left out.
    hybrid = ["image"] if req.like is not None else ["image", "caption"]
    signals = {
        "hybrid": ["image", "caption", "keyword"] if words else hybrid,
        "image": ["image"],
        "caption": ["caption"],
        "keyword": ["keyword"],
        "text": ["text"],
    }[req.mode]
    if req.mode == "hybrid" and words and photo_text.has_text(conn):
        signals = [*signals, "text"]  # the words read in the photos (OCR): a signal of its own
    vector_signals = [s for s in signals if s not in ("keyword", "text")]

    if req.filters.tags and not photo_tags.exists(conn):
        return []  # indexed before tags were read: no photo has any yet
    if req.filters.place and not places.exists(conn):
        return []  # indexed before places were named: no photo has one yet
    if req.filters.text and not photo_text.exists(conn):
        return []  # indexed before text was read: no photo has any yet
    allowed = filtered_result_ids(conn, model, req.filters) if req.filters.active else None
    if allowed is not None and len(allowed) == 0:
        return []

    indexes: dict = {}
    q = searched = None
    text_tower = None
    if vector_signals:
        from search.vectors import cache

        indexes = cache.load_model(db_path, conn, model, settings.vector_memory_gb)
        # Load by what the user named (a model directory's stored name is not a path).
        source = model_source(conn, model, req.model, settings)
        dim = indexes["image"].index.d
        tower = None
        if foreign:
            tower = multilingual_encoder(settings, dim, forced=req.lang != AUTO)
        text_tower = None if not words else (MULTILINGUAL_TOWER if tower else CLIP_TOWER)
        q, searched = query_vectors(req, source, settings, encoder_loader, tower)
        if len(q) != dim:
            raise StoreError(
                f"the index for {model!r} holds {dim}-d vectors but the model makes {len(q)}-d"
                " ones; re-index with this model"
            )
    # The similarity --min-score is compared with (the positive query, never the --not one).
    gate = "caption" if req.mode == "caption" else "image"
    kw = fts_query(words)
    neg_kw = fts_query(query_words(req.negative))
    # A person's own words first (`own_words_first`): its candidates are searched on their own.
    tiered = req.own_words_first and len(signals) > 1 and "keyword" in signals
    own_kw = fts_query(sorted(_wanted(words, language))) if tiered else None

    # More than the collection holds means "all of them": cap the candidate depth at the index
    # size (+1, so a full list still reads as exhausted), or -n 9223372036854775807 overflows.
    cap = max((ix.ntotal for ix in indexes.values()), default=MAX_KEYWORD_DEPTH) + 1
    depth = min(max(req.min_candidates, 4 * min(req.limit, cap)), max(cap, req.min_candidates))
    while True:
        lists: dict[str, list[tuple[int, float]]] = {}
        exhausted = True
        for s in signals:
            if s == "keyword":
                found = keyword_matches(conn, model, kw, depth, req.filters, not foreign)
                if neg_kw and found:
                    bad = keyword_subset(conn, neg_kw, [i for i, _ in found])
                    # Push down, not out: matches of --not go after every other keyword match.
                    found = sorted(found, key=lambda x: x[0] in bad)  # stable sort
            elif s == "text":
                found = text_matches(conn, model, kw, depth, req.filters) if kw else []
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

        own = None  # results whose own words match a query word: None when not tiered
        if tiered:
            own = own_word_matches(conn, model, own_kw, depth, req.filters) if own_kw else []
        if own and req.min_score is not None:
            cosines = indexes[gate].scores(q, np.array(own, dtype=np.int64))
            own = [i for i in own if cosines.get(i, -1.0) >= req.min_score]
        hits = _fuse_and_expand(conn, lists, req, model, words, indexes, q, settings, own, language)
        if len(hits) >= req.limit or exhausted:
            for hit in hits:
                hit.language, hit.text_tower = language, text_tower
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
    settings: Settings,
    own: list[int] | None = None,
    language: str | None = None,
) -> list[Hit]:
    """Fuse the signals' lists, order (own words first when `own`, the results whose photo's own
    words match a query word, is given), and expand results into hits, one per group.
    `language`: the query's; in another than English its words never match a generated caption."""
    foreign = language not in (None, ENGLISH)
    ranks = {s: {rid: r for r, (rid, _) in enumerate(lst, start=1)} for s, lst in lists.items()}
    raw = {s: dict(lst) for s, lst in lists.items()}
    if len(lists) == 1:
        # One signal: its own score is the meaningful number (a cosine, or BM25). Nothing is
        # fused, so the fusion weights don't apply: --mode keyword is keywords whatever they say.
        (only,) = lists
        fused = dict(raw[only])
        counted = [only]
    else:
        ranked = {s: [rid for rid, _ in lst] for s, lst in lists.items()}
        fused = fuse(ranked, settings.fusion_k, dict(settings.fusion_weights))
        # A signal weighing 0 is left out of the tie-break too, as if it had not been searched.
        counted = [s for s in lists if settings.fusion_weight(s) > 0]
    best_rank = {rid: min(ranks[s].get(rid, math.inf) for s in counted) for rid in fused}
    if len(lists) == 1:
        order = sorted(fused, key=lambda rid: best_rank[rid])  # the list's order (--not included)
    else:
        order = sorted(fused, key=lambda rid: (-fused[rid], best_rank[rid], rid))
    first: set[str] = set()  # paths whose own words hold every query word
    if own is not None and "keyword" in counted and len(lists) > 1:
        order, first = own_words_first(conn, order, own, words, req.filters, language)
        for rid in order:
            fused.setdefault(rid, 0.0)  # in no signal's list: only its own words found it

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

    groups: dict[str, str] = {}  # content hash -> its near-duplicate group's key
    if not req.all_files and similar_groups.exists(conn):
        groups = similar_groups.groups_for(
            conn, sorted({r["content_hash"] for rows in by_result.values() for r in rows})
        )
    hits: list[Hit] = []
    texts: dict[str, str] = {}  # hit path -> the text read in its picture (the `text` marker)
    read = photo_text.texts_for_results(conn, order) if words else {}
    shown: dict[str, dict[str, Any]] = {}  # group key -> the row shown for the group
    shown_videos: set[str] = set()  # a video is shown once, at its best keyframe (first in order)
    for rid in order:
        # Copies rank alike: the one whose own tags matched first, then the shortest path (an
        # export or messenger copy sits deeper or carries a suffix), so it stands for the group.
        copies = sorted(
            by_result.get(rid, []),
            key=lambda r: (
                r["path"] not in first,
                r["path"] not in own_match,
                len(r["path"]),
                r["path"],
            ),
        )
        for row in copies:
            if not os.path.exists(row["path"]):
                continue  # deleted or moved since the last index run: never shown
            if rid in tags_only and row["path"] not in own_match:
                continue  # found through another copy's tags, not this photo's
            if row.get("at_s") is not None:
                if row["path"] in shown_videos:
                    continue
                shown_videos.add(row["path"])
            # A content in no group of near-duplicates is its own group (its exact copies).
            key = groups.get(row["content_hash"], row["content_hash"])
            if not req.all_files:
                if key in shown:
                    continue  # a lower-ranked member of a group already shown
                shown[key] = row
            sig = {}
            for s in lists:
                score = exact.get(s, {}).get(rid, raw[s].get(rid))
                sig[s] = Signal(score=score, rank=ranks[s].get(rid))
            matched = [] if foreign else matched_words(row["caption"], words)
            hits.append(hit_from_row(row, len(hits) + 1, float(fused[rid]), model, sig, matched))
            hits[-1].own_words_all = row["path"] in first
            if rid in read:
                texts[row["path"]] = read[rid]
            if len(hits) >= req.limit:
                break
        if len(hits) >= req.limit:
            break
    if not req.all_files:
        _with_similar(conn, hits, list(shown.values()), by_result, groups, req.filters)
    return _with_tags(conn, hits, words, texts)


# Words that name no subject: an own-words match needs every other query word ("photos of uncle
# bob at the beach" is uncle, bob, beach). Not "show" or "shot": "dog show" is about a show.
FUNCTION_WORDS = frozenset(
    "a an the my our his her their of in on at to and or with from by for"
    " photo photos picture pictures pic pics image images".split()
)


def _wanted(words: list[str], language: str | None = None) -> set[str]:
    """The query words an own-words match needs, folded as places compare ("ile" finds "Île"),
    without the function words of English and of the query's language ("die", "le"); a CJK word
    in cjk's form (folding would drop its voicing marks: ガ is not カ)."""
    skip = FUNCTION_WORDS | {fold(w) for w in function_words(language)}
    folded = {t for w in words if not cjk.has_cjk(w) for t in fold(w).split()}
    return (folded | {cjk.normal(w) for w in words if cjk.has_cjk(w)}) - skip


def own_words_first(
    conn: sqlite3.Connection,
    order: list[int],
    extra: list[int],
    words: list[str],
    flt: FileFilter,
    language: str | None = None,
) -> tuple[list[int], set[str]]:
    """The fused `order` in two tiers: first the results with a photo whose own words (tags,
    description, a person's caption, place, folders below its root) hold every query word,
    then the rest, each tier in fused order; and the paths of those photos. `extra` results
    (found by their own words, in no signal's list) join the first tier after the fused ones
    when they hold every word, and are left out otherwise.

    A tag is the most precise signal there is, but fused by rank it loses to photos with no
    keyword match and good ranks in both vector signals (benchmarks/bench_ranking.py: #5 to #13
    of the fusion alone, at 500 to 100,000 photos). A photo matching only
    some words stays in the fused order, where its keyword match already counts: its words
    confirm only part of the query, and the vectors judge the rest ("dog on the beach" must not
    put every photo tagged "beach" above a dog on a beach). Words compare folded, as places do
    ("ile" finds "Île")."""
    wanted = _wanted(words, language)
    known = set(order)
    extra = [rid for rid in dict.fromkeys(extra) if rid not in known]
    if not wanted or not (order or extra):
        return order, set()
    paths: set[str] = set()
    ahead: set[int] = set()
    for rid, path, text in own_words(conn, order + extra, flt):
        if text.isascii() and not all(w in text.lower() for w in wanted):
            continue  # most candidates: their words need no folding to rule them out
        tokens = set(fold(text).split())
        if all(w in tokens or (cjk.has_cjk(w) and cjk.contains(text, w)) for w in wanted):
            paths.add(path)
            ahead.add(rid)
    tiered = sorted(order, key=lambda rid: rid not in ahead)  # stable: fused order kept
    split = sum(rid in ahead for rid in order)
    return tiered[:split] + [r for r in extra if r in ahead] + tiered[split:], paths


def _with_similar(
    conn: sqlite3.Connection,
    hits: list[Hit],
    rows: list[dict[str, Any]],
    by_result: dict[int, list[dict[str, Any]]],
    groups: dict[str, str],
    flt: FileFilter,
) -> None:
    """Fill each hit's `similar`: the other files of its group that pass the filters and are on
    disk, copies first, each kind by path. Copies share the hit's result, so its rows hold them;
    look-alikes may rank below the candidates, so their files are read by content hash."""
    others: dict[str, list[str]] = {}  # the hit's content hash -> the group's other contents
    for row in rows:
        h = row["content_hash"]
        others[h] = (
            [m for m in similar_groups.members(conn, groups[h]) if m != h] if h in groups else []
        )
    alike: dict[str, list[str]] = {}
    wanted = sorted({h for hs in others.values() for h in hs})
    if wanted:
        for path, h in paths_with_hashes(conn, wanted, flt):
            alike.setdefault(h, []).append(path)
    for hit, row in zip(hits, rows, strict=True):
        rows_of_result = by_result.get(row["result_id"], [])
        same = {r["path"] for r in rows_of_result if r["content_hash"] == row["content_hash"]}
        looks = {p for h in others[row["content_hash"]] for p in alike.get(h, [])}
        hit.similar = [
            SimilarFile(p, why)
            for paths, why in ((same, SAME_FILE), (looks, LOOKS_ALIKE))
            for p in sorted(paths - {hit.path})
            if os.path.exists(p)
        ]


def _with_tags(
    conn: sqlite3.Connection, hits: list[Hit], words: list[str], texts: dict[str, str] | None = None
) -> list[Hit]:
    """Mark each hit with its own tags that the query words occur in (the `tag` marker of
    "why it matched"), and with the query words its own words hold (`matched`, `matched_in`).
    `texts`: hit path -> the text read in its picture, whose matching words are `matched_in`'s
    "text" (the `text` marker)."""
    if not words:
        return hits
    own = photo_tags.tags_and_descriptions(conn, [h.path for h in hits])
    roots = root_folders(conn)
    for hit in hits:
        tags, description = own.get(hit.path, ([], ""))
        hit.tags = [t for t in tags if matched_words(t, words)]
        where = {
            "caption": hit.matched,
            "tag": matched_words(" ".join(tags), words),
            "description": matched_words(description, words),
            "place": _folded_matches(hit.place or "", words),
            "folder": matched_words(" ".join(_folders_below_root(hit.path, roots)), words),
            "text": matched_words((texts or {}).get(hit.path, ""), words),
        }
        found = {k: v for k, v in where.items() if v}
        if set(found) - {"caption"}:  # only then is there more to say than the caption
            hit.matched_in = found
            hit.matched = [w for w in words if any(w in v for v in found.values())]
    return hits


def _folded_matches(text: str, words: list[str]) -> list[str]:
    """Query words in `text`, accents optional (as --place compares: "ile" finds "Île")."""
    folded = {fold(w) for w in _WORD.findall(text)}
    return [w for w in words if fold(w) in folded or (cjk.has_cjk(w) and cjk.contains(text, w))]


def _folders_below_root(path: str, roots: list[str]) -> list[str]:
    """The names of the folders between the photo's root and the photo ("2019", "Paris trip"),
    never the root's own path (every photo shares it; "home" would match them all)."""
    parent = os.path.dirname(path)
    below = [parent[len(r.rstrip(os.sep)) :] for r in roots if under(parent, r)]
    if not below:
        return [os.path.basename(parent)]  # a database without roots: the photo's own folder
    return [p for p in min(below, key=len).split(os.sep) if p]


# ------------------------------------------------------------------------------------ browse
# Words that ask for photos without saying which ("photos from Paris 2019" is Paris and 2019),
# and the words that lead into a filter when the parser left them ("from 2019").
FILLER_WORDS = frozenset(
    "photo photos picture pictures pic pics image images shot shots show me my all the a an"
    " some any in from during at near on of to taken"
    # the same in the other languages query understanding reads ("Fotos aus Köln", "北京的照片")
    " foto fotos bilder bild fotografie fotografien immagini fotografias fotografías aus im"
    " en de du em uit van nel da di 照片 的照片 写真 の写真 사진".split()
)
_TOKEN = re.compile(r"\S+")


def leftover_words(text: str | None, used: tuple[str, ...]) -> list[str]:
    """The query words that were not read as filters (nor are mere filler such as "photos"):
    none means the query is its filters alone and is browsed like `--place Paris`."""
    left = _TOKEN.findall(text or "")
    for token in used:
        if token in left:
            left.remove(token)
        elif cjk.has_cjk(token):  # read out of unspaced text ("北京2019年夏天")
            hit = next((i for i, t in enumerate(left) if token in t), None)
            if hit is not None:
                left[hit] = left[hit].replace(token, " ", 1)
    return [w for w in query_words(" ".join(left)) if w not in FILLER_WORDS]


def _validate_browse(req: SearchRequest) -> None:
    """A browse (filters, no words) has nothing to compare a score or a --not with."""
    if req.min_score is not None:
        raise UsageError("--min-score compares photos with a query: give some words too")
    if (req.negative or "").strip():
        raise UsageError("--not pushes down photos that match a query: give some words too")


def browse(conn: sqlite3.Connection, req: SearchRequest, settings: Settings) -> list[Hit]:
    """A search with filters and no words: the photos passing them, newest taken first, then
    those without a date, by path. No signal ranks them: `signals` is empty and `score` 0.
    Groups collapse as in a search (one hit per group of copies and look-alikes, its newest
    member, the rest in `similar`), unless `req.all_files`; a video is one hit."""
    model = resolve_model(conn, req.model, settings)
    flt = req.filters
    if (flt.tags and not photo_tags.exists(conn)) or (flt.place and not places.exists(conn)):
        return []  # indexed before tags / places were read: no photo has any yet
    if flt.text and not photo_text.exists(conn):
        return []  # indexed before text was read
    grouped = not req.all_files and similar_groups.exists(conn)
    groups: dict[str, str] = {}
    shown: dict[str, dict[str, Any]] = {}  # group key -> the row shown for the group
    position: dict[str, int] = {}  # group key -> its hit's index
    videos: set[str] = set()
    hits: list[Hit] = []
    rows = browse_rows(conn, model, flt)
    chunk = max(4 * req.limit, MIN_CANDIDATES)
    while len(hits) < req.limit:
        batch = list(itertools.islice(rows, min(chunk, 1 << 20)))
        if not batch:
            break
        if grouped:
            groups |= similar_groups.groups_for(conn, sorted({r["content_hash"] for r in batch}))
        for row in batch:
            if not os.path.exists(row["path"]):
                continue  # deleted or moved since the last index run (as search)
            if row.get("at_s") is not None:
                if row["path"] in videos:
                    continue
                videos.add(row["path"])
            key = groups.get(row["content_hash"], row["content_hash"])
            hit = hit_from_row(row, len(hits) + 1, 0.0, model, {}, [])
            hit.at_seconds = None  # no moment matched: the video as a whole
            if not req.all_files:
                if key in shown:
                    first = shown[key]
                    if (first["content_hash"], first["taken_at"]) == (
                        row["content_hash"],
                        row["taken_at"],
                    ) and len(row["path"]) < len(first["path"]):
                        # A copy taken alike: the shortest path stands for it, as in a search.
                        shown[key] = row
                        hit.rank = position[key] + 1
                        hits[position[key]] = hit
                    continue
                shown[key] = row
                position[key] = len(hits)
            hits.append(hit)
            if len(hits) >= req.limit:
                break
        chunk *= 4
    if not req.all_files and hits:
        by_result: dict[int, list[dict[str, Any]]] = {}
        for r in files_for_results(conn, [r["result_id"] for r in shown.values()], flt):
            by_result.setdefault(r["result_id"], []).append(r)
        _with_similar(conn, hits, list(shown.values()), by_result, groups, flt)
    if flt.tags:  # the `tag` marker: the photo's tags the filter named
        wanted = {t.casefold() for t in flt.tags}
        tags = photo_tags.tags_for_paths(conn, [h.path for h in hits])
        for hit in hits:
            hit.tags = [t for t in tags.get(hit.path, []) if t.casefold() in wanted]
    return hits


def filters_label(flt: FileFilter) -> str:
    """What a filter asks, in words ("in /photos/2019, tag Grandma, place Paris"), for "No
    photos matched" messages."""
    parts = []
    if flt.folder:
        parts.append(f"in {flt.folder}")
    if flt.folder_name:
        parts.append(f"folder {flt.folder_name}")
    if flt.tags:
        parts.append("tag " + ", ".join(flt.tags))
    if flt.place:
        parts.append("place " + ", ".join(flt.place))
    if flt.camera:
        parts.append(f"camera {flt.camera}")
    if flt.after:
        parts.append(f"after {flt.after}")
    if flt.before:
        parts.append(f"before {flt.before}")
    if flt.media:
        parts.append(f"media {flt.media}")
    if flt.text:
        parts.append(f"text {flt.text}")
    return ", ".join(parts)

"""Retrieval evaluation: labelled queries run through `imgcap search`'s own code, scored.

`imgcap eval --retrieval DATA` reads queries with their relevant photos, makes sure a database
holds the photos (indexing them with the normal `index_paths` when it does not), and runs every
query through `search_understood` (query understanding included) once per signal alone
(image, caption, keyword) and once fused (hybrid). Nothing here ranks: the figures are those of
the search people use.

Query files (`load_queries` detects them):
- COCO captions / Karpathy split JSON, a captions CSV (`path,caption`): every caption of the
  split is a query and its own image the one relevant photo (indexer/train/datasets.py reads
  them). Only the split's images are indexed: a COCO 5k test set is searched among its 5k.
- a query CSV (`query,path,path...`, header optional; a `tags` column of `;`-separated tags)
  or JSON lines (`{"query": ..., "relevant": [...], "tags": [...]}`): relevant paths relative to
  the file; none = a query with no answer. The folder holding the file is the collection.
- PhotoBench's query.json: a list of `{"query_en", "Location", "Time", "Person", "Object",
  "Concept", "Genre", ...}`; the non-null categories become tags, the answers are read from the
  first of `ANSWER_KEYS` present.

Metrics, per signal, over the queries that have an answer (binary relevance; R = the relevant
photos of a query, ranked = its result list, at most `depth` long):
  recall@k  = |R ∩ ranked[:k]| / |R|   (with one relevant photo: 1 if it is in the top k)
  MRR       = mean of 1 / rank of the first relevant photo (0 when none is in the list)
  nDCG@10   = sum_{i<=10, ranked[i] in R} 1/log2(i+1), divided by the same sum for min(|R|,10)
              relevant photos at the top.
The sweep re-fuses the per-signal lists with `search.fusion.fuse` (the function hybrid search
uses) for each grid point, so it encodes and searches nothing again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from indexer.atomic_file import atomic_file
from indexer.config import FUSION_SIGNALS, Settings
from indexer.errors import UsageError
from search.query_encoder import EncoderLoader, load_encoder

MODES = (*FUSION_SIGNALS, "hybrid")  # each signal alone, and fused
KS = (1, 5, 10)
DEPTH = 100  # results kept per query and mode: MRR is MRR@DEPTH
# PhotoBench's categories, in its files' order: a non-null value (fact / cognitive) = a tag.
PHOTOBENCH_TAGS = ("Location", "Time", "Person", "Object", "Concept", "Genre")
# Where a PhotoBench-style entry may list its answers (the public repository's query files carry
# none; its train.json is distributed elsewhere).
ANSWER_KEYS = ("ground_truth", "gt", "answers", "answer", "relevant", "images")
# The sweep's grid: RRF's k, and weights as (image, caption, keyword).
SWEEP_K = (10, 30, 60, 120)
# (image, caption, keyword, text): the text read in photos stays at 1, as it only counts for
# photos that show text and most evaluation sets have none.
SWEEP_WEIGHTS = tuple(
    (*w, 1) for w in ((1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1))
)


@dataclass(frozen=True)
class Query:
    text: str
    relevant: tuple[str, ...]  # absolute paths; () = no photo answers it
    tags: tuple[str, ...] = ()


@dataclass
class QuerySet:
    queries: list[Query]
    roots: list[Path]  # what to index: the collection searched
    format: str
    problems: list[str] = field(default_factory=list)


@dataclass
class RetrievalReport:
    db: str
    model: str | None
    format: str
    n_queries: int
    n_answerable: int
    depth: int
    scores: dict[str, dict[str, float]]  # mode -> metric -> mean over answerable queries
    by_tag: dict[str, dict[str, Any]]  # tag -> {"n": count, "scores": mode -> metric -> mean}
    min_score: dict[str, Any] | None  # --min-score: no-answer and dropped-answer rates
    sweep: list[dict[str, Any]] | None  # one entry per grid point, best first
    indexed: dict[str, Any] | None  # what indexing did (None: the database held every photo)
    problems: list[str] = field(default_factory=list)
    per_query: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary (`--json`): everything but the per-query lines."""
        d = {k: v for k, v in self.__dict__.items() if k != "per_query"}
        d["sweep_best"] = self.sweep[0] if self.sweep else None
        return d


# ----------------------------------------------------------------------------------- reading
def load_queries(data: Path, split: str = "test") -> QuerySet:
    """Read DATA in any supported format (see the module docstring)."""
    data = Path(data)
    if not data.exists():
        raise UsageError(f"{data}: no such file")
    if data.is_dir():
        raise UsageError(f"{data}: a folder; --retrieval takes a query file (CSV, JSON lines, "
                         "COCO/Karpathy captions JSON or PhotoBench query JSON)")  # fmt: skip
    suffix = data.suffix.lower()
    if suffix == ".jsonl":
        return _query_lines(data)
    if suffix in (".csv", ".tsv"):
        text = _read_text(data)
        delimiter = "\t" if suffix == ".tsv" else ","
        first = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
        if first and first[0].strip().lower() in ("query", "text", "question"):
            return _query_csv(data, text)
        from indexer.train.datasets import read_csv

        header = [h.strip().lower() for h in first]
        if {"path", "caption"} <= set(header) or _looks_like_captions(data, first):
            return _captions(data, read_csv(data), split)
        return _query_csv(data, text)
    if suffix == ".json":
        doc = _read_json(data)
        if isinstance(doc, list):
            return _photobench(data, doc)
        from indexer.train.datasets import detect_format, load_dataset

        detect_format(data)  # a clear error for JSON that is neither COCO nor Karpathy
        return _captions(data, load_dataset(data), split)
    raise UsageError(
        f"{data}: not a query file imgcap knows (.csv/.tsv, .jsonl, COCO/Karpathy captions "
        ".json or PhotoBench query .json)"
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read ({e})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON ({e})") from None


def _looks_like_captions(path: Path, first: list[str]) -> bool:
    """A headerless `path,caption` CSV: exactly two cells, the first an image next to the file."""
    return (
        len(first) == 2
        and (path.parent / first[0].strip()).is_file()
        and not (path.parent / first[1].strip()).is_file()
    )


def _captions(data: Path, ds, split: str) -> QuerySet:
    """Every caption a query, its image the answer; only the split's images are indexed."""
    examples = ds.split(split)
    if not examples:
        raise UsageError(f"{data}: no images in split {split!r}")
    queries = [
        Query(caption.rstrip("."), (os.path.abspath(e.image_path),))
        for e in examples
        for caption in e.captions
    ]
    roots = sorted({Path(os.path.abspath(e.image_path)) for e in examples})
    return QuerySet(queries, roots, ds.format, [str(p) for p in ds.problems])


def _resolve(data: Path, rel: str, problems: list[str], where: str) -> str | None:
    for base in (data.parent, data.parent / "images"):
        p = base / rel
        if p.is_file():
            return os.path.abspath(p)
    problems.append(f"{where}: relevant photo not found: {rel}")
    return None


def _query(data: Path, where: str, text: Any, rels: list, tags, problems: list[str]):
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: no query text")
        return None
    if isinstance(tags, str):
        tags = tags.split(";")
    found = [_resolve(data, str(r).strip(), problems, where) for r in rels if str(r).strip()]
    if None in found:
        return None  # an answer we cannot find would score as a miss: skip the query
    tags = tuple(t.strip() for t in (tags or ()) if str(t).strip())
    return Query(" ".join(text.split()), tuple(dict.fromkeys(found)), tags)


def _query_csv(data: Path, text: str) -> QuerySet:
    delimiter = "\t" if data.suffix.lower() == ".tsv" else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    problems: list[str] = []
    queries = []
    tag_col = None
    start = 0
    if rows and rows[0] and rows[0][0].strip().lower() in ("query", "text", "question"):
        header = [h.strip().lower() for h in rows[0]]
        tag_col = header.index("tags") if "tags" in header else None
        start = 1
    for n, row in enumerate(rows[start:], start=start + 1):
        if not any(c.strip() for c in row):
            continue
        tags = row[tag_col] if tag_col is not None and tag_col < len(row) else ""
        rels = [c for i, c in enumerate(row[1:], start=1) if i != tag_col]
        q = _query(data, f"{data}:{n}", row[0], rels, tags, problems)
        if q is not None:
            queries.append(q)
    return _query_set(data, queries, "query-csv", problems)


def _query_lines(data: Path) -> QuerySet:
    problems: list[str] = []
    queries = []
    for n, line in enumerate(_read_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{data}:{n}: not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise UsageError(f"{data}:{n}: expected an object with a 'query'")
        rels = doc.get("relevant", doc.get("paths", []))
        rels = [rels] if isinstance(rels, str) else list(rels or [])
        q = _query(data, f"{data}:{n}", doc.get("query"), rels, doc.get("tags"), problems)
        if q is not None:
            queries.append(q)
    return _query_set(data, queries, "query-jsonl", problems)


def _photobench(data: Path, doc: list) -> QuerySet:
    problems: list[str] = []
    queries = []
    for n, entry in enumerate(doc):
        if not isinstance(entry, dict) or not any(k in entry for k in ("query_en", "query")):
            raise UsageError(
                f"{data}: entry {n} is not a PhotoBench query (an object with 'query_en')"
            )
        text = entry.get("query_en") or entry.get("query")
        key = next((k for k in ANSWER_KEYS if k in entry), None)
        rels = entry.get(key) if key else []
        rels = [rels] if isinstance(rels, str) else list(rels or [])
        tags = [t.lower() for t in PHOTOBENCH_TAGS if entry.get(t)]
        q = _query(data, f"{data}: entry {n}", text, rels, tags, problems)
        if q is not None:
            queries.append(q)
    if queries and not any(q.relevant for q in queries):
        problems.append(f"{data}: no query lists its answers ({', '.join(ANSWER_KEYS)})")
    return _query_set(data, queries, "photobench", problems)


def _query_set(data: Path, queries: list[Query], fmt: str, problems: list[str]) -> QuerySet:
    if not queries:
        raise UsageError(f"{data}: no queries" + (f" ({problems[0]})" if problems else ""))
    return QuerySet(queries, [Path(os.path.abspath(data.parent))], fmt, problems)


# ---------------------------------------------------------------------------------- indexing
def ensure_indexed(qs: QuerySet, settings: Settings, on_progress=None) -> dict[str, Any] | None:
    """Index the query set's photos into settings.db_path unless it holds every relevant photo
    already (then None: nothing indexed). Returns the index run's summary."""
    if settings.db_path.exists():
        from indexer.store.database import Store

        with Store.open(settings.db_path, create=False) as store:
            held = store.file_states()
        wanted = {p for q in qs.queries for p in q.relevant}
        if wanted and wanted <= held.keys():
            return None
    from indexer.run.pipeline import index_paths

    summary = index_paths(qs.roots, settings, on_progress=on_progress)
    return {
        "new": summary.new,
        "unchanged": summary.unchanged,
        "failed": summary.failed,
        "seconds": round(summary.seconds, 1),
    }


# --------------------------------------------------------------------------------- metrics
def recall_at(ranked: list[str], relevant: tuple[str, ...], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: list[str], relevant: tuple[str, ...]) -> float:
    wanted = set(relevant)
    return next((1.0 / r for r, p in enumerate(ranked, start=1) if p in wanted), 0.0)


def ndcg_at(ranked: list[str], relevant: tuple[str, ...], k: int = 10) -> float:
    wanted = set(relevant)
    dcg = sum(1 / math.log2(i + 1) for i, p in enumerate(ranked[:k], start=1) if p in wanted)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def scores_of(ranked: list[str], relevant: tuple[str, ...]) -> dict[str, float]:
    s = {f"recall@{k}": recall_at(ranked, relevant, k) for k in KS}
    s["mrr"] = reciprocal_rank(ranked, relevant)
    s["ndcg@10"] = ndcg_at(ranked, relevant, 10)
    return s


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in rows[0]}


# -------------------------------------------------------------------------------- searching
class _EncodedOnce:
    """The query encoder, remembering the latest query's vector: a query is encoded once although
    it is searched in several modes (and with --min-score)."""

    def __init__(self, encoder):
        self._encoder = encoder
        self._texts: dict[str, Any] = {}
        self.image_size = getattr(encoder, "image_size", 224)

    def encode_texts(self, texts: list[str]):
        import numpy as np

        missing = [t for t in texts if t not in self._texts]
        if missing:
            # A query's searches follow each other: keep only the latest texts (COCO 5k has
            # 25,000 queries; remembering them all would only cost memory).
            self._texts = {t: self._texts[t] for t in texts if t in self._texts}
            for t, v in zip(missing, self._encoder.encode_texts(missing), strict=True):
                self._texts[t] = np.asarray(v)
        return np.stack([self._texts[t] for t in texts])

    def encode_images(self, pixels):
        return self._encoder.encode_images(pixels)


def _once(loader: EncoderLoader) -> EncoderLoader:
    encoders: dict[str, _EncodedOnce] = {}

    def load(model: str, settings: Settings):
        if model not in encoders:
            encoders[model] = _EncodedOnce(loader(model, settings))
        return encoders[model]

    return load


def evaluate_retrieval(
    qs: QuerySet,
    settings: Settings,
    *,
    model: str | None = None,
    depth: int = DEPTH,
    min_score: float | None = None,
    sweep: bool = False,
    encoder_loader: EncoderLoader | None = None,
    on_query: Callable[[int, int], None] | None = None,
) -> RetrievalReport:
    """Run every query of `qs` against settings.db_path in each mode and score the lists."""
    from search.query import SearchRequest, query_words, search_understood

    loader = _once(encoder_loader or load_encoder)
    per_query: list[dict[str, Any]] = []
    for n, q in enumerate(qs.queries, start=1):
        ranked: dict[str, list[str]] = {}
        for mode in MODES:
            if mode in ("keyword", "text") and not query_words(q.text):
                ranked[mode] = []  # nothing to match: a word search refuses the query
                continue
            req = SearchRequest(text=q.text, limit=depth, mode=mode, model=model,
                                understand=True, all_files=True)  # fmt: skip
            hits, _ = search_understood(settings.db_path, req, settings, loader)
            ranked[mode] = [h.path for h in hits]
        line: dict[str, Any] = {
            "query": q.text,
            "tags": list(q.tags),
            "relevant": list(q.relevant),
            "ranked": ranked,
            "ranks": {m: [_rank(ranked[m], p) for p in q.relevant] for m in MODES},
        }
        if min_score is not None:
            req = SearchRequest(text=q.text, limit=depth, model=model, understand=True,
                                all_files=True, min_score=min_score)  # fmt: skip
            kept = [h.path for h in search_understood(settings.db_path, req, settings, loader)[0]]
            line["min_score"] = {"returned": len(kept),
                                 "relevant_kept": len(set(kept) & set(q.relevant))}  # fmt: skip
        per_query.append(line)
        if on_query is not None:
            on_query(n, len(qs.queries))

    answerable = [(q, line) for q, line in zip(qs.queries, per_query, strict=True) if q.relevant]
    scores = {m: _mean([scores_of(line["ranked"][m], q.relevant) for q, line in answerable])
              for m in MODES}  # fmt: skip
    by_tag: dict[str, dict[str, Any]] = {}
    for tag in sorted({t for q, _ in answerable for t in q.tags}):
        tagged = [(q, line) for q, line in answerable if tag in q.tags]
        by_tag[tag] = {
            "n": len(tagged),
            "scores": {
                m: _mean([scores_of(line["ranked"][m], q.relevant) for q, line in tagged])
                for m in MODES
            },
        }
    return RetrievalReport(
        db=str(settings.db_path),
        model=model,
        format=qs.format,
        n_queries=len(qs.queries),
        n_answerable=len(answerable),
        depth=depth,
        scores=scores,
        by_tag=by_tag,
        min_score=_min_score_rates(qs.queries, per_query, min_score),
        sweep=_sweep(answerable, settings) if sweep else None,
        indexed=None,
        problems=list(qs.problems),
        per_query=per_query,
    )


def _rank(ranked: list[str], path: str) -> int | None:
    try:
        return ranked.index(path) + 1
    except ValueError:
        return None


def _min_score_rates(queries, per_query, min_score) -> dict[str, Any] | None:
    """No-answer queries that correctly got nothing; answerable ones whose every relevant photo
    was dropped by the cutoff (though hybrid search without it listed one)."""
    if min_score is None:
        return None
    empty = [line["min_score"]["returned"] == 0 for q, line in zip(queries, per_query,
             strict=True) if not q.relevant]  # fmt: skip
    dropped = [
        line["min_score"]["relevant_kept"] == 0
        for q, line in zip(queries, per_query, strict=True)
        if q.relevant and any(r is not None for r in line["ranks"]["hybrid"])
    ]
    return {
        "min_score": min_score,
        "no_answer_queries": len(empty),
        "no_answer_correct": round(sum(empty) / len(empty), 4) if empty else None,
        "answerable_found": len(dropped),
        "answer_dropped": round(sum(dropped) / len(dropped), 4) if dropped else None,
    }


def fused_order(ranked: dict[str, list[str]], settings: Settings) -> list[str]:
    """The per-signal lists fused as hybrid search fuses them (search.fusion.fuse with the
    settings' k and weights), best first; ties go to the better single-signal rank, then path."""
    from search.fusion import fuse

    lists = {s: ranked[s] for s in FUSION_SIGNALS}
    scores = fuse(lists, settings.fusion_k, dict(settings.fusion_weights))
    # As search/query.py breaks ties: a signal weighing 0 counts as not searched.
    counted = [lst for s, lst in lists.items() if settings.fusion_weight(s) > 0]
    best = {p: min((lst.index(p) for lst in counted if p in lst), default=0) for p in scores}
    return sorted(scores, key=lambda p: (-scores[p], best[p], p))


def _sweep(answerable, settings: Settings) -> list[dict[str, Any]]:
    """Each grid point's scores, best first (by nDCG@10, then MRR)."""
    points = []
    for k in SWEEP_K:
        for weights in SWEEP_WEIGHTS:
            pairs = tuple(zip(FUSION_SIGNALS, map(float, weights), strict=True))
            s = replace(settings, fusion_k=k, fusion_weights=pairs)
            rows = [scores_of(fused_order(line["ranked"], s), q.relevant) for q, line in answerable]
            points.append({"k": k, "weights": dict(s.fusion_weights), "scores": _mean(rows)})
    points.sort(key=lambda p: (-p["scores"].get("ndcg@10", 0), -p["scores"].get("mrr", 0)))
    return points


def write_per_query(report: RetrievalReport, out: Path) -> None:
    """One JSON line per query: text, tags, relevant, ranked paths per mode, ranks per mode."""
    with atomic_file(out, encoding="utf-8") as f:
        for line in report.per_query:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")

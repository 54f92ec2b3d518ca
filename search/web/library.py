"""The library as `imgcap serve` sees it: one database, kept warm between requests.

What stays loaded: the query encoder of each model (the NumPy CLIP text tower, so text search
never imports torch) and the thumbnail cache. What does not: database connections and the FAISS
cache, which are opened per request exactly as `imgcap search` opens them, read-only, so an
`imgcap index` run on the same database is never blocked and its new results show up without a
restart (the FAISS cache notices the store's new generation and is rebuilt).

Photos are named by `files.id`. A file's bytes are sent only through `file`, which checks that
the database row names a file inside one of the database's roots, where it really is too (every
symlink resolved): a damaged, hand-made or hostile row (a path of /etc/passwd, a link out of the
library) can never make the gallery read a file outside the library.

Every hit handed to the web layer is the CLI's `Hit.to_dict()`
plus `id`, `content_hash` and `caption_source`, so the JSON API has the CLI's `--json` fields;
each of its `similar` files (the copies and look-alikes it stands for) gets `id` and
`content_hash` too, for their thumbnails.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.store import frames, photo_tags, photo_text
from indexer.store import photos as photo_rows
from indexer.store.connection import connect_readonly
from indexer.store.queries import FileFilter, files_for_results, filtered_result_ids
from indexer.store.roots import outside_roots, root_folders
from search import captions, photos, query
from search.query import Hit, SearchRequest, Signal, hit_from_row
from search.query_encoder import load_encoder, resolve_model, unit_vector
from search.web.facets import Facets, facets
from search.web.thumbnails import ThumbnailCache

log = logging.getLogger("imgcap.serve")

MAX_PAGE = 200  # deepest page served: 200 x per_page photos is past any human's scrolling
ROW_IDS = range(-(2**63), 2**63)  # what an SQLite INTEGER holds: any other id names no photo
SIMILAR_MIN_DEPTH = 100
# Keyframes of a video whose neighbours "more like this" looks up (spread over its length): one
# vector search each, so a 2-hour film costs a bounded number, not one per scene.
SIMILAR_MAX_KEYFRAMES = 16


@dataclass
class Page:
    hits: list[dict[str, Any]]
    page: int
    per_page: int
    has_more: bool
    model: str | None = None
    understood: str | None = None  # "after 2019-01-01, place Paris": what the query was read as
    language: str | None = None  # the query's language ("de") and the text tower that read it
    text_tower: str | None = None


class Library:
    """One database behind the web server. Thread-safe (Starlette runs sync work in threads)."""

    def __init__(
        self,
        settings: Settings,
        model: str | None = None,
        encoder_loader: Callable[[str, Settings], Any] | None = None,
    ):
        self.settings = settings
        self.db_path = Path(settings.db_path)
        self.model = model  # what --model named (None: resolved per request, as search does)
        self._loader = encoder_loader or load_encoder
        self._encoders: dict[str, Any] = {}
        self._lock = threading.Lock()
        # One FAISS cache load/update at a time: after an index batch or a caption edit, two
        # requests would both apply the same update (or rebuild) to the stale cache. (Searches
        # are CPU bound; on a few cores running them one by one costs little.)
        self._searching = threading.Lock()
        self._facets: tuple[tuple, Facets] | None = None  # (the database's state, its facets)
        self.thumbnails = ThumbnailCache(self.db_path, max_pixels=settings.max_pixels_for(1))

    # ------------------------------------------------------------------------------ encoders
    def encoder(self, source: str, settings: Settings) -> Any:
        """The query encoder for a model source, loaded once (the warm part of a search)."""
        with self._lock:
            if source not in self._encoders:
                self._encoders[source] = _RememberedTexts(self._loader(source, settings))
            return self._encoders[source]

    def _connect(self):
        return connect_readonly(self.db_path)

    def check(self) -> str:
        """The model this library serves; StoreError when there is no index to serve yet."""
        conn = self._connect()
        try:
            return resolve_model(conn, self.model, self.settings)
        finally:
            conn.close()

    # -------------------------------------------------------------------------------- search
    def search(self, req: SearchRequest, page: int = 1, per_page: int = 48) -> Page:
        """One page of a search: the CLI's search asked for everything up to this page (+1 to
        know whether there is more), then sliced."""
        page = _page_number(page)
        req = replace(req, limit=page * per_page + 1, model=req.model or self.model)
        with self._searching:
            hits, got = query.search_understood(
                self.db_path, req, self.settings, encoder_loader=self.encoder
            )
        shown = hits[(page - 1) * per_page : page * per_page]
        model = hits[0].model if hits else None
        understood = got.label() if got is not None and got.any else None
        more = len(hits) > page * per_page
        language = hits[0].language if hits else None
        tower = hits[0].text_tower if hits else None
        return Page(self._decorate(shown), page, per_page, more, model, understood, language, tower)

    def timeline(self, page: int = 1, per_page: int = 48) -> tuple[Page, str | None]:
        """One page of the whole library, newest taken first (a browse with no filter), and
        when the photo before this page was taken ("" undated; None on page 1), so a page
        continues its month instead of repeating its heading."""
        page = _page_number(page)
        conn = self._connect()
        try:
            req = SearchRequest(text=None, limit=page * per_page + 1, model=self.model)
            hits = query.browse(conn, req, self.settings)
        finally:
            conn.close()
        start = (page - 1) * per_page
        before = (hits[start - 1].taken_at or "") if start else None
        shown = hits[start : start + per_page]
        model = hits[0].model if hits else None
        more = len(hits) > page * per_page
        return Page(self._decorate(shown), page, per_page, more, model), before

    def facets(self) -> Facets:
        """The ways into the library: its folders, places, tags, cameras and years. Counted
        again only when the database changed (its file or its write-ahead log): at 100,000
        photos counting takes a few hundred ms, and every visit to `/` shows them."""
        state = _file_state(self.db_path)
        with self._lock:
            if self._facets is not None and self._facets[0] == state:
                return self._facets[1]
        conn = self._connect()
        try:
            found = facets(conn)
        finally:
            conn.close()
        with self._lock:
            self._facets = (state, found)
        return found

    def similar(
        self, file_id: int, page: int = 1, per_page: int = 48, filters: FileFilter | None = None
    ) -> Page:
        """Photos whose stored image vectors are nearest to this photo's (the `--like` search of
        an indexed photo, without decoding or re-encoding it). The photo itself and its
        duplicates (the same result) are left out. A video's neighbours are those of its
        keyframes (up to SIMILAR_MAX_KEYFRAMES, spread over its length), each found photo at
        its nearest keyframe; the video's own keyframes are left out."""
        from search.vectors import cache

        page = _page_number(page)
        filters = filters or FileFilter()
        limit = page * per_page + 1
        file_id = _row_id(file_id)
        conn = self._connect()
        try:
            model, row = photos.photo_row(conn, file_id, self.model, self.settings)
            if row["result_id"] is None:
                return Page([], page, per_page, False, model)
            # A video is its keyframes: each one's neighbours count, at the nearest of them.
            own = [k["result_id"] for k in photo_rows.keyframes(conn, row["content_hash"], model)]
            own = own or [row["result_id"]]
            vecs = [
                unit_vector(photo_rows.image_vector(conn, rid))
                for rid in _spread(own, SIMILAR_MAX_KEYFRAMES)
            ]
            with self._searching:
                index = cache.load_model(self.db_path, conn, model, self.settings.vector_memory_gb)[
                    "image"
                ]
            allowed = filtered_result_ids(conn, model, filters) if filters.active else None
            depth = max(SIMILAR_MIN_DEPTH, 4 * limit)
            while True:
                nearest: dict[int, float] = {}
                exhausted = True
                for vec in vecs:
                    ids, sims = index.search(vec, depth + len(own), allowed)
                    exhausted = exhausted and len(ids) < depth + len(own)
                    for i, sim in zip(ids.tolist(), sims.tolist(), strict=True):
                        nearest[i] = max(sim, nearest.get(i, -2.0))
                skip = set(own)  # the video's own keyframes (a photo: its own result)
                found = sorted(
                    ((i, sim) for i, sim in nearest.items() if i not in skip),
                    key=lambda x: (-x[1], x[0]),
                )
                hits = self._expand(conn, found, model, filters, limit, row["path"])
                if len(hits) >= limit or exhausted:
                    break
                depth *= 4
        finally:
            conn.close()
        shown = hits[(page - 1) * per_page : page * per_page]
        return Page(self._decorate(shown), page, per_page, len(hits) > page * per_page, model)

    def _expand(
        self, conn, found, model: str, filters: FileFilter, limit: int, own_path: str
    ) -> list[Hit]:
        by_result: dict[int, list[dict[str, Any]]] = {}
        for r in files_for_results(conn, [i for i, _ in found], filters):
            by_result.setdefault(r["result_id"], []).append(r)
        hits: list[Hit] = []
        videos: set[str] = set()  # a video once, at its nearest keyframe (as search)
        for rank, (rid, sim) in enumerate(found, start=1):
            for r in by_result.get(rid, []):
                if r["path"] == own_path or not os.path.exists(r["path"]):
                    continue  # itself; moved or deleted since the last run (as search)
                if r.get("at_s") is not None:
                    if r["path"] in videos:
                        continue
                    videos.add(r["path"])
                signals = {"image": Signal(score=sim, rank=rank)}
                hit = hit_from_row(r, len(hits) + 1, sim, model, signals, [], with_place=False)
                hits.append(hit)
                if len(hits) >= limit:
                    return hits
        return hits

    def _decorate(self, hits: list[Hit]) -> list[dict[str, Any]]:
        """Hit dicts plus what the page needs to link them: file id, content hash (the
        thumbnail's cache key and URL version) and whether the caption is the user's."""
        if not hits:
            return []
        conn = self._connect()
        try:
            paths = [h.path for h in hits] + [s.path for h in hits for s in h.similar]
            ids = photo_rows.file_ids(conn, paths)
            sources = photo_rows.caption_sources(conn, [h for _, h in ids.values()], hits[0].model)
        finally:
            conn.close()
        out = []
        for h in hits:
            if h.path not in ids:
                continue  # left the index between the search and this look-up
            d = h.to_dict()
            d["id"], d["content_hash"] = ids[h.path]
            d["caption_source"] = sources.get(d["content_hash"], "generated")
            similar = [
                s | dict(zip(("id", "content_hash"), ids[s["path"]], strict=True))
                for s in d.pop("similar", [])
                if s["path"] in ids  # (as the hit itself) left the index since the search
            ]
            if similar:
                d["similar"] = similar
            out.append(d)
        return out

    # -------------------------------------------------------------------------------- photos
    def photo(self, file_id: int) -> dict[str, Any]:
        """Everything the photo page shows, with the person's own `tags` and `description`
        (from sidecars / embedded metadata); LookupError when no indexed file has this id."""
        file_id = _row_id(file_id)
        conn = self._connect()
        try:
            row = photos.photo(conn, file_id, self.model, self.settings)
            tags, description = photo_tags.tags_and_descriptions(conn, [row["path"]]).get(
                row["path"], ([], "")
            )
            row |= {"tags": tags, "description": description}
            row["text_lines"] = photo_text.lines_for_key(conn, row["content_hash"])  # (OCR)
            keyframes = photo_rows.keyframes(conn, row["content_hash"], row["model"])
            if keyframes:  # a video: each moment's own caption (the model's), in time order
                row["frames"] = [
                    {"at_seconds": k["at_ms"] / 1000, "caption": k["generated_caption"]}
                    for k in keyframes
                ]
            return row
        finally:
            conn.close()

    def file(self, file_id: int) -> dict[str, Any]:
        """The indexed file behind an id, to send its bytes (path, hash, size, mtime; no model
        resolved), with `real_path`: where it really is, the path to open. LookupError (a 404)
        when no indexed file has this id, or when the row names a file outside every root of
        the database: every route that sends a file's bytes or a thumbnail made from them asks
        here."""
        file_id = _row_id(file_id)
        conn = self._connect()
        try:
            row = photo_rows.photo(conn, file_id, "")
            roots = root_folders(conn) if row is not None else []
        finally:
            conn.close()
        if row is None:
            raise LookupError(file_id)
        if not roots:
            # Only a database written before roots were recorded (schema 6) has none; one
            # `imgcap index` run upgrades it. Inferring them from its own rows would let a
            # crafted row name its own root, so nothing is sent until then.
            log.warning("%s records no index roots: run `imgcap index` once", self.db_path)
            raise LookupError(file_id)
        # As written: the walk indexes photos linked into a root from elsewhere (a symlinked
        # folder of another drive) on purpose, and the gallery shows what the index holds. What
        # a row alone could do (name /etc/passwd, climb out with "..") is refused here; a link
        # on disk is the person's own. Writing (write-back) also resolves links.
        why = outside_roots(row["path"], roots, resolve=False)
        if why is not None:
            log.warning("not serving file %s (%r): %s", file_id, row["path"], why)
            raise LookupError(file_id)
        return row | {"real_path": os.path.realpath(row["path"])}

    def is_keyframe(self, content_hash: str, at_ms: int) -> bool:
        """Whether the video with this content has a stored keyframe at `at_ms` (the only
        moments the gallery makes stills of: a client cannot make it decode any other)."""
        conn = self._connect()
        try:
            return at_ms in frames.keyframe_times(conn, content_hash)
        finally:
            conn.close()

    def set_caption(self, file_id: int, text: str | None) -> dict[str, Any]:
        """Store the user's caption for this photo (None or blank: back to the generated one)
        with the warm text tower; returns the photo page's fields."""
        file_id = _row_id(file_id)
        return captions.set_caption_of(self.settings, file_id, text, self.model, self.encoder)

    # -------------------------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        from search.status import status

        info = status(self.db_path)
        conn = self._connect()
        try:
            info["failure_list"] = photo_rows.failures(conn)
        finally:
            conn.close()
        return info

    def indexing_since(self) -> str | None:
        """When an index run on this database started, if one is in progress."""
        try:
            conn = self._connect()
        except StoreError:
            return None
        try:
            return photo_rows.running_since(conn)
        finally:
            conn.close()


class _RememberedTexts:
    """An encoder that remembers its last text vectors: the next page of a search, or the
    same search again, skips the text tower (the largest part of a warm query)."""

    SIZE = 256

    def __init__(self, encoder: Any):
        self._encoder = encoder
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            known = [self._texts.get(t) for t in texts]
        if all(v is not None for v in known):
            return np.stack(known)
        vecs = np.asarray(self._encoder.encode_texts(texts), dtype=np.float32)
        with self._lock:
            for t, v in zip(texts, vecs, strict=True):
                self._texts[t] = v
                self._texts.move_to_end(t)
            while len(self._texts) > self.SIZE:
                self._texts.popitem(last=False)
        return vecs

    def __getattr__(self, name: str) -> Any:  # image_size, preprocess, encode_images
        return getattr(self._encoder, name)


def _file_state(db_path: Path) -> tuple:
    """What changes whenever the database does: the (size, mtime) of its file and its WAL."""
    state = []
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        try:
            st = path.stat()
            state.append((st.st_size, st.st_mtime_ns))
        except OSError:
            state.append(None)
    return tuple(state)


def _row_id(file_id: int) -> int:
    """A file id as the store takes it; LookupError for one no row can have (SQLite refuses
    integers past 64 bits with an OverflowError)."""
    if file_id not in ROW_IDS:
        raise LookupError(file_id)
    return file_id


def _spread(items: list, most: int) -> list:
    """At most `most` of `items`, evenly spread from the first to the last."""
    if len(items) <= most:
        return items
    return [items[round(i * (len(items) - 1) / (most - 1))] for i in range(most)]


def _page_number(page: int) -> int:
    if page < 1 or page > MAX_PAGE:
        raise UsageError(f"page must be between 1 and {MAX_PAGE}")
    return page

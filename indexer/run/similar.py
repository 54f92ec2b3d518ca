"""Near-duplicate grouping (issue 22 §2): which indexed contents show the same scene (burst
frames, resized, re-encoded, lightly cropped or brightened copies), and which of each group looks
like the original. Exact copies (one content hash, several paths) are one content already.

Two contents are near-duplicates when their perceptual hashes (indexer/media/perceptual_hash.py)
differ in at most STRICT bits, or in at most LOOSE bits while their CLIP image vectors have a
cosine of at least COSINE (a crop moves the DCT hash more than a re-encode does; CLIP confirms
it is the same scene). Groups are the connected components of these pairs (union-find).
Thresholds: BENCHMARKS.md "Near-duplicate groups (issue 22 §2)".

Candidate pairs are found without comparing all pairs, so 100,000 photos group in seconds:
- by hash: the 64 bits cut in BANDS bands of 16; contents that agree on a whole band are
  neighbours after sorting by it (pigeonhole: every pair within BANDS - 1 bits is found, and
  most within LOOSE);
- by vector: contents whose normalised image vectors have a cosine of at least COSINE, compared
  in blocks of matrix products within k-means cells (FAISS) above EXACT_UP_TO contents.

`refresh_groups` runs at the end of every completed index run and writes the table search reads
(indexer/store/similar_groups.py, whose docstring is the interface for search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.media.perceptual_hash import FLAT, as_unsigned, distances
from indexer.store import similar_groups

STRICT = 4  # bits: the perceptual hash alone makes a pair
LOOSE = 16  # bits: a pair when the image vectors agree too
COSINE = 0.90  # image-vector cosine that confirms a pair within LOOSE bits
BANDS = 4  # 16-bit bands of the hash for candidate pairs
RUN_CAP = 64  # neighbours in band order compared per content (a huge bucket stays linear)
EXACT_UP_TO = 4_000  # contents compared all pairs by vector; above, within k-means cells
CELL_SIZE = 400  # contents per k-means cell, on average
CELLS_PER_ROW = 2  # a content is compared within its nearest cells (one at a boundary misses)
BLOCK = 2048  # rows per matrix product (memory: BLOCK × cell size floats)


@dataclass(frozen=True, slots=True)
class Content:
    """One indexed content (all files with one content hash), as grouping sees it."""

    content_hash: str
    paths: tuple[str, ...]  # its files, shortest first
    pixels: int  # the largest width × height among its files (0: unknown)
    taken_at: str | None  # the earliest
    mtime_ns: int
    perceptual_hash: int | None


@dataclass(frozen=True, slots=True)
class Pair:
    """Two contents (indices into the list grouped) found alike, and why."""

    a: int
    b: int
    distance: int  # perceptual hash bits that differ
    cosine: float  # image vectors' cosine (0.0: a vector is missing)


def contents_of(rows: list[tuple]) -> list[Content]:
    """Contents from similar_groups.files_by_content rows (sorted by content hash)."""
    out: list[Content] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        group = rows[i:j]
        pixels = max((w or 0) * (h or 0) for _, _, w, h, _, _, _ in group)
        taken = sorted(t for _, _, _, _, t, _, _ in group if t)
        hashes = [p for *_, p in group if p is not None]
        out.append(
            Content(
                content_hash=rows[i][0],
                paths=tuple(sorted((r[1] for r in group), key=lambda p: (len(p), p))),
                pixels=pixels,
                taken_at=taken[0] if taken else None,
                mtime_ns=min(r[5] for r in group),
                perceptual_hash=hashes[0] if hashes else None,
            )
        )
        i = j
    return out


def original_order(c: Content) -> tuple:
    """Sort key of a group: the file that looks like the original first (largest pixel count,
    then oldest taken_at, then oldest mtime, then shortest path)."""
    return (-c.pixels, c.taken_at is None, c.taken_at or "", c.mtime_ns, len(c.paths[0]), c.paths)


def hash_pairs(hashes: np.ndarray) -> np.ndarray:
    """(P, 2) candidate index pairs (a < b) by hash bands; `hashes` (N,) uint64."""
    found = []
    n = len(hashes)
    for band in range(BANDS):
        keys = (hashes >> np.uint64(16 * band)) & np.uint64(0xFFFF)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        for off in range(1, min(RUN_CAP, n - 1) + 1):
            same = np.nonzero(sk[:-off] == sk[off:])[0]
            if len(same) == 0:
                break  # no run of equal keys is longer than `off`
            found.append(np.stack([order[same], order[same + off]], axis=1))
    return _unique(found)


def vector_pairs(vecs: np.ndarray, min_cosine: float = COSINE) -> np.ndarray:
    """(P, 2) index pairs (a < b) of rows of `vecs` (N, D), L2-normalised float32, whose inner
    product is at least `min_cosine`. Up to EXACT_UP_TO rows all pairs are compared; above, the
    rows are clustered (FAISS k-means on a sample) and compared within each of their CELLS_PER_ROW
    nearest cells, as matrix products: near-duplicates sit far closer than a cell's radius."""
    n, dim = vecs.shape
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if n <= EXACT_UP_TO:
        cells = [np.arange(n)]
    else:
        import faiss

        lists = max(2, n // CELL_SIZE)
        # Spherical, assigned by inner product: with L2 a short centroid near the origin is
        # nearest to every outlier and one cell takes 40 % of the rows (measured).
        kmeans = faiss.Kmeans(
            dim, lists, niter=10, seed=0, min_points_per_centroid=1, spherical=True
        )
        rng = np.random.default_rng(0)
        kmeans.train(vecs[rng.choice(n, min(n, 40 * lists), replace=False)])
        centroids = faiss.IndexFlatIP(dim)
        centroids.add(kmeans.centroids)
        _, assigned = centroids.search(vecs, CELLS_PER_ROW)  # (N, CELLS_PER_ROW)
        rows = np.repeat(np.arange(n), CELLS_PER_ROW)
        order = np.argsort(assigned.ravel(), kind="stable")
        bounds = np.searchsorted(assigned.ravel()[order], np.arange(lists + 1))
        cells = [rows[order[bounds[c] : bounds[c + 1]]] for c in range(lists)]
    found = []
    for members in cells:
        block = vecs[members]
        for i in range(0, len(members), BLOCK):
            sims = block[i : i + BLOCK] @ block.T  # (≤BLOCK, cell size)
            a, b = np.nonzero(sims >= min_cosine)
            a = a + i
            keep = a < b
            found.append(np.stack([members[a[keep]], members[b[keep]]], axis=1))
    return _unique(found)


def _unique(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct pairs of `parts` ((P, 2) each), a < b, as one (P, 2) int64 array."""
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(parts).astype(np.int64), axis=1)
    if not len(pairs):
        return pairs
    # One int64 key per pair: a 1-D unique, several times faster than unique(axis=0).
    span = int(pairs.max()) + 1
    keys = np.unique(pairs[:, 0] * span + pairs[:, 1])
    return np.stack([keys // span, keys % span], axis=1)


def alike_pairs(hashes: np.ndarray, have_hash: np.ndarray, vecs: np.ndarray | None) -> list[Pair]:
    """The pairs that pass the rule (module docstring). `hashes` (N,) uint64, `have_hash` (N,)
    bool (False: no perceptual hash, never paired), `vecs` (N, D) L2-normalised with zero rows
    for contents without a vector, or None."""
    cands = [hash_pairs(hashes[have_hash])]
    cands[0] = np.nonzero(have_hash)[0][cands[0]] if len(cands[0]) else cands[0]
    if vecs is not None and len(vecs):
        cands.append(vector_pairs(vecs))
    pairs = _unique([c for c in cands if len(c)])
    if not len(pairs):
        return []
    a, b = pairs[:, 0], pairs[:, 1]
    both = have_hash[a] & have_hash[b]
    a, b = a[both], b[both]
    d = distances(hashes[a], hashes[b]).astype(np.int64)
    near = d <= LOOSE  # most candidates are not: no vectors gathered for them
    a, b, d = a[near], b[near], d[near]
    cos = np.zeros(len(a), dtype=np.float32)
    if vecs is not None and len(vecs):
        cos = np.einsum("ij,ij->i", vecs[a], vecs[b])
    keep = (d <= STRICT) | (cos >= COSINE)
    return [
        Pair(int(x), int(y), int(z), float(c))
        for x, y, z, c in zip(a[keep], b[keep], d[keep], cos[keep], strict=True)
    ]


def components(n: int, pairs: list[Pair]) -> list[list[int]]:
    """Groups of 2+ indices connected by `pairs` (union-find with path halving)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[ra] = rb
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def normalised(vecs: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32 contiguous."""
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)


@dataclass
class Grouping:
    """The outcome: contents, the alike pairs, and the groups (indices, original first)."""

    contents: list[Content]
    pairs: list[Pair]
    groups: list[list[int]]

    def keys(self) -> dict[str, str]:
        """content_hash -> its group's original content hash, for every grouped content."""
        out = {}
        for g in self.groups:
            key = self.contents[g[0]].content_hash
            out.update({self.contents[i].content_hash: key for i in g})
        return out


def group_contents(contents: list[Content], vecs: np.ndarray | None) -> Grouping:
    """Group `contents`; `vecs` (N, D) their image vectors (zero rows: none), or None."""
    have = np.array([c.perceptual_hash not in (None, FLAT) for c in contents], dtype=bool)
    hashes = as_unsigned([c.perceptual_hash or 0 for c in contents])
    if vecs is not None:
        vecs = normalised(vecs)
    pairs = alike_pairs(hashes, have, vecs)
    groups = [
        sorted(g, key=lambda i: original_order(contents[i]))
        for g in components(len(contents), pairs)
    ]
    groups.sort(key=lambda g: original_order(contents[g[0]]))
    return Grouping(contents, pairs, groups)


def load_grouping(conn, model: str | None) -> Grouping:
    """Group every indexed content of the database at `conn` with `model`'s image vectors
    (None: the perceptual hash alone)."""
    contents = contents_of(similar_groups.files_by_content(conn))
    vecs = None
    if model is not None and contents:
        hashed = [c.content_hash for c in contents if c.perceptual_hash is not None]
        keys, found = similar_groups.image_vectors(conn, model, hashed)
        if keys:
            row = {h: i for i, h in enumerate(keys)}
            vecs = np.zeros((len(contents), found.shape[1]), dtype=np.float32)
            for i, c in enumerate(contents):
                if c.content_hash in row:
                    vecs[i] = found[row[c.content_hash]]
    return group_contents(contents, vecs)


def refresh_groups(db, model: str | None) -> int:
    """Rebuild the similar_groups table of `db` (a sqlite_utils Database); returns the number of
    groups of near-duplicates."""
    grouping = load_grouping(db.conn, model)
    similar_groups.replace_groups(db, grouping.keys())
    return len(grouping.groups)

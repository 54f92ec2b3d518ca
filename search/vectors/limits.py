"""The sizes at which the FAISS cache changes how it stores vectors: HNSW instead of exact search,
the delta folded into the base, tombstones compacted by a rebuild (search/vectors/cache.py has
the design). A caller that needs other sizes (a test, a benchmark) passes its own `Limits`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Exact flat search on 2 CPU cores costs ~10 ms per 100k vectors (memory bound), so it stays
    # the default until it nears the 100 ms budget; HNSW takes over from this size.
    hnsw_min: int = 300_000
    # Rows the exact delta may hold before they are folded into the base: searching 50k exact
    # costs ~5 ms on 2 cores, and folding 50k into a 1M HNSW takes about a minute (BENCHMARKS.md).
    delta_max: int = 50_000
    # Tombstones past this share of the positions make the next update a full rebuild
    # (compaction): below it a masked search wastes < 20 % of its scan / graph walk; above it the
    # rebuild pays off.
    compact_share: float = 0.20

"""FAISS index construction: exact, HNSW, compressed (IVF-PQ), the memory rule, the GPU copy.

Which type a model's vectors get is decided when the cache is (re)built, by size:

- exact `IndexFlatIP` below `Limits.hnsw_min` (search/vectors/limits.py), HNSW
  (`IndexHNSWFlat`) above it; with a GPU build of FAISS and a visible GPU, exact at every size
  (searched on the GPU);
- compressed (`IndexIVFPQ`) when the float32 type would not fit the memory budget
  (`Settings.vector_memory_gb`, `IMGCAP_VECTOR_MEMORY_GB`, default 8 GB for both kinds together).
  Its product-quantised codes (64 bytes per 512-d vector instead of 2,048) live in RAM; the full
  vectors stay in a float32 file beside it, memory-mapped, and the best `RERANK` candidates of
  each search are re-scored from them exactly, so scores are true cosines and recall@10 stays
  high (BENCHMARKS.md "A vector index that grows").
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("image", "caption")

HNSW_M = 32  # graph degree: 32 keeps recall@10 >= 0.99 on 512-d CLIP-like data
HNSW_EF_CONSTRUCTION = 80

# IVF-PQ: about sqrt(N) lists (1,024 at 1M), PQ with 8 dimensions per byte-sized sub-code.
# Lists scanned per query (x the filter's widening). At 1M clustered 512-d vectors (1,024
# lists) recall@10 did not move between 32, 64 and 128 (the PQ ranking, not the lists, limits
# it: see RERANK), while latency grew; BENCHMARKS.md "A vector index that grows".
IVF_NPROBE = 32
IVF_TRAIN_PER_LIST = 64  # training sample: 64 vectors per list (65,536 at 1M), not all N
PQ_DIMS_PER_CODE = 8
# Compressed candidates re-scored exactly from the memory-mapped vectors: max(RERANK, 10 k).
# At 1M clustered 512-d: recall@10 0.777 at 100, 0.934 at 200, 0.9985 at 400 (~0.8 MB read).
RERANK = 400
_ADD_CHUNK = 65_536

# Bytes per vector held in RAM, per type (ids included), for the memory rule.
_GRAPH_BYTES = HNSW_M * 2 * 4 * 1.1  # level-0 links (2M ints) + upper levels


def gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def memory_bytes(index_type: str, n: int, dim: int) -> float:
    """RAM both kinds of an index of this type take for n vectors of dim (estimate)."""
    per = {
        "flat": dim * 4 + 8,
        "hnsw": dim * 4 + _GRAPH_BYTES + 8,
        "ivfpq": pq_codes(dim) + 8 + 8,  # code + the inverted list's id + our position id
    }[index_type]
    return n * per * len(KINDS)


def choose_type(n: int, dim: int, memory_gb: float, hnsw_min: int) -> str:
    """flat | hnsw | ivfpq for n vectors under a memory budget (see the module doc)."""
    plain = "hnsw" if n >= hnsw_min and not gpu_available() else "flat"
    if memory_bytes(plain, n, dim) > memory_gb * 1e9:
        return "ivfpq"
    return plain


def pq_codes(dim: int) -> int:
    """Sub-quantisers for dim: one byte per PQ_DIMS_PER_CODE dimensions (a divisor of dim), at
    least 16 (small vectors cost little memory anyway; fewer codes lose too much)."""
    m = max(1, dim // PQ_DIMS_PER_CODE, min(dim, 16))
    while dim % m:
        m -= 1
    return m


def make_index(mat: np.ndarray, hnsw: bool):
    """An exact or HNSW index holding mat (N, D), L2-normalised rows."""
    import faiss

    dim = mat.shape[1] if mat.ndim == 2 and mat.shape[1] else 1
    if hnsw:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = faiss.IndexFlatIP(dim)
    if len(mat):
        index.add(mat)
    return index


def make_compressed(raw: np.ndarray, seed: int = 0):
    """An IVF-PQ index over raw (N, D) (a memory map is fine: read in chunks). Trained on a
    sample, so training time does not grow with N."""
    import faiss

    n, dim = raw.shape
    nlist = 1 << max(0, round(math.log2(max(math.sqrt(n), 1))))
    nlist = max(1, min(nlist, n // 39))  # FAISS wants >= 39 training points per list
    # 8-bit codes need ~256 x 39 training points; small collections get fewer bits.
    nbits = max(1, min(8, int(math.log2(max(n // 39, 2)))))
    index = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(dim), dim, nlist, pq_codes(dim), nbits, faiss.METRIC_INNER_PRODUCT
    )
    index.do_polysemous_training = False  # only for polysemous search, which is not used
    take = min(n, max(IVF_TRAIN_PER_LIST * nlist, 39 * (1 << nbits)))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, take, replace=False))
    index.train(np.ascontiguousarray(raw[sample], dtype=np.float32))
    for start in range(0, n, _ADD_CHUNK):
        index.add(np.ascontiguousarray(raw[start : start + _ADD_CHUNK], dtype=np.float32))
    index.nprobe = IVF_NPROBE
    return index


def type_of(index) -> str:
    if hasattr(index, "hnsw"):
        return "hnsw"
    if hasattr(index, "pq") or hasattr(index, "invlists"):
        return "ivfpq"
    return "flat"


class GpuFlat:
    """A GPU copy of an exact index for searching; the CPU original for reconstruct_batch and
    selector searches (GPU flat has neither)."""

    MAX_K = 2048  # the largest k FAISS GPU flat search accepts

    def __init__(self, gpu, cpu, res):
        self.gpu, self.cpu, self.res, self.d = gpu, cpu, res, cpu.d

    @property
    def ntotal(self) -> int:
        return self.cpu.ntotal

    def reconstruct_batch(self, pos):
        return self.cpu.reconstruct_batch(pos)

    def search(self, q, k, params=None):
        if params is not None and getattr(params, "sel", None) is not None:
            return self.cpu.search(q, k, params=params)
        return self.gpu.search(q, k)


def to_gpu(index, res):
    """An exact CPU index as a GpuFlat (others unchanged)."""
    import faiss

    if type_of(index) != "flat" or isinstance(index, GpuFlat) or not index.ntotal:
        return index
    return GpuFlat(faiss.index_cpu_to_gpu(res, 0, index), index, res)

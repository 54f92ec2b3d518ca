"""The perceptual hash: 64 bits that stay almost the same when a photo is resized, re-encoded,
brightened or lightly cropped, so near-duplicates (bursts, copies, edits) can be found by
Hamming distance (indexer/run/similar.py). Computed from the pixels a decode worker already has,
never from the file (about 1 ms from the reduced decode).

The DCT hash (pHash, Zauner 2010): the picture in grey, box-reduced to 32×32, its 2-D DCT-II,
the 8×8 lowest frequencies, each bit "this coefficient is above the median of the 63 AC ones".
It was measured against the difference hash (dHash) on the generated variants
(benchmarks/bench_duplicates.py): see BENCHMARKS.md "Near-duplicate groups".

Stored as a signed 64-bit integer (SQLite's INTEGER); `hamming` takes either sign.
"""

from __future__ import annotations

import numpy as np

SIDE = 32  # the grey thumbnail the DCT runs on
BITS = 8  # the lowest BITS × BITS frequencies make the hash
# A picture with no detail (a flat colour, a blank frame, a black shot): its AC coefficients are
# rounding noise, so two such pictures of any colours hash alike. It gets FLAT, stored so it is
# not computed again and never paired by hash (exact copies still group). A real hash is never
# 0: about half of the 63 AC coefficients lie above their median.
FLAT = 0
FLAT_STD = 2.0  # grey levels (0-255) of the SIDE × SIDE thumbnail below which it is flat
_MASK = (1 << 64) - 1


def _dct_matrix(n: int) -> np.ndarray:
    """(n, n) orthonormal DCT-II matrix D: D @ x is the DCT of the column x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(SIDE)


def perceptual_hash(image, extent: tuple[float, float, float, float] | None = None) -> int:
    """The 64-bit DCT hash of a PIL image, as a signed int. `extent`: where the full picture lies
    in `image` (indexer/media/decode.py DecodedImage.extent; None: all of it)."""
    from PIL import Image

    box = None if extent is None else tuple(float(v) for v in extent)
    grey = image.convert("L") if image.mode != "L" else image
    small = np.asarray(grey.resize((SIDE, SIDE), Image.Resampling.BOX, box=box), np.float64)
    if float(small.std()) < FLAT_STD:
        return FLAT
    return hash_of_grey(small)


def hash_of_grey(grey: np.ndarray) -> int:
    """The hash of a (SIDE, SIDE) grey array (any scale), as a signed 64-bit int."""
    freq = (_DCT @ grey @ _DCT.T)[:BITS, :BITS].ravel()  # (64,), [0] is the mean (DC)
    bits = freq > np.median(freq[1:])
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes."""
    return ((a ^ b) & _MASK).bit_count()


def as_unsigned(hashes) -> np.ndarray:
    """Signed 64-bit hashes (a sequence or array) as a uint64 array, for vectorised distances."""
    return np.asarray(hashes, dtype=np.int64).view(np.uint64)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise Hamming distances of two uint64 arrays (broadcasting): uint8."""
    return np.bitwise_count(np.bitwise_xor(a, b))

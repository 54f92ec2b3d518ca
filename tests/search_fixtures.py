"""Test databases for search/export, written through the store's own API, and a fake CLIP.

The fake encoder shares ClipEncoder's interface (encode_texts, encode_images, preprocess,
image_size) and is deterministic: a text's vector is the normalised sum of one fixed random vector
per word, so "dog on a bench" is near "a dog" and far from "red car". Photos get image vectors
from their `content` words (plus a little noise), caption vectors from their caption, which lets
tests reason about rankings exactly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.media.walk import content_hash
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord
from indexer.store.roots import add_roots

DIM = 64
MODEL = "fake-clip"


def _word_vec(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def embed_text(text: str) -> np.ndarray:
    words = re.findall(r"\w+", text.casefold())
    v = np.sum([_word_vec(w) for w in words], axis=0) if words else np.zeros(DIM, np.float32)
    return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)


class FakeEncoder:
    image_size = 16

    def __init__(self):
        self.calls: list[str] = []

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.calls.append("texts")
        return np.stack([embed_text(t) * 3.0 for t in texts])  # raw: not unit length, like CLIP

    def encode_images(self, pixels) -> np.ndarray:
        """(N, 3, S, S) normalised model inputs, as indexer.media.preprocess makes them."""
        self.calls.append("images")
        flat = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1)
        proj = np.random.default_rng(7).standard_normal((flat.shape[1], DIM)).astype(np.float32)
        return flat @ proj


def fake_loader(encoder: FakeEncoder | None = None):
    enc = encoder or FakeEncoder()
    return lambda model, settings: enc


@dataclass
class Photo:
    name: str  # relative path under the photo root
    caption: str
    content: str | None = None  # what the "image" shows (image vector); default: the caption
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    width: int = 640
    height: int = 480
    image_vec: np.ndarray | None = None  # explicit image vector (e.g. from FakeEncoder pixels)
    caption_vec: np.ndarray | None = None  # explicit caption vector; default: the caption's
    same_as: str | None = None  # name of another photo with byte-identical content


def write_image(path: Path, seed: int) -> None:
    """A small, unique PNG (random colours from the seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


def image_vec_of_file(path: Path) -> np.ndarray:
    """The image vector `imgcap index` would store for `path` with FakeEncoder."""
    from indexer.media.preprocess import encoder_tensor, model_pixels

    enc = FakeEncoder()
    _, px = model_pixels(path, enc.image_size)
    return enc.encode_images(encoder_tensor(enc, px)[None])[0]


def make_db(
    root: Path, photos: list[Photo], db_path: Path, model: str = MODEL, seed: int = 0
) -> Path:
    """Write photo files under root and index them (through Store.write_batch) into db_path."""
    rng = np.random.default_rng(seed)
    hashes: dict[str, str] = {}
    results, files = [], []
    for i, p in enumerate(photos):
        path = root / p.name
        if p.same_as is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((root / p.same_as).read_bytes())
            h = hashes[p.same_as]
        else:
            write_image(path, seed * 100_000 + i)
            h = content_hash(path)
            vec = p.image_vec
            if vec is None:
                noise = 0.05 * rng.standard_normal(DIM).astype(np.float32)
                vec = 2.0 * embed_text(p.content or p.caption) + noise
            cap = embed_text(p.caption) * 2.0 if p.caption_vec is None else p.caption_vec
            results.append(ResultRecord(h, p.caption, vec, cap))
        hashes[p.name] = h
        st = path.stat()
        files.append(
            FileRecord(
                path=str(path.absolute()),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                content_hash=h,
                width=p.width,
                height=p.height,
                taken_at=p.taken_at,
                camera_make=p.camera_make,
                camera_model=p.camera_model,
            )
        )
    with Store.open(db_path) as s:
        s.write_batch(model, results, files)
        # As `imgcap index ROOT` records it: the gallery serves files only inside a root.
        add_roots(s.db, [str(root.absolute())], db_path)
    return db_path

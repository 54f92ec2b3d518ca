"""Shared fixtures. Tiny models are written once per session through the real writer and loaded
through the real loader (indexer.models.loading), exactly like the published models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network, whatever the machine can reach.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models are fastest on one thread; on a busy 2-core machine a second OpenMP thread
    waits whole scheduler slices at every barrier (measured 8 ms per tiny matmul)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random model directory (seed 0, name 'tiny-0')."""
    from indexer.models.random_weights import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny0") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_b(tmp_path_factory) -> Path:
    """A second tiny model (seed 1, name 'tiny-1'), for model-switch scenarios."""
    from indexer.models.random_weights import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny1") / "model", seed=1)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny model loaded on the CPU (shared: don't mutate its weights)."""
    from indexer.config import Settings
    from indexer.models.loading import load_model

    return load_model(str(tiny_model_dir), Settings(device="cpu"))


@pytest.fixture(scope="session")
def tiny_model_fp32(tiny_model_dir):
    """The tiny model in fp32 whatever `auto` picks here (bf16 on CPUs with native bf16): for
    comparisons with open_clip's and the reference's fp32 arithmetic."""
    from indexer.config import Settings
    from indexer.models.loading import load_model

    return load_model(str(tiny_model_dir), Settings(device="cpu", precision="fp32"))


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory) -> dict:
    """The shapes world and its trained tiny model (tests/synthetic_world.py): about a minute, so
    one per session, shared by the tests that train, caption, index and search it."""
    from synthetic_world import build_world

    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def text_reader():
    """The real OCR models (indexer/models/ocr.py), loaded once; shared, so tests that count
    its reads wrap it (text_photos.CountingReader) rather than reading `calls`."""
    from indexer.models.ocr import TextReader

    return TextReader()


@pytest.fixture(scope="session")
def text_library(tmp_path_factory, tiny_model, text_reader) -> dict:
    """Photos that show text (tests/text_photos.py) indexed by the tiny model with OCR, once:
    {"root", "db", "words": {relative path: its unique word or None}, "summary"}. Tests that
    change it work on a copy."""
    from text_photos import CountingReader, make_text_photos

    from indexer.config import Settings
    from indexer.run.pipeline import index_paths

    base = tmp_path_factory.mktemp("text_library")
    words = make_text_photos(base / "photos")
    settings = Settings(db_path=base / "lib.db", workers=1, device="cpu", ocr=True)
    reader = CountingReader(text_reader)
    summary = index_paths([base / "photos"], settings, model=tiny_model, text_reader=reader)
    return {"root": base / "photos", "db": base / "lib.db", "words": words, "summary": summary,
            "reads": reader.calls}  # fmt: skip

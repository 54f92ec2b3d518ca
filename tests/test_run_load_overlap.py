"""An index run decodes its first photos while the model loads, at the size the model's files
say (indexer/models/loading.py expected_input_size)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from PIL import Image
from run_settings import run_settings

from indexer.config import Settings
from indexer.models.loading import expected_input_size, loading_steps
from indexer.run.local_engine import LocalEngine
from indexer.run.pipeline import index_paths
from indexer.run.workers import decode_for_model


def marking_decode(marks: Path, path: str, size: int, **options):
    """Decode task that leaves a mark per file decoded (runs in a worker process)."""
    (marks / Path(path).name).touch()
    return decode_for_model(path, size, **options)


def test_decoding_starts_while_the_model_loads(tmp_path, tiny_model_dir):
    photos, marks = tmp_path / "photos", tmp_path / "marks"
    photos.mkdir()
    marks.mkdir()
    for i in range(3):
        Image.new("RGB", (96, 80), (40 * i, 90, 200)).save(photos / f"p{i}.jpg")
    seen_while_loading: list[bool] = []

    def on_step(text: str) -> None:
        if text != "load tokenizer":  # the last step of a ClipCap load
            return
        deadline = time.monotonic() + 15  # a worker's start and one tiny decode take ~1 s
        while not any(marks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_while_loading.append(any(marks.iterdir()))

    engine = LocalEngine(decode_task=functools.partial(marking_decode, marks))
    settings = run_settings(tmp_path, tiny_model_dir)
    with loading_steps(on_step):
        s = index_paths([photos], settings, engine=engine)
    assert seen_while_loading == [True]
    assert s.captioned == 3 and s.failed == 0


def test_expected_input_size_is_the_loaded_models(tmp_path, tiny_model_dir, tiny_model):
    settings = Settings(device="cpu", offline=True, models_dir=tmp_path, cache_dir=tmp_path)
    assert expected_input_size(str(tiny_model_dir), settings) == tiny_model.encoder.image_size
    assert expected_input_size(str(tmp_path / "missing"), settings) is None
    # A registry model not downloaded: unknown, and nothing is fetched to find out.
    assert expected_input_size("clipcap-coco", settings) is None

"""Decoding raises no warnings, and third-party warnings stay off the user's terminal without being
filtered process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from PIL import Image

from indexer.models.clipcap import beam_decode, greedy_decode

ROOT = Path(__file__).resolve().parent.parent


def test_decoders_raise_no_warning_even_as_errors(tiny_model):
    """Called directly (outside any filter): any warning, such as a library's deprecation notice,
    becomes an error here."""
    net = tiny_model.captioner.model
    prefix = net.prefix_embeddings(torch.randn(3, tiny_model.encoder.embed_dim))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        greedy = greedy_decode(net, prefix, 6, None)
        beams = beam_decode(net, prefix, 3, 6, None)
    assert [len(t) for t in greedy] == [6, 6, 6] and len(beams) == 3


def test_loading_leaves_the_process_warning_filters_alone(tiny_model_dir):
    from indexer.config import Settings
    from indexer.models.loading import load_model

    before = list(warnings.filters)
    load_model(str(tiny_model_dir), Settings(device="cpu"))
    assert warnings.filters == before


def test_caption_command_prints_no_warnings(tiny_model_dir, tmp_path):
    """A real process, default warning filters: nothing but the caption line reaches stderr."""
    photo = tmp_path / "red.png"
    Image.new("RGB", (80, 60), (220, 20, 20)).save(photo)
    env = dict(
        os.environ,
        IMGCAP_CACHE_DIR=str(tmp_path / "hf"),
        IMGCAP_MODELS_DIR=str(tmp_path / "models"),
        IMGCAP_OFFLINE="1",
        PYTHONWARNINGS="default",  # show every warning once per location, as a fresh shell does
    )
    code = "import sys; from cli import app; app(sys.argv[1:])"
    args = ["caption", str(photo), "--model", str(tiny_model_dir), "--beams", "2"]
    res = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "deprecated" not in res.stderr, res.stderr

"""The synthetic shapes world with a tiny model taught to see it and a captioner trained on it:
what test_train_synthetic_world.py checks and test_search_retrieval_eval.py searches. Built once
per session (conftest.py `synthetic_world`): about a minute on 2 cores.

The world is the "centred" layout: one large shape (4 shapes x 4 colours) on a neutral background.
The tiny model's CLIP has random weights, and random features separate colours but hardly shapes
(a probe on them gets ~35 % shape); ClipCap keeps CLIP frozen, so captioner training alone cannot
recover the shape. So the build first teaches the tiny CLIP's image tower to see the world
(`teach_clip`, supervised, 10-15 s), which writes the weights back into the model directory; from
there on everything loads them through the normal path (`load_model`, `imgcap train --from`,
`imgcap index`). The text tower stays random.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SIZE = 64  # = the tiny CLIP's input: no resampling between the scene and the model
LAYOUT = "centred"
N_SEE = 1000  # scenes the CLIP is taught on (seed 0); the captioner trains on the first N_TRAIN
N_TRAIN, N_HELD_OUT = 300, 60
EPOCHS = 40


def build_world(root: Path) -> dict:
    """Under root: the training data (seed 0), held-out scenes (seed 1, COCO), the untrained tiny
    model, the one taught to see, and the captioner trained from it."""
    from indexer.config import Settings
    from indexer.models.random_weights import write_tiny_model
    from indexer.train.loop import train
    from indexer.train.recipe import TrainConfig
    from indexer.train.synthetic import generate_scenes, teach_clip, write_dataset

    data = write_dataset(root / "train", N_TRAIN, seed=0, fmt="csv", size=SIZE, layout=LAYOUT)
    held_out = write_dataset(
        root / "held_out", N_HELD_OUT, seed=1, fmt="coco", size=SIZE, layout=LAYOUT
    )
    tiny = write_tiny_model(root / "tiny", seed=0)  # stays random: the "before" of the eval test
    seeing = shutil.copytree(tiny, root / "seeing")
    seen = teach_clip(seeing, generate_scenes(N_SEE, seed=0, size=SIZE, layout=LAYOUT), seed=0)
    cfg = TrainConfig(
        data=data,
        out=root / "trained",
        base=str(seeing),
        epochs=EPOCHS,
        lr=5e-3,  # a 2-layer, 64-wide GPT-2 needs ~100x the recipe's 2e-5
        warmup=0,
        seed=0,
    )
    result = train(cfg, Settings(device="cpu"))
    return {"root": root, "tiny": tiny, "trained": result.out, "held_out": held_out,
            "result": result, "seen": seen}  # fmt: skip

"""`imgcap train --scst`: the run machinery (CLI, resume after a kill, validation CIDEr-D picks the
epoch, settings checks). The tiny random model stands in for a cross-entropy model: these tests
are about the run, not about learning (tests/test_train_scst_world.py is)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.train.loop import train
from indexer.train.recipe import TrainConfig

CPU = Settings(device="cpu")


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from indexer.train.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("scst_data"), 8, seed=0, fmt="csv", size=64)


def _cfg(data: Path, out: Path, base: Path, **kw) -> TrainConfig:
    args = {"epochs": 2, "batch_size": 12, "lr": 1e-3, "warmup": 0, "samples": 3} | kw
    return TrainConfig(data=data, out=out, base=str(base), scst=True, **args)


def test_scst_needs_a_model_to_start_from_and_two_samples(data, tmp_path):
    with pytest.raises(UsageError, match="--from"):
        TrainConfig(data=data, out=tmp_path / "o", scst=True)
    with pytest.raises(UsageError, match="--samples"):
        TrainConfig(data=data, out=tmp_path / "o", base="x", scst=True, samples=1)
    with pytest.raises(UsageError, match="reward"):
        TrainConfig(data=data, out=tmp_path / "o", base="x", scst=True, reward="bleu")
    with pytest.raises(UsageError, match="mapping"):
        TrainConfig(data=data, out=tmp_path / "o", base="x", scst=True, mapping="mlp")


def test_resume_after_a_kill_gives_the_uninterrupted_weights(data, tiny_model_dir, tmp_path):
    whole = train(_cfg(data, tmp_path / "whole", tiny_model_dir), CPU)
    assert [h.epoch for h in whole.history] == [1, 2]
    out = tmp_path / "killed"

    def kill_in_epoch_2(p):
        if p.phase == "train" and p.epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(_cfg(data, out, tiny_model_dir), CPU, kill_in_epoch_2)
    seen = []
    resumed = train(_cfg(data, out, tiny_model_dir), CPU, lambda p: seen.append(p))
    assert resumed.resumed_from == (1, 0)
    assert {p.epoch for p in seen if p.phase == "train"} == {2}
    assert all(p.reward is not None for p in seen if p.phase == "train")
    # Same captions sampled (a generator per step), same RNG state: the same weights.
    a = torch.load(tmp_path / "whole" / "training" / "state.pt", weights_only=True)["model"]
    b = torch.load(out / "training" / "state.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for h1, h2 in zip(whole.history, resumed.history, strict=True):
        assert h1.reward == pytest.approx(h2.reward) and h1.distinct_2 == h2.distinct_2


def test_validation_cider_picks_the_epoch(data, tiny_model_dir, tmp_path):
    from indexer.train.synthetic import write_dataset

    val = write_dataset(tmp_path / "val", 4, seed=5, fmt="csv", size=64, split="val")
    result = train(_cfg(data, tmp_path / "run", tiny_model_dir, val=val), CPU)
    assert result.selected_by == "val_cider"
    ciders = [h.val_cider for h in result.history]
    assert all(c is not None and c >= 0 for c in ciders)
    assert result.best_val_cider == max(ciders)
    assert result.history[result.best_epoch - 1].val_cider == max(ciders)
    spec = json.loads((tmp_path / "run" / "imgcap-model.json").read_text())
    assert spec["trained"]["scst"]["val_cider"] == max(ciders)
    assert spec["trained"]["epoch"] == result.best_epoch


def test_cli_scst_json_and_epoch_lines(data, tiny_model_dir, tmp_path):
    import cli

    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--from", str(tiny_model_dir), "--scst",
            "--samples", "2", "--top-k", "5", "--reward", "cider-d", "--epochs", "1",
            "--batch-size", "8", "--lr", "1e-3", "--device", "cpu"]  # fmt: skip
    r = CliRunner().invoke(cli.app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    (epoch,) = summary["history"]
    assert epoch["reward"] is not None and 0 <= epoch["ends_with_period"] <= 1
    assert summary["selected_by"] == "last_epoch" and summary["captions"] == 8 * 2
    assert "reward" in r.stderr and "distinct-2" in r.stderr  # the epoch line
    r = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "human")])
    assert r.exit_code == 0, r.output
    assert "16 sampled captions per epoch" in r.stdout and "kept the last epoch" in r.stdout
    r = CliRunner().invoke(cli.app, ["train", str(data), "--out", str(tmp_path / "x"), "--scst"])
    assert r.exit_code == 2 and "--from" in r.output

"""imgcap train never overwrites a model it did not make without --force, and only calls an epoch
"best" when validation data chose it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.train.loop import train
from indexer.train.recipe import TrainConfig

CPU = Settings(device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from indexer.train.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("data"), 4, seed=0, fmt="csv", size=64)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory) -> Path:
    from indexer.train.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("val"), 3, seed=5, fmt="csv", size=64)


def _cfg(data: Path, out: Path, base: Path | str, **kw) -> TrainConfig:
    args = {"epochs": 1, "batch_size": 8, "lr": 3e-3, "warmup": 0} | kw
    return TrainConfig(data=data, out=out, base=str(base), **args)


def _copy(model_dir: Path, where: Path) -> Path:
    shutil.copytree(model_dir, where)
    return where


def _fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ overwriting
def test_out_holding_a_model_is_refused_and_left_alone(data, tiny_model_dir, tmp_path):
    other = _copy(tiny_model_dir, tmp_path / "mine")
    before = _fingerprint(other)
    with pytest.raises(UsageError, match="already a model directory.*--force") as e:
        train(_cfg(data, other, tiny_model_dir), CPU)
    assert e.value.exit_code == 2
    assert _fingerprint(other) == before


def test_out_equal_to_from_is_refused_without_force(data, tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path / "model")
    before = _fingerprint(model)
    with pytest.raises(UsageError, match="--from starts from"):
        train(_cfg(data, model, model), CPU)
    (tmp_path / "link").symlink_to(model)
    with pytest.raises(UsageError, match="--from starts from"):  # another name of it
        train(_cfg(data, model, tmp_path / "link"), CPU)
    assert _fingerprint(model) == before


def test_force_replaces_from_in_place_and_the_result_loads(data, tiny_model_dir, tmp_path):
    from indexer.models.loading import load_model

    model = _copy(tiny_model_dir, tmp_path / "model")
    result = train(_cfg(data, model, model, force=True, mapping="transformer"), CPU)
    assert result.best_epoch == 1
    spec = json.loads((model / "imgcap-model.json").read_text())
    assert spec["trained"]["base"] == "tiny-0" and spec["name"] == "model"
    # The whole directory was rewritten: the new mapper's config, not the old spec's.
    loaded = load_model(str(model), CPU)
    assert loaded.captioner.model.cfg.mapping == "transformer"


def test_a_folder_with_other_files_is_refused(data, tiny_model_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not mine to lose")
    with pytest.raises(UsageError, match="other files"):
        train(_cfg(data, folder, tiny_model_dir), CPU)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        train(_cfg(data, tmp_path / "file", tiny_model_dir, force=True), CPU)


def test_rerunning_a_run_resumes_without_force(data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data, out, tiny_model_dir), CPU)
    again = train(_cfg(data, out, tiny_model_dir), CPU)  # same settings: nothing to redo
    assert again.resumed_from == (1, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(_cfg(data, empty, tiny_model_dir), CPU).best_epoch == 1


def test_force_starts_over_a_run_with_other_settings(data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data, out, tiny_model_dir), CPU)
    with pytest.raises(UsageError, match="other settings"):
        train(_cfg(data, out, tiny_model_dir, lr=1e-3), CPU)
    result = train(_cfg(data, out, tiny_model_dir, lr=1e-3, force=True), CPU)
    assert result.resumed_from is None and [h.epoch for h in result.history] == [1]
    assert json.loads((out / "imgcap-model.json").read_text())["trained"]["epoch"] == 1


# ------------------------------------------------------------------------------- "best"
def test_without_validation_no_epoch_is_best_and_the_last_is_kept(data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(data, out, tiny_model_dir, epochs=2), CPU)
    assert [h.best for h in result.history] == [False, False]
    assert result.best_epoch == 2 and result.best_val_loss is None
    assert result.selected_by == "last_epoch"
    assert json.loads((out / "imgcap-model.json").read_text())["trained"]["epoch"] == 2


def test_with_validation_the_first_epoch_is_best(data, val_data, tiny_model_dir, tmp_path):
    result = train(_cfg(data, tmp_path / "run", tiny_model_dir, val=val_data), CPU)
    assert [h.best for h in result.history] == [True]
    assert result.selected_by == "val_loss" and result.best_val_loss is not None


# ------------------------------------------------------------------------------------ CLI
def _cli(*args: str):
    import cli

    return CliRunner().invoke(cli.app, ["train", *args, "--epochs", "1", "--batch-size", "8",
                                        "--lr", "1e-3", "--device", "cpu"])  # fmt: skip


def test_cli_refuses_out_equal_to_from_with_exit_2_and_force_overrides(
    data, tiny_model_dir, tmp_path
):
    model = _copy(tiny_model_dir, tmp_path / "model")
    r = _cli(str(data), "--out", str(model), "--from", str(model))
    assert r.exit_code == 2 and "--force" in r.output, r.output
    r = _cli(str(data), "--out", str(model), "--from", str(model), "--force", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["selected_by"] == "last_epoch" and summary["best_epoch"] == 1


def test_cli_epoch_lines_say_best_only_with_validation(data, val_data, tiny_model_dir, tmp_path):
    r = _cli(str(data), "--out", str(tmp_path / "a"), "--from", str(tiny_model_dir))
    assert r.exit_code == 0, r.output
    assert "epoch 1/1" in r.output and "(best)" not in r.output
    assert "last epoch" in r.output and "no validation data" in r.output
    r = _cli(
        str(data), "--out", str(tmp_path / "b"), "--from", str(tiny_model_dir), "--val",
        str(val_data),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "(best)" in r.output and "best epoch 1 (val loss" in r.output

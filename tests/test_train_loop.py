"""imgcap train: loss, masking, schedule, resume, --prefix-only, the written model dir, bad rows.

Everything runs the tiny model on a handful of synthetic scenes for one or two short epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.train.loop import train
from indexer.train.recipe import (
    IGNORE_INDEX,
    TrainConfig,
    caption_loss,
    lr_factor,
    make_batch,
    warmup_steps,
)

CPU = Settings(device="cpu")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from indexer.train.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("data"), 8, seed=0, fmt="csv", size=64)


def _cfg(data: Path, out: Path, base: Path, **kw) -> TrainConfig:
    args = {"epochs": 1, "batch_size": 8, "lr": 3e-3, "warmup": 0} | kw
    return TrainConfig(data=data, out=out, base=str(base), **args)


def _net(model_dir: Path):
    from indexer.models.loading import load_model

    return load_model(str(model_dir), CPU).captioner.model


# ------------------------------------------------------------------------------- loss, batches
def test_make_batch_pads_labels_with_ignore_index_and_masks_the_padding():
    tokens, labels, mask = make_batch([[5, 6, 13], [7, 13]], prefix_length=4)
    assert tokens.tolist() == [[5, 6, 13], [7, 13, 0]]
    assert labels.tolist() == [[5, 6, 13], [7, 13, IGNORE_INDEX]]
    assert mask.tolist() == [[1] * 7, [1] * 6 + [0]]
    _, _, none = make_batch([[5, 13], [7, 13]], prefix_length=4)
    assert none is None  # nothing padded: no mask, SDPA's causal path


def test_loss_is_on_caption_tokens_only(tiny_model_dir):
    net = _net(tiny_model_dir).train(False)
    prefix = torch.randn(2, 32)
    tokens, labels, mask = make_batch([[5, 6, 13], [7, 13]], net.cfg.prefix_length)
    with torch.no_grad():
        loss = caption_loss(net, tokens, labels, prefix, mask)
        # What fills a padded slot cannot matter: it is masked and never a label.
        tokens[1, 2] = 99
        assert torch.allclose(loss, caption_loss(net, tokens, labels, prefix, mask))
        # Reference computation: logits at K-1..K+T-2 against the tokens, mean over real tokens.
        logits = net(tokens, prefix, mask)
        k = net.cfg.prefix_length
        terms = [
            -torch.log_softmax(logits[b, k - 1 + j], -1)[t]
            for b, ids in enumerate([[5, 6, 13], [7, 13]])
            for j, t in enumerate(ids)
        ]
        assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)


def test_loss_decreases_on_a_tiny_batch(tiny_model_dir):
    net = _net(tiny_model_dir)
    with torch.enable_grad():
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
        prefix = torch.randn(4, 32)
        tokens, labels, mask = make_batch([[5, 6, 13], [7, 13], [8, 9, 10, 13], [11, 13]], 4)
        losses = []
        for _ in range(8):
            loss = caption_loss(net, tokens, labels, prefix, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_warmup_default_is_capped_to_a_tenth_of_the_steps():
    cfg = TrainConfig(data=Path("d"), out=Path("o"))
    assert warmup_steps(cfg, 100) == 10  # 5000 would outlast the whole run
    assert warmup_steps(cfg, 1_000_000) == 5000  # the reference's value on big data
    assert warmup_steps(TrainConfig(data=Path("d"), out=Path("o"), warmup=30), 100) == 30
    assert [lr_factor(s, 2, 6) for s in range(7)] == [0, 0.5, 1, 0.75, 0.5, 0.25, 0]


# ---------------------------------------------------------------------------------- the run
def test_written_model_dir_loads_and_has_the_published_layout(small_data, tiny_model_dir, tmp_path):
    from indexer.models.checkpoint import read_state_dict
    from indexer.models.loading import load_model

    out = tmp_path / "run"
    result = train(_cfg(small_data, out, tiny_model_dir, epochs=2), CPU)
    assert [h.epoch for h in result.history] == [1, 2]
    assert result.history[1].train_loss < result.history[0].train_loss
    assert result.n_images == 8 and result.n_captions == 8 * 4
    model = load_model(str(out), CPU)
    assert model.name == "run"
    captions = model.captioner.caption(torch.randn(2, 32), max_tokens=8)
    assert len(captions) == 2
    sd = read_state_dict(out / "clipcap.pt")
    assert "gpt.transformer.h.0.attn.bias" in sd  # legacy buffers: loads in the reference too
    assert "clip_project.model.0.weight" in sd and "clip_project.model.2.weight" in sd
    spec = json.loads((out / "imgcap-model.json").read_text())
    assert spec["trained"]["epoch"] == 2 and spec["trained"]["base"] == "tiny-0"
    assert json.loads((out / "training" / "history.json").read_text())[1]["epoch"] == 2


class _Killed(Exception):
    pass


def test_resume_after_a_kill_continues_from_the_saved_epoch(small_data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(small_data, out, tiny_model_dir, epochs=2, batch_size=4)

    def kill_in_epoch_2(p):
        if p.phase == "train" and p.epoch == 2:
            raise _Killed  # like SIGKILL: no chance to save anything

    with pytest.raises(_Killed):
        train(cfg, CPU, kill_in_epoch_2)
    state = torch.load(out / "training" / "state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0
    seen = []
    result = train(cfg, CPU, lambda p: seen.append((p.phase, p.epoch)))
    assert result.resumed_from == (1, 0)
    assert [h.epoch for h in result.history] == [1, 2]
    assert {e for phase, e in seen if phase == "train"} == {2}  # epoch 1 was not run again
    # Same scheduler position as an uninterrupted run: 2 epochs x 8 steps.
    assert torch.load(out / "training" / "state.pt", weights_only=True)["scheduler"][
        "last_epoch"
    ] == (2 * 8)
    # Nothing left to do: a third run returns at once with the same history.
    again = train(cfg, CPU, lambda p: seen.append(p.phase))
    assert again.resumed_from == (2, 0) and len(again.history) == 2


def test_resume_refuses_other_settings(small_data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(small_data, out, tiny_model_dir), CPU)
    with pytest.raises(UsageError, match="lr"):
        train(_cfg(small_data, out, tiny_model_dir, lr=1e-3), CPU)


def test_prefix_only_leaves_gpt2_unchanged(small_data, tiny_model_dir, tmp_path):
    from indexer.models.checkpoint import read_state_dict

    out = tmp_path / "run"
    train(_cfg(small_data, out, tiny_model_dir, prefix_only=True, lr=1e-2), CPU)
    before = read_state_dict(tiny_model_dir / "clipcap.pt")
    after = read_state_dict(out / "clipcap.pt")
    gpt = [k for k in before if k.startswith("gpt.")]
    assert gpt and all(torch.equal(before[k], after[k]) for k in gpt)
    assert not torch.equal(
        before["clip_project.model.0.weight"], after["clip_project.model.0.weight"]
    )
    # Only the mapper is kept in the resume state: GPT-2 comes from the base again.
    state = torch.load(out / "training" / "state.pt", weights_only=True)
    assert all(k.startswith("clip_project.") for k in state["model"])


def test_transformer_mapper_on_the_tiny_gpt2(small_data, tiny_model_dir, tmp_path):
    from indexer.models.loading import load_model

    out = tmp_path / "run"
    train(_cfg(small_data, out, tiny_model_dir, mapping="transformer"), CPU)
    model = load_model(str(out), CPU)
    cfg = model.captioner.model.cfg
    assert cfg.mapping == "transformer" and cfg.normalize_prefix
    assert cfg.prefix_length == cfg.clip_length == 4  # the tiny base's prefix length


def test_bad_rows_and_unreadable_images_are_reported_and_skipped(tiny_model_dir, tmp_path):
    from indexer.train.synthetic import write_dataset

    data = write_dataset(tmp_path / "d", 4, seed=0, fmt="csv", size=64)
    broken = tmp_path / "d" / "images" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with data.open("a") as f:
        f.write("images/missing.png,a red circle.,train\n")
        f.write("images/broken.png,a blue square.,train\n")
    result = train(_cfg(data, tmp_path / "run", tiny_model_dir), CPU)
    text = "\n".join(result.problems)
    assert "missing.png" in text and "image file not found" in text
    assert "broken.png" in text
    assert result.n_images == 4 and result.n_captions == 16


def test_cli_train_json(small_data, tiny_model_dir, tmp_path):
    import cli

    out = tmp_path / "run"
    r = CliRunner().invoke(
        cli.app,
        ["train", str(small_data), "--out", str(out), "--from", str(tiny_model_dir),
         "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["best_epoch"] == 1 and summary["captions"] == 32
    assert (out / "imgcap-model.json").is_file()


def test_cli_train_usage_errors(small_data, tmp_path):
    import cli

    r = CliRunner().invoke(
        cli.app, ["train", str(small_data), "--out", str(tmp_path / "o"), "--mapping", "rnn"]
    )
    assert r.exit_code == 2 and "unknown mapping" in r.output
    r = CliRunner().invoke(cli.app, ["train", str(tmp_path / "nope.csv"), "--out", "o"])
    assert r.exit_code == 2 and "no such file" in r.output

"""A full disk during `imgcap index`: a clear exit-4 error, the batches committed before it kept,
the run's summary still printed, and the next run (space freed) carries on from there.

The disk fills for real as far as SQLite can tell: from the second batch on, the database may
not grow (`PRAGMA max_page_count` pinned to its current size), which makes SQLite fail the
write with SQLITE_FULL, "database or disk is full", exactly as a full disk does.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import StoreError
from indexer.run.pipeline import index_paths
from indexer.store.database import Store

N_PHOTOS = 24
BATCH = 12  # rows of ~330 bytes: a second batch cannot fit in the pages the first left


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(N_PHOTOS):
        Image.new("RGB", (40 + i, 30), (10 * i, 255 - 10 * i, 90)).save(root / f"p{i}.png")
    return root


@pytest.fixture
def disk_fills_after_one_batch(monkeypatch):
    real = Store.write_batch
    calls = []

    def write_batch(self, model, results, files, **frames):
        calls.append(len(results))
        if len(calls) == 2:
            self.db.execute("PRAGMA max_page_count = 1")  # clamped to the current size
        return real(self, model, results, files, **frames)

    monkeypatch.setattr(Store, "write_batch", write_batch)
    return calls


def _settings(tmp_path, model_dir) -> Settings:
    return Settings(
        db_path=tmp_path / "db" / "imgcap.db",
        model=str(model_dir),
        device="cpu",
        workers=1,
        batch_size=BATCH,
        max_tokens=4,
    )


def test_full_disk_keeps_committed_batches_and_the_summary(
    photos, tmp_path, tiny_model_dir, disk_fills_after_one_batch
):
    settings = _settings(tmp_path, tiny_model_dir)
    with pytest.raises(StoreError, match="disk holding .* is full") as e:
        index_paths([photos], settings)
    assert str(settings.db_path) in str(e.value) and "run the same command again" in str(e.value)
    summary = e.value.summary
    assert (summary.new, summary.captioned) == (BATCH, BATCH)
    with Store.open(settings.db_path, create=False) as store:
        assert store.counts()["results"] == BATCH  # the first batch is kept
        assert list(store.db["runs"].rows)[-1]["status"] == "failed"


def test_after_freeing_space_the_next_run_resumes(photos, tmp_path, tiny_model_dir, monkeypatch):
    settings = _settings(tmp_path, tiny_model_dir)
    real = Store.write_batch
    with monkeypatch.context() as m:
        calls = []

        def write_batch(self, model, results, files, **frames):
            calls.append(1)
            if len(calls) == 2:
                self.db.execute("PRAGMA max_page_count = 1")
            return real(self, model, results, files, **frames)

        m.setattr(Store, "write_batch", write_batch)
        with pytest.raises(StoreError):
            index_paths([photos], settings)
    again = index_paths([photos], settings)
    assert (again.new, again.captioned) == (N_PHOTOS - BATCH, N_PHOTOS - BATCH)


def test_cli_prints_the_summary_then_the_error(
    photos, tmp_path, tiny_model_dir, disk_fills_after_one_batch, monkeypatch
):
    monkeypatch.setenv("IMGCAP_MODELS_DIR", str(tmp_path / "models"))
    args = ["index", str(photos), "--db", str(tmp_path / "db" / "imgcap.db")]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--workers", "1"]
    args += ["--batch-size", str(BATCH)]
    r = CliRunner().invoke(cli.app, [*args, "--json"])
    assert r.exit_code == 4, r.output
    assert json.loads(r.stdout)["captioned"] == BATCH  # the summary, on stdout
    assert "is full" in r.stderr and "Traceback" not in r.output
    disk_fills_after_one_batch.clear()
    args[3] = str(tmp_path / "db2" / "imgcap.db")
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 4 and f"tiny-0: {BATCH} new" in r.stdout, r.output
    assert "is full" in r.stderr


def test_no_space_for_the_lock_file(tmp_path, monkeypatch):
    import errno

    import filelock

    from indexer.store.lock import writer_lock

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filelock.FileLock, "acquire", full)
    with pytest.raises(StoreError, match="is full .No space left on device"):
        with writer_lock(tmp_path / "imgcap.db"):
            pass

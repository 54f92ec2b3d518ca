"""`--engine ray` on a local Ray instance gives the same database as the local pipeline."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import replace

import numpy as np
import pytest
from photo_factory import make_photo_folder
from test_run_pipeline import RESULT_COLUMNS, assert_faiss_agrees, rows, settings_for

from indexer.config import Settings
from indexer.run.pipeline import index_paths
from indexer.run.ray_engine import RayEngine, read_shard, staging_dir
from indexer.store.database import Store

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    """One small local instance for the module (starting Ray costs seconds)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local")
    yield
    if started:
        ray.shutdown()


def _ray(settings: Settings) -> Settings:
    return replace(settings, engine="ray")


def _failures(db, root) -> dict[str, str]:
    with Store.open(db, create=False) as s:
        return {os.path.relpath(f["path"], root): f["reason"] for f in s.failures()}


def _same(db_a, db_b, root) -> None:
    files_a, results_a = rows(db_a, root)
    files_b, results_b = rows(db_b, root)
    assert files_a == files_b
    assert _failures(db_a, root) == _failures(db_b, root)
    assert len(results_a) == len(results_b)
    vec = {RESULT_COLUMNS.index("image_vec"), RESULT_COLUMNS.index("caption_vec")}
    for ra, rb in zip(results_a, results_b, strict=True):
        for i, (a, b) in enumerate(zip(ra, rb, strict=True)):
            if i in vec:
                va, vb = np.frombuffer(a, "<f4"), np.frombuffer(b, "<f4")
                np.testing.assert_allclose(va, vb, rtol=1e-6, atol=1e-6)
            else:
                assert a == b, RESULT_COLUMNS[i]


def test_ray_runner_matches_local_pipeline(tmp_path, tiny_model, ray_instance):
    root = tmp_path / "photos"
    make_photo_folder(root)
    local = settings_for(tmp_path / "local", "unused")
    viaray = _ray(settings_for(tmp_path / "ray", "unused"))

    s_local = index_paths([root], local, model=tiny_model)
    s_ray = index_paths([root], viaray, model=tiny_model)
    _same(local.db_path, viaray.db_path, root)
    keys = ("new", "captioned", "reused", "failed", "failed_reasons", "moved", "removed")
    assert {k: getattr(s_ray, k) for k in keys} == {k: getattr(s_local, k) for k in keys}
    assert sorted(map(str, s_ray.failures)) == sorted(map(str, s_local.failures))
    assert s_ray.captioned > 0 and s_ray.failed > 0 and s_ray.reused > 0  # duplicates reused
    assert not (viaray.db_path.parent / "imgcap.db.ray-staging").exists()

    # A move, a new duplicate and an edit, on both: the same moves, reuse and re-captioning.
    (root / "moved").mkdir()
    shutil.move(root / "misc/photo.bmp", root / "moved/photo.bmp")
    shutil.copy2(root / "png/alpha.png", root / "png/alpha copy.png")
    shutil.copy2(root / "dupes/two.jpg", root / "edited.jpg")
    with open(root / "edited.jpg", "ab") as f:
        f.write(b"\0")  # new content (trailing bytes): captioned again
    s_local = index_paths([root], local, model=tiny_model)
    s_ray = index_paths([root], viaray, model=tiny_model)
    keys += ("unchanged",)
    assert {k: getattr(s_ray, k) for k in keys} == {k: getattr(s_local, k) for k in keys}
    assert (s_ray.moved, s_ray.captioned) == (1, 1) and s_ray.reused >= 2
    _same(local.db_path, viaray.db_path, root)
    assert_faiss_agrees(viaray.db_path)


def test_ray_engine_without_ray_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    from typer.testing import CliRunner

    import cli

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    (tmp_path / "p").mkdir()
    db = tmp_path / "x.db"
    res = CliRunner().invoke(
        cli.app, ["index", str(tmp_path / "p"), "--engine", "ray", "--db", str(db)]
    )
    assert res.exit_code == 2, res.output
    assert "pip install 'imgcap[ray]'" in res.output
    assert not db.exists()


class CtrlCBeforeSecondCommit(RayEngine):
    """The Ray engine, stopped by Ctrl-C after it staged its second block and before that
    block's transaction. Blocks of 4 files, so that a run has several to commit."""

    def __init__(self):
        super().__init__(files_per_task=4)
        self.commits: list[int] = []

    def process(self, run, todo):
        commit = run.commit

        def commit_then_die(entries, out):
            if len(self.commits) == 1:  # the second block is staged, never committed
                raise KeyboardInterrupt
            self.commits.append(len(entries))
            commit(entries, out)

        run.commit = commit_then_die  # this run's commits, as the engine calls them
        super().process(run, todo)


def test_staged_shards_of_an_interrupted_driver_are_merged_not_redone(
    tmp_path, tiny_model, ray_instance
):
    """Ctrl-C reaches the driver after it staged a block and before its transaction: the run
    stops cleanly (interrupted, committed blocks kept); the next run merges the staged shard
    (no model work for it) and ends with the database the local pipeline makes."""
    root = tmp_path / "photos"
    make_photo_folder(root)
    local = settings_for(tmp_path / "local", "unused")
    viaray = _ray(settings_for(tmp_path / "ray", "unused"))
    index_paths([root], local, model=tiny_model)

    engine = CtrlCBeforeSecondCommit()
    stopped = index_paths([root], viaray, model=tiny_model, engine=engine)
    commits = engine.commits
    assert stopped.interrupted and stopped.captioned == commits[0] > 0
    staging = staging_dir(viaray.db_path)
    staged = list(staging.glob("*.parquet"))
    assert len(staged) == 1
    _, cols = read_shard(staged[0])
    in_shard = sum(
        1 for ok, need in zip(cols["ok"], cols["need_model"], strict=True) if ok and need
    )
    assert in_shard > 0

    s = index_paths([root], viaray, model=tiny_model)
    with Store.open(local.db_path, create=False) as st:
        total = st.counts()["results"]
    assert s.captioned == total - commits[0] - in_shard
    assert not staging.exists()
    _same(local.db_path, viaray.db_path, root)
    assert_faiss_agrees(viaray.db_path)


KILLED_RUN = """
import sys
from indexer.config import Settings
from indexer.run.pipeline import index_paths
from indexer.run.ray_engine import RayEngine
settings = Settings(db_path=sys.argv[1], model=sys.argv[2], device="cpu", workers=2,
                    batch_size=2, max_tokens=6, engine="ray", ray_address=sys.argv[4])
# Many small blocks: the kill lands between commits.
index_paths([sys.argv[3]], settings, engine=RayEngine(files_per_task=2))
"""


def _results(db) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_driver_killed_mid_run_resumes_without_duplicates_or_losses(
    tmp_path, tiny_model, tiny_model_dir, ray_instance
):
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "photos"
    make_photo_folder(root)
    local = settings_for(tmp_path / "local", "unused")
    index_paths([root], local, model=tiny_model)
    with Store.open(local.db_path, create=False) as st:
        total = st.counts()["results"]
    db = tmp_path / "ray" / "imgcap.db"
    db.parent.mkdir()
    # The driver joins the test's Ray instance, as a driver joins a cluster: killing it leaves
    # the cluster up (and saves starting a second instance).
    address = ray.get_runtime_context().gcs_address
    args = [sys.executable, "-c", KILLED_RUN, str(db), str(tiny_model_dir), str(root), address]
    proc = subprocess.Popen(args, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _results(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # SIGKILL: the driver alone, as the OOM killer would
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 0 < _results(db) < total

    viaray = _ray(settings_for(tmp_path / "ray", "unused", db_path=db))
    s = index_paths([root], viaray, model=tiny_model)
    assert not s.interrupted and s.captioned < total  # committed (and staged) work kept
    _same(local.db_path, db, root)
    assert_faiss_agrees(db)


def test_ray_engine_reads_the_text_in_photos_as_the_local_one(
    tmp_path, tiny_model, text_reader, text_library, ray_instance
):
    """`--engine ray --ocr`: the same reading step after the model work, the same rows."""
    from text_photos import CountingReader, make_text_photos

    root = tmp_path / "photos"
    words = make_text_photos(root)
    viaray = replace(_ray(settings_for(tmp_path, "unused")), ocr=True)
    reader = CountingReader(text_reader)
    s = index_paths([root], viaray, model=tiny_model, text_reader=reader)
    assert reader.calls == s.text_read == len(words)

    def texts(db) -> dict[str, str]:
        conn = sqlite3.connect(db)
        rows = conn.execute(
            "SELECT f.path, t.text FROM files f JOIN text_reads t USING (content_hash)"
        ).fetchall()
        conn.close()
        return {os.path.basename(p): text for p, text in rows}

    assert texts(viaray.db_path) == texts(text_library["db"])  # the local engine's reads
    again = CountingReader(text_reader)
    index_paths([root], viaray, model=tiny_model, text_reader=again)
    assert again.calls == 0  # a rerun reads nothing twice

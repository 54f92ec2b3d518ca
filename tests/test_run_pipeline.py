"""Index runs end to end with the tiny model: what gets indexed, reused, redone, removed, failed."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from photo_factory import BIG_JPEG, PHONE_EXIF, make_photo_folder
from PIL import Image
from run_settings import run_settings
from slow_index import kill_at_batch

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.media.preprocess import clip_geometry, pixels_to_tensor
from indexer.run.local_engine import LocalEngine
from indexer.run.pipeline import index_paths
from indexer.run.workers import decode_for_model
from indexer.store.database import Store
from indexer.store.lock import writer_lock
from indexer.store.records import blob_to_vec

UNIQUE_GOOD = 16  # photo_factory's good files minus the two byte-identical copies in dupes/


class CountingCaptioner:
    """Wraps the real captioner: counts images captioned and keeps the features it was given."""

    def __init__(self, inner, fail_on_call: int | None = None, oom_above: int | None = None):
        self.inner = inner
        self.images = 0
        self.calls = 0
        self.features: list[np.ndarray] = []
        self.fail_on_call = fail_on_call
        self.oom_above = oom_above
        self.sizes: list[int] = []

    def caption(self, features, beams: int = 1, max_tokens: int = 67) -> list[str]:
        import torch

        self.calls += 1
        if self.fail_on_call == self.calls:
            raise KeyboardInterrupt
        if self.oom_above is not None and len(features) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.sizes.append(len(features))
        self.images += len(features)
        self.features.append(features.numpy().copy())
        return self.inner.caption(features, beams=beams, max_tokens=max_tokens)


def counting(model, **kw):
    return dataclasses.replace(model, captioner=CountingCaptioner(model.captioner, **kw))


@pytest.fixture
def photos(tmp_path):
    expected = make_photo_folder(tmp_path / "photos")
    return tmp_path / "photos", expected


def settings_for(tmp_path, model_dir, **kw) -> Settings:
    # Two decode workers and 6 tokens: the kill test's slow_index.py run compares against this.
    return run_settings(tmp_path, model_dir, **{"workers": 2, "max_tokens": 6, **kw})


FILE_COLUMNS = ("size", "mtime_ns", "content_hash", "width", "height", "taken_at")
FILE_COLUMNS += ("camera_make", "camera_model", "gps_lat", "gps_lon")
RESULT_COLUMNS = ("content_hash", "model", "caption", "dim", "image_vec", "caption_vec")


def rows(db_path: Path, root: Path) -> tuple[list, list]:
    """DB content without timestamps and ids, paths relative to root: for equality checks."""
    with Store.open(db_path, create=False) as s:
        files = sorted(
            (os.path.relpath(r["path"], root), *(r[k] for k in FILE_COLUMNS))
            for r in s.db["files"].rows
        )
        results = sorted(tuple(r[k] for k in RESULT_COLUMNS) for r in s.db["results"].rows)
    return files, results


def assert_faiss_agrees(db_path: Path) -> None:
    """The FAISS cache, synced as `imgcap index` does at the end, holds exactly SQLite's results."""
    from indexer.store.connection import connect_readonly
    from search.vectors.cache import load_model, sync_indexes

    sync_indexes(db_path)
    conn = connect_readonly(db_path)
    try:
        by_model = dict(conn.execute("SELECT model, count(*) FROM results GROUP BY model"))
        for model, n in by_model.items():
            indexes = load_model(db_path, conn, model)
            ids = {int(i) for i in indexes["image"].ids}
            expected = {
                i for (i,) in conn.execute("SELECT id FROM results WHERE model = ?", [model])
            }
            assert ids == expected and indexes["caption"].ntotal == n, model
    finally:
        conn.close()


def test_photo_folder_good_indexed_bad_reported(photos, tmp_path, tiny_model):
    root, expected = photos
    settings = settings_for(tmp_path, "unused")
    model = counting(tiny_model)
    s = index_paths([root], settings, model=model)

    with Store.open(settings.db_path) as store:
        files = {os.path.relpath(r["path"], root): r for r in store.db["files"].rows}
        fails = {os.path.relpath(f["path"], root): f["reason"] for f in store.failures()}
        assert sorted(files) == expected["good"]
        assert set(fails) == set(expected["bad"])
        for rel, reason in expected["bad"].items():
            assert reason in fails[rel], rel
        for rel, size in expected["sizes"].items():
            assert (files[rel]["width"], files[rel]["height"]) == size, rel
        big = files[BIG_JPEG]
        for key, value in PHONE_EXIF.items():
            assert big[key] == pytest.approx(value), key
        assert store.counts()["results"] == UNIQUE_GOOD
        # FTS is searchable and results carry the model's name and dimension.
        dims = {r["dim"] for r in store.db["results"].rows}
        assert dims == {tiny_model.encoder.embed_dim}
        assert {r["model"] for r in store.db["results"].rows} == {tiny_model.name}
        run = list(store.db["runs"].rows)[-1]
        assert run["status"] == "completed"
    assert (s.new, s.captioned, s.reused, s.failed) == (len(expected["good"]), UNIQUE_GOOD, 2, 6)
    assert model.captioner.images == UNIQUE_GOOD  # duplicates went through the model once
    assert sum(s.failed_reasons.values()) == 6

    # Second run: nothing opened, nothing captioned.
    again = index_paths([root], settings, model=model)
    assert again.unchanged == len(expected["good"]) and again.captioned == 0
    assert again.failed == 6 and model.captioner.images == UNIQUE_GOOD


def test_one_clip_pass_feeds_caption_and_stored_vector(photos, tmp_path, tiny_model):
    root, _ = photos
    settings = settings_for(tmp_path, "unused")
    model = counting(tiny_model)
    index_paths([root], settings, model=model)
    seen = np.concatenate(model.captioner.features)  # (N, D) given to the captioner
    with Store.open(settings.db_path) as store:
        stored = np.stack([blob_to_vec(r["image_vec"]) for r in store.db["results"].rows])
    assert len(seen) == len(stored) == UNIQUE_GOOD
    # Same set of vectors (order may differ): every stored vector is one the captioner saw.
    dist = np.abs(stored[:, None, :] - seen[None, :, :]).max(-1)
    assert (dist.min(1) == 0).all()


def test_worker_geometry_matches_the_eval_transform(tiny_model):
    enc = tiny_model.encoder
    rng = np.random.default_rng(0)
    for w, h in ((97, 61), (40, 80), (enc.image_size, enc.image_size), (1001, 999)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        ours = pixels_to_tensor([clip_geometry(img, enc.image_size)], enc.mean, enc.std)[0]
        ref = enc.preprocess(img)
        assert ours.shape == ref.shape
        assert float((ours - ref).abs().max()) < 1e-5, (w, h)


def test_moves_renames_duplicates_reuse_without_model_work(photos, tmp_path, tiny_model):
    root, expected = photos
    settings = settings_for(tmp_path, "unused")
    index_paths([root], settings, model=tiny_model)
    before_files, before_results = rows(settings.db_path, root)
    with Store.open(settings.db_path) as store:
        created = {r["id"]: r["created_at"] for r in store.db["results"].rows}

    (root / "moved").mkdir()
    shutil.move(root / "misc/photo.bmp", root / "moved/photo.bmp")  # move
    os.rename(root / "web/photo.webp", root / "web/renamed.webp")  # rename
    shutil.copy2(root / "png/alpha.png", root / "png/alpha copy.png")  # duplicate
    model = counting(tiny_model)
    s = index_paths([root], settings, model=model)

    assert model.captioner.calls == 0
    assert (s.moved, s.new, s.removed, s.captioned, s.reused) == (2, 1, 0, 0, 3)
    assert_faiss_agrees(settings.db_path)
    after_files, after_results = rows(settings.db_path, root)
    assert after_results == before_results  # nothing recomputed, nothing lost
    with Store.open(settings.db_path) as store:
        assert {r["id"]: r["created_at"] for r in store.db["results"].rows} == created
    paths = {f[0] for f in after_files}
    assert {"moved/photo.bmp", "web/renamed.webp", "png/alpha copy.png"} <= paths
    assert not {"misc/photo.bmp", "web/photo.webp"} & paths
    meta = {f[0]: f[4:6] for f in after_files}
    assert meta["moved/photo.bmp"] == expected["sizes"]["misc/photo.bmp"]


def test_deletes_edits_and_touches(photos, tmp_path, tiny_model):
    root, _ = photos
    settings = settings_for(tmp_path, "unused")
    index_paths([root], settings, model=tiny_model)

    os.remove(root / "misc/photo.bmp")  # unique content: its result is garbage
    os.remove(root / "dupes/two.jpg")  # a copy remains: its result stays
    Image.new("RGB", (50, 40), (0, 200, 0)).save(root / "png/alpha.png")  # edited
    st = os.stat(root / "camera/grey.jpg")
    os.utime(root / "camera/grey.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    model = counting(tiny_model)
    s = index_paths([root], settings, model=model)

    assert (s.removed, s.updated, s.captioned) == (2, 1, 1)
    assert model.captioner.images == 1  # only the edited file
    assert_faiss_agrees(settings.db_path)
    with Store.open(settings.db_path) as store:
        assert store.counts()["results"] == UNIQUE_GOOD - 1  # -bmp, alpha replaced
        paths = {r["path"] for r in store.db["files"].rows}
        assert str(root / "dupes/one.jpg") in paths and str(root / "dupes/two.jpg") not in paths
        grey = store.db.execute(
            "SELECT mtime_ns FROM files WHERE path = ?", [str(root / "camera/grey.jpg")]
        ).fetchone()[0]
        assert grey == st.st_mtime_ns + 10**9
        orphans = "SELECT count(*) FROM results WHERE content_hash NOT IN"
        orphans += " (SELECT content_hash FROM files)"
        assert store.db.execute(orphans).fetchone()[0] == 0


def test_empty_root_is_treated_as_unmounted_not_deleted(tmp_path, tiny_model):
    drive = tmp_path / "drive"
    (drive / "trip").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (40, 30), (40 * i, 90, 200)).save(drive / "trip" / f"p{i}.png")
    settings = settings_for(tmp_path, "unused")
    index_paths([drive], settings, model=tiny_model)
    for p in (drive / "trip").iterdir():  # the drive is "unmounted": its mount point is empty
        p.unlink()
    (drive / "trip").rmdir()

    s = index_paths([drive], settings, model=tiny_model)
    assert s.removed == 0 and "unmounted" in s.warnings[0] and str(drive) in s.warnings[0]
    with Store.open(settings.db_path) as store:
        assert store.counts()["files"] == 2

    s = index_paths([tmp_path], settings, model=tiny_model)  # the parent: a deliberate delete
    assert s.removed == 2 and not s.warnings
    assert_faiss_agrees(settings.db_path)


def test_model_switch_adds_results_side_by_side(photos, tmp_path, tiny_model, tiny_model_dir_b):
    from indexer.models.loading import load_model

    root, expected = photos
    settings = settings_for(tmp_path, "unused")
    index_paths([root], settings, model=tiny_model)
    other = counting(load_model(str(tiny_model_dir_b), Settings(device="cpu")))
    s = index_paths([root], settings, model=other)
    assert s.updated == len(expected["good"]) and s.captioned == UNIQUE_GOOD
    with Store.open(settings.db_path) as store:
        by_model = dict(
            store.db.execute("SELECT model, count(*) FROM results GROUP BY model").fetchall()
        )
        assert by_model == {tiny_model.name: UNIQUE_GOOD, other.name: UNIQUE_GOOD}
        assert set(store.vector_state()) == {tiny_model.name, other.name}
    assert_faiss_agrees(settings.db_path)
    # Back to the first model: nothing to do, nothing lost.
    again = index_paths([root], settings, model=counting(tiny_model))
    assert again.unchanged == len(expected["good"]) and again.captioned == 0


def test_failed_files_are_skipped_until_changed_or_retried(photos, tmp_path, tiny_model):
    root, _ = photos
    settings = settings_for(tmp_path, "unused")
    index_paths([root], settings, model=tiny_model)
    model = counting(tiny_model)

    Image.new("RGB", (60, 60), (10, 20, 30)).save(root / "bad/truncated.jpg", "JPEG")  # fixed
    s = index_paths([root], settings, model=model)
    assert (s.new, s.captioned, s.failed) == (1, 1, 5)
    retried = index_paths([root], settings, model=model, retry_failed=True)
    assert retried.failed == 5 and len(retried.failures) == 5  # really tried again
    with Store.open(settings.db_path) as store:
        assert str(root / "bad/truncated.jpg") not in {f["path"] for f in store.failures()}
    os.remove(root / "bad/empty.jpg")
    index_paths([root], settings, model=model)
    with Store.open(settings.db_path) as store:
        assert len(store.failures()) == 4  # a vanished bad file is forgotten too


def test_ctrl_c_keeps_committed_batches_and_resumes(photos, tmp_path, tiny_model):
    root, expected = photos
    # One pass: the captioner runs inside each batch (test_run_caption_later.py stops the
    # captioning phase of --captions after).
    settings = settings_for(tmp_path, "unused", batch_size=4, captions="now")
    interrupted = counting(tiny_model, fail_on_call=3)  # Ctrl-C while batch 3 is in the model
    s = index_paths([root], settings, model=interrupted)
    assert s.interrupted and s.captioned == 8 and s.removed == 0
    with Store.open(settings.db_path) as store:
        assert store.counts()["results"] == 8
        assert list(store.db["runs"].rows)[-1]["status"] == "interrupted"
    resumed = counting(tiny_model)
    s2 = index_paths([root], settings, model=resumed)
    assert resumed.captioner.images == UNIQUE_GOOD - 8  # committed images are not redone
    assert not s2.interrupted
    with Store.open(settings.db_path) as store:
        assert store.counts()["results"] == UNIQUE_GOOD
        assert store.counts()["files"] == len(expected["good"])


def test_out_of_memory_halves_the_batch(photos, tmp_path, tiny_model):
    root, expected = photos
    settings = settings_for(tmp_path, "unused", batch_size=8, captions="now")
    model = counting(tiny_model, oom_above=2)
    s = index_paths([root], settings, model=model)
    assert s.batch_size == 2 and set(model.captioner.sizes) == {2}
    assert s.captioned == UNIQUE_GOOD and s.failed == 6


def crash_on_bmp(path: str, size: int, **options):
    """Decode task for the crash test: the worker process dies on .bmp files."""
    if path.endswith(".bmp"):
        os._exit(1)
    return decode_for_model(path, size, **options)


def test_a_crashing_decoder_fails_only_its_file(photos, tmp_path, tiny_model):
    root, expected = photos
    settings = settings_for(tmp_path, "unused")
    engine = LocalEngine(decode_task=crash_on_bmp)
    s = index_paths([root], settings, model=tiny_model, engine=engine)
    crashed = [f for f in s.failures if "crashed" in f["reason"]]
    assert [Path(f["path"]).name for f in crashed] == ["photo.bmp"]
    assert s.new == len(expected["good"]) - 1


def test_a_pool_broken_before_anyone_waited_still_takes_work(tmp_path):
    """Photos are decoded while the model loads: a worker may die before any result is read,
    and the next submit must not raise out of the run but hand the crash to its reader."""
    from concurrent.futures.process import BrokenProcessPool

    from indexer.run.workers import DecodePool

    bad = tmp_path / "x.bmp"
    bad.write_bytes(b"BM")
    pool = DecodePool(1, crash_on_bmp)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(str(bad), 32).result(timeout=60)
        later = pool.submit(str(tmp_path / "y.png"), 32)  # the pool is broken now
        with pytest.raises(BrokenProcessPool):
            later.result(timeout=60)
        assert pool.isolated(str(bad), 32) == ("bad", "the decoder crashed on this file")
    finally:
        pool.shutdown()


def test_second_writer_is_refused(photos, tmp_path, tiny_model):
    root, _ = photos
    settings = settings_for(tmp_path, "unused")
    with writer_lock(settings.db_path):
        with pytest.raises(StoreError, match="already writing"):
            index_paths([root], settings, model=tiny_model)


def test_missing_root_is_a_usage_error(tmp_path, tiny_model):
    with pytest.raises(UsageError, match="not found"):
        index_paths([tmp_path / "nope"], settings_for(tmp_path, "unused"), model=tiny_model)


def test_dry_run_reads_nothing_and_writes_nothing(photos, tmp_path, tiny_model_dir):
    root, expected = photos
    settings = settings_for(tmp_path, tiny_model_dir)
    s = index_paths([root], settings, dry_run=True)
    assert s.dry_run and s.new == len(expected["good"]) + 5  # bad files would be tried too
    assert not settings.db_path.exists()


def test_sigkill_mid_run_then_resume_equals_a_clean_run(photos, tmp_path, tiny_model_dir):
    root, _ = photos
    args = ["index", str(root), "--model", str(tiny_model_dir), "--device", "cpu"]
    args += ["--batch-size", "2", "--workers", "1", "--captions", "now"]  # one pass
    killed_db = tmp_path / "killed.db"
    seen = kill_at_batch([*args, "--db", str(killed_db)], 4)
    assert seen == 4, "the run never got to its 4th batch"
    with Store.open(killed_db) as store:
        committed = store.counts()["results"]
        assert 0 < committed < UNIQUE_GOOD
        committed_rows = {r["content_hash"]: r["created_at"] for r in store.db["results"].rows}

    settings = Settings(
        db_path=killed_db, model=str(tiny_model_dir), device="cpu", workers=1, batch_size=2,
        max_tokens=6, captions="now",
    )  # fmt: skip
    from indexer.models.loading import load_model

    model = counting(load_model(str(tiny_model_dir), settings))
    index_paths([root], settings, model=model)
    assert model.captioner.images == UNIQUE_GOOD - committed  # committed images not redone
    with Store.open(killed_db) as store:
        kept = {r["content_hash"]: r["created_at"] for r in store.db["results"].rows}
        assert all(kept[h] == t for h, t in committed_rows.items())
        statuses = [r["status"] for r in store.db["runs"].rows]
        assert statuses == ["abandoned", "completed"]

    clean_db = tmp_path / "clean.db"
    index_paths([root], dataclasses.replace(settings, db_path=clean_db), model=model)
    killed_files, killed_results = rows(killed_db, root)
    clean_files, clean_results = rows(clean_db, root)
    assert_faiss_agrees(killed_db)
    assert killed_files == clean_files
    assert [r[:4] for r in killed_results] == [r[:4] for r in clean_results]
    for a, b in zip(killed_results, clean_results, strict=True):
        np.testing.assert_allclose(blob_to_vec(a[4]), blob_to_vec(b[4]), rtol=1e-5, atol=1e-6)

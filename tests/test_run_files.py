"""Files on disk through a whole index run: header checked before hashing, the pixel cap as a
setting (main process and decode workers), excludes, unsupported files and RAW counted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image
from run_settings import run_settings

from indexer.config import Settings
from indexer.media import walk
from indexer.media.raw import RAW_NEEDS_EXTRA
from indexer.run.pipeline import index_paths
from indexer.run.workers import DecodePool, decode_for_model


def _photo(path: Path, size=(64, 48), colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_a_huge_non_image_fails_from_its_header_and_is_never_hashed(
    tmp_path, tiny_model, monkeypatch
):
    root = tmp_path / "photos"
    good = _photo(root / "good.jpg")
    huge = root / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(20 * 1024**3)  # sparse: 80 s to hash on the reporter's disk
    hashed: list[str] = []
    real = walk.content_hash
    monkeypatch.setattr(walk, "content_hash", lambda p: hashed.append(p) or real(p))

    t = time.monotonic()
    s = index_paths([root], run_settings(tmp_path, "unused"), model=tiny_model)

    assert time.monotonic() - t < 60
    assert hashed == [str(good)]
    assert s.new == 1
    assert s.failures == [{"path": str(huge), "reason": "not an image (unrecognised format)"}]


def test_max_megapixels_is_applied_before_hashing_and_in_the_workers(
    tmp_path, tiny_model, monkeypatch
):
    root = tmp_path / "photos"
    _photo(root / "small.png", (30, 20))  # 600 pixels
    big = _photo(root / "big.png", (50, 40))  # 2,000 pixels
    hashed: list[str] = []
    real = walk.content_hash
    monkeypatch.setattr(walk, "content_hash", lambda p: hashed.append(p) or real(p))
    settings = run_settings(tmp_path, "unused", max_megapixels=0.001)  # 1,000 pixels
    s = index_paths([root], settings, model=tiny_model)
    assert s.new == 1
    assert s.failures == [{"path": str(big), "reason": "image too large (2000 pixels > cap 1000)"}]
    assert str(big) not in hashed

    # Files whose hash is known skip the header check; the workers apply the same cap.
    pool = DecodePool(1, decode_for_model, max_pixels=1000)
    try:
        assert pool.submit(str(big), 32).result() == (
            "bad",
            "image too large (2000 pixels > cap 1000)",
        )
        assert pool.submit(str(root / "small.png"), 32).result()[0] == "ok"
    finally:
        pool.shutdown()


def test_excludes_unsupported_files_and_raw_without_the_extra(tmp_path, tiny_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rawpy", None)  # the `raw` extra is not installed
    monkeypatch.setitem(sys.modules, "av", None)  # nor `video`: videos are counted as skipped
    root = tmp_path / "photos"
    _photo(root / "trip" / "beach.jpg")
    _photo(root / "@eaDir" / "beach.jpg" / "SYNOPHOTO_THUMB_XL.jpg")  # NAS thumbnail: default
    _photo(root / "trip" / "drafts" / "draft.jpg")  # user's --exclude
    (root / "trip" / "notes.txt").write_text("hello")
    (root / "trip" / "clip.MOV").write_bytes(b"\x00" * 64)
    (root / "trip" / "clip2.mov").write_bytes(b"\x00" * 64)
    cr3 = root / "trip" / "IMG_0001.CR3"
    cr3.write_bytes(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 200)

    settings = run_settings(tmp_path, "unused", exclude=("drafts",))
    s = index_paths([root], settings, model=tiny_model)

    assert s.new == 1
    assert s.unsupported == {".mov": 2, ".txt": 1}
    assert s.failed_reasons == {RAW_NEEDS_EXTRA: 1}
    assert s.failures == [{"path": str(cr3), "reason": RAW_NEEDS_EXTRA}]

    dry = index_paths([root], settings, dry_run=True)
    assert dry.unsupported == {".mov": 2, ".txt": 1}


@pytest.mark.parametrize("workers", [1, 3])
def test_the_run_uses_the_memory_rule_for_its_workers(tmp_path, tiny_model, monkeypatch, workers):
    seen: list[int] = []
    real = Settings.max_pixels_for
    monkeypatch.setattr(Settings, "max_pixels_for", lambda self, w: seen.append(w) or real(self, w))
    root = tmp_path / "photos"
    _photo(root / "a.jpg")
    index_paths([root], run_settings(tmp_path, "unused", workers=workers), model=tiny_model)
    assert seen == [workers]


def test_raw_failures_are_retried_once_the_extra_is_installed(tmp_path, monkeypatch):
    import sys
    import types

    from indexer.run.scan import plan

    root = tmp_path / "photos"
    cr3 = root / "IMG_0001.CR3"
    nef = root / "DSC_0002.NEF"
    other = _photo(root / "broken.png")
    for f in (cr3, nef):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\x00" * 64)
    failed_before = {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns, reason)
        for p, reason in ((cr3, RAW_NEEDS_EXTRA), (nef, RAW_NEEDS_EXTRA), (other, "corrupt"))
    }
    settings = Settings(db_path=tmp_path / "x.db")

    def todo_and_standing():
        p = plan([str(root)], settings, {}, failed_before, set(), retry_failed=False)
        return sorted(Path(i.path).name for i in p.todo), dict(p.standing)

    monkeypatch.setitem(sys.modules, "rawpy", None)  # not installed: all three stand
    assert todo_and_standing() == ([], {RAW_NEEDS_EXTRA: 2, "corrupt": 1})
    monkeypatch.setitem(sys.modules, "rawpy", types.ModuleType("rawpy"))  # installed now
    assert todo_and_standing() == (["DSC_0002.NEF", "IMG_0001.CR3"], {"corrupt": 1})

"""Thumbnails: made once through the indexer's decode path, cached by content hash beside the
database, cache headers, a placeholder for what cannot be decoded, a cap on decodes at once."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from search_fixtures import Photo
from serve_fixtures import client, ids_by_name, make_gallery

from indexer.store.database import Store
from indexer.store.records import FileRecord
from indexer.store.thumbnail_files import cache_dir
from search.web.thumbnails import ThumbnailCache


def _jpeg(path, w, h, orientation=None):
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(path, "JPEG", quality=80, exif=exif.tobytes())


def test_first_request_makes_it_then_the_cache_serves_it(tmp_path):
    _, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    lib = c.app.state.library
    hit = c.get("/api/search", params={"q": "dog"}).json()["hits"][0]
    r = c.get(f"/thumb/{hit['id']}", params={"v": hit["content_hash"][:12]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "immutable" in r.headers["cache-control"]  # the versioned URL never changes content
    assert Image.open(io.BytesIO(r.content)).format == "JPEG"
    cached = list(cache_dir(db).rglob("*.jpg"))
    assert [p.name for p in cached] == [f"{hit['content_hash']}-320.jpg"]
    assert lib.thumbnails.generated == 1
    again = c.get(f"/thumb/{hit['id']}")
    assert again.content == r.content and lib.thumbnails.generated == 1
    assert "immutable" not in again.headers["cache-control"]  # unversioned: short
    assert len(ids) == 5


def test_exif_orientation_and_size(tmp_path):
    root, db = make_gallery(tmp_path)
    big = root / "trips/dog_beach.png"
    c = client(db)
    # Replace the photo's file by a rotated JPEG at the same path; the cache key is the stored
    # hash, and the file no longer matches the index, so it is shown but not cached.
    _jpeg(big, 1600, 1200, orientation=6)
    ids = ids_by_name(c)
    r = c.get(f"/thumb/{ids['dog_beach.png']}")
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (240, 320)  # stored landscape, shown portrait, long side 320
    assert list(cache_dir(db).rglob("*.jpg")) == []
    preview = Image.open(io.BytesIO(c.get(f"/preview/{ids['dog_beach.png']}").content))
    assert preview.size == (1200, 1600)  # never upscaled: the preview box is 1600


def test_a_moved_photo_keeps_its_thumbnail(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    lib = c.app.state.library
    assert c.get(f"/thumb/{ids['red_car.png']}").status_code == 200
    assert lib.thumbnails.generated == 1
    old = root / "home/red_car.png"
    new = root / "moved/car.png"
    new.parent.mkdir()
    os.rename(old, new)
    with Store.open(db) as s:  # what `imgcap index` does for a move: same hash, new path
        h = c.get(f"/api/photo/{ids['red_car.png']}").json()["content_hash"]
        st = new.stat()
        s.write_batch("fake-clip", [], [FileRecord(str(new), st.st_size, st.st_mtime_ns, h)])
        s.remove_paths([str(old)])
    moved_id = ids_by_name(c)["car.png"]
    assert moved_id != ids["red_car.png"]
    assert c.get(f"/thumb/{moved_id}").status_code == 200
    assert lib.thumbnails.generated == 1  # served from the cache: no decode


def test_undecodable_file_gets_a_placeholder(tmp_path):
    root, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)
    (root / "home/kitchen.png").write_bytes(b"not a png at all")
    (root / "home/cat_sofa.png").unlink()
    for name in ("kitchen.png", "cat_sofa.png"):
        for kind in ("thumb", "preview"):
            r = c.get(f"/{kind}/{ids[name]}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
            assert r.headers["x-imgcap-placeholder"] == "1"
            assert r.headers["cache-control"] == "no-store"


def test_concurrent_generation_is_capped(tmp_path):
    root, db = make_gallery(tmp_path, [Photo(f"p{i}.png", f"photo {i}") for i in range(12)])
    cache = ThumbnailCache(db, max_decodes=2)
    active, peak = [0], [0]
    lock = threading.Lock()
    real = cache._render

    def slow_render(source, size, at_ms=None):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return real(source, size, at_ms)
        finally:
            with lock:
                active[0] -= 1

    cache._render = slow_render
    files = sorted(root.glob("*.png"))
    threads = [
        threading.Thread(target=cache.get, args=(f"{i:032x}", str(p))) for i, p in enumerate(files)
    ]
    threads += [threading.Thread(target=cache.get, args=(f"{0:032x}", str(files[0])))] * 1
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    assert cache.generated == 12  # the same key asked twice was decoded once


def test_a_cache_that_cannot_be_written_still_serves(tmp_path, monkeypatch):
    import search.web.thumbnails as thumbnails

    _, db = make_gallery(tmp_path)
    c = client(db)
    ids = ids_by_name(c)

    def full_disk(target, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(thumbnails, "_write_atomic", full_disk)
    r = c.get(f"/thumb/{ids['dog_park.png']}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size[0] > 0
    assert not cache_dir(db).exists()


def test_an_index_run_prunes_thumbnails_of_content_no_longer_indexed(
    tmp_path, tiny_model, tiny_model_dir
):
    from indexer.config import Settings
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    root.mkdir()
    _jpeg(root / "kept.jpg", 64, 48)
    Image.new("RGB", (40, 30), (0, 90, 200)).save(root / "gone.png")
    db = tmp_path / "lib.db"
    settings = Settings(db_path=db, model=str(tiny_model_dir), device="cpu", workers=1)
    index_paths([root], settings, model=tiny_model)
    with Store.open(db, create=False) as store:
        hashes = {Path(p).name: s.content_hash for p, s in store.file_states().items()}
    cache = ThumbnailCache(db)
    for name, h in hashes.items():
        for size in (320, 1600):
            assert cache.get(h, str(root / name), size).path is not None
    killed = cache.dir / hashes["kept.jpg"][:2] / ".x.abc.tmp"  # a write that was killed
    killed.write_bytes(b"")
    os.utime(killed, (1, 1))
    (cache.dir / "notes.txt").write_text("not a thumbnail: left alone")
    for h in hashes.values():  # named as a video's still at 2 s is (the same rule applies)
        cache.file_for(h, 1600, at_ms=2000).write_bytes(b"jpeg")
    (root / "gone.png").unlink()
    index_paths([root], settings, model=tiny_model)
    left = sorted(p.name for p in cache.dir.rglob("*") if p.is_file())
    kept = hashes["kept.jpg"]
    assert left == sorted(
        [f"{kept}-320.jpg", f"{kept}-1600.jpg", f"{kept}@2000-1600.jpg", "notes.txt"]
    )

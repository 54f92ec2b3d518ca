"""A caption edited in the gallery outlives real `imgcap index` runs (tiny model): unchanged,
touched (rehashed, same bytes) and moved photos keep it; the server's own text tower (NumPy,
the index's CLIP) makes its caption vector."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from serve_fixtures import BASE
from starlette.testclient import TestClient

from indexer.config import Settings
from search.web.server import create_app

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
NEW = "grandma's purple zebra cake"


def test_edit_outlives_index_runs(tmp_path, tiny_model, tiny_model_dir):
    from indexer.run.pipeline import index_paths

    root = tmp_path / "photos"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.md", "a*", "r*"))
    db = tmp_path / "lib.db"
    settings = Settings(db_path=db, model=str(tiny_model_dir), device="cpu", workers=1)
    index_paths([root], settings, model=tiny_model)
    c = TestClient(create_app(Settings(db_path=db)), base_url=BASE)

    def first(q: str, mode: str = "hybrid") -> dict:
        return c.get("/api/search", params={"q": q, "mode": mode}).json()["hits"][0]

    cat = next(h for h in c.get("/api/search", params={"q": "x", "n": 9}).json()["hits"]
               if h["path"].endswith("chelsea.jpg"))  # fmt: skip
    generated = cat["caption"]
    r = c.post(f"/api/photo/{cat['id']}/caption", json={"caption": NEW}, headers={"Origin": BASE})
    assert r.status_code == 200, r.text
    assert first("purple zebra", "keyword")["id"] == cat["id"]
    assert first(NEW, "caption")["signals"]["caption"]["score"] > 0.999  # same CLIP text tower

    again = index_paths([root], settings, model=tiny_model)  # nothing changed
    assert again.captioned == 0
    os.utime(root / "chelsea.jpg", ns=(1, 2_000_000_000_000_000_000))  # touched: rehashed
    (root / "kept").mkdir()
    os.rename(root / "chelsea.jpg", root / "kept" / "cat.jpg")  # and moved
    index_paths([root], settings, model=tiny_model)
    hit = first("purple zebra", "keyword")
    assert hit["path"] == str(root / "kept" / "cat.jpg")
    assert (hit["caption"], hit["caption_source"]) == (NEW, "user")
    photo = c.get(f"/api/photo/{hit['id']}").json()
    assert photo["generated_caption"] == generated
    assert first(NEW, "caption")["path"] == hit["path"]

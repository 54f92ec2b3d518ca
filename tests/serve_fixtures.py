"""A small gallery for the `imgcap serve` tests: a fake-CLIP database (tests/search_fixtures)
and a Starlette TestClient whose Host is the bound loopback address."""

from __future__ import annotations

from pathlib import Path

from search_fixtures import FakeEncoder, Photo, make_db
from starlette.testclient import TestClient

from indexer.config import Settings
from search.web.server import create_app

BASE = "http://127.0.0.1:8765"

PHOTOS = [
    Photo("trips/dog_beach.png", "a dog running on the beach", taken_at="2019-06-01T10:00:00",
          camera_make="Canon", camera_model="EOS 80D"),
    Photo("trips/dog_park.png", "a dog sitting on a park bench", taken_at="2019-07-02T11:00:00"),
    Photo("home/cat_sofa.png", "a cat sleeping on a sofa", taken_at="2020-01-05T09:00:00",
          camera_make="Apple", camera_model="iPhone 11"),
    Photo("home/red_car.png", "a red car parked in the street", taken_at="2021-03-03T08:00:00"),
    Photo("home/kitchen.png", "a bowl of fruit on a kitchen table"),
]  # fmt: skip


def make_gallery(tmp_path: Path, photos: list[Photo] | None = None) -> tuple[Path, Path]:
    """(photo root, database) with PHOTOS (or `photos`) indexed by the fake CLIP."""
    root = tmp_path / "photos"
    db = make_db(root, photos or PHOTOS, tmp_path / "lib.db")
    return root, db


def client(db: Path, host: str = "127.0.0.1", encoder: FakeEncoder | None = None) -> TestClient:
    enc = encoder or FakeEncoder()
    app = create_app(Settings(db_path=db), host=host, encoder_loader=lambda m, s: enc)
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


def ids_by_name(c: TestClient, query: str = "photo") -> dict[str, int]:
    """file name -> file id, through the API (a keyword-free image search returns them all)."""
    hits = c.get("/api/search", params={"q": query, "mode": "image", "n": 100}).json()["hits"]
    return {Path(h["path"]).name: h["id"] for h in hits}

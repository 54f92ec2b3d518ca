"""`/original/<id>` as a browser gets it: formats browsers show are sent as they are; HEIC, TIFF
and the like come back as an upright JPEG (through the indexer's decode), at most MAX_SIDE px."""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from PIL import Image
from search_fixtures import MODEL, embed_text
from serve_fixtures import client, ids_by_name, make_gallery

from indexer.media.decode import decode_image
from indexer.media.walk import content_hash
from indexer.store.database import Store
from indexer.store.records import FileRecord, ResultRecord
from search.web.originals import MAX_SIDE


def _add(db, path, caption):
    """Index the file at `path` (an image the test wrote) with a fake-CLIP result."""
    st = path.stat()
    h = content_hash(path)
    vec = 2.0 * embed_text(caption)
    f = FileRecord(str(path), st.st_size, st.st_mtime_ns, h, 1, 1)
    with Store.open(db) as s:
        s.write_batch(MODEL, [ResultRecord(h, caption, vec, vec)], [f])


def _two_tone(size):
    """Left half blue, right half red: which side ends up on top shows the rotation."""
    w, h = size
    im = Image.new("RGB", size, (220, 20, 20))
    im.paste((20, 20, 220), (0, 0, w // 2, h))
    return im


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("originals")
    root, db = make_gallery(tmp)
    phone = root / "phone"
    phone.mkdir()
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6  # shot holding the phone upright: turn 90° clockwise to show
    _two_tone((120, 90)).save(phone / "IMG_0001.heic", "HEIF", quality=80, exif=exif.tobytes())
    _two_tone((MAX_SIDE + 904, 60)).save(phone / "wide.tif", "TIFF")
    (phone / "broken.heic").write_bytes((phone / "IMG_0001.heic").read_bytes()[:300])
    for name in ("IMG_0001.heic", "wide.tif", "broken.heic"):
        _add(db, phone / name, f"a phone photo {name}")
    c = client(db)
    return root, db, c, ids_by_name(c)


def test_heic_opens_as_an_upright_jpeg(gallery):
    root, _, c, ids = gallery
    r = c.get(f"/original/{ids['IMG_0001.heic']}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-security-policy"] == "sandbox"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG"
    # Full size, turned as the indexer turns it (the naive path: its own decode).
    assert im.size == (90, 120) == decode_image(root / "phone/IMG_0001.heic", min_side=0).image.size
    px = np.asarray(im.convert("RGB"), dtype=int)
    assert px[:50].mean(axis=(0, 1)) @ [-1, 0, 1] > 100  # blue on top
    assert px[-50:].mean(axis=(0, 1)) @ [1, 0, -1] > 100  # red below


def test_large_tiff_is_capped(gallery):
    _, _, c, ids = gallery
    r = c.get(f"/original/{ids['wide.tif']}")
    assert r.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (MAX_SIDE, round(60 * MAX_SIDE / (MAX_SIDE + 904)))


def test_browser_formats_are_sent_as_they_are(gallery):
    root, _, c, ids = gallery
    r = c.get(f"/original/{ids['red_car.png']}")
    assert r.headers["content-type"] == "image/png"
    assert r.content == (root / "home/red_car.png").read_bytes()


def test_an_undecodable_file_says_why_and_a_row_outside_the_roots_is_refused(gallery, tmp_path):
    root, db, c, ids = gallery
    r = c.get(f"/original/{ids['broken.heic']}")
    assert r.status_code == 422
    assert "cannot be shown in a browser" in r.text and "Traceback" not in r.text
    assert str(root) not in r.text
    # A row naming a HEIC outside every root: refused before any decode.
    outside = tmp_path / "secret.heic"
    outside.write_bytes((root / "phone/IMG_0001.heic").read_bytes())
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE files SET path = ? WHERE id = ?", [str(outside), ids["broken.heic"]])
    conn.close()
    r = c.get(f"/original/{ids['broken.heic']}")
    assert r.status_code == 404 and b"JFIF" not in r.content

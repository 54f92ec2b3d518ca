"""A person's caption belongs to the photo: tags edited in another program (same pixels, new
bytes) keep every result and the caption with no model work; new pixels keep the caption, the
new generated one beneath it, and mark the photo for review until a person sets it again."""

from __future__ import annotations

import json
import struct

from PIL import Image
from run_settings import run_settings
from serve_fixtures import client
from typer.testing import CliRunner

import cli
from indexer.run.pipeline import index_paths
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.photo_tags import tags_for_paths
from indexer.store.schema import SCHEMA_VERSION
from search.cli.options import Services

XMP = (
    b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
    b" xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'"
    b" xmlns:dc='http://purl.org/dc/elements/1.1/'><rdf:Description><dc:subject><rdf:Bag>"
    b"<rdf:li>Grandma</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)


def _picture(shade: int) -> Image.Image:
    im = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    im.putpixel((3, 3), (shade, 0, 0))
    return im


def _tag_jpeg(path) -> None:
    """What `exiftool -XMP:Subject=Grandma` does: an APP1 XMP segment spliced in after SOI;
    the image data stays byte for byte."""
    data = path.read_bytes()
    segment = b"\xff\xe1" + struct.pack(">H", len(XMP) + 2) + XMP
    path.write_bytes(data[:2] + segment + data[2:])


def _tag_png(path) -> None:
    import zlib

    data = path.read_bytes()
    text = b"Comment\x00tagged elsewhere"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + text))
    end = data.rindex(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


def _result(db, path) -> dict:
    conn = connect_readonly(db)
    try:
        row = conn.execute(
            "SELECT r.caption, r.generated_caption, r.caption_edited_at, r.caption_review"
            " FROM files f JOIN results r ON r.content_hash = f.content_hash WHERE f.path = ?",
            [str(path)],
        ).fetchone()
    finally:
        conn.close()
    return dict(zip(("caption", "generated", "edited_at", "review"), row, strict=True))


def test_a_persons_caption_survives_metadata_edits_and_new_pixels(
    tmp_path, tiny_model, tiny_model_dir
):
    root = tmp_path / "photos"
    root.mkdir()
    jpg, png = root / "a.jpg", root / "b.png"
    _picture(10).save(jpg, quality=90)
    _picture(20).save(png)
    settings = run_settings(tmp_path, tiny_model_dir)
    db = settings.db_path
    first = index_paths([root], settings, model=tiny_model)
    assert first.captioned == 2

    def invoke(*args):
        services = Services(encoder_loader=lambda source, s: tiny_model.encoder)
        res = CliRunner().invoke(cli.app, [*map(str, args), "--db", str(db)], obj=services)
        assert res.exit_code == 0, res.output
        return res.stdout

    invoke("caption-set", jpg, "Grandma's zebra cake")
    invoke("caption-set", png, "the garden gate")
    generated = _result(db, jpg)["generated"]
    invoke("search", "zebra")  # the vector cache is built before the edits

    _tag_jpeg(jpg)
    _tag_png(png)
    again = index_paths([root], settings, model=tiny_model)
    assert (again.captioned, again.reused, again.changed) == (0, 2, 2)
    for path, caption in ((jpg, "Grandma's zebra cake"), (png, "the garden gate")):
        row = _result(db, path)
        assert (row["caption"], row["review"]) == (caption, None)
        assert row["edited_at"] is not None and row["generated"] is not None
    assert _result(db, jpg)["generated"] == generated
    conn = connect_readonly(db)
    try:
        assert tags_for_paths(conn, [str(jpg)]) == {str(jpg): ["Grandma"]}
    finally:
        conn.close()
    hits = [json.loads(line) for line in invoke("search", "zebra", "--json").splitlines()]
    assert hits[0]["path"] == str(jpg)  # found through the copied result's vectors
    with Store.open(db) as store:
        assert store.counts()["results"] >= 2
    # The old bytes' results went: the caption lives on in the photo, not also as a husk.
    assert json.loads(invoke("status", "--json"))["kept_captions"] == 0

    _picture(250).save(jpg, quality=90)  # new pixels: an exposure fix
    third = index_paths([root], settings, model=tiny_model)
    assert (third.captioned, third.changed) == (1, 1)
    row = _result(db, jpg)
    assert row["caption"] == "Grandma's zebra cake"
    assert row["generated"] is not None and row["review"] is not None
    status = json.loads(invoke("status", "--json"))
    assert status["captions_to_review"] == 1
    assert status["captions_to_review_paths"] == [str(jpg)]
    assert "changed since a person captioned" in invoke("status")
    gallery = client(db)
    with Store.open(db) as store:
        (file_id,) = store.db.execute("SELECT id FROM files WHERE path = ?", [str(jpg)]).fetchone()
    assert gallery.get(f"/api/photo/{file_id}").json()["caption_review"] == row["review"]
    assert "The photo changed since you wrote this caption" in gallery.get(f"/photo/{file_id}").text

    invoke("caption-set", jpg, "Grandma's zebra cake, brighter")
    assert _result(db, jpg)["review"] is None
    assert json.loads(invoke("status", "--json"))["captions_to_review"] == 0


def test_a_schema_8_database_migrates(tmp_path):
    from sqlite_utils import Database

    from indexer.store import schema

    path = tmp_path / "v8.db"
    db = Database(path)  # what imgcap 0.x with schema version 8 wrote
    schema.migrations.apply(db)
    for migration in schema.MIGRATIONS[1:8]:
        with db.atomic():
            migration(db)
    db.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    db.execute("PRAGMA user_version = 8")
    db.execute(
        "INSERT INTO files (path, size, mtime_ns, content_hash) VALUES ('/p/a.jpg', 1, 1, 'h')"
    )
    db.conn.commit()
    db.close()
    with Store.open(path) as store:
        row = store.db.execute("SELECT pixel_hash FROM files").fetchone()
        assert row == (None,)
        cols = {c.name for c in store.db["results"].columns}
        assert "caption_review" in cols
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

"""Write-back reads a person's description from every place a photo's words live before it
writes any: a sidecar run keeps photos whose embedded XMP/IPTC/EXIF description a person wrote,
`--embed` keeps photos whose sidecar (either naming) a person edited."""

from __future__ import annotations

from pathlib import Path

import pytest
from writeback_fixtures import (
    exif_read,
    exif_write,
    make_photo,
    needs_exiftool,
    sidecar_with_description,
)

from indexer.metadata import xmp
from indexer.metadata.writeback import Item, write_back

CAPTION = xmp.Caption("A red square on grey.", "tiny-0", "generated", "2026-12-03T04:00:00Z")
NEWER = xmp.Caption("A red square.", "tiny-1", "generated", "2026-12-04T04:00:00Z")
OMA = "Oma im Garten, 1987 · ünïcode 東京"


def _one(photo: Path, **kw):
    summary = write_back([Item(str(photo), kw.pop("caption", CAPTION))], **kw)
    (outcome,) = summary.outcomes
    return outcome


@needs_exiftool
@pytest.mark.parametrize(
    "name, fields, where",
    [
        ("a.jpg", ["XMP-dc:Description", "IPTC:Caption-Abstract"], "embedded"),
        ("a.jpg", ["IPTC:Caption-Abstract"], "embedded IPTC"),
        ("a.png", ["EXIF:ImageDescription"], "embedded EXIF"),
        ("a.webp", ["XMP-dc:Description"], "embedded XMP"),
        ("a.tif", ["IPTC:Caption-Abstract"], "embedded IPTC"),
    ],
)
def test_a_sidecar_run_keeps_a_persons_embedded_description(tmp_path, name, fields, where):
    photo = make_photo(tmp_path / name)
    exif_write(photo, "-IPTC:CodedCharacterSet=UTF8", *(f"-{f}={OMA}" for f in fields))
    outcome = _one(photo)
    assert outcome.status == "kept", outcome
    assert f"{name} ({where}" in outcome.reason and "Oma im Garten" in outcome.reason
    assert "--force" in outcome.reason
    assert not (tmp_path / f"{name}.xmp").exists()
    assert _one(photo, dry_run=True).status == "kept"
    assert _one(photo, force=True).status == "written"


@needs_exiftool
def test_imgcaps_own_embedded_caption_and_a_camera_placeholder_do_not_block_sidecars(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    assert _one(photo, mode="embed").status == "written"  # XMP, IPTC, EXIF: imgcap's own
    assert _one(photo, caption=NEWER).status == "written"  # a sidecar with a newer caption
    camera = make_photo(tmp_path / "b.jpg")
    exif_write(camera, "-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA")
    assert _one(camera).status == "written"


@needs_exiftool
@pytest.mark.parametrize("sidecar_name", ["a.jpg.xmp", "a.XMP"])
def test_embed_keeps_a_photo_whose_sidecar_a_person_edited(tmp_path, sidecar_name):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar = tmp_path / sidecar_name
    sidecar.write_text(sidecar_with_description(OMA))
    before = photo.read_bytes()
    outcome = _one(photo, mode="embed")
    assert outcome.status == "kept", outcome
    assert f"its sidecar {sidecar_name} has a description" in outcome.reason
    assert photo.read_bytes() == before
    assert _one(photo, mode="embed", force=True).status == "written"
    assert exif_read(photo, "-XMP-dc:Description")["XMP-dc:Description"] == CAPTION.text


@needs_exiftool
def test_embed_over_a_sidecar_imgcap_wrote_goes_ahead(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    assert _one(photo).status == "written"  # a.jpg.xmp, imgcap's
    assert _one(photo, mode="embed", caption=NEWER).status == "written"
    # A person edits imgcap's sidecar afterwards: from then on --embed leaves the photo alone.
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_text(sidecar.read_text().replace(">A red square on grey.<", ">Tom.<", 1))
    assert _one(photo, mode="embed", caption=CAPTION).status == "kept"


def test_a_sidecar_run_reads_the_other_sidecar_name_too(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    (tmp_path / "a.xmp").write_text(sidecar_with_description(OMA))  # Lightroom's, a person's
    outcome = _one(photo)  # darktable naming: a.jpg.xmp
    assert outcome.status == "kept" and "its sidecar a.xmp has" in outcome.reason
    assert not (tmp_path / "a.jpg.xmp").exists()


def test_an_unreadable_other_place_fails_the_photo_and_a_link_outside_is_not_read(tmp_path):
    photo = make_photo(tmp_path / "lib" / "a.jpg")
    (tmp_path / "lib" / "a.xmp").write_text('<!DOCTYPE x [<!ENTITY a "b">]><x/>')
    outcome = _one(photo)
    assert outcome.status == "failed" and "a.xmp: XMP declares a DOCTYPE" in outcome.reason
    assert not (tmp_path / "lib" / "a.jpg.xmp").exists()
    outside = tmp_path / "elsewhere.xmp"
    outside.write_text(sidecar_with_description(OMA))
    (tmp_path / "lib" / "a.xmp").unlink()
    (tmp_path / "lib" / "a.xmp").symlink_to(outside)  # not this library's: never read
    assert _one(photo).status == "written"

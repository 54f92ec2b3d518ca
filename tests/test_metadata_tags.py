"""The user's own tags and descriptions, read from sidecars and embedded XMP / IPTC / EXIF."""

from __future__ import annotations

import os

from writeback_fixtures import (
    DARKTABLE_SIDECAR,
    exif_write,
    make_photo,
    needs_exiftool,
    sidecar_with_description,
)

from indexer.metadata import xmp
from indexer.metadata.tags import read_photo_tags, sidecar_paths, sidecar_signature
from indexer.metadata.writeback import Item, write_back

DIGIKAM = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="Beach day">
   <digiKam:TagsList><rdf:Seq><rdf:li>Places/Italy/Rimini</rdf:li></rdf:Seq></digiKam:TagsList>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>"""


def test_tags_from_a_darktable_sidecar(tmp_path):
    photo = make_photo(tmp_path / "IMG_1.jpg")
    (tmp_path / "IMG_1.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    got = read_photo_tags(photo)
    assert got.tags == ["germany", "2019 trip", "People", "Grandma"]
    assert got.description is None and got.problems == []


def test_lightroom_named_sidecar_digikam_tags_and_short_form_description(tmp_path):
    photo = make_photo(tmp_path / "beach.jpg")
    (tmp_path / "beach.xmp").write_text(DIGIKAM)
    got = read_photo_tags(photo)
    assert got.tags == ["Places", "Italy", "Rimini"]
    assert got.description == "Beach day"


def test_both_sidecars_merge_and_duplicates_ignore_case(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    (tmp_path / "a.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    (tmp_path / "a.xmp").write_text(DARKTABLE_SIDECAR.replace("germany", "GERMANY\tberlin"))
    assert [p.name for p in sidecar_paths(photo)] == ["a.jpg.xmp", "a.xmp"]
    assert read_photo_tags(photo).tags == [
        "germany",
        "2019 trip",
        "People",
        "Grandma",
        "GERMANY berlin",
    ]


def test_embedded_xmp_and_windows_keywords_without_exiftool(tmp_path):
    from PIL import Image

    packet = DARKTABLE_SIDECAR.encode()  # a person's keywords, embedded by Pillow
    im = Image.new("RGB", (16, 16), "blue")
    exif = im.getexif()
    exif[0x9C9E] = "xp one;xp two\x00".encode("utf-16-le")
    photo = tmp_path / "a.jpg"
    im.save(photo, xmp=packet, exif=exif)
    got = read_photo_tags(photo)
    assert got.tags == ["germany", "2019 trip", "People", "Grandma", "xp one", "xp two"]


@needs_exiftool
def test_iptc_keywords_in_utf8_and_xmp_subject_written_by_exiftool(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    exif_write(
        photo,
        "-IPTC:CodedCharacterSet=UTF8",
        "-IPTC:Keywords=Zürich",
        "-IPTC:Keywords=lake",
        "-XMP-dc:Subject=grandma",
        "-XMP-dc:Description=Grandma by the lake",
    )
    got = read_photo_tags(photo)
    assert set(got.tags) == {"Zürich", "lake", "grandma"}
    assert got.description == "Grandma by the lake"
    tif = make_photo(tmp_path / "b.tif")
    exif_write(tif, "-IPTC:Keywords=tiff tag")
    assert read_photo_tags(tif).tags == ["tiff tag"]


def test_imgcaps_own_caption_is_not_the_users_description(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    write_back([Item(str(photo), xmp.Caption("A generated caption.", "m", "generated", "d"))])
    assert read_photo_tags(photo).description is None


def test_hostile_sidecars_are_named_and_the_rest_still_read(tmp_path):
    from PIL import Image

    im = Image.new("RGB", (16, 16))
    exif = im.getexif()
    exif[0x9C9E] = "kept;\x1b[31mred\x00".encode("utf-16-le")
    photo = tmp_path / "a.jpg"
    im.save(photo, exif=exif)
    (tmp_path / "a.jpg.xmp").write_text(
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>'
    )
    (tmp_path / "a.xmp").write_bytes(b"<x:xmpmeta>\xc3\x28</x:xmpmeta>")
    got = read_photo_tags(photo)
    assert got.tags == ["kept", "[31mred"]  # control characters are stripped
    assert len(got.problems) == 2
    assert "a.jpg.xmp: XMP declares a DOCTYPE or XML entities" in got.problems[0]
    assert "a.xmp: XMP is not valid UTF-8" in got.problems[1]


def test_a_one_megabyte_description_and_endless_tags_are_capped(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    many = "".join(f"<rdf:li>t{i}</rdf:li>" for i in range(xmp.MAX_TAGS + 5))
    extra = f"<dc:subject><rdf:Bag>{many}<rdf:li>{'y' * 5000}</rdf:li></rdf:Bag></dc:subject>"
    (tmp_path / "a.jpg.xmp").write_text(sidecar_with_description("x" * 1_000_000, extra))
    got = read_photo_tags(photo)
    assert got.description is None
    assert len(got.tags) == xmp.MAX_TAGS
    assert any("1,000,000 characters" in p and "ignored" in p for p in got.problems)
    assert any(f"more than {xmp.MAX_TAGS} tags" in p for p in got.problems)


def test_an_unreadable_photo_still_gives_its_sidecar_tags(tmp_path):
    photo = tmp_path / "broken.jpg"
    photo.write_bytes(b"not an image")
    (tmp_path / "broken.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    got = read_photo_tags(photo)
    assert "germany" in got.tags
    assert any("embedded metadata unreadable" in p for p in got.problems)


def test_sidecar_signature_changes_with_the_sidecar(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    assert sidecar_signature(photo) == ""
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR)
    first = sidecar_signature(photo)
    assert first.startswith("a.jpg.xmp:")
    os.utime(sidecar, ns=(1, 10**18))
    assert sidecar_signature(photo) != first
    sidecar.unlink()
    assert sidecar_signature(photo) == ""


def test_raw_files_are_read_from_their_sidecar_only(tmp_path):
    raw = tmp_path / "IMG_1.CR2"
    raw.write_bytes(b"II*\x00 not something Pillow opens")
    (tmp_path / "IMG_1.xmp").write_text(DARKTABLE_SIDECAR)
    got = read_photo_tags(raw)
    assert got.tags == ["germany", "2019 trip", "People", "Grandma"]
    assert got.problems == []  # no noise about the RAW file itself

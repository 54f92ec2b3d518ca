"""Write-back into the photo (`--embed`): XMP, IPTC and EXIF descriptions where the format holds
them, pixels bit-identical, other metadata kept, atomic; exiftool reads it back."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from writeback_fixtures import FORMATS, exif_read, exif_write, make_photo, needs_exiftool, pixels

from indexer.errors import ToolMissingError
from indexer.media.walk import content_hash
from indexer.metadata import writeback, xmp
from indexer.metadata.writeback import Item, write_back

CAPTION = xmp.Caption("A red square, ünïcode 東京.", "tiny-0", "generated", "2026-12-03T04:00:00Z")

pytestmark = needs_exiftool


@pytest.mark.parametrize("ext", FORMATS)
def test_embedded_fields_read_back_and_pixels_identical(tmp_path, ext):
    photo = make_photo(tmp_path / f"photo.{ext}")
    exif_write(photo, "-EXIF:Make=Canon", "-EXIF:Model=EOS R5", "-XMP-xmp:Rating=5")
    before_pixels = pixels(photo)
    summary = write_back([Item(str(photo), CAPTION)], mode="embed")
    assert summary.count("written") == 1, summary.outcomes
    got = exif_read(photo, "-XMP:all", "-IPTC:all", "-EXIF:all")
    assert got["XMP-dc:Description"] == CAPTION.text
    assert got["XMP-imgcap:Model"] == "tiny-0"
    assert got["XMP-imgcap:Source"] == "generated"
    assert got["IFD0:ImageDescription"] == CAPTION.text
    if ext in ("jpg", "tif"):
        assert got["IPTC:Caption-Abstract"] == CAPTION.text
    # other metadata left alone
    assert got["IFD0:Make"] == "Canon" and got["IFD0:Model"] == "EOS R5"
    assert got["XMP-xmp:Rating"] == 5
    assert pixels(photo) == before_pixels
    # the outcome is the photo as it is now (what the index records to skip re-captioning)
    out = summary.outcomes[0]
    st = photo.stat()
    assert (out.size, out.mtime_ns, out.content_hash) == (
        st.st_size,
        st.st_mtime_ns,
        content_hash(photo),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo.name]  # no temporaries
    # again: nothing to do, the file is not rewritten
    assert write_back([Item(str(photo), CAPTION)], mode="embed").count("unchanged") == 1
    assert photo.stat().st_mtime_ns == st.st_mtime_ns


def test_a_persons_iptc_caption_is_kept_without_force(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    exif_write(photo, "-IPTC:Caption-Abstract=Grandma's 80th birthday")
    before = photo.read_bytes()
    summary = write_back([Item(str(photo), CAPTION)], mode="embed")
    assert summary.count("kept") == 1
    assert "Grandma's 80th birthday" in summary.outcomes[0].reason
    assert photo.read_bytes() == before
    assert write_back([Item(str(photo), CAPTION)], mode="embed", force=True).count("written")
    assert exif_read(photo, "-IPTC:Caption-Abstract")["IPTC:Caption-Abstract"] == CAPTION.text


def test_a_camera_placeholder_description_is_not_a_persons(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    exif_write(photo, "-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA")
    assert write_back([Item(str(photo), CAPTION)], mode="embed").count("written") == 1


def test_unknown_formats_and_read_only_files_fail_alone(tmp_path):
    bmp = make_photo(tmp_path / "a.bmp")
    ro = make_photo(tmp_path / "ro.jpg")
    os.chmod(ro, 0o444)
    raw = tmp_path / "b.cr2"
    raw.write_bytes(b"II*\x00")
    ok = make_photo(tmp_path / "ok.png")
    summary = write_back([Item(str(p), CAPTION) for p in (bmp, ro, raw, ok)], mode="embed")
    assert [o.status for o in summary.outcomes] == ["failed", "failed", "failed", "written"]
    reasons = [o.reason for o in summary.outcomes]
    assert reasons[0] == "BMP can't hold a description; use sidecars"
    assert reasons[1] == "ro.jpg is read-only"
    assert reasons[2] == "CR2 can't hold a description; use sidecars"


def test_pixels_that_change_keep_the_original(tmp_path, monkeypatch):
    photo = make_photo(tmp_path / "a.jpg")
    before = photo.read_bytes()
    digests = iter(["one", "two"])
    monkeypatch.setattr(writeback, "_pixels", lambda path: next(digests))
    summary = write_back([Item(str(photo), CAPTION)], mode="embed")
    assert summary.count("failed") == 1
    assert "decodes differently; the original is kept" in summary.outcomes[0].reason
    assert photo.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg"]


def test_hostile_embedded_xmp_is_refused(tmp_path):
    from PIL import Image

    photo = tmp_path / "a.jpg"
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    )
    Image.new("RGB", (32, 32), "red").save(photo, xmp=evil)
    before = photo.read_bytes()
    ok = make_photo(tmp_path / "ok.jpg")
    summary = write_back([Item(str(p), CAPTION) for p in (photo, ok)], mode="embed", force=True)
    assert [o.status for o in summary.outcomes] == ["failed", "written"]
    assert "DOCTYPE" in summary.outcomes[0].reason
    assert photo.read_bytes() == before


def test_missing_exiftool_is_one_clear_error_before_anything(tmp_path, monkeypatch):
    photo = make_photo(tmp_path / "a.jpg")
    before = photo.read_bytes()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match="libimage-exiftool-perl"):
        write_back([Item(str(photo), CAPTION)], mode="embed")
    assert photo.read_bytes() == before
    # sidecars need no exiftool
    assert write_back([Item(str(photo), CAPTION)]).count("written") == 1


def test_a_symlinked_photo_is_written_through_and_hard_links_are_refused(tmp_path):
    real = make_photo(tmp_path / "store" / "real.jpg")
    link = tmp_path / "link.jpg"
    link.symlink_to(real)
    assert write_back([Item(str(link), CAPTION)], mode="embed").count("written") == 1
    assert link.is_symlink()
    assert exif_read(real, "-XMP-dc:Description")["XMP-dc:Description"] == CAPTION.text

    a = make_photo(tmp_path / "a.jpg")
    os.link(a, tmp_path / "b.jpg")
    before = a.read_bytes()
    summary = write_back([Item(str(a), CAPTION)], mode="embed")
    assert summary.outcomes[0].reason == "it has 2 hard links; use sidecars"
    assert a.read_bytes() == before


def test_control_characters_never_reach_the_file(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    caption = xmp.Caption("A cat\x1b]0;owned\x07 on a mat\x0b.", "m", "user", "d")
    assert write_back([Item(str(photo), caption)], mode="embed").count("written") == 1
    got = exif_read(photo, "-XMP-dc:Description", "-IPTC:Caption-Abstract", "-EXIF:all")
    clean = "A cat]0;owned on a mat."
    assert got["XMP-dc:Description"] == clean
    assert got["IPTC:Caption-Abstract"] == clean
    assert got["IFD0:ImageDescription"] == clean
    assert write_back([Item(str(photo), caption)], mode="embed").count("unchanged") == 1


def test_one_exiftool_serves_the_run_and_survives_a_bad_file(tmp_path, monkeypatch):
    from indexer.metadata import exiftool

    started = []
    real_start = exiftool.Session._start
    monkeypatch.setattr(
        exiftool.Session, "_start", lambda self: started.append(1) or real_start(self)
    )
    good = [make_photo(tmp_path / f"{i}.jpg", colour=(i * 30, 9, 9)) for i in range(3)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    lines = xmp.Caption("A caption\nover two lines.", "m", "generated", "d")
    items = [Item(str(good[0]), CAPTION), Item(str(bad), CAPTION), Item(str(good[1]), CAPTION)]
    items.append(Item(str(good[2]), lines))  # a line break: exiftool run on its own for it
    summary = write_back(items, mode="embed")
    assert [o.status for o in summary.outcomes] == ["written", "failed", "written", "written"]
    assert summary.outcomes[1].reason.startswith("exiftool: ")
    assert started == [1]
    got = exif_read(good[2], "-XMP-dc:Description")["XMP-dc:Description"]
    assert got == "A caption\nover two lines."


def test_extended_xmp_and_other_languages_survive(tmp_path):
    """A JPEG's XMP over 64 KB lives in Extended XMP segments that a plain `-XMP` read never
    shows; a person's German description is another language of the same property."""
    photo = make_photo(tmp_path / "big.jpg")
    rights = tmp_path / "rights.txt"
    rights.write_text("r" * 100_000)
    exif_write(photo, f"-XMP-dc:Rights<={rights}", "-XMP-dc:Description-de=Oma im Garten")
    assert write_back([Item(str(photo), CAPTION)], mode="embed", force=True).count("written")
    got = exif_read(photo, "-XMP:all")
    assert got["XMP-dc:Rights"] == "r" * 100_000
    assert got["XMP-dc:Description-de"] == "Oma im Garten"
    assert got["XMP-dc:Description"] == CAPTION.text
    # imgcap's own fields are stored exactly as given (the date is not reformatted)
    packet = subprocess.run(
        ["exiftool", "-b", "-XMP", str(photo)], capture_output=True, check=True
    ).stdout
    assert f"<imgcap:date>{CAPTION.date}</imgcap:date>".encode() in packet

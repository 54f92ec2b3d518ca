"""Write-back to XMP sidecars: merged, never clobbered; a person's description kept; hostile
sidecars refused; read back by exiftool, an independent reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from writeback_fixtures import (
    DARKTABLE_SIDECAR,
    exif_read,
    make_photo,
    needs_exiftool,
    sidecar_with_description,
)

from indexer.metadata import xmp
from indexer.metadata.writeback import Item, sidecar_for, write_back

CAPTION = xmp.Caption(
    "A cat sitting on a wooden floor.", "tiny-0", "generated", "2026-12-03T04:00:00+00:00"
)


def _item(path: Path, caption: xmp.Caption = CAPTION) -> Item:
    return Item(str(path), caption)


def test_new_sidecar_is_named_for_darktable_and_digikam_by_default(tmp_path):
    photo = make_photo(tmp_path / "cat.jpg")
    summary = write_back([_item(photo)])
    assert summary.count("written") == 1
    assert (tmp_path / "cat.jpg.xmp").is_file()
    assert not (tmp_path / "cat.xmp").exists()
    fields = xmp.read_fields(xmp.parse((tmp_path / "cat.jpg.xmp").read_bytes(), "x"))
    assert fields.description == CAPTION.text
    assert fields.imgcap == {
        "caption": CAPTION.text,
        "model": "tiny-0",
        "source": "generated",
        "date": CAPTION.date,
    }


def test_lightroom_naming_and_a_shared_stem_is_refused(tmp_path):
    photo = make_photo(tmp_path / "cat.jpg")
    assert sidecar_for(photo, "lightroom") == tmp_path / "cat.xmp"
    assert write_back([_item(photo)], naming="lightroom").count("written") == 1
    assert (tmp_path / "cat.xmp").is_file()

    a, b = make_photo(tmp_path / "two" / "IMG_1.jpg"), make_photo(tmp_path / "two" / "IMG_1.png")
    summary = write_back([_item(a), _item(b)], naming="lightroom")
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert "IMG_1.xmp would also be the sidecar of IMG_1.png" in summary.outcomes[0].reason
    assert not (tmp_path / "two" / "IMG_1.xmp").exists()


@needs_exiftool
def test_exiftool_reads_what_imgcap_wrote(tmp_path):
    photo = make_photo(tmp_path / "café ü.jpg")
    caption = xmp.Caption('Ein Café in Zürich — 東京 <&> "quotes".', "m", "user", "2026-01-02")
    write_back([_item(photo, caption)])
    got = exif_read(tmp_path / "café ü.jpg.xmp", "-XMP:all")
    assert got["XMP-dc:Description"] == caption.text
    assert got["XMP-imgcap:Model"] == "m"
    assert got["XMP-imgcap:Source"] == "user"
    assert got["XMP-imgcap:Caption"] == caption.text


@needs_exiftool
def test_foreign_fields_survive_the_merge(tmp_path):
    """A darktable history, Lightroom keywords, a rating: exiftool sees every one unchanged."""
    photo = make_photo(tmp_path / "IMG_0001.jpg")
    sidecar = tmp_path / "IMG_0001.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR)
    before = exif_read(sidecar, "-XMP:all")
    assert write_back([_item(photo)]).count("written") == 1
    after = exif_read(sidecar, "-XMP:all")
    new = {k: v for k, v in after.items() if k not in before}
    assert new.pop("XMP-dc:Description") == CAPTION.text
    assert set(new) == {f"XMP-imgcap:{k}" for k in ("Caption", "Model", "Source", "Date")}
    for key, value in before.items():
        if key.startswith(("XMP-", "XMP:")):
            assert after[key] == value, key
    assert [h["Operation"] for h in after["XMP-darktable:History"]] == ["exposure", "colorin"]
    assert after["XMP-lr:HierarchicalSubject"] == ["People|Grandma"]
    assert after["XMP-xmp:Rating"] == 4
    # the namespace prefixes stay the ones darktable wrote
    text = sidecar.read_text()
    assert "darktable:history" in text and "ns0:" not in text


def test_a_persons_description_is_kept_without_force(tmp_path):
    photo = make_photo(tmp_path / "grandma.jpg")
    sidecar = tmp_path / "grandma.jpg.xmp"
    sidecar.write_text(sidecar_with_description("Grandma in her garden, 1987"))
    before = sidecar.read_bytes()
    summary = write_back([_item(photo)])
    assert summary.count("kept") == 1
    assert "Grandma in her garden" in summary.outcomes[0].reason
    assert "--force" in summary.outcomes[0].reason
    assert sidecar.read_bytes() == before

    assert write_back([_item(photo)], force=True).count("written") == 1
    fields = xmp.read_fields(xmp.parse(sidecar.read_bytes(), "x"))
    assert fields.description == CAPTION.text
    assert "Oma im Garten" in sidecar.read_text()  # other languages are the person's too


def test_rewriting_our_own_caption_is_allowed_but_an_edit_of_it_is_kept(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar = tmp_path / "a.jpg.xmp"
    write_back([_item(photo)])
    mtime = sidecar.stat().st_mtime_ns
    # The same caption again: nothing to write, the sidecar is not touched.
    assert write_back([_item(photo)]).count("unchanged") == 1
    assert sidecar.stat().st_mtime_ns == mtime
    # A new caption replaces ours.
    newer = xmp.Caption("A cat on a mat.", "tiny-1", "generated", "2026-12-04")
    assert write_back([_item(photo, newer)]).count("written") == 1
    # A person edits it in their photo tool: from then on it is theirs.
    sidecar.write_text(sidecar.read_text().replace(">A cat on a mat.<", ">Our cat Tom.<", 1))
    summary = write_back([_item(photo, CAPTION)])
    assert summary.count("kept") == 1, summary.outcomes


def test_dry_run_writes_nothing(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    summary = write_back([_item(photo)], dry_run=True)
    assert summary.count("written") == 1 and summary.to_json()["dry_run"] is True
    assert not (tmp_path / "a.jpg.xmp").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&lol2;</x:xmpmeta>',
            "DOCTYPE",
        ),
        (b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\xff\xfe broken</x:xmpmeta>', "not valid UTF-8"),
        ("<x:xmpmeta><unclosed></x:xmpmeta>", "not well-formed"),
        ("<html><body>not xmp</body></html>", "no rdf:RDF"),
    ],
)
def test_a_hostile_or_broken_sidecar_is_refused_and_left_alone(tmp_path, content, reason):
    bad = make_photo(tmp_path / "bad.jpg")
    good = make_photo(tmp_path / "good.jpg")
    sidecar = tmp_path / "bad.jpg.xmp"
    sidecar.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = sidecar.read_bytes()
    summary = write_back([_item(bad), _item(good)], force=True)
    assert [o.status for o in summary.outcomes] == ["failed", "written"]
    assert reason in summary.outcomes[0].reason
    assert "left as it is" in summary.outcomes[0].reason
    assert sidecar.read_bytes() == before


def test_an_oversized_sidecar_is_refused(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_bytes(b" " * (xmp.MAX_PACKET_BYTES + 10))
    summary = write_back([_item(photo)])
    assert summary.count("failed") == 1
    assert "over the 16 MB limit" in summary.outcomes[0].reason


def test_a_one_megabyte_description_is_a_persons_and_kept(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    (tmp_path / "a.jpg.xmp").write_text(sidecar_with_description("x" * 1_000_000))
    summary = write_back([_item(photo)])
    assert summary.count("kept") == 1
    assert len(summary.outcomes[0].reason) < 200  # the reason quotes it shortened


def test_read_only_sidecar_and_folder_are_reported_and_the_run_goes_on(tmp_path):
    ro_file = make_photo(tmp_path / "one" / "a.jpg")
    sidecar = tmp_path / "one" / "a.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR)
    os.chmod(sidecar, 0o444)
    ro_dir = make_photo(tmp_path / "two" / "b.jpg")
    os.chmod(tmp_path / "two", 0o555)
    ok = make_photo(tmp_path / "three" / "c.jpg")
    gone = tmp_path / "three" / "gone.jpg"
    try:
        summary = write_back([_item(p) for p in (ro_file, ro_dir, gone, ok)])
    finally:
        os.chmod(tmp_path / "two", 0o755)
    statuses = [o.status for o in summary.outcomes]
    assert statuses == ["failed", "failed", "failed", "written"]
    reasons = [o.reason for o in summary.outcomes]
    assert reasons[0] == "a.jpg.xmp is read-only"
    assert "is not writable" in reasons[1]
    assert "not there any more" in reasons[2]
    assert sidecar.read_text() == DARKTABLE_SIDECAR
    assert not (tmp_path / "two" / "b.jpg.xmp").exists()
    json_doc = summary.to_json()
    assert (json_doc["written"], json_doc["failed"]) == (1, 3)


def test_a_read_only_mount_is_named(tmp_path, monkeypatch):
    photo = make_photo(tmp_path / "a.jpg")
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            return os.ST_RDONLY if name == "f_flag" else getattr(self.st, name)

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)))
    summary = write_back([_item(photo)])
    assert "read-only file system" in summary.outcomes[0].reason


def test_no_temporary_files_are_left(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    (tmp_path / "a.jpg.xmp").write_text(DARKTABLE_SIDECAR)
    write_back([_item(photo)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.jpg.xmp"]


def test_a_symlinked_sidecar_is_updated_where_it_lives(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    target = tmp_path / "shared" / "a.xmp"
    target.parent.mkdir()
    target.write_text(DARKTABLE_SIDECAR)
    (tmp_path / "a.jpg.xmp").symlink_to(target)
    assert write_back([_item(photo)]).count("written") == 1
    assert (tmp_path / "a.jpg.xmp").is_symlink()
    assert xmp.read_fields(xmp.parse(target.read_bytes(), "x")).description == CAPTION.text


def test_a_sidecar_linked_outside_the_root_is_refused_and_left_alone(tmp_path):
    root = tmp_path / "library"
    photo = make_photo(root / "2024" / "a.jpg")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    planted = outside / "notes.xmp"
    planted.write_text(DARKTABLE_SIDECAR)
    before = planted.read_bytes()
    (root / "2024" / "a.jpg.xmp").symlink_to(planted)
    dangling_photo = make_photo(root / "2024" / "b.jpg")
    (root / "2024" / "b.jpg.xmp").symlink_to(outside / "created.xmp")  # dangling
    summary = write_back([Item(str(p), CAPTION, str(root)) for p in (photo, dangling_photo)])
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert all("link outside the library" in o.reason for o in summary.outcomes)
    assert planted.read_bytes() == before and not (outside / "created.xmp").exists()
    assert (root / "2024" / "a.jpg.xmp").is_symlink()
    assert (root / "2024" / "b.jpg.xmp").is_symlink()


def test_a_sidecar_linked_inside_the_root_is_written_through(tmp_path):
    root = tmp_path / "library"
    photo = make_photo(root / "2024" / "a.jpg")
    shared = root / "sidecars" / "a.xmp"  # another folder, same root
    shared.parent.mkdir()
    (root / "2024" / "a.jpg.xmp").symlink_to(Path("..") / "sidecars" / "a.xmp")  # dangling
    assert write_back([Item(str(photo), CAPTION, str(root))]).count("written") == 1
    assert (root / "2024" / "a.jpg.xmp").is_symlink()
    assert xmp.read_fields(xmp.parse(shared.read_bytes(), "x")).description == CAPTION.text
    # Without a known root the photo's own folder is the limit.
    (root / "2024" / "a.jpg.xmp").unlink()
    (root / "2024" / "a.jpg.xmp").symlink_to(shared)
    outcome = write_back([_item(photo)]).outcomes[0]
    assert outcome.status == "failed" and "link outside the library" in outcome.reason


def test_the_run_takes_the_limit_from_the_photos_index_root(tmp_path):
    from search_fixtures import Photo, make_db

    from indexer.metadata.writeback import run_write_back

    root = tmp_path / "photos"
    db = make_db(root, [Photo("trip/a.png", "a dog"), Photo("trip/b.png", "a cat")],
                 tmp_path / "p.db")  # fmt: skip
    (root / "shared").mkdir()
    (root / "trip" / "a.png.xmp").symlink_to(root / "shared" / "a.xmp")
    (root / "trip" / "b.png.xmp").symlink_to(tmp_path / "outside.xmp")
    outcomes = {Path(o.path).name: o for o in run_write_back(db, []).outcomes}
    assert outcomes["a.png"].status == "written" and (root / "shared" / "a.xmp").is_file()
    assert outcomes["b.png"].status == "failed" and not (tmp_path / "outside.xmp").exists()


def test_ctrl_c_stops_between_photos_and_reports_what_was_done(tmp_path):
    photos = [make_photo(tmp_path / f"{i}.jpg") for i in range(3)]

    def stop(outcome):
        raise KeyboardInterrupt

    summary = write_back([_item(p) for p in photos], on_outcome=stop)
    assert summary.interrupted and summary.to_json()["interrupted"] is True
    assert [o.status for o in summary.outcomes] == ["written"]
    assert (tmp_path / "0.jpg.xmp").is_file() and not (tmp_path / "1.jpg.xmp").exists()


def test_an_empty_caption_is_not_written(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    summary = write_back([_item(photo, xmp.Caption(" \x07 ", "m", "generated", "d"))])
    assert (summary.outcomes[0].status, summary.outcomes[0].reason) == (
        "failed",
        "the caption is empty",
    )
    assert not (tmp_path / "a.jpg.xmp").exists()

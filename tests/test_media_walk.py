"""indexer.media.walk: which files a run sees, what it reports, and content hashes."""

from __future__ import annotations

import builtins
import hashlib
import os
from pathlib import Path

import pytest
from photo_factory import make_photo_folder

from indexer.media.walk import FileEntry, WalkProblem, content_hash, walk


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("walk") / "photos"
    return root, make_photo_folder(root)


def split(results) -> tuple[list[FileEntry], list[WalkProblem]]:
    results = list(results)
    entries = [r for r in results if isinstance(r, FileEntry)]
    problems = [r for r in results if isinstance(r, WalkProblem)]
    assert len(entries) + len(problems) == len(results)
    return entries, problems


def rel(root: Path, path) -> str:
    return Path(path).relative_to(root).as_posix()


def test_finds_exactly_the_image_files_and_reports_the_dangling_link(photos):
    root, expected = photos
    entries, problems = split(walk([root]))

    found = [rel(root, e.path) for e in entries]
    assert len(found) == len(set(found)), "a file was yielded twice"
    dangling = {p for p, why in expected["bad"].items() if "dangling" in why}
    assert set(found) == set(expected["good"]) | (set(expected["bad"]) - dangling)
    assert {rel(root, p.path): p.reason for p in problems} == {
        p: "dangling symlink" for p in dangling
    }


def test_ignored_paths_never_appear(photos):
    root, expected = photos
    entries, problems = split(walk([root]))
    for path in [e.path for e in entries] + [p.path for p in problems]:
        r = rel(root, path)
        assert not any(r == i or r.startswith(i + "/") for i in expected["ignored"]), r


def test_entries_carry_absolute_path_size_and_mtime(photos):
    root, expected = photos
    entries, _ = split(walk([root]))
    assert entries
    for entry in entries:
        assert entry.path.is_absolute()
        st = entry.path.stat()
        assert (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns)
    by_rel = {rel(root, e.path): e for e in entries}
    assert by_rel["bad/empty.jpg"].size == 0
    assert "names/日本 写真.png" in by_rel
    assert 'names/café photo\'s "best".jpg' in by_rel


def test_order_is_deterministic_and_sorted_within_a_folder(photos):
    root, _ = photos
    first = list(walk([root]))
    assert first == list(walk([root]))
    entries, _ = split(first)
    dupes = [e.path.name for e in entries if e.path.parent == root / "dupes"]
    assert dupes == ["one.jpg", "two.jpg"]
    # Files of a folder come before its subfolders, subfolders in name order.
    paths = [rel(root, e.path) for e in entries]
    assert paths.index("dupes/two.jpg") < paths.index("dupes/sub/three.jpg")
    assert paths.index("camera/grey.jpg") < paths.index("misc/photo.bmp")


def test_hidden_files_and_folders_included_on_request(photos):
    root, _ = photos
    entries, _ = split(walk([root], include_hidden=True))
    found = {rel(root, e.path) for e in entries}
    assert {".hidden/secret.jpg", "camera/.thumb.jpg"} <= found


def test_extensions_are_case_insensitive_and_configurable(photos):
    root, _ = photos
    entries, problems = split(walk([root], extensions=("JPG",)))
    found = {rel(root, e.path) for e in entries}
    assert "UPPER/PHOTO.JPG" in found and "camera/grey.jpg" in found
    assert all(p.lower().endswith(".jpg") for p in found)
    assert [rel(root, p.path) for p in problems] == ["bad/dangling.jpg"]

    entries, problems = split(walk([root], extensions=(".heic",)))
    assert [rel(root, e.path) for e in entries] == ["phone/IMG_0002.heic"]
    assert problems == []  # the dangling .jpg link is not an image type here


def test_root_that_is_a_file_missing_root_and_overlapping_roots(photos, tmp_path):
    root, expected = photos
    text = root / "notes.txt"
    entries, _ = split(walk([text]))
    assert [e.path for e in entries] == [text]  # named explicitly: taken whatever its type

    _, problems = split(walk([tmp_path / "nope"]))
    assert [(p.path, p.reason) for p in problems] == [(str(tmp_path / "nope"), "not found")]

    entries, _ = split(walk([root / "camera", root, str(root) + "/"]))
    found = [rel(root, e.path) for e in entries]
    assert len(found) == len(set(found))
    assert found[:3] == ["camera/IMG_0001.jpg", "camera/cmyk.jpg", "camera/grey.jpg"]


def test_symlinked_folder_outside_is_followed_once_and_loops_are_not(tmp_path):
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "a.jpg").write_bytes(b"x")
    (outside / "inner" / "b.png").write_bytes(b"y")
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.jpg").write_bytes(b"z")
    os.symlink(outside, root / "link1")
    os.symlink(outside, root / "link2")  # second route to the same folder
    os.symlink(root, root / "loop_to_root")
    os.symlink("..", outside / "inner" / "up")  # loop inside the linked folder
    os.symlink("self.jpg", root / "self.jpg")  # a link to itself

    entries, problems = split(walk([root]))
    assert [rel(root, e.path) for e in entries] == [
        "real.jpg",
        "link1/a.jpg",
        "link1/inner/b.png",
    ]
    assert [(rel(root, p.path), p.reason) for p in problems] == [("self.jpg", "symlink loop")]

    # Given both the link's folder and the real folder, the real path wins.
    entries, _ = split(walk([root, outside]))
    assert [e.path for e in entries] == [
        root / "real.jpg",
        outside / "a.jpg",
        outside / "inner" / "b.png",
    ]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(photos, monkeypatch):
    root, expected = photos
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == root / "camera":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    entries, problems = split(walk([root]))
    assert (str(root / "camera"), "permission denied") in [(p.path, p.reason) for p in problems]
    found = {rel(root, e.path) for e in entries}
    assert not any(f.startswith("camera/") for f in found)
    assert set(expected["good"]) - found == {g for g in expected["good"] if g.startswith("camera/")}


def test_walk_never_opens_a_file(photos, monkeypatch):
    # Change detection must stay cheap: the walk lists and stats, it never reads contents.
    root, _ = photos

    def refuse(*args, **kwargs):
        raise AssertionError(f"walk opened {args[0]!r}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    entries, _ = split(walk([root]))
    assert len(entries) > 20


def test_content_hash_matches_blake2b_and_spots_duplicates(photos, tmp_path):
    root, _ = photos
    dupes = ("dupes/one.jpg", "dupes/two.jpg", "dupes/sub/three.jpg")
    one, two, three = (content_hash(root / p) for p in dupes)
    assert one == two == three
    assert content_hash(root / "camera/grey.jpg") != one
    assert len(one) == 32 and int(one, 16) >= 0

    big = tmp_path / "big.bin"
    data = os.urandom(2 * 1024 * 1024 + 12345)  # several 1 MiB chunks plus a partial one
    big.write_bytes(data)
    assert content_hash(big) == hashlib.blake2b(data, digest_size=16).hexdigest()
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert content_hash(empty) == hashlib.blake2b(b"", digest_size=16).hexdigest()

"""indexer.media.walk: exclude globs (defaults as rclip's), and unsupported files counted, not
dropped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from indexer.config import DEFAULT_EXCLUDES, Settings
from indexer.media.walk import FileEntry, walk


def _tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _found(results, root: Path) -> list[str]:
    return [e.path.relative_to(root).as_posix() for e in results if isinstance(e, FileEntry)]


NOISE = [
    "@eaDir/a.jpg/SYNOPHOTO_THUMB_XL.jpg",  # Synology thumbnails
    "trip/@eaDir/b.jpg/SYNOPHOTO_THUMB_M.jpg",
    ".git/objects/c.png",
    "site/node_modules/pkg/logo.png",
    ".thumbnails/large/d.png",
    "#recycle/old.jpg",
    "$RECYCLE.BIN/S-1-5-21/e.jpg",
]


def test_default_excludes_skip_nas_vcs_and_recycle_folders(tmp_path):
    _tree(tmp_path, [*NOISE, "trip/beach.jpg", "site/hero.png"])
    assert _found(walk([tmp_path]), tmp_path) == ["site/hero.png", "trip/beach.jpg"]
    # include_hidden shows hidden photos, not the hidden thumbnail caches and VCS folders
    _tree(tmp_path, [".hidden/photo.jpg"])
    found = _found(walk([tmp_path], include_hidden=True), tmp_path)
    assert found == [".hidden/photo.jpg", "site/hero.png", "trip/beach.jpg"]
    # exclude=() turns every default off
    assert len(_found(walk([tmp_path], exclude=()), tmp_path)) == 5 + 2  # the non-hidden noise


def test_user_globs_by_name_relative_and_absolute_path(tmp_path):
    _tree(
        tmp_path,
        [
            "2019/drafts/a.jpg",
            "2019/keep/drafts/b.jpg",  # "2019/drafts" is relative to the root: b stays
            "2019/keep/c.tmp.jpg",
            "2020/cache/d.jpg",
            "2020/e.jpg",
            "private/f.jpg",
        ],
    )
    globs = ("*.tmp.jpg", "2019/drafts", "*/cache", str(tmp_path / "private"))
    assert _found(walk([tmp_path], exclude=globs), tmp_path) == [
        "2019/keep/drafts/b.jpg",
        "2020/e.jpg",
    ]


def test_a_root_is_walked_even_when_a_glob_matches_it(tmp_path):
    root = tmp_path / "node_modules"
    _tree(root, ["x.jpg"])
    assert _found(walk([root]), root) == ["x.jpg"]
    assert _found(walk([root / "x.jpg"], exclude=("*.jpg",)), root) == ["x.jpg"]


def test_globs_never_match_folders_above_the_root(tmp_path):
    root = tmp_path / "drafts" / "photos"
    _tree(root, ["a.jpg"])
    assert _found(walk([root], exclude=("drafts", "*drafts*")), root) == ["a.jpg"]


def test_unsupported_files_are_counted_by_extension(tmp_path):
    _tree(
        tmp_path,
        [
            "a.jpg",
            "notes.txt",
            "clip.MOV",
            "clip2.mov",
            "README",
            ".hidden.txt",  # hidden: not walked, not counted
            "@eaDir/thumb.dat",  # excluded: not counted
            "sub/b.XMP",
        ],
    )
    (tmp_path / "link.txt").symlink_to(tmp_path / "notes.txt")
    (tmp_path / "folderlink").symlink_to(tmp_path / "sub")
    skipped: Counter[str] = Counter()
    found = _found(walk([tmp_path], skipped=skipped), tmp_path)
    assert found == ["a.jpg"]
    assert skipped == {".mov": 2, ".txt": 2, "(no extension)": 1, ".xmp": 1}


def test_settings_add_user_globs_to_the_defaults():
    assert Settings().excludes == DEFAULT_EXCLUDES
    assert Settings(exclude=("*.tmp",)).excludes == (*DEFAULT_EXCLUDES, "*.tmp")


def test_raw_files_are_walked_by_default(tmp_path):
    names = ["a.CR2", "b.cr3", "c.nef", "d.ARW", "e.dng", "f.orf", "g.rw2", "h.raf"]
    _tree(tmp_path, names)
    assert _found(walk([tmp_path]), tmp_path) == names


def test_image_named_fifos_and_devices_are_reported_never_opened(tmp_path):
    import os

    from indexer.media.walk import WalkProblem

    _tree(tmp_path, ["a.jpg"])
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "null.png").symlink_to("/dev/null")
    os.mkfifo(tmp_path / "other-pipe")  # not image-named: neither reported nor counted
    skipped: Counter[str] = Counter()
    results = list(walk([tmp_path], skipped=skipped))
    assert _found(results, tmp_path) == ["a.jpg"]
    problems = {Path(r.path).name: r.reason for r in results if isinstance(r, WalkProblem)}
    assert problems == {
        "null.png": "not a regular file (character device)",
        "pipe.jpg": "not a regular file (named pipe)",
    }
    assert not skipped

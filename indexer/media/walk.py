"""Files on disk: find the image files under one or more roots, and hash their content.

`walk` yields a `FileEntry` for every image file and a `WalkProblem` for everything that could not
be looked at (dangling links, unreadable folders, ...). Problems are reported, never fatal.

Rules:
- A file is an image file when its extension (case-insensitive) is in `extensions`. Nothing is
  opened: the walk only lists folders and stats matching files, so an unchanged tree of 100,000
  files is walked in well under a second.
- Names starting with "." (files and folders) are skipped unless `include_hidden`. A root itself
  is always walked, even when its own name is hidden.
- `exclude` globs (default DEFAULT_EXCLUDES: @eaDir, .git, node_modules, ...) skip a file or a
  whole folder. A glob without "/" matches the name (`*.tmp`, `Screenshots`); one with "/"
  matches the path relative to the root it was found under (`2019/drafts`, `*/cache`), or the
  absolute path when it starts with "/" or "~". `*` also matches "/". Case-sensitive, as
  `find -name`. Roots themselves are never excluded: the user asked for them.
- Files that are neither hidden, excluded nor image files are not silently dropped: when a
  `skipped` Counter is given, each adds one under its extension (".mov", "(no extension)"), so
  the run can say "12 unsupported files skipped (.mov 9, .xmp 3)". Counting costs no stat:
  scandir already knows which entries are files.
- A root that is a file is yielded as given, whatever its extension: the user asked for it.
- Every folder is walked at most once, recognised by (st_dev, st_ino). Symlinked folders are
  followed, but only after every real folder of every root: a link to a folder that is walked
  anyway is then skipped, so files keep their real path, and a link back to an ancestor (a loop)
  is never followed.
- Symlinked files count as files, under the link's path (the content hash spots the duplicate).
- An image-named entry that is not a regular file (a FIFO, socket or device, or a link to one)
  is reported as a problem, "not a regular file (named pipe)": it is never opened.
- Order is deterministic: roots in the order given; inside a folder, files by name, then
  subfolders by name (depth first); symlinked folders last, in the order they were found.
- Paths are absolute but not resolved, so the user sees the path they would type.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

from indexer.config import DEFAULT_EXCLUDES, DEFAULT_EXTENSIONS

_CHUNK = 1 << 20  # 1 MiB reads: large enough that syscall overhead is noise


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One image file found by the walk; size + mtime_ns are what change detection compares."""

    path: Path  # absolute, symlinks not resolved
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """Something the walk could not look at. Reported to the user, never fatal."""

    path: str
    reason: str


def walk(
    roots: Iterable[str | os.PathLike[str]],
    *,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    include_hidden: bool = False,
    exclude: Iterable[str] = DEFAULT_EXCLUDES,
    skipped: Counter[str] | None = None,
) -> Iterator[FileEntry | WalkProblem]:
    """Yield every image file under `roots` (see the module docstring for the rules).

    From a Settings: `walk(roots, extensions=s.extensions, include_hidden=s.include_hidden,
    exclude=s.excludes, skipped=counter)`.
    """
    suffixes = frozenset("." + ext.lower().lstrip(".") for ext in extensions)
    rules = _Rules(suffixes, include_hidden, tuple(exclude), skipped)
    visited: set[tuple[int, int]] = set()  # (st_dev, st_ino) of every folder walked
    deferred: list[str] = []  # symlinked folders, walked after all real folders

    for root in roots:
        top = os.path.abspath(os.path.expanduser(os.fspath(root)))
        try:
            st = os.stat(top)
        except OSError as exc:
            yield WalkProblem(top, _link_or_os_reason(top, exc, missing="not found"))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_tree(top, top, st, rules, visited, deferred)
        elif stat.S_ISREG(st.st_mode):
            yield FileEntry(Path(top), st.st_size, st.st_mtime_ns)
        else:
            yield WalkProblem(top, "not a regular file or folder")

    # A link found while walking a linked folder is appended here too, so this runs until no new
    # folders turn up; `visited` guarantees it ends.
    i = 0
    while i < len(deferred):
        link, root = deferred[i]
        i += 1
        try:
            st = os.stat(link)
        except OSError as exc:  # removed or changed since it was found
            yield WalkProblem(link, _link_or_os_reason(link, exc, missing="dangling symlink"))
            continue
        yield from _walk_tree(link, root, st, rules, visited, deferred)


class _Rules:
    """What the walk keeps: suffixes, hidden names, exclude globs (compiled once: a walk of
    100,000 files must stay well under a second), and where unsupported files are counted."""

    def __init__(self, suffixes, include_hidden, exclude, skipped):
        self.suffixes: frozenset[str] = suffixes
        self.include_hidden: bool = include_hidden
        self.skipped: Counter[str] | None = skipped
        by_name, by_rel, by_abs = [], [], []
        for glob in exclude:
            if glob.startswith(("/", "~")):
                by_abs.append(os.path.expanduser(glob).rstrip("/") or "/")
            elif "/" in glob:
                by_rel.append(glob.strip("/"))
            elif glob:
                by_name.append(glob)
        self.by_name = _compile(by_name)
        self.by_rel = _compile(by_rel)
        self.by_abs = _compile(by_abs)

    def excluded(self, path: str, name: str, root: str) -> bool:
        if self.by_name is not None and self.by_name.match(name):
            return True
        if self.by_rel is not None:
            rel = path[len(root.rstrip(os.sep)) + 1 :].replace(os.sep, "/")
            if self.by_rel.match(rel):
                return True
        return self.by_abs is not None and self.by_abs.match(path) is not None

    def count_unsupported(self, name: str) -> None:
        if self.skipped is not None:
            self.skipped[os.path.splitext(name)[1].lower() or "(no extension)"] += 1


def _compile(globs: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs)) if globs else None


def _walk_tree(
    top: str,
    root: str,
    top_stat: os.stat_result,
    rules: _Rules,
    visited: set[tuple[int, int]],
    deferred: list[tuple[str, str]],
) -> Iterator[FileEntry | WalkProblem]:
    """Walk one folder tree; `root` is the root it was found under (for root-relative globs)."""
    key = (top_stat.st_dev, top_stat.st_ino)
    if key in visited:
        return
    visited.add(key)
    # An explicit stack instead of recursion: deep trees cannot hit the recursion limit.
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkProblem(folder, _os_reason(exc))
            continue

        subfolders: list[str] = []
        for entry in entries:
            name = entry.name
            if not rules.include_hidden and name.startswith("."):
                continue
            if rules.excluded(entry.path, name, root):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    sub_key = (st.st_dev, st.st_ino)
                    if sub_key not in visited:  # bind mounts can point back to an ancestor
                        visited.add(sub_key)
                        subfolders.append(entry.path)
                    continue
                wanted = os.path.splitext(name)[1].lower() in rules.suffixes
                if entry.is_symlink():
                    try:
                        st = entry.stat()  # follows the link
                    except OSError as exc:
                        # A dangling link without an extension may have pointed to a folder.
                        if wanted or not os.path.splitext(name)[1]:
                            yield WalkProblem(entry.path, _link_or_os_reason(entry.path, exc))
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if (st.st_dev, st.st_ino) not in visited:
                            deferred.append((entry.path, root))
                        continue
                    if not wanted:
                        if stat.S_ISREG(st.st_mode):
                            rules.count_unsupported(name)
                        continue
                elif wanted:
                    st = entry.stat()
                else:
                    if entry.is_file(follow_symlinks=False):  # d_type: no stat
                        rules.count_unsupported(name)
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield FileEntry(Path(entry.path), st.st_size, st.st_mtime_ns)
                else:  # a FIFO named like a photo would block the decoder: say what it is
                    yield WalkProblem(entry.path, f"not a regular file ({file_kind(st.st_mode)})")
            except OSError as exc:
                yield WalkProblem(entry.path, _os_reason(exc))
        # Reversed so the stack pops subfolders in name order.
        stack.extend(reversed(subfolders))


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words: "named pipe", "socket", ..."""
    for test, name in (
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "vanished during the scan"
    return exc.strerror.lower() if exc.strerror else str(exc)


def _link_or_os_reason(path: str, exc: OSError, missing: str = "dangling symlink") -> str:
    """Name link trouble as such: a dangling link or a link loop reads better than ENOENT."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "dangling symlink" if os.path.islink(path) else missing
    return _os_reason(exc)


def content_hash(path: str | os.PathLike[str]) -> str:
    """Hex BLAKE2b-128 of the whole file: recognises moved, renamed and duplicated files.

    BLAKE2b is in the standard library, faster than SHA-256 on 64-bit CPUs, and 128 bits is far
    beyond collision risk for a photo library. Reads 1 MiB at a time into one reused buffer.
    """
    digest = hashlib.blake2b(digest_size=16)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()

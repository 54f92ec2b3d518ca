"""The atomic file write: the one way imgcap replaces a file (exports, sidecars, thumbnails, the
FAISS cache, model folders, training outputs), so that a crash leaves the old file or the new
one, never half, and a write never lands anywhere but where the caller meant.

- The new bytes go to a temporary file created with O_CREAT|O_EXCL|O_NOFOLLOW under a random
  name in the target's own folder (rename is atomic only within one file system): nothing
  planted beside the target, such as a symlink at a guessable temp name, can redirect them.
- A symlink is written through: the file it points to (every link resolved) is replaced, the
  link stays a link; a dangling link creates its target. Callers that must keep writes inside
  a folder (write-back: the photo's root) check where a link leads before calling.
- A FIFO or a character/block device (`/dev/stdout`, `/dev/full`, a shell's `>(gzip)`) is never
  renamed over: with `special="write"` it is opened and written straight, with no temp file
  (a stream has no old content to keep); with `special="refuse"` (the default: cache files,
  sidecars, models) it is an error, since a pipe at such a name is no one's intent and opening
  it could block for ever. A folder, socket or other non-file is refused either way.
- An existing file keeps its permission bits (and, when root writes it, its owner); the temp
  file is private (0600) until then. A new file gets 0666 minus the umask, as open() gives.
- `durable` (default) fsyncs the file and its folder, so a power cut after the call keeps the
  new bytes; caches that are rebuilt on demand may skip it.

Errors are OSError (the refusals too: errno EINVAL/EISDIR, strerror saying why), which every
caller already turns into its own message.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

SPECIALS = ("write", "refuse")  # what to do with a FIFO or device target

# O_EXCL also fails on a symlink at the name, dangling or not; O_BINARY: no CRLF on Windows.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_TEMP_FLAGS |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_STREAM_FLAGS = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike,
    *,
    encoding: str | None = None,
    newline: str | None = None,
    special: str = "refuse",
    durable: bool = True,
) -> Iterator[IO]:
    """An open file (binary; text with `encoding`) whose contents replace `path` when the block
    ends without an exception; on one the target is untouched and the temp file removed."""
    if special not in SPECIALS:
        raise ValueError(f"special must be one of {SPECIALS}, not {special!r}")
    target, stream = _where(path, special)
    if stream:
        # No O_CREAT: the FIFO or device must still be there; a write error (ENOSPC from
        # /dev/full, EPIPE) surfaces from write() or close() as the caller's OSError.
        fd = os.open(target, _STREAM_FLAGS)
        with _open_fd(fd, encoding, newline) as f:
            yield f
        return
    fd, tmp, existing = _temp_beside(target)
    try:
        with _open_fd(fd, encoding, newline) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        _install(tmp, target, existing, durable)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str, **options) -> None:
    """`data` as the whole new content of `path` (options as for atomic_file)."""
    with atomic_file(path, **options) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """For writers that only take a file name (FAISS, safetensors, open_memmap): the name of a
    fresh empty temp file beside `path` (created exclusively, so the writer opens our file and
    nothing planted), installed over `path` when the block ends. FIFOs and devices are refused."""
    target, _ = _where(path, "refuse")
    fd, tmp, existing = _temp_beside(target)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        _install(tmp, target, existing, durable)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def replace_with(staged: str | os.PathLike, path: str | os.PathLike, durable: bool = True) -> None:
    """Rename `staged`, a finished file the caller made in `path`'s real folder (write-back
    edits a copy of a photo with exiftool), over `path`, by the same rules as atomic_file."""
    target, _ = _where(path, "refuse")
    existing = _regular_stat(target)
    if durable:
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
    _install(os.fspath(staged), target, existing, durable)


def create_temp(path: str | os.PathLike) -> Path:
    """A fresh empty file `.NAME.RANDOM.tmp` beside `path`, created exclusively, for a writer
    that fills it over several steps (a memory-mapped matrix) and installs it later with
    replace_with; the caller removes it if it never does."""
    fd, tmp, _ = _temp_beside(Path(os.path.realpath(path)))
    os.close(fd)
    return Path(tmp)


# ---------------------------------------------------------------------------------- helpers
def _where(path: str | os.PathLike, special: str) -> tuple[Path, bool]:
    """The file a write to `path` replaces (every symlink resolved), or `path` itself when it
    is a FIFO or device to write straight into."""
    try:
        st = os.stat(path)  # follows links, the kernel's own /proc/self/fd ones included
    except FileNotFoundError:
        st = None  # missing, or a dangling link: its target is created
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        if kind == "a folder":
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", os.fspath(path))
        if kind in ("a FIFO", "a device") and special == "write":
            return Path(path), True
        raise OSError(errno.EINVAL, f"is {kind}, not a regular file", os.fspath(path))
    # realpath, not Path.resolve(): a magic /proc link resolves to a name like "pipe:[123]"
    # there, so a regular file is also checked to be the one that os.stat found.
    target = Path(os.path.realpath(path))
    if st is not None:
        real = _regular_stat(target)
        if real is None or (real.st_dev, real.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.EINVAL, "cannot tell which file the link leads to", str(path))
    return target, False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _regular_stat(target: Path) -> os.stat_result | None:
    try:
        st = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):  # changed since _where looked: never rename over it
        raise OSError(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(target))
    return st


def _temp_beside(target: Path) -> tuple[int, str, os.stat_result | None]:
    existing = _regular_stat(target)
    # Private while being written over an existing file (whose mode is copied at the end);
    # a new file is created with open()'s mode, so the kernel applies the umask.
    mode = 0o600 if existing is not None else 0o666
    for _ in range(100):
        tmp = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, mode), tmp, existing
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))


def _open_fd(fd: int, encoding: str | None, newline: str | None) -> IO:
    try:
        raw = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    if encoding is None:
        return raw
    return io.TextIOWrapper(raw, encoding=encoding, newline=newline, write_through=False)


def _install(tmp: str, target: Path, existing: os.stat_result | None, durable: bool) -> None:
    if existing is not None:
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writing someone's file: theirs
            with contextlib.suppress(OSError):
                os.chown(tmp, existing.st_uid, existing.st_gid)
        os.chmod(tmp, stat.S_IMODE(existing.st_mode))  # after chown, which clears set-id bits
    os.replace(tmp, target)
    if durable:
        _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; not every platform or file system can fsync a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

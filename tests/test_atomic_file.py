"""The one atomic write (indexer/atomic_file.py): temp files nobody can plant, links written
through, FIFOs and devices never renamed over, the target's mode kept."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

import pytest

from indexer.atomic_file import atomic_file, atomic_path, create_temp, replace_with, write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_gets_open_modes_and_no_temp_file_is_left(tmp_path, umask_022):
    write_atomic(tmp_path / "out.csv", b"a,b\n")
    assert (tmp_path / "out.csv").read_bytes() == b"a,b\n"
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o644
    assert _names(tmp_path) == ["out.csv"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_replacing_a_file_keeps_its_permission_bits(tmp_path, umask_022, mode):
    out = tmp_path / "private.csv"
    out.write_text("old")
    out.chmod(mode)
    write_atomic(out, b"new")
    assert out.read_bytes() == b"new" and stat.S_IMODE(out.stat().st_mode) == mode


def test_text_mode_and_a_failing_block_leaves_the_old_file(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old")
    with atomic_file(out, encoding="utf-8", newline="") as f:
        f.write("café\r\n")
    assert out.read_bytes() == "café\r\n".encode()
    with pytest.raises(RuntimeError), atomic_file(out) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert out.read_bytes() == "café\r\n".encode() and _names(tmp_path) == ["out.csv"]


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "real" / "captions.csv"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "real" / "later.csv")
    write_atomic(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.csv").read_bytes() == b"made"


def test_a_symlink_planted_at_the_temp_name_cannot_redirect_the_write(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = "planted"
    (tmp_path / f".out.csv.{planted}.tmp").symlink_to(victim)
    names = iter([planted, planted, "fresh"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    write_atomic(tmp_path / "out.csv", b"data")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.csv").read_bytes() == b"data"
    assert (tmp_path / f".out.csv.{planted}.tmp").is_symlink()  # not ours to remove


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_is_written_straight_or_refused_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # A reader that is already there: the writer's open does not block, and the few bytes
    # fit the pipe's buffer, so no thread is needed.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, b"through the pipe\n", special="write")
        assert os.read(reader, 1000) == b"through the pipe\n"
    finally:
        os.close(reader)
    with pytest.raises(OSError, match="is a FIFO, not a regular file") as e:
        write_atomic(fifo, b"x")  # the default: refused, without opening it (no hang)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError, match="FIFO"), atomic_path(fifo):
        pass
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and _names(tmp_path) == ["pipe"]


def test_a_link_to_a_pipe_like_dev_stdout_is_written_straight(tmp_path):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    r, w = os.pipe()
    try:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{w}")  # what /dev/stdout is when output is piped
        write_atomic(link, b"piped", special="write")
        assert os.read(r, 100) == b"piped" and link.is_symlink()
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_gives_enospc_and_stays_a_device():
    with pytest.raises(OSError) as e:
        write_atomic("/dev/full", b"x" * 100_000, special="write")
    assert e.value.errno == errno.ENOSPC
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with pytest.raises(OSError, match="is a device"):
        write_atomic("/dev/full", b"x")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, b"x")


def test_writers_that_take_a_name_get_a_fresh_private_file(tmp_path):
    out = tmp_path / "index.faiss"
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.is_file() and not tmp.is_symlink()
        assert tmp.stat().st_size == 0
        tmp.write_bytes(b"index")
    assert out.read_bytes() == b"index" and _names(tmp_path) == ["index.faiss"]
    staged = create_temp(tmp_path / "big.raw")
    staged.write_bytes(b"matrix")
    replace_with(staged, tmp_path / "big.raw")
    assert (tmp_path / "big.raw").read_bytes() == b"matrix"
    assert _names(tmp_path) == ["big.raw", "index.faiss"]

"""exiftool, the program `write-back --embed` writes photo metadata through.

Why exiftool (Phil Harvey's, 20+ years maintained, the reference every photo tool is checked
against): it writes XMP, IPTC and EXIF into JPEG, PNG, WebP, HEIC and TIFF while copying the
image data untouched, and keeps every other field, including maker notes it cannot parse. The
Python bindings that install here (pyexiv2) wrap exiv2, which cannot write HEIC. Sidecars and
the index-time tag reader need no exiftool: they are pure Python (indexer.metadata.xmp, photo_tags).

It is an external program: Debian/Ubuntu `apt install libimage-exiftool-perl`, macOS
`brew install exiftool`, Windows https://exiftool.org. Missing, it is a ToolMissingError naming
the package, raised before any photo is touched.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from indexer.errors import MetadataError, ToolMissingError
from indexer.lifetime import dies_with_us
from indexer.metadata.xmp import NS_IMGCAP

INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt install libimage-exiftool-perl; macOS: brew install"
    " exiftool; Windows: https://exiftool.org)"
)
# Per call: exiftool rewrites a 50 MB TIFF in well under a second; a hang must not stall a run.
TIMEOUT_S = 60
# imgcap's XMP namespace, so exiftool can write its properties (it reads unknown ones anyway).
# Strings, not dates: the ISO 8601 date is stored exactly as given.
CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        imgcap => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::imgcap' } },
    },
);
%Image::ExifTool::UserDefined::imgcap = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-imgcap', 2 => 'Image' },
    NAMESPACE => { 'imgcap' => 'NAMESPACE_URI' },
    WRITABLE => 'string',
    caption => { }, model => { }, source => { }, date => { },
);
1;
""".replace("NAMESPACE_URI", NS_IMGCAP)
_config_file: str | None = None

# Every call: errors only (-q -q drops warnings such as "minor errors ignored"), UTF-8 names.
COMMON = ("-q", "-q", "-charset", "filename=UTF8")


def exiftool_path() -> str:
    """The exiftool executable, or ToolMissingError saying how to install it."""
    found = shutil.which("exiftool")
    if found is None:
        raise ToolMissingError(
            f"exiftool is not installed: --embed writes through it; {INSTALL_HINT}"
        )
    return found


class Session:
    """One exiftool process for a whole run (`-stay_open`): each call is a round trip on its
    pipes instead of a Perl start-up (about 0.15 s a photo, twice per photo). Started on first
    use, restarted if it dies, killed after a timeout; `close()` (or `with`) ends it.

    Arguments go one per line, so an argument with a line break (a file name holding one) is
    run by a one-off exiftool instead."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.calls = 0

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, args: list[str], path: Path) -> bytes:
        if any("\n" in a or "\r" in a for a in args):
            return _run(args, path)
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self.calls += 1
        marker = f"{{ready{self.calls}}}"
        # -echo4 writes the marker to stderr once the command is done, so both pipes are read
        # to a known end; -executeN ends stdout with the same marker.
        lines = [*args, "-echo4", marker, f"-execute{self.calls}"]
        try:
            self.proc.stdin.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
            self.proc.stdin.flush()
        except OSError as e:
            self.close()
            raise MetadataError(str(path), f"exiftool could not run ({e.strerror or e})") from None
        end = (marker + "\n").encode()
        out = self._out.until(end, TIMEOUT_S)
        err = self._err.until(end, TIMEOUT_S) if out is not None else None
        if out is None or err is None:
            self.close()
            raise MetadataError(str(path), f"exiftool took over {TIMEOUT_S} s; skipped")
        message = err.decode("utf-8", "replace").strip().splitlines()
        if message:
            raise MetadataError(str(path), f"exiftool: {message[0]}")
        return out

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(b"-stay_open\nFalse\n")
                proc.stdin.flush()
                proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _start(self) -> None:
        # -stay_open keeps polling its stdin after EOF: without the parent-death signal
        # (_Launch), a killed imgcap would leave it running for ever.
        exe = exiftool_path()
        launch = _Launch()
        cmd = [exe, *launch.config, "-stay_open", "True", "-@", "-", "-common_args"]
        cmd += COMMON
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                **launch.popen,
            )
        except OSError as e:
            raise MetadataError("exiftool", f"could not start ({e.strerror or e})") from None
        finally:
            launch.close()
        self._out = _Pipe(self.proc.stdout)
        self._err = _Pipe(self.proc.stderr)


class _Pipe:
    """A pipe drained by a thread (so neither of exiftool's outputs can fill up and stall it),
    read up to a marker with a timeout."""

    def __init__(self, stream) -> None:
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            with self.cond:
                self.buf += chunk
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def until(self, marker: bytes, timeout: float) -> bytes | None:
        """Everything before `marker` (consumed with it); None on timeout or a closed pipe."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while (at := self.buf.find(marker)) < 0:
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self.cond.wait(left)
            out = bytes(self.buf[:at])
            del self.buf[: at + len(marker)]
            return out


def read_metadata(path: Path, session: Session | None = None) -> dict[str, object]:
    """The fields write-back compares before writing: the XMP packet (bytes, or None), IPTC
    Caption-Abstract and EXIF ImageDescription (str, or None)."""
    args = ["-j", "-b", "-XMP", "-IPTC:Caption-Abstract", "-EXIF:ImageDescription", _abs(path)]
    out = session.run(args, path) if session is not None else _run(args, path)
    try:
        row = json.loads(out or b"[{}]")[0]
    except (ValueError, IndexError) as e:
        raise MetadataError(str(path), f"exiftool's answer could not be read ({e})") from None
    packet = row.get("XMP")
    if isinstance(packet, str) and packet.startswith("base64:"):
        packet = base64.b64decode(packet[len("base64:") :])
    elif isinstance(packet, str):
        packet = packet.encode("utf-8")
    return {
        "xmp": packet or None,
        "iptc": _str(row.get("Caption-Abstract")),
        "exif": _str(row.get("ImageDescription")),
    }


def write_in_place(path: Path, args: list[str], session: Session | None = None) -> None:
    """Run exiftool's tag assignments `args` on `path` (a private copy: the caller renames it
    over the photo once it has checked the result)."""
    full = ["-overwrite_original", *args, _abs(path)]
    if session is not None:
        session.run(full, path)
    else:
        _run(full, path)


def _run(args: list[str], path: Path) -> bytes:
    exe = exiftool_path()
    launch = _Launch()
    cmd = [exe, *launch.config, *COMMON, *args]
    try:
        done = subprocess.run(
            cmd, capture_output=True, timeout=TIMEOUT_S, check=False, **launch.popen
        )
    except subprocess.TimeoutExpired:
        raise MetadataError(str(path), f"exiftool took over {TIMEOUT_S} s; skipped") from None
    except OSError as e:
        raise MetadataError(str(path), f"exiftool could not run ({e.strerror or e})") from None
    finally:
        launch.close()
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[0] if message else f"exit status {done.returncode}"
        raise MetadataError(str(path), f"exiftool: {reason}")
    return done.stdout


class _Launch:
    """How one exiftool process starts: `config`, the `-config SOURCE` arguments that must come
    first (imgcap's namespace), and `popen`, keywords for subprocess.

    On POSIX the configuration goes through a pipe the child inherits (`-config /dev/fd/N`):
    exiftool reads it once at start-up, and no file is left in /tmp by a run that is killed.
    On Linux the child also gets the parent-death signal (indexer/lifetime.py). `close()` once
    the child has started (its copy of the pipe stays open)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        if os.name != "posix":
            self.config = _config_file_args()
            self.popen: dict[str, Any] = {}
            return
        read, write = os.pipe()
        with os.fdopen(write, "wb") as f:
            f.write(CONFIG.encode("utf-8"))  # ~0.5 KB; a pipe holds 4 KB or more: never blocks
        self.fd = read
        self.config = ["-config", f"/dev/fd/{read}"]
        self.popen = {"pass_fds": (read,), "preexec_fn": dies_with_us()}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _config_file_args() -> list[str]:
    """`-config FILE` where a child cannot inherit a pipe (Windows): the file is written once
    per process and removed at exit."""
    global _config_file
    if _config_file is None or not os.path.exists(_config_file):
        fd, name = tempfile.mkstemp(prefix="imgcap-exiftool-", suffix=".config")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(CONFIG)
        atexit.register(lambda: os.path.exists(name) and os.unlink(name))
        _config_file = name
    return ["-config", _config_file]


def _abs(path: Path) -> str:
    # Absolute: a file name starting with "-" must never read as an option.
    return os.path.abspath(path)


def _str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)

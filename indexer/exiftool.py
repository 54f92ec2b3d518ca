"""exiftool, the program `write-back --embed` writes photo metadata through.

Why exiftool (Phil Harvey's, 20+ years maintained, the reference every photo tool is checked
against): it writes XMP, IPTC and EXIF into JPEG, PNG, WebP, HEIC and TIFF while copying the
image data untouched, and keeps every other field, including maker notes it cannot parse. The
Python bindings that install here (pyexiv2) wrap exiv2, which cannot write HEIC. Sidecars and
the index-time tag reader need no exiftool: they are pure Python (indexer.xmp, photo_tags).

It is an external program: Debian/Ubuntu `apt install libimage-exiftool-perl`, macOS
`brew install exiftool`, Windows https://exiftool.org. Missing, it is a ToolMissingError naming
the package, raised before any photo is touched.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

from indexer.errors import MetadataError, ToolMissingError

INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt install libimage-exiftool-perl; macOS: brew install"
    " exiftool; Windows: https://exiftool.org)"
)
# Per call: exiftool rewrites a 50 MB TIFF in well under a second; a hang must not stall a run.
TIMEOUT_S = 60


def exiftool_path() -> str:
    """The exiftool executable, or ToolMissingError saying how to install it."""
    found = shutil.which("exiftool")
    if found is None:
        raise ToolMissingError(
            f"exiftool is not installed: --embed writes through it; {INSTALL_HINT}"
        )
    return found


def read_metadata(path: Path) -> dict[str, object]:
    """The fields write-back compares before writing: the XMP packet (bytes, or None), IPTC
    Caption-Abstract and EXIF ImageDescription (str, or None)."""
    out = _run(
        ["-j", "-b", "-XMP", "-IPTC:Caption-Abstract", "-EXIF:ImageDescription", _abs(path)], path
    )
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


def write_in_place(path: Path, args: list[str]) -> None:
    """Run exiftool's tag assignments `args` on `path` (a private copy: the caller renames it
    over the photo once it has checked the result)."""
    _run(["-overwrite_original", *args, _abs(path)], path)


def _run(args: list[str], path: Path) -> bytes:
    cmd = [exiftool_path(), "-q", "-q", "-charset", "filename=UTF8", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise MetadataError(str(path), f"exiftool took over {TIMEOUT_S} s; skipped") from None
    except OSError as e:
        raise MetadataError(str(path), f"exiftool could not run ({e.strerror or e})") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[0] if message else f"exit status {done.returncode}"
        raise MetadataError(str(path), f"exiftool: {reason}")
    return done.stdout


def _abs(path: Path) -> str:
    # Absolute: a file name starting with "-" must never read as an option.
    return os.path.abspath(path)


def _str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)

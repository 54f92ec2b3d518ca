"""Helpers for the write-back and tag tests: photos in every format write-back handles, and
exiftool as the independent reader.

Tests that need exiftool skip only outside CI (CI=true makes them run, and fail if it is
missing: .ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

needs_exiftool = pytest.mark.skipif(
    shutil.which("exiftool") is None and os.environ.get("CI") != "true",
    reason="needs exiftool (Debian package libimage-exiftool-perl)",
)

FORMATS = ("jpg", "png", "webp", "tif", "heic")


def make_photo(path: Path, colour=(200, 30, 40), size=(64, 48)) -> Path:
    """A small photo with a gradient (so a changed pixel would show) in the format of its
    extension."""
    from PIL import Image

    if path.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
    im = Image.new("RGB", size, colour)
    for x in range(size[0]):
        im.putpixel((x, x % size[1]), (x * 4 % 256, 255 - x * 3 % 256, 90))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def exif_read(path: Path, *tags: str) -> dict:
    """exiftool's view of a file: `-G1 -j` names like "XMP-dc:Description"."""
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-a", "-struct", *tags, str(path)],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)[0]


def exif_write(path: Path, *assignments: str) -> None:
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *assignments, str(path)],
        check=True,
        capture_output=True,
    )


def pixels(path: Path) -> tuple:
    from PIL import Image

    if path.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
    with Image.open(path) as im:
        return im.mode, im.size, im.tobytes()


DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="4"
   darktable:xmp_version="5"
   darktable:history_end="2">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>germany</rdf:li>
     <rdf:li>2019 trip</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>People|Grandma</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:params="0000000000000000"/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1"
      darktable:params="gz48eJxjZBgFo4AeAAAEAAAB"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def sidecar_with_description(text: str, extra: str = "") -> str:
    """A sidecar whose description a person wrote (Lightroom style), with other languages."""
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">{text}</rdf:li>
     <rdf:li xml:lang="de">Oma im Garten</rdf:li>
    </rdf:Alt>
   </dc:description>{extra}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

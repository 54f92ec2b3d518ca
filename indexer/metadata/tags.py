"""The user's own words about a photo: the keywords and description they (or their photo tool)
already wrote, read from the file's embedded metadata and from XMP sidecars.

Read (pure Python, no exiftool needed, so `imgcap index` has no new dependency):

- XMP (embedded packet and sidecars): `dc:subject`, `dc:description` (x-default),
  `lr:hierarchicalSubject` (Lightroom, `Places|Germany|Berlin`), `digiKam:TagsList`
  (`People/Grandma`); hierarchies give every level as a tag, so `--tag germany` finds Berlin;
- IPTC `Keywords` (2:25) in JPEG and TIFF; UTF-8 when the record says so (1:90), else Latin-1,
  the legacy IPTC default;
- EXIF `XPKeywords` (Windows Explorer's "Tags", UTF-16, `;`-separated).

Sidecars: `photo.jpg.xmp` (darktable, digiKam) and `photo.xmp` (Lightroom, Bridge, Capture One),
either case. A description imgcap itself wrote (marked by `imgcap:caption`) is not the user's
words and is not read back as theirs.

Nothing here stops an index run: a broken or hostile source is skipped and named in `problems`,
and the other sources are still read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import MetadataError
from indexer.metadata import xmp

SIDECAR_SUFFIXES = (".xmp", ".XMP")
# Formats whose embedded XMP/IPTC/EXIF Pillow reads. RAW files keep their words in sidecars
# (every raw developer writes one), BMP and GIF have no such fields.
EMBEDDED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif")
_XP_KEYWORDS = 0x9C9E  # EXIF IFD0, UCS-2 little-endian, NUL-terminated
_IPTC_KEYWORDS = (2, 25)
_IPTC_CHARSET = (1, 90)
_UTF8_ESCAPE = b"\x1b%G"
_SPACES = re.compile(r"\s+")


@dataclass
class PhotoTags:
    """What one photo's metadata says, cleaned: tags de-duplicated ignoring case (first spelling
    kept), each at most xmp.MAX_TAG_CHARS, at most xmp.MAX_TAGS of them."""

    tags: list[str] = field(default_factory=list)
    description: str | None = None
    problems: list[str] = field(default_factory=list)  # "source: reason", one per skipped source

    def add(self, values: list[str]) -> None:
        seen = {t.casefold() for t in self.tags}
        for value in values:
            tag = _SPACES.sub(" ", xmp.clean_text(value))
            if not tag or tag.casefold() in seen:
                continue
            if len(tag) > xmp.MAX_TAG_CHARS:
                self.problems.append(
                    f"a tag of {len(tag):,} characters (over {xmp.MAX_TAG_CHARS}) was ignored"
                )
                continue
            if len(self.tags) >= xmp.MAX_TAGS:
                self.problems.append(f"more than {xmp.MAX_TAGS} tags; the rest were ignored")
                return
            seen.add(tag.casefold())
            self.tags.append(tag)


def sidecar_paths(photo: Path) -> list[Path]:
    """The XMP sidecars that exist for `photo`: `photo.jpg.xmp` first, then `photo.xmp`."""
    photo = Path(photo)
    candidates = [photo.with_name(photo.name + s) for s in SIDECAR_SUFFIXES]
    candidates += [photo.with_suffix(s) for s in SIDECAR_SUFFIXES]
    found: list[Path] = []
    for path in candidates:
        try:
            if not path.is_file() or any(os.path.samefile(path, f) for f in found):
                continue  # samefile: on a case-insensitive disk .xmp and .XMP are one file
        except OSError:
            continue
        found.append(path)
    return found


def sidecar_signature(photo: Path, names: set[str] | None = None) -> str:
    """A short string that changes when any of `photo`'s sidecars is added, edited or removed:
    an index run compares it to notice new tags without re-captioning the photo. `names`: the
    folder's entries, when the caller listed it once for many photos (saves four stats each)."""
    photo = Path(photo)
    if names is not None:
        wanted = {photo.name + s for s in SIDECAR_SUFFIXES} | {
            photo.stem + s for s in SIDECAR_SUFFIXES
        }
        if not wanted & names:
            return ""
    parts = []
    for path in sidecar_paths(photo):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def read_photo_tags(photo: Path, *, image=None) -> PhotoTags:
    """Tags and description from `photo`'s embedded metadata and its sidecars.

    `image` is an already opened PIL image of the photo (the decoder's), to avoid a second open;
    without it the file is opened here (headers only, no pixels are decoded).
    """
    photo = Path(photo)
    out = PhotoTags()
    try:
        if photo.suffix.lower() in EMBEDDED_SUFFIXES:
            _read_embedded(photo, image, out)
    except Exception as e:  # noqa: BLE001 - a photo's metadata must never stop a run
        out.problems.append(f"{photo.name}: embedded metadata unreadable ({e})")
    for sidecar in sidecar_paths(photo):
        try:
            data = _read_capped(sidecar)
            _add_xmp(data, sidecar.name, out)
        except MetadataError as e:
            out.problems.append(f"{sidecar.name}: {e.reason}")
        except OSError as e:
            out.problems.append(f"{sidecar.name}: {e.strerror or e}")
    return out


# ---------------------------------------------------------------------------------- helpers
def _read_capped(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(xmp.MAX_PACKET_BYTES + 1)
    return data  # parse() refuses it when over the cap, with the reason


def _add_xmp(data: bytes, origin: str, out: PhotoTags) -> None:
    fields = xmp.read_fields(xmp.parse(data, origin), origin)
    out.problems.extend(f"{origin}: {p}" for p in fields.problems)
    if fields.description and not fields.written_by_imgcap and out.description is None:
        out.description = fields.description
    out.add(fields.subjects)
    out.add(_levels(fields.hierarchical, "|"))
    out.add(_levels(fields.digikam_tags, "/"))


def _levels(paths: list[str], sep: str) -> list[str]:
    """`Places|Germany|Berlin` -> Places, Germany, Berlin (every level is a word someone may
    search for)."""
    return [part for path in paths for part in path.split(sep)]


def _read_embedded(photo: Path, image, out: PhotoTags) -> None:
    from PIL import Image

    if image is None:
        _register_heif(photo)
        with Image.open(photo) as im:
            _read_image(im, photo.name, out)
    else:
        _read_image(image, photo.name, out)


def _read_image(im, name: str, out: PhotoTags) -> None:
    from PIL import IptcImagePlugin

    packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if packet:
        if isinstance(packet, str):
            packet = packet.encode("utf-8", "surrogatepass")
        try:
            _add_xmp(bytes(packet), f"{name} (embedded XMP)", out)
        except MetadataError as e:
            out.problems.append(f"{name} (embedded XMP): {e.reason}")
    if im.format in ("JPEG", "TIFF", "MPO"):
        iptc = IptcImagePlugin.getiptcinfo(im) or {}
        keywords = iptc.get(_IPTC_KEYWORDS)
        if keywords:
            utf8 = iptc.get(_IPTC_CHARSET) == _UTF8_ESCAPE
            values = keywords if isinstance(keywords, list) else [keywords]
            out.add([_iptc_text(v, utf8) for v in values])
    xp = im.getexif().get(_XP_KEYWORDS)
    if xp:
        raw = bytes(xp) if not isinstance(xp, str) else xp.encode("utf-16-le")
        text = raw.decode("utf-16-le", errors="replace").split("\x00", 1)[0]
        out.add(text.split(";"))


def _iptc_text(value: bytes, utf8: bool) -> str:
    if utf8:
        return value.decode("utf-8", errors="replace")
    try:
        return value.decode("utf-8")  # many writers use UTF-8 without saying so
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _register_heif(photo: Path) -> None:
    if photo.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()


@dataclass
class TagRefresh:
    """What an index run's tag pass did (part of the index summary)."""

    read: int = 0  # photos whose metadata was (re)read: new, changed, or a sidecar changed
    tagged: int = 0  # of those, how many carry tags or a description
    problems: list[str] = field(default_factory=list)  # "path: source: reason"


def refresh_tags(store, roots: list[str], batch: int = 500) -> TagRefresh:
    """Read the tags of every indexed photo under `roots` whose file or sidecars changed since
    they were last read, and store them (one transaction per `batch` photos). Photos are
    compared, never re-captioned: a sidecar edited in darktable only refreshes its tags."""
    from indexer.store import photo_tags as rows
    from indexer.store.roots import under_any

    conn = store.db.conn
    files = {p: st for p, st in rows.file_states(conn).items() if under_any(p, roots)}
    known = rows.states(conn, list(files))
    by_folder: dict[str, list[str]] = {}
    for path in files:
        by_folder.setdefault(os.path.dirname(path), []).append(path)
    todo: list[tuple[str, str]] = []
    for folder, paths in by_folder.items():
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue  # the index run reports unreadable folders
        for path in paths:
            signature = sidecar_signature(Path(path), names)
            size, mtime_ns = files[path]
            if known.get(path) != (size, mtime_ns, signature):
                todo.append((path, signature))
    out = TagRefresh()
    pending: list = []
    for path, signature in todo:
        got = read_photo_tags(Path(path))
        size, mtime_ns = files[path]
        pending.append(
            rows.TagRow(path, got.tags, got.description, size, mtime_ns, signature, got.problems)
        )
        out.read += 1
        out.tagged += bool(got.tags or got.description)
        out.problems.extend(f"{path}: {p}" for p in got.problems)
        if len(pending) >= batch:
            rows.save(store.db, pending)
            pending = []
    rows.save(store.db, pending)
    return out

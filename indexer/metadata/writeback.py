"""Write-back: captions out of imgcap.db into the places photo tools read them.

- Sidecar (default): `photo.jpg.xmp` (darktable, digiKam) or, with naming="lightroom",
  `photo.xmp` (Lightroom/Camera Raw, Bridge, Capture One). An existing sidecar is merged
  (indexer.metadata.xmp): only dc:description's x-default entry and the imgcap: marks change.
- Embedded (`--embed`): XMP dc:description (with the imgcap: marks), IPTC Caption-Abstract
  (JPEG, TIFF: the formats IPTC lives in) and EXIF ImageDescription, through exiftool, into
  JPEG, PNG, WebP, HEIC and TIFF. The photo is copied into a private folder beside it, exiftool
  edits the copy, the copy's decoded pixels are compared with the original's, and only then is
  it fsynced and renamed over the photo: a crash leaves the old photo or the new one, never half.

A description that imgcap did not write (a person's, another tool's) is kept, reported as
"kept", unless `force`, wherever it is: every place a photo tool may show (the photo's sidecars
of either naming, its embedded XMP, IPTC and EXIF) is read before any is written. Each photo
is one outcome; a read-only file or folder, an unknown format, a hostile sidecar or an exiftool
error fails that photo only, with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from indexer.atomic_file import replace_with, write_atomic
from indexer.errors import MetadataError, UsageError
from indexer.metadata import exiftool, xmp
from indexer.metadata.safe_files import link_outside, unwritable
from indexer.metadata.tags import sidecar_paths
from indexer.models.model_dir import stored_name

MODES = ("sidecar", "embed")
NAMINGS = ("darktable", "lightroom")

# Which fields each format can carry (by extension). BMP and GIF hold none of them; RAW files
# are never rewritten: their sidecar is where every raw developer expects edits.
EMBED_FIELDS = {
    "jpg": ("xmp", "iptc", "exif"),
    "jpeg": ("xmp", "iptc", "exif"),
    "tif": ("xmp", "iptc", "exif"),
    "tiff": ("xmp", "iptc", "exif"),
    "png": ("xmp", "exif"),
    "webp": ("xmp", "exif"),
    "heic": ("xmp", "exif"),
    "heif": ("xmp", "exif"),
}
IPTC_CAPTION_BYTES = 2000  # IPTC IIM's limit for Caption-Abstract (2:120)

# What cameras write into EXIF ImageDescription by themselves: nobody's words, safe to replace.
_CAMERA_PLACEHOLDERS = re.compile(
    r"^(|.*digital camera|sony dsc|default|image|picture|camera|dcim.*|\s*)$", re.IGNORECASE
)
STATUSES = ("written", "unchanged", "kept", "failed")


@dataclass(frozen=True)
class Item:
    """One photo and the caption to write for it."""

    path: str
    caption: xmp.Caption
    # The indexed root the photo lies under: a sidecar that is a link may lead only inside it
    # (None: inside the photo's own folder).
    root: str | None = None


@dataclass
class Outcome:
    """What happened to one photo. `status`: written (or would be, in a dry run), unchanged
    (it already says this), kept (a description imgcap did not write; see --force), failed."""

    path: str
    status: str
    target: str | None = None  # the sidecar, or the photo itself for --embed
    reason: str | None = None
    # --embed only: the photo as it is now, so the index can recognise it without re-captioning.
    size: int | None = None
    mtime_ns: int | None = None
    content_hash: str | None = None


@dataclass
class WriteBackSummary:
    mode: str
    naming: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    model: str | None = None  # whose captions were written (run_write_back)
    interrupted: bool = False  # stopped by Ctrl-C: the outcomes so far

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def headline(self) -> str:
        """One line for people: where the captions went and the count of each outcome."""
        if self.mode == "embed":
            where = "into the photos"
        else:
            where = "photo.jpg.xmp" if self.naming == "darktable" else "photo.xmp"
            where = f"to sidecars ({where})"
        n = {s: self.count(s) for s in STATUSES}
        parts = [f"{n['written']} {'would be written' if self.dry_run else 'written'}"]
        parts += [f"{n['unchanged']} unchanged", f"{n['kept']} kept", f"{n['failed']} failed"]
        by = f" by {self.model}" if self.model else ""
        head = "Dry run: captions" if self.dry_run else "Captions"
        tail = "; --force replaces descriptions imgcap did not write" if n["kept"] else ""
        return f"{head}{by} {where}: {', '.join(parts)}{tail}"

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "model": self.model,
            "naming": self.naming if self.mode == "sidecar" else None,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            **{s: self.count(s) for s in STATUSES},
            "files": [{k: v for k, v in asdict(o).items() if v is not None} for o in self.outcomes],
        }


def write_back(
    items: Iterable[Item],
    *,
    mode: str = "sidecar",
    naming: str = "darktable",
    force: bool = False,
    dry_run: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> WriteBackSummary:
    """Write each item's caption; one Outcome per photo, never stopping at a bad one.

    `on_outcome` sees each outcome as it happens (progress, recording embedded files' new state
    as the run goes, so an interrupted run loses nothing it wrote)."""
    if mode not in MODES:
        raise UsageError(f"unknown write-back mode {mode!r} (one of {', '.join(MODES)})")
    if naming not in NAMINGS:
        raise UsageError(f"unknown sidecar naming {naming!r} (one of {', '.join(NAMINGS)})")
    if mode == "embed":
        exiftool.exiftool_path()  # missing: one clear error before any photo is touched
    summary = WriteBackSummary(mode, naming, dry_run)
    with exiftool.Session() as session:  # started only if a photo needs it
        try:
            for item in items:
                try:
                    if not xmp.clean_text(item.caption.text):
                        # Writing nothing would delete a description, not write one.
                        outcome = Outcome(item.path, "failed", reason="the caption is empty")
                    elif not force and (found := person_elsewhere(item, mode, naming)):
                        outcome = found
                    elif mode == "sidecar":
                        outcome = write_sidecar(item, naming=naming, force=force, dry_run=dry_run)
                    else:
                        outcome = write_embedded(
                            item, force=force, dry_run=dry_run, session=session
                        )
                except MetadataError as e:
                    outcome = Outcome(item.path, "failed", reason=e.reason)
                except OSError as e:
                    outcome = Outcome(item.path, "failed", reason=_os_reason(e))
                summary.outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
        except KeyboardInterrupt:
            # Every photo is written whole or not at all; what was done is reported.
            summary.interrupted = True
    return summary


def sidecar_for(photo: Path, naming: str) -> Path:
    """darktable/digiKam: photo.jpg.xmp; Lightroom: photo.xmp."""
    photo = Path(photo)
    if naming == "lightroom":
        return photo.with_suffix(".xmp")
    return photo.with_name(photo.name + ".xmp")


def write_sidecar(item: Item, *, naming: str, force: bool, dry_run: bool) -> Outcome:
    photo = Path(item.path)
    sidecar = sidecar_for(photo, naming)
    if not photo.is_file():
        return Outcome(item.path, "failed", str(sidecar), "the photo is not there any more")
    if naming == "lightroom":
        twin = _stem_twin(photo)
        if twin is not None:
            return Outcome(
                item.path,
                "failed",
                str(sidecar),
                f"{sidecar.name} would also be the sidecar of {twin.name}; use --naming darktable",
            )
    outside = link_outside(sidecar, item.root or photo.parent)
    if outside is not None:  # not even read: nothing outside the library is touched
        reason = f"the sidecar is a link outside the library (to {outside}); it is left alone"
        return Outcome(item.path, "failed", str(sidecar), reason)
    existing = None
    if sidecar.exists():
        if not sidecar.is_file():
            return Outcome(item.path, "failed", str(sidecar), "the sidecar is not a regular file")
        with open(sidecar, "rb") as f:
            existing = f.read(xmp.MAX_PACKET_BYTES + 1)
    try:
        merged = xmp.merge_caption(existing, item.caption, sidecar.name, force)
    except xmp.PersonDescription as e:
        return Outcome(item.path, "kept", str(sidecar), _kept_reason(e.description))
    except MetadataError as e:
        return Outcome(
            item.path, "failed", str(sidecar), f"{e.reason}; the sidecar is left as it is"
        )
    if merged is None:
        return Outcome(item.path, "unchanged", str(sidecar))
    # A linked sidecar is replaced where it lives (its target's folder); the link stays.
    real_folder = Path(os.path.realpath(sidecar)).parent
    problem = unwritable(sidecar if existing is not None else None, real_folder)
    if problem:
        return Outcome(item.path, "failed", str(sidecar), problem)
    if not dry_run:
        write_atomic(sidecar, merged)
    return Outcome(item.path, "written", str(sidecar))


def write_embedded(
    item: Item, *, force: bool, dry_run: bool, session: exiftool.Session | None = None
) -> Outcome:
    photo = Path(item.path)
    ext = photo.suffix.lower().lstrip(".")
    fields = EMBED_FIELDS.get(ext)
    if fields is None:
        kind = ext.upper() or "a file without an extension"
        return Outcome(
            item.path, "failed", str(photo), f"{kind} can't hold a description; use sidecars"
        )
    if not photo.is_file():
        return Outcome(item.path, "failed", str(photo), "the photo is not there any more")
    # A symlinked photo is written where it really is; the link stays a link.
    real = Path(os.path.realpath(photo))
    problem = unwritable(real, real.parent)
    if problem:
        return Outcome(item.path, "failed", str(photo), problem)
    links = real.stat().st_nlink
    if links > 1:
        # Replacing the file by rename would leave the other names with the old bytes.
        return Outcome(item.path, "failed", str(photo), f"it has {links} hard links; use sidecars")
    current = exiftool.read_metadata(photo, session)
    # As the XMP gets it: no control characters (a caption is text, not terminal commands).
    caption = replace(item.caption, text=xmp.clean_text(item.caption.text))
    try:
        packet = xmp.merge_caption(current["xmp"], caption, f"{photo.name} (XMP)", force)
    except xmp.PersonDescription as e:
        return Outcome(item.path, "kept", str(photo), _kept_reason(e.description))
    except MetadataError as e:
        return Outcome(item.path, "failed", str(photo), e.reason)
    iptc_text = _iptc_caption(caption.text)
    person = _legacy_description(current, caption.text, fields, photo.name)
    if person is not None and not force:
        return Outcome(item.path, "kept", str(photo), _kept_reason(person[1]))
    if (
        packet is None
        and ("iptc" not in fields or current["iptc"] == iptc_text)
        and current["exif"] == caption.text
    ):
        return Outcome(item.path, "unchanged", str(photo))
    if dry_run:
        return Outcome(item.path, "written", str(photo))
    return _embed(photo, real, fields, packet is not None, caption, iptc_text, session)


def person_elsewhere(item: Item, mode: str, naming: str) -> Outcome | None:
    """A "kept" outcome when a person's description is in a place of this photo that the run
    does not write: its embedded XMP, IPTC or EXIF for a sidecar run, any of its sidecars
    (either naming) for --embed, the other sidecar name for a sidecar run. A photo tool shows
    one of them, so a caption written beside or over theirs would hide or replace their words.
    The place the run writes is judged by its own writer; a place that can't be read fails the
    photo (it may hold their words); a sidecar linking outside the library is never read."""
    photo = Path(item.path)
    target = sidecar_for(photo, naming) if mode == "sidecar" else photo
    if not photo.is_file():
        return None  # the writer reports it
    try:
        for sidecar in sidecar_paths(photo):
            if mode == "sidecar" and _same_file(sidecar, target):
                continue
            if link_outside(sidecar, item.root or photo.parent) is not None:
                continue
            with open(sidecar, "rb") as f:
                fields = xmp.read_fields(xmp.parse(f.read(xmp.MAX_PACKET_BYTES + 1), sidecar.name))
            if fields.description and not fields.written_by_imgcap:
                reason = _kept_reason(fields.description, f"its sidecar {sidecar.name}")
                return Outcome(item.path, "kept", str(target), reason)
        embeds = EMBED_FIELDS.get(photo.suffix.lower().lstrip("."))
        if mode == "sidecar" and embeds is not None:
            current = _embedded_fields(photo)
            person = _legacy_description(current, item.caption.text, embeds, photo.name)
            if person is None and current["xmp"]:
                fields = xmp.read_fields(xmp.parse(current["xmp"], f"{photo.name} (XMP)"))
                if fields.description and not fields.written_by_imgcap:
                    person = ("xmp", fields.description)
            if person is not None:
                where = f"{photo.name} (embedded {person[0].upper()})"
                return Outcome(item.path, "kept", str(target), _kept_reason(person[1], where))
    except MetadataError as e:
        reason = f"{e}; nothing written (it may hold a person's description)"
        return Outcome(item.path, "failed", str(target), reason)
    except OSError as e:
        return Outcome(item.path, "failed", str(target), _os_reason(e))
    return None


def _legacy_description(
    current: dict, text: str, fields: tuple[str, ...], origin: str
) -> tuple[str, str] | None:
    """("iptc" | "exif", the description) when the photo's IPTC Caption-Abstract or EXIF
    ImageDescription holds words imgcap did not write: neither `text` nor the caption the
    photo's XMP marks as imgcap's (IPTC's 2000-byte cut of either counts), nor what a camera
    puts there by itself. `current`: exiftool.read_metadata's fields (or _embedded_fields')."""
    mine = {text, _iptc_caption(text)}
    if current["xmp"]:
        marked = xmp.read_fields(xmp.parse(current["xmp"], origin)).imgcap.get("caption")
        if marked:
            mine |= {marked, _iptc_caption(marked)}
    for key in ("iptc", "exif"):
        value = current[key]
        if key not in fields or value is None or value in mine:
            continue
        if key == "exif" and _CAMERA_PLACEHOLDERS.match(value.strip()):
            continue
        return key, value
    return None


def _embedded_fields(photo: Path) -> dict[str, object]:
    """The fields exiftool.read_metadata gives (XMP packet, IPTC Caption-Abstract, EXIF
    ImageDescription), read by Pillow from the headers: a sidecar run needs no exiftool and
    decodes no pixels."""
    from PIL import Image, IptcImagePlugin

    if photo.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
    try:
        with Image.open(photo) as im:
            packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
            iptc = IptcImagePlugin.getiptcinfo(im) if im.format in ("JPEG", "TIFF", "MPO") else {}
            exif = im.getexif().get(0x010E)  # ImageDescription
    except Exception as e:  # noqa: BLE001 - any reader error: can't tell what the photo says
        raise MetadataError(photo.name, f"its embedded metadata can't be read ({e})") from None
    caption = (iptc or {}).get((2, 120))
    if isinstance(caption, list):
        caption = caption[0] if caption else None
    if isinstance(caption, bytes):
        utf8 = (iptc or {}).get((1, 90)) == b"\x1b%G"
        try:
            caption = caption.decode("utf-8")
        except UnicodeDecodeError:
            caption = caption.decode("utf-8" if utf8 else "latin-1", "replace")
    if isinstance(exif, bytes):
        exif = exif.decode("utf-8", "replace")
    elif isinstance(exif, str):
        try:  # Pillow reads EXIF text as Latin-1; exiftool and phones write UTF-8
            exif = exif.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    if isinstance(packet, str):
        packet = packet.encode("utf-8", "surrogatepass")
    return {
        "xmp": bytes(packet) if packet else None,
        "iptc": (caption or "").rstrip("\x00") or None,
        "exif": (exif or "").rstrip("\x00") or None,
    }


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------------------------- helpers
def _embed(
    photo: Path,
    real: Path,
    fields: tuple[str, ...],
    xmp_changes: bool,
    caption: xmp.Caption,
    iptc: str,
    session: exiftool.Session | None,
) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix=".imgcap-", dir=real.parent))
    try:
        copy = folder / real.name
        shutil.copyfile(real, copy)
        text = caption.text
        args = []
        if xmp_changes:
            # Property by property, not the packet whole: exiftool then keeps everything else,
            # including a JPEG's Extended XMP (over 64 KB) that `-XMP` reads never show.
            args += [
                f"-XMP-dc:Description-x-default={text}",  # other languages stay
                f"-XMP-imgcap:Caption={text}",
                f"-XMP-imgcap:Model={caption.model}",
                f"-XMP-imgcap:Source={caption.source}",
                f"-XMP-imgcap:Date={caption.date}",
            ]
        if "iptc" in fields:
            # 1:90 says the IPTC strings are UTF-8; without it readers assume Latin-1.
            args += ["-IPTC:CodedCharacterSet=UTF8", f"-IPTC:Caption-Abstract={iptc}"]
        args.append(f"-EXIF:ImageDescription={text}")
        exiftool.write_in_place(copy, args, session)
        before, after = _pixels(real), _pixels(copy)
        if before != after:
            raise MetadataError(
                str(photo), "the rewritten file decodes differently; the original is kept"
            )
        replace_with(copy, real)  # the photo's mode and owner kept, fsynced
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    from indexer.media.walk import content_hash

    st = photo.stat()
    return Outcome(
        str(photo),
        "written",
        str(photo),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        content_hash=content_hash(photo),
    )


def _pixels(path: Path) -> str:
    """A digest of every frame's decoded pixels (mode, size, bytes): metadata edits must not
    change it."""
    from PIL import Image

    if path.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
    digest = hashlib.blake2b(digest_size=16)
    try:
        with Image.open(path) as im:
            for frame in range(getattr(im, "n_frames", 1)):
                im.seek(frame)
                digest.update(f"{im.mode} {im.size}".encode())
                digest.update(im.tobytes())
    except Exception as e:  # noqa: BLE001 - any decoder error means: don't replace the photo
        raise MetadataError(str(path), f"could not decode it to check the pixels ({e})") from None
    return digest.hexdigest()


def _stem_twin(photo: Path) -> Path | None:
    """Another photo in the folder with the same name before the extension (IMG_1.jpg and
    IMG_1.png would share IMG_1.xmp)."""
    from indexer.config import DEFAULT_EXTENSIONS

    for ext in DEFAULT_EXTENSIONS:
        for candidate in (photo.with_suffix("." + ext), photo.with_suffix("." + ext.upper())):
            if candidate.name != photo.name and candidate.is_file():
                if not os.path.samefile(candidate, photo):  # one file on a case-blind disk
                    return candidate
    return None


def _iptc_caption(text: str) -> str:
    """The caption cut (at a character boundary) to IPTC's 2000 bytes."""
    data = text.encode("utf-8")
    if len(data) <= IPTC_CAPTION_BYTES:
        return text
    return data[:IPTC_CAPTION_BYTES].decode("utf-8", "ignore")


def _kept_reason(description: str, where: str = "") -> str:
    shown = xmp.clean_text(description)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    head = f"{where} has" if where else "has"
    return f"{head} a description imgcap did not write ({shown!r}); --force replaces it"


def _os_reason(e: OSError) -> str:
    name = Path(e.filename).name if e.filename else ""
    return f"{name + ': ' if name else ''}{e.strerror or e}"


# ------------------------------------------------------------------------------ the run
def run_write_back(
    db_path: Path,
    paths: list[str],
    *,
    model: str | None = None,
    configured_model: str | None = None,
    mode: str = "sidecar",
    naming: str = "darktable",
    force: bool = False,
    dry_run: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> WriteBackSummary:
    """`imgcap write-back`: the caption of every indexed photo under `paths` (all of them when
    empty) for `model` (default: `configured_model` if it has results, else the model with the
    most) written to sidecars or into the photos. A person's edit (caption-set, the gallery)
    wins over the generated caption. After an embedded write the store records the photo's new
    size/mtime/hash, so the next `imgcap index` re-captions nothing."""
    from indexer.errors import StoreError
    from indexer.store import writeback as rows
    from indexer.store.database import Store
    from indexer.store.lock import writer_lock
    from indexer.store.queries import models_with_results
    from indexer.store.roots import list_roots, under

    db_path = Path(db_path)
    if not db_path.exists():
        raise StoreError(f"no index at {db_path}: run `imgcap index` first")
    top = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    writes = mode == "embed" and not dry_run
    with contextlib.ExitStack() as stack:
        if writes:  # the file rows change: no index run may interleave
            stack.enter_context(writer_lock(db_path))
        store = stack.enter_context(Store.open(db_path, create=writes))
        conn = store.db.conn
        have = models_with_results(conn)
        model = stored_name(model) if model is not None else None
        configured_model = stored_name(configured_model) if configured_model else None
        if model is not None and model not in have:
            shown = ", ".join(have) or "none"
            raise UsageError(f"no captions by model {model!r} in {db_path} (models: {shown})")
        name = model or (configured_model if configured_model in have else None)
        name = name or (have[0] if have else None)
        summary = WriteBackSummary(mode, naming, dry_run)
        if name is None:
            return summary
        empty = [p for p in top if not rows.indexed_paths(conn, [p])]
        todo = rows.captions_to_write(conn, name, top) if not top or len(empty) < len(top) else []
        known = {row["path"]: row for row in todo}
        early = [
            Outcome(p, "failed", reason="not in the index (run imgcap index on it first)")
            for p in empty
        ]
        roots = [r.path for r in list_roots(conn)[0]]
        items = []
        for row in todo:
            stale = _outside_library(row["path"], roots, mode, naming) or _stale(row)
            if stale:
                early.append(Outcome(row["path"], "failed", reason=stale))
                continue
            caption = xmp.Caption(row["caption"], name, row["source"], row["date"])
            root = next((r for r in roots if under(row["path"], r)), None)  # roots are disjoint
            items.append(Item(row["path"], caption, root))

        def record(outcome: Outcome) -> None:
            if writes and outcome.status == "written" and outcome.content_hash:
                row = known[outcome.path]
                rows.record_rewritten(
                    store,
                    outcome.path,
                    row["content_hash"],
                    outcome.size,
                    outcome.mtime_ns,
                    outcome.content_hash,
                )
            if on_outcome is not None:
                on_outcome(outcome)

        if on_start is not None:
            on_start(len(early) + len(items))  # for a progress bar
        for outcome in early:
            summary.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        done = write_back(
            items, mode=mode, naming=naming, force=force, dry_run=dry_run, on_outcome=record
        )
        summary.outcomes.extend(done.outcomes)
        summary.interrupted = done.interrupted
        summary.model = name
    return summary


def _outside_library(path: str, roots: list[str], mode: str, naming: str) -> str | None:
    """Why the file a database row names must not be written (checked before anything is read):
    the photo is outside every index root, or what would be written (the photo itself for
    --embed, the sidecar's folder) leads outside through a symlink. A row that came by a hostile
    merge or a hand edit can't make write-back touch a file outside the library."""
    from indexer.store.roots import outside_roots

    if mode == "embed":
        problem = outside_roots(path, roots)
    else:  # the sidecar itself, if a link, is write_sidecar's to judge (link_outside)
        problem = outside_roots(str(sidecar_for(Path(path), naming)), roots, follow_last=False)
    return f"{problem}; nothing was written" if problem else None


def _stale(row: dict) -> str | None:
    """Why a photo's stored caption may not describe the file any more (it changed or went
    since it was indexed), or None."""
    try:
        st = os.stat(row["path"])
    except FileNotFoundError:
        return "the photo is not there any more"
    except OSError as e:
        return _os_reason(e)
    if (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"]):
        return "changed since it was indexed (run imgcap index first)"
    return None

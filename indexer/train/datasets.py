"""Captioned image datasets on disk: the common formats read into one list of Examples.

Formats (`load_dataset` detects them):
- coco:     COCO captions JSON: {"images": [{id, file_name}], "annotations": [{image_id, caption}]}
            with an image folder (default: next to the JSON, its images/ folder, or ../train2014
            for annotations/captions_train2014.json).
- karpathy: Karpathy-split JSON (dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json):
            {"images": [{filename, filepath?, split, sentences: [{raw}], cocoid?/imgid}]}.
- csv:      `path,caption` (header optional; optional `split` and `image_id` columns); several
            rows per image are grouped; paths relative to the CSV file.
- folder:   photos with sidecar text files (photo.jpg + photo.txt, one caption per line); a
            top-level train/, val/ or test/ subfolder gives the split.

Bad rows (missing fields, empty captions, images that are not there) are collected as Problems
with file, row and reason and skipped; only an unreadable or unrecognisable file is fatal.
Captions are normalised for training: whitespace collapsed, ending with "." (ClipCap's stop token).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from indexer.atomic_file import atomic_file, write_atomic
from indexer.config import DEFAULT_EXTENSIONS
from indexer.errors import UsageError

FORMATS = ("coco", "karpathy", "csv", "folder")
SPLITS = ("train", "val", "test", "restval")


@dataclass(frozen=True)
class Example:
    image_path: Path
    captions: tuple[str, ...]
    image_id: str
    split: str = ""  # train | val | test | restval (Karpathy); "" when the format does not say


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None  # 1-based line (CSV, sidecar) or list index (JSON); None: the whole file
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.row}: {self.reason}" if self.row else f"{self.file}: {self.reason}"
        )


@dataclass(frozen=True)
class Dataset:
    examples: list[Example]
    problems: list[Problem] = field(default_factory=list)
    format: str = ""

    def split(self, name: str) -> list[Example]:
        """Examples of one split; a format without splits ("") counts as every split."""
        return [e for e in self.examples if e.split in (name, "")]

    @property
    def n_captions(self) -> int:
        return sum(len(e.captions) for e in self.examples)


def normalise_caption(text: str) -> str:
    """Collapse whitespace and end with exactly one "." (the stop token ClipCap decodes to).

    Trailing punctuation (".", "!", "?", ",", ";", ":") is replaced by the period: training on
    "a cat?" would teach the model to end without its stop token. Returns "" for empty captions.
    """
    text = " ".join(str(text).split())
    text = re.sub(r"[\s.,;:!?]+$", "", text)
    return f"{text}." if text else ""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".json":
        data = _load_json(p)
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return "coco"
        images = data.get("images") if isinstance(data, dict) else None
        if isinstance(images, list) and (not images or "sentences" in images[0]):
            return "karpathy"
    raise UsageError(
        f"{p}: not a dataset format imgcap knows (COCO captions JSON, Karpathy split JSON, "
        "CSV of path,caption, or a folder of photos with .txt captions)"
    )


def load_dataset(
    path: str | Path, fmt: str = "auto", images_dir: str | Path | None = None
) -> Dataset:
    """Read a dataset in any supported format (fmt="auto" detects it)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file or folder")
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt == "coco":
        return read_coco(p, images_dir)
    if fmt == "karpathy":
        return read_karpathy(p, images_dir)
    if fmt == "csv":
        return read_csv(p)
    if fmt == "folder":
        return read_folder(p)
    raise UsageError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _load_json(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: cannot read JSON ({e})") from None


def _image_roots(json_path: Path, images_dir: str | Path | None) -> list[Path]:
    """Where a JSON's relative image names may live, most specific first."""
    if images_dir is not None:
        return [Path(images_dir)]
    here = json_path.parent
    roots = [here / "images", here]
    # COCO layout: annotations/captions_val2014.json next to val2014/.
    m = re.match(r"captions_(\w+)\.json$", json_path.name)
    if m:
        roots += [here.parent / m.group(1), here / m.group(1)]
    return roots


def _find_image(roots: list[Path], *relative: str) -> Path | None:
    for root in roots:
        candidate = root.joinpath(*relative)
        if candidate.is_file():
            return candidate
    return None


class _Collector:
    """Groups captions by image id in first-seen order and records problems."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.by_id: dict[str, tuple[Path, list[str], str]] = {}
        self.problems: list[Problem] = []

    def problem(self, file: Path | str, row: int | None, reason: str) -> None:
        self.problems.append(Problem(str(file), row, reason))

    def add(self, image_id: str, path: Path, caption: str, split: str) -> None:
        entry = self.by_id.setdefault(image_id, (path, [], split))
        entry[1].append(caption)

    def dataset(self) -> Dataset:
        examples = [
            Example(path, tuple(caps), image_id, split)
            for image_id, (path, caps, split) in self.by_id.items()
            if caps
        ]
        return Dataset(examples, self.problems, self.fmt)


def read_coco(json_path: str | Path, images_dir: str | Path | None = None) -> Dataset:
    path = Path(json_path)
    data = _load_json(path)
    out = _Collector("coco")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UsageError(f"{path}: COCO captions JSON needs an 'images' list")
    roots = _image_roots(path, images_dir)
    images: dict[str, tuple[Path, str]] = {}
    reported: set[str] = set()  # image ids whose images entry was already reported as bad
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not img.get("file_name"):
            out.problem(path, i, "images entry without id or file_name")
            continue
        found = _find_image(roots, img["file_name"])
        if found is None:
            out.problem(path, i, f"image file not found: {img['file_name']}")
            reported.add(str(img["id"]))
            continue
        images[str(img["id"])] = (found, str(img.get("split", "")))
    for i, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, dict) or "image_id" not in ann:
            out.problem(path, i, "annotation without image_id")
            continue
        image_id = str(ann["image_id"])
        caption = normalise_caption(ann.get("caption") or "")
        if image_id in reported:
            continue  # its image is missing: said once above, not once per caption
        if image_id not in images:
            out.problem(path, i, f"annotation for unknown image id {image_id}")
        elif not caption:
            out.problem(path, i, f"empty caption for image {image_id}")
        else:
            found, split = images[image_id]
            out.add(image_id, found, caption, split)
    for image_id in [k for k in images if k not in out.by_id]:
        out.problem(path, None, f"image {image_id} has no captions")
    return out.dataset()


def read_karpathy(json_path: str | Path, images_dir: str | Path | None = None) -> Dataset:
    path = Path(json_path)
    data = _load_json(path)
    out = _Collector("karpathy")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UsageError(f"{path}: Karpathy split JSON needs an 'images' list")
    roots = _image_roots(path, images_dir)
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not img.get("filename"):
            out.problem(path, i, "images entry without filename")
            continue
        # dataset_coco.json has filepath ("train2014"); the Flickr files do not.
        rel = [img["filepath"], img["filename"]] if img.get("filepath") else [img["filename"]]
        found = _find_image(roots, *rel) or _find_image(roots, img["filename"])
        if found is None:
            out.problem(path, i, f"image file not found: {'/'.join(rel)}")
            continue
        image_id = str(img.get("cocoid", img.get("imgid", img["filename"])))
        split = str(img.get("split", ""))
        captions = [
            normalise_caption(s.get("raw") or " ".join(s.get("tokens") or []))
            for s in img.get("sentences") or []
            if isinstance(s, dict)
        ]
        captions = [c for c in captions if c]
        if not captions:
            out.problem(path, i, f"no captions for {img['filename']}")
            continue
        for caption in captions:
            out.add(image_id, found, caption, split)
    return out.dataset()


_PATH_COLUMNS = ("path", "image", "file", "filename", "file_name", "image_path", "filepath")
_CAPTION_COLUMNS = ("caption", "text", "sentence", "description")


def read_csv(csv_path: str | Path) -> Dataset:
    path = Path(csv_path)
    out = _Collector("csv")
    try:
        # Bytes, then decode: read_text() would turn a CR inside a quoted cell into LF.
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheets write a BOM
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read CSV ({e})") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # csv.reader over the whole text, not str.splitlines(): a quoted cell may hold line breaks
    # (our own export writes them), and splitlines() would also cut at U+2028, \x1c, \x85 ...
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, lines = [], []  # each record, and the line it starts on (1-based)
    start_line = 1
    for row in reader:
        rows.append(row)
        lines.append(start_line)
        start_line = reader.line_num + 1
    if not rows:
        return out.dataset()
    header = [h.strip().lower() for h in rows[0]]
    if any(h in _PATH_COLUMNS for h in header) and any(h in _CAPTION_COLUMNS for h in header):
        col = {
            "path": next(header.index(h) for h in _PATH_COLUMNS if h in header),
            "caption": next(header.index(h) for h in _CAPTION_COLUMNS if h in header),
        }
        for optional in ("split", "image_id"):
            if optional in header:
                col[optional] = header.index(optional)
        start = 1
    else:
        col, start = {"path": 0, "caption": 1}, 0  # no header: path,caption
    width = max(col.values()) + 1
    for line, row in zip(lines[start:], rows[start:], strict=True):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < width:
            out.problem(path, line, f"expected at least {width} columns, got {len(row)}")
            continue
        rel = row[col["path"]].strip()
        caption = normalise_caption(row[col["caption"]])
        if not rel:
            out.problem(path, line, "empty image path")
            continue
        if not caption:
            out.problem(path, line, f"empty caption for {rel}")
            continue
        image = path.parent / rel
        if not image.is_file():
            out.problem(path, line, f"image file not found: {rel}")
            continue
        split = row[col["split"]].strip() if "split" in col else ""
        image_id = row[col["image_id"]].strip() if "image_id" in col else ""
        out.add(image_id or rel, image, caption, split)
    return out.dataset()


def read_folder(folder: str | Path, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> Dataset:
    root = Path(folder)
    out = _Collector("folder")
    exts = {e.lower().lstrip(".") for e in extensions}
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower().lstrip(".") in exts]
    sidecars_used: set[Path] = set()
    for image in images:
        # photo.txt, or photo.jpg.txt (what some export tools write).
        sidecar = next(
            (
                s
                for s in (image.with_suffix(".txt"), image.with_name(image.name + ".txt"))
                if s.is_file()
            ),
            None,
        )
        rel = image.relative_to(root)
        if sidecar is None:
            out.problem(image, None, "no caption file (expected a .txt with the same name)")
            continue
        sidecars_used.add(sidecar)
        try:
            lines = sidecar.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            out.problem(sidecar, None, f"cannot read captions ({e})")
            continue
        captions = [normalise_caption(line) for line in lines]
        captions = [c for c in captions if c]
        if not captions:
            out.problem(sidecar, None, "caption file is empty")
            continue
        top = rel.parts[0].lower() if len(rel.parts) > 1 else ""
        split = top if top in SPLITS else ""
        for caption in captions:
            out.add(rel.as_posix(), image, caption, split)
    for orphan in (p for p in files if p.suffix.lower() == ".txt" and p not in sidecars_used):
        out.problem(orphan, None, "caption file without an image")
    return out.dataset()


# ---------------------------------------------------------------------------------------------
# Writing (used by the synthetic world; the inverse of the readers)
# ---------------------------------------------------------------------------------------------


def write_examples(examples: list[Example], out_dir: str | Path, fmt: str) -> Path:
    """Write the annotation file(s) for examples whose images already sit under out_dir.

    Returns the path `load_dataset` should be given (the JSON/CSV file, or the folder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def rel(p: Path) -> str:
        return Path(p).resolve().relative_to(out.resolve()).as_posix()

    if fmt == "coco":
        images, annotations = [], []
        for n, ex in enumerate(examples):
            images.append({"id": n, "file_name": rel(ex.image_path), "split": ex.split})
            for caption in ex.captions:
                annotations.append({"id": len(annotations), "image_id": n, "caption": caption})
        target = out / "captions.json"
        doc = {"images": images, "annotations": annotations}
        write_atomic(target, json.dumps(doc, indent=1).encode("utf-8"))
    elif fmt == "karpathy":
        images = [
            {
                "imgid": n,
                "filename": rel(ex.image_path),
                "split": ex.split,
                "sentences": [{"raw": c, "tokens": c.rstrip(".").split()} for c in ex.captions],
            }
            for n, ex in enumerate(examples)
        ]
        target = out / "dataset.json"
        doc = {"dataset": "synthetic", "images": images}
        write_atomic(target, json.dumps(doc, indent=1).encode("utf-8"))
    elif fmt == "csv":
        target = out / "captions.csv"
        with atomic_file(target, encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "caption", "split"])
            for ex in examples:
                for caption in ex.captions:
                    writer.writerow([rel(ex.image_path), caption, ex.split])
    elif fmt == "folder":
        for ex in examples:
            text = "\n".join(ex.captions) + "\n"
            write_atomic(Path(ex.image_path).with_suffix(".txt"), text.encode("utf-8"))
        target = out
    else:
        raise UsageError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return target

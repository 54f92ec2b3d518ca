"""Scan and change detection: walk the roots and compare every file with the store, opening
nothing. Same path, size and mtime_ns and a result for this model → unchanged; the rest is the
run's to-do list. Also the dry run, which stops after this comparison.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.config import VIDEO_EXTENSIONS, Settings
from indexer.errors import BadImageError, ImgcapError
from indexer.media.decode import check_header
from indexer.media.video import VIDEO_NEEDS_EXTRA
from indexer.media.walk import FileEntry, WalkProblem, content_hash, walk
from indexer.run.summary import IndexSummary, Progress
from indexer.store.database import Store
from indexer.store.records import FileState
from indexer.store.roots import (
    folders_of,
    root_files,
    root_ids,
    shared_content,
    under,
    under_any,
)


@dataclass(slots=True)
class Item:
    """One file on its way through the pipeline."""

    entry: FileEntry
    path: str
    known: FileState | None  # the stored row for this path, if any
    content_hash: str | None = None
    pixel_hash: str | None = None  # hashed with the content (indexer/media/pixel_hash.py)
    kind: str = "new"  # new | changed | model_added | moved | unchanged (see classify)
    need_model: bool = True  # False: results exist, only the metadata must be decoded


@dataclass
class Plan:
    """The outcome of the comparison: what a run must do, and what it may drop at the end."""

    entries: list[FileEntry]
    problems: list[WalkProblem]  # unreadable folders and files: recorded as failures
    known: dict[str, FileState]  # every indexed path in the store
    failed_before: dict[str, tuple]  # path -> (size, mtime_ns, reason) from the failures table
    seen: set[str]  # paths the walk found
    blocked: list[str]  # folders whose indexed rows are kept (unreadable, or looks unmounted)
    gone: list[str]  # indexed paths under the roots that the walk did not find
    todo: list[Item] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)  # not-image files: extension -> count
    unchanged: int = 0
    standing: Counter = field(default_factory=Counter)  # reason -> failures not retried
    warnings: list[str] = field(default_factory=list)


def model_name(settings: Settings, model: Any) -> str:
    """The name results are stored under, without loading weights when the registry can tell."""
    if model is not None:
        return model.name
    from indexer.models import loading
    from indexer.models.model_dir import is_model_dir, read_spec
    from indexer.models.registry import REGISTRY

    name = settings.model
    if is_model_dir(name):
        return read_spec(Path(name).expanduser())["name"]
    if name in REGISTRY:
        return name  # a registry model's spec carries its registry name
    return loading.load_model(name, settings).name  # raises the error that explains the name


def walk_extensions(settings: Settings) -> tuple[str, ...]:
    """The extensions an index run takes: the settings' images, plus videos when the `video`
    extra is installed (without it they are counted as skipped, with the reason)."""
    from indexer.media.video import extra_installed

    if not extra_installed():
        return settings.extensions
    return settings.extensions + tuple(e for e in VIDEO_EXTENSIONS if e not in settings.extensions)


def scan(
    top: list[str],
    settings: Settings,
    progress: Progress | None = None,
    unsupported: Counter | None = None,
):
    """Walk the roots: (entries, problems); files that are not images counted in `unsupported`
    by extension."""
    entries: list[FileEntry] = []
    problems: list[WalkProblem] = []
    for found in walk(
        top,
        extensions=walk_extensions(settings),
        include_hidden=settings.include_hidden,
        exclude=settings.excludes,
        skipped=unsupported,
    ):
        if isinstance(found, WalkProblem):
            problems.append(found)
        else:
            entries.append(found)
            if progress is not None:
                progress.found += 1
    return entries, problems


def plan(
    top: list[str],
    settings: Settings,
    known: dict[str, FileState],
    failed_before: dict[str, tuple],
    have: set[str],
    retry_failed: bool,
    progress: Progress | None = None,
) -> Plan:
    """Walk `top` and compare with the store's `known` files and `failed_before` failures, where
    `have` holds the content hashes that already have this model's results. The real run and
    the dry run both start here, so they count alike."""
    unsupported: Counter = Counter()
    entries, problems = scan(top, settings, progress, unsupported)
    p = Plan(entries, problems, known, failed_before, {str(e.path) for e in entries}, [], [])
    # XMP sidecars belong to photos (their tags are read, `imgcap write-back` writes them): not
    # files the index failed to support.
    unsupported.pop(".xmp", None)
    p.unsupported = unsupported
    videos = sum(unsupported.get("." + ext, 0) for ext in VIDEO_EXTENSIONS)
    if videos:  # only counted when the video extra is missing (else they are indexed)
        p.warnings.append(
            f"{videos} video{'s' if videos != 1 else ''} skipped: {VIDEO_NEEDS_EXTRA}"
        )
    p.blocked = [pr.path for pr in problems]  # unreadable folders: keep what is under them
    # A root folder that is now completely empty while photos under it are indexed is far
    # more likely an unmounted drive's mount point than a deliberate delete: keep its rows.
    for root in top:
        if os.path.isdir(root) and not os.listdir(root):
            kept = sum(1 for path in known if under(path, root))
            if kept:
                p.blocked.append(root)
                p.warnings.append(
                    f"{root} is empty but {kept} indexed photos were under it (unmounted "
                    "drive?): kept them. If they were deleted on purpose,"
                    f" `imgcap roots remove {shlex.quote(root)}` drops them (a folder inside"
                    " a root: index that root)"
                )
    # A folder with nothing to index and nothing indexed under it is almost always the wrong
    # folder; an empty result that exits 0 silently would look like success. Still exit 0
    # (nothing failed, and scripts index folders that may be empty today), but say so. Where
    # photos were indexed, the summary's "removed" already tells what happened.
    for root in top:
        if os.path.isdir(root) and root not in p.blocked:
            if not any(under(str(e.path), root) for e in entries) and not any(
                under(path, root) for path in known
            ):
                kinds = ", ".join("." + x for x in settings.extensions[:6])
                more = ", ..." if len(settings.extensions) > 6 else ""
                p.warnings.append(f"no images found in {root} (looked for {kinds}{more})")
    p.gone = [
        path
        for path in known
        if under_any(path, top) and path not in p.seen and not under_any(path, p.blocked)
    ]
    cured = _cured_reasons()
    for e in entries:
        path = str(e.path)
        k = known.get(path)
        if k and (k.size, k.mtime_ns) == (e.size, e.mtime_ns):
            if k.content_hash in have:
                p.unchanged += 1
                continue
            # Same bytes, but this model has no result yet (a model switch): no hashing.
            p.todo.append(Item(e, path, k, content_hash=k.content_hash, kind="model_added"))
        elif (
            path in failed_before
            and failed_before[path][:2] == (e.size, e.mtime_ns)
            and not retry_failed
            and failed_before[path][2] not in cured
        ):
            p.standing[failed_before[path][2]] += 1
        else:
            p.todo.append(Item(e, path, k))
    return p


def _cured_reasons() -> frozenset[str]:
    """Failure reasons whose cause is gone, so those files are tried again without
    --retry-failed: RAW files refused for want of the `raw` extra, once it is installed."""
    from indexer.media.raw import RAW_NEEDS_EXTRA, extra_installed

    return frozenset({RAW_NEEDS_EXTRA}) if extra_installed() else frozenset()


def classify(item: Item, gone_hashes: Counter, have: set[str]) -> str:
    """What the summary counts a hashed file as. `gone_hashes`: content hashes of indexed paths
    that disappeared, each usable once (a second copy of a moved file is new, not moved)."""
    h = item.content_hash
    if item.known is None:
        if gone_hashes[h] > 0:
            gone_hashes[h] -= 1
            return "moved"
        return "new"
    if item.known.content_hash == h:
        # Same bytes (touched: new mtime): unchanged, or a model switch.
        return "unchanged" if h in have else "model_added"
    return "changed"


@dataclass(frozen=True, slots=True)
class RootMove:
    """An index root that is gone from this machine, and a folder given to `imgcap index`
    holding its photos: a folder moved without `imgcap roots move`."""

    old: str
    new: str
    photos: int  # indexed under OLD
    found: int  # of them at NEW: the same relative path, size and modification time
    confirmed: bool  # the content hashes of a sample of those found match the stored ones
    inside: str | None = None  # the other root NEW lies in (then OLD cannot move onto it)

    @property
    def complete(self) -> bool:
        return self.confirmed and self.found == self.photos


MOVE_PROBE = 50  # a missing root's first files looked for under a new folder before giving up
MOVE_SAMPLE = 3  # files hashed to confirm a move (the rest is matched by size and mtime)


def moved_roots(store: Store, folders: list[str]) -> list[RootMove]:
    """Roots whose folder no longer exists while `folders` (those given to `imgcap index` that
    neither lie in another root nor hold one; a root indexed at its new place before counts)
    hold their photos, matched the way change detection matches a file (relative path, size,
    mtime_ns: what `mv` keeps), a few confirmed by content hash. Only stats, a few reads."""
    roots = root_ids(store.db.conn)
    gone = [(p, i) for p, i in roots.items() if not os.path.exists(p)]
    fresh = [
        f
        for f in dict.fromkeys(folders)
        if os.path.isdir(f) and not any(r != f and (under(f, r) or under(r, f)) for r in roots)
    ]
    moves = []
    for old, root_id in gone if fresh else ():
        files = root_files(store.db.conn, root_id)
        rels = list(files)
        for new in fresh:
            found = [rel for rel in rels[:MOVE_PROBE] if _same(new, rel, files[rel])]
            if not found:
                continue
            found += [rel for rel in rels[MOVE_PROBE:] if _same(new, rel, files[rel])]
            sample = found[:MOVE_SAMPLE]
            confirmed = all(_hash_or_none(os.path.join(new, r)) == files[r][2] for r in sample)
            moves.append(RootMove(old, new, len(files), len(found), confirmed))
    return moves


def copied_roots(store: Store, folders: list[str], moves: list[RootMove]) -> list[RootMove]:
    """After a run: roots whose folder no longer exists while files under `folders` have the
    same content as some of theirs (copied with new modification times, or moved into a folder
    of another root), other than the `moves` already found; `found` counts by content."""
    seen = {(m.old, m.new) for m in moves}
    roots = root_ids(store.db.conn)
    out = []
    for old, root_id in roots.items():
        if os.path.exists(old):
            continue
        for new in dict.fromkeys(folders):
            if (old, new) in seen or not os.path.isdir(new):
                continue
            found, photos = shared_content(store.db.conn, root_id, new)
            if found:
                inside = next((r for r in roots if r != new and under(new, r)), None)
                out.append(RootMove(old, new, photos, found, True, inside))
    return out


def unambiguous(moves: list[RootMove]) -> list[RootMove]:
    """The moves safe to make without asking: OLD is all at NEW, and neither OLD nor NEW is in
    any other candidate move."""
    olds = Counter(m.old for m in moves)
    news = Counter(m.new for m in moves)
    return [m for m in moves if m.complete and olds[m.old] == 1 and news[m.new] == 1]


def moved_root_warnings(
    moves: list[RootMove], done: list[RootMove], dry_run: bool = False
) -> list[str]:
    """What the summary says about roots gone from here whose photos are in a folder given to
    this run: moved (`done`, repointed before the run), or the exact command to run."""
    quote = shlex.quote
    out = []
    for m in moves:
        move = f"`imgcap roots move {quote(m.old)} {quote(m.new)}`"
        remove = f"`imgcap roots remove {quote(m.old)}`"
        where = f"{m.old} is not here and {m.found} of its {m.photos} photos are in {m.new}"
        if m in done:
            out.append(
                f"{m.old} is gone and all {m.photos} of its photos are in {m.new}:"
                f" {'would move' if dry_run else 'moved'} the root there, as {move} does"
                " (nothing captioned again)"
            )
        elif m.confirmed and m.inside is not None:
            out.append(
                f"{where} (inside the root {m.inside}): if they moved there, run {remove} to"
                " drop what is left at the old place (the photos here keep every caption)"
            )
        elif m.confirmed:
            out.append(
                f"{where}: if it moved there, run {move} (photos not found there go at the next"
                f" `imgcap index {quote(m.new)}`); if it is gone for good, {remove} (your"
                " captions are kept)"
            )
    return out


def repointed(paths: dict[str, Any], moves: list[RootMove]) -> dict[str, Any]:
    """`paths` (keyed by path) as `imgcap roots move` would leave them after `moves`."""
    for m in moves:
        stem = m.old.rstrip(os.sep) + os.sep
        paths = {
            os.path.join(m.new, p[len(stem) :]) if p.startswith(stem) else p: v
            for p, v in paths.items()
        }
    return paths


def _same(folder: str, rel: str, known: tuple[int, int, str]) -> bool:
    try:
        st = os.stat(os.path.join(folder, rel))
    except (OSError, ValueError):
        return False
    return (st.st_size, st.st_mtime_ns) == known[:2]


def _hash_or_none(path: str) -> str | None:
    try:
        return content_hash(path)
    except OSError:
        return None


def dry_run(top: list[str], settings: Settings, retry_failed: bool) -> IndexSummary:
    """What a run would do, counted the way the run counts it. Nothing is written, no image is
    decoded and no model is loaded; the only files read are those the run would recognise by
    content hash: new files the size of a file that disappeared (a move?) and indexed files
    with a new mtime but the same size (touched?)."""
    known: dict[str, FileState] = {}
    failed_before: dict[str, tuple] = {}
    have: set[str] = set()
    moves: list[RootMove] = []
    done: list[RootMove] = []
    name = settings.model
    if settings.db_path.exists():
        with Store.open(settings.db_path, create=False) as store:
            known, failed_before = store.file_states(), store.failure_states()
            try:
                name = model_name(settings, None)
            except ImgcapError:
                name = settings.model  # model not available: count as if no results yet
            have = store.result_hashes(name)
            # As the run will: a root gone from here and found whole in a folder given moves.
            moves = moved_roots(store, folders_of(top))
            done = unambiguous(moves)
            known, failed_before = repointed(known, done), repointed(failed_before, done)
    found = plan(top, settings, known, failed_before, have, retry_failed)
    summary = IndexSummary(model=name, dry_run=True, warnings=found.warnings)
    summary.warnings[:0] = moved_root_warnings(moves, done, dry_run=True)
    summary.roots_moved = [{"from": m.old, "to": m.new, "photos": m.photos} for m in done]
    summary.unsupported = dict(found.unsupported.most_common())
    summary.unchanged = found.unchanged
    summary.failures_standing = sum(found.standing.values())
    reasons = Counter(pr.reason for pr in found.problems)
    summary.failed_this_run = len(found.problems)

    gone_hashes = Counter(known[p].content_hash for p in found.gone)
    gone_paths: dict[str, list[str]] = {}
    for p in found.gone:
        gone_paths.setdefault(known[p].content_hash, []).append(p)
    gone_sizes = {known[p].size for p in found.gone}
    moved_from: set[str] = set()
    max_pixels = settings.max_pixels_for(settings.workers or os.cpu_count() or 1)
    for item in found.todo:
        size = item.entry.size
        if item.content_hash is None and (
            (item.known is None and size in gone_sizes)
            or (item.known is not None and item.known.size == size)
        ):
            try:
                check_header(item.path, max_pixels)  # as the run does before hashing
                item.content_hash = content_hash(item.path)
            except BadImageError as e:
                reasons[e.reason] += 1
                summary.failed_this_run += 1
                continue
            except OSError as e:
                reasons[hash_error(e)] += 1
                summary.failed_this_run += 1
                continue
        if item.content_hash is None:  # different size: cannot be a move or a touch
            kind = "new" if item.known is None else "changed"
        else:
            kind = classify(item, gone_hashes, have)
        setattr(summary, kind, getattr(summary, kind) + 1)
        if kind == "moved":
            source = gone_paths[item.content_hash].pop(0)
            moved_from.add(source)
            summary.would_move.append({"from": source, "to": item.path})
        elif kind != "unchanged":
            summary.would_process.append(item.path)
    summary.updated = summary.changed + summary.model_added
    summary.failed = summary.failed_this_run + summary.failures_standing
    summary.failed_reasons = dict(reasons.most_common())
    summary.would_remove = sorted(p for p in found.gone if p not in moved_from)
    summary.removed = len(summary.would_remove)
    return summary


def hash_error(e: OSError) -> str:
    """The failure reason for a file that could not be read for hashing."""
    if isinstance(e, FileNotFoundError):
        return "vanished during the scan"
    return (e.strerror or str(e)).lower()

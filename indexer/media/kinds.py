"""Which files are videos: by their name, and by their first bytes."""

from __future__ import annotations

import os

from indexer.config import VIDEO_EXTENSIONS

_SUFFIXES = frozenset("." + ext for ext in VIDEO_EXTENSIONS)


def is_video(path: str | os.PathLike[str]) -> bool:
    """A video file, by its extension."""
    return os.path.splitext(os.fspath(path))[1].lower() in _SUFFIXES


def looks_like_video(head: bytes) -> bool:
    """Whether the first bytes are those of a container we index: ISO BMFF / QuickTime (mp4,
    mov, m4v), Matroska / WebM, or RIFF AVI. Lets the run refuse a misnamed file before it
    hashes gigabytes."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return True
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML (Matroska, WebM)
        return True
    return head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX")

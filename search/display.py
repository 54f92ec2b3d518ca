"""How values read to a person, the same in the terminal (search/cli/output.py) and in the
gallery's pages (search/web/pages.py): a signal's short name, a moment in a video, a file size."""

from __future__ import annotations

SIGNAL_LABEL = {"image": "img", "caption": "cap", "keyword": "kw"}


def timecode(seconds: float) -> str:
    """A moment in a video as players show it: 01:23, or 1:02:03 past an hour."""
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m:02d}:{s % 60:02d}"


def file_size(n: int | None) -> str:
    """1.5 MB; an empty string for an unknown size."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"

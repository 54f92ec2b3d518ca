"""How values read to a person, the same in the terminal (search/cli/output.py) and in the
gallery's pages (search/web/pages.py): a signal's short name, a moment in a video, a file size,
a file name that is not UTF-8."""

from __future__ import annotations

import re

SIGNAL_LABEL = {"image": "img", "caption": "cap", "keyword": "kw", "text": "txt"}


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


# The bytes of a file name that are not UTF-8, as Python's os functions give them (PEP 383).
_NAME_BYTES = re.compile("[\udc80-\udcff]")


def shown_path(path: str) -> str:
    """`path` as a person reads it: bytes of its name that are not UTF-8 written as `\\xe9`
    (`caf\\xe9.jpg`, as `os.fsencode(path).decode("utf-8", "backslashreplace")` gives), so it
    can be written to a UTF-8 stream; the real name would fail there."""
    if path.isascii():
        return path
    return _NAME_BYTES.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", path)


def path_escaped(path: str) -> bool:
    """Whether `shown_path(path)` differs from the real name (exports flag such rows)."""
    return not path.isascii() and _NAME_BYTES.search(path) is not None


def shown_strings(value):
    """`value` (JSON-like: dicts, lists, strings, numbers) with every string `shown_path`, so it
    can be written as UTF-8 JSON."""
    if isinstance(value, str):
        return shown_path(value)
    if isinstance(value, dict):
        return {shown_strings(k): shown_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown_strings(v) for v in value]
    return value

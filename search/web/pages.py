"""What the gallery's pages show: the Jinja2 environment and its formatting helpers.

Every template is autoescaped; the helpers that return markup (`highlight`) escape each piece of
text themselves, so a caption such as `<img src=x onerror=alert(1)>` is shown as text.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from search.display import SIGNAL_LABEL, file_size, shown_path, timecode

TEMPLATES = Path(__file__).parent / "templates"
_WORD = re.compile(r"(\w+)", re.UNICODE)


@functools.cache
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.filters["highlight"] = highlight
    env.filters["why"] = why_chips
    env.filters["own_words"] = own_word_chips
    env.filters["shortdate"] = short_date
    env.filters["filesize"] = file_size
    env.filters["timecode"] = timecode  # a video hit's moment, 01:23
    env.filters["similar"] = similar_label
    env.globals["thumb_url"] = thumb_url
    env.globals["local_time"] = _local_time
    env.globals["on_disk"] = os.path.exists  # a photo whose file is gone shows "file missing"
    return env


def _shown(value: Any) -> Any:
    """Every value a template prints: a path with bytes that are not UTF-8 as `\\xe9` (the page
    is sent as UTF-8, which cannot hold them). Markup is already finished text."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return shown_path(value)
    return value


def render(name: str, **context: Any) -> str:
    context.setdefault("params", {})
    return environment().get_template(name).render(**context)


def highlight(caption: str | None, matched: list[str] | None) -> Markup:
    """The caption with query words that matched in <mark>, everything escaped."""
    if not caption:
        return Markup("")
    wanted = {w.casefold() for w in matched or []}
    parts = []
    for i, piece in enumerate(_WORD.split(caption)):
        if i % 2 == 1 and piece.casefold() in wanted:
            parts.append(Markup("<mark>") + escape(piece) + Markup("</mark>"))
        else:
            parts.append(escape(piece))
    return Markup("").join(parts)


def why_chips(signals: dict[str, dict[str, Any]] | None) -> list[str]:
    """["img 0.31 #2", "cap 0.44 #1", "kw 1.2 #1"]: each signal's score and rank, as the CLI's
    --why shows them (a dash where the photo was not in that signal's list)."""
    chips = []
    for name in ("image", "caption", "keyword", "text"):
        s = (signals or {}).get(name)
        if s is None:
            continue
        if s.get("score") is None and s.get("rank") is None:
            chips.append(f"{SIGNAL_LABEL[name]} –")
            continue
        score = (
            "–"
            if s.get("score") is None
            else f"{s['score']:.{1 if name in ('keyword', 'text') else 2}f}"
        )
        rank = "" if s.get("rank") is None else f" #{s['rank']}"
        chips.append(f"{SIGNAL_LABEL[name]} {score}{rank}")
    return chips


def own_word_chips(hit: dict[str, Any]) -> list[str]:
    """["tag Grandma", "description: bob"]: the person's own words that put a photo here (its
    tags the query or the tag filter named; query words found in its description or folders).
    The caption's words are marked in the caption, the place is shown beside it."""
    chips = [f"tag {t}" for t in hit.get("tags") or []]
    found = hit.get("matched_in") or {}
    for key, label in (("description", "description"), ("folder", "folder")):
        if found.get(key):
            chips.append(f"{label}: {', '.join(found[key])}")
    if found.get("text"):  # words read in the photo (OCR)
        chips.append(f"reads: {', '.join(found['text'])}")
    return chips


def similar_label(similar: list[dict[str, Any]]) -> str:
    """What a card's group marker says: "2 copies" when every other file is byte-identical to
    the card's, else "+N similar" (N: the other files, copies and look-alikes)."""
    if all(s["why"] == "same file" for s in similar):
        return f"{len(similar) + 1} copies"
    return f"+{len(similar)} similar"


def thumb_url(hit: dict[str, Any], kind: str = "thumb") -> str:
    """/thumb/<id>?v=<hash prefix>: the version makes the URL immutable (cached for a year)."""
    return f"/{kind}/{int(hit['id'])}?v={hit['content_hash'][:12]}"


def short_date(iso: str | None) -> str:
    if not iso:
        return ""
    return iso[:16].replace("T", " ")


def _local_time(iso: str | None) -> str:
    from search.status import local_time

    return local_time(iso)


def photo_json(photo: dict[str, Any]) -> dict[str, Any]:
    """The API's photo: the indexed file's fields (no internal mtime) and its caption."""
    keys = (
        "id", "path", "caption", "caption_source", "caption_review", "generated_caption",
        "model", "width", "height", "taken_at", "camera", "camera_make", "camera_model",
        "gps_lat", "gps_lon", "size", "indexed_at", "content_hash",
    )  # fmt: skip
    return {k: photo.get(k) for k in keys}

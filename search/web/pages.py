"""What the gallery's pages show: the Jinja2 environment and its formatting helpers.

Every template is autoescaped; the helpers that return markup (`highlight`) escape each piece of
text themselves, so a caption such as `<img src=x onerror=alert(1)>` is shown as text.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from search.display import file_size, shown_path, timecode
from search.web.facets import month_range

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
    env.globals["chips"] = chips
    env.globals["legend"] = LEGEND
    env.globals["aspect"] = aspect
    env.globals["card_name"] = card_name
    env.globals["month_of"] = month_of
    env.globals["month_range"] = month_range
    env.filters["query"] = query_string
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


@dataclass(frozen=True)
class Chip:
    """One reason a photo is on the page, in plain words ("your tag Grandma"); `title` has the
    numbers behind it (a signal's score and rank) for a tooltip; `kind` is the legend's entry."""

    text: str
    kind: str  # looks | meaning | mentions | tag | description | folder | place | reads
    title: str = ""


LEGEND = (
    ("looks", "looks like", "the picture itself resembles your words (image search)"),
    ("meaning", "caption reads like", "the photo's caption means something close to your words"),
    ("mentions", "caption mentions", "the caption holds these words"),
    ("tag", "your tag", "a tag you gave the photo (in your photo app or a sidecar)"),
    ("description", "your description", "the description you wrote holds these words"),
    ("folder", "in folder", "a folder the photo is in is named with these words"),
    ("place", "taken in", "where the photo was taken (from its GPS)"),
    ("reads", "reads", "words the photo itself shows (text read in photos, imgcap index --ocr)"),
)
QUOTED_CHARS = 32  # a long query is cut in a chip (the tooltip and the search box have it all)


def chips(hit: dict[str, Any], words: str | None = None, place: bool = False) -> list[Chip]:
    """Why `hit` is here, the person's own words first: its tags the query or the tag filter
    named, the words its description, folders and place hold, the caption's words; then the
    picture and the caption by meaning, for a search of `words` (a photo page's "more like
    this" has none: "looks alike"). `place`: the search asked for a place (the filter), so
    every photo says where it was taken."""
    found = hit.get("matched_in") or {}
    out = [Chip(f"your tag {t}", "tag") for t in hit.get("tags") or []]
    if found.get("description"):
        out.append(
            Chip(f"your description mentions {', '.join(found['description'])}", "description")
        )
    if found.get("folder"):
        out.append(Chip(f"in folder {', '.join(found['folder'])}", "folder"))
    if hit.get("place") and (place or found.get("place")):
        out.append(Chip(f"taken in {hit['place'].split(',')[0]}", "place", hit["place"]))
    if found.get("text"):  # words read in the photo (OCR)
        t = (hit.get("signals") or {}).get("text") or {}
        score = "" if t.get("score") is None else f"{t['score']:.1f}, "
        rank = "" if t.get("rank") is None else f"#{t['rank']} by the text read"
        out.append(Chip(f"reads: {', '.join(found['text'])}", "reads", f"text match {score}{rank}"))
    mentioned = found.get("caption") if found else hit.get("matched")
    if mentioned:
        out.append(Chip(f"caption mentions {', '.join(mentioned)}", "mentions"))
    signals = hit.get("signals") or {}
    quoted = _quoted(words)
    for name, kind, text in (
        ("image", "looks", f"looks like {quoted}" if quoted else "looks alike"),
        ("caption", "meaning", f"caption reads like {quoted}"),
    ):
        s = signals.get(name)
        if s is None or s.get("rank") is None or (name == "caption" and not quoted):
            continue
        score = "" if s.get("score") is None else f"{s['score']:.2f}, "
        what = "picture" if name == "image" else "caption"
        out.append(Chip(text, kind, f"{what} similarity {score}#{s['rank']} by the {what}"))
    return out


def _quoted(words: str | None) -> str:
    words = " ".join((words or "").split())
    if not words:
        return ""
    if len(words) > QUOTED_CHARS:
        words = words[: QUOTED_CHARS - 1].rstrip() + "…"
    return f"“{words}”"


def similar_label(similar: list[dict[str, Any]]) -> str:
    """What a card's group marker says: "2 copies" when every other file is byte-identical to
    the card's, else "+N similar" (N: the other files, copies and look-alikes)."""
    if all(s["why"] == "same file" for s in similar):
        return f"{len(similar) + 1} copies"
    return f"+{len(similar)} similar"


# Card shapes: aspect ratios (width / height) in steps of ASPECT_STEP, each a rule of style.css
# (`[data-ar="133"]`) that sets the card's --ar: the page's Content-Security-Policy allows no
# inline style, and CSS cannot read a number from an attribute in every browser yet.
ASPECT_STEP = 0.05
ASPECTS = (0.25, 4.0)  # a tall strip or a panorama past these is shown cut to them
DEFAULT_ASPECT = 4 / 3  # unknown size (an older index, an unreadable header)


def aspect(hit: dict[str, Any]) -> str:
    """The card's shape: "150" for a 3:2 photo (width / height x 100, rounded to ASPECT_STEP)."""
    w, h = hit.get("width"), hit.get("height")
    ratio = w / h if w and h and w > 0 and h > 0 else DEFAULT_ASPECT
    ratio = min(max(ratio, ASPECTS[0]), ASPECTS[1])
    return str(round(round(ratio / ASPECT_STEP) * ASPECT_STEP * 100))


def aspects() -> list[str]:
    """Every shape `aspect` gives (style.css has a rule for each)."""
    lo, hi = (round(a / ASPECT_STEP) for a in ASPECTS)
    return [str(round(i * ASPECT_STEP * 100)) for i in range(lo, hi + 1)]


def card_name(path: str) -> str:
    """What a card names its file by: its folder's name and its own ("Paris/IMG_0042.jpg"), so
    two copies side by side can be told apart."""
    folder = os.path.basename(os.path.dirname(path))
    name = os.path.basename(path)
    return f"{folder}/{name}" if folder else name


MONTHS = (
    "January February March April May June July August September October November December"
).split()


def month_of(taken_at: str | None) -> tuple[str, str]:
    """(key, heading) of a photo's month in the timeline: ("2019-06", "June 2019"); ("", "No
    date") for a photo without one."""
    if not taken_at or not re.fullmatch(r"[0-9]{4}-[0-9]{2}", taken_at[:7]):
        return "", "No date"  # (a hand-edited row: the timeline still shows the photo)
    month = int(taken_at[5:7])
    if not 1 <= month <= 12:
        return "", "No date"
    return taken_at[:7], f"{MONTHS[month - 1]} {taken_at[:4]}"


def query_string(params: Any) -> str:
    """A URL's query from (name, value) pairs; a folder whose name has bytes that are not UTF-8
    keeps them (%E9), where Jinja's urlencode fails on them."""
    from urllib.parse import urlencode

    return urlencode(list(params), encoding="utf-8", errors="surrogateescape")


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
    """The API's photo: the indexed file's fields (no internal mtime) and its caption; a video
    has `frames` too: each keyframe's time (`at_seconds`) and the model's caption of it. (A
    video's `caption` is its first keyframe's, or the one a person wrote for the video.)"""
    keys = (
        "id", "path", "caption", "caption_source", "caption_review", "generated_caption",
        "model", "width", "height", "taken_at", "camera", "camera_make", "camera_model",
        "gps_lat", "gps_lon", "size", "indexed_at", "content_hash",
    )  # fmt: skip
    out = {k: photo.get(k) for k in keys}
    if photo.get("frames"):
        out["frames"] = photo["frames"]
    return out

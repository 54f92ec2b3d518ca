"""Query understanding: "dog on the beach in Paris last summer" -> text "dog on the beach" plus
filters (place Paris, after 2026-06-01, before 2026-09-01).

Only what is unambiguous against the index itself becomes a filter; everything else stays in
the text that is embedded and keyword-matched:

- dates: "yesterday", "today", "this/last week|month|year", "last summer", "this winter",
  "last march", "summer 2018", "March 2021" / "mar 2021", "2021-03", "2021-03-15",
  "2 years ago", "past 30 days", and a bare year ("2019"), decade ("1990s") or span of years
  ("2018 to 2020", "2018-2020") only when the index has photos taken then ("1984 poster"
  stays text when no photo is from 1984). "since", "after", "before" and "until" in front of
  a date make it open-ended (so do "seit", "avant", "antes de" ...: OPEN_ENDED). A month
  name alone is never a date ("may" the verb; "march" the walk). In German, French, Spanish,
  Italian, Portuguese and Dutch: month and season names with a year ("Sommer 2019", "juillet 2021",
  "verano de 2020", accents optional), spans ("2018 bis 2020"), with their lead words ("im",
  "en el", "nell'"); in Chinese and Japanese: "2019年", "2019年夏天", "2019年の夏", "2019年7月",
  "7月" (its latest occurrence that has begun), "夏 2019", "2018年到2020年", also inside
  unspaced text ("北京2019年夏天的照片"). Relative phrases ("last summer") are English only.
  Relative dates count from today's date on this computer (local time), weeks start on
  Monday, seasons (in every language) are the meteorological ones of the northern hemisphere
  (spring = March-May, summer = June-August, autumn/fall = September-November, winter YEAR =
  December YEAR to February YEAR+1); "last summer" is the latest summer that has ended, "this
  summer" the one of this year;
- places: city, region and country names of the photos' places ("paris" only if some photo
  was taken in a place called Paris; accents and case optional); a second name of the same
  place ("Paris France") narrows it. Place names that are everyday words ("nice", "reading")
  count only capitalised or after "in"/"at"/"near"/"from". Other names of those places
  (indexer/metadata/place_names.py: "München" for Munich, "北京" for Beijing, "Deutschland")
  are read as them, also inside unspaced Chinese, Japanese or Korean;
- folders: a folder name of the index after "in"/"from" written with a capital ("sunset in
  Holidays"; "kids in the garden" stays words), or with the word "folder" in any case
  ("whiteboard photos from the work folder"); a folder every photo is in says nothing and is
  ignored;
- cameras: a camera make or model of the index ("canon", "eos 5d"), or a model family written
  like a brand ("iphone", "eos"; not "pixel", an everyday word); makes that are everyday words
  ("apple pie") only after "with"/"on"/"by"/"using";
- videos: "video"/"videos" when the index has videos ("birthday cake video").

When the words are nothing but filters ("Paris 2019"), they also stay the text to rank by.
Explicit options win: with --after/--before no date is parsed, with --in no folder, with
--place no place, with --camera no camera; those words stay in the text.

dateparser and parsedatetime were measured for this and not used (BENCHMARKS.md): dateparser
costs 0.3 s to import and 0.2 s for its first search (the whole cold-search budget is 1 s),
reads "may" and "the 1984" as dates and has no seasons; parsedatetime reads "2019" as 20:19 and
"summer 2018" as today. The date grammar (search/dates.py `date_phrase`) is small and every
rule is tested.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from indexer.store.cjk import has_cjk
from indexer.store.places import fold
from search.dates import cjk_date_pieces, date_phrase

MAX_NGRAM = 4  # longest place / folder / camera name looked for, in words

# Words that put a date, place or folder in context; eaten with it ("dogs in Paris").
LEAD_WORDS = {"in", "from", "during", "at", "near", "on", "of", "to", "taken", "shot"}
# The same in the other languages whose dates are read ("im Sommer 2019", "en el verano de
# 2020", "no verão de 2017", "in de zomer van 2016"), eaten only before a date: "no", "am" and
# "op" are English words too.
DATE_LEAD_WORDS = LEAD_WORDS | {
    "im", "am", "vom", "von", "aus", "wahrend", "en", "de", "du", "pendant", "durante", "em",
    "no", "na", "nel", "nella", "al", "dal", "tijdens", "van", "uit", "op",
}  # fmt: skip
# Before a place in the other languages ("Bilder aus Köln", "fotos en Madrid", "foto da Roma",
# "foto's uit Amsterdam"); not "a", which would make "a nice view" a view of Nice.
PLACE_LEAD_WORDS = LEAD_WORDS | {
    "im", "aus", "bei", "nach", "en", "de", "du", "dans", "em", "uit", "van", "nel", "da", "di",
}  # fmt: skip
ARTICLES = {"the", "my", "our"}
# Articles between a lead word and a date ("en el verano", "in de zomer", "im" needs none)
DATE_ARTICLES = ARTICLES | set("der die das dem den le la el il lo het de".split())
# A word before a date that opens its range, by what it keeps: the date's start as the lower
# bound ("since 2019", "seit 2019"), its end ("after", "nach"), its start as the upper bound
# ("before", "vor"), or its end ("until", "bis"). Spanish, Italian, Portuguese put "de"/"del"
# between ("antes de 2020", "prima del 2020", "a partir de 2019").
OPEN_ENDED = {
    **dict.fromkeys(["since", "seit", "depuis", "desde", "sinds", "partir"], "since"),
    **dict.fromkeys(["after", "nach", "apres", "despues", "dopo", "apos"], "after"),
    **dict.fromkeys(["before", "vor", "avant", "antes", "prima", "voor"], "before"),
    **dict.fromkeys(["until", "till", "bis", "jusqu en", "hasta", "ate", "tot"], "until"),
}
CAMERA_LEAD = {"with", "on", "by", "using"}
# GeoNames places whose name is an everyday English word: lowercase and on their own they stay
# text ("a nice view" with photos from Nice; "reading a book" with photos from Reading).
EVERYDAY = set(
    "nice reading bath mobile orange split sale deal hope normal paradise eagle marathon hell "
    "worms speed bend surprise liberty independence victory unity friendship joy comfort "
    "energy success truth commerce industry enterprise progress welcome opportunity "
    "university bay beach park lake river ocean island harbor harbour port bridge village "
    "city town centre center mountain hill valley forest garden castle church market street "
    "station airport house home school sunset sunrise snow rain sun moon star water fire "
    "rock stone sand gold silver green white black red blue brown rose lily ivy daisy hazel "
    "grace faith chase page mark bill gay rich young price march may august cork crewe "
    "leek poole chester tours nancy rennes metz ham bad cheddar wells aurora bear buffalo "
    "phoenix turkey china chad guinea jordan victoria florence austin darwin eugene"
    .split()
)  # fmt: skip
# Camera makes that are everyday words: a camera only after "with", "on", "by", "using".
CAMERA_EVERYDAY = {"apple", "nothing", "sharp", "red", "essential", "honor", "palm", "orange"}
PHOTO_WORDS = {"video": "video", "videos": "video"}


class Vocabulary(Protocol):
    """What the index holds, as query parsing needs it (IndexVocabulary reads the store)."""

    def has_photos(self, after: str, before: str) -> bool: ...
    def places(self) -> dict[str, str]: ...  # fold(name or other name) -> name as indexed
    def places_together(self, names: tuple[str, ...]) -> bool: ...
    def folders(self) -> dict[str, str]: ...  # fold(folder name) -> name as spelled
    def cameras(self) -> dict[str, str]: ...  # fold(phrase) -> camera filter value
    def media_types(self) -> set[str]: ...  # {"video"} when videos can be filtered


@dataclass(frozen=True)
class Understood:
    """What a query was read as. `text` is what remains to embed and keyword-match."""

    text: str
    after: str | None = None  # YYYY-MM-DD, inclusive
    before: str | None = None  # YYYY-MM-DD, exclusive
    place: tuple[str, ...] = ()
    folder: str | None = None  # a folder name ("Work"): photos below any folder so named
    camera: str | None = None
    media: str | None = None
    words: tuple[str, ...] = field(default=(), compare=False)  # the words read as filters

    @property
    def any(self) -> bool:
        return bool(self.parts())

    def parts(self) -> list[str]:
        """["after 2019-01-01", "before 2020-01-01", "place Paris"]: the explanation."""
        out = []
        if self.after:
            out.append(f"after {self.after}")
        if self.before:
            out.append(f"before {self.before}")
        if self.place:
            out.append("place " + ", ".join(self.place))
        if self.folder:
            out.append(f"folder {self.folder}")
        if self.camera:
            out.append(f"camera {self.camera}")
        if self.media:
            out.append(f"media {self.media}")
        return out

    def label(self) -> str:
        return ", ".join(self.parts())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text}
        for k in ("after", "before", "folder", "camera", "media"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.place:
            d["place"] = list(self.place)
        return d


# ------------------------------------------------------------------------------------ tokens
@dataclass
class _Token:
    raw: str  # as typed
    word: str  # fold(raw): compared
    used: bool = False


_TOKEN = re.compile(r"\S+")


def _tokens(query: str, cjk_names: frozenset[str] = frozenset()) -> list[_Token]:
    """The query's words; in unspaced Chinese, Japanese or Korean, a date or one of
    `cjk_names` (folded) inside a token is a token of its own ("北京2019年夏天的照片")."""
    out = []
    pieces = (p for m in _TOKEN.finditer(query) for p in cjk_date_pieces(m.group()))
    for raw in (q for p in pieces for q in _split_at_names(p, cjk_names)):
        word = fold(raw)
        if raw.endswith("'s") or raw.endswith("’s"):  # "Paris's" -> paris
            word = fold(raw[:-2])
        out.append(_Token(raw, word))
    return out


def _split_at_names(token: str, names: frozenset[str]) -> list[str]:
    """`token` split around the longest of `names` (folded) found in it, left to right."""
    if not names or not has_cjk(token):
        return [token]
    for start in range(len(token)):
        for end in range(len(token), start, -1):
            if fold(token[start:end]) in names:
                rest = _split_at_names(token[end:], names)
                return [p for p in (token[:start], token[start:end], *rest) if p]
    return [token]


# ------------------------------------------------------------------------------------ parser
def understand(
    query: str,
    vocab: Vocabulary,
    today: date | None = None,
    skip: frozenset[str] | set[str] = frozenset(),
) -> Understood:
    """Read a query against what the index holds. `skip`: kinds not to parse ("date", "place",
    "folder", "camera", "media"), because an explicit option already says them."""
    today = today or date.today()
    cjk_names = frozenset()
    if "place" not in skip and has_cjk(query):
        cjk_names = frozenset(name for name in vocab.places() if has_cjk(name))
    toks = _tokens(query, cjk_names)
    found: dict[str, Any] = {}

    def lead(i: int, words: set[str], articles: set[str] = ARTICLES) -> None:
        """Eat the context word just before position i ("in", "from the", ...)."""
        j = i - 1
        if j >= 0 and not toks[j].used and toks[j].word in articles:
            j -= 1
            if not (j >= 0 and not toks[j].used and toks[j].word in words):
                j += 1  # no context word before the article: the article itself may be one
        if j >= 0 and not toks[j].used and toks[j].word in words:
            if j > 0 and not toks[j - 1].used and toks[j - 1].word in ("taken", "shot"):
                j -= 1  # "taken in", "shot on"
            for t in toks[j:i]:
                t.used = True

    def use(i: int, n: int) -> None:
        for t in toks[i : i + n]:
            t.used = True

    def free(i: int, n: int) -> bool:
        return i + n <= len(toks) and not any(t.used for t in toks[i : i + n])

    # Dates first: "in 2019" is a date even with a folder named 2019 (say "2019 folder").
    if "date" not in skip:
        for i in range(len(toks)):
            if toks[i].used or (i + 1 < len(toks) and toks[i + 1].word == "folder"):
                continue
            words = [t.word for t in toks[i : i + 3]]
            got = date_phrase(words, toks[i].raw, today, vocab.has_photos)
            if got is None or not free(i, got[0]):
                continue
            n, start, end = got
            opener = _opener(toks, i)
            kind = OPEN_ENDED[toks[opener].word] if opener is not None else None
            if kind == "since":
                found["after"] = start.isoformat()
            elif kind == "after":
                found["after"] = end.isoformat()
            elif kind == "before":
                found["before"] = start.isoformat()
            elif kind == "until":
                found["before"] = end.isoformat()
            else:
                found["after"], found["before"] = start.isoformat(), end.isoformat()
            if opener is not None:
                for t in toks[opener:i]:
                    t.used = True
            else:
                lead(i, DATE_LEAD_WORDS, DATE_ARTICLES)
            use(i, n)
            break

    if "folder" not in skip:
        _folders(toks, vocab, found, lead, use, free)
    if "place" not in skip:
        _places(toks, vocab, found, lead, use, free)
    if "camera" not in skip:
        _cameras(toks, vocab, found, lead, use, free)
    if "media" not in skip and "video" in vocab.media_types():
        for i, t in enumerate(toks):
            if not t.used and t.word in PHOTO_WORDS:
                found["media"] = PHOTO_WORDS[t.word]
                use(i, 1)
                break

    used = tuple(t.raw for t in toks if t.used)
    text = " ".join(t.raw for t in toks if not t.used)
    if not text.strip(" ,.;:!?"):
        text = " ".join(t.raw for t in toks)  # nothing but filters: rank by the words too
    return Understood(
        text=text,
        after=found.get("after"),
        before=found.get("before"),
        place=tuple(found.get("place", ())),
        folder=found.get("folder"),
        camera=found.get("camera"),
        media=found.get("media"),
        words=used,
    )


def _opener(toks: list[_Token], i: int) -> int | None:
    """The position of the OPEN_ENDED word just before the date at i ("since 2019"), or with
    "de"/"del"/"di" between ("antes de 2020"), if there is one."""
    for j, between in ((i - 1, ()), (i - 2, ("de", "del", "di", "do", "da"))):
        if j < 0 or any(t.used for t in toks[j:i]):
            return None
        if toks[j].word in OPEN_ENDED and all(t.word in between for t in toks[j + 1 : i]):
            return j
    return None


def _ngrams(toks: list[_Token], free) -> list[tuple[int, int, str]]:
    """(start, length, folded phrase) of every free run of up to MAX_NGRAM words, longest
    first, then left to right."""
    out = []
    for n in range(MAX_NGRAM, 0, -1):
        for i in range(len(toks) - n + 1):
            if free(i, n):
                phrase = " ".join(t.word for t in toks[i : i + n])
                if phrase:
                    out.append((i, n, phrase))
    return out


def _folders(toks, vocab: Vocabulary, found, lead, use, free) -> None:
    # Read the index's folders only when the words could name one (they cost a skip scan).
    words = [t.word for t in toks if not t.used]
    cued = any(w in ("folder", "folders", "album") for w in words) or any(
        t.word in ("in", "from") and any(not u.raw.islower() for u in toks[i + 1 : i + 3])
        for i, t in enumerate(toks)
        if not t.used
    )
    if not cued:
        return
    names = vocab.folders()
    if not names:
        return
    for i, n, phrase in _ngrams(toks, free):
        if phrase not in names:
            continue
        after_word = toks[i + n].word if i + n < len(toks) and free(i + n, 1) else ""
        before = [t.word for t in toks[max(0, i - 2) : i] if not t.used]
        if after_word in ("folder", "folders", "album"):
            use(i + n, 1)
        else:
            cued = before[-1:] in (["in"], ["from"]) or before[-2:] in (
                ["in", "the"],
                ["from", "the"],
            )
            typed = " ".join(t.raw for t in toks[i : i + n])
            if not cued or typed.islower() or phrase in vocab.places():
                # "kids in the garden" is a garden, not the folder Garden, unless they write
                # "in the Garden" or "garden folder"; "in Paris" is the place
                continue
        found["folder"] = names[phrase]
        lead(i, {"in", "from"})
        use(i, n)
        return


def _places(toks, vocab: Vocabulary, found, lead, use, free) -> None:
    names = vocab.places()
    if not names:
        return
    chosen: list[str] = []
    for i, n, phrase in _ngrams(toks, free):
        if phrase not in names or not free(i, n):
            continue
        raw = " ".join(t.raw for t in toks[i : i + n])
        prev = toks[i - 1].word if i > 0 and not toks[i - 1].used else ""
        if n == 1 and phrase in EVERYDAY and raw.islower() and prev not in PLACE_LEAD_WORDS:
            continue  # "a nice view", "reading a book"
        if chosen and not vocab.places_together((*chosen, names[phrase])):
            continue  # "Paris London": one place is a filter, the other stays text
        chosen.append(names[phrase])
        lead(i, PLACE_LEAD_WORDS)
        use(i, n)
    if chosen:
        found["place"] = chosen


def _cameras(toks, vocab: Vocabulary, found, lead, use, free) -> None:
    names = vocab.cameras()
    if not names:
        return
    for i, n, phrase in _ngrams(toks, free):
        if phrase not in names:
            continue
        prev = toks[i - 1].word if i > 0 and free(i - 1, 1) else ""
        if phrase in CAMERA_EVERYDAY and prev not in CAMERA_LEAD:
            continue  # "apple pie" with iPhone photos: only "shot on apple", "with apple"
        found["camera"] = names[phrase]
        lead(i, CAMERA_LEAD)
        use(i, n)
        return


def apply(flt, got: Understood):
    """The FileFilter with what was understood added (explicit values were never parsed)."""
    changes: dict[str, Any] = {}
    if got.after and flt.after is None:
        changes["after"] = got.after
    if got.before and flt.before is None:
        changes["before"] = got.before
    if got.place and not flt.place:
        changes["place"] = got.place
    if got.folder and not getattr(flt, "folder_name", None) and flt.folder is None:
        changes["folder_name"] = got.folder
    if got.camera and flt.camera is None:
        changes["camera"] = got.camera
    if got.media and flt.media is None:
        changes["media"] = got.media
    return replace(flt, **changes)


def skipped_kinds(flt) -> set[str]:
    """The kinds an explicit option already set (they win: not parsed from the words)."""
    skip = set()
    if flt.after is not None or flt.before is not None:
        skip.add("date")
    if flt.folder is not None or getattr(flt, "folder_name", None):
        skip.add("folder")
    if flt.place:
        skip.add("place")
    if flt.camera is not None:
        skip.add("camera")
    if flt.media is not None:
        skip.add("media")
    return skip


# ------------------------------------------------------------------------- the index's words
class IndexVocabulary:
    """Vocabulary read from an imgcap database (read-only connection), each part once, only
    when the parser asks for it."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def has_photos(self, after: str, before: str) -> bool:
        from indexer.store import vocabulary

        return vocabulary.has_photos_between(self.conn, after, before)

    def places(self) -> dict[str, str]:
        from indexer.metadata.place_names import other_names
        from indexer.store import places

        def read() -> dict[str, str]:
            # A name the index holds wins over another place's other name
            return other_names(places.named_places(self.conn)) | places.known_names(self.conn)

        return self._once("places", read)

    def places_together(self, names: tuple[str, ...]) -> bool:
        from indexer.store import places

        return places.places_sharing(self.conn, names)

    def folders(self) -> dict[str, str]:
        from indexer.store import vocabulary

        return self._once("folders", lambda: _folder_names(vocabulary.folders(self.conn)))

    def cameras(self) -> dict[str, str]:
        from indexer.store import vocabulary

        return self._once("cameras", lambda: camera_phrases(vocabulary.cameras(self.conn)))

    def media_types(self) -> set[str]:
        from indexer.store import vocabulary

        return self._once("media", lambda: vocabulary.media_types(self.conn))


def _folder_names(folders: list[str]) -> dict[str, str]:
    """fold(name) -> name for every folder name in the indexed folders' paths, except names
    every folder has (the user's home, "Pictures" above the whole library: they say nothing)."""
    counts: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for folder in folders:
        parts = {p for p in re.split(r"[\\/]", folder) if p}
        for p in parts:
            key = fold(p)
            if key:
                counts[key] = counts.get(key, 0) + 1
                spelled.setdefault(key, p)
    return {k: spelled[k] for k, c in counts.items() if c < len(folders) or len(folders) == 1}


_CORPORATE = {"corporation", "corp", "inc", "co", "ltd", "imaging", "company", "electronics"}
_BRANDLIKE = re.compile(r"[A-Z0-9]")  # after the first letter: iPhone, EOS, D750, not Pixel


def camera_phrases(cameras: list[tuple[str | None, str | None]]) -> dict[str, str]:
    """fold(phrase) -> the camera filter value, for every make, model, "make model", and model
    family written like a brand (an inner capital or a digit: iPhone, EOS, D750; not Pixel)."""
    out: dict[str, str] = {}
    for make, model in cameras:
        make = (make or "").strip()
        model = (model or "").strip()
        if make and len(fold(make)) >= 2:
            out.setdefault(fold(make), make)
            brand, *rest = make.split()
            if rest and all(fold(w) in _CORPORATE for w in rest):
                out.setdefault(fold(brand), brand)  # "NIKON CORPORATION" -> NIKON
        if model:
            out.setdefault(fold(model), model)
            if make:
                out.setdefault(fold(f"{make} {model}"), model)
            words = model.split()
            if make and words and fold(words[0]) == fold(make.split()[0]):
                words = words[1:]  # "Canon EOS 5D": the family is EOS
                if words:
                    out.setdefault(fold(" ".join(words)), " ".join(words))
            if words and _BRANDLIKE.search(words[0][1:]) and not words[0][0].isdigit():
                out.setdefault(fold(words[0]), words[0])
    return {k: v for k, v in out.items() if k}

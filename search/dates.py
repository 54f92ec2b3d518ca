"""Dates in search filters (--after/--before): ISO 8601 prefixes that must be real dates.

A filter date is compared as a prefix with the stored `taken_at`, so `2019-13` would match
nothing and `2019-02-30` the wrong photos, silently: both are refused here instead.

And dates in a query's words (`date_phrase`, for search/understand.py, whose docstring gives
the rules): "last summer", "March 2021", "2019" -> a [start, end) range of days.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from indexer.errors import UsageError
from indexer.store.cjk import has_cjk

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


def parse_date(value: str | None, option: str) -> str | None:
    """Validate a --after/--before value: YYYY, YYYY-MM, YYYY-MM-DD (or a longer ISO prefix).
    It is compared as a prefix with the stored ISO 8601 `taken_at`, so it must be a real date:
    `2019-13` or `2019-02-30` would silently match nothing (or the wrong year) as a string."""
    if value is None:
        return None
    v = value.strip().replace(" ", "T")
    if not _DATE.match(v):
        raise UsageError(f"{option} {value!r}: use YYYY, YYYY-MM or YYYY-MM-DD")
    from datetime import datetime

    # Complete the prefix with the earliest value of each missing part, then let datetime judge
    # the month, the day of that month, the hour and the minute.
    full = v + "0001-01-01T00:00:00"[len(v) :]
    try:
        datetime.fromisoformat(full)
    except ValueError as e:
        raise UsageError(f"{option} {value!r} is not a real date ({e})") from None
    return v


def date_range_warning(after: str | None, before: str | None) -> str | None:
    """A warning when --after is not before --before: such a range can match nothing."""
    if after is None or before is None:
        return None
    # Compare as instants, each prefix completed with its earliest moment.
    a = after + "0001-01-01T00:00:00"[len(after) :]
    b = before + "0001-01-01T00:00:00"[len(before) :]
    if a >= b:
        return f"--after {after} is not before --before {before}: no photo can match"
    return None


# ------------------------------------------------------------------- dates in a query
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month

# Month and season names of other languages, folded as search/understand.py compares words
# (accents optional: "fevrier", "marz", "verao"). They make a date only with a year ("juillet
# 2021", "verano de 2020", "2019年夏天"); relative phrases ("last summer") are English only.
FOREIGN_MONTHS = {
    "de": {
        "januar": 1, "janner": 1, "februar": 2, "marz": 3, "maerz": 3, "april": 4, "mai": 5,
        "juni": 6, "juli": 7, "august": 8, "september": 9, "oktober": 10, "november": 11,
        "dezember": 12,
    },
    "fr": {
        "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7,
        "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
    },
    "es": {
        "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
        "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
        "diciembre": 12,
    },
    "it": {
        "gennaio": 1, "febbraio": 2, "marzo": 3, "aprile": 4, "maggio": 5, "giugno": 6,
        "luglio": 7, "agosto": 8, "settembre": 9, "ottobre": 10, "novembre": 11, "dicembre": 12,
    },
    "pt": {
        "janeiro": 1, "fevereiro": 2, "marco": 3, "abril": 4, "maio": 5, "junho": 6, "julho": 7,
        "agosto": 8, "setembro": 9, "outubro": 10, "novembro": 11, "dezembro": 12,
    },
    "nl": {
        "januari": 1, "februari": 2, "maart": 3, "april": 4, "mei": 5, "juni": 6, "juli": 7,
        "augustus": 8, "september": 9, "oktober": 10, "november": 11, "december": 12,
    },
}  # fmt: skip
FOREIGN_SEASONS = {
    "de": {"fruhling": 3, "fruehling": 3, "fruhjahr": 3, "sommer": 6, "herbst": 9, "winter": 12},
    "fr": {"printemps": 3, "ete": 6, "automne": 9, "hiver": 12},
    "es": {"primavera": 3, "verano": 6, "otono": 9, "invierno": 12},
    "it": {"primavera": 3, "estate": 6, "autunno": 9, "inverno": 12},
    "pt": {"primavera": 3, "verao": 6, "outono": 9, "inverno": 12},
    "nl": {"lente": 3, "voorjaar": 3, "zomer": 6, "herfst": 9, "najaar": 9, "winter": 12},
    # Chinese and Japanese: 夏, 夏天 (zh), 夏季
    "zh/ja": {
        f"{c}{s}": m
        for c, m in zip("春夏秋冬", (3, 6, 9, 12), strict=True)
        for s in ("", "天", "季")
    },
}
ANY_MONTHS = MONTHS | {k: v for names in FOREIGN_MONTHS.values() for k, v in names.items()}
ANY_SEASONS = SEASONS | {k: v for names in FOREIGN_SEASONS.values() for k, v in names.items()}
# "verano de 2020", "estate del 2018", "zomer van 2016"
OF_YEAR = {"de", "del", "di", "van", "of"}
# "2018 bis 2020", "2018 à 2020", "2018 al 2020", "2018 tot 2020", "2018 até 2020"
YEAR_TO = {"to", "until", "through", "bis", "a", "au", "al", "hasta", "tot", "ate"}
# An elided article folded into the word: "l'été" -> "l ete", "nell'estate" -> "nell estate"
_ELIDED = re.compile(r"^(?:l|d|dell|nell|all|dall|sull) (\w+)$")

# Chinese and Japanese dates, on the NFKC form of a token: "2019年", "2019年夏天", "2019年の夏",
# "2019年7月", "2019年七月", "7月", "2018-2020年", "2018年到2020年", "2018年から2020年".
_CJK_MONTH = r"(?:\d{1,2}|十[一二]?|[一二三四五六七八九])"
CJK_DATE = re.compile(
    r"(?P<y1>\d{4})年?\s*(?:[-–~〜～]|到|至|から)\s*(?P<y2>\d{4})年(?:まで)?"
    r"|(?P<y>\d{4})年(?:[の的]?(?P<s>[春夏秋冬])[天季]?|(?P<m>" + _CJK_MONTH + r")月份?)?"
    r"|(?P<mo>" + _CJK_MONTH + r")月份?"
)
_CJK_NUMBERS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}


def _month_start(year: int, month: int) -> date:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1)


def _season(year: int, first_month: int) -> tuple[date, date]:
    start = _month_start(year, first_month)
    return start, _month_start(year, first_month + 3)


def _latest_ended(make: Callable[[int], tuple[date, date]], today: date) -> tuple[date, date]:
    """The latest occurrence (by year) of a yearly period that ended on or before today."""
    for year in range(today.year, today.year - 3, -1):
        start, end = make(year)
        if end <= today:
            return start, end
    raise AssertionError("a yearly period ends within two years")


def _containing_or_this_year(
    make: Callable[[int], tuple[date, date]], today: date
) -> tuple[date, date]:
    for year in (today.year - 1, today.year):
        start, end = make(year)
        if start <= today < end:
            return start, end
    return make(today.year)


def _yearly(make: Callable[[int], tuple[date, date]], last: bool, today: date):
    return _latest_ended(make, today) if last else _containing_or_this_year(make, today)


def _is_year(word: str) -> bool:
    return len(word) == 4 and word.isdigit() and 1800 <= int(word) <= 2199


_ISO = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
_YEARS = re.compile(r"^(\d{4})[-–](\d{4})$")  # 2018-2020, 2018–2020
_DECADE = re.compile(r"^(\d{3})0s$")
_N_AGO = re.compile(r"^\d{1,3}$")


def date_phrase(
    words: Sequence[str], raw: str, today: date, has_photos: Callable[[str, str], bool]
) -> tuple[int, date, date] | None:
    """(words used, start, end: exclusive) of a date phrase at the start of `words` (folded,
    as search/understand.py compares them; `raw`: the first one as typed), or None.
    `has_photos(after, before)` says whether a bare year or decade is a date in this index."""
    a, b, c = [_plain(w) for w in (list(words[:3]) + ["", "", ""])[:3]]
    cjk = _cjk_date(raw, today)
    if cjk is not None:
        return 1, *cjk
    if a == "yesterday":
        return 1, today - timedelta(days=1), today
    if a == "today":
        return 1, today, today + timedelta(days=1)
    if a == "past" and b in ("year", "month", "week"):
        days = {"year": 365, "month": 30, "week": 7}[b]  # a rolling window, unlike "last"
        return 2, today - timedelta(days=days), today + timedelta(days=1)
    if a in ("last", "this", "past") and b:
        last = a != "this"
        if b == "year":
            y = today.year - 1 if last else today.year
            return 2, date(y, 1, 1), date(y + 1, 1, 1)
        if b == "month":
            start = _month_start(today.year, today.month - (1 if last else 0))
            return 2, start, _month_start(start.year, start.month + 1)
        if b == "week":
            monday = today - timedelta(days=today.weekday()) - timedelta(weeks=1 if last else 0)
            return 2, monday, monday + timedelta(weeks=1)
        if b in SEASONS:
            return 2, *_yearly(lambda y: _season(y, SEASONS[b]), last, today)
        if b in MONTHS and (len(b) > 3 or b == "may") and a != "past":
            m = MONTHS[b]
            return 2, *_yearly(lambda y: (date(y, m, 1), _month_start(y, m + 1)), last, today)
        if last and _N_AGO.match(b) and c in ("days", "weeks", "months", "years") and int(b) > 0:
            n = int(b)
            if c == "days":
                start = today - timedelta(days=n)
            elif c == "weeks":
                start = today - timedelta(weeks=n)
            elif c == "months":
                start = _month_start(today.year, today.month - n).replace(day=min(today.day, 28))
            else:
                start = date(today.year - n, today.month, min(today.day, 28))
            return 3, start, today + timedelta(days=1)
    if _N_AGO.match(a) and b in ("year", "years") and c == "ago" and int(a) > 0:
        y = today.year - int(a)
        return 3, date(y, 1, 1), date(y + 1, 1, 1)
    years = _YEARS.match(raw.strip(".,;:!?()"))
    span = (1, years[1], years[2]) if years else None
    if _is_year(a) and b in YEAR_TO and _is_year(c):
        span = (3, a, c)
    if span and _is_year(span[1]) and _is_year(span[2]) and span[1] < span[2]:
        start, end = date(int(span[1]), 1, 1), date(int(span[2]) + 1, 1, 1)
        if has_photos(start.isoformat(), end.isoformat()):
            return span[0], start, end
    # "Sommer 2019", "juillet 2021"; "verano de 2020", "luglio del 2018"
    n, year = (2, b) if _is_year(b) else (3, c) if b in OF_YEAR and _is_year(c) else (0, "")
    if n and a in ANY_SEASONS:
        start, end = _season(int(year), ANY_SEASONS[a])
        return n, start, end
    if n and a in ANY_MONTHS:
        m = ANY_MONTHS[a]
        return n, date(int(year), m, 1), _month_start(int(year), m + 1)
    m = _ISO.match(raw.strip(".,;:!?()"))
    if m:
        year, month, day = int(m[1]), int(m[2]), m[3]
        try:
            if day is None:
                return 1, date(year, month, 1), _month_start(year, month + 1)
            d = date(year, month, int(day))
            return 1, d, d + timedelta(days=1)
        except ValueError:
            return None  # "2019-13": not a date; stays text
    if _is_year(a):
        start, end = date(int(a), 1, 1), date(int(a) + 1, 1, 1)
        return (1, start, end) if has_photos(start.isoformat(), end.isoformat()) else None
    m = _DECADE.match(a)
    if m:
        start = date(int(m[1]) * 10, 1, 1)
        end = date(start.year + 10, 1, 1)
        return (1, start, end) if has_photos(start.isoformat(), end.isoformat()) else None
    return None


def _plain(word: str) -> str:
    """A folded word without the article elided into it ("l ete" -> "ete")."""
    m = _ELIDED.match(word)
    return m[1] if m else word


def _cjk_month(text: str) -> int:
    if text.isdigit():
        return int(text)
    if len(text) == 1:
        return _CJK_NUMBERS[text]
    return 10 + (_CJK_NUMBERS[text[1]] if len(text) == 2 else 0)  # 十一, 十二; 十 is one char


def _cjk_date(raw: str, today: date) -> tuple[date, date] | None:
    """[start, end) of a Chinese or Japanese date token ("2019年夏天"), or None. Written with
    年 or 月, a number is a date whether or not the index has photos from then; a month alone
    ("7月") is its latest occurrence that has begun (this July from July on)."""
    if not has_cjk(raw):
        return None
    m = CJK_DATE.fullmatch(unicodedata.normalize("NFKC", raw).strip())
    if m is None:
        return None
    if m["y1"]:
        y1, y2 = int(m["y1"]), int(m["y2"])
        return (date(y1, 1, 1), date(y2 + 1, 1, 1)) if y1 < y2 else None
    if m["mo"]:
        month = _cjk_month(m["mo"])
        if not 1 <= month <= 12:
            return None
        year = today.year if today.month >= month else today.year - 1
        return date(year, month, 1), _month_start(year, month + 1)
    year = int(m["y"])
    if m["s"]:
        return _season(year, ANY_SEASONS[m["s"]])
    if m["m"]:
        month = _cjk_month(m["m"])
        return (date(year, month, 1), _month_start(year, month + 1)) if 1 <= month <= 12 else None
    return date(year, 1, 1), date(year + 1, 1, 1)


def cjk_date_pieces(token: str) -> list[str]:
    """A token of unspaced Chinese or Japanese split around the dates in it, so they can be
    read on their own: "北京2019年夏天的照片" -> 北京, 2019年夏天, 的照片."""
    if not has_cjk(token):
        return [token]
    text = unicodedata.normalize("NFKC", token)
    if len(text) != len(token):
        return [token]  # offsets would not line up: read as it is
    out: list[str] = []
    pos = 0
    for m in CJK_DATE.finditer(text):
        out += [token[pos : m.start()], token[m.start() : m.end()]]
        pos = m.end()
    out.append(token[pos:])
    return [p for p in out if p]

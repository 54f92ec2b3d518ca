"""Chinese, Japanese and Korean text as the full-text index sees it: character bigrams.

SQLite's unicode61 tokenizer splits on spaces and punctuation only, and Chinese and Japanese
put none between words, so a tag "北京旅行" is one token and "北京" never finds it. imgcap
indexes each run of CJK characters as its overlapping bigrams ("北京 京旅 旅行", as Lucene's
CJKBigramFilter and Elasticsearch's cjk_bigram do), then its single characters, and turns a
CJK query word into the phrase of its bigrams: "北京" finds "北京旅行", "東京" finds "東京タワー",
"タワー" (the phrase "タワ ワー") finds it too, and a one-character word ("猫") finds "黒猫"
through the single characters. A phrase matches consecutive bigrams, so "北京旅行" does not
find a text that holds "北京" and "旅行" apart. Hangul is bigrammed too: Korean puts spaces
between words but not before particles ("서울에서"), and hashtags drop them ("서울여행").

FTS5's `trigram` tokenizer was not used: it matches nothing for a query under three
characters, and most Chinese and Japanese words are two (北京, 東京, 旅行). See BENCHMARKS.md.

The extra tokens are appended to what the FTS table indexes (`fts_text`), never shown; text
without CJK characters is returned unchanged, so Latin keyword search is exactly as before.
Both sides normalise with NFKC (half-width katakana ｶﾒﾗ is カメラ) and casefold.
"""

from __future__ import annotations

import re
import unicodedata

# Han (with extensions and compatibility ideographs), the ideographic iteration marks, kana
# (with the prolonged sound mark), half-width kana, Hangul syllables and jamo.
_CJK = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3040-\u309f\u30a0-\u30ff"
    "\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af"
    "\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_HAS_CJK = re.compile(f"[{_CJK}]")
_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(r"\w+")


def has_cjk(text: str) -> bool:
    """Whether `text` holds a Chinese, Japanese or Korean character."""
    return _HAS_CJK.search(text) is not None


def normal(text: str) -> str:
    """The form CJK text is compared in: NFKC (half-width kana, full-width digits) and
    casefolded. Unlike places.fold it keeps voicing marks: ガ is not カ."""
    return unicodedata.normalize("NFKC", text).casefold()


def _pieces(word: str) -> list[str]:
    """A word's CJK runs as bigrams (a one-character run as itself) and the rest as it is,
    in order: "東京タワー" -> 東京 京タ タワ ワー; "iphone写真" -> iphone 写真."""
    out: list[str] = []
    pos = 0
    for m in _RUN.finditer(word):
        if m.start() > pos:
            out.append(word[pos : m.start()])
        run = m.group()
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        pos = m.end()
    if pos < len(word):
        out.append(word[pos:])
    return out


def fts_text(text: str) -> str:
    """`text`, plus a line with the bigrams and single characters of its CJK words (what the
    FTS table indexes). Text without CJK is returned as it is."""
    if not has_cjk(text):
        return text
    extra: list[str] = []
    for word in _WORD.findall(normal(text)):
        if not has_cjk(word):
            continue
        extra.extend(_pieces(word))
        # Single characters after the bigrams, so a bigram phrase never runs into them.
        extra.extend(c for run in _RUN.findall(word) if len(run) > 1 for c in run)
    return text + "\n" + " ".join(extra)


def fts_term(word: str) -> str:
    """One query word as an FTS5 expression, quoted (never syntax): a CJK word as the phrase
    of its bigrams or the word itself (text indexed without bigrams, a person's own caption,
    holds it as one token), any other word as it is."""
    if not has_cjk(word):
        return _quoted(word)
    phrase = _quoted(" ".join(_pieces(normal(word))))
    whole = _quoted(word)
    return phrase if phrase == whole else f"({phrase} OR {whole})"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def contains(text: str, word: str) -> bool:
    """Whether the CJK `word` occurs in `text` (both normalised): what its FTS phrase finds,
    for matching done in Python ("why it matched", own words, folder names)."""
    return normal(word) in normal(text)

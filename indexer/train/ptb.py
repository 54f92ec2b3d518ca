"""coco-caption's tokenisation: Stanford PTBTokenizer 3.4.1 (`-preserveLines -lowerCase`) in
pure Python, then coco-caption's punctuation tokens dropped. Every metric in
indexer/train/metrics.py scores the `tokenize`d text, as pycocoevalcap does.
"""

from __future__ import annotations

import re
import unicodedata

# coco-caption's list, compared AFTER lower-casing; so "-LRB-" never matches and the tokenizer's
# "-lrb-"/"-rrb-" survive as words. Kept that way on purpose: it is what papers were scored with.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
     ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)  # fmt: skip

# Words whose trailing period PTBTokenizer 3.4.1 keeps ("st.", "mr.", "etc.", single letters).
# Found by running the Java tokenizer over every 1-4 letter string and the 58k lower-case words of
# CLIP's BPE vocabulary, at the end of a sentence and before a lower-case word (same set).
_ABBREVIATIONS = frozenset(
    """a adj adm adv al ala alex apr ariz assn assoc asst atty attys aug ave b bancorp bhd bldg
    blvd brig bros c calif capt cf cie cmdr co col colo comdr conn corp cos cpl ct d dak dec
    dept det dr drs e elec ens esq est etc ext f feb fla fri ft g ga gen gov govs h hon i inc
    ind insp intl invt j jan jos jr jul jun k kan kans ky l lieut lt ltd m maj mar md messrs
    mfg mich minn mlle mme mo mon mont mr mrs ms msgr mt mtg n natl neb nev nov o oct okla p
    penn pfc ph plc ppte ppty pres prof profs pte ptes pty ptys pvt q r rd rep reps rev rt s sen
    sens sep sept seq sfc sgt spc sq sr st ste supt supts sys t tel tenn thu thurs treas tue
    tues u univ v va vs vt w wed wis wisc wm wyo x y z""".split()
)
# ...and these only when capitalised ("Wash." keeps its period, "wash." does not).
_CAPITALISED_ABBREVIATIONS = frozenset("ark az del ill la mass miss ore pa tex wash".split())

# PTB splits these "assimilations" into two words (gonna -> gon na).
_ASSIMILATIONS = re.compile(
    r"\b(can)(not)\b|\b(gon|wan)(na)\b|\b(got)(ta)\b|\b(lem|gim)(me)\b", re.I
)

# Unicode punctuation the Java tokenizer maps to its ASCII/LaTeX forms.
_UNICODE_MAP = str.maketrans(
    {"\u201c": " `` ", "\u201d": " '' ", "\u2018": "`", "\u2019": "'", "\u2013": " -- ",
     "\u2014": " -- ", "\u2026": " ... ", "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4"}
)  # fmt: skip

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}

# Scanner rules tried in order at each position of a whitespace-separated chunk; first match wins.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "url",
        re.compile(r"(?:https?://|www\.)[^\s\"'<>()\[\]{}]*[\w/]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ),
    ("emoticon", re.compile(r"[:;]-?[()]")),
    ("acronym", re.compile(r"[A-Za-z](?:\.[A-Za-z])+\.?(?!\w)")),
    ("abbrev", re.compile(r"([A-Za-z]+)\.(?!\w)")),
    ("nt_stem", re.compile(r"[A-Za-z]+(?=n't(?!\w))", re.I)),
    ("nt", re.compile(r"n't(?!\w)", re.I)),
    ("latex_quote", re.compile(r"``|''")),
    ("decade", re.compile(r"'\d0s(?!\w)")),
    ("clitic", re.compile(r"'(?:s|re|ll|ve|d|m)(?![\w'])|'n'", re.I)),
    ("number", re.compile(r"[+-]\d+(?:[.,:]\d+)*(?!\w)")),
    # A word may contain - . & / between word characters, , and : between digits (1,000 12:30),
    # and an apostrophe that does not start a clitic (o'neil, but dog 's).
    (
        "word",
        re.compile(
            r"\w+(?:(?:[-.&/]|(?<=\d)[,:](?=\d)"
            r"|(?<=[^\W\d_])'(?!(?:s|re|ll|ve|d|m|t)(?!\w))(?=[^\W\d_]))\w+)*",
            re.I,
        ),
    ),
    ("dots", re.compile(r"\.{3,}")),
    ("bangs", re.compile(r"[!?]+")),
    ("dashes", re.compile(r"--+")),
    ("other", re.compile(r"\S")),
]


def ptb_tokens(text: str) -> list[str]:
    """PTBTokenizer 3.4.1 tokens of one line (lower-cased, punctuation still present)."""
    text = text.replace("\n", " ").translate(_UNICODE_MAP)
    # Java sees characters beyond the BMP as surrogate pairs and drops them ("Untokenizable").
    text = "".join(c for c in text if ord(c) <= 0xFFFF and unicodedata.category(c) != "Cc")
    text = _ASSIMILATIONS.sub(lambda m: " ".join(g for g in m.groups() if g), text)
    tokens: list[str] = []
    for chunk in text.split():
        pos = 0
        while pos < len(chunk):
            for kind, pattern in _RULES:
                m = pattern.match(chunk, pos)
                if not m:
                    continue
                tok = m.group(0)
                if kind == "abbrev" and not _keeps_period(m.group(1)):
                    continue  # ordinary word before a full stop: the word rule takes it
                if kind == "emoticon":
                    tok = tok[:-1] + _BRACKETS[tok[-1]]
                elif kind == "dots":
                    tok = "..."
                elif kind == "dashes":
                    tok = "--"
                elif tok in _BRACKETS:
                    tok = _BRACKETS[tok]
                elif tok == '"':
                    tok = "``" if pos == 0 or tokens[-1] in ("``", "`", "-LRB-") else "''"
                elif tok == "'" and pos == 0:
                    tok = "`"
                tokens.append(tok)
                pos = m.end()
                break
    return [t.lower() for t in tokens]


def _keeps_period(word: str) -> bool:
    low = word.lower()
    return low in _ABBREVIATIONS or (word[0].isupper() and low in _CAPITALISED_ABBREVIATIONS)


def tokenize(caption: str) -> str:
    """coco-caption's tokenisation: PTB tokens, lower-cased, punctuation tokens removed.

    A pure-Python equivalent of pycocoevalcap's PTBTokenizer wrapper (which runs the Stanford
    CoreNLP 3.4.1 jar). It reproduces the Java output on ordinary captions: clitics split
    ("dog's" -> "dog 's", "don't" -> "do n't", "cannot" -> "can not"), hyphenated words, numbers
    (3.5, 1,000, 12:30) and acronyms/abbreviations (u.s., st.) kept whole, "%", "$", "#" split off,
    brackets become "-lrb-"/"-rrb-" (kept, as in coco-caption), "!!!" and "?!" kept as tokens.
    Known differences, all rare in captions: "5:00am" (Java: "5:00 am"), "y'all" (Java "y' all"),
    "'tis" ("'t is"), a capitalised "We're" (Java leaves "We" upper-case), phone numbers and other
    special patterns of the Java lexer, and exotic Unicode (we only map common quotes, dashes,
    ellipsis and fractions, and drop non-BMP characters such as emoji like Java does).
    """
    return " ".join(t for t in ptb_tokens(caption) if t not in PUNCTUATIONS)

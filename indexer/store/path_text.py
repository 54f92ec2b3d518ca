"""The text form in which the database keeps strings that are not valid Unicode: file names.

A POSIX file name is bytes. Python's os functions turn bytes that are not UTF-8 (`caf\\xe9.jpg`
from an old camera, a Windows copy, a ZIP) into lone surrogates (`'caf\\udce9.jpg'`, PEP 383),
and sqlite3 refuses to bind those ("surrogates not allowed"). The store keeps every such string
as valid UTF-8 TEXT with a reversible escape, applied where strings cross into and out of SQLite
(`prepare`), so no SQL changes and the rest of imgcap works on the real path:

- a lone surrogate `'\\udcXX'` becomes ESC + chr(0x10FC00 + 0xXX) (U+10FC80..U+10FCFF);
- a genuine ESC becomes ESC + ESC; ESC is U+10FFFD, the last private-use code point, which no
  real file name uses;
- every other string is unchanged, so databases written before need no migration;
- the escape maps each character on its own (encode(a + b) == encode(a) + encode(b)), so SQL
  that matches a root as a prefix of its paths (LIKE 'root/%', substr(path, 1, length(?)))
  works on the stored form unchanged. An offset computed in Python and passed to substr() must
  count the stored form (`stored_length`), and a value written into SQL text rather than bound
  as a parameter must be `encode`d: only parameters pass through the adapter.

Only the surrogates `os.fsdecode` produces (U+DC80..U+DCFF) are escaped; any other lone
surrogate still fails to bind, as it did, since no file name can hold one.

What a person reads is another form, search/display.py `shown_path`.
"""

from __future__ import annotations

import re
import sqlite3

ESC = "\U0010fffd"
_BYTE_BASE = 0x10FC00  # + the byte value 0x80..0xFF
_SURROGATE_BASE = 0xDC00
_TO_ESCAPE = re.compile("[\udc80-\udcff\U0010fffd]")
_ESCAPED = re.compile("\U0010fffd([\U0010fc80-\U0010fcff\U0010fffd])")


def _escape(m: re.Match) -> str:
    c = m.group()
    return ESC + (ESC if c == ESC else chr(_BYTE_BASE + ord(c) - _SURROGATE_BASE))


def _unescape(m: re.Match) -> str:
    c = m.group(1)
    return ESC if c == ESC else chr(_SURROGATE_BASE + ord(c) - _BYTE_BASE)


def encode(s: str) -> str:
    """The stored form of `s`: valid Unicode, and `s` itself unless it holds a surrogate
    from a file name or ESC."""
    if s.isascii() or not _TO_ESCAPE.search(s):
        return s
    return _TO_ESCAPE.sub(_escape, s)


def stored_length(s: str) -> int:
    """SQLite's length() of `s` as stored: the offsets a query passes to substr() must count
    the stored form, which is longer than `s` where a name's byte was escaped."""
    return len(encode(s))


def decode_text(s: str) -> str:
    """The string whose stored form is `s` (the inverse of `encode`)."""
    if ESC not in s:
        return s
    return _ESCAPED.sub(_unescape, s)


def decode(value: bytes) -> str:
    """sqlite3 text_factory: the UTF-8 bytes of a TEXT value -> the string it stores. It runs
    for every TEXT value read, so the common case is one C decode and one character search
    (a bytes search for ESC's four bytes costs three times as much)."""
    try:
        s = value.decode()
    except UnicodeDecodeError:
        # The error sqlite3's own decoding raises, so callers see a sqlite3.Error as before.
        raise sqlite3.OperationalError(
            f"could not decode a TEXT value as UTF-8: {value[:80]!r}"
        ) from None
    return s if ESC not in s else decode_text(s)


def prepare(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Make `conn` store and read strings through this escape. sqlite3 keeps its adapters for
    the whole process; once one is registered for str, every str parameter (and only exact
    str: subclasses are bound as they are) is passed through `encode`."""
    sqlite3.register_adapter(str, encode)
    conn.text_factory = decode
    return conn

"""The stored form of file names that are not UTF-8 (indexer/store/path_text.py): lossless,
identity on every other string, prefix-preserving, and what a connection binds and reads."""

from __future__ import annotations

import os
import random
import sqlite3

import pytest

from indexer.store import path_text
from indexer.store.path_text import ESC, decode, decode_text, encode

ALPHABET = ["a", "/", ".", "é", "日", "\U0001f600", ESC, "\U0010fc80", "\U0010fcff"] + [
    chr(0xDC80 + b) for b in (0, 0x69, 0x7F)
]


def _random_strings(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, 12))) for _ in range(n)]


def test_round_trip_through_utf8_on_random_names_with_surrogates_and_esc():
    for s in _random_strings(2000):
        stored = encode(s)
        assert decode(stored.encode("utf-8")) == s  # valid UTF-8, and back exactly
        assert decode_text(stored) == s


def test_every_other_string_is_stored_as_it_is():
    for s in ["", "/home/me/Photos/IMG_0001.JPG", "Zürich/café crème.jpg", "日本/\U0001f600.png"]:
        assert encode(s) is s
        assert decode(s.encode()) == s
    # \U0010fc80-\U0010fcff without ESC before them are ordinary characters too
    assert encode("x\U0010fc80") == "x\U0010fc80"
    assert decode_text("x\U0010fc80") == "x\U0010fc80"


def test_the_escape_preserves_prefixes():
    names = _random_strings(300, seed=1)
    for a, b in zip(names, reversed(names), strict=True):
        assert encode(a + b) == encode(a) + encode(b)


def test_a_real_non_utf8_name_is_bound_found_and_read_back(tmp_path):
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg")
    conn = path_text.prepare(sqlite3.connect(":memory:"))
    conn.execute("CREATE TABLE files (path TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO files VALUES (?)", [(name,), ("/x/a" + ESC,), ("/x/b",)])
    assert conn.execute("SELECT path FROM files WHERE path = ?", [name]).fetchone() == (name,)
    prefix = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")
    assert conn.execute("SELECT path FROM files WHERE path LIKE ?", [prefix + "%"]).fetchall() == [
        (name,)
    ]
    stored = conn.execute("SELECT CAST(path AS BLOB) FROM files WHERE path = ?", [name]).fetchone()
    stored[0].decode("utf-8")  # valid UTF-8 in the file


def test_text_that_is_not_utf8_is_a_sqlite_error():
    with pytest.raises(sqlite3.OperationalError, match="UTF-8"):
        decode(b"caf\xe9")

"""The text reader (indexer/models/ocr.py) with the real PP-OCRv4 models: where the words are,
pictures turned or mirrored, tiny and huge ones, and untrusted text cleaned."""

from __future__ import annotations

from PIL import Image, ImageOps
from text_photos import _scene, sign

from indexer.models.ocr import MAX_LINE_CHARS, clean_text


def test_words_and_their_box_in_the_full_pictures_coordinates(text_reader):
    photo = _scene((1600, 1200), 7)
    board = sign("MARMALADE", 90)  # ~ 560 x 125 px
    photo.paste(board, (600, 800))
    wanted = [600 / 1600, 800 / 1200, (600 + board.width) / 1600, (800 + board.height) / 1200]
    calls = []

    def sharper():
        calls.append(1)
        return photo

    small = photo.resize((800, 600))
    (line,) = text_reader.read(small, sharper)
    assert line.text == "MARMALADE" and line.confidence > 0.9 and calls == [1]
    xs, ys = line.box[0::2], line.box[1::2]
    got = [min(xs), min(ys), max(xs), max(ys)]
    assert all(abs(g - w) < 0.04 for g, w in zip(got, wanted, strict=True)), (got, wanted)
    # No text: the detector alone, the sharper picture never decoded.
    sky = Image.linear_gradient("L").resize((800, 600)).convert("RGB")
    assert text_reader.read(sky, sharper) == [] and calls == [1]


def test_turned_mirrored_tiny_and_huge_pictures_give_a_result(text_reader):
    upside_down = _scene((800, 600), 4)
    upside_down.paste(sign("LIGHTHOUSE", 60), (150, 250))
    upside_down = upside_down.rotate(180)
    assert [ln.text for ln in text_reader.read(upside_down)] == ["LIGHTHOUSE"]
    mirrored = ImageOps.mirror(upside_down.rotate(180))
    assert isinstance(text_reader.read(mirrored), list)  # garbage or nothing, never an error
    assert text_reader.read(Image.new("RGB", (3, 3))) == []
    assert text_reader.read(Image.new("L", (40, 12), 255)) == []
    huge = Image.new("RGB", (6000, 4000), (120, 130, 140))  # 24 MP
    huge.paste(sign("ELEPHANT", 200), (2500, 1800))
    assert [ln.text for ln in text_reader.read(huge)] == ["ELEPHANT"]


def test_untrusted_text_is_cleaned():
    assert clean_text("pay\u202egnp.exe") == "paygnp.exe"  # a right-to-left override
    assert clean_text("a\u2066b\u2069c\u200bd\ufeff") == "abcd"  # isolates, zero-width
    assert clean_text("line\x00one\x1b[31m\ttwo\r\n") == "line one [31m two"
    assert clean_text("x" * 1000) == "x" * MAX_LINE_CHARS
    assert clean_text("Cafe\u0301") == "Café"  # one form, so search and FTS agree

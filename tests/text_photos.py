"""Photos that show text, rendered with Debian's DejaVu fonts, for the OCR tests: each carries a
word no other one shows, so a search by that word must find exactly it.

    from text_photos import make_text_photos
    words = make_text_photos(tmp_path / "photos")   # {relative path: its unique word or None}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"


def _scene(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth random picture (no edges a detector could take for text)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(40, 220, (max(2, h // 80), max(2, w // 80), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def sign(text: str, px: int = 56, pad: int = 30) -> Image.Image:
    """Black bold text on a white board."""
    font = ImageFont.truetype(FONT, px)
    x0, y0, x1, y1 = font.getbbox(text)
    board = Image.new("RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), "white")
    ImageDraw.Draw(board).text((pad - x0, pad - y0), text, fill="black", font=font)
    return board


def make_text_photos(root: Path) -> dict[str, str | None]:
    """Write the photos under `root`; returns {relative path: the word only it shows, None for
    the photo with no text}."""
    root.mkdir(parents=True, exist_ok=True)
    words: dict[str, str | None] = {}

    photo = _scene((800, 600), 1)  # a receipt held up in a scene
    photo.paste(sign("BAUHAUS", 64), (180, 200))
    photo.save(root / "receipt.jpg", quality=92)
    words["receipt.jpg"] = "bauhaus"

    board = sign("PARKING ZONE", 52).rotate(14, expand=True, fillcolor=(90, 110, 90))
    photo = _scene((800, 600), 2)  # a street sign, rotated
    photo.paste(board, (120, 180))
    photo.save(root / "sign.jpg", quality=92)
    words["sign.jpg"] = "parking"

    shot = Image.new("RGB", (600, 800), (245, 245, 245))  # a phone screenshot
    draw = ImageDraw.Draw(shot)
    draw.rectangle((0, 0, 600, 90), fill=(40, 90, 200))
    draw.text((30, 25), "Settings", fill="white", font=ImageFont.truetype(FONT, 36))
    draw.text((30, 160), "Wifi password", fill="black", font=ImageFont.truetype(FONT, 34))
    draw.text((30, 230), "hunter2quokka", fill=(60, 60, 60), font=ImageFont.truetype(FONT, 34))
    shot.save(root / "screenshot.png")
    words["screenshot.png"] = "hunter2quokka"

    page = Image.new("RGB", (700, 900), "white")  # a scanned page: all text
    draw = ImageDraw.Draw(page)
    serif = ImageFont.truetype(SERIF, 26)
    lines = ["Minutes of the garden club", "Present: Ann, Bob, Cleo", "Item one: the greenhouse"]
    lines += ["roof needs mending before", "winter; quote from Maxwell", "Item two: compost rota"]
    lines += ["Next meeting in June"]
    for i, line in enumerate(lines):
        draw.text((50, 50 + i * 50), line, fill="black", font=serif)
    page.save(root / "page.png")
    words["page.png"] = "greenhouse"

    _scene((800, 600), 3).save(root / "plain.jpg", quality=92)  # no text
    words["plain.jpg"] = None
    return words


class CountingReader:
    """A TextReader's interface around a real one, counting the pictures it is asked to read:
    the tests' counter, passed in to the run (index_paths text_reader=)."""

    def __init__(self, reader, fail_after: int | None = None):
        self.reader = reader
        self.name = reader.name
        self.calls = 0
        self.fail_after = fail_after  # raise KeyboardInterrupt at this read (a killed run)

    def read(self, image, sharper=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.reader.read(image, sharper)

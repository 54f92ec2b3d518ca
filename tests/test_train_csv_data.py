"""Training CSVs are read as CSV, not as lines: quoted cells may hold line breaks (our own export
writes them), and Unicode line separators inside a caption do not split its row."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from indexer.train.datasets import read_csv


def _images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (8, 8)).save(folder / name)


def test_quoted_line_breaks_and_unicode_separators_stay_in_their_row(tmp_path):
    _images(tmp_path / "images", "a.png", "b.png", "c\rd.png", "e.png")
    text = (
        "path,caption,split\r\n"
        'images/a.png,"a dog\non a bench",train\r\n'
        "images/b.png,a cat\u2028on a mat,train\r\n"
        '"images/c\rd.png",a bird,val\r\n'
        "images/missing.png,a fish,train\r\n"
        "images/e.png,a cow\x1con grass,test\r\n"
    )
    data = tmp_path / "captions.csv"
    data.write_bytes(text.encode("utf-8"))
    ds = read_csv(data)
    got = {e.image_path.name: (e.captions, e.split) for e in ds.examples}
    assert got == {
        "a.png": (("a dog on a bench.",), "train"),
        "b.png": (("a cat on a mat.",), "train"),
        "c\rd.png": (("a bird.",), "val"),
        "e.png": (("a cow on grass.",), "test"),
    }
    # Problems name the line their record starts on: records 2 and 4 span two lines each (a
    # bare CR is a line break too), so the missing image is on line 7.
    assert [(p.row, p.reason) for p in ds.problems] == [
        (7, "image file not found: images/missing.png")
    ]

"""Reading the text in photos during `imgcap index --ocr` (indexer/run/text_reading.py), with the
real PP-OCRv4 models: what is stored, and that no picture is ever read twice."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from dataclasses import replace

import pytest
from text_photos import CountingReader
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import UsageError
from indexer.run.pipeline import index_paths
from indexer.run.text_reading import read_new_text, wants_text
from indexer.store.database import Store
from search.cli.output import print_index_summary


def _texts(db) -> dict[str, tuple[str, int]]:
    """file name -> (its text, its number of stored lines)."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT f.path, t.text, (SELECT count(*) FROM text_lines l"
        " WHERE l.content_hash = t.content_hash) FROM files f"
        " JOIN text_reads t ON t.content_hash = f.content_hash"
    ).fetchall()
    conn.close()
    return {p.rsplit("/", 1)[-1]: (text, n) for p, text, n in rows}


def test_each_photo_is_read_once_and_its_words_stored(text_library, capsys):
    lib = text_library
    texts = _texts(lib["db"])
    assert set(texts) == set(lib["words"])  # every photo read, the one without text too
    for name, word in lib["words"].items():
        text, lines = texts[name]
        if word is None:
            assert (text, lines) == ("", 0)  # no text: a read recorded, no text rows
        else:
            assert word in text.casefold() and lines >= 1
    assert lib["reads"] == len(lib["words"])
    assert lib["summary"].text_read == len(lib["words"])
    assert lib["summary"].text_found == len(lib["words"]) - 1
    print_index_summary(lib["summary"])
    n = len(lib["words"])
    assert f"{n} photos read for text ({n - 1} with text)" in capsys.readouterr().out


def test_copies_moves_and_reruns_never_read_again(text_library, tiny_model, text_reader, tmp_path):
    # The library's database and photos, copied: every path new, every content known.
    root = tmp_path / "photos"
    shutil.copytree(text_library["root"], root)
    db = tmp_path / "lib.db"
    shutil.copy(text_library["db"], db)
    shutil.copy(root / "receipt.jpg", root / "receipt copy.jpg")
    (root / "moved").mkdir()
    (root / "sign.jpg").rename(root / "moved" / "sign.jpg")
    reader = CountingReader(text_reader)
    settings = Settings(db_path=db, workers=1, device="cpu", ocr=True)
    s = index_paths([root], settings, model=tiny_model, text_reader=reader)
    assert s.captioned == 0 and reader.calls == 0 and s.text_read == 0
    assert "bauhaus" in _texts(db)["receipt copy.jpg"][0].casefold()


def test_a_library_indexed_before_is_read_without_recaptioning(
    text_library, tiny_model, text_reader, tmp_path
):
    root = tmp_path / "photos"
    root.mkdir()
    names = ["receipt.jpg", "plain.jpg", "sign.jpg"]
    for name in names:
        shutil.copy(text_library["root"] / name, root / name)
    settings = Settings(db_path=tmp_path / "lib.db", workers=1, device="cpu")
    reader = CountingReader(text_reader)
    first = index_paths([root], settings, model=tiny_model, text_reader=reader)
    assert first.text_read == 0 and reader.calls == 0  # off by default
    assert _texts(settings.db_path) == {}
    # Killed half-way through reading: what was committed stays, nothing is read twice.
    store = Store.open(settings.db_path)
    killer = CountingReader(text_reader, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        read_new_text(store, settings, 10**8, killer, batch_size=1)
    store.close()
    assert len(_texts(settings.db_path)) == 1
    s = index_paths([root], replace(settings, ocr=True), model=tiny_model, text_reader=reader)
    assert s.captioned == 0 and s.unchanged == len(names)
    assert reader.calls == len(names) - 1 == s.text_read
    assert set(_texts(settings.db_path)) == set(names)
    (root / "plain.jpg").unlink()  # its read goes with the last file of its content
    index_paths([root], replace(settings, ocr=True), model=tiny_model, text_reader=reader)
    conn = sqlite3.connect(settings.db_path)
    (reads,) = conn.execute("SELECT count(*) FROM text_reads").fetchone()
    conn.close()
    assert reads == len(names) - 1


def test_a_picture_the_reader_fails_on_gets_a_reason_not_a_stopped_run(
    text_library, tmp_path, text_reader
):
    db = tmp_path / "lib.db"
    shutil.copy(text_library["db"], db)
    conn = sqlite3.connect(db)
    conn.execute(  # the photo without text and the receipt: read again below
        "DELETE FROM text_reads WHERE content_hash IN (SELECT content_hash FROM files"
        " WHERE path LIKE '%/plain.jpg' OR path LIKE '%/receipt.jpg')"
    )
    conn.commit()
    conn.close()

    class Broken(CountingReader):
        def read(self, image, sharper=None):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("onnx says no")
            return self.reader.read(image, sharper)

    store = Store.open(db)
    out = read_new_text(store, Settings(db_path=db), 10**8, Broken(text_reader))
    store.close()
    assert out.read == 2  # the first failed, the second was read all the same
    assert len(out.warnings) == 1 and "onnx says no" in out.warnings[0]
    conn = sqlite3.connect(db)
    problems = conn.execute("SELECT problem FROM text_reads WHERE problem IS NOT NULL").fetchall()
    assert problems == [("text reader error: RuntimeError: onnx says no",)]


def test_models_that_cannot_load_warn_and_a_missing_extra_asked_for_is_an_error(
    text_library, tmp_path, monkeypatch
):
    db = tmp_path / "lib.db"
    shutil.copy(text_library["db"], db)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM text_reads")
    conn.commit()
    conn.close()
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if not installed
    with pytest.raises(UsageError, match=r"pip install 'imgcap\[ocr\]'"):
        wants_text(Settings(ocr=True))
    assert wants_text(Settings()) is False  # off by default: no extra needed
    # Asked for on the command line or in the environment: refused before any work.
    monkeypatch.setenv("IMGCAP_OCR", "1")
    assert Settings.from_env().ocr is True and Settings.from_env(ocr=False).ocr is False
    r = CliRunner().invoke(cli.app, ["index", str(tmp_path), "--db", str(tmp_path / "x.db")])
    assert r.exit_code == 2 and "pip install 'imgcap[ocr]'" in r.output
    assert not (tmp_path / "x.db").exists()
    args = ["index", str(tmp_path), "--db", str(tmp_path / "x.db"), "--dry-run", "--no-ocr"]
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 0, r.output  # --no-ocr wins over the environment
    store = Store.open(db)
    out = read_new_text(store, Settings(db_path=db), 10**8)  # loads its own reader: fails
    store.close()
    assert out.read == 0 and "pip install 'imgcap[ocr]'" in out.warnings[0]


def test_video_keyframes_are_read_and_found_by_their_text(tiny_model, text_reader, tmp_path):
    import av
    import numpy as np
    from PIL import Image
    from text_photos import sign

    from indexer.store.queries import FileFilter, filtered_result_ids
    from search.query import phrase_query

    plain = np.full((240, 320, 3), (40, 90, 160), np.uint8)
    titled = Image.fromarray(plain.copy())
    titled.paste(sign("GIRAFFE", 40), (40, 80))
    path = tmp_path / "clips" / "zoo.mp4"
    path.parent.mkdir()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(20):  # 2 s of sky, then 2 s of the sign
            img = plain if i < 10 else np.asarray(titled)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    settings = Settings(db_path=tmp_path / "v.db", workers=1, device="cpu", ocr=True, video_gap=1.0)
    reader = CountingReader(text_reader)
    s = index_paths([path.parent], settings, model=tiny_model, text_reader=reader)
    assert s.captioned >= 2 and reader.calls == s.text_read == s.captioned  # each keyframe
    assert s.text_found >= 1 and not s.warnings
    conn = sqlite3.connect(settings.db_path)
    flt = FileFilter(text=phrase_query("giraffe"))
    assert len(filtered_result_ids(conn, tiny_model.name, flt)) == s.captioned  # the video
    conn.close()

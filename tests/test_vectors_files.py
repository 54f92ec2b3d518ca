"""Crash safety of the FAISS cache files (issue 11): a writer killed or failing mid-update leaves
the previous state readable, readers never see a half-written set, damaged or missing files mean
a rebuild, and leftovers are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_vectors_update import _add, _delete, _from_scratch, _load, _sync, assert_same_answers

from search.vectors import cache, files

ROOT = Path(__file__).resolve().parents[1]


def _pointer(db) -> dict:
    (p,) = files.index_dir(db).glob("*.json")
    return json.loads(p.read_text())


def test_an_update_that_fails_midway_leaves_the_old_state(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    _add(db, range(30, 35))
    _sync(db)  # the state to keep: a base, a delta
    before = _pointer(db)
    _add(db, range(35, 40))
    _delete(db, [1])
    real, calls = files._save_index, []

    def dies(path, *args):  # the second index file of the update: the caption kind's delta
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, *args)

    monkeypatch.setattr(files, "_save_index", dies)
    with pytest.raises(KeyboardInterrupt):
        _sync(db)
    monkeypatch.setattr(files, "_save_index", real)
    assert _pointer(db) == before, "the pointer still names the old, complete set"
    ids, masked, parts = files.load_set(files.index_dir(db), before)
    assert len(ids) == 35 and masked is None and parts["image"].delta.ntotal == 5
    assert not list(files.index_dir(db).glob(".*.tmp")), "temp files removed on the way out"
    state = _sync(db)  # the next sync redoes the update from the old state
    assert (state["action"], state["vectors"], state["masked"]) == ("update", 39, 1)
    assert_same_answers(_load(db), _from_scratch(db, tmp_path, monkeypatch), db)


def test_a_killed_writer_leaves_a_readable_cache_and_its_leftovers_go(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    before = _pointer(db)
    _add(db, range(30, 40))
    # A separate process dies (no cleanup at all) halfway through writing an index file.
    script = f"""
import os, sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
import faiss
from search.vectors.cache import sync_indexes
def half(index, path):
    open(path, "wb").write(b"FAISS half an index")
    os._exit(9)
faiss.write_index = half
sync_indexes({str(db)!r}, memory_gb=8)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert r.returncode == 9, r.stderr.decode()
    leftovers = list(files.index_dir(db).glob(".*.tmp"))
    assert leftovers and _pointer(db) == before
    # A reader meanwhile: the old state, complete.
    vi = _load(db)["image"]  # stale, so this load also applies the update
    assert vi.ntotal == 40
    # Leftovers of the dead writer go once they are old enough to be nobody's work in progress:
    # every file here is aged past that (the pointer's own files are kept whatever their age).
    old = time.time() - files._STALE_TMP_S - 1
    for p in files.index_dir(db).iterdir():
        os.utime(p, (old, old))
    _add(db, [40])
    _sync(db)
    assert not list(files.index_dir(db).glob(".*.tmp"))
    named = set(_pointer(db)["files"].values())
    assert {p.name for p in files.index_dir(db).glob("*") if p.suffix != ".json"} == named


@pytest.mark.parametrize("damage", ["truncated pointer", "missing file", "garbage delta"])
def test_damaged_or_missing_files_mean_a_rebuild(tmp_path, monkeypatch, damage):
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    _add(db, range(30, 36))
    _sync(db)
    d = files.index_dir(db)
    named = _pointer(db)["files"]
    if damage == "truncated pointer":
        (p,) = d.glob("*.json")
        p.write_text(p.read_text()[:40])
    elif damage == "missing file":
        (d / named["ids"]).unlink()
    else:
        (d / named["caption.delta"]).write_bytes(b"garbage")
    assert _sync(db)["action"] == "rebuild"
    assert_same_answers(_load(db), _from_scratch(db, tmp_path, monkeypatch), db)


def test_readers_see_whole_states_while_a_writer_updates(tmp_path):
    """A reader thread loads and searches while another thread adds rows and syncs: every load
    is one consistent state (both kinds agree, the count is one a commit produced)."""
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    committed = {30}
    errors: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                idx = _load(db)
                image, caption = idx["image"], idx["caption"]
                if list(image.ids) != list(caption.ids):
                    errors.append("kinds disagree")
                if image.ntotal not in committed:
                    errors.append(f"count {image.ntotal} never committed")
                image.search(np.ones(32, np.float32), 5)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for step in range(8):
            new = range(30 + 3 * step, 33 + 3 * step)
            committed.add(33 + 3 * step)
            _add(db, new)
            _sync(db)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert _load(db)["image"].ntotal == 54


def test_an_old_reader_keeps_searching_after_a_new_state_replaced_its_files(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    _add(db, range(30, 33))
    _sync(db)
    old = _load(db)  # memory-maps the current files
    old_files = set(_pointer(db)["files"].values())
    _delete(db, range(10))  # past the masked share: compacted into new files
    assert _sync(db)["action"] == "compact"
    assert not old_files & {p.name for p in files.index_dir(db).iterdir()}, "old files gone"
    ids, _ = old["image"].search(np.ones(32, np.float32), 40)
    assert len(ids) == 33  # its own (older) state, still whole


def test_pointer_of_an_older_layout_is_rebuilt_once(tmp_path):
    db = tmp_path / "p.db"
    _add(db, range(10))
    _sync(db)
    (p,) = files.index_dir(db).glob("*.json")
    p.write_text(json.dumps({**json.loads(p.read_text()), "version": 1}))
    assert _sync(db)["action"] == "rebuild"
    assert _sync(db)["action"] == "none"
    assert os.listdir(files.index_dir(db))


def test_a_reader_whose_set_was_replaced_meanwhile_reads_the_new_one(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    _add(db, range(30))
    _sync(db)
    stale = _pointer(db)  # what a reader read just before a writer published a new set
    _add(db, range(30, 35))
    _sync(db)
    real, calls = files.read_pointer, []

    def first_stale(d, slug):
        calls.append(slug)
        return stale if len(calls) == 1 else real(d, slug)

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although a complete newer set was there")

    monkeypatch.setattr(files, "read_pointer", first_stale)
    monkeypatch.setattr(cache, "build_model", no_build)
    assert _load(db)["image"].ntotal == 35 and len(calls) == 2

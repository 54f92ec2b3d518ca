"""Videos in search and export: a video is found once, at its best-matching keyframe (JSON with
seconds, `holiday.mp4 @ 01:23` on screen); export has one row per video or per keyframe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from search_fixtures import MODEL, Photo, embed_text, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.media.walk import content_hash
from indexer.store.database import Store
from indexer.store.frames import FrameRecord, VideoRecord, frame_key
from indexer.store.queries import FileFilter
from indexer.store.records import FileRecord, ResultRecord
from search.cli import output
from search.display import timecode
from search.export import KEYFRAME_COLUMNS, export, read_export
from search.query import SearchRequest, search

SETTINGS = Settings()
# (seconds, caption) of holiday.mp4's keyframes; two show a cake, the later one more clearly.
KEYFRAMES = [
    (0.0, "a dog running on a beach"),
    (40.0, "a table with a cake"),
    (83.4, "a birthday cake with candles"),
    (3725.0, "people dancing at night"),
]


def _add_video(db_path, path, keyframes, taken_at="2023-07-01T12:00:00+02:00", vid="v1"):
    if not path.exists():  # search never opens it: a stand-in will do
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + vid.encode() * 100)
    st = path.stat()
    h = content_hash(path)  # as the indexer keys a video (the gallery accepts no other key)
    results, frames = [], []
    for at, caption in keyframes:
        ms = round(at * 1000)
        vec = 2.0 * embed_text(caption)
        results.append(ResultRecord(frame_key(h, ms), caption, vec, vec))
        frames.append(FrameRecord(h, ms))
    f = FileRecord(str(path), st.st_size, st.st_mtime_ns, h, 1920, 1080, taken_at)
    with Store.open(db_path) as s:
        s.write_batch(
            MODEL, results, [f], keyframes=frames, videos=[VideoRecord(h, len(frames), 4000.0)]
        )


@pytest.fixture
def db(tmp_path):
    photos = [
        Photo("cake.png", "a chocolate cake on a plate"),
        Photo("beach.png", "waves on a sandy beach"),
    ]
    db_path = make_db(tmp_path / "lib", photos, tmp_path / "i.db")
    _add_video(db_path, tmp_path / "lib" / "holiday.mp4", KEYFRAMES)
    return db_path


def _search(db, text, **kw):
    return search(db, SearchRequest(text=text, **kw), SETTINGS, fake_loader())


@pytest.mark.parametrize("mode", ["hybrid", "image", "caption", "keyword"])
def test_video_found_once_at_its_best_moment(db, mode):
    hits = _search(db, "birthday cake candles", mode=mode, limit=10)
    videos = [h for h in hits if h.path.endswith("holiday.mp4")]
    assert len(videos) == 1  # three keyframes match "cake"-ish words: one hit
    assert videos[0].at_seconds == pytest.approx(83.4)
    assert videos[0].caption == "a birthday cake with candles"
    photos = [h for h in hits if not h.path.endswith("holiday.mp4")]
    assert all(h.at_seconds is None for h in photos)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_limit_counts_videos_once(db):
    # Every keyframe and photo matches "a": the video takes one place of the three.
    hits = _search(db, "a", mode="keyword", limit=3)
    assert len(hits) == 3
    assert sum(h.path.endswith("holiday.mp4") for h in hits) == 1


def test_json_has_seconds_only_for_videos(db):
    hits = _search(db, "dancing at night", limit=5)
    by_name = {h.path.rsplit("/", 1)[1]: h.to_dict() for h in hits}
    assert by_name["holiday.mp4"]["at_seconds"] == pytest.approx(3725.0)
    assert "at_seconds" not in by_name["cake.png"]
    json.dumps(by_name)  # plain data


def test_filters_reach_videos(db, tmp_path):
    in_lib = FileFilter(folder=str(tmp_path / "lib"))
    hits = _search(db, "dog beach", filters=in_lib, limit=10)
    assert any(h.path.endswith("holiday.mp4") and h.at_seconds == 0.0 for h in hits)
    summer = FileFilter(after="2023-06", before="2023-08")
    hits = _search(db, "dog beach", filters=summer, limit=10)
    assert [h.path.rsplit("/", 1)[1] for h in hits] == ["holiday.mp4"]


def test_on_screen_time(db, capsys):
    assert timecode(83.4) == "01:23"
    assert timecode(3725.0) == "1:02:05"
    hits = _search(db, "birthday cake candles", limit=2)
    output.print_hits(hits, "hybrid", terminal=False)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "holiday.mp4" in ln)
    fields = line.split("\t")
    assert fields[2].endswith("holiday.mp4")  # the path stays a path
    assert fields[3].startswith("@ 01:23 ")
    output.print_hits(hits, "hybrid", terminal=True)
    assert "@ 01:23" in capsys.readouterr().out


def test_export_one_row_per_video_by_default(db, tmp_path):
    n = export(db, str(tmp_path / "out.csv"), SETTINGS)
    rows = read_export(tmp_path / "out.csv")
    assert n == len(rows) == 3
    (video,) = [r for r in rows if r["path"].endswith("holiday.mp4")]
    assert video["caption"] == " | ".join(c for _, c in KEYFRAMES)
    assert (video["width"], video["height"]) == (1920, 1080)
    assert "at_seconds" not in video


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_one_row_per_keyframe(db, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    n = export(db, str(out), SETTINGS, keyframes=True)
    rows = read_export(out)
    assert n == len(rows) == 2 + len(KEYFRAMES)
    assert all(set(r) == set(KEYFRAME_COLUMNS) for r in rows)
    video = [r for r in rows if r["path"].endswith("holiday.mp4")]
    assert [(r["at_seconds"], r["caption"]) for r in video] == KEYFRAMES  # in time order
    assert all(r["at_seconds"] is None for r in rows if not r["path"].endswith(".mp4"))


def test_export_cli_keyframes_option(db, tmp_path):
    out = tmp_path / "k.jsonl"
    res = CliRunner().invoke(cli.app, ["export", str(out), "--db", str(db), "--keyframes"])
    assert res.exit_code == 0, res.output
    assert len(read_export(out)) == 2 + len(KEYFRAMES)
    assert f"exported {2 + len(KEYFRAMES)} rows" in res.output


def test_deleted_video_file_is_not_shown(db, tmp_path):
    (tmp_path / "lib" / "holiday.mp4").unlink()
    hits = _search(db, "birthday cake candles", limit=10)
    assert hits and not any(h.path.endswith("holiday.mp4") for h in hits)


def test_frame_vectors_are_searchable_like_photos(db):
    # The FAISS cache holds keyframes like photos: as many vectors as results.
    from indexer.store.connection import connect_readonly
    from search.vectors import cache

    conn = connect_readonly(db)
    try:
        indexes = cache.load_model(db, conn, MODEL)
        assert indexes["image"].ntotal == 2 + len(KEYFRAMES)
    finally:
        conn.close()


def test_gallery_shows_a_video_once_with_a_still(tmp_path):
    pytest.importorskip("av")
    from serve_fixtures import client, make_gallery
    from video_factory import make_video

    root, db = make_gallery(tmp_path)
    make_video(root / "holiday.mp4", seconds=3, cuts=(), black_until=1.0)
    _add_video(db, root / "holiday.mp4", KEYFRAMES)
    c = client(db)
    hits = c.get("/api/search", params={"q": "birthday cake", "n": 20}).json()["hits"]
    videos = [h for h in hits if h["path"].endswith("holiday.mp4")]
    assert len(videos) == 1 and videos[0]["at_seconds"] == pytest.approx(83.4)
    dog = next(h["id"] for h in hits if h["path"].endswith("dog_beach.png"))
    similar = c.get(f"/api/similar/{dog}", params={"n": 50}).json()["hits"]
    assert [h["path"].endswith("holiday.mp4") for h in similar].count(True) == 1
    page = c.get("/", params={"q": "birthday cake"}).text
    assert page.count("@ 01:23") == 1  # the card of the video, at its moment
    thumb = c.get(f"/thumb/{videos[0]['id']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    from PIL import Image

    still = np.asarray(Image.open(BytesIO(thumb.content)).convert("RGB"), dtype=np.float32)
    assert still.std() > 20  # a picture from after the black leader, not the placeholder


def test_status_counts_a_video_once(db):
    from indexer.store.connection import connect_readonly
    from indexer.store.queries import status_counts

    conn = connect_readonly(db)
    try:
        counts = status_counts(conn)
    finally:
        conn.close()
    assert counts["files"] == 3
    assert counts["models"][MODEL] == {"results": 2 + len(KEYFRAMES), "photos": 3}


def test_a_persons_video_caption_is_the_whole_videos_in_search_export_and_gallery(tmp_path):
    from serve_fixtures import BASE, client, make_gallery

    root, db = make_gallery(tmp_path)
    _add_video(db, root / "holiday.mp4", KEYFRAMES)
    c = client(db)
    vid = next(
        h["id"]
        for h in c.get("/api/search", params={"q": "cake", "n": 20}).json()["hits"]
        if h["path"].endswith("holiday.mp4")
    )
    ours = "Grandma's zebra birthday"
    r = c.post(f"/api/photo/{vid}/caption", json={"caption": ours}, headers={"Origin": BASE})
    assert r.status_code == 200, r.text
    assert (r.json()["caption"], r.json()["caption_source"]) == (ours, "user")
    hits = _search(db, "zebra", mode="keyword", limit=10)  # found whichever keyframe matched
    assert [(h.path, h.caption) for h in hits] == [(str(root / "holiday.mp4"), ours)]
    assert 'class="edited"' in c.get("/", params={"q": "zebra"}).text
    export(db, str(tmp_path / "out.csv"), SETTINGS)
    (row,) = [r for r in read_export(tmp_path / "out.csv") if r["path"].endswith(".mp4")]
    assert (row["caption"], row["source"]) == (ours, "user")  # once, not once per keyframe
    r = c.post(f"/api/photo/{vid}/caption", json={"caption": None}, headers={"Origin": BASE})
    assert r.json()["caption_source"] == "generated"
    export(db, str(tmp_path / "out.csv"), SETTINGS)
    (row,) = [r for r in read_export(tmp_path / "out.csv") if r["path"].endswith(".mp4")]
    assert row["caption"] == " | ".join(c for _, c in KEYFRAMES)  # each keyframe's own again


def test_a_videos_own_tags_find_it(db, tmp_path):
    from indexer.store import photo_tags

    video = tmp_path / "lib" / "holiday.mp4"
    st = video.stat()
    row = photo_tags.TagRow(str(video), ["Grandma"], None, st.st_size, st.st_mtime_ns, "", [])
    with Store.open(db) as s:
        photo_tags.save(s.db, [row])
    hits = _search(db, "grandma", mode="keyword", limit=10)
    assert [h.path for h in hits] == [str(video)]  # once, though every keyframe carries it
    assert hits[0].tags == ["Grandma"]
    tagged = _search(db, "", filters=FileFilter(tags=("grandma",)), limit=10)
    assert [h.path for h in tagged] == [str(video)]


def test_filters_alone_list_a_video_once(db, tmp_path):
    hits = _search(db, None, filters=FileFilter(folder=str(tmp_path / "lib")))
    # dated first (the video), undated photos after by path; no moment: nothing was asked
    assert [h.path.rsplit("/", 1)[1] for h in hits] == ["holiday.mp4", "beach.png", "cake.png"]
    assert hits[0].at_seconds is None and hits[0].caption == "a dog running on a beach"

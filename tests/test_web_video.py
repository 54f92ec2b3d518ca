"""Videos in the gallery: the page lists each keyframe's caption with its time, plays the video
from the matched moment where browsers play its codec (the still otherwise), the original is sent
with Range support so a <video> seeks, the API has the video's captions, and "more like this"
works from its keyframes."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from search_fixtures import MODEL
from serve_fixtures import client, ids_by_name
from video_gallery import KEYFRAMES, make_video_gallery

from indexer.store import photos as photo_rows
from indexer.store.connection import connect_readonly


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root, db = make_video_gallery(tmp_path_factory.mktemp("video_gallery"))
    c = client(db)
    return root, db, c, ids_by_name(c)


def test_api_photo_of_a_video_has_its_caption_and_frames(gallery):
    _, _, c, ids = gallery
    body = c.get(f"/api/photo/{ids['beach.mp4']}").json()
    assert body["caption"] == KEYFRAMES[0][1]  # the first moment stands for the video
    assert body["caption_source"] == "generated"
    assert body["frames"] == [{"at_seconds": at, "caption": cap} for at, cap in KEYFRAMES]
    assert "frames" not in c.get(f"/api/photo/{ids['dog_beach.png']}").json()


def test_video_page_lists_moments_and_plays_from_the_matched_one(gallery):
    _, _, c, ids = gallery
    vid = ids["beach.mp4"]
    # A search hit links to its matched moment.
    hits = c.get("/api/search", params={"q": "birthday cake candles", "mode": "caption"}).json()
    hit = next(h for h in hits["hits"] if h["id"] == vid)
    assert hit["at_seconds"] == 2.0
    cards = c.get("/", params={"q": "birthday cake candles", "mode": "caption"}).text
    assert f'href="/photo/{vid}?t=2.0"' in cards

    page = c.get(f"/photo/{vid}", params={"t": "2.0"}).text
    moments = re.findall(
        r"<li( class=\"matched\")?><a [^>]*><time>([^<]+)</time> ([^<]+)</a>", page
    )
    assert [(t, cap) for _, t, cap in moments] == [
        ("00:00", "a dog running on a beach"),
        ("00:02", "a birthday cake with candles"),
        ("00:04", "people dancing at night"),
    ]
    assert [bool(m) for m, _, _ in moments] == [False, True, False]
    assert re.search(rf'<video id="player"[^>]* src="/original/{vid}#t=2.0"', page)
    assert 'id="no-playback"' not in page
    assert 'id="edit-caption"' in page
    assert "(no caption for this model)" not in page
    # No moment asked: from the start. A nonsense one is ignored, never an error.
    for t in (None, "nan", "abc", "-5"):
        page = c.get(f"/photo/{vid}", params={} if t is None else {"t": t}).text
        assert re.search(rf'<video id="player"[^>]* src="/original/{vid}"', page), t


def test_a_codec_browsers_cannot_play_shows_the_still(gallery):
    _, _, c, ids = gallery
    page = c.get(f"/photo/{ids['old.mp4']}").text
    assert "<video" not in page
    assert f'<img id="preview" src="/preview/{ids["old.mp4"]}' in page
    assert "all play mpeg4 video" in page  # why, in words
    assert "00:02</time> a birthday cake with candles" in page


def test_original_video_answers_range_requests(gallery):
    root, _, c, ids = gallery
    data = (root / "videos" / "beach.mp4").read_bytes()
    whole = c.get(f"/original/{ids['beach.mp4']}")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    n = len(data)
    for asked, (lo, hi) in [("bytes=100-199", (100, 200)), ("bytes=-50", (n - 50, n)),
                            ("bytes=1000-", (1000, n))]:  # fmt: skip
        r = c.get(f"/original/{ids['beach.mp4']}", headers={"Range": asked})
        assert r.status_code == 206, asked
        assert r.content == data[lo:hi]
        assert r.headers["content-range"] == f"bytes {lo}-{hi - 1}/{len(data)}"
        assert r.headers["content-type"] == "video/mp4"
    r = c.get(f"/original/{ids['beach.mp4']}", headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416


def test_more_like_this_for_a_video_uses_its_keyframes(gallery):
    _, db, c, ids = gallery
    vid = ids["beach.mp4"]
    hits = c.get(f"/api/similar/{vid}", params={"n": 50}).json()["hits"]
    names = [Path(h["path"]).name for h in hits]
    assert "beach.mp4" not in names  # never itself, at any of its moments
    assert len(names) == len(set(names)) == 6  # the five photos and the other video, once each
    # Naive: each file's best cosine between any of its stored image vectors (a video's
    # keyframes) and any of this video's keyframes.
    conn = connect_readonly(db)
    try:

        def vectors(file_id):
            row = photo_rows.photo(conn, file_id, MODEL)
            rids = [k["result_id"] for k in photo_rows.keyframes(conn, row["content_hash"], MODEL)]
            vecs = [photo_rows.image_vector(conn, r) for r in rids or [row["result_id"]]]
            return [v / np.linalg.norm(v) for v in vecs]

        mine = vectors(vid)
        expected = [max(float(a @ b) for a in mine for b in vectors(h["id"])) for h in hits]
    finally:
        conn.close()
    assert names[0] == "old.mp4"  # shares two of its moments
    assert hits[0]["at_seconds"] in (0.0, 2.0)
    # dog_beach.png is nearest the first moment, not the video's average: it comes next.
    assert names[1] == "dog_beach.png"
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx(expected, abs=1e-3)
    page = c.get(f"/photo/{vid}").text
    assert "No other photos yet" not in page and page.count('class="card"') == 6


def test_a_moments_still_is_that_keyframe(gallery):
    root, _, c, ids = gallery
    from video_factory import scene

    def frame(url):
        r = c.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", url
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), dtype=float)

    vid = ids["beach.mp4"]
    for at_ms, k in ((0, 0), (2000, 1), (4000, 2)):  # the scenes cut at 2 s and 4 s
        got = frame(f"/preview/{vid}?at={at_ms}")
        assert got.shape == (96, 160, 3)
        diffs = [np.abs(got - scene(j, 160, 96)).mean() for j in range(3)]
        assert int(np.argmin(diffs)) == k, (at_ms, diffs)
    for bad, status in (("1234", 404), ("-1", 404), ("x", 400), (str(2**70), 404)):
        assert c.get(f"/preview/{vid}?at={bad}").status_code == status, bad
    # An unplayable video's page shows the matched moment's still; its moments link there.
    page = c.get(f"/photo/{ids['old.mp4']}", params={"t": "2.0"}).text
    assert re.search(rf'<img id="preview" src="/preview/{ids["old.mp4"]}\?v=\w+&amp;at=2000"', page)
    assert f'href="/photo/{ids["old.mp4"]}?t=2.0"' in page
    page = c.get(f"/photo/{vid}", params={"t": "4.5"}).text  # the poster of the player
    assert re.search(rf'poster="/preview/{vid}\?v=\w+&amp;at=4000"', page)


def test_editing_a_video_captions_the_whole_video(gallery):
    _, _, c, ids = gallery
    vid = ids["old.mp4"]
    r = c.post(f"/api/photo/{vid}/caption", json={"caption": "Grandma's zebra party"})
    assert r.status_code == 200, r.text
    try:
        body = c.get(f"/api/photo/{vid}").json()
        assert (body["caption"], body["caption_source"]) == ("Grandma's zebra party", "user")
        # Each moment keeps the model's words for it: the list still says what is where.
        assert body["frames"] == [{"at_seconds": at, "caption": cap} for at, cap in KEYFRAMES[:2]]
        page = c.get(f"/photo/{vid}").text
        assert "Your caption" in page and "00:02</time> a birthday cake with candles" in page
        hits = c.get("/api/search", params={"q": "zebra party", "mode": "caption"}).json()
        assert hits["hits"][0]["id"] == vid
    finally:
        assert c.post(f"/api/photo/{vid}/caption", json={"caption": None}).status_code == 200

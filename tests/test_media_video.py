"""Keyframe selection (indexer/media/video.py) on small videos made here with PyAV, and the
selection rule itself against a naive reading of its spec."""

from __future__ import annotations

import numpy as np
import pytest
from video_factory import break_video, make_video

from indexer.errors import BadImageError
from indexer.media.decode import check_header
from indexer.media.kinds import looks_like_video
from indexer.media.video import (
    BLANK_STD,
    SCENE_THRESHOLD,
    Keyframe,
    KeyframeSelector,
    decode_for_model,
    difference,
    select_keyframes,
    thin,
)

pytest.importorskip("av")

STEP = 0.25 + 0.1  # analysis step (1 / ANALYSIS_FPS) plus one frame at 10 fps


def times(path, gap=1.0, cap=20, key_only=False, **kw):
    """Keyframe times; every frame decoded unless `key_only` (None: decided from the packets)."""
    info, frames = select_keyframes(path, 64, gap, cap, key_only=key_only, **kw)
    return info, [f.at for f in frames]


def test_keyframe_lands_on_the_scene_cut(tmp_path):
    info, at = times(make_video(tmp_path / "cut.mp4", seconds=6, cuts=(3.3,)))
    assert len(at) == 2
    assert at[0] == 0.0
    assert abs(at[1] - 3.3) <= STEP
    assert info.duration == pytest.approx(6.0, abs=0.2)
    assert info.frames_decoded == 60
    assert info.frames_compared < info.frames_decoded  # only ANALYSIS_FPS of them compared


def test_each_cut_in_mkv_webm_and_avi(tmp_path):
    cuts = (1.5, 4.0)
    for name, codec in (("a.mkv", "libx264"), ("b.webm", "libvpx-vp9"), ("c.avi", "mpeg4")):
        _, at = times(make_video(tmp_path / name, seconds=6, cuts=cuts, codec=codec))
        assert len(at) == 3, name
        for got, cut in zip(at[1:], cuts, strict=True):
            assert abs(got - cut) <= STEP, (name, at)


def test_at_most_one_keyframe_every_gap_seconds(tmp_path):
    cuts = (1.0, 1.4, 1.8, 2.2, 5.0)
    _, at = times(make_video(tmp_path / "fast.mp4", seconds=7, cuts=cuts), gap=2.0)
    assert all(b - a >= 2.0 for a, b in zip(at, at[1:], strict=False)), at
    # Cuts that come too soon are taken once the gap has passed: 0, ~2 (the scene since 1.8),
    # ~4 (since 2.2), ~6 (since 5.0): the last scene is never lost.
    assert len(at) == 4 and at[-1] >= 5.0, at


def test_cap_spreads_keyframes_over_the_whole_video(tmp_path):
    cuts = tuple(float(c) for c in range(1, 20))  # a cut every second for 20 s
    _, at = times(make_video(tmp_path / "long.mp4", seconds=20, cuts=cuts, fps=5), gap=1.0, cap=4)
    assert 2 <= len(at) <= 4
    assert at[-1] >= 10.0, at  # not the first four seconds only
    assert all(b - a >= 2.0 for a, b in zip(at, at[1:], strict=False))


def test_codec_keyframes_only_when_they_are_dense(tmp_path):
    # A phone writes an I-frame every second: only those are decoded, and each cut is found
    # within one of them (here the encoder also starts an I-frame at the cut itself).
    cuts = (2.5, 5.5)
    phone = make_video(tmp_path / "phone.mp4", seconds=8, cuts=cuts, gop=10)
    info, at = times(phone, gap=1.0, key_only=None)
    assert info.key_only and info.frames_in_video == 80
    assert info.frames_decoded <= 8 + len(cuts) + 1  # one a second, plus one per cut
    _, full = times(phone, gap=1.0, key_only=False)
    assert len(at) == len(full) == 3
    for got, cut in zip(at[1:], cuts, strict=True):
        assert cut - 0.01 <= got <= cut + 1.0
    # Codec keyframes 10 s apart and none at the cuts: every frame is decoded.
    sparse = make_video(
        tmp_path / "sparse.mp4", seconds=8, cuts=cuts, gop=100, options={"sc_threshold": "0"}
    )
    info, at = times(sparse, gap=1.0, key_only=None)
    assert not info.key_only and info.frames_decoded == 80
    assert all(abs(got - cut) <= STEP for got, cut in zip(at[1:], cuts, strict=True))


def test_black_leader_is_never_a_keyframe(tmp_path):
    _, at = times(make_video(tmp_path / "fade.mp4", seconds=4, cuts=(), black_until=1.0))
    assert len(at) == 1 and 1.0 <= at[0] <= 1.0 + STEP


def test_all_black_video_gives_its_first_frame(tmp_path):
    _, at = times(make_video(tmp_path / "black.mp4", seconds=2, cuts=(), black_until=9.0))
    assert at == [0.0]


def test_slow_pan_adds_keyframes_without_a_cut(tmp_path):
    path = make_video(tmp_path / "pan.mp4", seconds=8, cuts=(), drift=12.0, size=(192, 96))
    _, at = times(path, gap=1.0)
    _, still = times(make_video(tmp_path / "still.mp4", seconds=8, cuts=()), gap=1.0)
    assert still == [0.0]
    assert len(at) >= 2  # the picture drifted past the threshold


def test_rotated_video_is_turned_upright(tmp_path):
    plain = make_video(tmp_path / "plain.mp4", seconds=1, cuts=(), size=(160, 96))
    turned = make_video(tmp_path / "turned.mp4", seconds=1, cuts=(), size=(160, 96), rotate=90)
    info, frames = select_keyframes(turned, 96, 1.0, 5)
    _, ref = select_keyframes(plain, 96, 1.0, 5)
    assert (info.width, info.height) == (96, 160)
    got = np.asarray(frames[0].image, dtype=np.float32)
    want = np.rot90(np.asarray(ref[0].image, dtype=np.float32))  # anticlockwise, as displayed
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 8  # same picture (codec noise only)
    assert np.abs(got - np.rot90(want, 2)).mean() > 20  # and not upside down


def test_container_metadata(tmp_path):
    meta = {
        "creation_time": "2023-07-01T12:00:05.000000Z",
        "location": "+48.8584+002.2945/",
    }
    info, _ = select_keyframes(make_video(tmp_path / "m.mp4", seconds=1, metadata=meta), 64, 1, 5)
    assert info.taken_at == "2023-07-01T12:00:05+00:00"
    assert (info.gps_lat, info.gps_lon) == pytest.approx((48.8584, 2.2945))
    info, _ = select_keyframes(make_video(tmp_path / "n.mp4", seconds=1), 64, 1, 5)
    assert info.taken_at is None and info.gps_lat is None


def test_worker_task_protocol(tmp_path):
    res = decode_for_model(str(make_video(tmp_path / "v.mp4", cuts=(2.0,))), 32, 1.0, 10, 10**8)
    assert res[0] == "ok"
    _, meta, pixels, extras = res
    assert pixels.shape == (2, 32, 32, 3) and pixels.dtype == np.uint8
    assert [e["at_s"] for e in extras][0] == 0.0 and abs(extras[1]["at_s"] - 2.0) <= STEP
    assert {e["keyframes"] for e in extras} == {2}
    assert (meta["width"], meta["height"]) == (160, 96)


def test_broken_and_misnamed_videos_fail_with_a_reason(tmp_path):
    broken = break_video(make_video(tmp_path / "broken.mp4"))
    with pytest.raises(BadImageError, match="video"):
        select_keyframes(broken, 64, 1, 5)
    assert decode_for_model(str(broken), 32, 1.0, 5, 10**8)[0] == "bad"
    fake = tmp_path / "notes.mov"
    fake.write_text("not a video at all, just some words in a file" * 4)
    with pytest.raises(BadImageError, match="not a video"):
        check_header(fake)
    check_header(make_video(tmp_path / "ok.mov"))  # a real one passes


def test_too_many_pixels_is_refused(tmp_path):
    with pytest.raises(BadImageError, match="too large"):
        select_keyframes(make_video(tmp_path / "v.mp4", seconds=1), 64, 1, 5, max_pixels=1000)


def test_container_signatures():
    assert looks_like_video(b"\x00\x00\x00\x18ftypmp42")
    assert looks_like_video(b"\x1a\x45\xdf\xa3\x01\x00")
    assert looks_like_video(b"RIFF\x00\x00\x00\x00AVI LIST")
    assert not looks_like_video(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert not looks_like_video(b"\xff\xd8\xff\xe0")


# ------------------------------------------------------------------ the rule, against a naive one
def _thumb(rng, k: int) -> np.ndarray:
    """A textured thumbnail of scene k (plus a little noise), or blank for k < 0."""
    if k < 0:
        return np.zeros((8, 8, 3), np.float32)
    base = np.random.default_rng(k).random((8, 8, 3), dtype=np.float32)
    return np.clip(base + rng.normal(0, 0.01, base.shape).astype(np.float32), 0, 1)


def _naive(seq, gap):
    """The rule as written, no cap: a non-blank frame is a keyframe if it is the first, or if
    `gap` has passed since the last keyframe and it differs from it by more than the threshold."""
    out: list[tuple[float, np.ndarray]] = []
    for at, th in seq:
        if th.std() < BLANK_STD:
            continue
        if not out or (at - out[-1][0] >= gap and np.abs(th - out[-1][1]).mean() > SCENE_THRESHOLD):
            out.append((at, th))
    return [at for at, _ in out] or [at for at, th in seq[:1]]


@pytest.mark.parametrize("seed", range(12))
def test_selector_matches_the_naive_rule_without_cap(seed):
    rng = np.random.default_rng(seed)
    scenes = np.cumsum(rng.random(200) < 0.1) - (rng.random(200) < 0.05) * 10**6
    seq = [(i * 0.25, _thumb(rng, int(k) if k >= 0 else -1)) for i, k in enumerate(scenes)]
    gap = float(rng.choice([0.0, 0.5, 2.0, 5.0]))
    sel = KeyframeSelector(gap, max_frames=10**6)
    for at, th in seq:
        if sel.wants(at, th):
            sel.add(Keyframe(at, None, th))
    assert [f.at for f in sel.result()] == _naive(seq, gap)


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_selector_cap_holds_and_keeps_the_gap(cap):
    rng = np.random.default_rng(cap)
    sel = KeyframeSelector(1.0, max_frames=cap)
    for i in range(400):
        at = i * 0.5
        th = _thumb(rng, i)  # every frame a new scene
        if sel.wants(at, th):
            sel.add(Keyframe(at, None, th))
    at = [f.at for f in sel.result()]
    assert 1 <= len(at) <= cap
    assert all(b - a >= sel.gap for a, b in zip(at, at[1:], strict=False))
    if cap > 1:
        assert at[-1] >= 100.0  # spread over the 200 s, not bunched at the start


def test_thin_and_difference():
    fr = [Keyframe(t, None, np.zeros(1)) for t in (0, 1, 2.5, 3, 6)]
    assert [f.at for f in thin(fr, 2.0)] == [0, 2.5, 6]
    assert difference(np.zeros((2, 2, 3)), np.ones((2, 2, 3))) == 1.0


def test_truncated_video_keeps_what_decodes(tmp_path):
    full = make_video(tmp_path / "full.mkv", seconds=8, cuts=(1.0, 5.0))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])  # a broken download
    info, at = times(cut)
    assert at[0] == 0.0 and 1 <= len(at) < 3  # the start is indexed, the lost end is not
    assert info.frames_decoded < 80


def test_audio_only_file_is_not_a_video(tmp_path):
    import av

    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        for _ in range(5):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(BadImageError, match="no video stream"):
        select_keyframes(path, 64, 1, 5)

"""The synthetic shapes world: deterministic, captions that say what is drawn, all data formats."""

from __future__ import annotations

import pytest

from indexer.train.datasets import load_dataset
from indexer.train.synthetic import (
    BACKGROUNDS,
    CENTRED_BACKGROUNDS,
    COLOURS,
    PLURALS,
    SHAPES,
    generate_scenes,
    write_dataset,
)

COUNT_WORDS = {1: "a", 2: "two", 3: "three"}


def test_same_seed_same_scenes_and_scene_i_does_not_depend_on_n():
    a = generate_scenes(6, seed=3)
    b = generate_scenes(10, seed=3)[:6]
    assert [s.captions for s in a] == [s.captions for s in b]
    assert [s.image.tobytes() for s in a] == [s.image.tobytes() for s in b]
    c = generate_scenes(6, seed=4)
    assert [s.captions for s in a] != [s.captions for s in c]


def test_captions_describe_the_first_group_and_end_with_the_stop_token():
    for scene in generate_scenes(60, seed=0, size=64):
        attrs = scene.attributes
        assert scene.image.size == (64, 64) and scene.image.mode == "RGB"
        assert attrs["shape"] in SHAPES and attrs["colour"] in COLOURS
        assert attrs["background"] in BACKGROUNDS and attrs["background"] != attrs["colour"]
        assert 3 <= len(scene.captions) <= 5 and len(set(scene.captions)) == len(scene.captions)
        noun = attrs["shape"] if attrs["count"] == 1 else PLURALS[attrs["shape"]]
        phrase = f"{COUNT_WORDS[attrs['count']]} {attrs['colour']} {noun}"
        assert scene.captions[0] == f"{phrase} on a {attrs['background']} background."
        for caption in scene.captions:
            assert caption.endswith(".") and not caption.endswith("..")
            assert phrase in caption and attrs["background"] in caption


def test_pixels_show_the_described_colours():
    for scene in generate_scenes(30, seed=1, size=96):
        group = scene.attributes["groups"][0]
        x, y = group.positions[0]
        assert _close(scene.image.getpixel((int(x * 96), int(y * 96))), COLOURS[group.colour])
        # Shapes stay clear of the corners, so a corner shows the background.
        assert _close(scene.image.getpixel((0, 0)), BACKGROUNDS[scene.attributes["background"]])
        assert len(group.positions) == group.count


def test_two_kinds_of_shape():
    scenes = generate_scenes(40, seed=2, max_kinds=2)
    mixed = [s for s in scenes if len(s.attributes["groups"]) == 2]
    assert mixed, "some scenes should have two kinds of shape"
    for s in mixed:
        first, second = s.attributes["groups"]
        assert (first.shape, first.colour) != (second.shape, second.colour)
        assert " and " in s.captions[0]
        assert first.count + second.count <= 3


def test_centred_layout_one_big_shape_in_the_middle():
    a = generate_scenes(40, seed=5, size=64, layout="centred")
    assert [s.image.tobytes() for s in a[:6]] == [
        s.image.tobytes() for s in generate_scenes(6, seed=5, size=64, layout="centred")
    ]
    assert {s.attributes["shape"] for s in a} == set(SHAPES)
    for scene in a:
        attrs = scene.attributes
        assert attrs["count"] == 1 and len(attrs["groups"]) == 1
        assert attrs["background"] in CENTRED_BACKGROUNDS
        phrase = f"a {attrs['colour']} {attrs['shape']}"
        assert scene.captions[0] == f"{phrase} on a {attrs['background']} background."
        assert all(phrase in c and c.endswith(".") for c in scene.captions)
        assert _close(scene.image.getpixel((32, 32)), COLOURS[attrs["colour"]])
        for corner in ((0, 0), (63, 0), (0, 63), (63, 63)):
            assert _close(scene.image.getpixel(corner), BACKGROUNDS[attrs["background"]])
        # Big: even a triangle (1.3 r², the smallest shape) covers ~a tenth of the image.
        fill = COLOURS[attrs["colour"]]
        covered = sum(_close(p, fill) for p in scene.image.getdata()) / 64**2
        assert covered > 0.08, (scene.id, covered)


def test_bad_size_or_layout_is_refused():
    with pytest.raises(ValueError):
        generate_scenes(1, seed=0, size=16)
    with pytest.raises(ValueError, match="layout"):
        generate_scenes(1, seed=0, layout="spiral")


@pytest.mark.parametrize("fmt", ["coco", "karpathy", "csv", "folder"])
def test_write_dataset_round_trips_through_the_readers(tmp_path, fmt):
    target = write_dataset(tmp_path / fmt, 5, seed=7, fmt=fmt, size=48)
    data = load_dataset(target)
    assert data.format == fmt
    assert data.problems == []
    scenes = generate_scenes(5, seed=7, size=48)
    by_name = {e.image_path.stem: e for e in data.examples}
    assert sorted(by_name) == sorted(s.id for s in scenes)
    for s in scenes:
        ex = by_name[s.id]
        assert list(ex.captions) == s.captions
        assert ex.image_path.is_file()
        assert ex.split == ("" if fmt == "folder" else "train")


def _close(a, b, tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))

"""Dataset readers: every format into Examples; bad rows become Problems, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from indexer.errors import UsageError
from indexer.train.datasets import (
    Example,
    detect_format,
    load_dataset,
    normalise_caption,
    read_csv,
    read_folder,
    write_examples,
)


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


def reasons(data) -> list[str]:
    return [p.reason for p in data.problems]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A dog on a couch", "A dog on a couch."),
        ("A dog on a couch.", "A dog on a couch."),
        ("  A dog\non   a couch .  ", "A dog on a couch."),
        ("Is that a cat?", "Is that a cat."),
        ("A dog...", "A dog."),
        ("A sign at the U.S.", "A sign at the U.S."),
        ("", ""),
        (" . ", ""),
    ],
)
def test_normalise_caption(raw, expected):
    assert normalise_caption(raw) == expected


# --- COCO ------------------------------------------------------------------------------------


def test_coco_captions_json_with_bad_rows(tmp_path):
    png(tmp_path / "images" / "a.jpg")
    png(tmp_path / "images" / "b.jpg")
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg"},
            {"id": 2, "file_name": "b.jpg"},
            {"id": 3, "file_name": "gone.jpg"},  # row 2: file missing
            {"file_name": "noid.jpg"},  # row 3: no id
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "A red circle"},
            {"id": 11, "image_id": 1, "caption": "one red circle."},
            {"id": 12, "image_id": 2, "caption": "   "},  # row 2: empty
            {"id": 13, "image_id": 2, "caption": "A blue square."},
            {"id": 14, "image_id": 3, "caption": "Never seen."},  # image reported already
            {"id": 15, "image_id": 99, "caption": "Orphan."},  # row 5: unknown image
            {"id": 16, "caption": "No image id."},  # row 6
        ],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    assert detect_format(path) == "coco"
    ds = load_dataset(path)
    assert ds.format == "coco"
    assert [(e.image_id, e.captions) for e in ds.examples] == [
        ("1", ("A red circle.", "one red circle.")),
        ("2", ("A blue square.",)),
    ]
    assert ds.examples[0].image_path == tmp_path / "images" / "a.jpg"
    assert [(p.row, p.reason) for p in ds.problems] == [
        (2, "image file not found: gone.jpg"),
        (3, "images entry without id or file_name"),
        (2, "empty caption for image 2"),
        (5, "annotation for unknown image id 99"),
        (6, "annotation without image_id"),
    ]
    assert all(p.file == str(path) for p in ds.problems)
    assert ds.n_captions == 3


def test_coco_official_layout_finds_the_image_folder(tmp_path):
    png(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    ann = tmp_path / "annotations" / "captions_val2014.json"
    ann.parent.mkdir()
    ann.write_text(
        json.dumps(
            {
                "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}],
                "annotations": [{"id": 1, "image_id": 42, "caption": "A man riding a horse."}],
            }
        )
    )
    ds = load_dataset(ann)
    assert ds.problems == [] and ds.examples[0].image_path.parent.name == "val2014"
    # An explicit image folder wins.
    other = tmp_path / "elsewhere"
    png(other / "COCO_val2014_000000000042.jpg")
    assert load_dataset(ann, images_dir=other).examples[0].image_path.parent == other


# --- Karpathy --------------------------------------------------------------------------------


def test_karpathy_coco_style_with_filepath_and_splits(tmp_path):
    png(tmp_path / "train2014" / "t.jpg")
    png(tmp_path / "val2014" / "v.jpg")
    path = tmp_path / "dataset_coco.json"
    path.write_text(
        json.dumps(
            {
                "dataset": "coco",
                "images": [
                    {
                        "filepath": "train2014",
                        "filename": "t.jpg",
                        "cocoid": 7,
                        "imgid": 0,
                        "split": "train",
                        "sentences": [
                            {"raw": "A cat on a mat.", "tokens": ["a", "cat", "on", "a", "mat"]},
                            {"tokens": ["a", "cat"]},  # no raw: rebuilt from tokens
                        ],
                    },
                    {
                        "filepath": "val2014",
                        "filename": "v.jpg",
                        "cocoid": 8,
                        "split": "restval",
                        "sentences": [{"raw": "A dog"}],
                    },
                    {"filepath": "val2014", "filename": "x.jpg", "split": "test", "sentences": []},
                    {"filepath": "val2014", "filename": "v.jpg", "cocoid": 9, "sentences": []},
                    {"split": "test"},
                ],
            }
        )
    )
    assert detect_format(path) == "karpathy"
    ds = load_dataset(path)
    assert [(e.image_id, e.split, e.captions) for e in ds.examples] == [
        ("7", "train", ("A cat on a mat.", "a cat.")),
        ("8", "restval", ("A dog.",)),
    ]
    assert [(p.row, p.reason) for p in ds.problems] == [
        (2, "image file not found: val2014/x.jpg"),
        (3, "no captions for v.jpg"),
        (4, "images entry without filename"),
    ]


def test_karpathy_flickr_style_with_images_dir(tmp_path):
    images = tmp_path / "Flicker8k_Dataset"
    png(images / "1000268201_693b08cb0e.jpg")
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text(
        json.dumps(
            {
                "images": [
                    {
                        "filename": "1000268201_693b08cb0e.jpg",
                        "imgid": 0,
                        "split": "test",
                        "sentences": [{"raw": "A child in a pink dress ."}, {"raw": "A girl."}],
                    }
                ]
            }
        )
    )
    ds = load_dataset(path, images_dir=images)
    assert ds.problems == []
    assert ds.examples[0].captions == ("A child in a pink dress.", "A girl.")
    assert ds.examples[0].image_id == "0"
    assert [e.image_id for e in ds.split("test")] == ["0"] and ds.split("train") == []


# --- CSV -------------------------------------------------------------------------------------


def test_csv_groups_rows_per_image_and_reports_bad_rows(tmp_path):
    png(tmp_path / "img" / "a.png")
    png(tmp_path / "img" / "b.png")
    path = tmp_path / "captions.csv"
    path.write_text(
        "\ufeffpath,caption\n"  # BOM, as spreadsheets write it
        "img/a.png,A red circle\n"
        'img/b.png,"A blue square, small."\n'
        "img/a.png,One red circle.\n"
        "\n"
        "img/c.png,Missing image.\n"
        "img/b.png,\n"
        "img/b.png\n"
        ",No path.\n",
        encoding="utf-8",
    )
    ds = load_dataset(path)
    assert ds.format == "csv"
    assert [(e.image_id, e.captions) for e in ds.examples] == [
        ("img/a.png", ("A red circle.", "One red circle.")),
        ("img/b.png", ("A blue square, small.",)),
    ]
    assert [(p.row, p.reason) for p in ds.problems] == [
        (6, "image file not found: img/c.png"),
        (7, "empty caption for img/b.png"),
        (8, "expected at least 2 columns, got 1"),
        (9, "empty image path"),
    ]


def test_csv_without_header_and_with_split_column(tmp_path):
    png(tmp_path / "a.png")
    bare = tmp_path / "bare.csv"
    bare.write_text("a.png,a red circle\na.png,one red circle\n")
    assert read_csv(bare).examples[0].captions == ("a red circle.", "one red circle.")
    split = tmp_path / "split.csv"
    split.write_text("image,text,split\na.png,a red circle,val\n")
    ex = read_csv(split).examples[0]
    assert ex.split == "val" and ex.image_path == tmp_path / "a.png"


# --- folder with sidecars --------------------------------------------------------------------


def test_folder_with_txt_sidecars(tmp_path):
    png(tmp_path / "train" / "a.jpg")
    (tmp_path / "train" / "a.txt").write_text("A red circle\n\nOne red circle.\n")
    png(tmp_path / "test" / "b.png")
    (tmp_path / "test" / "b.png.txt").write_text("A blue square.")
    png(tmp_path / "c.jpg")  # no sidecar
    png(tmp_path / "d.jpg")
    (tmp_path / "d.txt").write_text("  \n")  # empty
    (tmp_path / "orphan.txt").write_text("No image here.")
    (tmp_path / "notes.md").write_text("ignored")
    ds = read_folder(tmp_path)
    assert detect_format(tmp_path) == "folder"
    assert [(e.image_id, e.split, e.captions) for e in ds.examples] == [
        ("test/b.png", "test", ("A blue square.",)),
        ("train/a.jpg", "train", ("A red circle.", "One red circle.")),
    ]
    assert sorted((Path(p.file).name, p.reason) for p in ds.problems) == [
        ("c.jpg", "no caption file (expected a .txt with the same name)"),
        ("d.txt", "caption file is empty"),
        ("orphan.txt", "caption file without an image"),
    ]


# --- detection and errors --------------------------------------------------------------------


def test_unknown_or_missing_inputs_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_dataset(tmp_path / "nope.json")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"something": []}))
    with pytest.raises(UsageError, match="not a dataset format"):
        load_dataset(odd)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match="cannot read JSON"):
        load_dataset(broken)
    with pytest.raises(UsageError, match="unknown dataset format"):
        load_dataset(odd, fmt="parquet")


def test_write_examples_then_read_back(tmp_path):
    img = png(tmp_path / "images" / "x.png")
    examples = [Example(img, ("A red circle.", "One red circle."), "x", "val")]
    for fmt in ("coco", "karpathy", "csv"):
        ds = load_dataset(write_examples(examples, tmp_path, fmt))
        assert ds.problems == [] and len(ds.examples) == 1
        assert ds.examples[0].captions == examples[0].captions
        assert ds.examples[0].split == "val" and ds.examples[0].image_path == img

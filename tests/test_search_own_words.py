"""A person's own words rank first (search.query.own_words_first), and --like / "more like this"
put the visually nearest photo first (fake CLIP, vectors chosen per photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from search_fixtures import (
    DIM,
    MODEL,
    FakeEncoder,
    Photo,
    embed_text,
    fake_loader,
    image_vec_of_file,
    make_db,
    write_image,
)
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.store import photo_tags
from indexer.store import photos as photo_rows
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.queries import FileFilter, own_words
from indexer.store.user_captions import set_user_caption
from search.cli.options import Services
from search.query import SearchRequest, search
from search.web.library import Library

N = 500
QUERY = embed_text("uncle bob")


def _near(target: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine `cos` to the unit vector `target`."""
    noise = rng.standard_normal(DIM).astype(np.float32)
    noise -= (noise @ target) * target
    noise /= np.linalg.norm(noise)
    return (cos * target + np.sqrt(1 - cos**2) * noise).astype(np.float32)


def _tag(db: Path, root: Path, name: str, tags: list[str], description: str | None = None):
    path = str((root / name).absolute())
    row = photo_tags.TagRow(path, tags, description, 0, 0, "", [])
    with Store.open(db) as store:
        photo_tags.save(store.db, [row])


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """500 photos: 496 with no word of "uncle bob" but image and caption vectors near it (cosines
    0.5-0.9), and 4 with mediocre vectors (cosine 0.1): one tagged "Uncle Bob", one with only a
    description saying it, one tagged "Bob" (a partial match), one captioned by a person."""
    tmp = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(1)
    photos = [
        Photo(
            f"party/IMG_{i:04d}.png",
            "a man smiling at a party",
            image_vec=_near(QUERY, 0.5 + 0.4 * rng.random(), rng),
            caption_vec=_near(QUERY, 0.5 + 0.4 * rng.random(), rng),
        )
        for i in range(N - 4)
    ]
    for name in ("tagged", "described", "partial", "captioned"):
        photos.append(
            Photo(
                f"family/{name}.png",
                "a man at a table",
                image_vec=_near(QUERY, 0.1, rng),
                caption_vec=_near(QUERY, 0.1, rng),
            )
        )
    root = tmp / "photos"
    db = make_db(root, photos, tmp / "photos.db")
    _tag(db, root, "family/tagged.png", ["Uncle Bob", "2019 trip"])
    _tag(db, root, "family/described.png", [], "Uncle Bob's 60th birthday")
    _tag(db, root, "family/partial.png", ["Bob"])
    target = str((root / "family/captioned.png").absolute())
    set_user_caption(db, target, MODEL, "Uncle Bob at the lake", embed_text("x") * 0.1)
    return root, db


def _search(db: Path, text: str, **kw):
    return search(db, SearchRequest(text=text, **kw), Settings(db_path=db), fake_loader())


def _names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_a_tagged_photo_ranks_above_better_vectors_with_no_word_of_the_query(library):
    root, db = library
    hits = _search(db, "uncle bob", limit=5)
    # every photo whose own words hold both words, ahead of 496 better vector matches
    assert set(_names(hits[:3])) == {"tagged.png", "described.png", "captioned.png"}
    assert all(h.own_words_all for h in hits[:3]) and not hits[3].own_words_all
    # the fusion alone (what search did before): the tagged photo sinks below photos that
    # match no word at all
    fused = _names(_search(db, "uncle bob", limit=5, own_words_first=False))
    assert "tagged.png" not in fused[:3]
    # "at the" and "photos of" name no subject: still a match of every word
    assert _names(_search(db, "photos of uncle bob at the", limit=1)) in (
        ["tagged.png"],
        ["described.png"],
        ["captioned.png"],
    )


def test_a_partial_match_is_left_to_the_fusion(library):
    root, db = library
    hits = _search(db, "uncle bob", limit=20)
    partial = [h for h in hits if h.path.endswith("partial.png")]
    assert not partial or (not partial[0].own_words_all and partial[0].rank > 3)
    # one word of the query in its tag: "bob" alone is every word
    assert "partial.png" in _names(_search(db, "bob", limit=4))


def test_a_description_only_match_says_why(library):
    root, db = library
    hit = next(h for h in _search(db, "uncle bob", limit=3) if h.path.endswith("described.png"))
    assert hit.own_words_all and hit.tags == []
    assert hit.to_dict()["own_words_all"] is True
    assert "own_words_all" not in _search(db, "smiling", limit=1)[0].to_dict()
    res = CliRunner().invoke(
        cli.app,
        ["search", "uncle bob", "--json", "-n", "3", "--db", str(db)],
        obj=Services(encoder_loader=fake_loader()),
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r.get("own_words_all") for r in rows] == [True, True, True]
    res = CliRunner().invoke(
        cli.app,
        ["search", "uncle bob", "--why", "-n", "1", "--db", str(db)],
        obj=Services(encoder_loader=fake_loader()),
    )
    assert res.exit_code == 0, res.output
    assert "own words" in res.output


def test_a_tag_counts_where_a_thousand_captions_say_its_word(tmp_path):
    # 150 generated captions say "beach" (and fill the keyword signal's list of 100), the photo
    # tagged Beach says nothing of it and looks nothing like it: its tag still puts it first
    rng = np.random.default_rng(5)
    q = embed_text("beach")
    photos = [
        Photo(f"trip/IMG_{i:03d}.png", "a beach beach at sunset", image_vec=_near(q, 0.7, rng))
        for i in range(150)
    ]
    photos.append(Photo("home/tagged.png", "a man at a table", image_vec=_near(q, 0.0, rng)))
    root = tmp_path / "photos"
    db = make_db(root, photos, tmp_path / "photos.db")
    _tag(db, root, "home/tagged.png", ["Beach"])
    hits = _search(db, "beach", limit=3)
    assert _names(hits)[0] == "tagged.png" and hits[0].own_words_all
    assert hits[0].signals["keyword"].rank is None  # not in the keyword signal's list
    assert "tagged.png" not in _names(_search(db, "beach", limit=3, own_words_first=False))


def test_a_filter_restricts_whose_words_count(library):
    root, db = library
    flt = FileFilter(folder=str((root / "party").absolute()))
    hits = _search(db, "uncle bob", limit=3, filters=flt)
    assert not any(h.own_words_all for h in hits)


def test_own_words_are_tags_description_a_persons_caption_place_and_folders(tmp_path):
    root = tmp_path / "photos"
    photos = [
        Photo("Uncle Bob visit/a.png", "a generated caption about a dog"),
        Photo("b.png", "a generated caption"),
    ]
    db = make_db(root, photos, tmp_path / "photos.db")
    _tag(db, root, "b.png", ["Grandma"], "at the lake")
    conn = connect_readonly(db)
    try:
        got = {Path(p).name: text for _, p, text in own_words(conn, [1, 2], FileFilter())}
    finally:
        conn.close()
    # the folder below the root is the person's; the generated caption and the root are not
    assert got["a.png"] == "Uncle Bob visit"
    assert got["b.png"] == "Grandma\nat the lake"


# ------------------------------------------------------------------------- more like this
@pytest.fixture
def lookalikes(tmp_path):
    """A probe picture; `nearest.png` is nearly it (image cosine 0.99) but captioned unlike it,
    30 others look less like it (0.6-0.89) and the more they do, the better their captions
    match it (0.9-0.99)."""
    rng = np.random.default_rng(3)
    probe = tmp_path / "probe.png"
    write_image(probe, 77)
    v = image_vec_of_file(probe)
    v = v / np.linalg.norm(v)
    photos = [Photo("nearest.png", "a thing", image_vec=_near(v, 0.99, rng), caption_vec=-v)]
    photos += [
        Photo(
            f"other{i}.png",
            "a thing",
            image_vec=_near(v, 0.6 + 0.01 * i, rng),
            caption_vec=_near(v, 0.9 + 0.003 * i, rng),
        )
        for i in range(30)
    ]
    root = tmp_path / "photos"
    db = make_db(root, photos, tmp_path / "photos.db")
    return root, db, probe, {p.name: p.image_vec for p in photos}


def test_like_puts_the_visually_nearest_first(lookalikes):
    root, db, probe, _ = lookalikes
    enc = FakeEncoder()
    hits = search(db, SearchRequest(like=probe, limit=3), Settings(db_path=db), fake_loader(enc))
    # by image cosine; the fusion with the caption signal put 12 others above nearest.png
    assert _names(hits) == ["nearest.png", "other29.png", "other28.png"]
    assert list(hits[0].signals) == ["image"]


def test_more_like_this_puts_the_visually_nearest_first(lookalikes):
    root, db, _, vecs = lookalikes
    conn = connect_readonly(db)
    try:
        other0 = str((root / "other0.png").absolute())
        file_id, _ = photo_rows.file_ids(conn, [other0])[other0]
    finally:
        conn.close()
    page = Library(Settings(db_path=db), encoder_loader=fake_loader()).similar(file_id, per_page=3)
    unit = {n: v / np.linalg.norm(v) for n, v in vecs.items()}
    nearest = sorted(set(unit) - {"other0.png"}, key=lambda n: -unit[n] @ unit["other0.png"])
    assert [Path(h["path"]).name for h in page.hits] == nearest[:3]

"""Ranking, filters, --like, --not and the edge cases of `search.query.search` (fake CLIP)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from search_fixtures import (
    MODEL,
    FakeEncoder,
    Photo,
    embed_text,
    fake_loader,
    image_vec_of_file,
    make_db,
    write_image,
)

from indexer.config import Settings
from indexer.errors import StoreError, UsageError
from indexer.media.walk import content_hash
from indexer.store import similar_groups
from indexer.store.database import Store
from indexer.store.queries import FileFilter
from search.query import SearchRequest, SimilarFile, fts_query, query_words, search

SETTINGS = Settings()

PHOTOS = [
    Photo("park/dog.png", "a dog on a park bench", taken_at="2019-05-01T10:00:00",
          camera_make="Canon", camera_model="EOS 5D"),
    Photo("park/dogball.png", "a dog playing with a ball", taken_at="2019-07-01T10:00:00"),
    Photo("street/car.png", "a red car on the street", taken_at="2020-01-02T10:00:00",
          camera_make="Apple", camera_model="iPhone 12"),
    Photo("party/cake.png", "a birthday cake with candles", taken_at="2018-12-31T23:59:00"),
    Photo("party/cafe.png", "café crème on a table", content="coffee cup table"),
    Photo("parkside/cat.png", "a cat sleeping on a sofa"),
    Photo("street/bus.png", "a yellow bus on the street"),
    Photo("copies/dog-copy.png", "unused", same_as="park/dog.png", taken_at="2019-05-01T10:00:00"),
]  # fmt: skip


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "photos", PHOTOS, tmp_path / "photos.db")


def run(db, text=None, **kw):
    return search(db, SearchRequest(text=text, **kw), SETTINGS, fake_loader())


def names(hits):
    return [Path(h.path).name for h in hits]


def test_hybrid_puts_the_right_photos_first_and_explains(db):
    hits = run(db, "dog", limit=3, all_files=True)
    assert set(names(hits)) == {"dog.png", "dog-copy.png", "dogball.png"}
    top = hits[0]
    assert set(top.signals) == {"image", "caption", "keyword"}
    assert top.signals["keyword"].rank is not None and top.matched == ["dog"]
    assert 0 < top.score <= 1.0
    assert [h.rank for h in hits] == [1, 2, 3]
    # Every shown hit has an exact cosine for each vector signal, even outside the candidates.
    assert all(h.signals["image"].score is not None for h in hits)


def test_with_all_files_copies_are_separate_hits_sharing_one_result(db):
    hits = run(db, "dog on a park bench", limit=2, all_files=True)
    assert names(hits) == ["dog.png", "dog-copy.png"]  # the shorter path first, as collapsed
    assert hits[0].score == hits[1].score and hits[0].caption == hits[1].caption
    assert hits[0].similar == [] and "similar" not in hits[0].to_dict()


def test_copies_collapse_into_one_hit_with_the_other_as_similar(db):
    hits = run(db, "dog on a park bench", limit=2)
    assert len(hits) == 2 and names(hits)[0] == "dog.png"  # limit counts groups, not files
    assert "dog-copy.png" not in names(hits)
    copy = str(db.parent / "photos/copies/dog-copy.png")
    assert hits[0].similar == [SimilarFile(copy, "same file")]
    assert hits[0].to_dict()["similar"] == [{"path": copy, "why": "same file"}]
    assert hits[1].similar == [] and "similar" not in hits[1].to_dict()  # no copies
    # A copy outside the filters is not hidden behind the hit: nothing to see there.
    park = FileFilter(folder=str(db.parent / "photos/park"))
    assert run(db, "dog on a park bench", limit=1, filters=park)[0].similar == []
    # A copy gone from disk is neither shown nor counted.
    Path(copy).unlink()
    assert run(db, "dog on a park bench", limit=1)[0].similar == []


def test_near_duplicate_groups_collapse_and_limit_counts_groups(tmp_path):
    """A burst of five look-alikes (one group in similar_groups, as an index run leaves it) is one
    hit; the others, even those ranked below the candidates, are listed as looking alike."""
    burst = [
        Photo(f"burst/dog{i}.png", f"a dog jumping {i}", content="dog jumping") for i in range(5)
    ]
    others = [
        Photo(f"misc/dog{i}.png", f"a dog sitting {i}", content=f"dog sitting {i}")
        for i in range(4)
    ]
    db = make_db(tmp_path / "p", burst + others, tmp_path / "p.db")
    hashes = {p.name: content_hash(tmp_path / "p" / p.name) for p in burst}
    original = hashes["burst/dog0.png"]
    with Store.open(db) as s:
        similar_groups.replace_groups(s.db, {h: original for h in hashes.values()})

    every = run(db, "dog jumping", limit=20, all_files=True)
    assert len(every) == 9 and all(h.similar == [] for h in every)
    hits = run(db, "dog jumping", limit=3, min_candidates=1)  # the depth loop must grow
    assert len(hits) == 3 and len({h.path for h in hits}) == 3
    assert Path(hits[0].path).parent.name == "burst"
    assert [Path(h.path).parent.name for h in hits[1:]] == ["misc", "misc"]
    alike = hits[0].similar
    assert {s.why for s in alike} == {"looks alike"} and len(alike) == 4
    assert {s.path for s in alike} | {hits[0].path} == {str(tmp_path / "p" / p.name) for p in burst}
    assert len(run(db, "dog", limit=20)) == 5  # 1 group + 4 alone


@pytest.mark.parametrize("mode", ["image", "caption", "keyword"])
def test_single_signal_modes(db, mode):
    hits = run(db, "red car", mode=mode, limit=2)
    assert names(hits)[0] == "car.png"
    assert list(hits[0].signals) == [mode]
    assert hits[0].score == pytest.approx(hits[0].signals[mode].score, rel=1e-5)


def test_keyword_mode_only_returns_matching_captions(db):
    hits = run(db, "birthday candles", mode="keyword")
    assert names(hits) == ["cake.png"]
    assert hits[0].matched == ["birthday", "candles"]


def test_filters_folder_date_camera(db):
    assert set(
        names(run(db, "dog", filters=FileFilter(folder=str(db.parent / "photos/park"))))
    ) == {"dog.png", "dogball.png"}  # "parkside" shares the prefix but is not below "park"
    in_2019 = run(db, "photo", filters=FileFilter(after="2019", before="2020"), all_files=True)
    assert set(names(in_2019)) == {"dog.png", "dog-copy.png", "dogball.png"}
    assert names(run(db, "car", filters=FileFilter(camera="iphone"))) == ["car.png"]
    assert run(db, "car", filters=FileFilter(camera="Leica")) == []
    assert run(db, "car", mode="keyword", filters=FileFilter(camera="canon")) == []


def test_twenty_dogs_in_2019(tmp_path):
    """Filters act inside the search: 20 asked, 20 exist in 2019, 20 returned although far more
    photos outside 2019 rank higher."""
    photos = [
        Photo(
            f"y2019/dog{i}.png",
            f"a small dog number {i}",
            content="a small brown dog",
            taken_at=f"2019-03-{i + 1:02d}",
        )
        for i in range(20)
    ]
    photos += [
        Photo(f"y2021/dog{i}.png", "a dog", content="dog", taken_at="2021-01-01")
        for i in range(150)
    ]
    photos += [Photo(f"y2019/other{i}.png", "a plate of food", taken_at="2019-06-01")
               for i in range(30)]  # fmt: skip
    db = make_db(tmp_path / "p", photos, tmp_path / "p.db")
    flt = FileFilter(after="2019", before="2020")
    for mode in ("hybrid", "image", "caption", "keyword"):
        hits = run(db, "dog", mode=mode, limit=20, filters=flt, min_candidates=8)  # depth must grow
        assert len(hits) == 20, mode
        assert all(h.taken_at.startswith("2019") and "dog" in h.caption for h in hits), mode


def test_missing_files_are_never_shown_and_are_replaced(tmp_path):
    photos = [Photo(f"d/dog{i}.png", f"a dog {i}") for i in range(30)]
    photos += [Photo(f"d/car{i}.png", f"a car {i}") for i in range(30)]
    db = make_db(tmp_path / "p", photos, tmp_path / "p.db")
    for i in range(25):
        (tmp_path / "p" / "d" / f"dog{i}.png").unlink()
    hits = run(db, "dog", mode="keyword", limit=10, min_candidates=4)
    assert sorted(names(hits)) == sorted(f"dog{i}.png" for i in range(25, 30))
    hits = run(db, "dog", limit=10, min_candidates=4)
    assert len(hits) == 10 and all(Path(h.path).exists() for h in hits)


def test_min_score_cuts_inside_the_search(tmp_path):
    photos = [Photo(f"d/dog{i}.png", "a dog", content="dog") for i in range(12)]
    photos += [Photo(f"d/car{i}.png", "a car", content="car") for i in range(40)]
    db = make_db(tmp_path / "p", photos, tmp_path / "p.db")
    for mode in ("hybrid", "image", "caption"):
        hits = run(db, "dog", mode=mode, limit=50, min_score=0.5, min_candidates=4)
        assert len(hits) == 12, mode
        gate = "caption" if mode == "caption" else "image"
        assert all(h.signals[gate].score >= 0.5 for h in hits)
    with pytest.raises(UsageError, match="min-score"):
        run(db, "dog", mode="keyword", min_score=0.5)


def test_not_pushes_matching_photos_down(db):
    plain = names(run(db, "dog", limit=3))
    assert plain.index("dogball.png") < 2 or plain.index("dog.png") < 2
    pushed = run(db, "dog", negative="ball", limit=8)
    order = names(pushed)
    assert order.index("dog.png") < order.index("dogball.png")
    assert "dogball.png" in order, "pushed down, not removed"
    kw = names(run(db, "dog", negative="ball", mode="keyword"))
    assert kw[-1] == "dogball.png"


def test_like_finds_the_same_picture_even_unindexed(tmp_path):
    root = tmp_path / "p"
    photos = []
    for i in range(10):
        write_image(root / f"img{i}.png", 1000 + i)
        photos.append(
            Photo(f"img{i}.png", f"photo {i}", image_vec=image_vec_of_file(root / f"img{i}.png"))
        )
    # make_db rewrites the files from its own seeds, so give it ours back afterwards.
    db = make_db(root, photos, tmp_path / "p.db")
    for i in range(10):
        write_image(root / f"img{i}.png", 1000 + i)
    probe = tmp_path / "elsewhere" / "query.png"
    probe.parent.mkdir()
    shutil.copy(root / "img4.png", probe)
    enc = FakeEncoder()
    hits = search(db, SearchRequest(like=probe, limit=3), SETTINGS, fake_loader(enc))
    assert names(hits)[0] == "img4.png"
    assert hits[0].signals["image"].score == pytest.approx(1.0, abs=1e-4)
    assert "images" in enc.calls and "keyword" not in hits[0].signals


@pytest.mark.parametrize(
    "text",
    ['"dog', "dog*", "dog AND", "NOT dog", "-dog", "caption:dog", "dog OR (", "NEAR(dog cat)",
     "dog'; DROP TABLE files; --", "🐶 dog", "ünïcödé", "a\x00b", "^dog$", "{dog}"],
)  # fmt: skip
@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_hostile_queries_never_break_the_search(db, text, mode):
    if mode == "keyword" and not query_words(text):
        with pytest.raises(UsageError):
            run(db, text, mode=mode)
        return
    hits = run(db, text, mode=mode)
    if "dog" in text.casefold() and mode == "keyword":
        assert "dog.png" in names(hits)


def test_fts_query_quotes_every_word():
    assert (
        fts_query(query_words('red "car" AND -street:*')) == '"red" OR "car" OR "and" OR "street"'
    )
    assert fts_query([]) is None


def test_unicode_captions_match_by_keyword(db):
    hits = run(db, "café", mode="keyword")
    assert names(hits) == ["cafe.png"] and hits[0].matched == ["café"]


def test_empty_and_unknown(tmp_path, db):
    empty = tmp_path / "empty.db"
    Store.open(empty).close()
    with pytest.raises(StoreError, match="empty"):
        run(empty, "dog")
    with pytest.raises(StoreError, match="no database"):
        run(tmp_path / "missing.db", "dog")
    with pytest.raises(UsageError, match="empty query"):
        run(db, "   ")
    with pytest.raises(UsageError, match="no results for model 'nope'"):
        run(db, "dog", model="nope")
    with pytest.raises(UsageError, match="mode"):
        run(db, "dog", mode="fuzzy")
    assert run(db, "dog", filters=FileFilter(folder="/nowhere")) == []


def test_keyword_search_never_loads_the_encoder(db):
    def boom(model, settings):
        raise AssertionError("encoder loaded for a keyword search")

    assert search(db, SearchRequest(text="dog", mode="keyword"), SETTINGS, boom)


def test_search_works_during_an_index_run_and_sees_new_batches(tmp_path, db):
    assert "horse.png" not in names(run(db, "horse"))
    writer = Store.open(db)
    try:
        writer.db.execute("BEGIN IMMEDIATE")  # a batch in flight holds the write lock
        writer.db.execute("UPDATE files SET size = size")
        assert run(db, "dog", limit=1)  # readers are not blocked (WAL)
        writer.db.execute("COMMIT")
    finally:
        writer.close()
    more = [Photo("new/horse.png", "a horse in a field")]
    make_db(tmp_path / "photos", more, db, seed=9)  # the next committed batch
    assert names(run(db, "horse", limit=1)) == ["horse.png"]  # stale FAISS cache rebuilt


def test_model_defaults_and_side_by_side(tmp_path, db):
    make_db(tmp_path / "photos", [Photo("other/x.png", "a dog")], db, model="other-model", seed=5)
    hits = run(db, "dog", mode="keyword")
    assert {h.model for h in hits} == {MODEL}  # default: the model with the most results
    hits = run(db, "dog", mode="keyword", model="other-model")
    assert names(hits) == ["x.png"] and hits[0].model == "other-model"


def test_text_vector_is_normalised_before_fusion(db):
    enc = FakeEncoder()
    q = embed_text("dog")
    hits = search(
        db, SearchRequest(text="dog", mode="caption", limit=1), SETTINGS, fake_loader(enc)
    )
    assert hits[0].signals["caption"].score == pytest.approx(
        float(q @ embed_text(hits[0].caption)), abs=1e-5
    )
    assert np.isclose(np.linalg.norm(q), 1.0)


def test_filters_alone_browse_newest_first_with_groups_collapsed(db):
    everything = FileFilter(folder=str(db.parent / "photos"))
    cake, cafe = (content_hash(db.parent / "photos/party" / n) for n in ("cake.png", "cafe.png"))
    with Store.open(db) as s:
        similar_groups.replace_groups(s.db, {cake: cake, cafe: cake})
    hits = run(db, filters=everything)
    # dated newest first, then undated by path; a group is one hit, its newest member shown
    assert names(hits) == ["car.png", "dogball.png", "dog.png", "cake.png", "cat.png", "bus.png"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5, 6]
    assert hits[2].similar == [
        SimilarFile(str(db.parent / "photos/copies/dog-copy.png"), "same file")
    ]
    assert hits[3].similar == [SimilarFile(str(db.parent / "photos/party/cafe.png"), "looks alike")]
    assert all(h.signals == {} and h.score == 0.0 for h in hits)
    assert len(run(db, filters=everything, all_files=True)) == 8
    assert names(run(db, filters=everything, limit=2)) == ["car.png", "dogball.png"]
    with pytest.raises(UsageError, match="empty query"):
        run(db)  # no words, no filter

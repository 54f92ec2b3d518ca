"""search/captions.py: the one caption-edit API behind `imgcap caption-set` and the gallery."""

from __future__ import annotations

import pytest
from search_fixtures import FakeEncoder, Photo, fake_loader, make_db

from indexer.config import Settings
from indexer.errors import ImgcapError, UsageError
from search.captions import set_caption, set_caption_of
from search.query import SearchRequest, search

PHOTOS = [
    Photo("a.png", "a cat on a sofa", camera_make="Canon", camera_model="EOS 80D"),
    Photo("b.png", "a red car"),
]


def _library(tmp_path):
    root = tmp_path / "photos"
    return root, Settings(db_path=make_db(root, PHOTOS, tmp_path / "lib.db"))


def test_by_path_is_searchable_at_once_and_clear_restores(tmp_path):
    root, settings = _library(tmp_path)
    enc = FakeEncoder()
    photo = set_caption(settings, str(root / "a.png"), "  zebra \n cake ", None, fake_loader(enc))
    assert (photo["caption"], photo["caption_source"]) == ("zebra cake", "user")
    assert (photo["camera"], photo["place"]) == ("Canon EOS 80D", None)
    assert enc.calls  # the caption vector came from the text tower

    def found(words, mode):
        req = SearchRequest(text=words, mode=mode)
        return [h.path for h in search(settings.db_path, req, settings, fake_loader(enc))]

    assert found("zebra", "keyword") == [str(root / "a.png")]
    assert found("zebra cake", "caption")[0] == str(root / "a.png")
    photo = set_caption_of(settings, photo["id"], None)  # clearing loads no encoder
    assert (photo["caption"], photo["caption_source"]) == ("a cat on a sofa", "generated")
    assert found("zebra", "keyword") == []


def test_refusals(tmp_path):
    root, settings = _library(tmp_path)
    with pytest.raises(ImgcapError, match="is not in the index"):
        set_caption(settings, str(root / "nope.png"), "x")
    with pytest.raises(UsageError, match="at most 2000 characters"):
        set_caption(settings, str(root / "a.png"), "x" * 2001)
    with pytest.raises(LookupError):
        set_caption_of(settings, 999, "x", encoder_loader=fake_loader())
    with pytest.raises(UsageError, match="no results for model 'other'"):
        set_caption_of(settings, 1, "x", "other", fake_loader())

"""The search fusion (search/fusion.py) and its settings: k and per-signal weights, from the
environment (Settings.from_env), through `search` and `imgcap search` (fake CLIP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_fixtures import Photo, fake_loader, make_db
from typer.testing import CliRunner

import cli
from indexer.config import Settings
from indexer.errors import UsageError
from search.cli.options import Services
from search.fusion import fuse
from search.query import SearchRequest, search

FAKE_CLIP = Services(encoder_loader=fake_loader())  # CLIP without weights, for the CLI

# "red kite": a.png matches everywhere; the d*.png look like a red kite and say "red"; x.png
# says "kite" (2nd by keyword) in a long caption under a photo of something else (last by
# image and caption among the matches); the o*.png match nothing.
PHOTOS = [
    Photo("a.png", "a red kite in the sky"),
    *(
        Photo(f"d{i}.png", f"a red {thing} on the grass", content="red kite")
        for i, thing in enumerate(["barn", "door", "ball", "hat", "cup", "car"])
    ),
    Photo("x.png", "an old wooden kite shop sign above the busy market street",
          content="market street crowd"),
    Photo("o0.png", "a cat on a sofa"),
    Photo("o1.png", "a bowl of soup"),
]  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fusion")
    return make_db(tmp / "photos", PHOTOS, tmp / "photos.db")


def weights(**given: float) -> tuple[tuple[str, float], ...]:
    return tuple((s, given.get(s, 1.0)) for s in ("image", "caption", "keyword", "text"))


def run(db, settings=None, text="red kite", **kw):
    req = SearchRequest(text=text, limit=50, **kw)
    return search(db, req, settings or Settings(), fake_loader())


def names(hits):
    return [Path(h.path).stem for h in hits]


def naive(ranks: dict[str, int | None], k: int, w: dict[str, float]) -> float:
    """The fused score written out: sum of w / (k + rank), over the most it can be."""
    score = 0.0
    for signal in ("image", "caption", "keyword"):
        if ranks.get(signal) is not None and w[signal] > 0:
            score += w[signal] / (k + ranks[signal])
    return score / (sum(w[s] for s in ranks if w[s] > 0) / (k + 1))


def test_defaults_are_plain_reciprocal_rank_fusion_bit_for_bit(db):
    hits = run(db)
    assert len(hits) == len(PHOTOS)
    for h in hits:
        ranks = {s: sig.rank for s, sig in h.signals.items()}
        assert h.score == naive(ranks, 60, dict.fromkeys(ranks, 1.0))  # exactly, not approx
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert names(hits)[0] == "a"


def test_k_changes_the_scores_as_the_formula_says(db):
    hits = run(db, Settings(fusion_k=1))
    for h in hits:
        ranks = {s: sig.rank for s, sig in h.signals.items()}
        assert h.score == pytest.approx(naive(ranks, 1, dict.fromkeys(ranks, 1.0)), abs=1e-12)


def test_keyword_weight_zero_is_image_and_caption_fused_alone(db):
    lists = {mode: [Path(h.path).stem for h in run(db, mode=mode)] for mode in ("image", "caption")}
    expected = fuse(lists, 60)
    hits = run(db, Settings(fusion_weights=weights(keyword=0)))
    assert {Path(h.path).stem: h.score for h in hits} == expected
    assert [h.score for h in hits] == sorted(expected.values(), reverse=True)
    # Still explained: the keyword signal is shown, it just doesn't count.
    assert any(h.signals["keyword"].rank for h in hits)


def test_a_larger_keyword_weight_moves_a_keyword_match_up(db):
    plain = names(run(db))
    heavy = names(run(db, Settings(fusion_weights=weights(keyword=4))))
    assert plain.index("x") == 7  # last of the eight photos that match a query word
    assert heavy.index("x") <= 3
    assert heavy[0] == "a"  # first in every signal stays first whatever the weights
    # Single-signal modes fuse nothing: weights leave them as they are.
    kw = Settings(fusion_weights=weights(keyword=0))
    assert names(run(db, kw, mode="keyword")) == names(run(db, mode="keyword"))


def test_fuse_equals_a_naive_computation_on_hand_made_lists():
    ranked = {
        "image": ["a", "b", "c", "d"],
        "caption": ["c", "a", "e"],
        "keyword": ["f", "c"],  # f: found by keyword only
    }
    w = {"image": 1.0, "caption": 0.5, "keyword": 2.0}
    k = 10
    expected = {}
    for rid in "abcdef":
        total = sum(w[s] / (k + lst.index(rid) + 1) for s, lst in ranked.items() if rid in lst)
        expected[rid] = total / ((1.0 + 0.5 + 2.0) / (k + 1))
    got = fuse(ranked, k, w)
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected, rel=1e-12)
    assert fuse({s: ["a"] for s in ranked}, k, w)["a"] == pytest.approx(1.0)  # first everywhere
    # Weight 0 drops the signal: f (keyword only) is gone, the rest is image + caption alone.
    dropped = fuse(ranked, k, {**w, "keyword": 0.0})
    assert dropped == fuse({"image": ranked["image"], "caption": ranked["caption"]}, k, w)
    assert "f" not in dropped
    # A larger keyword weight lifts the keyword-only result.
    order = sorted(fuse(ranked, k, {**w, "keyword": 20.0}).items(), key=lambda x: -x[1])
    assert order[0][0] == "f"
    # Signals a mapping does not name weigh 1.0; an empty list still counts in the maximum.
    assert fuse({"image": ["a"], "ocr": []}, 60) == {"a": 0.5}


@pytest.mark.parametrize(
    ("k", "w"), [(0, None), (-1, None), (60, {"image": -1.0}), (60, {"image": 0, "keyword": 0})]
)
def test_fuse_refuses_bad_parameters(k, w):
    with pytest.raises(UsageError):
        fuse({"image": ["a"], "keyword": ["b"]}, k, w)


def test_settings_from_the_environment(monkeypatch):
    assert Settings.from_env().fusion_k == 60
    assert Settings.from_env().fusion_weights == weights()
    monkeypatch.setenv("IMGCAP_FUSION_K", " 30 ")
    monkeypatch.setenv("IMGCAP_FUSION_WEIGHTS", "image=1, caption=0.5,keyword=2")
    s = Settings.from_env()
    assert s.fusion_k == 30
    assert s.fusion_weights == weights(caption=0.5, keyword=2.0)
    assert (s.fusion_weight("caption"), s.fusion_weight("ocr")) == (0.5, 1.0)
    monkeypatch.setenv("IMGCAP_FUSION_WEIGHTS", "keyword=0")  # the others keep 1.0
    assert Settings.from_env().fusion_weights == weights(keyword=0.0)
    hash(Settings.from_env())  # frozen and hashable


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("IMGCAP_FUSION_K", "0", ">= 1"),
        ("IMGCAP_FUSION_K", "-5", ">= 1"),
        ("IMGCAP_FUSION_K", "sixty", ">= 1"),
        ("IMGCAP_FUSION_K", "2.5", ">= 1"),
        ("IMGCAP_FUSION_WEIGHTS", "face=1", "unknown signal 'face'"),
        ("IMGCAP_FUSION_WEIGHTS", "image=-1", "image's weight must be a number >= 0"),
        ("IMGCAP_FUSION_WEIGHTS", "caption=lots", "caption's weight must be a number >= 0"),
        ("IMGCAP_FUSION_WEIGHTS", "keyword", "keyword's weight must be a number >= 0"),
        ("IMGCAP_FUSION_WEIGHTS", "image=nan", "image's weight must be a number >= 0"),
        ("IMGCAP_FUSION_WEIGHTS", "image=1,image=2", "image is given twice"),
        ("IMGCAP_FUSION_WEIGHTS", "image=0,caption=0,keyword=0,text=0", "at least one weight"),
    ],
)
def test_bad_environment_values_are_usage_errors(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(UsageError, match=var) as err:
        Settings.from_env()
    assert message in str(err.value)


def test_imgcap_search_reads_the_fusion_settings(db, monkeypatch):
    monkeypatch.setenv("IMGCAP_DB", str(db))

    def order():
        r = CliRunner().invoke(cli.app, ["search", "red kite", "--json", "-n", "20"], obj=FAKE_CLIP)
        assert r.exit_code == 0, r.output
        return [Path(json.loads(line)["path"]).stem for line in r.stdout.splitlines()]

    assert order().index("x") == 7
    monkeypatch.setenv("IMGCAP_FUSION_WEIGHTS", "keyword=4")
    assert order().index("x") <= 3
    monkeypatch.setenv("IMGCAP_FUSION_WEIGHTS", "keyword=-4")
    r = CliRunner().invoke(cli.app, ["search", "red kite"], obj=FAKE_CLIP)
    assert r.exit_code == 2 and "IMGCAP_FUSION_WEIGHTS" in r.output
    assert "Traceback" not in r.output

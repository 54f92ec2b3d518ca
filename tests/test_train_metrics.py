"""Caption metrics against coco-caption (pycocoevalcap 1.2) and textbook worked examples.

The golden files in tests/data/metrics/ were produced by pycocoevalcap itself (Java PTBTokenizer,
Bleu, Rouge, Cider, Meteor); the tests read them, so they run without Java or pycocoevalcap.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import shutil
import sys
from pathlib import Path

import pytest

from indexer.errors import UsageError
from indexer.train import metrics
from indexer.train.metrics import bleu, cider_d, rouge_l, score_captions
from indexer.train.ptb import ptb_tokens, tokenize

DATA = Path(__file__).parent / "data" / "metrics"
PYTHON_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D")


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


# --- tokenizer -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", load("ptb_tokenizer.json")["cases"], ids=lambda c: c["text"][:40])
def test_ptb_tokens_match_stanford_ptbtokenizer(case):
    assert " ".join(ptb_tokens(case["text"])) == case["java"]


def test_tokenize_drops_coco_punctuation_but_keeps_brackets():
    # coco-caption compares "-LRB-" with lower-cased tokens, so brackets survive as -lrb-/-rrb-.
    assert tokenize("A dog's \"toy\" (red), isn't it?") == "a dog 's toy -lrb- red -rrb- is n't it"
    assert (
        tokenize("Two red circles on a blue background.") == "two red circles on a blue background"
    )
    assert tokenize("") == ""


# --- against pycocoevalcap's output ----------------------------------------------------------


def test_scores_match_pycocoevalcap_golden():
    golden = load("coco_small.json")
    for key, cand in golden["candidates"].items():
        assert tokenize(cand) == golden["tokenized_candidates"][key]
        assert [tokenize(r) for r in golden["references"][key]] == (
            golden["tokenized_references"][key]
        )
    report = score_captions(golden["candidates"], golden["references"], metrics=PYTHON_METRICS)
    for name in PYTHON_METRICS:
        assert report.scores[name] == pytest.approx(golden["scores"][name], abs=1e-12)
        for key, per in golden["per_image"].items():
            assert report.per_image[key][name] == pytest.approx(per[name], abs=1e-12)
    assert report.n_images == len(golden["candidates"])
    assert report.unavailable == {}


def test_bleu_matches_published_pycocoevalcap_example_counts():
    # pycocoevalcap's example (val2014 "fakecap" results) prints these totals and
    # Bleu_1..4 = 0.579 0.404 0.279 0.191 (quoted in salaniz/pycocoevalcap issue #25).
    scores = metrics._bleu_from_counts(
        correct=[5732, 2510, 1043, 423], guess=[9893, 8893, 7893, 6893], test_len=9893, ref_len=9855
    )
    assert [round(s, 3) for s in scores] == [0.579, 0.404, 0.279, 0.191]


@pytest.mark.slow  # needs the `metrics` extra; the default run checks the stored golden scores
def test_python_scorers_match_pycocoevalcap_live_on_random_corpora():
    pytest.importorskip("pycocoevalcap", reason="pip install -e '.[metrics]' to compare live")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    rng = random.Random(0)
    vocab = "a the man woman dog cat red blue on in with sitting next to of and two".split()

    def sentence(lo: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, 12)))

    for trial in range(6):
        n = rng.randint(2, 30)
        gts = {str(i): [sentence(1) for _ in range(rng.randint(1, 5))] for i in range(n)}
        res = {str(i): [sentence(trial % 2)] for i in range(n)}  # odd trials allow empty captions
        cands, refs = [res[i][0] for i in gts], list(gts.values())
        (b, b_each), (ours_b, ours_b_each) = Bleu(4).compute_score(gts, res, 0), bleu(cands, refs)
        assert ours_b == pytest.approx(b, abs=1e-12)
        for k in range(4):
            assert ours_b_each[k] == pytest.approx(b_each[k], abs=1e-12)
        for theirs, ours in ((Rouge(), rouge_l), (Cider(), cider_d)):
            score, each = theirs.compute_score(gts, res)
            ours_score, ours_each = ours(cands, refs)
            assert ours_score == pytest.approx(score, abs=1e-12)
            assert ours_each == pytest.approx(list(each), abs=1e-12)


# --- textbook worked examples ----------------------------------------------------------------


def test_bleu_identical_caption_is_one():
    corpus, _ = bleu(["a man riding a horse"], [["a man riding a horse", "a person on a horse"]])
    assert corpus == pytest.approx([1.0] * 4)


def test_bleu_papineni_modified_unigram_precision():
    # Papineni et al. 2002, section 2.1: "the" x7 against two references -> 2/7.
    corpus, _ = bleu(
        ["the the the the the the the"], [["the cat is on the mat", "there is a cat on the mat"]]
    )
    assert corpus[0] == pytest.approx(2 / 7)
    # Candidate 1 of the paper's example 1 shares 17 of its 18 words with the references.
    cand = tokenize(
        "It is a guide to action which ensures that the military always obeys the commands of "
        "the party."
    )
    refs = [
        tokenize(r)
        for r in (
            "It is a guide to action that ensures that the military will forever heed Party "
            "commands.",
            "It is the guiding principle which guarantees the military forces always being under "
            "the command of the Party.",
            "It is the practical guide for the army always to heed the directions of the party.",
        )
    ]
    assert bleu([cand], [refs])[0][0] == pytest.approx(17 / 18)


def test_bleu_brevity_penalty_uses_closest_reference_length():
    # 3 words against references of 4 and 8 words: the closest (4) sets BP = exp(1 - 4/3).
    corpus, _ = bleu(
        ["a red circle"], [["a red circle here", "a red circle on a blue background today"]]
    )
    assert corpus[0] == pytest.approx(math.exp(1 - 4 / 3), rel=1e-6)


def test_rouge_l_lin_2004_example():
    # Lin 2004: "police killed the gunman" vs "police kill the gunman": LCS 3, P = R = 3/4.
    score, _ = rouge_l(["police killed the gunman"], [["police kill the gunman"]])
    assert score == pytest.approx(0.75)
    assert rouge_l(["a b c"], [["a b c"]])[0] == pytest.approx(1.0)


def test_cider_d_hand_computed():
    # Two images, each candidate equal to its only reference. idf = ln(2) for every n-gram; uni- and
    # bigram cosines are 1, tri-/4-gram vectors are empty (0): mean over n = 0.5, x10 = 5.
    score, each = cider_d(["a b", "c d"], [["a b"], ["c d"]])
    assert each == pytest.approx([5.0, 5.0])
    # With one image every reference n-gram has idf ln(1/1) = 0: coco-caption gives 0 (documented).
    assert cider_d(["a b"], [["a b"]])[0] == 0.0


def test_cider_d_clips_repeated_ngrams():
    refs = [["a red circle"], ["a blue square"]]
    plain, _ = cider_d(["a red circle", "a blue square"], refs)
    repeated, _ = cider_d(["red red red circle", "a blue square"], refs)
    assert repeated < plain


# --- API, Java metrics -----------------------------------------------------------------------


def test_score_captions_reports_unavailable_java_metrics_without_crashing():
    report = score_captions(
        {"1": "a red circle."},
        {"1": ["a red circle.", "one red circle."]},
        java="no-such-java-here",
    )
    assert set(report.scores) == set(metrics.ALL_METRICS)
    assert report.scores["METEOR"] is None and report.scores["SPICE"] is None
    assert set(report.unavailable) == {"METEOR", "SPICE"}
    assert all(reason for reason in report.unavailable.values())
    assert report.available()["BLEU-1"] == pytest.approx(1.0)


@pytest.mark.skipif(sys.platform == "win32", reason="fake java is a shell script")
def test_a_failing_java_metric_is_reported_not_raised(tmp_path):
    fake = tmp_path / "java"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then echo \'openjdk version "17.0.1"\' >&2; exit 0; fi\n'
        "echo boom >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    report = score_captions(
        {"1": "a cat"}, {"1": ["a cat"]}, metrics=["METEOR", "ROUGE-L"], java=str(fake)
    )
    assert report.scores["METEOR"] is None and report.scores["ROUGE-L"] == pytest.approx(1.0)
    reason = report.unavailable["METEOR"]
    if importlib.util.find_spec("pycocoevalcap") is not None:  # else: "needs pycocoevalcap"
        assert "boom" in reason or "Broken pipe" in reason


def test_score_captions_rejects_candidates_without_references():
    with pytest.raises(UsageError, match="no reference"):
        score_captions({"1": "a cat", "2": "a dog"}, {"1": ["a cat"]}, metrics=PYTHON_METRICS)
    with pytest.raises(UsageError, match="unknown metric"):
        score_captions({"1": "a cat"}, {"1": ["a cat"]}, metrics=["BLEU"])


def test_score_captions_ignores_references_of_uncaptioned_images():
    report = score_captions(
        {"1": "a cat"}, {"1": ["a cat"], "2": ["a dog"]}, metrics=["BLEU-1", "ROUGE-L"]
    )
    assert report.n_images == 1 and set(report.per_image) == {"1"}


def _java_metric_ready() -> str | None:
    if shutil.which("java") is None:
        return "no java on PATH"
    try:
        metrics._pycocoevalcap_dir()
    except metrics.MetricUnavailable as e:
        return str(e)
    return None


@pytest.mark.slow  # starts the METEOR JVM and loads its paraphrase table (~8 s)
@pytest.mark.skipif(_java_metric_ready() is not None, reason=f"METEOR: {_java_metric_ready()}")
def test_meteor_matches_pycocoevalcap_golden():
    golden = load("coco_small.json")
    report = score_captions(golden["candidates"], golden["references"], metrics=["METEOR"])
    assert report.scores["METEOR"] == pytest.approx(golden["scores"]["METEOR"], abs=1e-9)

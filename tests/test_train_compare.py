"""`imgcap eval`'s caption statistics and `imgcap eval --compare A B` with bootstrap intervals."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from indexer.train.caption_stats import caption_stats, distinct_ngrams


# ------------------------------------------------------------------------- caption statistics
def test_caption_stats_by_hand():
    st = caption_stats(["A dog runs.", "a dog runs .", "A red red car", "a cat."])
    # Tokenised: "a dog runs" (twice: the same caption once punctuation is gone), "a red red car",
    # "a cat".
    assert st["captions"] == 4
    assert st["length_mean"] == pytest.approx((3 + 3 + 4 + 2) / 4)
    assert st["length_median"] == 3 and st["length_min"] == 2 and st["length_max"] == 4
    assert st["vocabulary"] == 6  # a dog runs red car cat
    assert st["distinct_captions"] == pytest.approx(3 / 4)
    assert st["distinct_1"] == pytest.approx(6 / 12)
    # bigrams: a-dog, dog-runs (x2 each), a-red, red-red, red-car, a-cat: 6 distinct of 8
    assert st["distinct_2"] == pytest.approx(6 / 8)
    assert st["ends_with_period"] == pytest.approx(3 / 4)


def test_distinct_ngrams_edge_cases():
    assert distinct_ngrams([], 2) == 0.0
    assert distinct_ngrams([["a"]], 2) == 0.0  # no bigram at all
    assert distinct_ngrams([["a", "b"], ["a", "b"]], 2) == 0.5


# ------------------------------------------------------------------------------- bootstrap
def _rows(captions: dict[str, str], refs: dict[str, list[str]]) -> dict:
    from indexer.train.metrics import score_captions

    report = score_captions(captions, refs, ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D"))
    rows = {i: {"caption": c, "scores": report.per_image[i]} for i, c in captions.items()}
    return rows, report


def test_bootstrap_matches_a_naive_resampling_loop():
    from indexer.train.compare import _bootstrap
    from indexer.train.metrics import bleu
    from indexer.train.ptb import tokenize

    rng = random.Random(0)
    words = "a red blue circle square on white black background two".split()
    ids = [str(i) for i in range(30)]
    refs = {i: [" ".join(rng.choices(words, k=rng.randint(3, 7))) for _ in range(3)] for i in ids}
    cand_a = {i: " ".join(rng.choices(words, k=rng.randint(2, 6))) for i in ids}
    cand_b = {i: refs[i][0] if rng.random() < 0.5 else cand_a[i] for i in ids}
    rows_a, rep_a = _rows(cand_a, refs)
    rows_b, rep_b = _rows(cand_b, refs)
    n_boot, seed = 50, 3
    diffs = {
        m.name: m
        for m in _bootstrap(
            ids, rows_a, rows_b, refs,
            [(rep_a.scores, rep_a.per_image), (rep_b.scores, rep_b.per_image)], n_boot, seed,
        )
    }  # fmt: skip
    assert set(diffs) == {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D"}
    # Naive: the same draws, each resample scored from scratch (corpus BLEU of the resampled
    # captions; the mean of per-image scores for the others).
    draws = np.random.Generator(np.random.PCG64(seed)).integers(0, len(ids), size=(n_boot, 30))
    tok = {i: tokenize(c) for i, c in cand_a.items()}, {i: tokenize(c) for i, c in cand_b.items()}
    tok_refs = {i: [tokenize(r) for r in refs[i]] for i in ids}
    naive: dict[str, list[float]] = {name: [] for name in diffs}
    for draw in draws:
        pick = [ids[k] for k in draw]
        refs_r = [tok_refs[i] for i in pick]
        bleu_a = bleu([tok[0][i] for i in pick], refs_r)[0]
        bleu_b = bleu([tok[1][i] for i in pick], refs_r)[0]
        naive["BLEU-1"].append(bleu_b[0] - bleu_a[0])
        naive["BLEU-4"].append(bleu_b[3] - bleu_a[3])
        for name in ("ROUGE-L", "CIDEr-D"):
            per = [rep_b.per_image[i][name] - rep_a.per_image[i][name] for i in pick]
            naive[name].append(sum(per) / len(per))
    for name, m in diffs.items():
        low, high = np.percentile(naive[name], [2.5, 97.5])
        assert m.low == pytest.approx(low, abs=1e-9) and m.high == pytest.approx(high, abs=1e-9)
        assert m.diff == pytest.approx(rep_b.scores[name] - rep_a.scores[name])
    # B copies a reference for half the images: clearly better, and the interval says so.
    assert diffs["CIDEr-D"].low > 0 and diffs["CIDEr-D"].significant


# ------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from indexer.train.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("evalcmp"), 6, seed=0, fmt="csv", size=64)


def _invoke(*args):
    import cli

    return CliRunner().invoke(cli.app, ["eval", *map(str, args), "--device", "cpu"])


def test_eval_prints_and_returns_caption_stats(data, tiny_model_dir):
    r = _invoke(data, "--model", tiny_model_dir, "--split", "train", "--json")
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout.strip().splitlines()[-1])["caption_stats"]
    assert st["captions"] == 6
    assert st["length_min"] <= st["length_mean"] <= st["length_max"]
    assert 0 < st["distinct_captions"] <= 1 and st["vocabulary"] > 0
    r = _invoke(data, "--model", tiny_model_dir, "--split", "train")
    assert r.exit_code == 0, r.output
    assert "vocabulary" in r.stdout and "distinct" in r.stdout


def test_compare_two_models_json_and_table(data, tiny_model_dir, tiny_model_dir_b, tmp_path):
    args = (data, "--compare", tiny_model_dir, tiny_model_dir_b, "--split", "train",
            "--bootstrap", 200)  # fmt: skip
    r = _invoke(*args, "--json", "--out", tmp_path / "cmp.json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["models"] == ["tiny-0", "tiny-1"] and doc["n_images"] == 6
    assert doc["bootstrap"] == 200 and doc["seed"] == 0
    assert json.loads((tmp_path / "cmp.json").read_text())["metrics"] == doc["metrics"]
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D"):
        m = doc["metrics"][name]
        assert m["diff"] == pytest.approx(m["b"] - m["a"])
        assert m["ci"][0] <= m["ci"][1]
    assert set(doc["caption_stats"]) == {"a", "b"}
    again = _invoke(*args, "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["metrics"] == doc["metrics"]  # seeded
    table = _invoke(*args)
    assert table.exit_code == 0, table.output
    assert "B - A" in table.stdout and "95% interval" in table.stdout and "tiny-1" in table.stdout


def test_compare_a_model_with_itself_is_zero(data, tiny_model_dir):
    r = _invoke(data, "--compare", tiny_model_dir, tiny_model_dir, "--split", "train",
                "--bootstrap", 50, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    for m in json.loads(r.stdout.strip().splitlines()[-1])["metrics"].values():
        assert m["diff"] == 0 and m["ci"] == [0, 0] and not m["significant"]


def test_compare_usage_errors(data, tiny_model_dir):
    r = _invoke(data, "--compare", tiny_model_dir, tiny_model_dir, "--model", tiny_model_dir)
    assert r.exit_code == 2 and "--compare" in r.output
    r = _invoke(data, "--compare", tiny_model_dir)  # one model: typer wants two values
    assert r.exit_code == 2

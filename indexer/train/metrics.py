"""Caption metrics with the coco-caption definitions, so our numbers are comparable with papers.

The definitions are those of pycocoevalcap 1.2 (salaniz/pycocoevalcap, the Python 3 port of
tylin/coco-caption), which every captioning paper since 2015 reports:

- tokenisation: Stanford PTBTokenizer 3.4.1 (`-preserveLines -lowerCase`), then coco-caption's
  punctuation tokens dropped. Re-implemented in pure Python in indexer/train/ptb.py
  (`tokenize`, imported here), see its docstring for where it can differ from the Java tokenizer.
- BLEU-1..4: corpus-level n-gram precisions with the "closest reference length" brevity penalty
  (bleu_scorer.py, option 'closest', including its 1e-9/1e-15 smoothing constants).
- ROUGE-L: LCS-based F-measure with beta=1.2, best precision and best recall over the references,
  averaged over images (rouge.py).
- CIDEr-D: tf-idf n-gram cosine (n=1..4) with clipping, Gaussian length penalty sigma=6, x10, mean
  over the references; document frequencies from the references of the scored images
  (cider_scorer.py; coco-caption names this metric "CIDEr"). `CiderD` keeps them fixed, e.g.
  over all training references for SCST's reward.
- METEOR 1.5 and SPICE 1.0: Java programs; run from the jars shipped in the optional `pycocoevalcap`
  package when it and Java are present, otherwise reported as unavailable with the reason.

BLEU, ROUGE-L and CIDEr-D match pycocoevalcap's Python scorers to floating-point precision on the
same tokenised input (tests/test_train_metrics.py checks this against stored reference values).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import UsageError
from indexer.train.ptb import tokenize

BLEU_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
ALL_METRICS = (*BLEU_NAMES, "METEOR", "ROUGE-L", "CIDEr-D", "SPICE")
JAVA_METRICS = frozenset({"METEOR", "SPICE"})

# ---------------------------------------------------------------------------------------------
# BLEU (bleu_scorer.py, option 'closest')
# ---------------------------------------------------------------------------------------------


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def bleu(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4
) -> tuple[list[float], list[list[float]]]:
    """Corpus BLEU-1..n and per-image BLEU-1..n ([k][image]) of tokenised captions."""
    stats = bleu_counts(candidates, references, n)
    per_image: list[list[float]] = [[] for _ in range(n)]
    for correct, guess, test_len, ref_len in stats:
        for k, score in enumerate(_bleu_from_counts(correct, guess, test_len, ref_len)):
            per_image[k].append(score)
    return bleu_from_counts(stats, n), per_image


def bleu_counts(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4
) -> list[tuple[list[int], list[int], int, int]]:
    """Per image: (clipped matches per n, candidate n-grams per n, candidate length, closest
    reference length). Corpus BLEU of any subset or resample of the images is computed from
    their sums (`bleu_from_counts`), which is what a bootstrap over images needs."""
    out = []
    for cand, refs in zip(candidates, references, strict=True):
        words = cand.split()
        test_len = len(words)
        max_ref: dict[tuple[str, ...], int] = {}
        ref_lens = []
        for ref in refs:
            ref_words = ref.split()
            ref_lens.append(len(ref_words))
            for gram, c in _ngrams(ref_words, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), c)
        # Closest reference length; ties go to the shorter reference (min over (distance, length)).
        ref_len = min((abs(rl - test_len), rl) for rl in ref_lens)[1]
        guess = [max(0, test_len - k + 1) for k in range(1, n + 1)]
        correct = [0] * n
        for gram, c in _ngrams(words, n).items():
            correct[len(gram) - 1] += min(max_ref.get(gram, 0), c)
        out.append((correct, guess, test_len, ref_len))
    return out


def bleu_from_counts(stats: Iterable[tuple], n: int = 4) -> list[float]:
    """Corpus BLEU-1..n from per-image `bleu_counts` rows (repeats count again)."""
    total_correct, total_guess, total_test, total_ref = [0] * n, [0] * n, 0, 0
    for correct, guess, test_len, ref_len in stats:
        for k in range(n):
            total_correct[k] += correct[k]
            total_guess[k] += guess[k]
        total_test += test_len
        total_ref += ref_len
    return _bleu_from_counts(total_correct, total_guess, total_test, total_ref)


def _bleu_from_counts(
    correct: Sequence[int], guess: Sequence[int], test_len: float, ref_len: float
) -> list[float]:
    small, tiny = 1e-9, 1e-15  # bleu_scorer's: avoid 0/0; zero matches give ~0 rather than nan
    scores, product = [], 1.0
    for k in range(len(correct)):
        product *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_len + tiny) / (ref_len + small)
    if ratio < 1:  # brevity penalty
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


# ---------------------------------------------------------------------------------------------
# ROUGE-L (rouge.py)
# ---------------------------------------------------------------------------------------------


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(
    candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2
) -> tuple[float, list[float]]:
    """Mean and per-image ROUGE-L F (beta 1.2) of tokenised captions."""
    scores = []
    for cand, refs in zip(candidates, references, strict=True):
        # split(" ") as rouge.py does: an empty caption counts as one empty token, not zero.
        c = cand.split(" ")
        prec, rec = [], []
        for ref in refs:
            r = ref.split(" ")
            lcs = _lcs(r, c)
            prec.append(lcs / len(c))
            rec.append(lcs / len(r))
        p, r_ = max(prec), max(rec)
        scores.append((1 + beta**2) * p * r_ / (r_ + beta**2 * p) if p and r_ else 0.0)
    return _mean(scores), scores


# ---------------------------------------------------------------------------------------------
# CIDEr-D (cider_scorer.py)
# ---------------------------------------------------------------------------------------------


def cider_d(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, list[float]]:
    """Mean and per-image CIDEr-D of tokenised captions (IDF from these references)."""
    scorer = CiderD(references, n=n, sigma=sigma)
    scores = [
        scorer.score(cand, refs) for cand, refs in zip(candidates, scorer.prepared, strict=True)
    ]
    return _mean(scores), scores


class CiderD:
    """CIDEr-D with the document frequencies fixed once, from `references` (tokenised captions,
    one list per image). `cider_d` builds one over the scored images' references, as coco-caption
    does; SCST builds one over all TRAINING references and then scores thousands of sampled
    captions against single images' references (`prepare` once per image, `score` per caption).
    """

    def __init__(
        self,
        references: Sequence[Sequence[str]],
        n: int = 4,
        sigma: float = 6.0,
        keep: bool = True,
    ):
        self.n, self.sigma = n, sigma
        self.doc_freq: Counter[tuple[str, ...]] = Counter()
        kept = []
        for refs in references:
            counts = [_ngrams(r.split(), n) for r in refs]
            self.doc_freq.update({gram for c in counts for gram in c})
            if keep:
                kept.append(counts)
        self.log_n_docs = math.log(float(len(references))) if references else 0.0
        # keep: the given images' references, vectorised: score(cand, self.prepared[i]). SCST
        # over COCO passes keep=False: 566k references' n-gram vectors would take gigabytes;
        # it `prepare`s an image's references when it scores them.
        self.prepared = [[self._vectorise(c) for c in refs] for refs in kept]

    def prepare(self, refs: Sequence[str]) -> list:
        """One image's tokenised references as vectors under these document frequencies."""
        return [self._vectorise(_ngrams(r.split(), self.n)) for r in refs]

    def _vectorise(self, counts: Counter) -> tuple[list[dict], list[float], int]:
        n, doc_freq, log_n_docs = self.n, self.doc_freq, self.log_n_docs
        vec: list[dict] = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            # n-grams never seen in the references get df 1 (max(1, df)), i.e. the largest idf.
            vec[k][gram] = float(tf) * (log_n_docs - math.log(max(1.0, doc_freq[gram])))
            norm[k] += vec[k][gram] ** 2
            # cider_scorer counts BIGRAMS here (its `n == 1` is the bigram index), so "length" is
            # words - 1; the length penalty only uses differences, which is the same except for
            # empty captions. Kept for exact agreement.
            if k == 1:
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def score(self, candidate: str, prepared_refs: list) -> float:
        """CIDEr-D (x10 scale) of one tokenised caption against one image's prepared refs."""
        n, sigma = self.n, self.sigma
        vec, norm, length = self._vectorise(_ngrams(candidate.split(), n))
        total = [0.0] * n
        for vec_r, norm_r, length_r in prepared_refs:
            penalty = math.e ** (-(float(length - length_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                # Clipping (the "-D"): a repeated n-gram counts at most as often as in the ref.
                val = sum(
                    min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec[k].items()
                )
                if norm[k] != 0 and norm_r[k] != 0:
                    val /= norm[k] * norm_r[k]
                total[k] += val * penalty
        return sum(total) / n / len(prepared_refs) * 10.0


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


# ---------------------------------------------------------------------------------------------
# Java metrics: METEOR 1.5 and SPICE 1.0 from the pycocoevalcap package
# ---------------------------------------------------------------------------------------------


class MetricUnavailable(Exception):
    """A metric cannot run here; the message is the reason shown to the user."""


def _pycocoevalcap_dir() -> Path:
    import importlib.util

    # pycocoevalcap 1.2 has no top-level __init__.py (a namespace package): no __file__.
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(
            "needs the optional package pycocoevalcap (pip install pycocoevalcap)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def java_version(java: str = "java") -> int:
    """Major Java version (8, 11, 17, ...); raises MetricUnavailable when there is no Java."""
    exe = shutil.which(java)
    if exe is None:
        raise MetricUnavailable(f"needs Java (no `{java}` on PATH)")
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MetricUnavailable(f"`java -version` failed: {e}") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise MetricUnavailable(f"could not read the Java version from: {out.stderr.strip()!r}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major  # "1.8.0" means Java 8


def meteor(
    candidates: Sequence[str], references: Sequence[Sequence[str]], java: str = "java"
) -> tuple[float, list[float]]:
    """Corpus and per-image METEOR 1.5 (`-l en -norm`), as pycocoevalcap's Meteor wrapper."""
    jar = _pycocoevalcap_dir() / "meteor" / "meteor-1.5.jar"
    if not jar.exists():
        raise MetricUnavailable(f"METEOR jar missing: {jar}")
    java_version(java)
    cmd = [java, "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
    # stderr to a file, not a pipe: nobody reads it while we talk, and a full pipe would hang Java.
    errors = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        cmd,
        cwd=jar.parent,  # the jar finds its paraphrase table relative to itself
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )

    def ask(line: str) -> str:
        assert proc.stdin and proc.stdout
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        if not answer:
            proc.wait()
            errors.seek(0)
            raise MetricUnavailable(f"METEOR process ended early: {_last_line(errors.read())}")
        return answer.strip()

    try:
        # Protocol: "SCORE ||| ref ||| ... ||| hyp" -> sufficient statistics per image;
        # "EVAL ||| stats ||| ..." -> one score per image, then the corpus score.
        stats = []
        for cand, refs in zip(candidates, references, strict=True):
            hyp = cand.replace("|||", "").replace("  ", " ")
            stats.append(ask(" ||| ".join(("SCORE", " ||| ".join(refs), hyp))))
        first = ask(" ||| ".join(("EVAL", *stats)))
        assert proc.stdout
        rest = [proc.stdout.readline().strip() for _ in range(len(stats))]
        values = [float(x) for x in (first, *rest)]
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.kill()
        proc.wait()
        errors.close()
    return values[-1], values[:-1]


# SPICE parses captions with Stanford CoreNLP 3.6.0, which pycocoevalcap downloads (~400 MB) into
# its spice/lib folder on first use. We never download: without the jars SPICE is unavailable.
_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def spice(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    image_ids: Sequence[str] | None = None,
    java: str = "java",
) -> tuple[float, list[float]]:
    """Mean and per-image SPICE F-score, as pycocoevalcap's Spice wrapper (no lmdb cache)."""
    spice_dir = _pycocoevalcap_dir() / "spice"
    jar = spice_dir / "spice-1.0.jar"
    missing = [name for name in _CORENLP_JARS if not (spice_dir / "lib" / name).exists()]
    if not jar.exists() or missing:
        raise MetricUnavailable(
            f"needs Stanford CoreNLP 3.6.0 in {spice_dir / 'lib'} (missing: "
            f"{', '.join(missing) or jar.name}); fetch it once, online, with `python -c "
            '"from pycocoevalcap.spice.get_stanford_models import get_stanford_models; '
            'get_stanford_models()"`'
        )
    major = java_version(java)
    ids = list(image_ids) if image_ids is not None else [str(i) for i in range(len(candidates))]
    data = [
        {"image_id": i, "test": c, "refs": list(r)}
        for i, c, r in zip(ids, candidates, references, strict=True)
    ]
    # Java >= 9 forbids the reflective access SPICE's serialisation makes into java.lang
    # (InaccessibleObjectException, tylin/coco-caption#59); this reopens it.
    opens = ["--add-opens", "java.base/java.lang=ALL-UNNAMED"] if major >= 9 else []
    with tempfile.TemporaryDirectory(prefix="imgcap-spice-") as tmp:
        in_path, out_path = Path(tmp) / "in.json", Path(tmp) / "out.json"
        in_path.write_text(json.dumps(data))
        cmd = [java, *opens, "-jar", "-Xmx8G", str(jar), str(in_path), "-out", str(out_path)]
        cmd += ["-subset", "-silent"]
        run = subprocess.run(cmd, cwd=spice_dir, capture_output=True, text=True)
        if run.returncode != 0 or not out_path.exists():
            raise MetricUnavailable(
                f"SPICE failed (Java {major}; SPICE 1.0 is known to work with Java 8): "
                f"{_last_line(run.stderr)}"
            )
        results = {
            str(item["image_id"]): item["scores"] for item in json.loads(out_path.read_text())
        }
    per_image = [_float_or_nan(results[str(i)]["All"]["f"]) for i in ids]
    return _mean(per_image), per_image


def _float_or_nan(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsReport:
    """Scores of a set of captions. Scales as coco-caption: 0-1, CIDEr-D 0-10 (papers show x100).

    scores: metric name -> corpus score, None when the metric could not run.
    per_image: image id -> metric name -> score (only metrics that ran).
    unavailable: metric name -> why it did not run ("needs Java (no `java` on PATH)").
    """

    scores: dict[str, float | None]
    per_image: dict[str, dict[str, float]]
    unavailable: dict[str, str] = field(default_factory=dict)
    n_images: int = 0

    def available(self) -> dict[str, float]:
        return {k: v for k, v in self.scores.items() if v is not None}


def score_captions(
    candidates: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    metrics: Iterable[str] = ALL_METRICS,
    java: str = "java",
) -> MetricsReport:
    """Score one candidate caption per image against that image's reference captions.

    Only images with a candidate are scored (as coco-caption's example, which restricts the
    evaluation to the result's image ids); references of other images are ignored, so CIDEr-D's
    document frequencies come from the references of the scored images only. Every candidate
    must have at least one reference. Captions are tokenised here (`tokenize`); pass raw text.
    """
    wanted = list(dict.fromkeys(metrics))
    unknown = [m for m in wanted if m not in ALL_METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {unknown}; known: {', '.join(ALL_METRICS)}")
    ids = [str(i) for i in candidates]
    refs_by_id = {str(k): v for k, v in references.items()}
    missing = [i for i in ids if not refs_by_id.get(i)]
    if missing:
        raise UsageError(
            f"{len(missing)} captioned image(s) have no reference captions, e.g. {missing[:3]}"
        )
    if not ids:
        raise UsageError("no captions to score")
    cands = [tokenize(c) for c in candidates.values()]
    refs = [[tokenize(r) for r in refs_by_id[i]] for i in ids]

    scores: dict[str, float | None] = {m: None for m in wanted}
    per_image: dict[str, dict[str, float]] = {i: {} for i in ids}
    unavailable: dict[str, str] = {}

    def record(name: str, corpus: float, each: Sequence[float]) -> None:
        if name in scores:
            scores[name] = float(corpus)
            for i, v in zip(ids, each, strict=True):
                per_image[i][name] = float(v)

    if any(m in wanted for m in BLEU_NAMES):
        corpus, each = bleu(cands, refs)
        for k, name in enumerate(BLEU_NAMES):
            record(name, corpus[k], each[k])
    if "ROUGE-L" in wanted:
        record("ROUGE-L", *rouge_l(cands, refs))
    if "CIDEr-D" in wanted:
        record("CIDEr-D", *cider_d(cands, refs))
    java_runs = {
        "METEOR": lambda: meteor(cands, refs, java=java),
        "SPICE": lambda: spice(cands, refs, image_ids=ids, java=java),
    }
    for name, run in java_runs.items():
        if name not in wanted:
            continue
        try:
            record(name, *run())
        except MetricUnavailable as e:
            unavailable[name] = str(e)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            # A broken Java install must not cost the user the other metrics.
            unavailable[name] = f"{name} failed: {e}"
    return MetricsReport(
        scores=scores, per_image=per_image, unavailable=unavailable, n_images=len(ids)
    )

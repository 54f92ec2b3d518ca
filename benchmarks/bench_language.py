"""Query language detection: search/language.detect (script, letters, word lists) against
langid.py (if installed) on short photo-search queries, for accuracy and time.

    PYTHONPATH=$PWD python benchmarks/bench_language.py

Two tables: tests/data/language_queries.tsv (the routing test's table; the word lists were
written with it in view) and HELD_OUT below (written before either detector ran on it).
A query counts as right when the detector names the expected language; for routing only
"English or not" matters, reported too.
"""

from __future__ import annotations

import time
from pathlib import Path

from search.language import detect

HELD_OUT = [
    ("en", "cat on the sofa"), ("en", "mountains"), ("en", "New York 2015"),
    ("en", "baby's first steps"), ("en", "fireworks"), ("en", "Rome"),
    ("de", "Katze auf dem Sofa"), ("de", "Berge im Sommer"), ("de", "Weihnachtsmarkt"),
    ("de", "Kölner Dom"), ("fr", "les enfants au parc"), ("fr", "feux d'artifice"),
    ("fr", "montagne enneigée"), ("es", "gato en el sofá"), ("es", "fuegos artificiales"),
    ("es", "la abuela en la cocina"), ("it", "la nonna in cucina"), ("it", "fuochi d'artificio"),
    ("pt", "gato no sofá"), ("pt", "fogos de artifício"), ("nl", "kat op de bank"),
    ("nl", "vuurwerk"), ("zh", "沙发上的猫"), ("zh", "烟花"), ("ja", "ソファの上の猫"),
    ("ja", "花火"), ("ko", "소파 위의 고양이"), ("ru", "кот на диване"), ("ru", "салют"),
]  # fmt: skip


def table() -> list[tuple[str, str]]:
    path = Path(__file__).parent.parent / "tests" / "data" / "language_queries.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


def score(name: str, fn, rows) -> None:
    t = time.perf_counter()
    got = [fn(q) for _, q in rows]
    per = (time.perf_counter() - t) / len(rows) * 1e3
    right = sum(g == e for g, (e, _) in zip(got, rows, strict=True))
    routed = sum((g == "en") == (e == "en") for g, (e, _) in zip(got, rows, strict=True))
    wrong = [f"{q!r}->{g}" for g, (e, q) in zip(got, rows, strict=True) if g != e]
    print(
        f"{name:10s} {right}/{len(rows)} languages right, {routed}/{len(rows)} routed right,"
        f" {per:.3f} ms/query; wrong: {', '.join(wrong) or 'none'}"
    )


def main() -> None:
    langs = sorted({e for e, _ in table()} | {e for e, _ in HELD_OUT})
    detectors = [("imgcap", detect)]
    try:
        t = time.perf_counter()
        from langid.langid import LanguageIdentifier, model

        ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        ident.set_languages(langs)
        print(f"langid: model unpacked in {time.perf_counter() - t:.2f} s")

        def by_langid(q: str) -> str:
            lang, p = ident.classify(q)
            return lang if p >= 0.5 else "en"  # unsure: English, as imgcap's rule

        detectors.append(("langid", by_langid))
    except ImportError:
        print("langid not installed: imgcap's detector only")
    for title, rows in (("routing test table", table()), ("held out", HELD_OUT)):
        print(f"--- {title} ({len(rows)} queries)")
        for name, fn in detectors:
            score(name, fn, rows)


if __name__ == "__main__":
    main()

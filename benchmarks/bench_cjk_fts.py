"""CJK keyword search at 100,000 tagged photos: character bigrams (indexer/store/cjk.py) against
FTS5's trigram tokenizer and a LIKE scan, and what m011 costs on an old library.

    .venv/bin/python benchmarks/bench_cjk_fts.py --rows 100000 --runs 15

Synthetic tags: 30% of photos carry one or two Chinese or Japanese tags of 2-6 characters
(words drawn from a pool of 3,000 two-character words, some common, with "北京旅行" and
"東京タワー" on 0.5% each), the rest Latin tags ("Grandma", "beach 2019"). Each variant is its own
FTS5 table in one database file under /tmp; the variants are timed alternately, median of
`--runs`. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from sqlite_utils import Database

from indexer.store import cjk, photo_tags
from search.query import fts_query

HAN = "北京東京旅行海山川花猫犬家族友人学校会社料理桜夏冬春秋雪雨空星夜朝公園駅寺神社城橋港島湖"
KANA = "タワーカメラスキーパーティーさくらまつりはなびおまつり"
LATIN = "grandma beach birthday trip paris dog cat snow garden family wedding cake".split()


def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pool = HAN + KANA
    words = ["".join(rng.choice(pool) for _ in range(2)) for _ in range(3000)]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.005:
            tags = ["北京旅行"]
        elif r < 0.01:
            tags = ["東京タワー", rng.choice(LATIN)]
        elif r < 0.30:
            tags = [
                "".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
                for _ in range(rng.randint(1, 2))
            ]
        else:
            tags = [rng.choice(LATIN).title(), f"{rng.choice(LATIN)} {rng.randint(2000, 2026)}"]
        out.append("\n".join(tags))
    return out


def _build(conn: sqlite3.Connection, texts: list[str]) -> dict[str, float]:
    took = {}
    conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, words TEXT)")
    conn.executemany("INSERT INTO raw (id, words) VALUES (?, ?)", enumerate(texts, 1))
    for name, tokenize, transform in (
        ("before", "unicode61", lambda t: t),
        ("bigram", "unicode61", cjk.fts_text),
        ("trigram", "trigram", lambda t: t),
    ):
        t0 = time.perf_counter()
        conn.execute(f"CREATE VIRTUAL TABLE {name} USING fts5(words, tokenize='{tokenize}')")
        rows = ((i, transform(t)) for i, t in enumerate(texts, 1))
        conn.executemany(f"INSERT INTO {name} (rowid, words) VALUES (?, ?)", rows)
        conn.commit()
        took[name] = time.perf_counter() - t0
    return took


def _size(conn: sqlite3.Connection, table: str) -> int:
    """Bytes of the FTS table's data (its shadow tables' pages)."""
    try:
        (n,) = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE ?", [f"{table}_%"]
        ).fetchone()
        return int(n or 0)
    except sqlite3.OperationalError:
        return 0  # SQLite built without dbstat


def _queries(word: str) -> dict[str, tuple[str, list]]:
    like = ("SELECT id FROM raw WHERE words LIKE ?", [f"%{word}%"])
    out = {
        "before": ("SELECT rowid FROM before WHERE before MATCH ?", [fts_query([word])]),
        "bigram": ("SELECT rowid FROM bigram WHERE bigram MATCH ?", [fts_query([word])]),
        "LIKE scan": like,
    }
    if len(word) >= 3:
        phrase = '"' + word.replace('"', '""') + '"'
        out["trigram"] = ("SELECT rowid FROM trigram WHERE trigram MATCH ?", [phrase])
    else:  # under three characters the trigram index cannot answer: LIKE scans the table
        out["trigram"] = ("SELECT rowid FROM trigram WHERE words LIKE ?", [f"%{word}%"])
    return out


def _migration(texts: list[str], folder: Path) -> tuple[float, int]:
    """Seconds m011 takes to rewrite the tag rows of an old library of len(texts) photos."""
    db = Database(folder / "old.db")
    db["files"].create({"id": int, "path": str}, pk="id")
    photo_tags.create(db)
    db.conn.executemany(
        "INSERT INTO photo_tags (path, tags, folded, words, sidecars) VALUES (?, ?, ?, ?, '')",
        [
            (f"/p/{i}.jpg", _json(t.split("\n")), "[]", t)  # words as imgcap wrote them before
            for i, t in enumerate(texts)
        ],
    )
    db.conn.commit()
    t0 = time.perf_counter()
    with db.atomic():
        changed = photo_tags.add_cjk_bigrams(db)
    took = time.perf_counter() - t0
    db.close()
    return took, changed


def _json(tags: list[str]) -> str:
    import json

    return json.dumps(tags, ensure_ascii=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    texts = _corpus(args.rows)
    with tempfile.TemporaryDirectory(prefix="imgcap-bench-cjk-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "fts.db")
        built = _build(conn, texts)
        print(f"rows {args.rows}; CJK rows {sum(cjk.has_cjk(t) for t in texts)}")
        for name in ("before", "bigram", "trigram"):
            print(f"build {name}: {built[name]:.2f} s, {_size(conn, name) / 1e6:.1f} MB")
        words = ["北京", "東京", "北京旅行", "タワー", "猫", "beach"]
        print("| query | variant | rows found | median ms |")
        print("|---|---|---|---|")
        for word in words:
            qs = _queries(word)
            times: dict[str, list[float]] = {k: [] for k in qs}
            found: dict[str, int] = {}
            for _ in range(args.runs):
                for name, (sql, params) in qs.items():  # alternately
                    t0 = time.perf_counter()
                    found[name] = len(conn.execute(sql, params).fetchall())
                    times[name].append((time.perf_counter() - t0) * 1000)
            for name in qs:
                med = statistics.median(times[name])
                print(f"| {word} | {name} | {found[name]:,} | {med:.2f} |")
        conn.close()
        took, changed = _migration(texts, Path(tmp))
        print(f"m011 on {args.rows:,} tag rows: {took:.2f} s, {changed:,} rows rewritten")


if __name__ == "__main__":
    main()

"""A portable index: what roots cost and how fast moving and merging are (issue 13 §4).

    python benchmarks/bench_roots.py --photos 20000 --workdir /tmp/imgcap-bench-roots

Measures, on synthetic rows written through the store's own API (512-d float32 vectors, one
result per photo, photos spread over 50 folders under one root):

- file-row writes with the root trigger vs the same writes with the trigger dropped;
- the schema 6 migration of a database holding those rows (roots inferred, rel paths filled);
- `roots move` of the root (every path rewritten, one transaction);
- `merge` into an empty database (everything copied) and again (nothing new: idempotent pass);
- a reader's open (`connect_readonly`, which checks whether a travelling root moved).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.store import schema
from indexer.store.connection import connect_readonly
from indexer.store.database import Store
from indexer.store.merge import merge  # noqa: E402
from indexer.store.records import FileRecord, ResultRecord  # noqa: E402
from indexer.store.roots import add_roots, move_root  # noqa: E402

DIM = 512
BATCH = 512


def rows(n: int, root: str, rng: np.random.Generator):
    for start in range(0, n, BATCH):
        results, files = [], []
        for i in range(start, min(n, start + BATCH)):
            h = f"{i:064x}"
            v = rng.standard_normal(DIM, dtype=np.float32)
            results.append(ResultRecord(h, f"a photo number {i}", v, v))
            files.append(FileRecord(f"{root}/f{i % 50:02d}/p{i:07d}.jpg", 1000 + i, i, h))
        yield results, files


def write(db: Path, n: int, root: str, trigger: bool) -> float:
    with Store.open(db) as s:
        add_roots(s.db, [root], db)
        if not trigger:
            s.db.execute("DROP TRIGGER files_root_insert")
        t = 0.0
        for results, files in rows(n, root, np.random.default_rng(0)):
            t0 = time.perf_counter()
            s.write_batch("m", results, files)
            t += time.perf_counter() - t0
    return t


def migrate_v4(db: Path, n: int, root: str) -> float:
    from sqlite_utils import Database

    d = Database(db)
    orig = schema.SCHEMA_VERSION
    schema.SCHEMA_VERSION = 4
    try:
        schema.migrate(d, db)
    finally:
        schema.SCHEMA_VERSION = orig
    with d.atomic():
        for _, files in rows(n, root, np.random.default_rng(0)):
            d.conn.executemany(
                "INSERT INTO files (path, folder, size, mtime_ns, content_hash)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (f.path, os.path.dirname(f.path), f.size, f.mtime_ns, f.content_hash)
                    for f in files
                ],
            )
    d.close()
    t0 = time.perf_counter()
    Store.open(db).close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/imgcap-bench-roots"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    a.workdir.mkdir(parents=True)
    root = str(a.workdir / "photos")
    os.makedirs(root)
    out: dict = {"photos": a.photos}

    with_t, without_t = [], []
    for i in range(a.repeat):
        with_t.append(write(a.workdir / f"with{i}.db", a.photos, root, True))
        without_t.append(write(a.workdir / f"without{i}.db", a.photos, root, False))
    out["write_s_with_trigger"] = statistics.median(with_t)
    out["write_s_without_trigger"] = statistics.median(without_t)
    out["trigger_overhead"] = out["write_s_with_trigger"] / out["write_s_without_trigger"]

    out["migrate_s"] = statistics.median(
        migrate_v4(a.workdir / f"v4_{i}.db", a.photos, root) for i in range(a.repeat)
    )

    db = a.workdir / "with0.db"
    moves = []
    for i in range(a.repeat):
        new = str(a.workdir / f"moved{i}")
        os.makedirs(new)
        old = root if i == 0 else str(a.workdir / f"moved{i - 1}")
        with Store.open(db) as s:
            t0 = time.perf_counter()
            move_root(s.db, db, old, new)
            moves.append(time.perf_counter() - t0)
    out["roots_move_s"] = statistics.median(moves)

    first, again = [], []
    source = a.workdir / f"with{a.repeat - 1}.db"
    for i in range(a.repeat):
        target = a.workdir / f"merged{i}.db"
        t0 = time.perf_counter()
        merge(target, source)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        report = merge(target, source)
        again.append(time.perf_counter() - t0)
        assert not report.added_anything
    out["merge_into_empty_s"] = statistics.median(first)
    out["merge_again_s"] = statistics.median(again)

    opens = []
    for _ in range(20):
        t0 = time.perf_counter()
        connect_readonly(db).close()
        opens.append(time.perf_counter() - t0)
    out["reader_open_ms"] = 1000 * statistics.median(opens)
    conn = sqlite3.connect(db)
    t0 = time.perf_counter()
    for _ in range(100):
        conn.execute("SELECT id, path, db_relative FROM roots WHERE db_relative IS NOT NULL")
    out["moved_check_ms"] = 1000 * (time.perf_counter() - t0) / 100
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()

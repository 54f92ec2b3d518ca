"""rows_in: one statement's rows for any number of values, chunked under SQLite's parameter cap,
equal to the rows of a naive one-value-at-a-time query."""

from __future__ import annotations

import sqlite3

from indexer.store.records import CHUNK, rows_in


def test_rows_in_spans_chunks_and_keeps_parameters_in_place():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k INTEGER, tag TEXT, n INTEGER)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", [(i, "a" if i % 3 else "b", i % 7) for i in range(3000)]
    )
    keys = list(range(0, 3000, 2)) + [5000]  # 1,501 values: two chunks, one absent key
    assert len(keys) > CHUNK
    sql = "SELECT k FROM t WHERE tag = ? AND k IN ({marks}) AND n < ?"
    got = sorted(k for (k,) in rows_in(conn, sql, keys, before=["a"], after=[4]))
    naive = sorted(
        k
        for key in keys
        for (k,) in conn.execute("SELECT k FROM t WHERE tag = 'a' AND k = ? AND n < 4", [key])
    )
    assert got == naive and len(got) > 0
    assert list(rows_in(conn, sql, [], before=["a"], after=[4])) == []

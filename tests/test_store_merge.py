"""`merge`: another database's photos and results brought in by path and content hash, conflicts
reported with ours kept, idempotent, refusals (issue 13 §4). Databases written through the
store's own API; the expected outcome is computed from the rules, row by row."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import numpy as np
import pytest

from indexer.errors import StoreError, UsageError
from indexer.store.database import Store
from indexer.store.merge import merge
from indexer.store.photo_tags import TagRow, save
from indexer.store.records import FileRecord, ResultRecord
from indexer.store.roots import add_roots
from indexer.store.user_captions import set_user_caption


def h(name: str) -> str:
    """A content hash as imgcap writes it (32 hex digits), named for the test."""
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


def _vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def _result(h: str, caption: str, seed: int, dim: int = 8) -> ResultRecord:
    return ResultRecord(h, caption, _vec(seed, dim), _vec(seed + 1, dim))


def _write(db, root: str, files: dict[str, str], results: dict[str, list[ResultRecord]]):
    """files: rel path -> content hash; results: model -> records."""
    with Store.open(db) as s:
        add_roots(s.db, [root], db)
        for model, recs in results.items():
            s.write_batch(model, recs, [])
        rows = [FileRecord(os.path.join(root, r), 1, 1, h) for r, h in files.items()]
        s.write_batch(next(iter(results)), [], rows)
        for model in results:
            s.db.execute("INSERT INTO models (name, source) VALUES (?, ?)", [model, "hub"])
        s.db.conn.commit()


def _dump(db) -> dict[str, list]:
    conn = sqlite3.connect(db)
    out = {
        "files": conn.execute(
            "SELECT path, rel_path, content_hash FROM files ORDER BY path"
        ).fetchall(),
        "results": conn.execute(
            "SELECT content_hash, model, caption, generated_caption, caption_vec, image_vec"
            " FROM results ORDER BY content_hash, model"
        ).fetchall(),
        "roots": conn.execute("SELECT path FROM roots ORDER BY path").fetchall(),
        "models": conn.execute("SELECT name, source FROM models ORDER BY name").fetchall(),
        "tags": conn.execute("SELECT path, tags FROM photo_tags ORDER BY path").fetchall(),
        "state": conn.execute("SELECT model, count FROM vector_state ORDER BY model").fetchall(),
    }
    conn.close()
    return out


@pytest.fixture
def pair(tmp_path):
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    _write(
        ours,
        "/photos",
        {"a.jpg": h("h1"), "shared.jpg": h("h2"), "edited.jpg": h("h5"), "both.jpg": h("h6")},
        {
            "m": [
                _result(h("h1"), "a dog", 1),
                _result(h("h2"), "a cat", 2),
                _result(h("h5"), "a boat", 5),
                _result(h("h6"), "a tree", 6),
            ]
        },
    )
    set_user_caption(ours, "/photos/both.jpg", "m", "our tree", _vec(60))
    _write(
        theirs,
        "/laptop/pics",
        {"b.jpg": h("h3"), "dup of a.jpg": h("h1"), "edited.jpg": h("h5"), "both.jpg": h("h6")},
        {
            "m": [
                _result(h("h3"), "a bird", 3),
                _result(h("h1"), "a puppy", 11),  # same content and model, another caption
                _result(h("h5"), "a boat", 50),
                _result(h("h6"), "a tree", 61),
            ],
            "wide": [_result(h("h3"), "a bird", 30, dim=16)],
        },
    )
    with Store.open(theirs) as s:  # a path both have, with other content
        add_roots(s.db, ["/photos"], theirs)
        s.write_batch(
            "m", [_result(h("h4"), "a car", 4)], [FileRecord("/photos/shared.jpg", 1, 1, h("h4"))]
        )
        save(s.db, [TagRow("/laptop/pics/b.jpg", ["garden"], None, 1, 1, "", [])])
        s.db.execute("UPDATE models SET source = '/models/m' WHERE name = 'm'")
        s.db.conn.commit()
    set_user_caption(theirs, "/laptop/pics/edited.jpg", "m", "my boat", _vec(70))
    set_user_caption(theirs, "/laptop/pics/both.jpg", "m", "their tree", _vec(80))
    return ours, theirs


def test_merge_brings_photos_and_results_and_reports_conflicts(pair):
    ours, theirs = pair
    before, other = _dump(ours), _dump(theirs)
    report = merge(ours, theirs)
    after = _dump(ours)

    # Files: every path of theirs we lacked, with its root; the clashing path kept as ours.
    assert after["files"] == sorted(
        before["files"]
        + [
            ("/laptop/pics/b.jpg", "b.jpg", h("h3")),
            ("/laptop/pics/both.jpg", "both.jpg", h("h6")),
            ("/laptop/pics/dup of a.jpg", "dup of a.jpg", h("h1")),
            ("/laptop/pics/edited.jpg", "edited.jpg", h("h5")),
        ]
    )
    assert after["roots"] == [("/laptop/pics",), ("/photos",)]
    assert (report.files_added, report.files_same) == (4, 0)
    # Results: theirs for content we lacked (h3 for both models), copied exactly; h4 belongs
    # to no file here (its path clashed), so it stays behind.
    ours_res = {(r[0], r[1]): r for r in after["results"]}
    theirs_res = {(r[0], r[1]): r for r in other["results"]}
    assert set(ours_res) == {(r[0], r[1]) for r in before["results"]} | {
        (h("h3"), "m"),
        (h("h3"), "wide"),
    }
    assert ours_res[(h("h3"), "m")] == theirs_res[(h("h3"), "m")]
    assert ours_res[(h("h3"), "wide")] == theirs_res[(h("h3"), "wide")]
    # Their person's caption comes; our generated caption and vectors stay beside it.
    h5 = ours_res[(h("h5"), "m")]
    assert (h5[2], h5[3]) == ("my boat", "a boat")
    assert h5[4] == theirs_res[(h("h5"), "m")][4]  # the user caption's vector came with it
    old_h5 = {(r[0], r[1]): r for r in before["results"]}[(h("h5"), "m")]
    assert h5[5] == old_h5[5]  # our image vector kept
    assert ours_res[(h("h1"), "m")] == {(r[0], r[1]): r for r in before["results"]}[(h("h1"), "m")]
    assert report.results_added == 2 and report.user_captions_added == 1
    assert report.models_added == ["wide"] and report.roots_added == ["/laptop/pics"]
    assert after["tags"] == [("/laptop/pics/b.jpg", '["garden"]')] and report.tags_added == 1
    kinds = sorted((c["kind"], c.get("path") or c.get("model")) for c in report.conflicts)
    assert kinds == [
        ("caption", "/laptop/pics/dup of a.jpg"),
        ("model source", "m"),
        ("path", "/photos/shared.jpg"),
        ("user caption", "/laptop/pics/both.jpg"),
    ]
    assert report.conflict_count == 4
    # The vector cache sees the change: counts match the rows.
    assert dict(after["state"]) == {"m": 5, "wide": 1}


def test_merging_twice_adds_nothing(pair):
    ours, theirs = pair
    merge(ours, theirs)
    once = _dump(ours)
    report = merge(ours, theirs)
    assert _dump(ours) == once
    assert not report.added_anything
    assert report.files_same == 4 and report.files_added == 0


def test_merge_into_a_new_database_copies_everything(pair, tmp_path):
    _, theirs = pair
    new = tmp_path / "new.db"
    report = merge(new, theirs)
    got, want = _dump(new), _dump(theirs)
    assert got["files"] == want["files"] and got["results"] == want["results"]
    assert got["models"] == want["models"] and report.conflict_count == 0


def test_model_with_other_vector_size_is_a_conflict(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _write(a, "/p", {"x.jpg": h("h1")}, {"m": [_result(h("h1"), "x", 1)]})
    _write(b, "/q", {"y.jpg": h("h2")}, {"m": [_result(h("h2"), "y", 2, dim=16)]})
    report = merge(a, b)
    assert [c["kind"] for c in report.conflicts] == ["model vectors"]
    assert report.results_added == 0 and report.files_added == 1  # the photo, not its vectors


def test_refusals_leave_both_files_untouched(pair, tmp_path):
    ours, theirs = pair
    before = ours.read_bytes()
    foreign = tmp_path / "contacts.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not an imgcap database"):
        merge(ours, foreign)
    newer = tmp_path / "newer.db"
    newer.write_bytes(theirs.read_bytes())
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer imgcap"):
        merge(ours, newer)
    with pytest.raises(UsageError, match="is this database"):
        merge(ours, ours)
    with pytest.raises(StoreError, match="no database"):
        merge(ours, tmp_path / "missing.db")
    assert ours.read_bytes() == before


def test_merge_takes_the_writer_lock(pair):
    from indexer.store.lock import writer_lock

    ours, theirs = pair
    with writer_lock(ours), pytest.raises(StoreError, match="already writing"):
        merge(ours, theirs)


def test_merge_an_old_database(tmp_path):
    from test_store_roots import OLD_PATHS, make_v4

    old = tmp_path / "v4.db"
    make_v4(old)
    conn = sqlite3.connect(old)  # its hashes as imgcap writes them
    conn.create_function("hash", 1, h)
    for table in ("files", "results"):
        conn.execute(f"UPDATE {table} SET content_hash = hash(content_hash)")
    conn.commit()
    conn.close()
    new = tmp_path / "new.db"
    report = merge(new, old)
    got = _dump(new)
    assert [p for p, _, _ in got["files"]] == sorted(OLD_PATHS)
    assert all(rel for _, rel, _ in got["files"])  # roots inferred as a migration infers them
    assert report.results_added == 6 and report.tags_added == 1


def test_video_keyframes_and_places_come_with_their_files(tmp_path):
    from indexer.store import frames

    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    _write(ours, "/p", {"x.jpg": h("h1")}, {"m": [_result(h("h1"), "x", 1)]})
    with Store.open(theirs) as s:
        add_roots(s.db, ["/q"], theirs)
        keys = [frames.FrameRecord(h("V"), 0), frames.FrameRecord(h("V"), 1500)]
        s.write_batch(
            "m",
            [_result(k.key, f"frame {k.at_ms}", 7 + i) for i, k in enumerate(keys)],
            [FileRecord("/q/clip.mp4", 9, 9, h("V")), FileRecord("/q/paris.jpg", 1, 1, h("h2"))],
            keyframes=keys,
            videos=[frames.VideoRecord(h("V"), 2, 3.0)],
        )
        s.write_batch("m", [_result(h("h2"), "paris", 2)], [])
        for label in ["Lyon, France", "Paris, France"]:  # their ids 1 and 2
            s.db.execute(
                "INSERT INTO places (label, city, country_code) VALUES (?, ?, 'FR')",
                [label, label.split(",")[0]],
            )
        s.db.execute("UPDATE files SET place_id = 2 WHERE path = '/q/paris.jpg'")
        s.db.conn.commit()
    with Store.open(ours) as s:  # our ids differ: Paris is 1 here
        s.db.execute(
            "INSERT INTO places (label, city, country_code) VALUES ('Paris, France', 'Paris', 'FR')"
        )
        s.db.conn.commit()
    report = merge(ours, theirs)
    conn = sqlite3.connect(ours)
    assert sorted(conn.execute("SELECT frame_key, video_hash, at_ms FROM video_frames")) == [
        (h("V") + "@0", h("V"), 0),
        (h("V") + "@1500", h("V"), 1500),
    ]
    assert conn.execute("SELECT content_hash, keyframes FROM videos").fetchall() == [(h("V"), 2)]
    assert sorted(
        h for (h,) in conn.execute("SELECT content_hash FROM results WHERE model = 'm'")
    ) == sorted([h("V") + "@0", h("V") + "@1500", h("h1"), h("h2")])
    place = conn.execute(
        "SELECT p.label FROM files f JOIN places p ON p.id = f.place_id"
        " WHERE f.path = '/q/paris.jpg'"
    ).fetchone()
    assert place == ("Paris, France",)
    assert conn.execute("SELECT count(*) FROM places").fetchone()[0] == 1  # matched, not copied
    assert dict(conn.execute("SELECT model, count FROM vector_state")) == {"m": 4}
    conn.close()
    assert report.results_added == 3 and report.files_added == 2


# ------------------------------------------------------------------ an untrusted other database
def make_hostile(tmp_path):
    """Ours: the root /srv/photos. Theirs: a real database (written by the store) whose rows
    are then changed with plain SQL the way a crafted file would have them."""
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    _write(ours, "/srv/photos", {"x.jpg": h("x")}, {"m": [_result(h("x"), "x", 1)]})
    names = [
        "good",
        "dots",
        "pwned",
        "passwd",
        "disagree",
        "slash",
        "above",
        "etc",
        "sub",
        "badvec",
    ]
    _write(
        theirs,
        "/laptop/pics",
        {f"{n}.jpg": h(n) for n in names},
        {"m": [_result(h(n), n, i) for i, n in enumerate(names)]},
    )
    conn = sqlite3.connect(theirs)
    for trigger in ("files_root_insert", "files_root_path"):  # a crafted file has no triggers
        conn.execute(f"DROP TRIGGER {trigger}")

    def file(name, path, root_id, rel):
        conn.execute(
            "UPDATE files SET path = ?, root_id = ?, rel_path = ? WHERE rel_path = ?",
            [path, root_id, rel, f"{name}.jpg"],
        )

    laptop = conn.execute("SELECT id FROM roots").fetchone()[0]
    root = {}
    for path in ("/", "/srv", "/etc", "/srv/photos/sub"):
        root[path] = conn.execute(
            "INSERT INTO roots (path, added_at) VALUES (?, 'then')", [path]
        ).lastrowid
    file("dots", "/laptop/pics/../../../../etc/hostname", laptop, "../../../../etc/hostname")
    conn.execute("UPDATE files SET content_hash = '../../tmp/x/PWNED' WHERE rel_path = 'pwned.jpg'")
    file("passwd", "/etc/passwd", None, None)
    file("disagree", "/etc/shadow", laptop, "disagree.jpg")
    file("slash", "/etc/group", root["/"], "etc/group")
    file("above", "/srv/x/above.jpg", root["/srv"], "x/above.jpg")
    file("etc", "/etc/hostname", root["/etc"], "hostname")
    file("sub", "/srv/photos/sub/n.jpg", root["/srv/photos/sub"], "n.jpg")  # inside ours: fine
    conn.execute("UPDATE results SET image_vec = x'00' WHERE content_hash = ?", [h("badvec")])
    conn.commit()
    conn.close()
    return ours, theirs


def test_hostile_rows_are_skipped_and_reported_and_nothing_leaves_our_roots(tmp_path):
    ours, theirs = make_hostile(tmp_path)
    report = merge(ours, theirs)

    refused = {r["root"]: (r["reason"], r["files"]) for r in report.roots_refused}
    assert set(refused) == {"/", "/srv", "/etc"}
    assert "whole file system" in refused["/"][0] and refused["/"][1] == 1
    assert "holds this database's root /srv/photos" in refused["/srv"][0]
    assert "system folder /etc" in refused["/etc"][0]
    assert refused["/srv"][1] == refused["/etc"][1] == 1
    why = {s["row"]: s["reason"] for s in report.skipped if s["table"] == "files"}
    assert set(why) == {
        "/laptop/pics/../../../../etc/hostname",
        "/laptop/pics/pwned.jpg",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/group",
        "/srv/x/above.jpg",
        "/etc/hostname",
    }
    assert "leaves its root" in why["/laptop/pics/../../../../etc/hostname"]
    assert "'../../tmp/x/PWNED' is not one imgcap writes" in why["/laptop/pics/pwned.jpg"]
    assert why["/etc/passwd"] == "under no root"
    assert "disagree" in why["/etc/shadow"]
    assert why["/etc/group"] == "under the refused root /"
    assert why["/srv/x/above.jpg"] == "under the refused root /srv"
    assert why["/etc/hostname"] == "under the refused root /etc"
    vec = [s for s in report.skipped if s["table"] == "results"]
    assert vec == [
        {
            "table": "results",
            "row": f"{h('badvec')} m",
            "reason": "its image_vec is not 8 float32 values",
        }
    ]
    assert report.skipped_count == 8

    after = _dump(ours)
    assert after["roots"] == [("/laptop/pics",), ("/srv/photos",)]  # ours kept, "/" never came
    assert [(p, rel) for p, rel, _ in after["files"]] == [
        ("/laptop/pics/badvec.jpg", "badvec.jpg"),
        ("/laptop/pics/good.jpg", "good.jpg"),
        ("/srv/photos/sub/n.jpg", "sub/n.jpg"),  # joined our root
        ("/srv/photos/x.jpg", "x.jpg"),
    ]
    assert {c for _, _, c in after["files"]} == {h("badvec"), h("good"), h("sub"), h("x")}
    assert sorted(r[0] for r in after["results"]) == sorted([h("good"), h("sub"), h("x")])
    # Merging again skips the same rows and adds nothing.
    again = merge(ours, theirs)
    assert again.skipped_count == 8 and not again.added_anything and _dump(ours) == after


def test_hostile_keyframes_are_skipped(tmp_path):
    from indexer.store import frames

    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    _write(ours, "/p", {"x.jpg": h("x")}, {"m": [_result(h("x"), "x", 1)]})
    with Store.open(theirs) as s:
        add_roots(s.db, ["/q"], theirs)
        keys = [frames.FrameRecord(h("V"), 0), frames.FrameRecord(h("V"), 1500)]
        s.write_batch(
            "m",
            [_result(k.key, f"frame {k.at_ms}", 7 + i) for i, k in enumerate(keys)],
            [FileRecord("/q/clip.mp4", 9, 9, h("V"))],
            keyframes=keys,
        )
    conn = sqlite3.connect(theirs)
    bad = "../../tmp/x/PWNED@0"
    conn.execute("UPDATE video_frames SET frame_key = ? WHERE at_ms = 0", [bad])
    conn.execute("UPDATE results SET content_hash = ? WHERE content_hash LIKE '%@0'", [bad])
    conn.commit()
    conn.close()
    report = merge(ours, theirs)
    assert report.skipped == [
        {
            "table": "video_frames",
            "row": bad,
            "reason": "its keyframe key is not one imgcap writes (<content hash>@<milliseconds>)",
        }
    ]
    conn = sqlite3.connect(ours)
    assert conn.execute("SELECT frame_key FROM video_frames").fetchall() == [(f"{h('V')}@1500",)]
    keys = {k for (k,) in conn.execute("SELECT content_hash FROM results")}
    assert keys == {h("x"), f"{h('V')}@1500"}  # the bad key reaches no file: never asked for
    conn.close()


def _beside(db) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name))


def test_the_other_database_gets_nothing_written_beside_it(pair, tmp_path):
    ours, theirs = pair
    assert _beside(theirs) == ["theirs.db"]  # a WAL database, closed cleanly
    before = theirs.read_bytes()
    assert merge(ours, theirs).files_added == 4
    assert _beside(theirs) == ["theirs.db"] and theirs.read_bytes() == before

    # Commits still in the log of a database copied while its writer ran (no -shm): read too.
    live = tmp_path / "live" / "theirs.db"
    live.parent.mkdir()
    with Store.open(theirs) as s:
        conn = s.db.conn
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(
            "UPDATE results SET caption = 'from the log' WHERE content_hash = ?", [h("h3")]
        )
        conn.commit()
        for suffix in ("", "-wal"):
            live.with_name(live.name + suffix).write_bytes(
                theirs.with_name(theirs.name + suffix).read_bytes()
            )
    assert _beside(live) == ["theirs.db", "theirs.db-wal"]
    files = {p: p.read_bytes() for p in live.parent.iterdir()}
    new = tmp_path / "new.db"
    merge(new, live)
    assert {p: p.read_bytes() for p in live.parent.iterdir()} == files  # nothing made or changed
    conn = sqlite3.connect(new)
    got = conn.execute(
        "SELECT caption FROM results WHERE content_hash = ? AND model = 'm'", [h("h3")]
    ).fetchone()
    conn.close()
    assert got == ("from the log",)


def test_a_damaged_database_is_refused_whole(pair, tmp_path):
    ours, theirs = pair
    before = ours.read_bytes()
    data = bytearray(theirs.read_bytes())
    # One character of a stored path changed (bit rot): the table no longer agrees with its
    # index. Nothing else reads wrong, so only the integrity check can tell.
    at = data.find(b"/laptop/pics/b.jpg")
    assert at > 0
    data[at + len("/laptop/pics/")] = ord("X")
    rotten = tmp_path / "rotten.db"
    rotten.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"rotten.db is damaged .*integrity.*nothing was merged"):
        merge(ours, rotten)
    # A page of garbage in the middle.
    data = bytearray(theirs.read_bytes())
    middle = len(data) // 4096 // 2 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    torn = tmp_path / "torn.db"
    torn.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"torn.db is damaged .*nothing was merged"):
        merge(ours, torn)
    assert ours.read_bytes() == before


def test_text_read_in_their_pictures_comes_with_their_content(pair):
    from indexer.store import photo_text

    ours, theirs = pair
    box = (0.1, 0.1, 0.9, 0.1, 0.9, 0.2, 0.1, 0.2)
    with Store.open(theirs) as s:
        found = [("BIRD SEED", 0.97, box), ("evil", 0.9, box)]
        photo_text.save(s.db, [(h("h3"), found, None)], "test")
        photo_text.save(s.db, [(h("h5"), [("boat", 0.9, box)], None)], "test")
        hostile = "UPDATE text_lines SET box = '[2, 0, 0, 0, 0, 0, 0, 0]' WHERE text = 'evil'"
        s.db.execute(hostile)
        s.db.conn.commit()
    with Store.open(ours) as s:  # h5 read here already: ours is kept
        photo_text.save(s.db, [(h("h5"), [], None)], "ours")
    merge(ours, theirs)
    conn = sqlite3.connect(ours)
    reads = conn.execute("SELECT content_hash, text, reader FROM text_reads ORDER BY 1").fetchall()
    assert sorted(reads) == sorted([(h("h3"), "BIRD SEED\nevil", "test"), (h("h5"), "", "ours")])
    lines = conn.execute("SELECT content_hash, text, box FROM text_lines").fetchall()  # no evil
    assert lines == [(h("h3"), "BIRD SEED", "[0.1, 0.1, 0.9, 0.1, 0.9, 0.2, 0.1, 0.2]")]
    hits = photo_text.keyword_matches(conn, "m", '"seed"', 10)
    sql = "SELECT id FROM results WHERE content_hash = ? AND model = 'm'"
    assert [r for (r,) in conn.execute(sql, [h("h3")])] == [i for i, _ in hits]  # searchable
    conn.close()

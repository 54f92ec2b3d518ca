"""Searchable first, captioned after (indexer/run/pending_captions.py): captions made later from
the stored image vectors are the captions of one pass, resumably, on this machine or another."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from naive_clipcap import naive_greedy
from PIL import Image

from indexer.config import Settings
from indexer.errors import UsageError
from indexer.models.clipcap import Captioner, ClipCapConfig, ClipCapModel
from indexer.run.caption_mode import caption_mode
from indexer.run.pending_captions import caption_database, caption_stored
from indexer.run.pipeline import index_paths
from indexer.store.database import Store
from indexer.store.merge import merge
from indexer.store.pending_captions import pending_counts
from indexer.store.user_captions import set_user_caption

N = 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("later") / "photos"
    root.mkdir()
    for i in range(N):
        img = Image.new("RGB", (40, 30), (50 * i, 255 - 40 * i, (90 * i) % 256))
        img.putpixel((i, i), (255, 255, 255))
        img.save(root / f"p{i}.png")
    return root


def _settings(db, captions: str) -> Settings:
    return Settings(
        db_path=db, device="cpu", workers=1, batch_size=2, max_tokens=6, captions=captions
    )


def _rows(db) -> dict[str, tuple]:
    """path -> (caption, image_vec, caption_vec, pending, generated caption) of every result."""
    with Store.open(db, create=False) as s:
        rows = s.db.execute(
            "SELECT f.path, r.caption, r.image_vec, r.caption_vec, r.caption_pending,"
            " r.generated_caption FROM results r JOIN files f USING (content_hash)"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _same(a: dict[str, tuple], b: dict[str, tuple]) -> bool:
    """Same captions, image vectors, marks, bit for bit; caption vectors to float rounding: CLIP's
    text tower runs to the longest caption of its batch (indexer/models/clip.py), and the two
    paths batch captions differently (equal bits when their batches coincide)."""
    import numpy as np

    if a.keys() != b.keys():
        return False
    for p in a:
        (ca, ia, va, *ra), (cb, ib, vb, *rb) = a[p], b[p]
        if (ca, ia, ra) != (cb, ib, rb):
            return False
        x, y = np.frombuffer(va, "<f4"), np.frombuffer(vb, "<f4")
        if not np.allclose(x, y, rtol=1e-5, atol=1e-6):
            return False
    return True


def _index(folder, db, captions, model, **kw):
    return index_paths([folder], _settings(db, captions), model=model, **kw)


@pytest.fixture(scope="module")
def one_pass(folder, tmp_path_factory, tiny_model):
    db = tmp_path_factory.mktemp("now") / "imgcap.db"
    s = _index(folder, db, "now", tiny_model)
    assert s.captioned == N and s.captions_pending == 0
    return _rows(db)


def test_after_captions_from_the_stored_vectors_as_one_pass_does(
    folder, tmp_path, tiny_model, one_pass
):
    s = _index(folder, tmp_path / "a.db", "after", tiny_model)
    assert (s.captioned_from_vectors, s.captions_pending) == (N, 0)
    assert _same(_rows(tmp_path / "a.db"), one_pass)
    # Real caption vectors, no pending mark: not the placeholder.
    assert all(any(r[2]) and r[3] is None for r in one_pass.values())


def test_later_is_searchable_by_image_vectors_and_a_later_run_captions_it(
    folder, tmp_path, tiny_model, one_pass
):
    db = tmp_path / "l.db"
    s = _index(folder, db, "later", tiny_model)
    assert (s.captioned_from_vectors, s.captions_pending) == (0, N)
    rows = _rows(db)
    assert {p: r[1] for p, r in rows.items()} == {p: r[1] for p, r in one_pass.items()}
    assert all(r[0] == "" and r[3] == 1 and not any(r[2]) for r in rows.values())
    # A search during captioning: image vectors answer, the empty caption vectors never do.
    from search.vectors.cache import sync_indexes

    sync_indexes(db)
    again = _index(folder, db, "now", tiny_model)  # nothing new to decode; captions resume
    assert (again.captioned, again.captioned_from_vectors, again.unchanged) == (0, N, N)
    assert _same(_rows(db), one_pass)


def test_a_killed_captioning_phase_resumes_without_rework_or_duplicates(
    folder, tmp_path, tiny_model, one_pass
):
    db = tmp_path / "k.db"
    seen = []

    def ctrl_c_after_first_batch(p) -> None:
        if p.phase == "captioning" and p.done:
            seen.append(p.done)
            raise KeyboardInterrupt

    s = _index(folder, db, "after", tiny_model, on_progress=ctrl_c_after_first_batch)
    assert s.interrupted and (s.captioned_from_vectors, s.captions_pending) == (2, N - 2)
    with Store.open(db, create=False) as store:
        assert [r["status"] for r in store.db["runs"].rows] == ["interrupted"]
    calls = []
    with Store.open(db) as store:
        n = caption_stored(store, tiny_model, _settings(db, "after"), calls.append)
    assert n == N - 2 and sum(calls) == N - 2  # only what was left
    assert _same(_rows(db), one_pass) and len(_rows(db)) == N


def test_parity_weights_caption_the_same_later(folder, tmp_path, tiny_model):
    """The decode-parity captioners of tests/test_models_clipcap.py (a strong stop token; the
    transformer mapper, which L2-normalises its prefix inside): one pass == two phases."""
    torch.manual_seed(1)
    base = tiny_model.captioner
    for mapping in ("mlp", "transformer"):
        net = copy.deepcopy(base.model)
        if mapping == "transformer":
            cfg = ClipCapConfig(
                mapping="transformer", prefix_dim=32, prefix_length=4, clip_length=3,
                num_layers=2, num_heads=2, normalize_prefix=True, gpt2=dict(net.cfg.gpt2),
            )  # fmt: skip
            trf = ClipCapModel(cfg)
            trf.gpt = net.gpt
            net = trf.eval()
        with torch.no_grad():
            net.gpt.transformer.wte.weight[13] *= 5
        model = replace(
            tiny_model, captioner=Captioner(net, base.tokenizer, base.device, base.dtype)
        )
        _index(folder, tmp_path / f"{mapping}-now.db", "now", model)
        _index(folder, tmp_path / f"{mapping}-after.db", "after", model)
        now, after = _rows(tmp_path / f"{mapping}-now.db"), _rows(tmp_path / f"{mapping}-after.db")
        assert _same(now, after), mapping
        # Token ids: the reference's one-image loop over each stored vector gives these captions.
        for caption, vec, *_ in after.values():
            feats = torch.frombuffer(bytearray(vec), dtype=torch.float32)[None]
            ids = naive_greedy(net, net.prefix_embeddings(feats), max_tokens=6, stop_token=13)
            assert model.captioner.detokenize(ids) == caption, mapping


def test_caption_on_another_machine_then_merge_back(folder, tmp_path, tiny_model, one_pass):
    a, b = tmp_path / "laptop.db", tmp_path / "gpu-box.db"
    _index(folder, a, "later", tiny_model)
    shutil.copy(a, b)
    report = caption_database(_settings(b, "now"), model=tiny_model)
    assert (report.captioned, report.pending) == (N, 0)
    assert _same(_rows(b), one_pass)
    merged = merge(a, b)
    assert merged.captions_filled == N and merged.results_added == 0 and not merged.conflicts
    assert _same(_rows(a), one_pass)
    assert merge(a, b).captions_filled == 0  # merging twice adds nothing
    with Store.open(a, create=False) as s:
        assert pending_counts(s.db.conn) == {}
    # And the other way: a pending database merged into a captioned one changes nothing.
    c = tmp_path / "pending.db"
    _index(folder, c, "later", tiny_model)
    assert merge(b, c).conflict_count == 0 and _same(_rows(b), one_pass)


def test_a_caption_a_person_wrote_while_it_waited_stays(folder, tmp_path, tiny_model, one_pass):
    db = tmp_path / "u.db"
    _index(folder, db, "later", tiny_model)
    path = str(folder / "p1.png")
    set_user_caption(db, path, tiny_model.name, "my cat", torch.ones(32).numpy())
    with Store.open(db) as store:
        caption_stored(store, tiny_model, _settings(db, "now"))
    rows = _rows(db)
    assert rows[path][0] == "my cat" and rows[path][4] == one_pass[path][0]
    others = {p: r for p, r in rows.items() if p != path}
    assert _same(others, {p: r for p, r in one_pass.items() if p != path})


def test_the_default_is_one_pass_on_a_gpu_and_captions_after_elsewhere():
    def fake(device: str, grid: bool = False):
        return SimpleNamespace(
            name="m", device=torch.device(device), captioner=SimpleNamespace(needs_grid=grid)
        )

    auto = Settings(captions="auto")
    assert caption_mode(auto, fake("cpu")) == "after"
    assert caption_mode(auto, fake("cuda")) == "now"
    assert caption_mode(replace(auto, captions="later"), fake("cuda")) == "later"
    # The attention model needs CLIP's grid, which is not stored: always one pass.
    assert caption_mode(replace(auto, captions="later"), fake("cpu", grid=True)) == "now"
    with pytest.raises(UsageError, match="grid"):
        caption_stored(None, fake("cpu", grid=True), auto)


def test_out_of_memory_halves_the_captioning_batch(folder, tmp_path, tiny_model, one_pass):
    class Oom:
        def __init__(self, inner):
            self.inner, self.sizes = inner, []

        def caption(self, feats, **kw):
            if len(feats) > 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
            self.sizes.append(len(feats))
            return self.inner.caption(feats, **kw)

    db = tmp_path / "o.db"
    _index(folder, db, "later", tiny_model)
    model = replace(tiny_model, captioner=Oom(tiny_model.captioner))
    with Store.open(db) as store:
        assert caption_stored(store, model, _settings(db, "now")) == N
    assert model.captioner.sizes == [1] * N and _same(_rows(db), one_pass)


def test_write_back_skips_photos_still_waiting_for_a_caption(folder, tmp_path, tiny_model):
    from indexer.store.writeback import captions_to_write

    db = tmp_path / "w.db"
    _index(folder, db, "later", tiny_model)
    set_user_caption(db, str(folder / "p1.png"), tiny_model.name, "my cat", torch.ones(32).numpy())
    with Store.open(db, create=False) as s:
        rows = captions_to_write(s.db.conn, tiny_model.name, [])
    assert [(r["path"], r["caption"]) for r in rows] == [(str(folder / "p1.png"), "my cat")]


def test_the_captioner_gets_the_same_tensor_in_both_paths(folder, tmp_path, tiny_model):
    """Bit for bit, float32: a lossy stored form (float16, a normalised vector) would change
    captions of real weights even where the tiny model's few tokens don't move."""

    class Recording:
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def caption(self, feats, **kw):
            assert feats.dtype == torch.float32
            self.seen += [row.numpy().tobytes() for row in feats]
            return self.inner.caption(feats, **kw)

    seen = {}
    for mode in ("now", "after"):
        model = replace(tiny_model, captioner=Recording(tiny_model.captioner))
        _index(folder, tmp_path / f"{mode}.db", mode, model)
        seen[mode] = sorted(model.captioner.seen)
    assert len(seen["now"]) == N and seen["now"] == seen["after"]


def test_sigkill_in_the_captioning_phase_resumes_without_rework(
    folder, tmp_path, tiny_model_dir, tiny_model, one_pass
):
    """A real kill -9 (no handler runs) while captions are made from stored vectors: what was
    committed stays, and the next run captions only what was left."""
    import numpy as np
    from slow_index import kill_at_batch

    db = tmp_path / "killed.db"
    args = ["index", str(folder), "--model", str(tiny_model_dir), "--device", "cpu"]
    args += ["--batch-size", "2", "--workers", "1", "--captions", "after", "--db", str(db)]
    seen = kill_at_batch(args, 2)  # the 2nd batch starts after the 1st commit
    assert seen == 2, "the run never got to its second captioning batch"
    killed = _rows(db)
    assert len(killed) == N  # every photo searchable by its image vector before any caption
    done = {p: r[0] for p, r in killed.items() if r[3] != 1}
    assert len(done) == 2  # the first batch of 2 was committed, the rest still waits
    assert done == {p: one_pass[p][0] for p in done}

    calls = []
    with Store.open(db) as store:
        n = caption_stored(store, tiny_model, _settings(db, "after"), calls.append)
    assert n == N - 2 and sum(calls) == N - 2  # the committed captions are not made again
    rows = _rows(db)
    assert {p: (r[0], r[3], r[4]) for p, r in rows.items()} == {
        p: (r[0], r[3], r[4]) for p, r in one_pass.items()
    }
    for p, r in rows.items():  # another process, another thread count: equal to float rounding
        for a, b in ((r[1], one_pass[p][1]), (r[2], one_pass[p][2])):
            np.testing.assert_allclose(
                np.frombuffer(a, "<f4"), np.frombuffer(b, "<f4"), rtol=1e-5, atol=1e-6
            )

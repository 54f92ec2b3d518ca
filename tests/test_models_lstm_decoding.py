"""Show and Tell / Show, Attend and Tell decoding: batched greedy and beam search against naive
one-image decoders written from the spec, the teacher-forced forward against step-by-step
decoding, the doubly stochastic penalty, and SCST's policy interface."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from indexer.models.lstm import IGNORE_INDEX, LstmCaptionNet, LstmConfig, lstm_loss
from indexer.models.lstm_decoding import beam_decode, greedy_decode

STOP = 13
V, D, N, C = 40, 12, 9, 10  # vocabulary, global feature, grid cells, grid width
ARCHS = ("show-and-tell", "show-attend-tell")


def _net(arch: str, seed: int = 0) -> LstmCaptionNet:
    torch.manual_seed(seed)
    cfg = LstmConfig(arch, D, V, grid_dim=C if arch == ARCHS[1] else 0, embed_dim=16,
                     hidden_dim=20, attention_dim=8, dropout=0.0)  # fmt: skip
    net = LstmCaptionNet(cfg).double().eval()
    with torch.no_grad():  # sharper, image-dependent outputs; "." likely enough that some
        net.out.weight.mul_(8)  # captions stop early and some run to max_tokens
        net.init_h.weight.mul_(3)
        net.out.bias[STOP] += 0.35
    return net


def _inputs(b: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, D, generator=g, dtype=torch.float64) * 5,
        torch.randn(b, N, C, generator=g, dtype=torch.float64),
    )


# ------------------------------------------------------------------- naive decoders (the spec)
@torch.no_grad()
def _naive_greedy(net, feats, grid, max_tokens, stop):
    """One image: arg-max each step from h0/c0, stop after the stop token (kept)."""
    state = net.init_state(feats, grid)
    ids, alphas, prev = [], [], None
    for _ in range(max_tokens):
        logits, state, alpha = net.step(prev, state)
        tok = int(logits[0].argmax())
        ids.append(tok)
        alphas.append(alpha)
        if tok == stop:
            break
        prev = torch.tensor([tok])
    return ids


@torch.no_grad()
def _naive_beam(net, feats, grid, w, max_tokens, stop):
    """One image, from the spec: keep the w candidates with the best MEAN log-prob; a finished
    beam is carried over unchanged; end when all w are finished or at max_tokens tokens; the
    best final mean wins."""
    state = net.init_state(feats, grid)
    logits, state, _ = net.step(None, state)
    logp = torch.log_softmax(logits[0].float(), -1)
    top = logp.topk(w)
    beams = [([int(t)], float(s), int(t) == stop, state) for s, t in zip(*top, strict=True)]
    for _ in range(max_tokens - 1):  # the first token is placed; each pass adds one
        if all(b[2] for b in beams):
            break
        cands = []
        for ids, total, done, st in beams:
            if done:
                cands.append((ids, total, True, st))
                continue
            logits, st2, _ = net.step(torch.tensor([ids[-1]]), st)
            lp = torch.log_softmax(logits[0].float(), -1)
            for v in range(lp.shape[0]):
                cands.append((ids + [v], total + float(lp[v]), v == stop, st2))
        cands.sort(key=lambda c: -c[1] / len(c[0]))
        beams = cands[:w]
    best = max(beams, key=lambda c: c[1] / len(c[0]))
    return best[0]


# ------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("arch", ARCHS)
def test_batched_greedy_equals_naive_one_image_decoding(arch):
    net = _net(arch)
    feats, grid = _inputs(6)
    got, maps = greedy_decode(net, feats, grid, max_tokens=12, stop_token=STOP)
    want = [_naive_greedy(net, feats[i : i + 1], grid[i : i + 1], 12, STOP) for i in range(6)]
    assert got == want
    assert any(len(t) < 12 for t in got) and any(t[-1] != STOP for t in got)  # both endings
    if arch == ARCHS[1]:
        for ids, m in zip(got, maps, strict=True):
            assert m.shape == (len(ids), N)
            assert torch.allclose(m.sum(dim=1), torch.ones(len(ids), dtype=m.dtype))
    else:
        assert maps == [None] * 6


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("beams", [2, 3])
def test_batched_beam_search_equals_naive_beam_search(arch, beams):
    feats, grid = _inputs(5, seed=3)
    lengths = set()
    # More and more likely stops, so finished beams compete with longer ones at different
    # lengths: where ranking by the mean (not the sum) log-prob matters.
    for more_stop in (0.0, 0.5, 1.0, 1.5):
        net = _net(arch, seed=2)
        with torch.no_grad():
            net.out.bias[STOP] += more_stop
        got, _ = beam_decode(net, feats, grid, beams=beams, max_tokens=7, stop_token=STOP)
        want = [_naive_beam(net, feats[i : i + 1], grid[i : i + 1], beams, 7, STOP)
                for i in range(5)]  # fmt: skip
        assert got == want, more_stop
        lengths |= {len(t) for t in want}
    assert len(lengths) >= 3  # captions of several lengths won


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_size_does_not_change_captions(arch):
    """Through the captioner (float32, as used): one batch of 7 == seven batches of 1."""
    from indexer.models.lstm import LstmCaptioner

    net = _net(arch).float()
    tok = _FakeTokenizer()
    cap = LstmCaptioner(net, tok, torch.device("cpu"), torch.float32)
    feats, grid = (x.float() for x in _inputs(7, seed=5))
    for beams in (1, 3):
        together = cap.decode_tokens(feats, beams=beams, max_tokens=10, grid=grid)
        alone = [
            cap.decode_tokens(feats[i : i + 1], beams=beams, max_tokens=10, grid=grid[i : i + 1])[0]
            for i in range(7)
        ]
        assert together == alone


def test_show_attend_tell_refuses_to_caption_without_the_grid():
    from indexer.errors import ModelFormatError
    from indexer.models.lstm import LstmCaptioner

    cap = LstmCaptioner(
        _net(ARCHS[1]).float(), _FakeTokenizer(), torch.device("cpu"), torch.float32
    )
    with pytest.raises(ModelFormatError, match="grid"):
        cap.caption(torch.randn(1, D))


class _FakeTokenizer:
    def encode(self, text):
        return [STOP] if text == "." else [1]

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)

    def __len__(self):
        return V


# ---------------------------------------------------------------------------------- training
@pytest.mark.parametrize("arch", ARCHS)
def test_teacher_forced_forward_equals_step_by_step(arch):
    net = _net(arch)
    feats, grid = _inputs(3)
    tokens = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(0))
    logits, alphas = net(tokens, feats, grid)
    state, prev = net.init_state(feats, grid), None
    for t in range(6):
        step_logits, state, alpha = net.step(prev, state)
        assert torch.allclose(logits[:, t], step_logits, atol=1e-10)
        if alphas is not None:
            assert torch.allclose(alphas[:, t], alpha, atol=1e-12)
        prev = tokens[:, t]


def test_doubly_stochastic_penalty_is_added_to_cross_entropy():
    net = _net(ARCHS[1])
    feats, grid = _inputs(2)
    tokens = torch.tensor([[3, 4, 5, STOP], [6, STOP, 0, 0]])
    labels = tokens.clone()
    labels[1, 2:] = IGNORE_INDEX
    logits, alphas = net(tokens, feats, grid)
    ce = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    real = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float64)
    penalty = sum(
        (1 - sum(alphas[b, t, i] * real[b, t] for t in range(4))) ** 2
        for b in range(2)
        for i in range(N)
    ) / (2 * N)
    got = lstm_loss(net, tokens, labels, feats, grid)
    assert torch.allclose(got.double(), ce + net.cfg.alpha_c * penalty, atol=1e-6)
    # validation (sum) is the cross-entropy alone
    ce_sum = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1),
                             ignore_index=IGNORE_INDEX, reduction="sum")  # fmt: skip
    assert torch.allclose(lstm_loss(net, tokens, labels, feats, grid, "sum").double(), ce_sum)


# ----------------------------------------------------------------------------- SCST interface
@pytest.mark.parametrize("arch", ARCHS)
def test_scst_sample_logprobs_padding_and_top1(arch):
    net = _net(arch)
    feats, grid = _inputs(3)
    features = (feats, grid) if arch == ARCHS[1] else feats
    g = torch.Generator().manual_seed(0)
    with torch.enable_grad():  # a load_model earlier in the session turned it off
        batch = net.sample(features, n=4, max_tokens=9, stop_token=STOP, generator=g)
    assert batch.tokens.shape[0] == 12 and batch.logprobs.requires_grad
    for r in range(12):
        n = int(batch.lengths[r])
        ids = batch.tokens[r, :n]
        assert (batch.tokens[r, n:] == 0).all()
        assert n == 9 or int(ids[-1]) == STOP
        assert STOP not in ids[:-1].tolist()
        # naive: teacher-forced log-probs of the sampled ids, image r // 4
        i = r // 4
        logits, _ = net(ids[None], feats[i : i + 1], grid[i : i + 1])
        want = torch.log_softmax(logits[0], -1).gather(1, ids[:, None]).sum()
        assert torch.allclose(batch.logprobs[r], want.float(), atol=1e-5)
    top1 = net.sample(features, n=2, max_tokens=9, stop_token=STOP, top_k=1)
    greedy = net.greedy(features, max_tokens=9, stop_token=STOP)
    for r in range(6):
        n = int(top1.lengths[r])
        assert top1.tokens[r, :n].tolist() == greedy[r // 2]
    with torch.enable_grad():
        batch.logprobs.sum().backward()  # gradients reach the network
    assert net.embed.weight.grad is not None

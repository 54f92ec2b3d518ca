"""SCST's pieces against naive versions written from the definitions: sampled captions and their
log-probabilities, the CIDEr-D reward with fixed document frequencies and its guards, the
leave-one-out baseline and the policy-gradient loss."""

from __future__ import annotations

import pytest
import torch

from indexer.models.sampling import ClipCapPolicy
from indexer.train.scst import Reward, leave_one_out_advantage, policy_for, policy_loss, repetitive

STOP = 13  # "." in GPT-2's BPE and the tiny tokenizer


@pytest.fixture
def net(tiny_model):
    return tiny_model.captioner.model.float().eval()


def _features(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))


def _naive_logprob(net, feature: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Sum of log p(token) one token at a time, a full forward per token, no cache, no mask."""
    total = torch.zeros(())
    for j, tok in enumerate(ids):
        tokens = torch.tensor([ids[:j]], dtype=torch.long)
        logits = net(tokens, feature[None], None)  # (1, K + j, V)
        total = total + torch.log_softmax(logits[0, -1].float(), -1)[tok]
    return total


# ------------------------------------------------------------------------------------ sampling
def test_sampled_logprobs_match_a_naive_recomputation(net):
    policy = ClipCapPolicy(net)
    feats = _features(3)
    gen = torch.Generator().manual_seed(1)
    with torch.enable_grad():  # load_model turned it off process-wide; training turns it on
        batch = policy.sample(feats, 4, 12, STOP, generator=gen)
    assert batch.tokens.shape[0] == batch.logprobs.shape[0] == batch.lengths.shape[0] == 12
    assert batch.logprobs.requires_grad  # what the policy gradient flows through
    for r in range(12):
        n = int(batch.lengths[r])
        ids = batch.tokens[r, :n].tolist()
        # A row stops at its first stop token, or runs to max_tokens; 0-padded after.
        assert STOP not in ids[:-1]
        assert ids[-1] == STOP or n == 12
        assert batch.tokens[r, n:].eq(0).all()
        with torch.no_grad():
            naive = _naive_logprob(net, feats[r // 4], ids)  # row r = image r // n (image-major)
        assert torch.allclose(batch.logprobs[r].detach(), naive, atol=1e-4), r


def test_top_1_sampling_is_the_greedy_caption(net):
    policy = ClipCapPolicy(net)
    feats = _features(5, seed=2)
    greedy = policy.greedy(feats, 10, STOP)
    batch = policy.sample(feats, 2, 10, STOP, top_k=1, generator=torch.Generator().manual_seed(0))
    for r in range(10):
        assert batch.tokens[r, : int(batch.lengths[r])].tolist() == greedy[r // 2]


def test_sampling_is_seeded_and_top_k_limits_the_choice(net):
    policy = ClipCapPolicy(net)
    feats = _features(2, seed=3)

    def draw(seed: int, k: int = 0):
        return policy.sample(feats, 3, 8, STOP, k, torch.Generator().manual_seed(seed)).tokens

    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))
    # top_k=3: every sampled token is among the 3 likeliest at its position.
    batch = policy.sample(feats, 3, 8, STOP, 3, torch.Generator().manual_seed(7))
    with torch.no_grad():
        for r in range(6):
            ids = batch.tokens[r, : int(batch.lengths[r])].tolist()
            for j, tok in enumerate(ids):
                logits = net(torch.tensor([ids[:j]], dtype=torch.long), feats[r // 3][None])
                assert tok in logits[0, -1].topk(3).indices.tolist()


def test_policy_for_uses_a_module_that_implements_the_interface(net):
    assert isinstance(policy_for(net), ClipCapPolicy)

    class Own(torch.nn.Module):
        def sample(self, *a, **k): ...
        def greedy(self, *a, **k): ...

    own = Own()
    assert policy_for(own) is own


# -------------------------------------------------------------------------------------- reward
REFS = [
    ("a red circle on a white background.", "a red circle.", "a red circle against white."),
    ("two blue squares on a black background.", "two blue squares.", "blue squares on black."),
    ("a green cross on a gray background.", "a green cross.", "a gray background with a cross."),
]


def test_reward_uses_document_frequencies_of_all_training_references():
    from indexer.train.metrics import cider_d
    from indexer.train.ptb import tokenize

    reward = Reward(REFS)
    cands = ["a red circle on white", "blue squares", "a green cross on a gray background"]
    tok_refs = [[tokenize(r) for r in refs] for refs in REFS]
    # cider_d over all three images computes the same document frequencies per call.
    _, each = cider_d([tokenize(c) for c in cands], tok_refs)
    for i, c in enumerate(cands):
        assert reward(tokenize(c).split(), i, True) == pytest.approx(each[i], rel=1e-12)
    # ... which are not those of the image alone: with one image, every idf is log(1/1) = 0.
    alone = Reward([REFS[0]])
    assert alone(tokenize(cands[0]).split(), 0, True) == 0.0 < each[0]


def test_reward_guards_cut_off_and_repetitive_captions():
    reward = Reward(REFS)
    good = "a red circle on a white background".split()
    assert reward(good, 0, True) > 1.0
    assert reward(good, 0, False) == 0.0  # never produced the stop token: cut off
    assert reward("a a a a a".split(), 0, True) == 0.0  # the classic reward hack
    assert reward("a red circle a red circle".split(), 0, True) == 0.0  # repeated trigram
    assert reward([], 0, True) == 0.0
    assert repetitive("a red red circle".split())
    assert not repetitive("a red circle on a red square".split())  # "a red" twice is fine


# --------------------------------------------------------------------------- baseline and loss
def test_leave_one_out_advantage_matches_a_loop():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
    adv = leave_one_out_advantage(rewards)
    for i in range(2):
        for j in range(4):
            others = [rewards[i, k] for k in range(4) if k != j]
            assert adv[i, j] == pytest.approx(float(rewards[i, j] - sum(others) / 3))
    assert leave_one_out_advantage(torch.full((1, 5), 2.0)).abs().max() == 0  # all equal: 0


def test_policy_loss_raises_the_log_probability_of_better_captions():
    logp = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    adv = torch.tensor([[1.0, 0.0, -1.0]])
    with torch.enable_grad():
        loss = policy_loss(adv, logp)
        assert loss.item() == pytest.approx(-(1 * -1.0 + 0 + -1 * -3.0) / 3)
        loss.backward()
    assert logp.grad.tolist() == pytest.approx([-1 / 3, 0.0, 1 / 3])  # descent raises row 0

"""Sampling captions from ClipCap for SCST: n captions per image, batched, with a KV cache.

`ClipCapPolicy` is ClipCap's implementation of `indexer.train.scst.CaptionPolicy` (the interface
SCST needs from any captioner; /tmp/prompts/scst-api.md, kept in indexer/train/scst.py's docstring).
The captions are drawn under no_grad with GPT-2's KV cache, the way `greedy_decode` runs; the
log-probabilities the policy gradient needs are then recomputed WITH grad in one teacher-forced
pass over prefix + sampled tokens (one batched forward instead of keeping the graph of every
cached step alive). Both passes see the same weights; the sampling pass runs in eval mode (no
dropout), the loss pass in whatever mode the caller set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SampleBatch:
    tokens: torch.Tensor  # (B*n, T) long: row i*n + j = sample j of image i; 0-padded after stop
    logprobs: torch.Tensor  # (B*n,) float32: sum of log p over each row's real tokens (grad)
    lengths: torch.Tensor  # (B*n,) long: real tokens per row, the stop token included


def sample_tokens(
    gpt,
    prefix: torch.Tensor,
    max_tokens: int,
    stop_token: int,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one caption per prefix row with a KV cache; no grad.

    prefix: (R, K, n_embd). Returns tokens (R, T) long (0 after a row's stop token) and lengths
    (R,). A row stops after its stop token or at max_tokens. Finished rows leave the batch, as in
    `greedy_decode`, so later steps only pay for live ones."""
    from indexer.models.kv_cache import KVCache

    r = prefix.shape[0]
    dev = prefix.device
    tokens = torch.zeros(r, max_tokens, dtype=torch.long, device=dev)
    lengths = torch.full((r,), max_tokens, dtype=torch.long, device=dev)
    rows = torch.arange(r, device=dev)  # original row of each live batch row
    with torch.no_grad():
        cache = KVCache(gpt.config.n_layer, prefix.shape[1] + max_tokens)
        logits = gpt(inputs_embeds=prefix, cache=cache, last_only=True)
        for step in range(max_tokens):
            logits = logits[:, -1, :].float()  # (live, V)
            if 0 < top_k < logits.shape[-1]:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (live,)
            tokens[rows, step] = nxt
            done = nxt == stop_token
            if done.any():
                lengths[rows[done]] = step + 1
                keep = torch.nonzero(~done).flatten()
                if keep.numel() == 0:
                    break
                rows, nxt = rows[keep], nxt[keep]
                cache.batch_select_indices(keep)
            if step + 1 < max_tokens:
                logits = gpt(input_ids=nxt[:, None], cache=cache, last_only=True)
    t = int(lengths.max()) if r else 0
    return tokens[:, :t], lengths


def sequence_logprobs(net, features: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor):
    """Sum of log p(token) over each row's first `lengths` tokens, teacher-forced, with grad.

    features: (R, D) raw CLIP features (one row per caption); tokens (R, T), lengths (R,)."""
    k = net.cfg.prefix_length
    t = tokens.shape[1]
    real = torch.arange(t, device=tokens.device)[None, :] < lengths[:, None]  # (R, T)
    mask = torch.cat((torch.ones(real.shape[0], k, dtype=torch.long, device=tokens.device),
                      real.long()), dim=1)  # fmt: skip
    logits = net(tokens, features, None if bool(mask.all()) else mask)  # (R, K+T, V)
    logp = F.log_softmax(logits[:, k - 1 : -1, :].float(), dim=-1)  # (R, T, V)
    picked = logp.gather(-1, tokens[:, :, None]).squeeze(-1)  # (R, T)
    return (picked * real).sum(dim=1)


class ClipCapPolicy:
    """ClipCapModel as an SCST policy (see indexer.train.scst.CaptionPolicy)."""

    def __init__(self, net):
        self.net = net

    def sample(
        self,
        features: torch.Tensor,
        n: int,
        max_tokens: int,
        stop_token: int,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> SampleBatch:
        net = self.net
        feats = features.repeat_interleave(n, dim=0)  # (B*n, D), image-major
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                prefix = net.prefix_embeddings(features).repeat_interleave(n, dim=0)
                tokens, lengths = sample_tokens(
                    net.gpt, prefix, max_tokens, stop_token, top_k, generator
                )
        finally:
            net.train(was_training)
        return SampleBatch(tokens, sequence_logprobs(net, feats, tokens, lengths), lengths)

    def greedy(self, features: torch.Tensor, max_tokens: int, stop_token: int) -> list[list[int]]:
        from indexer.models.clipcap import greedy_decode

        net = self.net
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                prefix = net.prefix_embeddings(features)
            return greedy_decode(net, prefix, max_tokens, stop_token)
        finally:
            net.train(was_training)

"""ClipCap decoding the reference's way, written straight from clipcap-reference.md §5:
one image at a time, no KV cache, GPT-2 re-run over the whole embedding sequence every step.

The fast batched decoders in indexer/models/clipcap.py must produce exactly these tokens. The
benchmarks also time these functions as "the reference's way".
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def naive_greedy(model, prefix: torch.Tensor, max_tokens: int = 67, stop_token: int | None = 13):
    """generate2: prefix (1, K, d) -> token ids; arg-max each step; stop after the stop token."""
    generated = prefix
    tokens: list[int] = []
    for _ in range(max_tokens):
        logits = model.gpt(inputs_embeds=generated)[:, -1, :]  # full recompute
        tok = int(torch.argmax(logits, -1))
        tokens.append(tok)
        embed = model.gpt.transformer.wte(torch.tensor([[tok]], device=prefix.device))
        generated = torch.cat((generated, embed), dim=1)
        if stop_token is not None and tok == stop_token:
            break
    return tokens


@torch.inference_mode()
def naive_beam(
    model, prefix: torch.Tensor, beams: int = 5, max_tokens: int = 67, stop_token: int | None = 13
):
    """generate_beam for one image: mean-log-prob ranking, frozen finished beams."""
    device = prefix.device
    generated = prefix
    tokens = None
    scores = None
    seq_lengths = torch.ones(beams, device=device)
    is_stopped = torch.zeros(beams, device=device, dtype=torch.bool)
    for _ in range(max_tokens):
        logits = model.gpt(inputs_embeds=generated)[:, -1, :]
        logits = logits.float().softmax(-1).log()
        if scores is None:
            scores, next_tokens = logits.topk(beams, -1)
            generated = generated.expand(beams, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            logits[is_stopped] = -float("inf")
            logits[is_stopped, 0] = 0
            scores_sum = scores[:, None] + logits
            seq_lengths[~is_stopped] += 1
            scores_sum_average = scores_sum / seq_lengths[:, None]
            scores_sum_average, next_tokens = scores_sum_average.view(-1).topk(beams, -1)
            source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[source]
            next_tokens = (next_tokens % scores_sum.shape[1]).unsqueeze(1)
            tokens = torch.cat((tokens[source], next_tokens), dim=1)
            generated = generated[source]
            scores = scores_sum_average * seq_lengths
            is_stopped = is_stopped[source]
        embed = model.gpt.transformer.wte(next_tokens.squeeze(1)).view(generated.shape[0], 1, -1)
        generated = torch.cat((generated, embed), dim=1)
        if stop_token is not None:
            is_stopped = is_stopped | next_tokens.eq(stop_token).squeeze(1)
        if is_stopped.all():
            break
    mean = scores / seq_lengths
    best = int(mean.argsort(descending=True)[0])
    return tokens[best, : int(seq_lengths[best])].tolist()

"""One step of beam search over mean log-prob, shared by the GPT-2 decoder
(indexer/models/clipcap.py) and the LSTM decoders (indexer/models/lstm_decoding.py), so both rank,
stop and reorder beams by the same rule (ClipCap's: beams ranked by mean log-prob per token; a
finished beam carries on with token 0 at no cost, so its score stays)."""

from __future__ import annotations

import torch


def stop_row(vocab: int, device) -> torch.Tensor:
    """What a stopped beam may do next: token 0 at no cost, nothing else. Applied with
    torch.where, not boolean-mask indexing, which would sync with the host at every step."""
    row = torch.full((vocab,), float("-inf"), device=device)
    row[0] = 0.0
    return row


def is_stop(tok: torch.Tensor, stop_token: int | None) -> torch.Tensor:
    if stop_token is None:
        return torch.zeros_like(tok, dtype=torch.bool)
    return tok == stop_token


def beam_step(
    logp: torch.Tensor,
    tokens: torch.Tensor,
    scores: torch.Tensor,
    lengths: torch.Tensor,
    stopped: torch.Tensor,
    beams: int,
    stop_token: int | None,
    stop: torch.Tensor,
):
    """Extend (nb*w) beams by one token. `logp` (nb*w, V) are the next-token log-probs, `scores`
    the beams' summed log-probs, `lengths` their token counts, `stopped` which have finished,
    `stop` = stop_row(V). Returns the new (tokens, scores, lengths, stopped) and `src`, the old
    row each new beam continues (to reorder caches and attention histories)."""
    w = beams
    nb, vocab = logp.shape[0] // w, logp.shape[1]
    logp = torch.where(stopped[:, None], stop, logp)
    lengths = lengths + (~stopped).float()
    mean = (scores[:, None] + logp) / lengths[:, None]  # (nb*w, V) candidate mean log-prob
    top_mean, idx = mean.view(nb, w * vocab).topk(w, dim=-1)  # (nb, w)
    src = (idx // vocab + torch.arange(nb, device=logp.device)[:, None] * w).reshape(-1)
    new_tok = (idx % vocab).reshape(-1)
    lengths = lengths[src]
    tokens = torch.cat((tokens[src], new_tok[:, None]), dim=1)
    scores = top_mean.reshape(-1) * lengths
    stopped = stopped[src] | is_stop(new_tok, stop_token)
    return tokens, scores, lengths, stopped, src

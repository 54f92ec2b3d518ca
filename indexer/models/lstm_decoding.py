"""Batched greedy and beam decoding for the LSTM captioners (indexer/models/lstm.py), with
ClipCap's semantics (indexer/models/clipcap.py): generation stops after the stop token (kept),
greedy is arg-max, beam search ranks by MEAN log-probability with finished beams frozen and the best
final mean wins; both also return each caption's attention maps (show-attend-tell). The search
loops only need a network's `init_state` and `step`, so they live apart from the network,
`LstmCaptioner` and the directory files."""

from __future__ import annotations

import torch

from indexer.models.beam import beam_step, is_stop, stop_row


def _select(state: dict, idx: torch.Tensor) -> dict:
    return {k: v[idx] for k, v in state.items()}


@torch.no_grad()
def greedy_decode(net, features, grid, max_tokens: int = 67, stop_token: int | None = 13):
    """Batched arg-max decoding. Returns (token ids per row, alphas per row as (T, N) tensors
    or None per row for show-and-tell); rows end with the stop token when it was produced."""
    b = features.shape[0]
    results: list = [None] * b
    maps: list = [None] * b
    rows = torch.arange(b)  # original row of each live row
    state = net.init_state(features, grid)
    tokens = torch.empty(b, 0, dtype=torch.long, device=features.device)
    hist = None  # (live, t, N) attention so far
    prev = None
    for step in range(max_tokens):
        logits, state, alpha = net.step(prev, state)
        nxt = logits.argmax(dim=-1)  # (live,)
        tokens = torch.cat((tokens, nxt[:, None]), dim=1)
        if alpha is not None:
            hist = alpha[:, None] if hist is None else torch.cat((hist, alpha[:, None]), dim=1)
        done = is_stop(nxt, stop_token)
        if step == max_tokens - 1:
            done = torch.ones_like(done)
        if done.any():
            done_cpu = done.cpu()
            for i in torch.nonzero(done_cpu).flatten().tolist():
                results[int(rows[i])] = tokens[i].tolist()
                if hist is not None:
                    maps[int(rows[i])] = hist[i].float().cpu()
            keep = torch.nonzero(~done_cpu).flatten()
            if keep.numel() == 0:
                break
            # Finished captions leave the batch so later steps only pay for live ones.
            kd = keep.to(tokens.device)
            rows, tokens, nxt, state = rows[keep], tokens[kd], nxt[kd], _select(state, kd)
            hist = hist[kd] if hist is not None else None
        prev = nxt
    return [r if r is not None else [] for r in results], maps


@torch.no_grad()
def beam_decode(net, features, grid, beams: int = 5, max_tokens: int = 67, stop_token=13):
    """Batched beam search with ClipCap's ranking (captioner.beam_decode); returns the best beam's
    ids per image and its attention (T, N) (None for show-and-tell)."""
    b, w = features.shape[0], beams
    dev = features.device
    results: list = [None] * b
    maps: list = [None] * b
    images = torch.arange(b)  # original image of each live image
    state = net.init_state(features, grid)
    logits, state, alpha = net.step(None, state)
    logp = torch.log_softmax(logits.float(), dim=-1)  # (b, V)
    vocab = logp.shape[-1]
    scores, first = logp.topk(w, dim=-1)  # (b, w): the w best first tokens start the beams
    rep = torch.arange(b, device=dev).repeat_interleave(w)  # row i*w + j = beam j of image i
    state = _select(state, rep)
    hist = alpha[rep][:, None] if alpha is not None else None  # (b*w, 1, N)
    tokens = first.reshape(b * w, 1)
    scores = scores.reshape(b * w)  # sum of log-probs of each beam
    lengths = torch.ones(b * w, device=dev)
    stopped = is_stop(tokens[:, 0], stop_token)
    stop = stop_row(vocab, dev)

    def finish(img_rows: torch.Tensor) -> None:
        for i in img_rows.tolist():
            sl = slice(i * w, (i + 1) * w)
            mean = scores[sl] / lengths[sl]
            best = int(torch.argmax(mean)) + i * w  # first of equal means, like a stable sort
            n = int(lengths[best])
            results[int(images[i])] = tokens[best, :n].tolist()
            if hist is not None:
                maps[int(images[i])] = hist[best, :n].float().cpu()

    for step in range(1, max_tokens + 1):
        all_stopped = stopped.view(-1, w).all(dim=1)  # (b_live,)
        if step == max_tokens:
            all_stopped = torch.ones_like(all_stopped)
        if all_stopped.any():
            finish(torch.nonzero(all_stopped.cpu()).flatten())
            keep_img = torch.nonzero(~all_stopped).flatten()
            if keep_img.numel() == 0:
                break
            keep = (keep_img[:, None] * w + torch.arange(w, device=dev)).reshape(-1)
            images = images[keep_img.cpu()]
            tokens, scores, lengths, stopped = (
                tokens[keep],
                scores[keep],
                lengths[keep],
                stopped[keep],
            )
            state = _select(state, keep)
            hist = hist[keep] if hist is not None else None
        logits, state, alpha = net.step(tokens[:, -1], state)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (nb*w, V)
        tokens, scores, lengths, stopped, src = beam_step(
            logp, tokens, scores, lengths, stopped, w, stop_token, stop
        )
        state = _select(state, src)
        if hist is not None:
            hist = torch.cat((hist[src], alpha[src][:, None]), dim=1)
    return [r if r is not None else [] for r in results], maps

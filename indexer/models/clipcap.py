"""ClipCap: CLIP image features -> mapping network -> prefix embeddings -> GPT-2 -> caption.

Weight-compatible with the published checkpoints of rmokady/CLIP_prefix_caption (see
../shared/clipcap-reference.md): module names are `gpt` (GPT-2, indexer/models/gpt2.py) and
`clip_project` (the mapper), so a published state dict loads key for key.

Decoding follows the reference semantics exactly (§5 of the reference sheet):
  - the mapped prefix is fed as `inputs_embeds`, no BOS token, no attention mask, positions from 0;
  - greedy = arg-max each step (the reference's top-p filter can never change the arg-max);
  - beam search ranks candidates by MEAN log-probability, finished beams are frozen (they may only
    "continue" with token 0 at zero cost), the best final mean wins;
  - generation stops after the stop token "." (kept in the output), at most 67 new tokens.
Unlike the reference we decode many images at once and keep a KV cache instead of re-running
GPT-2 over the whole sequence every step; every image has the same prefix length, so batching
needs no padding or mask and cannot change the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from indexer.errors import ModelFormatError
from indexer.models.beam import beam_step, is_stop, stop_row
from indexer.models.checkpoint import (
    assign_state_dict,
    empty_parameters,
    key_problems,
    read_state_dict,
)
from indexer.models.quiet import quiet_third_party

# GPT-2 small, the language model of every published ClipCap checkpoint.
GPT2_SMALL = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
}


@dataclass(frozen=True)
class ClipCapConfig:
    # "mlp" (published COCO/Conceptual) or "transformer" (published COCO transformer release).
    # Always explicit: the reference guessed it from prefix_length, which we don't.
    mapping: str = "mlp"
    prefix_dim: int = 512  # CLIP image embedding size: 512 for ViT-B/32, 640 for RN50x4
    prefix_length: int = 10  # GPT-2 input embeddings produced per image
    clip_length: int = 10  # transformer mapper: tokens made by its first Linear
    num_layers: int = 8  # transformer mapper depth
    num_heads: int = 8  # transformer mapper heads (head dim = n_embd / num_heads)
    mlp_ratio: float = 2.0  # transformer mapper MLP width (the reference passes 2.0, not 4.0)
    # The transformer release was trained on L2-normalised CLIP features, the MLP ones on raw.
    normalize_prefix: bool = False
    gpt2: dict = field(default_factory=lambda: dict(GPT2_SMALL))  # GPT2Config keyword arguments

    def __post_init__(self):
        if self.mapping not in ("mlp", "transformer"):
            raise ModelFormatError(f"unknown mapping type {self.mapping!r} (mlp or transformer)")

    @property
    def n_embd(self) -> int:
        return int(self.gpt2.get("n_embd", 768))


# ----------------------------------------------------------------------------- mapping networks
class MLPMapper(nn.Module):
    """Linear -> Tanh -> Linear; 512 -> 3840 -> 7680 for the published files."""

    def __init__(self, cfg: ClipCapConfig):
        super().__init__()
        out = cfg.n_embd * cfg.prefix_length
        # Indices 0 and 2 carry the weights (`clip_project.model.0.*`, `.2.*`); 1 is the Tanh.
        self.model = nn.Sequential(
            nn.Linear(cfg.prefix_dim, out // 2), nn.Tanh(), nn.Linear(out // 2, out)
        )
        self.prefix_length = cfg.prefix_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return self.model(x).view(
            b, self.prefix_length, -1
        )  # (B, prefix_length, n_embd), row-major


class MapperAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        # One Linear whose output is [keys | values], each split into contiguous heads.
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = self.to_queries(x).view(b, n, h, c // h).transpose(1, 2)  # (B, h, n, d)
        kv = self.to_keys_values(x).view(b, n, 2, h, c // h)
        k = kv[:, :, 0].transpose(1, 2)
        v = kv[:, :, 1].transpose(1, 2)
        # No mask, scale d^-0.5: the reference's einsum attention, done by SDPA.
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, n, d)
        return self.project(out.transpose(1, 2).reshape(b, n, c))


class MapperMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MapperLayer(nn.Module):
    """Pre-LN self-attention block (no positional embedding, no mask)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MapperAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MapperMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MapperTransformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(
            MapperLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x  # no final LayerNorm in the reference


class TransformerMapper(nn.Module):
    """Linear -> clip tokens, append a learned constant, self-attend, keep the constant's slots."""

    def __init__(self, cfg: ClipCapConfig):
        super().__init__()
        d = cfg.n_embd
        self.clip_length = cfg.clip_length
        self.linear = nn.Linear(cfg.prefix_dim, cfg.clip_length * d)
        self.prefix_const = nn.Parameter(torch.randn(cfg.prefix_length, d))
        self.transformer = MapperTransformer(d, cfg.num_heads, cfg.num_layers, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        clip_tokens = self.linear(x).view(b, self.clip_length, -1)  # (B, clip_length, d)
        const = self.prefix_const.unsqueeze(0).expand(b, -1, -1)  # (B, prefix_length, d)
        out = self.transformer(torch.cat((clip_tokens, const), dim=1))
        return out[:, self.clip_length :]  # (B, prefix_length, d)


# ---------------------------------------------------------------------------------------- model
class ClipCapModel(nn.Module):
    def __init__(self, cfg: ClipCapConfig):
        super().__init__()
        from indexer.models.gpt2 import GPT2, GPT2Config

        self.cfg = cfg
        self.gpt = GPT2(GPT2Config.from_spec(cfg.gpt2))
        self.clip_project = MLPMapper(cfg) if cfg.mapping == "mlp" else TransformerMapper(cfg)

    def prefix_embeddings(self, features: torch.Tensor) -> torch.Tensor:
        """(B, prefix_dim) raw CLIP features -> (B, prefix_length, n_embd)."""
        features = features.float()
        if self.cfg.normalize_prefix:
            features = features / features.norm(dim=-1, keepdim=True)
        dtype = self.gpt.transformer.wte.weight.dtype
        return self.clip_project(features.to(dtype))

    def forward(
        self, tokens: torch.Tensor, prefix: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Training forward: logits (B, prefix_length + T, V) for prefix + caption tokens."""
        text = self.gpt.transformer.wte(tokens)  # (B, T, n_embd)
        embeds = torch.cat((self.prefix_embeddings(prefix), text), dim=1)
        return self.gpt(inputs_embeds=embeds, attention_mask=mask)


# ------------------------------------------------------------------------------ checkpoint load
# Causal-mask buffers that transformers <= 4.29 saved into every GPT-2 state dict (24 keys for
# GPT-2 small); our GPT-2 computes its mask, so a strict load would reject them.
_LEGACY_BUFFER = re.compile(r"^gpt\.transformer\.h\.\d+\.attn\.(bias|masked_bias)$")


def clipcap_state_dict(path: Path, sd: dict | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors in the layout ClipCapModel expects: legacy buffers dropped, the tied
    lm_head filled in from wte when a file stores it once (or not at all). sd: already read."""
    sd = read_state_dict(path) if sd is None else sd
    sd = {k: v for k, v in sd.items() if not _LEGACY_BUFFER.match(k)}
    wte = sd.get("gpt.transformer.wte.weight")
    lm_head = sd.get("gpt.lm_head.weight")
    # lm_head is tied to wte (stored once in the published pickles, but present as a key).
    if lm_head is None and wte is not None:
        sd["gpt.lm_head.weight"] = wte
    elif lm_head is not None and wte is not None:
        if lm_head.shape != wte.shape or not torch.equal(lm_head, wte):
            raise ModelFormatError(f"{path}: gpt.lm_head.weight differs from the tied wte weight")
    return sd


def load_clipcap(
    path: Path, cfg: ClipCapConfig, sd: dict | None = None, on_step=None
) -> ClipCapModel:
    """Build ClipCapModel(cfg) and load a published-format checkpoint into it, strictly.

    Like nanoGPT's from_pretrained: build, then check every key and shape, then copy. The build
    puts parameters on the meta device (no random init: GPT-2's cost 2.4 s on 2 cores) and the
    file's tensors are adopted, not copied. sd: the file's tensors if already read (by
    clipcap_state_dict); on_step(text) is told when building and loading start."""
    step = on_step or (lambda _text: None)
    sd = clipcap_state_dict(path) if sd is None else sd
    step("build ClipCap (GPT-2)")
    with empty_parameters():
        model = ClipCapModel(cfg)
    problems = key_problems(model, sd)
    if problems:
        raise ModelFormatError(
            f"{path} does not match a ClipCap {cfg.mapping} model "
            f"(prefix_dim {cfg.prefix_dim}, prefix_length {cfg.prefix_length}): "
            + "; ".join(problems)
        )
    step("assign ClipCap weights")
    try:
        assign_state_dict(model, sd)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    # Assigning gives wte and lm_head two Parameter objects; tie them again so training updates
    # one tensor, as GPT2.__init__ ties them.
    model.gpt.lm_head.weight = model.gpt.transformer.wte.weight
    return model.eval()


# -------------------------------------------------------------------------------------- decoding
def clean_up_spaces(text: str) -> str:
    """transformers 4.x `clean_up_tokenization`, which the reference's decode applied by default."""
    for a, b in (
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ):  # fmt: skip
        text = text.replace(a, b)
    return text


def _sync_policy(device: torch.device) -> tuple[int, float]:
    """(steps between host checks for finished captions, share of finished rows that makes the
    batch shrink). A check copies a few bytes to the host, which on a GPU waits for every queued
    kernel: the host can no longer run ahead and each step pays the launch latency of GPT-2's
    ~100 kernels. On a CPU nothing runs ahead, so checking every step costs nothing and a
    finished row is dropped at once (its compute is real work there)."""
    if device.type == "cpu":
        return 1, 0.0
    return 8, 0.25


@torch.no_grad()
def greedy_decode(
    model: ClipCapModel,
    prefix: torch.Tensor,
    max_tokens: int = 67,
    stop_token: int | None = 13,
    *,
    check_every: int | None = None,
    shrink_share: float | None = None,
) -> list[list[int]]:
    """Batched greedy decoding with a KV cache. prefix: (B, K, n_embd). Returns token ids per row,
    ending with the stop token when it was produced. stop_token=None always runs max_tokens.

    The host looks at which rows have finished only every `check_every` steps (default: by
    device, _sync_policy); a row keeps generating after its stop token until then and the extra
    tokens are cut. Finished rows leave the batch when they are at least `shrink_share` of it
    (or all of it), so later steps only pay for live ones. Rows never see each other, so the
    result does not depend on either setting."""
    from indexer.models.kv_cache import KVCache

    every, share = _sync_policy(prefix.device)
    every, share = check_every or every, share if shrink_share is None else shrink_share
    gpt = model.gpt
    b, dev = prefix.shape[0], prefix.device
    results: list[list[int]] = [[] for _ in range(b)]
    if max_tokens <= 0 or b == 0:
        return results
    rows = torch.arange(b)  # original row index of each live batch row (host)
    cache = KVCache(gpt.config.n_layer, prefix.shape[1] + max_tokens)
    logits = gpt(inputs_embeds=prefix, cache=cache, last_only=True)  # (b, 1, V)
    tokens = torch.empty(b, max_tokens, dtype=torch.long, device=dev)  # (b, T), filled by step
    # Length of each row's caption once it has produced the stop token; max_tokens = not yet.
    ends = torch.full((b,), max_tokens, dtype=torch.long, device=dev)

    def record(idx: torch.Tensor, ends_cpu: torch.Tensor, upto: int) -> None:
        got = tokens[idx.to(dev), :upto].cpu()
        for j, i in enumerate(idx.tolist()):
            results[int(rows[i])] = got[j, : min(int(ends_cpu[i]), upto)].tolist()

    for step in range(max_tokens):
        next_tok = logits[:, -1, :].argmax(dim=-1)  # (b,)
        tokens[:, step] = next_tok
        if stop_token is not None:
            ends = torch.where((next_tok == stop_token) & (ends == max_tokens), step + 1, ends)
        if step == max_tokens - 1:
            record(torch.arange(len(rows)), ends.cpu(), step + 1)
            break
        if stop_token is not None and (step + 1) % every == 0:
            ends_cpu = ends.cpu()  # the one host sync of this step
            done = ends_cpu < max_tokens
            n_done = int(done.sum())
            if n_done == len(rows):
                record(torch.arange(len(rows)), ends_cpu, step + 1)
                break
            if n_done and n_done >= share * len(rows):
                record(torch.nonzero(done).flatten(), ends_cpu, step + 1)
                keep = torch.nonzero(~done).flatten()
                keep_dev = keep.to(dev)
                rows, tokens, ends = rows[keep], tokens[keep_dev], ends[keep_dev]
                next_tok = next_tok[keep_dev]
                cache.batch_select_indices(keep_dev)
        logits = gpt(input_ids=next_tok[:, None], cache=cache, last_only=True)
    return results


@torch.no_grad()
def beam_decode(
    model: ClipCapModel,
    prefix: torch.Tensor,
    beams: int = 5,
    max_tokens: int = 67,
    stop_token: int | None = 13,
    *,
    check_every: int | None = None,
) -> list[list[int]]:
    """Batched beam search with the reference's ranking; returns the best beam's ids per image.

    As in greedy_decode, the host checks for images whose beams have all stopped only every
    `check_every` steps: until then a stopped beam continues with token 0 at no cost, which
    changes neither its score nor its length, so the best beam is the same."""
    from indexer.models.kv_cache import KVCache

    every = check_every or _sync_policy(prefix.device)[0]
    gpt = model.gpt
    b, w = prefix.shape[0], beams
    dev = prefix.device
    results: list[list[int]] = [[] for _ in range(b)]
    if max_tokens <= 0 or b == 0:
        return results
    images = torch.arange(b)  # original image index of each live image (host)
    cache = KVCache(gpt.config.n_layer, prefix.shape[1] + max_tokens)
    logits = gpt(inputs_embeds=prefix, cache=cache, last_only=True)  # (b, 1, V)
    logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (b, V)
    vocab = logp.shape[-1]
    scores, first = logp.topk(w, dim=-1)  # (b, w): the w best first tokens start the beams
    cache.batch_repeat_interleave(w)  # row i*w + j = beam j of image i
    tokens = first.reshape(b * w, 1)
    scores = scores.reshape(b * w)  # sum of log-probs of each beam
    lengths = torch.ones(b * w, device=dev)
    stopped = is_stop(tokens[:, 0], stop_token)
    stop = stop_row(vocab, dev)  # a finished beam carries on with token 0 at no cost

    def finish(img_rows: list[int]) -> None:
        """Record the best beam (highest mean log-prob) of each live image index in img_rows."""
        mean_all = (scores / lengths).view(-1, w)[img_rows].cpu()  # (n, w)
        best_all = mean_all.argmax(dim=1)  # first of equal means, like a stable sort
        rows = [i * w + int(j) for i, j in zip(img_rows, best_all, strict=True)]
        got = tokens[rows].cpu()
        lens = lengths[rows].cpu()
        for k, i in enumerate(img_rows):
            results[int(images[i])] = got[k, : int(lens[k])].tolist()

    for step in range(1, max_tokens + 1):
        last = step == max_tokens
        if last or (stop_token is not None and step % every == 0):
            all_stopped = stopped.view(-1, w).all(dim=1).cpu()  # (b_live,), one host sync
            if last:
                all_stopped[:] = True
            if all_stopped.any():
                finish(torch.nonzero(all_stopped).flatten().tolist())
                keep_img = torch.nonzero(~all_stopped).flatten()
                if keep_img.numel() == 0:
                    break
                keep = (keep_img[:, None] * w + torch.arange(w)).reshape(-1).to(dev)
                images = images[keep_img]
                tokens, scores, lengths, stopped = (
                    tokens[keep],
                    scores[keep],
                    lengths[keep],
                    stopped[keep],
                )
                cache.batch_select_indices(keep)
        logits = gpt(input_ids=tokens[:, -1:], cache=cache, last_only=True)
        logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (nb*w, V)
        tokens, scores, lengths, stopped, src = beam_step(
            logp, tokens, scores, lengths, stopped, w, stop_token, stop
        )
        cache.reorder_cache(src)
    return results


class Captioner:
    """ClipCap model + tokenizer on a device: raw CLIP features in, caption strings out."""

    def __init__(self, model: ClipCapModel, tokenizer, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype  # compute dtype: float32, or bfloat16/float16 autocast
        ids = tokenizer.encode(".")
        self.stop_token: int = ids[0]  # 13 for GPT-2's BPE

    def decode_tokens(
        self,
        features: torch.Tensor,
        beams: int = 1,
        max_tokens: int = 67,
        stop_token: int | None | str = "default",
    ) -> list[list[int]]:
        """Token ids for a batch of raw CLIP features (B, D). stop_token=None: fixed length."""
        stop = self.stop_token if stop_token == "default" else stop_token
        with quiet_third_party(), self._autocast():
            prefix = self.model.prefix_embeddings(features.to(self.device))
            if beams <= 1:
                return greedy_decode(self.model, prefix, max_tokens, stop)
            return beam_decode(self.model, prefix, beams, max_tokens, stop)

    def caption(self, features: torch.Tensor, beams: int = 1, max_tokens: int = 67) -> list[str]:
        """Captions for raw CLIP image features (B, D); independent of the batch size."""
        return [self.detokenize(t) for t in self.decode_tokens(features, beams, max_tokens)]

    def detokenize(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids)
        # Trained models never emit control characters; an untrained or broken one can, and they
        # would garble terminals and CSV cells. Everything printable is kept as decoded.
        text = "".join(ch if ch.isprintable() else " " for ch in text)
        return " ".join(clean_up_spaces(text).split())

    def _autocast(self):
        # The decoders run under no_grad, not inference_mode: autocast caches its bf16 copy of
        # each weight only outside inference mode, so a whole batch's decoding casts GPT-2 once
        # instead of at every step.
        if self.dtype == torch.float32:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

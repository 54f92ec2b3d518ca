"""ClipCap: CLIP image features -> mapping network -> prefix embeddings -> GPT-2 -> caption.

Weight-compatible with the published checkpoints of rmokady/CLIP_prefix_caption (see
../shared/clipcap-reference.md): module names are `gpt` (a transformers GPT2LMHeadModel) and
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

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from indexer.checkpoint import assign_state_dict, empty_parameters, key_problems, read_state_dict
from indexer.errors import ModelFormatError
from indexer.quiet import quiet_third_party

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
        from transformers import GPT2Config, GPT2LMHeadModel

        self.cfg = cfg
        # ClipCap uses no BOS/EOS; GPT-2's default id 50256 is out of range for small vocabularies.
        gcfg = GPT2Config(**{"bos_token_id": None, "eos_token_id": None, **cfg.gpt2})
        self.gpt = GPT2LMHeadModel(gcfg)
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
        return self.gpt(inputs_embeds=embeds, attention_mask=mask).logits


# ------------------------------------------------------------------------------ checkpoint load
# Causal-mask buffers that transformers <= 4.29 saved into every GPT-2 state dict (24 keys for
# GPT-2 small); current transformers has no such buffers, so a strict load would reject them.
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
    # one tensor, as GPT-2's own tie_weights does.
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


@torch.inference_mode()
def greedy_decode(
    model: ClipCapModel,
    prefix: torch.Tensor,
    max_tokens: int = 67,
    stop_token: int | None = 13,
) -> list[list[int]]:
    """Batched greedy decoding with a KV cache. prefix: (B, K, n_embd). Returns token ids per row,
    ending with the stop token when it was produced. stop_token=None always runs max_tokens."""
    from transformers import DynamicCache

    gpt = model.gpt
    b = prefix.shape[0]
    results: list[list[int] | None] = [None] * b
    rows = torch.arange(b)  # original row index of each live batch row
    cache = DynamicCache()
    out = _run(gpt, cache, inputs_embeds=prefix)
    tokens = torch.empty(b, 0, dtype=torch.long, device=prefix.device)
    for step in range(max_tokens):
        next_tok = out.logits[:, -1, :].argmax(dim=-1)  # (b,)
        tokens = torch.cat((tokens, next_tok[:, None]), dim=1)
        done = (
            next_tok == stop_token
            if stop_token is not None
            else torch.zeros_like(next_tok, dtype=torch.bool)
        )
        if step == max_tokens - 1:
            done = torch.ones_like(done)
        if done.any():
            done_cpu = done.cpu()
            for i in torch.nonzero(done_cpu).flatten().tolist():
                results[int(rows[i])] = tokens[i].tolist()
            keep = torch.nonzero(~done_cpu).flatten()
            if keep.numel() == 0:
                break
            # Finished captions leave the batch so later steps only pay for live ones.
            rows, tokens, next_tok = (
                rows[keep],
                tokens[keep.to(tokens.device)],
                next_tok[keep.to(tokens.device)],
            )
            cache.batch_select_indices(keep.to(prefix.device))
        out = _run(gpt, cache, input_ids=next_tok[:, None])
    return [r if r is not None else [] for r in results]


@torch.inference_mode()
def beam_decode(
    model: ClipCapModel,
    prefix: torch.Tensor,
    beams: int = 5,
    max_tokens: int = 67,
    stop_token: int | None = 13,
) -> list[list[int]]:
    """Batched beam search with the reference's ranking; returns the best beam's ids per image."""
    from transformers import DynamicCache

    gpt = model.gpt
    b, w = prefix.shape[0], beams
    dev = prefix.device
    results: list[list[int] | None] = [None] * b
    images = torch.arange(b)  # original image index of each live image
    cache = DynamicCache()
    out = _run(gpt, cache, inputs_embeds=prefix)
    logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (b, V)
    vocab = logp.shape[-1]
    scores, first = logp.topk(w, dim=-1)  # (b, w): the w best first tokens start the beams
    cache.batch_repeat_interleave(w)  # row i*w + j = beam j of image i
    tokens = first.reshape(b * w, 1)
    scores = scores.reshape(b * w)  # sum of log-probs of each beam
    lengths = torch.ones(b * w, device=dev)
    stopped = _is_stop(tokens[:, 0], stop_token)

    def finish(img_rows: torch.Tensor) -> None:
        """Record the best beam (highest mean log-prob) of each live image index in img_rows."""
        for i in img_rows.tolist():
            sl = slice(i * w, (i + 1) * w)
            mean = scores[sl] / lengths[sl]
            best = int(torch.argmax(mean)) + i * w  # first of equal means, like a stable sort
            results[int(images[i])] = tokens[best, : int(lengths[best])].tolist()

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
            cache.batch_select_indices(keep)
        nb = tokens.shape[0] // w
        out = _run(gpt, cache, input_ids=tokens[:, -1:])
        logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (nb*w, V)
        # A finished beam may only continue with token 0 at no cost, so it keeps its score.
        logp[stopped] = float("-inf")
        logp[stopped, 0] = 0.0
        lengths = lengths + (~stopped).float()
        mean = (scores[:, None] + logp) / lengths[:, None]  # (nb*w, V) candidate mean log-prob
        top_mean, idx = mean.view(nb, w * vocab).topk(w, dim=-1)  # (nb, w)
        src = (idx // vocab + torch.arange(nb, device=dev)[:, None] * w).reshape(-1)
        new_tok = (idx % vocab).reshape(-1)
        lengths = lengths[src]
        tokens = torch.cat((tokens[src], new_tok[:, None]), dim=1)
        scores = top_mean.reshape(-1) * lengths
        stopped = stopped[src] | _is_stop(new_tok, stop_token)
        cache.reorder_cache(src)
    return [r if r is not None else [] for r in results]


@functools.cache
def _cache_keyword() -> str:
    """The GPT-2 forward argument that takes the KV cache: `cache` in transformers >= 5.x (where
    `past_key_values` warns on every call and goes away in 5.40), `past_key_values` before."""
    import inspect

    from transformers import GPT2LMHeadModel

    params = inspect.signature(GPT2LMHeadModel.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _run(gpt, cache, **inputs):
    """One cached GPT-2 step; logits for the last position only, (B, 1, V)."""
    return gpt(**inputs, **{_cache_keyword(): cache}, use_cache=True, logits_to_keep=1)


def _is_stop(tok: torch.Tensor, stop_token: int | None) -> torch.Tensor:
    if stop_token is None:
        return torch.zeros_like(tok, dtype=torch.bool)
    return tok == stop_token


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
        text = self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        # Trained models never emit control characters; an untrained or broken one can, and they
        # would garble terminals and CSV cells. Everything printable is kept as decoded.
        text = "".join(ch if ch.isprintable() else " " for ch in text)
        return " ".join(clean_up_spaces(text).split())

    def _autocast(self):
        if self.dtype == torch.float32:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

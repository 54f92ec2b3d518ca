"""GPT-2, the language model of ClipCap: a causal transformer with a tied LM head, in plain torch.

Parameter names and shapes are transformers' GPT2LMHeadModel's (`transformer.wte`, `.wpe`,
`.h.{i}.ln_1`, `.attn.c_attn`, `.attn.c_proj`, `.ln_2`, `.mlp.c_fc`, `.mlp.c_proj`, `.ln_f`,
`lm_head`), so published ClipCap checkpoints and GPT-2's hub weights load key for key. The
arithmetic follows transformers' SDPA path op for op (Conv1D as addmm, tanh GELU written out, the
same is_causal / mask choices), so fp32 logits on the CPU are bit-identical to it
(tests/test_models_gpt2.py). Importing transformers' GPT-2 costs ~2.6 s (modeling_utils,
generation, torch._dynamo, sympy, ...), more than a whole cold caption should take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from indexer.errors import ModelFormatError
from indexer.models.kv_cache import KVCache, LayerCache


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024  # longest sequence (learned position embeddings)
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None = 4 * n_embd
    activation_function: str = "gelu_new"  # the tanh approximation of GELU, GPT-2's only one
    resid_pdrop: float = 0.1  # dropout after each residual branch (training only)
    embd_pdrop: float = 0.1  # dropout on token + position embeddings
    attn_pdrop: float = 0.1  # dropout on attention weights
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02  # std of the random init (models trained from scratch)

    @classmethod
    def from_spec(cls, gpt2: dict) -> GPT2Config:
        """The config of a model spec's `clipcap.gpt2` object (GPT2Config keyword arguments).
        bos/eos ids are accepted and ignored: ClipCap decodes without them."""
        known = {f.name for f in fields(cls)}
        extra = set(gpt2) - known - {"bos_token_id", "eos_token_id"}
        if extra:
            raise ModelFormatError(f"unknown GPT-2 setting(s): {', '.join(sorted(extra))}")
        cfg = cls(**{k: v for k, v in gpt2.items() if k in known})
        if cfg.activation_function != "gelu_new":
            raise ModelFormatError(
                f"GPT-2 activation {cfg.activation_function!r} is not supported (gelu_new only)"
            )
        return cfg


class Conv1D(nn.Module):
    """A Linear whose weight is stored transposed, (in, out): OpenAI's original GPT-2 used 1x1
    convolutions, and every GPT-2 checkpoint keeps that layout."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        # After registering, so a build under checkpoint.empty_parameters (meta) draws nothing.
        nn.init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # addmm, as transformers computes it: a different kernel would round differently.
        out = torch.addmm(self.bias, x.view(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU, tanh approximation, written as transformers' NewGELUActivation (F.gelu's
    fused tanh differs in the last bits)."""
    return (
        0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    )


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.head_dim = cfg.n_embd // cfg.n_head
        self.scale = self.head_dim**-0.5
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)  # [q | k | v]
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)
        self.attn_pdrop = cfg.attn_pdrop
        self.resid_dropout = nn.Dropout(cfg.resid_pdrop)

    def forward(
        self, x: torch.Tensor, cache: LayerCache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x (B, T, C); mask (B, 1, T, S) bool (True = attend) or None for a plain causal
        pass (T > 1) or one new token that sees everything cached (T == 1)."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, d)
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H, S, d): everything cached so far, this step included
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_pdrop if self.training else 0.0,
            scale=self.scale,
            is_causal=t > 1 and mask is None,
        )
        y = y.transpose(1, 2).contiguous().reshape(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        inner = cfg.n_inner or 4 * cfg.n_embd
        self.c_fc = Conv1D(cfg.n_embd, inner)
        self.c_proj = Conv1D(inner, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(gelu_new(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, cache: LayerCache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.attn(self.ln_1(x), cache, mask) + x
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """GPT-2 without its head (the `transformer.*` keys)."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(cfg.embd_pdrop)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)


class GPT2(nn.Module):
    """GPT-2 with its LM head (weights tied to the token embeddings)."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.config = cfg
        # The random init draws exactly what transformers' GPT2LMHeadModel draws, in its order
        # (construction, then children before parents, then the head), so a seed gives the same
        # weights as before: test models written with a seed keep their captions.
        self.transformer = Transformer(cfg)
        for module in _children_first(self.transformer):
            self._init_weights(module)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        nn.init.normal_(self.lm_head.weight, 0.0, cfg.initializer_range)  # then tied: unused
        self.lm_head.weight = self.transformer.wte.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, Conv1D):
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, (CausalSelfAttention, MLP)):
            # GPT-2 paper: residual projections scaled by 1/sqrt(2 * n_layer) at init.
            nn.init.normal_(module.c_proj.weight, 0.0, std / math.sqrt(2 * self.config.n_layer))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, V), or (B, 1, V) for the last position when last_only.

        input_ids (B, T) or inputs_embeds (B, T, C): the new positions. attention_mask (B, S)
        (1 = real, 0 = padding) covers the cached positions and the new ones, S = cached + T.
        cache: written in place with this call's keys and values; positions continue after it."""
        tr = self.transformer
        x = tr.wte(input_ids) if inputs_embeds is None else inputs_embeds
        b, t = x.shape[:2]
        past = cache.seq_length() if cache is not None else 0
        if past + t > self.config.n_positions:
            raise ValueError(
                f"sequence of {past + t} exceeds n_positions {self.config.n_positions}"
            )
        pos = torch.arange(past, past + t, device=x.device)[None]  # (1, T)
        x = tr.drop(x + tr.wpe(pos))
        mask = _attention_mask(attention_mask, b, t, past, x.device)
        for i, block in enumerate(tr.h):
            x = block(x, cache.layers[i] if cache is not None else None, mask)
        x = tr.ln_f(x)
        if last_only:
            x = x[:, -1:, :]
        return self.lm_head(x)


def _children_first(module: nn.Module):
    for child in module.children():
        yield from _children_first(child)
    yield module


def _attention_mask(
    padding: torch.Tensor | None, b: int, t: int, past: int, device: torch.device
) -> torch.Tensor | None:
    """(B, 1, T, S) bool: causal and not padding; None where SDPA's own causal flag (T > 1, no
    cache) or no mask at all (T == 1) says the same, the choice transformers makes, so the
    same kernel runs."""
    if padding is not None and bool(padding.all()):
        padding = None
    if padding is None and (t == 1 or past == 0):
        return None
    s = past + t
    q = torch.arange(past, s, device=device)[:, None]  # (T, 1) absolute positions
    k = torch.arange(s, device=device)[None, :]  # (1, S)
    mask = (k <= q)[None, None]  # (1, 1, T, S)
    if padding is not None:
        mask = mask & padding.to(device=device, dtype=torch.bool)[:, None, None, :]
    return mask.expand(b, 1, t, s)

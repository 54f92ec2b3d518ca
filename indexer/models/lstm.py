"""Show and Tell and Show, Attend and Tell: LSTM captioners over frozen CLIP features.

show-and-tell (Vinyals et al. 2015): the image's CLIP global feature sets the LSTM's initial
state (h0, c0); each step reads the previous word's embedding and predicts the next word.

show-attend-tell (Xu et al. 2015, soft attention): at every step the decoder attends over CLIP's
grid (a ViT's patch tokens, a ResNet's last spatial map; `ClipEncoder.encode_images_grid`) with
Bahdanau's additive attention, e_ti = w . tanh(W a_i + U h_{t-1}), alpha_t = softmax(e_t); the
context z_t = beta_t * sum_i alpha_ti a_i (beta_t = sigmoid(f(h_{t-1})), the paper's gate) joins
the word embedding as the LSTM's input. Training adds the paper's doubly stochastic
regularisation, alpha_c * sum_i (1 - sum_t alpha_ti)^2, which pushes every grid cell to get some
attention over the caption. The initial state comes from the mean annotation vector (as in the
paper) AND the CLIP global feature: CLIP ViT's patch tokens are weaker than its pooled feature
(contrastive training only shapes the class-token path), and dropping the pooled feature would
make this architecture lose to show-and-tell on what both can see.

Both share the tokenizer (GPT-2's BPE, no BOS token: a learned start vector is the first input)
and ClipCap's decoding semantics (indexer/models/clipcap.py), so `--beams` means the same for every
architecture: generation stops after "." (kept), greedy = arg-max, beam search ranks by MEAN
log-probability with finished beams frozen, the best final mean wins. Decoding is batched; every
row is independent, so the batch size cannot change a caption.

The networks also implement SCST's `CaptionPolicy` (`sample`, `greedy`: indexer/train/scst.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from indexer.atomic_file import atomic_path
from indexer.errors import ModelFormatError
from indexer.models.clipcap import Captioner
from indexer.models.lstm_decoding import beam_decode, greedy_decode
from indexer.models.quiet import quiet_third_party

ARCHS = ("show-and-tell", "show-attend-tell")
CHECKPOINT = "lstm.safetensors"
IGNORE_INDEX = -100  # label of padding positions (as in train_recipe)


@dataclass(frozen=True)
class LstmConfig:
    arch: str  # "show-and-tell" | "show-attend-tell"
    feature_dim: int  # CLIP global feature size: 512 for ViT-B/32, 640 for RN50x4
    vocab_size: int  # = len(tokenizer): 50257 for GPT-2's BPE
    grid_dim: int = 0  # width of a grid token (768 for ViT-B/32's patches); show-attend-tell only
    embed_dim: int = 512  # word embedding size
    hidden_dim: int = 512  # LSTM state size
    attention_dim: int = 512  # Bahdanau attention's hidden size
    dropout: float = 0.5  # before the output layer (training only)
    alpha_c: float = 1.0  # weight of the doubly stochastic attention penalty (the paper's lambda)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ModelFormatError(
                f"unknown LSTM architecture {self.arch!r} ({' or '.join(ARCHS)})"
            )
        if self.arch == "show-attend-tell" and self.grid_dim < 1:
            raise ModelFormatError("show-attend-tell needs grid_dim (the CLIP grid token width)")

    @property
    def attends(self) -> bool:
        return self.arch == "show-attend-tell"


Features = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]


def split_features(features: Features) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SCST and training hand features as (global, grid) pairs or a bare global tensor."""
    if isinstance(features, tuple | list):
        return features[0], features[1]
    return features, None


class LstmCaptionNet(nn.Module):
    """Both architectures; the attention modules exist only for show-attend-tell."""

    def __init__(self, cfg: LstmConfig):
        super().__init__()
        self.cfg = cfg
        e, h, d, c = cfg.embed_dim, cfg.hidden_dim, cfg.feature_dim, cfg.grid_dim
        self.embed = nn.Embedding(cfg.vocab_size, e)
        self.start = nn.Parameter(torch.randn(e) * 0.1)  # first input: GPT-2's BPE has no BOS
        # Raw CLIP features have norms ~10 (and grid tokens their own scale): LayerNorm makes the
        # inputs well scaled whatever CLIP produced them.
        self.feature_norm = nn.LayerNorm(d)
        init_in = d + (c if cfg.attends else 0)
        self.init_h = nn.Linear(init_in, h)
        self.init_c = nn.Linear(init_in, h)
        self.lstm = nn.LSTM(e + (c if cfg.attends else 0), h, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(h, cfg.vocab_size)
        if cfg.attends:
            self.grid_norm = nn.LayerNorm(c)
            self.att_grid = nn.Linear(c, cfg.attention_dim)  # W a_i, computed once per image
            self.att_hidden = nn.Linear(h, cfg.attention_dim)  # U h_{t-1}
            self.att_score = nn.Linear(cfg.attention_dim, 1)  # w
            self.gate = nn.Linear(h, c)  # beta_t = sigmoid(f_beta(h_{t-1}))

    # ---- building blocks
    def init_state(self, features: torch.Tensor, grid: torch.Tensor | None) -> dict:
        """Decoder state for a batch: every tensor's first dimension is the row, so beam search
        and finished rows reorder or drop them with one index (`select`)."""
        dtype = self.out.weight.dtype
        x = self.feature_norm(features.to(dtype))  # (B, D)
        state = {}
        if self.cfg.attends:
            if grid is None:
                raise ModelFormatError("show-attend-tell needs CLIP grid features")
            a = self.grid_norm(grid.to(dtype))  # (B, N, C)
            state["grid"] = a
            state["grid_proj"] = self.att_grid(a)  # (B, N, A)
            x = torch.cat((x, a.mean(dim=1)), dim=-1)  # (B, D + C)
        state["h"] = torch.tanh(self.init_h(x))  # (B, H)
        state["c"] = torch.tanh(self.init_c(x))
        return state

    def attend(self, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(gated context (B, C), alpha (B, N)) from h_{t-1}."""
        h = state["h"]
        e = self.att_score(torch.tanh(state["grid_proj"] + self.att_hidden(h)[:, None]))
        alpha = torch.softmax(e.squeeze(-1).float(), dim=-1).to(h.dtype)  # (B, N)
        z = (alpha[:, :, None] * state["grid"]).sum(dim=1)  # (B, C)
        return torch.sigmoid(self.gate(h)) * z, alpha

    def step(self, prev: torch.Tensor | None, state: dict):
        """One decoding step: (logits (B, V) for the next token, new state, alpha (B, N) | None).
        prev: the previous token ids (B,), None at the first step (the start vector)."""
        h, c = state["h"], state["c"]
        if prev is None:
            x = self.start.expand(h.shape[0], -1)
        else:
            x = self.embed(prev)  # (B, E)
        alpha = None
        if self.cfg.attends:
            z, alpha = self.attend(state)
            x = torch.cat((x, z), dim=-1)
        h2, c2 = self._cell(x, h, c)
        new = {**state, "h": h2, "c": c2}
        return self.out(self.drop(h2)), new, alpha

    def _cell(self, x, h, c):
        """One LSTM step with nn.LSTM's weights: the fused cell, without nn.LSTM's per-call
        overhead (10x the arithmetic at these sizes)."""
        m = self.lstm
        return torch.lstm_cell(
            x, (h, c), m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0
        )

    def forward(self, tokens: torch.Tensor, features: torch.Tensor, grid=None):
        """Teacher-forced: logits (B, T, V), logits[:, t] predicting tokens[:, t] from the
        tokens before it; and alphas (B, T, N) for show-attend-tell (else None)."""
        b, t = tokens.shape
        state = self.init_state(features, grid)
        inputs = torch.cat((self.start.expand(b, 1, -1), self.embed(tokens[:, :-1])), dim=1)
        if not self.cfg.attends:  # one fused LSTM call over the whole caption
            out, _ = self.lstm(inputs, (state["h"][None], state["c"][None]))
            return self.out(self.drop(out)), None
        outs, alphas = [], []
        for i in range(t):
            z, alpha = self.attend(state)
            x = torch.cat((inputs[:, i], z), dim=-1)
            h, c = self._cell(x, state["h"], state["c"])
            state = {**state, "h": h, "c": c}
            outs.append(h)
            alphas.append(alpha)
        return self.out(self.drop(torch.stack(outs, dim=1))), torch.stack(alphas, dim=1)

    # ---- SCST's CaptionPolicy (indexer/train/scst.py)
    def sample(
        self,
        features: Features,
        n: int,
        max_tokens: int,
        stop_token: int,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ):
        """n sampled captions per image, image-major; log-probs summed with grad as they are
        drawn (the LSTM is cheap enough to keep the graph of every step)."""
        from indexer.models.sampling import SampleBatch

        feats, grid = split_features(features)
        feats = feats.repeat_interleave(n, dim=0)  # (B*n, D)
        grid = grid.repeat_interleave(n, dim=0) if grid is not None else None
        r = feats.shape[0]
        dev = feats.device
        state = self.init_state(feats, grid)
        tokens = torch.zeros(r, max_tokens, dtype=torch.long, device=dev)
        lengths = torch.full((r,), max_tokens, dtype=torch.long, device=dev)
        live = torch.ones(r, dtype=torch.bool, device=dev)
        total = torch.zeros(r, device=dev)
        prev = None
        for i in range(max_tokens):
            logits, state, _ = self.step(prev, state)
            logp = F.log_softmax(logits.float(), dim=-1)  # (R, V)
            pick = logp.detach()
            if 0 < top_k < pick.shape[-1]:
                kth = pick.topk(top_k, dim=-1).values[:, -1:]
                pick = pick.masked_fill(pick < kth, float("-inf"))
            nxt = torch.multinomial(pick.exp(), 1, generator=generator).squeeze(1)  # (R,)
            nxt = torch.where(live, nxt, torch.zeros_like(nxt))
            tokens[:, i] = nxt
            total = total + logp.gather(1, nxt[:, None]).squeeze(1) * live
            stopped = live & (nxt == stop_token)
            lengths[stopped] = i + 1
            live = live & ~stopped
            if not bool(live.any()):
                break
            prev = nxt
        t = int(lengths.max()) if r else 0
        return SampleBatch(tokens[:, :t], total, lengths)

    @torch.no_grad()
    def greedy(self, features: Features, max_tokens: int, stop_token: int) -> list[list[int]]:
        feats, grid = split_features(features)
        was_training = self.training
        self.eval()
        try:
            return greedy_decode(self, feats, grid, max_tokens, stop_token)[0]
        finally:
            self.train(was_training)


# ------------------------------------------------------------------------------- training loss
def lstm_loss(net, tokens, labels, features, grid=None, reduction: str = "mean"):
    """Cross-entropy of the caption tokens (labels: IGNORE_INDEX at pads). With reduction="mean"
    (training) show-attend-tell adds the doubly stochastic penalty; "sum" (validation) is the
    cross-entropy alone, comparable across architectures."""
    logits, alphas = net(tokens, features, grid)  # (B, T, V), (B, T, N) | None
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )
    if reduction != "mean" or alphas is None or not net.cfg.alpha_c:
        return ce
    real = (labels != IGNORE_INDEX).float()[:, :, None]  # (B, T, 1)
    coverage = (alphas.float() * real).sum(dim=1)  # (B, N): attention each cell got
    return ce + net.cfg.alpha_c * ((1.0 - coverage) ** 2).mean()


def pad_batch(token_lists: list[list[int]]):
    """tokens (B, T) (pads 0), labels (B, T) (pads IGNORE_INDEX)."""
    t = max(len(ids) for ids in token_lists)
    tokens = torch.zeros(len(token_lists), t, dtype=torch.long)
    labels = torch.full((len(token_lists), t), IGNORE_INDEX, dtype=torch.long)
    for i, ids in enumerate(token_lists):
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[i, : len(ids)] = tokens[i, : len(ids)]
    return tokens, labels


class LstmCaptioner(Captioner):
    """An LSTM net + tokenizer on a device, with Captioner's interface. show-attend-tell also
    needs the CLIP grid (`needs_grid`): callers get it from `ClipEncoder.encode_images_grid`."""

    def __init__(self, model: LstmCaptionNet, tokenizer, device, dtype):
        super().__init__(model, tokenizer, device, dtype)
        self.needs_grid: bool = model.cfg.attends

    def decode_tokens(
        self,
        features: torch.Tensor,
        beams: int = 1,
        max_tokens: int = 67,
        stop_token: int | None | str = "default",
        grid: torch.Tensor | None = None,
    ) -> list[list[int]]:
        return self.decode_with_attention(features, beams, max_tokens, stop_token, grid)[0]

    def decode_with_attention(
        self, features, beams=1, max_tokens=67, stop_token="default", grid=None
    ) -> tuple[list[list[int]], list]:
        """(token ids per image, attention (T, N) per image, or None per image without
        attention)."""
        if self.needs_grid and grid is None:
            raise ModelFormatError("show-attend-tell captions need CLIP grid features")
        stop = self.stop_token if stop_token == "default" else stop_token
        feats = features.to(self.device)
        grid = grid.to(self.device) if grid is not None and self.needs_grid else None
        with quiet_third_party(), self._autocast():
            if beams <= 1:
                return greedy_decode(self.model, feats, grid, max_tokens, stop)
            return beam_decode(self.model, feats, grid, beams, max_tokens, stop)

    def caption(
        self, features: torch.Tensor, beams: int = 1, max_tokens: int = 67, grid=None
    ) -> list[str]:
        ids = self.decode_tokens(features, beams, max_tokens, grid=grid)
        return [self.detokenize(t) for t in ids]


# ------------------------------------------------------------------------ model directory files
def load_lstm(path: Path, cfg: LstmConfig) -> LstmCaptionNet:
    """Build LstmCaptionNet(cfg) and load its safetensors checkpoint strictly (nanoGPT style:
    build on the meta device, check every key and shape, then adopt the tensors)."""
    from indexer.models.checkpoint import (
        assign_state_dict,
        empty_parameters,
        key_problems,
        read_state_dict,
    )

    sd = read_state_dict(path)
    with empty_parameters():
        net = LstmCaptionNet(cfg)
    problems = key_problems(net, sd)
    if problems:
        raise ModelFormatError(f"{path} does not match a {cfg.arch} model: " + "; ".join(problems))
    try:
        assign_state_dict(net, sd)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    return net.eval()


def lstm_config(spec: dict, spec_path: Path) -> LstmConfig:
    try:
        return LstmConfig(arch=spec["arch"], **spec["lstm"])
    except TypeError as e:
        raise ModelFormatError(f"{spec_path}: bad lstm config ({e})") from None


def write_lstm_checkpoint(net: LstmCaptionNet, path: Path) -> None:
    """The weights as safetensors, written aside and renamed into place."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))


def write_lstm_model_dir(
    out: Path,
    name: str,
    net: LstmCaptionNet,
    clip_model_cfg: dict,
    clip_state: dict,
    tokenizer_dir: Path,
    quick_gelu: bool,
    description: str = "",
) -> Path:
    """A complete local model directory for an LSTM captioner (spec, lstm.safetensors, CLIP,
    tokenizer): `--model OUT` loads it everywhere a ClipCap directory loads."""
    from indexer.models.model_dir import SPEC_FORMAT, write_clip_and_tokenizer, write_spec

    out = Path(out)
    write_clip_and_tokenizer(out, clip_model_cfg, clip_state, tokenizer_dir)
    write_lstm_checkpoint(net, out / CHECKPOINT)
    cfg = asdict(net.cfg)
    arch = cfg.pop("arch")
    write_spec(
        out,
        {
            "format": SPEC_FORMAT,
            "name": name,
            "description": description,
            "arch": arch,
            "lstm": cfg,
            "checkpoint": CHECKPOINT,
            "clip": {"dir": "clip", "quick_gelu": quick_gelu},
            "tokenizer": "tokenizer",
        },
    )
    return out


def write_tiny_lstm_model(out: Path, arch: str, seed: int = 0, name: str | None = None) -> Path:
    """The tiny test model's CLIP and tokenizer with a tiny random LSTM captioner of `arch`."""
    import shutil
    import tempfile

    from indexer.models.model_dir import read_spec
    from indexer.models.random_weights import TINY_CLIP_CFG, write_tiny_model

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        base = write_tiny_model(Path(tmp) / "base", seed=seed)
        spec = read_spec(base)
        tok_dir = base / spec["tokenizer"]
        vocab = len(json.loads((tok_dir / "vocab.json").read_text(encoding="utf-8")))
        width = TINY_CLIP_CFG["vision_cfg"]["width"]
        torch.manual_seed(seed)
        grid_dim = width if arch == ARCHS[1] else 0
        cfg = LstmConfig(arch, TINY_CLIP_CFG["embed_dim"], vocab, grid_dim=grid_dim,
                         embed_dim=64, hidden_dim=64, attention_dim=32, dropout=0.1)  # fmt: skip
        net = LstmCaptionNet(cfg)
        out.mkdir(parents=True, exist_ok=True)
        for part in ("clip", "tokenizer"):
            shutil.copytree(base / part, out / part, dirs_exist_ok=True)
    write_lstm_checkpoint(net, out / CHECKPOINT)
    from indexer.models.model_dir import SPEC_FORMAT, write_spec

    lstm = asdict(cfg)
    lstm.pop("arch")
    write_spec(
        out,
        {
            "format": SPEC_FORMAT,
            "name": name or f"tiny-{arch}-{seed}",
            "description": f"tiny random {arch} model for tests (captions are nonsense)",
            "arch": arch,
            "lstm": lstm,
            "checkpoint": CHECKPOINT,
            "clip": {"dir": "clip", "quick_gelu": True},
            "tokenizer": "tokenizer",
        },
    )
    return out

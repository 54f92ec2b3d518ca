"""Self-critical sequence training (SCST, Rennie et al. 2017): fine-tune a captioner on CIDEr-D.

`imgcap train DATA --scst --from MODEL` starts from a cross-entropy model and, per step, for a
batch of training images:

1. samples `samples` captions per image from the model (multinomial, or among the `top_k`
   likeliest tokens; batched, with the KV cache: `CaptionPolicy.sample`);
2. rewards each caption with its CIDEr-D against that image's reference captions, the n-gram
   document frequencies computed ONCE over all training references (`metrics.CiderD`);
3. subtracts a baseline: the mean reward of the image's OTHER samples (leave-one-out, the "new
   self-critical" variant of Luo 2020). Chosen over the greedy caption's reward because it needs
   no extra greedy decode per step and is unbiased; it is why --samples is at least 2;
4. minimises -(reward - baseline) * log p(caption), averaged over the captions.

Guards against the known failure modes (the reward, not the loss, is where they are fought):
- a caption that never produced the stop token "." (cut off at the token cap) gets reward 0;
- a repetitive caption (a word twice in a row, or a trigram twice: "a a a", "on a white on a
  white") gets reward 0. CIDEr-D's clipping and length penalty already make "a a a" score low;
  the guard makes it score nothing, so it is always below its siblings' baseline;
- every epoch reports the share of sampled captions ending with "." and their distinct-2 ratio
  (indexer/train/caption_stats.py), next to the mean reward and the validation CIDEr-D, so a
  collapse is visible in the history, not only in the captions.

The run is the cross-entropy run's (indexer/train/loop.py `_Run`): same data, feature cache, run
folder, state.pt written after every epoch and every `checkpoint_every_s` (and on Ctrl-C), the same
resume by running the command again, progress through the same callback. The best epoch is the one
with the highest greedy CIDEr-D on the validation images (last epoch without validation data).

What SCST needs from a captioner, stable so other architectures can implement it on their own
module (`policy_for` uses a module's own `sample`/`greedy` when it has them):

    sample(features, n, max_tokens, stop_token, top_k=0, generator=None) -> SampleBatch
        features: one batch of what the architecture trains on (ClipCap: (B, D) raw CLIP
        features); returns tokens (B*n, T) image-major, 0-padded after each row's stop token,
        logprobs (B*n,) summed over each row's real tokens WITH grad, lengths (B*n,).
    greedy(features, max_tokens, stop_token) -> list[list[int]]   (B rows, no grad)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from indexer.models.sampling import ClipCapPolicy, SampleBatch

if TYPE_CHECKING:
    import torch

    from indexer.train.history import TrainResult


class CaptionPolicy(Protocol):
    def sample(
        self,
        features: Any,
        n: int,
        max_tokens: int,
        stop_token: int,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> SampleBatch: ...

    def greedy(self, features: Any, max_tokens: int, stop_token: int) -> list[list[int]]: ...


def policy_for(net) -> CaptionPolicy:
    """The network itself when it implements the policy, else ClipCap's adapter."""
    if callable(getattr(net, "sample", None)) and callable(getattr(net, "greedy", None)):
        return net
    return ClipCapPolicy(net)


# ------------------------------------------------------------------------------------- reward
def repetitive(words: list[str]) -> bool:
    """A word twice in a row, or any trigram twice: the loops SCST can drift into."""
    if any(a == b for a, b in zip(words, words[1:], strict=False)):
        return True
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return len(trigrams) != len(set(trigrams))


class Reward:
    """CIDEr-D against one image's references, document frequencies from all training references,
    with the guards above. `references`: raw caption texts per training image."""

    def __init__(self, references: list[tuple[str, ...]]):
        import functools

        from indexer.train.metrics import CiderD
        from indexer.train.ptb import tokenize

        self._refs = [[tokenize(r) for r in refs] for refs in references]
        self._cider = CiderD(self._refs, keep=False)
        # The images of a step are scored n times each; a bounded cache keeps their prepared
        # reference vectors without holding a whole dataset's.
        self._prepared = functools.lru_cache(maxsize=4096)(
            lambda image: self._cider.prepare(self._refs[image])
        )

    def __call__(self, words: list[str], image: int, ended: bool) -> float:
        """words: the caption tokenised (`ptb_tokenizer.tokenize`), image: index into
        `references`, ended: the caption ended with the stop token."""
        if not ended or not words or repetitive(words):
            return 0.0
        return self._cider.score(" ".join(words), self._prepared(image))


def leave_one_out_advantage(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (B, n) -> reward minus the mean of the image's other n-1 samples, (B, n)."""
    n = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (n - 1)
    return rewards - baseline


def policy_loss(advantage: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline: mean over captions of -(r - b) * log p(caption)."""
    return -(advantage.detach().reshape(-1) * logprobs).mean()


# ---------------------------------------------------------------------------------- the run
def run_scst(run) -> TrainResult:
    """The SCST loop on a set-up `indexer.train.loop._Run` (data, features, net already there)."""
    return _Scst(run).execute()


class _Scst:
    def __init__(self, run):
        self.run = run
        cfg = run.cfg
        self.cfg = cfg
        self.tokenizer = run.base.tokenizer
        self.stop = self.tokenizer.encode(".")[0]
        self.policy = policy_for(run.net)
        # One entry per training image with features: (feature row, its reference captions).
        self.train = [(run.index[e.image_path], e.captions) for e in run.train_ex
                      if e.image_path in run.index]  # fmt: skip
        self.val = [(run.index[e.image_path], e.captions) for e in run.val_ex
                    if e.image_path in run.index]  # fmt: skip
        self.reward = Reward([caps for _, caps in self.train])
        # The longest caption cross-entropy trained on (train_recipe.caption_token_cap): a
        # sample that has not stopped by then is cut and gets no reward.
        self.max_tokens = run.cap
        self.images_per_step = max(1, cfg.batch_size // cfg.samples)  # batch = captions/step

    def text(self, ids: list[int]) -> str:
        return " ".join(self.tokenizer.decode(ids).split())

    def execute(self) -> TrainResult:
        import torch

        from indexer.train.caption_stats import distinct_ngrams
        from indexer.train.history import EpochStats, TrainProgress

        run, cfg = self.run, self.cfg
        net, device = run.net, run.device
        n = cfg.samples
        steps_per_epoch = math.ceil(len(self.train) / self.images_per_step)
        run.make_optimiser(steps_per_epoch)
        run.fingerprint = run._fingerprint(len(self.train), len(self.val))

        history: list[EpochStats] = []
        best_epoch, best_val = None, None
        start_epoch, start_step, resumed = 0, 0, None
        acc = _Accumulator()
        state = run.resume()
        if state is not None:
            start_epoch, start_step = state["epoch"], state["step_in_epoch"]
            acc = _Accumulator(**state["scst_epoch"])
            history = [EpochStats(**h) for h in state["history"]]
            best_epoch, best_val = state["best_epoch"], state["best_val"]
            resumed = (start_epoch, start_step)
        scaler = torch.amp.GradScaler(device.type, enabled=run.dtype == torch.float16)

        def position(epoch: int, step: int) -> dict:
            return {
                "epoch": epoch,
                "step_in_epoch": step,
                "loss_sum": acc.loss_sum,  # the cross-entropy state's keys, for one reader
                "loss_n": acc.steps,
                "scst_epoch": asdict(acc),
                "history": [asdict(h) for h in history],
                "best_epoch": best_epoch,
                "best_val": best_val,
            }

        with torch.enable_grad():  # load_model switched autograd off process-wide
            for epoch in range(start_epoch, cfg.epochs):
                net.train()
                if cfg.prefix_only:
                    net.gpt.eval()
                gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
                order = torch.randperm(len(self.train), generator=gen).tolist()
                first = start_step if epoch == start_epoch else 0
                if first == 0:
                    acc = _Accumulator()
                t0, seen = time.perf_counter(), 0
                last_save = time.monotonic()
                step = first
                try:
                    for step in range(first, steps_per_epoch):
                        per = self.images_per_step
                        sel = [self.train[i] for i in order[step * per : (step + 1) * per]]
                        # One generator per step, seeded from (seed, epoch, step): a resumed
                        # run draws the same captions an uninterrupted one would.
                        sample_gen = torch.Generator(device=device).manual_seed(
                            (cfg.seed * 1_000_003 + epoch) * 1_000_003 + step
                        )
                        with run.autocast():
                            batch = self.policy.sample(
                                run.batch_features([row for row, _ in sel]),
                                n, self.max_tokens, self.stop, cfg.top_k, sample_gen,
                            )  # fmt: skip
                        images = order[step * per : (step + 1) * per]
                        rewards, ended, words = self.score(batch, images)
                        adv = leave_one_out_advantage(rewards.to(batch.logprobs.device))
                        loss = policy_loss(adv, batch.logprobs)
                        run.opt.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                        scaler.step(run.opt)
                        scaler.update()
                        run.sched.step()
                        acc.add(float(loss.detach()), rewards, ended, words)
                        seen += rewards.numel()
                        rate = seen / max(1e-9, time.perf_counter() - t0)
                        run.emit(
                            TrainProgress(
                                "train", epoch + 1, cfg.epochs, step + 1, steps_per_epoch,
                                acc.loss_sum / acc.steps, run.sched.get_last_lr()[0], rate,
                                reward=acc.reward_sum / max(1, acc.captions),
                            )
                        )  # fmt: skip
                        if time.monotonic() - last_save > cfg.checkpoint_every_s:
                            run._save_state(position(epoch, step + 1))
                            last_save = time.monotonic()
                except KeyboardInterrupt:
                    run._save_state(position(epoch, step))
                    raise
                seconds = time.perf_counter() - t0
                val_cider = self.validate(epoch)
                better = val_cider is not None and (best_val is None or val_cider > best_val)
                if better or val_cider is None:
                    best_epoch, best_val = epoch + 1, val_cider
                    run._publish(
                        epoch + 1, None, acc.loss_sum / max(1, acc.steps),
                        {"scst": {"reward": cfg.reward, "samples": n, "val_cider": val_cider}},
                    )  # fmt: skip
                stats = EpochStats(
                    epoch + 1,
                    acc.loss_sum / max(1, acc.steps),
                    None,
                    seconds,
                    seen / max(1e-9, seconds),
                    better,
                    reward=acc.reward_sum / max(1, acc.captions),
                    ends_with_period=acc.ended / max(1, acc.captions),
                    distinct_2=distinct_ngrams(acc.words, 2),
                    val_cider=val_cider,
                )
                history.append(stats)
                acc = _Accumulator()
                run._save_state(position(epoch + 1, 0))
                run.folder.write_history(history)
                run.emit(TrainProgress("epoch", epoch + 1, cfg.epochs, stats=stats))

        n_val = sum(len(caps) for _, caps in self.val)
        return run.result(
            history, best_epoch, None, resumed, n * len(self.train), n_val,
            best_val_cider=best_val, scst=True,
        )  # fmt: skip

    def score(self, batch: SampleBatch, images: list[int]):
        """Rewards (B, n) of a sampled batch, whether each caption ended with the stop token,
        and each one's words (tokenised as the metrics do)."""
        import torch

        from indexer.train.ptb import tokenize

        n = self.cfg.samples
        tokens, lengths = batch.tokens.tolist(), batch.lengths.tolist()
        rewards, ended, words = [], [], []
        for r, (ids, length) in enumerate(zip(tokens, lengths, strict=True)):
            ids = ids[:length]
            ended.append(bool(ids) and ids[-1] == self.stop)
            words.append(tokenize(self.text(ids)).split())
            rewards.append(self.reward(words[-1], images[r // n], ended[-1]))
        return torch.tensor(rewards, dtype=torch.float32).view(-1, n), ended, words

    def validate(self, epoch: int) -> float | None:
        """Greedy captions of the validation images, CIDEr-D as `imgcap eval` scores them."""
        import torch

        from indexer.train.history import TrainProgress
        from indexer.train.metrics import cider_d
        from indexer.train.ptb import tokenize

        if not self.val:
            return None
        run = self.run
        bs = max(1, self.cfg.batch_size)
        captions: list[str] = []
        steps = math.ceil(len(self.val) / bs)
        with torch.no_grad():
            for step in range(steps):
                chunk = self.val[step * bs : (step + 1) * bs]
                with run.autocast():
                    ids = self.policy.greedy(
                        run.batch_features([row for row, _ in chunk]), self.max_tokens, self.stop
                    )
                captions += [self.text(t) for t in ids]
                run.emit(TrainProgress("val", epoch + 1, self.cfg.epochs, step + 1, steps))
        refs = [[tokenize(r) for r in caps] for _, caps in self.val]
        return cider_d([tokenize(c) for c in captions], refs)[0]


# distinct-2 is measured over this many sampled captions per epoch (the first ones): a fixed
# size, because the ratio falls as the text grows, and a bound on what state.pt carries.
DISTINCT_SAMPLE = 5000


@dataclass
class _Accumulator:
    """One epoch's running sums (saved in state.pt, so a resumed epoch reports the whole)."""

    loss_sum: float = 0.0
    steps: int = 0
    reward_sum: float = 0.0
    captions: int = 0
    ended: int = 0  # sampled captions that produced the stop token
    words: list[list[str]] = field(default_factory=list)  # tokenised, for distinct-2

    def add(self, loss: float, rewards, ended: list[bool], words) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.reward_sum += float(rewards.sum())
        self.captions += rewards.numel()
        self.ended += sum(ended)
        self.words += words[: max(0, DISTINCT_SAMPLE - len(self.words))]

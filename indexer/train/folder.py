"""A training run's output folder, which is also the finished model directory.

    OUT/imgcap-model.json, clipcap.pt, clip/, tokenizer/   the best epoch so far (`--model OUT`)
    OUT/training/state.pt          weights + optimiser + scheduler + position, for resuming
    OUT/training/history.json      loss per epoch
    OUT/training/features-*.safetensors   the CLIP feature cache

Every file is written aside and renamed into place (the spec last), so a kill at any moment
leaves the previous state.pt and a loadable model directory, or none yet.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from indexer.atomic_file import atomic_file, replace_with, write_atomic
from indexer.errors import UsageError

STATE_FORMAT = 1


class RunFolder:
    def __init__(self, out: Path, name: str):
        self.out = Path(out)
        self.work = self.out / "training"
        self.name = name  # model name written into the spec

    # ---- what OUT may be
    def claim(self, base: str | None, force: bool) -> None:
        """Refuse (UsageError, exit 2) an OUT whose contents training would destroy.

        Allowed without force: a new or empty folder, or a folder holding a training run
        (OUT/training/: resumed, or refused later by `read_state` when its settings differ).
        Refused without force: OUT is --from's model directory, any other model directory, or a
        non-empty folder that is neither."""
        from indexer.models.model_dir import SPEC_FILE

        out = self.out
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a folder")
        if force:
            return
        hint = "Use another --out, or add --force to replace it."
        if base is not None and Path(base).expanduser().exists():
            if Path(base).expanduser().resolve() == out.resolve():
                raise UsageError(
                    f"--out {out} is the model --from starts from: training would overwrite "
                    f"it. {hint}"
                )
        if not out.is_dir() or self.work.is_dir() or not any(out.iterdir()):
            return
        if (out / SPEC_FILE).is_file():
            raise UsageError(
                f"--out {out} is already a model directory: training would overwrite it. {hint}"
            )
        raise UsageError(
            f"--out {out} is a folder with other files and no training run in it; training "
            "would write a model directory into it. Use a new or empty folder, or add --force."
        )

    # ---- resume state
    def read_state(self, fingerprint: dict, start_over: bool = False) -> dict | None:
        """The saved state of a run with these settings; None when there is none.

        A state with other settings is refused, or with `start_over` ignored (it is replaced at
        the first save)."""
        import torch

        path = self.work / "state.pt"
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - say which file, never a traceback
            raise UsageError(
                f"{path}: cannot resume from it ({type(e).__name__}); delete it to start over"
            ) from None
        old = state.get("fingerprint", {})
        diff = [k for k in fingerprint if old.get(k) != fingerprint[k]]
        if diff and start_over:
            return None
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {fingerprint[k]!r}" for k in diff)
            raise UsageError(
                f"{self.out} holds a training run with other settings ({shown}). Use another "
                f"--out, or delete {path} to start this one over."
            )
        return state

    def save_state(self, fingerprint: dict, model: dict, optimizer, scheduler, pos: dict) -> None:
        """Trainable weights, optimiser and scheduler state, RNG and loop position, atomically."""
        import torch

        self.work.mkdir(parents=True, exist_ok=True)
        state = {
            "format": STATE_FORMAT,
            "fingerprint": fingerprint,
            "model": model,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            **pos,
        }
        with atomic_file(self.work / "state.pt") as f:  # a kill leaves the old or the new one
            torch.save(state, f)

    def write_history(self, history: list) -> None:
        text = json.dumps([asdict(h) for h in history], indent=1) + "\n"
        write_atomic(self.work / "history.json", text.encode("utf-8"))

    # ---- the model directory
    def publish(self, net, base: Any, trained: dict, whole: bool = True) -> None:
        """Make OUT a model directory holding `net`, with `trained` recorded in its spec.

        `whole` (and whenever OUT is not a model directory yet): the whole directory (CLIP,
        tokenizer, checkpoint) is written aside and moved in, the spec last. Otherwise only the
        checkpoint and the spec change."""
        import torch

        from indexer.models.model_dir import SPEC_FILE, published_state_dict, write_model_dir
        from indexer.train import lstm

        out = self.out
        is_lstm = lstm.net_arch(net) != "clipcap"  # show-and-tell / show-attend-tell
        if whole or not (out / SPEC_FILE).is_file() or not (out / "clip").is_dir():
            tmp = self.work / "publish"
            shutil.rmtree(tmp, ignore_errors=True)
            enc = base.encoder.model
            clip_cfg = json.loads((base.clip_dir / "open_clip_config.json").read_text())
            args = (
                clip_cfg.get("model_cfg", clip_cfg),
                {k: v.detach().cpu() for k, v in enc.state_dict().items()},
            )
            description = f"trained by imgcap train from {base.name}"
            ckpt = "clipcap.pt"
            if is_lstm:
                ckpt = lstm.write_dir(tmp, self.name, net, *args, base, description)
            else:
                write_model_dir(tmp, self.name, net, *args, base.tok_dir, base.quick_gelu,
                                description)  # fmt: skip
            # Not a model directory while its parts are swapped: a kill here leaves no model
            # rather than a spec pointing at half-replaced files.
            (out / SPEC_FILE).unlink(missing_ok=True)
            for part in ("clip", "tokenizer"):
                if (out / part).exists():
                    shutil.rmtree(out / part)
                os.replace(tmp / part, out / part)
            replace_with(tmp / ckpt, out / ckpt)
            spec = json.loads((tmp / SPEC_FILE).read_text())
            shutil.rmtree(tmp, ignore_errors=True)
        elif is_lstm:
            lstm.write_checkpoint(net, out)
            spec = json.loads((out / SPEC_FILE).read_text())
        else:
            with atomic_file(out / "clipcap.pt") as f:
                torch.save(published_state_dict(net), f)
            spec = json.loads((out / SPEC_FILE).read_text())
        spec["trained"] = trained
        write_atomic(out / SPEC_FILE, (json.dumps(spec, indent=2) + "\n").encode("utf-8"))

"""`imgcap caption FILE...`: caption image files in batches without touching the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from indexer.config import Settings
from indexer.errors import BadImageError

Emit = Callable[[Path, str | None, str | None], None]  # (path, caption, error)


def caption_files(paths: Iterable[Path], settings: Settings, emit: Emit) -> None:
    """Decode, encode and caption `paths`; call emit once per path, in input order. A file that
    can't be read gets emit(path, None, reason) and never stops the others."""
    from indexer.models import load_model
    from indexer.preprocess import encoder_tensor, model_pixels

    paths = list(paths)
    # load_model checks the name or directory before it imports torch (~1-2 s): a mistyped
    # --model is refused at once.
    model = load_model(settings.model, settings)
    import torch

    enc = model.encoder
    batch_size = settings.batch_size_for(model.device.type)
    max_pixels = settings.max_pixels_for(workers=1)  # one decode at a time, in this process
    pending: list[tuple[Path, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        pixels = torch.stack([t for _, t in pending])
        # One CLIP pass; its features are the caption prefix (and its grid what show-attend-tell
        # attends over).
        extra = {}
        if getattr(model.captioner, "needs_grid", False):
            feats, extra["grid"] = enc.encode_images_grid(pixels)
        else:
            feats = enc.encode_images(pixels)
        captions = model.captioner.caption(
            feats, beams=settings.beams, max_tokens=settings.max_tokens, **extra
        )
        for (p, _), text in zip(pending, captions, strict=True):
            emit(p, text, None)
        pending.clear()

    for path in paths:
        try:
            if path.is_dir():
                raise BadImageError(str(path), "is a directory")
            _, pixels = model_pixels(path, enc.image_size, settings.resize, max_pixels)
            pending.append((path, encoder_tensor(enc, pixels)))
        except BadImageError as e:
            flush()  # keep output in input order
            emit(path, None, e.reason)
            continue
        if len(pending) >= batch_size:
            flush()
    flush()

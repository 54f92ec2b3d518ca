"""`imgcap caption FILE...`: caption image files in batches without touching the database; a
video is captioned by its keyframes (indexer/media/video.py), their distinct captions joined."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from indexer.config import Settings
from indexer.errors import BadImageError, ModelNotAvailableError

Emit = Callable[[Path, str | None, str | None], None]  # (path, caption, error)


def caption_files(paths: Iterable[Path], settings: Settings, emit: Emit) -> None:
    """Decode, encode and caption `paths`; call emit once per path, in input order. A file that
    can't be read gets emit(path, None, reason) and never stops the others."""
    from indexer.media.kinds import is_video
    from indexer.media.preprocess import encoder_tensor, model_pixels
    from indexer.models.loading import load_model, resolve_model_dir

    paths = list(paths)
    max_pixels = settings.max_pixels_for(workers=1)  # one decode at a time, in this process
    refused = _refused(paths, max_pixels)
    if len(refused) == len(paths):  # nothing to caption: no model, no torch import (seconds)
        try:  # but a mistyped --model is still refused as one
            resolve_model_dir(settings.model, settings, download=False)
        except ModelNotAvailableError:
            pass  # a registry model not downloaded yet: nothing here needs it
        for path, reason in refused:
            emit(path, None, reason)
        return
    # load_model checks the name or directory before it imports torch (~1-2 s): a mistyped
    # --model is refused at once.
    model = load_model(settings.model, settings)
    import torch

    enc = model.encoder
    batch_size = settings.batch_size_for(model.device.type)
    pending: list[tuple[Path, torch.Tensor]] = []

    def captions_of(pixels: torch.Tensor) -> list[str]:
        # One CLIP pass; its features are the caption prefix (and its grid what show-attend-tell
        # attends over).
        extra = {}
        if getattr(model.captioner, "needs_grid", False):
            feats, extra["grid"] = enc.encode_images_grid(pixels)
        else:
            feats = enc.encode_images(pixels)
        return model.captioner.caption(
            feats, beams=settings.beams, max_tokens=settings.max_tokens, **extra
        )

    def video_caption(path: Path) -> str:
        """A video's keyframes (as `imgcap index` picks them) captioned; the distinct captions
        in time order, joined as `imgcap export` joins them."""
        from indexer.media import video

        got = video.decode_for_model(
            str(path), enc.image_size, settings.video_gap, settings.video_max_frames, max_pixels
        )
        if got[0] != "ok":
            raise BadImageError(str(path), got[1])
        pixels = torch.stack([encoder_tensor(enc, px) for px in got[2]])
        captions: list[str] = []
        for i in range(0, len(pixels), batch_size):
            captions += captions_of(pixels[i : i + batch_size])
        return " | ".join(dict.fromkeys(captions))

    def flush() -> None:
        if not pending:
            return
        captions = captions_of(torch.stack([t for _, t in pending]))
        for (p, _), text in zip(pending, captions, strict=True):
            emit(p, text, None)
        pending.clear()

    for path in paths:
        try:
            if path.is_dir():
                raise BadImageError(str(path), "is a directory")
            if is_video(path):
                flush()  # keep output in input order
                emit(path, video_caption(path), None)
                continue
            _, pixels = model_pixels(path, enc.image_size, settings.resize, max_pixels)
            pending.append((path, encoder_tensor(enc, pixels)))
        except BadImageError as e:
            flush()  # keep output in input order
            emit(path, None, e.reason)
            continue
        if len(pending) >= batch_size:
            flush()
    flush()


def _refused(paths: list[Path], max_pixels: int) -> list[tuple[Path, str]]:
    """(path, reason) of each file its header alone refuses (a folder, not an image or video,
    over the pixel cap), read without decoding; the caption loop finds the same reasons."""
    from indexer.media.decode import check_header

    refused = []
    for path in paths:
        try:
            if path.is_dir():
                raise BadImageError(str(path), "is a directory")
            check_header(path, max_pixels)
        except BadImageError as e:
            refused.append((path, e.reason))
    return refused

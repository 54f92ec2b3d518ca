"""`imgcap caption PHOTO --attention OUT.png`: where a show-attend-tell model looked for each word.

One photo goes through the same path as `imgcap caption` (decode -> model input -> one CLIP pass
-> caption); the decoder's attention weights alpha_t (one per grid cell, per generated token)
are grouped into words (a word of several BPE pieces gets the mean of its pieces' maps) and drawn
with Pillow: a grid of tiles, the model's input first, then one tile per word with its heat map
over the photo and the word under it.

The tiles show the model input (CLIP's centre crop), which is exactly what the grid covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.atomic_file import atomic_file
from indexer.config import Settings
from indexer.errors import UsageError

TILE = 224  # pixels per tile side
COLUMNS = 5
LABEL = 22  # pixels under a tile for its word


@dataclass
class AttentionCaption:
    caption: str
    words: list[str]  # as generated, "." included
    maps: list[np.ndarray]  # per word: (h, w) attention over the grid, sums to 1
    pixels: np.ndarray  # (S, S, 3) uint8: the model input the grid covers


def attention_caption(path: Path, settings: Settings) -> AttentionCaption:
    """Caption one photo with settings.model (beams as set) and keep the attention per word.
    UsageError (exit 2) when the model has no attention (ClipCap, show-and-tell)."""
    from indexer.media.preprocess import encoder_tensor, model_pixels
    from indexer.models.loading import load_model

    model = load_model(settings.model, settings)
    cap = model.captioner
    if not getattr(cap, "needs_grid", False):
        arch = model.spec.get("arch", "clipcap")
        raise UsageError(
            f"--attention: {model.name} is a {arch} model, which has no attention to show; "
            "train one with `imgcap train DATA --arch show-attend-tell`"
        )
    if Path(path).is_dir():
        raise UsageError(f"--attention: {path} is a directory, not a photo")
    enc = model.encoder
    max_pixels = settings.max_pixels_for(workers=1)
    _, pixels = model_pixels(path, enc.image_size, settings.resize, max_pixels)
    feats, grid = enc.encode_images_grid(encoder_tensor(enc, pixels)[None])
    ids, maps = cap.decode_with_attention(feats, settings.beams, settings.max_tokens, grid=grid)
    ids, alphas = ids[0], maps[0].float().numpy()  # (T,), (T, N)
    alphas = alphas / alphas.sum(axis=1, keepdims=True)  # bf16 softmax rows sum to 1 ± 1e-3
    side = int(round(alphas.shape[1] ** 0.5))
    words, word_maps = _words(cap, ids, alphas)
    return AttentionCaption(
        caption=cap.detokenize(ids),
        words=words,
        maps=[m.reshape(side, -1) for m in word_maps],
        pixels=pixels,
    )


def _words(cap, ids: list[int], alphas: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Group BPE pieces into words: a piece starting with a space (or a lone ".") starts one."""
    words: list[str] = []
    groups: list[list[int]] = []
    for i, tok in enumerate(ids):
        piece = cap.tokenizer.decode([tok])
        starts = not groups or piece[:1].isspace() or piece.strip() in {".", ","}
        if starts:
            words.append(piece.strip())
            groups.append([i])
        else:
            words[-1] += piece
            groups[-1].append(i)
    words = ["".join(ch for ch in w if ch.isprintable()) or "?" for w in words]
    return words, [alphas[g].mean(axis=0) for g in groups]


def render(result: AttentionCaption, tile: int = TILE, columns: int = COLUMNS):
    """The grid of tiles as a PIL image: the input, then each word's heat map over it."""
    from PIL import Image, ImageDraw

    photo = Image.fromarray(result.pixels).convert("RGB").resize((tile, tile), Image.BICUBIC)
    tiles = [("(input)", photo)]
    for word, amap in zip(result.words, result.maps, strict=True):
        tiles.append((f"{word}  (peak {amap.max():.0%})", _overlay(photo, amap)))
    n_cols = min(columns, len(tiles))
    n_rows = -(-len(tiles) // n_cols)
    sheet = Image.new("RGB", (n_cols * tile, n_rows * (tile + LABEL)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (word, img) in enumerate(tiles):
        x, y = (i % n_cols) * tile, (i // n_cols) * (tile + LABEL)
        sheet.paste(img, (x, y))
        draw.text((x + 4, y + tile + 4), word, fill=(0, 0, 0))
    return sheet


def _overlay(photo, amap: np.ndarray):
    """photo darkened where the word did not look, with a red-yellow heat map where it did."""
    from PIL import Image

    side = photo.size[0]
    # Min-max per word: a trained model's maps are often close to uniform (the doubly stochastic
    # penalty asks every cell to be looked at), so the contrast is stretched; the label gives
    # the peak share so a stretched near-uniform map is not mistaken for a sharp one.
    lo, hi = float(amap.min()), float(amap.max())
    scaled = (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap)
    small = Image.fromarray((scaled * 255).astype(np.uint8), mode="L")
    heat = np.asarray(small.resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0
    base = np.asarray(photo, dtype=np.float32) * (0.35 + 0.65 * heat[:, :, None])
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255.0
    out = base * 0.6 + colour * 0.4 * heat[:, :, None] + base * 0.4 * (1 - heat[:, :, None])
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def save_attention(path: Path, settings: Settings, out: Path) -> AttentionCaption:
    """Caption `path`, draw its attention maps into `out` (PNG, written aside then renamed)."""
    result = attention_caption(path, settings)
    out = Path(out)
    try:
        # Like an export: a FIFO or device named as OUT is written straight.
        with atomic_file(out, special="write") as f:
            render(result).save(f, format="PNG")
    except OSError as e:
        raise UsageError(f"--attention: cannot write {out} ({e.strerror or e})") from None
    return result

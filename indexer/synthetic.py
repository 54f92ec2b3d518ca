"""A seeded world of simple scenes (coloured shapes on plain backgrounds) with template captions.

It proves the train -> caption -> index -> search chain without downloaded data: a tiny model can
learn "two red circles on a blue background." in a minute of CPU training, and the attributes say
what a correct caption must contain. The vocabulary is kept small and the colours far apart so that
even a tiny random-weight CLIP separates them.

    scenes = generate_scenes(200, seed=0)          # same seed -> same images and captions
    write_dataset("data/shapes", 200, seed=0, fmt="coco")
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SHAPES = ("circle", "square", "triangle", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
# Shape colours: saturated and far apart in RGB, so no two are confused after resizing.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
}
# Backgrounds: the neutrals, plus any shape colour the scene does not use. "gray", not "grey":
# one spelling, so a caption and a keyword search agree.
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "gray": (128, 128, 128), **COLOURS}
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}

_SUPERSAMPLE = 4  # draw at 4x and downsample: anti-aliased edges, like a photo of a shape


@dataclass(frozen=True)
class ShapeGroup:
    shape: str  # one of SHAPES
    colour: str  # one of COLOURS
    count: int  # 1-3
    # Centres as fractions of the image side, (x, y) with y down; one per instance.
    positions: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Scene:
    id: str
    image: Image.Image  # RGB, size x size
    captions: list[str]  # 3-5 captions, each ending with "." (the decoder's stop token)
    # shape, colour, count of the first (or only) group; background; groups: all ShapeGroups.
    attributes: dict = field(default_factory=dict)


def generate_scenes(n: int, seed: int, size: int = 96, max_kinds: int = 1) -> list[Scene]:
    """n scenes, deterministic for (n, seed, size, max_kinds); scene i does not depend on n.

    max_kinds=2 adds scenes with two different coloured shapes ("a red circle and two blue
    squares on a white background."); the default of one kind keeps the world easy to learn.
    """
    if size < 32:
        raise ValueError("size must be at least 32 pixels")
    return [_scene(seed, i, size, max_kinds) for i in range(n)]


def _scene(seed: int, index: int, size: int, max_kinds: int) -> Scene:
    # One RNG per scene, seeded from (seed, index): scene i is the same whatever n is.
    rng = random.Random(f"{seed}:{index}")
    kinds = rng.randint(1, max(1, min(2, max_kinds)))
    groups_spec: list[tuple[str, str, int]] = []
    used_pairs: set[tuple[str, str]] = set()
    while len(groups_spec) < kinds:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        if (shape, colour) in used_pairs:
            continue
        used_pairs.add((shape, colour))
        # Two kinds: at most 3 objects in all, so they still fit the 3x3 grid with room to spare.
        count = rng.randint(1, 3) if kinds == 1 else rng.randint(1, 2 if not groups_spec else 1)
        groups_spec.append((shape, colour, count))
    used_colours = {c for _, c, _ in groups_spec}
    background = rng.choice([b for b in BACKGROUNDS if b not in used_colours])

    # Distinct cells of a 3x3 grid; jitter (+-0.08 cell) and radius (below) keep shapes apart.
    cells = rng.sample(range(9), sum(c for _, _, c in groups_spec))
    groups: list[ShapeGroup] = []
    for shape, colour, count in groups_spec:
        positions = []
        for _ in range(count):
            cell = cells.pop()
            cx = (cell % 3 + 0.5 + rng.uniform(-0.08, 0.08)) / 3
            cy = (cell // 3 + 0.5 + rng.uniform(-0.08, 0.08)) / 3
            positions.append((round(cx, 4), round(cy, 4)))
        groups.append(ShapeGroup(shape, colour, count, tuple(positions)))

    image = _render(groups, background, size, rng)
    first = groups[0]
    attributes = {
        "shape": first.shape,
        "colour": first.colour,
        "count": first.count,
        "background": background,
        "groups": groups,
    }
    return Scene(
        id=f"shapes-{seed}-{index:06d}",
        image=image,
        captions=_captions(groups, background, rng),
        attributes=attributes,
    )


def _render(groups: list[ShapeGroup], background: str, size: int, rng: random.Random):
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    for group in groups:
        fill = COLOURS[group.colour]
        for cx, cy in group.positions:
            # Radius an eighth of the side, -15..+10 % so sizes vary: the largest diameter
            # (0.275 side) is less than the closest two centres can be (0.28 side).
            r = big / 8 * rng.uniform(0.85, 1.1)
            _draw_shape(draw, group.shape, cx * big, cy * big, r, fill)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _draw_shape(draw, shape: str, x: float, y: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif shape == "square":
        s = r * 0.9  # same visual area as the circle, roughly
        draw.rectangle([x - s, y - s, x + s, y + s], fill=fill)
    elif shape == "triangle":
        pts = [(x + r * math.cos(a), y + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6)]
        pts.append((x + r * math.cos(5 * math.pi / 6), y + r * math.sin(5 * math.pi / 6)))
        draw.polygon(pts, fill=fill)
    elif shape == "cross":
        w = r * 0.35
        draw.rectangle([x - r, y - w, x + r, y + w], fill=fill)
        draw.rectangle([x - w, y - r, x + w, y + r], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def describe(group: ShapeGroup) -> str:
    """'a red circle', 'two blue squares'."""
    noun = group.shape if group.count == 1 else PLURALS[group.shape]
    return f"{COUNT_WORDS[group.count]} {group.colour} {noun}"


def _captions(groups: list[ShapeGroup], background: str, rng: random.Random) -> list[str]:
    things = " and ".join(describe(g) for g in groups)
    be = "is" if groups[0].count == 1 else "are"  # agrees with the first noun: "there is a x and"
    templates = [
        f"{things} on a {background} background.",  # always first: the canonical caption
        f"{things} against a {background} background.",
        f"a {background} background with {things}.",
        f"there {be} {things} on a {background} background.",
        f"{things} on {background}.",
    ]
    if len(groups) == 1 and groups[0].count == 1:
        x, y = groups[0].positions[0]
        templates.append(f"{things} {_where(x, y)} of a {background} background.")
    rest = templates[1:]
    rng.shuffle(rest)
    return [templates[0], *rest[:3]]


def _where(x: float, y: float) -> str:
    col = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    if row and col:
        return f"in the {row} {col} corner"
    if row or col:
        return f"on the {row or col} side"
    return "in the middle"


def write_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    fmt: str = "coco",
    size: int = 96,
    max_kinds: int = 1,
    split: str = "train",
) -> Path:
    """Render n scenes into out_dir in one of the training formats; returns the path to train on.

    fmt: "coco" (captions.json + images/), "karpathy" (dataset.json + images/), "csv"
    (captions.csv + images/) or "folder" (PNG files with .txt sidecars).
    """
    from indexer.datasets import Example, write_examples

    out = Path(out_dir)
    image_dir = out if fmt == "folder" else out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    examples = []
    for scene in generate_scenes(n, seed=seed, size=size, max_kinds=max_kinds):
        path = image_dir / f"{scene.id}.png"
        scene.image.save(path)
        examples.append(Example(path, tuple(scene.captions), scene.id, split))
    return write_examples(examples, out, fmt)

"""A seeded world of simple scenes (coloured shapes on plain backgrounds) with template captions.

It proves the train -> caption -> index -> search chain without downloaded data: a tiny model can
learn "two red circles on a blue background." in a minute of CPU training, and the attributes say
what a correct caption must contain. The vocabulary is kept small and the colours far apart so that
even a tiny random-weight CLIP separates them.

    scenes = generate_scenes(200, seed=0)          # same seed -> same images and captions
    write_dataset("data/shapes", 200, seed=0, fmt="coco")
    easy = generate_scenes(200, seed=0, layout="centred")  # one big shape in the middle

The tiny test model's CLIP has random weights: its features separate colours but hardly shapes,
and ClipCap keeps CLIP frozen. `teach_clip` trains its image tower to see the centred world first.
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
LAYOUTS = ("grid", "centred")
WORDINGS = ("templates", "varied")
# Centred layout: the neutral backgrounds only, so every scene has the same strong contrast.
CENTRED_BACKGROUNDS = ("white", "black", "gray")

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


def generate_scenes(
    n: int,
    seed: int,
    size: int = 96,
    max_kinds: int = 1,
    layout: str = "grid",
    wording: str = "templates",
) -> list[Scene]:
    """n scenes, deterministic for (n, seed, size, max_kinds, layout); scene i does not depend on n.

    layout="grid": 1-3 shapes of an eighth of the side in cells of a 3x3 grid, on a neutral or
    coloured background. max_kinds=2 adds scenes with two different coloured shapes ("a red
    circle and two blue squares on a white background."). layout="centred": one shape a third of
    the side across, near the centre, on a neutral background ("a red circle on a white
    background.") - a world that a tiny CLIP learns to see in seconds (max_kinds is ignored).

    wording="varied" (same images): eight captions per scene drawn independently, as different
    annotators would write them (`_varied_captions`).
    """
    if size < 32:
        raise ValueError("size must be at least 32 pixels")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    if wording not in WORDINGS:
        raise ValueError(f"unknown wording {wording!r} (one of {', '.join(WORDINGS)})")
    if layout == "centred":
        scenes = [_centred_scene(seed, i, size) for i in range(n)]
    else:
        scenes = [_scene(seed, i, size, max_kinds) for i in range(n)]
    if wording == "varied":
        import dataclasses

        scenes = [
            dataclasses.replace(s, captions=_varied_captions(s, f"words:{seed}:{i}"))
            for i, s in enumerate(scenes)
        ]
    return scenes


def _centred_scene(seed: int, index: int, size: int) -> Scene:
    rng = random.Random(f"centred:{seed}:{index}")
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    background = rng.choice(CENTRED_BACKGROUNDS)
    cx, cy = (round(0.5 + rng.uniform(-0.04, 0.04), 4) for _ in range(2))
    group = ShapeGroup(shape, colour, 1, ((cx, cy),))
    # Radius 0.29-0.34 of the side: the shape spans most of the image but never a corner.
    image = _render([group], background, size, rng, radius=(0.34, 0.85, 1.0))
    return Scene(
        id=f"centred-{seed}-{index:06d}",
        image=image,
        captions=_captions([group], background, rng),
        attributes={
            "shape": shape,
            "colour": colour,
            "count": 1,
            "background": background,
            "groups": [group],
        },
    )


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


def _render(
    groups: list[ShapeGroup],
    background: str,
    size: int,
    rng: random.Random,
    radius: tuple[float, float, float] = (1 / 8, 0.85, 1.1),  # side fraction, min and max factor
):
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    for group in groups:
        fill = COLOURS[group.colour]
        for cx, cy in group.positions:
            # Grid: radius an eighth of the side, -15..+10 % so sizes vary: the largest
            # diameter (0.275 side) is less than the closest two centres can be (0.28 side).
            r = big * radius[0] * rng.uniform(radius[1], radius[2])
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


# wording="varied": how often a caption leaves the background out, and the ways it says it.
VARIED_SHORT = 0.4
VARIED_LONG = ("{t} on a {b} background.", "{t} against a {b} background.")
VARIED_CAPTIONS = 8  # per scene: enough that most scenes' own captions show the consensus


def _varied_captions(scene: Scene, key: str) -> list[str]:
    """Eight captions drawn independently: "a red circle." (40 %), or one of two wordings that
    also name the background (30 % each). The likeliest single caption leaves the background out,
    but most captions of a scene name it: the consensus caption is not the likeliest one, as on
    real data, which is where cross-entropy's greedy caption and CIDEr-D part ways (SCST's test).
    Its own RNG: the images are the templates world's."""
    rng = random.Random(key)
    things = " and ".join(describe(g) for g in scene.attributes["groups"])
    background = scene.attributes["background"]
    return [
        f"{things}." if rng.random() < VARIED_SHORT
        else rng.choice(VARIED_LONG).format(t=things, b=background)
        for _ in range(VARIED_CAPTIONS)
    ]  # fmt: skip


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
    layout: str = "grid",
    wording: str = "templates",
) -> Path:
    """Render n scenes into out_dir in one of the training formats; returns the path to train on.

    fmt: "coco" (captions.json + images/), "karpathy" (dataset.json + images/), "csv"
    (captions.csv + images/) or "folder" (PNG files with .txt sidecars).
    """
    from indexer.train.datasets import Example, write_examples

    out = Path(out_dir)
    image_dir = out if fmt == "folder" else out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    examples = []
    scenes = generate_scenes(
        n, seed=seed, size=size, max_kinds=max_kinds, layout=layout, wording=wording
    )
    for scene in scenes:
        path = image_dir / f"{scene.id}.png"
        scene.image.save(path)
        examples.append(Example(path, tuple(scene.captions), scene.id, split))
    return write_examples(examples, out, fmt)


def teach_clip(
    model_dir: str | Path,
    scenes: list[Scene],
    steps: int = 600,
    seed: int = 0,
    lr: float = 3e-3,
    batch_size: int = 64,
) -> dict[str, float]:
    """Teach a model directory's CLIP image tower to see the scenes; rewrites its CLIP weights.

    For the tiny test model, whose random CLIP cannot tell shapes apart (ClipCap keeps CLIP frozen,
    so its training cannot fix that). Supervised: linear heads on the image features - the ones
    ClipCap and search see - predict each scene's shape, colour and background (cross-entropy,
    AdamW, linear decay). Images go through the model's own eval preprocessing; the text tower
    is left alone. The weights are saved to clip/open_clip_model.safetensors, so `load_model`,
    `imgcap train` and `imgcap index` load them the normal way. Deterministic for (scenes, steps,
    seed) on a given machine and thread count. Returns the heads' accuracy on the scenes after
    training, per attribute. The tiny CLIP on 1000 centred scenes, 600 steps: ~10 s on one CPU
    thread, ~98 % shape on held-out scenes.
    """
    import torch
    from safetensors.torch import save_file

    from indexer.errors import ModelFormatError
    from indexer.models.clip import load_clip
    from indexer.models.model_dir import read_spec

    model_dir = Path(model_dir)
    clip_dir = model_dir / read_spec(model_dir)["clip"]["dir"]  # an absolute dir stays as it is
    weights = clip_dir / "open_clip_model.safetensors"
    if not weights.is_file():
        raise ModelFormatError(f"{clip_dir}: teach_clip needs open_clip_model.safetensors")
    encoder = load_clip(clip_dir, True, torch.device("cpu"), torch.float32)
    clip, visual = encoder.model, encoder.model.visual

    attributes = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}
    pixels = torch.stack([encoder.preprocess(s.image) for s in scenes])  # (N, 3, S, S)
    labels = {
        name: torch.tensor([values.index(s.attributes[name]) for s in scenes])
        for name, values in attributes.items()
    }  # name -> (N,)
    torch.manual_seed(seed)
    heads = torch.nn.ModuleDict(
        {name: torch.nn.Linear(encoder.embed_dim, len(v)) for name, v in attributes.items()}
    )
    params = [*visual.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=lr)
    # Linear decay to 0: the last steps settle the shape boundaries instead of jumping around them.
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    order = torch.Generator().manual_seed(seed)
    with torch.enable_grad():  # load_model turns grad off process-wide
        visual.train()
        for _ in range(steps):
            idx = torch.randint(len(scenes), (min(batch_size, len(scenes)),), generator=order)
            feats = visual(pixels[idx])  # (B, embed_dim): what encode_image returns
            loss = sum(
                torch.nn.functional.cross_entropy(heads[n](feats), labels[n][idx]) for n in heads
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            decay.step()
        visual.eval()
    with torch.inference_mode():
        feats = torch.cat([visual(chunk) for chunk in pixels.split(256)])
        accuracy = {
            n: (heads[n](feats).argmax(1) == labels[n]).float().mean().item() for n in heads
        }
    save_file({k: v.detach().contiguous() for k, v in clip.state_dict().items()}, str(weights))
    return accuracy

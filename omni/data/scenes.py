"""Scenes: 1–3 coloured shapes on a plain background, their captions and questions.

A :class:`Scene` is the ground truth; :func:`render` draws it at 4× the output
size and box-filters down to 224 × 224 (anti-aliasing); :func:`caption` and
:func:`questions` describe it in the world's words. Each object sits in its own
column (left / middle / right), so "the object on the left" is always defined.

    a large red circle on the left and a small blue square in the middle
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from omni.data.language import NUMBER_WORDS, SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES

IMAGE_SIZE = 224              # the ViT's input
SUPERSAMPLE = 4               # draw at 896 × 896, then average 4 × 4 blocks
MAX_OBJECTS = 3
OBJECT_COUNT_P = (0.2, 0.4, 0.4)   # P(1, 2, 3 objects)
COLUMNS = ("left", "middle", "right")
COLUMN_PHRASE = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
RGB = {"red": (220, 30, 30), "green": (30, 165, 50), "blue": (35, 75, 225), "yellow": (240, 210, 20),
       "orange": (245, 130, 20), "purple": (140, 50, 180), "pink": (245, 125, 195), "black": (25, 25, 25)}
HALF_SIZE = {"small": 17.0, "large": 32.0}      # half the object's extent, in output pixels
COLOUR_JITTER = 12                                # ± per channel, so colour names are ranges
BACKGROUND = (232, 232, 226)
BACKGROUND_JITTER = 14

assert set(RGB) == set(SCENE_COLOURS), "every scene colour needs an RGB value"
assert set(HALF_SIZE) == set(SCENE_SIZES), "every scene size needs a pixel size"


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    column: str
    x: float                  # centre, output pixels
    y: float
    half: float               # half extent, output pixels
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]   # ordered left to right
    background: tuple[int, int, int]


def sample_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    # one-object scenes have only 288 distinct captions, so they are kept rarer
    n = int(rng.choice([1, 2, 3], p=OBJECT_COUNT_P)) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"a scene holds 1..{MAX_OBJECTS} objects, asked for {n}")
    columns = sorted(rng.choice(len(COLUMNS), size=n, replace=False).tolist())
    objs = []
    width = IMAGE_SIZE / len(COLUMNS)
    for c in columns:
        shape = SCENE_SHAPES[rng.integers(len(SCENE_SHAPES))]
        colour = SCENE_COLOURS[rng.integers(len(SCENE_COLOURS))]
        size = SCENE_SIZES[rng.integers(len(SCENE_SIZES))]
        half = HALF_SIZE[size] * float(rng.uniform(0.9, 1.1))
        x = width * (c + 0.5) + float(rng.uniform(-1, 1)) * (width / 2 - half - 2)
        y = float(rng.uniform(half + 30, IMAGE_SIZE - half - 30))
        rgb = tuple(int(np.clip(v + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1), 0, 255)) for v in RGB[colour])
        objs.append(SceneObject(shape, colour, size, COLUMNS[c], x, y, half, rgb))
    bg = tuple(int(v + rng.integers(-BACKGROUND_JITTER, BACKGROUND_JITTER + 1) // 2) for v in BACKGROUND)
    return Scene(tuple(objs), bg)


def _polygon(shape: str, x: float, y: float, h: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "diamond":
        return [(x, y - h), (x + h, y), (x, y + h), (x - h, y)]
    if shape == "triangle":
        return [(x, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "star":
        pts = []
        for k in range(10):
            r = h if k % 2 == 0 else 0.42 * h
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((x + r * math.cos(a), y + r * math.sin(a)))
        return pts
    if shape == "cross":
        t = 0.36 * h
        return [(x - t, y - h), (x + t, y - h), (x + t, y - t), (x + h, y - t), (x + h, y + t), (x + t, y + t),
                (x + t, y + h), (x - t, y + h), (x - t, y + t), (x - h, y + t), (x - h, y - t), (x - t, y - t)]
    raise ValueError(f"no drawing for shape {shape!r}; known: {SCENE_SHAPES}")


def render(scene: Scene) -> Image.Image:
    """Scene → 224 × 224 RGB image, anti-aliased by 4× supersampling."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        x, y, h = o.x * s, o.y * s, o.half * s
        if o.shape == "circle":
            draw.ellipse([x - h, y - h, x + h, y + h], fill=o.rgb)
        else:
            draw.polygon(_polygon(o.shape, x, y, h), fill=o.rgb)
    return img.reduce(s)


def caption(scene: Scene) -> str:
    """'a large red circle on the left and a small blue square in the middle'"""
    parts = [f"a {o.size} {o.colour} {o.shape} {COLUMN_PHRASE[o.column]}" for o in scene.objects]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


_PHRASE_COLUMN = {phrase: column for column, phrase in COLUMN_PHRASE.items()}
_OBJECT = re.compile(r"a (\w+) (\w+) (\w+) (on the left|in the middle|on the right)")


def parse_caption(text: str) -> dict[str, tuple[str, str, str]]:
    """The inverse of :func:`caption`: column → (size, colour, shape) of the object in it.

    'a large red circle on the left and a small blue square in the middle'
    → {"left": ("large", "red", "circle"), "middle": ("small", "blue", "square")}
    """
    objects = {}
    for size, colour, shape, phrase in _OBJECT.findall(text):
        if size not in SCENE_SIZES or colour not in SCENE_COLOURS or shape not in SCENE_SHAPES:
            raise ValueError(f"caption {text!r}: {size!r} {colour!r} {shape!r} is not a scene object "
                             f"(sizes {SCENE_SIZES}, colours {SCENE_COLOURS}, shapes {SCENE_SHAPES})")
        objects[_PHRASE_COLUMN[phrase]] = (size, colour, shape)
    if not objects or caption_of(objects) != text:
        raise ValueError(f"caption {text!r} is not a scene caption ('a <size> <colour> <shape> <column>' joined "
                         f"by ', ' and ' and ', left to right)")
    return objects


def caption_of(objects: dict[str, tuple[str, str, str]]) -> str:
    """column → (size, colour, shape) back to the caption's words (left to right)."""
    parts = [f"a {size} {colour} {shape} {COLUMN_PHRASE[c]}" for c in COLUMNS if c in objects
             for size, colour, shape in [objects[c]]]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Question–answer pairs whose answers follow from the scene alone.

    One question of each kind that applies: count, colour of a shape (only if
    that shape is unique), shape in a column, size of an object, and a yes/no
    question that is true half the time.
    """
    objs = scene.objects
    qa = [("how many objects are there?", NUMBER_WORDS[len(objs)])]
    shapes = [o.shape for o in objs]
    unique = [o for o in objs if shapes.count(o.shape) == 1]
    if unique:
        o = unique[rng.integers(len(unique))]
        qa.append((f"what colour is the {o.shape}?", o.colour))
    o = objs[rng.integers(len(objs))]
    qa.append((f"what shape is {COLUMN_PHRASE[o.column]}?", o.shape))
    o = objs[rng.integers(len(objs))]
    qa.append((f"is the object {COLUMN_PHRASE[o.column]} small or large?", o.size))
    present = {(o.colour, o.shape) for o in objs}
    if rng.random() < 0.5:
        o = objs[rng.integers(len(objs))]
        qa.append((f"is there a {o.colour} {o.shape}?", "yes"))
    else:
        while True:
            pair = (SCENE_COLOURS[rng.integers(len(SCENE_COLOURS))], SCENE_SHAPES[rng.integers(len(SCENE_SHAPES))])
            if pair not in present:
                break
        qa.append((f"is there a {pair[0]} {pair[1]}?", "no"))
    return qa

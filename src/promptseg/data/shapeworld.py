"""ShapeWorld: procedurally generated scenes with exact instance masks and tagged prompts.

ShapeWorld is promptseg's synthetic test bed. Its small CLIP and SAM models are trained on
it, and segmentation quality is measured on it. Every scene comes with:

- an RGB image (default 256 x 256, ``uint8``);
- its objects, each with its shape, colour name, fill and exact *visible* mask (objects are
  drawn in order, so later ones occlude earlier ones; masks hold only pixels that remain
  visible, and no object is drawn at all unless at least ``min_visible`` of it stays visible);
- tagged text prompts (:data:`PROMPT_KINDS`), each with its target objects and a ``seen``
  flag that is ``False`` when the prompt names or targets a held-out colour-shape pair;
- a scene caption for CLIP training ("a red star, two blue circles and a wire on a noisy
  background").

Everything is deterministic: a scene depends only on ``(seed, split, domain, index)`` and the
config. Generation uses numpy and OpenCV only (no torch) and takes a few milliseconds per
256 px scene.

Domains and splits:

- ``domain="base"`` draws :data:`SHAPES` plus, in some scenes, one thin structure from
  :data:`THIN_SHAPES`; ``domain="novel"`` draws the invented shapes of :data:`NOVEL_SHAPES`
  ("a glorp", "the blue zint", "glorps") and no thin structures.
- :data:`HELD_OUT_COMBOS` (one colour per base shape) never appear in splits ``train`` and
  ``val``, neither as objects nor in any prompt; in ``test`` they appear often (a scene holds
  one with probability ``held_out_probability``, besides chance draws).

Prompt texts (the exact templates):

==============  ==================================================  =========================
kind            text                                                targets
==============  ==================================================  =========================
``single``      ``"the red star"``                                  the one object of that
                                                                    colour and shape
``multi``       ``"circles"`` (plural of a shape)                   all >= 2 of that shape
``attribute``   ``"something green"``, ``"something striped"``      all of that colour / fill
``referring``   ``"the square left of the blue circle"``            the one object of that
                (``left of``, ``right of``, ``above``, ``below``)   shape in that relation
``thin``        ``"the wire"``, ``"the line"``, ``"the grid"``      the one thin structure
``negative``    ``"the red star"`` or ``"circles"``                 none (empty mask)
==============  ==================================================  =========================

Thin structures are never targets of ``single``, ``multi`` or ``referring`` prompts, but they
are targets of ``attribute`` colour prompts. Relations compare object centres (centroids of
the visible pixels): ``"A left of B"`` holds when ``B.x - A.x >= relation_margin * size`` and
that offset is at least half the offset along the other axis; every other object of A's shape
must lie on the other side (offset <= 0), so the target is unambiguous.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from promptseg._io import atomic_write
from promptseg.errors import InputError

__all__ = [
    "BACKGROUNDS",
    "CATEGORIES",
    "COLOURS",
    "DOMAINS",
    "FILLS",
    "HELD_OUT_COMBOS",
    "NOVEL_SHAPES",
    "PLURALS",
    "PROMPT_KINDS",
    "RELATIONS",
    "SHAPES",
    "SPLITS",
    "THIN_SHAPES",
    "Scene",
    "ScenePrompt",
    "ShapeObject",
    "ShapeWorldConfig",
    "generate_scene",
    "generate_scenes",
    "mosaic",
    "object_crop",
    "relation_holds",
    "with_article",
    "write_dataset",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross", "ring")
THIN_SHAPES: tuple[str, ...] = ("line", "wire", "grid")
NOVEL_SHAPES: tuple[str, ...] = ("glorp", "zint", "florb", "quib", "drell", "mox")
"""Invented names: glorp = crescent, zint = heart, florb = arrow, quib = kite (diamond),
drell = trapezoid, mox = lightning bolt."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 220),
    "yellow": (240, 215, 30),
    "orange": (245, 130, 15),
    "purple": (135, 45, 185),
    "pink": (250, 120, 195),
    "cyan": (30, 205, 220),
}
FILLS: tuple[str, ...] = ("solid", "striped", "dotted")
PROMPT_KINDS: tuple[str, ...] = ("single", "multi", "attribute", "referring", "thin", "negative")
SPLITS: tuple[str, ...] = ("train", "val", "test")
DOMAINS: tuple[str, ...] = ("base", "novel")
BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "noise", "texture", "clutter")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("green", "circle"),
        ("yellow", "square"),
        ("purple", "triangle"),
        ("blue", "star"),
        ("orange", "hexagon"),
        ("pink", "cross"),
        ("cyan", "ring"),
    }
)

PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "hexagon": "hexagons",
    "cross": "crosses",
    "ring": "rings",
    "line": "lines",
    "wire": "wires",
    "grid": "grids",
    "glorp": "glorps",
    "zint": "zints",
    "florb": "florbs",
    "quib": "quibs",
    "drell": "drells",
    "mox": "moxes",
}

_BACKGROUND_PHRASES = {
    "flat": "a plain background",
    "gradient": "a gradient background",
    "noise": "a noisy background",
    "texture": "a textured background",
    "clutter": "a cluttered background",
}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
_CROP_BACKGROUNDS = ("context", "black", "gray", "frame")


@dataclass(frozen=True)
class ShapeWorldConfig:
    """Knobs of the scene generator (all sizes scale with ``size``).

    Attributes:
        size: scene side in pixels (square scenes), at least 64.
        min_objects: fewest objects per scene (>= 1); a placement that fails
            ``placement_tries`` times is dropped, so a crowded scene may hold fewer.
        max_objects: most objects per scene, thin structure included.
        thin_probability: chance that a base-domain scene with at least two objects makes
            one of them a thin structure (line, wire or grid); at most one per scene.
        held_out_probability: chance that a base-domain ``test`` scene holds one object with
            a held-out colour-shape pair (other objects may draw such pairs by chance too).
        repeat_probability: chance that a new object repeats the shape of an earlier one
            (so ``multi`` and ``referring`` prompts have material).
        min_size: smallest object diameter as a fraction of ``size`` (24 px at 256).
        max_size: largest object diameter as a fraction of ``size`` (80 px at 256).
        colour_jitter: per-channel uniform jitter of an object's RGB, +- this many levels.
        fill_weights: probabilities of ``solid``, ``striped``, ``dotted`` fills.
        min_visible: fraction of an object's drawn area that must stay visible.
        min_pixels: fewest visible pixels an object must keep.
        placement_tries: placements tried per object before it is dropped.
        backgrounds: background kinds drawn from, uniformly (subset of :data:`BACKGROUNDS`).
        relation_margin: least centre offset for a ``referring`` relation, fraction of size.
        max_prompts: most prompts per scene.
    """

    size: int = 256
    min_objects: int = 1
    max_objects: int = 6
    thin_probability: float = 0.3
    held_out_probability: float = 0.5
    repeat_probability: float = 0.4
    min_size: float = 24 / 256
    max_size: float = 80 / 256
    colour_jitter: int = 12
    fill_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)
    min_visible: float = 0.6
    min_pixels: int = 30
    placement_tries: int = 40
    backgrounds: tuple[str, ...] = BACKGROUNDS
    relation_margin: float = 0.08
    max_prompts: int = 8

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> InputError:
            value = getattr(self, name)
            return InputError(f"ShapeWorldConfig.{name}={value!r} is invalid; allowed: {allowed}")

        if not isinstance(self.size, (int, np.integer)) or self.size < 64:
            raise bad("size", "an integer >= 64")
        if self.min_objects < 1:
            raise bad("min_objects", "an integer >= 1")
        if self.max_objects < self.min_objects or self.max_objects > 12:
            raise bad("max_objects", f"an integer from min_objects={self.min_objects} to 12")
        for name in ("thin_probability", "held_out_probability", "repeat_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a probability in [0, 1]")
        if not 0.0 < self.min_size <= self.max_size <= 0.6:
            raise bad("min_size", "0 < min_size <= max_size <= 0.6")
        if not 0 <= self.colour_jitter <= 40:
            raise bad("colour_jitter", "an integer from 0 to 40")
        weights = np.asarray(self.fill_weights, dtype=float)
        if weights.shape != (3,) or (weights < 0).any() or weights.sum() <= 0:
            raise bad("fill_weights", "three non-negative weights for solid, striped, dotted")
        if not 0.0 <= self.min_visible <= 1.0:
            raise bad("min_visible", "a fraction in [0, 1]")
        if self.min_pixels < 1 or self.placement_tries < 1 or self.max_prompts < 1:
            raise bad("min_pixels", "min_pixels, placement_tries and max_prompts >= 1")
        if not self.backgrounds or any(b not in BACKGROUNDS for b in self.backgrounds):
            raise bad("backgrounds", f"a non-empty subset of {BACKGROUNDS}")
        if not 0.0 <= self.relation_margin < 0.5:
            raise bad("relation_margin", "a fraction in [0, 0.5)")


@dataclass
class ShapeObject:
    """One object of a scene.

    Attributes:
        shape: a name from :data:`SHAPES`, :data:`THIN_SHAPES` or :data:`NOVEL_SHAPES`.
        colour: a key of :data:`COLOURS`.
        fill: one of :data:`FILLS` (thin structures are always ``solid``).
        thin: whether the object is a thin structure.
        mask: ``(H, W)`` bool, the object's visible pixels (the full shape region, stripes
            and dots included; a ring's hole is not part of it).
        rgb: the jittered RGB the object was painted with (stripes/dots use a shade of it).
        tile: tile index in a :func:`mosaic` (0 top-left, 1 top-right, 2 bottom-left,
            3 bottom-right); -1 otherwise.
    """

    shape: str
    colour: str
    fill: str
    thin: bool
    mask: np.ndarray
    rgb: tuple[int, int, int] | None = None
    tile: int = -1

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the mask, ``x1``/``y1`` exclusive; zeros if empty."""
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        if len(xs) == 0:
            return (0, 0, 0, 0)
        return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)

    @property
    def centre(self) -> tuple[float, float]:
        """``(x, y)`` centroid of the visible pixels (pixel centres at integer coordinates)."""
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return (float("nan"), float("nan"))
        return (float(xs.mean()), float(ys.mean()))

    @property
    def combo(self) -> tuple[str, str]:
        """``(colour, shape)``."""
        return (self.colour, self.shape)


@dataclass(frozen=True)
class ScenePrompt:
    """A text prompt of a scene and the objects it refers to.

    Attributes:
        text: the prompt, e.g. ``"the red star"``.
        kind: one of :data:`PROMPT_KINDS`.
        targets: indices into ``Scene.objects``; empty for ``negative`` prompts.
        seen: ``False`` when the text names, or a target has, a held-out colour-shape pair.
    """

    text: str
    kind: str
    targets: tuple[int, ...]
    seen: bool = True


@dataclass
class Scene:
    """A generated scene: image, objects with exact visible masks, prompts and caption.

    ``background`` is one of :data:`BACKGROUNDS` (``"mosaic"`` for :func:`mosaic` output).
    """

    image: np.ndarray
    objects: list[ShapeObject]
    prompts: list[ScenePrompt]
    caption: str
    split: str
    domain: str
    seed: int
    index: int
    background: str

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool visible masks, one per object (pairwise disjoint)."""
        if not self.objects:
            return np.zeros((0, *self.size), dtype=bool)
        return np.stack([o.mask for o in self.objects])

    def target_mask(self, prompt: ScenePrompt | int) -> np.ndarray:
        """``(H, W)`` bool union of a prompt's targets (all False for a negative prompt).

        Args:
            prompt: a prompt, or an index into ``self.prompts``.
        """
        if not isinstance(prompt, ScenePrompt):
            prompt = self.prompts[int(prompt)]
        out = np.zeros(self.size, dtype=bool)
        for i in prompt.targets:
            out |= self.objects[i].mask
        return out

    def tile_of(self, object_index: int) -> int:
        """Tile of an object in a :func:`mosaic` (0..3), -1 for an ordinary scene."""
        return self.objects[object_index].tile

    def object_caption(self, i: int, rng: np.random.Generator | None = None) -> str:
        """Caption of object ``i`` for CLIP crops.

        Without ``rng``: ``"a red star"``, ``"a striped red star"`` (fill named unless solid),
        ``"a red wire"``. With ``rng`` the template varies among ``"a {d}"``, ``"the {d}"``
        and ``"{d}"``, a non-solid fill is named half the time, and a thin structure's
        colour half the time (``"a wire"``); one caption in ten names only the colour
        (``"something red"``, the attribute prompts' form), one in twenty only a non-solid
        fill (``"something striped"``) and one in eight only the shape (``"the star"``).
        """
        obj = self.objects[i]
        words = [obj.colour, obj.shape]
        if rng is None:
            if obj.fill != "solid":
                words.insert(0, obj.fill)
            return with_article(" ".join(words))
        draw = rng.random()
        if draw < 0.1:
            return f"something {obj.colour}"
        if draw < 0.15 and obj.fill != "solid":
            return f"something {obj.fill}"
        if draw < 0.275:
            words = [obj.shape]
        elif obj.thin and rng.random() < 0.5:
            words = [obj.shape]
        elif obj.fill != "solid" and rng.random() < 0.5:
            words.insert(0, obj.fill)
        desc = " ".join(words)
        template = int(rng.integers(3))
        if template == 0:
            return with_article(desc)
        if template == 1:
            return f"the {desc}"
        return desc


# --------------------------------------------------------------------------- generation


def generate_scene(
    index: int,
    seed: int = 0,
    split: str = "train",
    domain: str = "base",
    config: ShapeWorldConfig | None = None,
) -> Scene:
    """Generate scene number ``index`` of a split.

    Deterministic: ``np.random.default_rng([seed, split_number, domain_number, index])`` drives
    everything, so the same arguments always give an identical scene.

    Raises:
        InputError: unknown split or domain, negative index or seed, wrong config type.
    """
    cfg = _check_args(split, domain, config)
    if int(index) < 0 or int(seed) < 0:
        raise InputError(f"index and seed must be >= 0, received index={index}, seed={seed}")
    index, seed = int(index), int(seed)
    rng = np.random.default_rng([seed, SPLITS.index(split), DOMAINS.index(domain), index])
    size = cfg.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    background = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    image = _background(rng, size, background, xx, yy)

    specs = _sample_specs(rng, cfg, split, domain)
    placed = _place(rng, cfg, specs)
    objects: list[ShapeObject] = []
    for (shape, colour, fill, thin), full, visible in placed:
        rgb = _jitter(rng, COLOURS[colour], cfg.colour_jitter)
        _paint(rng, image, full, rgb, fill, xx, yy)
        objects.append(ShapeObject(shape, colour, fill, thin, visible, rgb))

    prompts = _make_prompts(rng, objects, cfg, split, domain)
    caption = _scene_caption(objects, background)
    return Scene(image, objects, prompts, caption, split, domain, seed, index, background)


def generate_scenes(
    n: int,
    seed: int = 0,
    split: str = "train",
    domain: str = "base",
    config: ShapeWorldConfig | None = None,
) -> Iterator[Scene]:
    """Yield scenes ``0 .. n-1`` of a split (see :func:`generate_scene`)."""
    _check_args(split, domain, config)
    _check_n(n)
    for i in range(int(n)):
        yield generate_scene(i, seed, split, domain, config)


def _check_args(split: str, domain: str, config: ShapeWorldConfig | None) -> ShapeWorldConfig:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}; allowed: {', '.join(DOMAINS)}")
    if config is None:
        return ShapeWorldConfig()
    if not isinstance(config, ShapeWorldConfig):
        raise InputError(f"config must be a ShapeWorldConfig, received {type(config).__name__}")
    return config


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be an integer >= 1, received {n!r}")


def _sample_specs(
    rng: np.random.Generator, cfg: ShapeWorldConfig, split: str, domain: str
) -> list[tuple[str, str, str, bool]]:
    """(shape, colour, fill, thin) of each object, in drawing order."""
    names = SHAPES if domain == "base" else NOVEL_SHAPES
    colours = tuple(COLOURS)
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    add_thin = domain == "base" and n >= 2 and rng.random() < cfg.thin_probability
    force_held = domain == "base" and split == "test" and rng.random() < cfg.held_out_probability
    weights = np.asarray(cfg.fill_weights, dtype=float)
    weights = weights / weights.sum()
    specs: list[tuple[str, str, str, bool]] = []
    for _ in range(n - int(add_thin)):
        if specs and rng.random() < cfg.repeat_probability:
            shape = specs[int(rng.integers(len(specs)))][0]
        else:
            shape = names[int(rng.integers(len(names)))]
        allowed = [c for c in colours if split == "test" or (c, shape) not in HELD_OUT_COMBOS]
        colour = allowed[int(rng.integers(len(allowed)))]
        fill = FILLS[int(rng.choice(3, p=weights))]
        specs.append((shape, colour, fill, False))
    if force_held:
        colour, shape = sorted(HELD_OUT_COMBOS)[int(rng.integers(len(HELD_OUT_COMBOS)))]
        k = int(rng.integers(len(specs)))
        specs[k] = (shape, colour, specs[k][2], False)
    if add_thin:
        thin = THIN_SHAPES[int(rng.integers(len(THIN_SHAPES)))]
        colour = colours[int(rng.integers(len(colours)))]
        specs.insert(int(rng.integers(len(specs) + 1)), (thin, colour, "solid", True))
    return specs


_KERNEL = np.ones((5, 5), np.uint8)


def _place(
    rng: np.random.Generator, cfg: ShapeWorldConfig, specs: list[tuple[str, str, str, bool]]
) -> list[tuple[tuple[str, str, str, bool], np.ndarray, np.ndarray]]:
    """Place objects one by one; return (spec, full mask, visible mask) of those placed."""
    placed: list[tuple[tuple[str, str, str, bool], np.ndarray, np.ndarray]] = []
    areas: list[int] = []
    for spec in specs:
        for _ in range(cfg.placement_tries):
            full = _rasterise(rng, cfg, spec[0])
            area = int(full.sum())
            if area < cfg.min_pixels:
                continue
            grown = cv2.dilate(full.view(np.uint8), _KERNEL).view(bool)
            ok = True
            for (other, _, vis), other_area in zip(placed, areas, strict=True):
                if other[1] == spec[1] and (grown & vis).any():
                    ok = False  # same colour touching: the boundary would be invisible
                    break
                left = int(np.count_nonzero(vis & ~full))
                if left < max(cfg.min_pixels, cfg.min_visible * other_area):
                    ok = False
                    break
            if not ok:
                continue
            for _, _, vis in placed:
                vis &= ~full
            placed.append((spec, full, full.copy()))
            areas.append(area)
            break
    return placed


def _rasterise(rng: np.random.Generator, cfg: ShapeWorldConfig, shape: str) -> np.ndarray:
    """Full (H, W) bool mask of one randomly sized, rotated and placed shape."""
    size = cfg.size
    canvas = np.zeros((size, size), np.uint8)
    if shape in THIN_SHAPES:
        _draw_thin(rng, canvas, shape)
        return canvas.view(bool)
    diameter = rng.uniform(cfg.min_size, cfg.max_size) * size
    r = diameter / 2
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    if shape in ("square", "cross", "zint", "quib", "drell", "mox"):
        theta = rng.uniform(-0.35, 0.35)  # stays upright enough to read as itself
    else:
        theta = rng.uniform(-np.pi, np.pi)
    if shape == "circle":
        _circle(canvas, cx, cy, r, 1)
    elif shape == "ring":
        _circle(canvas, cx, cy, r, 1)
        _circle(canvas, cx, cy, 0.55 * r, 0)
    elif shape == "glorp":  # crescent
        _circle(canvas, cx, cy, r, 1)
        off = 0.45 * r
        _circle(canvas, cx + off * np.cos(theta), cy + off * np.sin(theta), 0.8 * r, 0)
    else:
        pts = _UNIT_POLYGONS[shape]
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s], [s, c]])
        pts = pts @ rot.T * r + np.array([cx, cy])
        cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return canvas.view(bool)


def _circle(canvas: np.ndarray, cx: float, cy: float, r: float, value: int) -> None:
    centre = (int(round(cx * 16)), int(round(cy * 16)))
    cv2.circle(canvas, centre, int(round(r * 16)), value, -1, cv2.LINE_8, 4)


def _regular(n: int, start: float = -np.pi / 2, radii: Sequence[float] = (1.0,)) -> np.ndarray:
    angles = start + np.arange(n) * 2 * np.pi / n
    rad = np.resize(np.asarray(radii, dtype=float), n)
    return np.stack([rad * np.cos(angles), rad * np.sin(angles)], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.abs(pts).max()


_W = 0.32
_UNIT_POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    "triangle": _regular(3),
    "star": _regular(10, radii=(1.0, 0.45)),
    "hexagon": _regular(6, start=0.0),
    "cross": 0.95
    * np.array(
        [
            [-_W, -1],
            [_W, -1],
            [_W, -_W],
            [1, -_W],
            [1, _W],
            [_W, _W],
            [_W, 1],
            [-_W, 1],
            [-_W, _W],
            [-1, _W],
            [-1, -_W],
            [-_W, -_W],
        ]
    ),  # fmt: skip
    "zint": _heart(),
    "florb": np.array(
        [[-1, -0.22], [0.15, -0.22], [0.15, -0.6], [1, 0], [0.15, 0.6], [0.15, 0.22], [-1, 0.22]]
    ),
    "quib": np.array([[0, -1], [0.55, -0.25], [0, 1], [-0.55, -0.25]]),
    "drell": np.array([[-0.95, 0.55], [0.95, 0.55], [0.5, -0.55], [-0.5, -0.55]]),
    "mox": np.array(
        [[-0.25, -1], [0.45, -1], [0.1, -0.2], [0.5, -0.2], [-0.35, 1], [-0.05, 0.1], [-0.45, 0.1]]
    ),
}


def _draw_thin(rng: np.random.Generator, canvas: np.ndarray, shape: str) -> None:
    size = canvas.shape[0]
    thickness = int(rng.integers(2, 4))
    theta = rng.uniform(-np.pi, np.pi)
    d = np.array([np.cos(theta), np.sin(theta)])
    nrm = np.array([-d[1], d[0]])
    lo, hi = 2.0, size - 3.0
    if shape == "grid":
        side = rng.uniform(0.18, 0.32) * size
        k = int(rng.integers(3, 5))
        half = side / 2
        centre = rng.uniform(half * 1.42 + 2, size - half * 1.42 - 2, 2)
        ticks = np.linspace(-half, half, k)
        theta = rng.uniform(-0.4, 0.4)
        d = np.array([np.cos(theta), np.sin(theta)])
        nrm = np.array([-d[1], d[0]])
        segments = []
        for t in ticks:
            segments.append((centre + t * nrm - half * d, centre + t * nrm + half * d))
            segments.append((centre + t * d - half * nrm, centre + t * d + half * nrm))
        for p0, p1 in segments:
            cv2.line(canvas, _pt(p0), _pt(p1), 1, 2, cv2.LINE_8, 4)
        return
    centre = rng.uniform(0.2 * size, 0.8 * size, 2)
    length = rng.uniform(0.3, 0.7) * size
    t = np.linspace(-0.5, 0.5, 2 if shape == "line" else 48)[:, None]
    pts = centre + t * length * d
    if shape == "wire":
        amp = rng.uniform(0.05, 0.14) * size
        cycles = rng.uniform(0.6, 1.5)
        pts = pts + amp * np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi)) * nrm
    pts = np.clip(pts, lo, hi)
    cv2.polylines(canvas, [np.round(pts * 16).astype(np.int32)], False, 1, thickness, cv2.LINE_8, 4)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return (int(round(p[0] * 16)), int(round(p[1] * 16)))


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int):
    values = np.asarray(rgb) + rng.integers(-amount, amount + 1, 3)
    return tuple(int(v) for v in np.clip(values, 0, 255))


def _paint(
    rng: np.random.Generator,
    image: np.ndarray,
    full: np.ndarray,
    rgb: tuple[int, int, int],
    fill: str,
    xx: np.ndarray,
    yy: np.ndarray,
) -> None:
    """Paint an object's full region; stripes/dots use a shade of the same colour."""
    image[full] = rgb
    if fill == "solid":
        return
    colour = np.asarray(rgb, dtype=np.float32)
    luminance = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    shade = colour * 0.55 if luminance > 140 else colour + (255 - colour) * 0.5
    shade_u8 = np.clip(np.round(shade), 0, 255).astype(np.uint8)
    if fill == "striped":
        period = float(rng.integers(6, 10))
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, period)
        pattern = np.mod(u, period) < 0.4 * period
    else:  # dotted
        spacing = float(rng.integers(6, 9))
        ox, oy = rng.uniform(0, spacing, 2)
        u = np.mod(xx + ox, spacing) - spacing / 2
        v = np.mod(yy + oy, spacing) - spacing / 2
        pattern = u * u + v * v <= 2.3
    image[full & pattern] = shade_u8


def _background(
    rng: np.random.Generator, size: int, kind: str, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
    """Low-saturation (H, W, 3) uint8 background of the given kind."""

    def base() -> np.ndarray:
        return rng.uniform(45, 200) + rng.uniform(-10, 10, 3)

    if kind in ("gradient", "clutter"):
        a, b = base(), base()
        angle = rng.uniform(-np.pi, np.pi)
        t = (xx * np.cos(angle) + yy * np.sin(angle)) / size
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = a + t[..., None] * (b - a)
    else:
        img = np.broadcast_to(base(), (size, size, 3)).astype(np.float32)
    if kind == "noise":
        cells = int(rng.integers(4, 12))
        low = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        low = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        fine = rng.normal(0, 1, (size, size)).astype(np.float32)
        img = img + (rng.uniform(8, 16) * low + rng.uniform(3, 8) * fine)[..., None]
    elif kind == "texture":
        amp = rng.uniform(7, 15)
        if rng.random() < 0.5:
            period = rng.uniform(8, 24)
            angle = rng.uniform(0, np.pi)
            u = xx * np.cos(angle) + yy * np.sin(angle)
            pattern = np.sign(np.sin(2 * np.pi * u / period))
        else:
            cell = int(rng.integers(8, 24))
            pattern = ((xx // cell + yy // cell) % 2) * 2 - 1
        img = img + (amp * pattern)[..., None]
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if kind == "clutter":
        out = np.ascontiguousarray(out)
        for _ in range(int(rng.integers(25, 80))):
            grey = float(np.clip(rng.uniform(20, 235), 0, 255))
            colour = tuple(int(v) for v in np.clip(grey + rng.uniform(-8, 8, 3), 0, 255))
            x, y = (int(v) for v in rng.integers(0, size, 2))
            if rng.random() < 0.5:
                cv2.circle(out, (x, y), int(rng.integers(1, 3)), colour, -1, cv2.LINE_8)
            else:
                dx, dy = (int(v) for v in rng.integers(-4, 5, 2))
                cv2.line(out, (x, y), (x + dx, y + dy), colour, 1, cv2.LINE_8)
    return out


# --------------------------------------------------------------------------- prompts


def with_article(words: str) -> str:
    """``"a red star"``, ``"an orange ring"``: the indefinite article for ``words``."""
    return ("an " if words[0] in "aeiou" else "a ") + words


def _seen(objects: Sequence[ShapeObject], targets: Sequence[int], named=()) -> bool:
    combos = [objects[i].combo for i in targets] + list(named)
    return not any(c in HELD_OUT_COMBOS for c in combos)


def _relation_offset(rel: str, target: tuple[float, float], anchor: tuple[float, float]):
    """(offset along the relation's axis, absolute offset along the other axis)."""
    dx, dy = target[0] - anchor[0], target[1] - anchor[1]
    if rel == "left of":
        return -dx, abs(dy)
    if rel == "right of":
        return dx, abs(dy)
    if rel == "above":
        return -dy, abs(dx)
    return dy, abs(dx)


def relation_holds(
    rel: str, target: tuple[float, float], anchor: tuple[float, float], margin: float
) -> bool:
    """Whether ``target`` (x, y) is clearly ``rel`` (:data:`RELATIONS`) of ``anchor``."""
    along, across = _relation_offset(rel, target, anchor)
    return along >= margin and along >= 0.5 * across


def _make_prompts(
    rng: np.random.Generator,
    objects: list[ShapeObject],
    cfg: ShapeWorldConfig,
    split: str,
    domain: str,
) -> list[ScenePrompt]:
    cands: dict[str, list[ScenePrompt]] = {k: [] for k in PROMPT_KINDS}
    combos = Counter(o.combo for o in objects)
    regular = [i for i, o in enumerate(objects) if not o.thin]
    centres = [o.centre for o in objects]
    shape_counts = Counter(objects[i].shape for i in regular)

    def add(kind: str, text: str, targets: Sequence[int], named=()) -> None:
        seen = _seen(objects, targets, named)
        cands[kind].append(ScenePrompt(text, kind, tuple(targets), seen))

    unique = [i for i in regular if combos[objects[i].combo] == 1]
    for i in unique:
        add("single", f"the {objects[i].colour} {objects[i].shape}", (i,))
    for shape, count in shape_counts.items():
        if count >= 2:
            add("multi", PLURALS[shape], [i for i in regular if objects[i].shape == shape])
    for colour in COLOURS:
        targets = [i for i, o in enumerate(objects) if o.colour == colour]
        if targets:
            add("attribute", f"something {colour}", targets)
    for fill in FILLS[1:]:
        targets = [i for i, o in enumerate(objects) if o.fill == fill]
        if targets:
            add("attribute", f"something {fill}", targets)
    for thin in THIN_SHAPES:
        targets = [i for i, o in enumerate(objects) if o.shape == thin]
        if len(targets) == 1:
            add("thin", f"the {thin}", targets)

    margin = cfg.relation_margin * cfg.size
    hard: list[ScenePrompt] = []
    for a in unique:
        anchor = objects[a]
        for rel in RELATIONS:
            for shape in shape_counts:
                same = [i for i in regular if i != a and objects[i].shape == shape]
                hits = [i for i in same if relation_holds(rel, centres[i], centres[a], margin)]
                if len(hits) != 1:
                    continue
                others = [i for i in same if i != hits[0]]
                if any(_relation_offset(rel, centres[i], centres[a])[0] > 0 for i in others):
                    continue
                text = f"the {shape} {rel} the {anchor.colour} {anchor.shape}"
                add("referring", text, hits, named=[anchor.combo])
                if others:
                    hard.append(cands["referring"][-1])
    if hard:  # prefer relations that pick one of several same-shaped objects
        cands["referring"] = hard

    names = SHAPES if domain == "base" else NOVEL_SHAPES
    for colour in COLOURS:
        for shape in names:
            held = (colour, shape) in HELD_OUT_COMBOS
            if (colour, shape) not in combos and (split == "test" or not held):
                add("negative", f"the {colour} {shape}", (), named=[(colour, shape)])
    for shape in names:
        if shape_counts[shape] == 0:
            add("negative", PLURALS[shape], ())

    chosen: list[ScenePrompt] = []
    for kind in PROMPT_KINDS:
        pool = cands[kind]
        if not pool:
            continue
        if split == "test" and kind != "negative":
            unseen = [p for p in pool if not p.seen]
            pool = unseen or pool
        chosen.append(pool[int(rng.integers(len(pool)))])
    texts = {p.text for p in chosen}
    rest = [p for kind in PROMPT_KINDS[:-1] for p in cands[kind] if p.text not in texts]
    negatives = [p for p in cands["negative"] if p.text not in texts]
    if negatives:
        rest.append(negatives[int(rng.integers(len(negatives)))])
    room = max(cfg.max_prompts - len(chosen), 0)
    if rest and room:
        picks = rng.choice(len(rest), size=min(room, len(rest)), replace=False)
        chosen.extend(rest[int(k)] for k in sorted(picks))
    chosen = chosen[: cfg.max_prompts]
    order = {k: n for n, k in enumerate(PROMPT_KINDS)}
    return sorted(chosen, key=lambda p: order[p.kind])


def _scene_caption(objects: Sequence[ShapeObject], background: str) -> str:
    groups: Counter[str] = Counter()
    for o in objects:
        if o.thin:
            key = o.shape
        else:
            key = " ".join(([o.fill] if o.fill != "solid" else []) + [o.colour, o.shape])
        groups[key] += 1
    parts = []
    for key, count in groups.items():
        if count == 1:
            parts.append(with_article(key))
        else:
            *adjectives, shape = key.split(" ")
            parts.append(" ".join([_NUMBERS.get(count, str(count)), *adjectives, PLURALS[shape]]))
    if not parts:
        things = "nothing"
    elif len(parts) == 1:
        things = parts[0]
    else:
        things = ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{things} on {_BACKGROUND_PHRASES.get(background, 'a background')}"


# --------------------------------------------------------------------------- mosaic, crops


def mosaic(scenes: Sequence[Scene]) -> Scene:
    """Tile 4 equal-size scenes 2 x 2 (the SLIP paper's protocol).

    Tiles are 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; objects keep tile order
    and carry their ``tile``. Prompts: one ``single`` prompt ("the red star") per non-thin
    object whose colour-shape pair is unique in the whole mosaic. The caption joins the
    tiles' captions with ``"; "``. ``split``/``domain`` are the tiles' (``"mixed"`` if they
    differ); ``seed``/``index`` are the first tile's; ``background`` is ``"mosaic"``.

    Raises:
        InputError: not exactly 4 scenes, or scenes of different sizes.
    """
    scenes = list(scenes)
    if len(scenes) != 4:
        raise InputError(f"mosaic needs exactly 4 scenes, received {len(scenes)}")
    h, w = scenes[0].size
    if any(s.size != (h, w) for s in scenes):
        raise InputError(f"mosaic needs equal-size scenes, received {[s.size for s in scenes]}")
    image = np.zeros((2 * h, 2 * w, 3), dtype=np.uint8)
    objects: list[ShapeObject] = []
    for t, scene in enumerate(scenes):
        y0, x0 = (t // 2) * h, (t % 2) * w
        image[y0 : y0 + h, x0 : x0 + w] = scene.image
        for obj in scene.objects:
            mask = np.zeros((2 * h, 2 * w), dtype=bool)
            mask[y0 : y0 + h, x0 : x0 + w] = obj.mask
            objects.append(dataclasses.replace(obj, mask=mask, tile=t))
    combos = Counter(o.combo for o in objects)
    prompts = [
        ScenePrompt(f"the {o.colour} {o.shape}", "single", (i,), _seen(objects, (i,)))
        for i, o in enumerate(objects)
        if not o.thin and combos[o.combo] == 1
    ]

    def common(values: list[str]) -> str:
        return values[0] if len(set(values)) == 1 else "mixed"

    return Scene(
        image=image,
        objects=objects,
        prompts=prompts,
        caption="; ".join(s.caption for s in scenes),
        split=common([s.split for s in scenes]),
        domain=common([s.domain for s in scenes]),
        seed=scenes[0].seed,
        index=scenes[0].index,
        background="mosaic",
    )


def object_crop(
    scene: Scene, i: int, background: str = "context", margin: float = 0.15
) -> np.ndarray:
    """``(h, w, 3)`` uint8 crop around object ``i``'s box, widened by ``margin`` of its size.

    Args:
        scene: the scene.
        i: object index.
        background: ``"context"`` keeps the scene around the object; ``"black"`` / ``"gray"``
            paint everything outside the object's visible mask 0 / 128; ``"frame"`` is the
            whole scene, black outside the mask (no crop: what CLIP sees with SLIP's
            default visual prompt, [SLIP] Fig. 2).
        margin: fraction of the box width (height) added on the left and right (top and
            bottom), at least 2 px, clipped to the image.
    """
    if background not in _CROP_BACKGROUNDS:
        raise InputError(
            f"unknown crop background {background!r}; allowed: {', '.join(_CROP_BACKGROUNDS)}"
        )
    if not 0 <= int(i) < len(scene.objects):
        raise InputError(f"object index {i} out of range for {len(scene.objects)} objects")
    if margin < 0:
        raise InputError(f"margin must be >= 0, received {margin}")
    obj = scene.objects[int(i)]
    if background == "frame":
        frame = scene.image.copy()
        frame[~obj.mask] = 0
        return frame
    x0, y0, x1, y1 = obj.box
    h, w = scene.size
    mx = max(2, int(round(margin * (x1 - x0))))
    my = max(2, int(round(margin * (y1 - y0))))
    x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    crop = scene.image[y0:y1, x0:x1].copy()
    if background != "context":
        crop[~obj.mask[y0:y1, x0:x1]] = 0 if background == "black" else 128
    return crop


# --------------------------------------------------------------------------- export


CATEGORIES: tuple[str, ...] = SHAPES + THIN_SHAPES + NOVEL_SHAPES
"""COCO categories of every exported file, ``id = position + 1`` (stable across domains)."""


def write_dataset(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    split: str = "train",
    domain: str = "base",
    config: ShapeWorldConfig | None = None,
    crops: bool = True,
    progress: bool = True,
    scene_captions: bool = True,
) -> dict[str, Path]:
    """Write scenes ``0 .. n-1`` of a split as COCO instances, phrases and CLIP captions.

    Files (``tag`` is the split, or ``"novel_" + split`` for the novel domain, so splits and
    domains can share one folder):

    - ``images/{tag}_{index:06d}.png``;
    - ``instances_{tag}.json``: COCO instances; image ids are ``index + 1``; categories are
      :data:`CATEGORIES` (``supercategory`` ``"thin"`` or ``"shape"``); annotations carry
      compressed RLE, ``area``, ``bbox`` [x, y, w, h], ``iscrowd`` 0 and
      ``"attributes": {"colour", "fill"}``;
    - ``phrases_{tag}.json``: one entry per prompt: ``image_id``, ``file_name``, ``phrase``,
      ``kind``, ``seen``, ``ann_ids`` (COCO annotation ids of the targets);
    - ``captions_{tag}.csv``: header ``image,caption``; a row per scene caption (unless
      ``scene_captions`` is off) and, with ``crops``, a row per object crop
      ``crops/{tag}_{index:06d}_{i}.png`` (crop background drawn among
      context/black/gray/frame, caption from :meth:`Scene.object_caption` with an rng). A CLIP
      for ``slip`` learns from the crops alone: they are the views ``slip`` shows it.

    Every file is written atomically. Returns ``{"images", "instances", "phrases",
    "captions"}`` paths.

    Raises:
        InputError: bad split, domain, n or config.
    """
    from PIL import Image

    from promptseg.convert.coco import rle_encode

    cfg = _check_args(split, domain, config)
    _check_n(n)
    out = Path(out)
    tag = split if domain == "base" else f"{domain}_{split}"
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    if crops:
        (out / "crops").mkdir(parents=True, exist_ok=True)

    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    phrases: list[dict[str, Any]] = []
    rows: list[tuple[str, str]] = []
    category_id = {name: k + 1 for k, name in enumerate(CATEGORIES)}

    bar = _progress(progress, int(n), f"ShapeWorld {tag}")
    try:
        for scene in generate_scenes(n, seed, split, domain, cfg):
            image_id = scene.index + 1
            file_name = f"images/{tag}_{scene.index:06d}.png"
            with atomic_write(out / file_name) as tmp:
                Image.fromarray(scene.image).save(tmp)
            h, w = scene.size
            coco_images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
            rles = rle_encode(scene.masks)
            ann_ids = []
            for obj, rle in zip(scene.objects, rles, strict=True):
                x0, y0, x1, y1 = obj.box
                ann_ids.append(len(annotations) + 1)
                annotations.append(
                    {
                        "id": ann_ids[-1],
                        "image_id": image_id,
                        "category_id": category_id[obj.shape],
                        "segmentation": rle,
                        "area": int(obj.mask.sum()),
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "iscrowd": 0,
                        "attributes": {"colour": obj.colour, "fill": obj.fill},
                    }
                )
            for p in scene.prompts:
                phrases.append(
                    {
                        "image_id": image_id,
                        "file_name": file_name,
                        "phrase": p.text,
                        "kind": p.kind,
                        "seen": p.seen,
                        "ann_ids": [ann_ids[t] for t in p.targets],
                    }
                )
            if scene_captions:
                rows.append((file_name, scene.caption))
            if crops:
                crop_rng = np.random.default_rng(
                    [scene.seed, SPLITS.index(split), DOMAINS.index(domain), scene.index, 1]
                )
                for i in range(len(scene.objects)):
                    kind = _CROP_BACKGROUNDS[int(crop_rng.integers(len(_CROP_BACKGROUNDS)))]
                    crop_name = f"crops/{tag}_{scene.index:06d}_{i}.png"
                    with atomic_write(out / crop_name) as tmp:
                        Image.fromarray(object_crop(scene, i, kind)).save(tmp)
                    rows.append((crop_name, scene.object_caption(i, crop_rng)))
            if bar is not None:
                bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()

    coco = {
        "info": {"description": f"ShapeWorld {domain} {split}", "seed": int(seed)},
        "images": coco_images,
        "categories": [
            {
                "id": category_id[name],
                "name": name,
                "supercategory": "thin" if name in THIN_SHAPES else "shape",
            }
            for name in CATEGORIES
        ],
        "annotations": annotations,
    }
    paths = {
        "images": images_dir,
        "instances": out / f"instances_{tag}.json",
        "phrases": out / f"phrases_{tag}.json",
        "captions": out / f"captions_{tag}.csv",
    }
    with atomic_write(paths["instances"]) as tmp:
        tmp.write_text(json.dumps(coco), encoding="utf-8")
    with atomic_write(paths["phrases"]) as tmp:
        tmp.write_text(json.dumps(phrases), encoding="utf-8")
    with atomic_write(paths["captions"]) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image", "caption"])
            writer.writerows(rows)
    return paths


def _progress(enabled: bool, total: int, label: str):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    bar.start()
    return bar, task

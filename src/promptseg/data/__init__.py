"""Training and test data made by promptseg itself.

:mod:`promptseg.data.shapeworld` generates ShapeWorld, synthetic scenes with exact instance
masks, tagged text prompts and captions (numpy and OpenCV only, no torch).
"""

from __future__ import annotations

from promptseg.data.shapeworld import (
    COLOURS,
    DOMAINS,
    FILLS,
    HELD_OUT_COMBOS,
    NOVEL_SHAPES,
    PROMPT_KINDS,
    SHAPES,
    SPLITS,
    THIN_SHAPES,
    Scene,
    ScenePrompt,
    ShapeObject,
    ShapeWorldConfig,
    generate_scene,
    generate_scenes,
    mosaic,
    object_crop,
    write_dataset,
)

__all__ = [
    "COLOURS",
    "DOMAINS",
    "FILLS",
    "HELD_OUT_COMBOS",
    "NOVEL_SHAPES",
    "PROMPT_KINDS",
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
    "write_dataset",
]

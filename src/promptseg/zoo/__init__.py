"""promptseg's own small models, trained on ShapeWorld and shipped inside the package.

They make the whole toolkit work with no network: ``promptseg demo``, the README examples,
the behaviour tests and the quality benchmark load them by id through the registry like any
other model. ``scripts/build_shapeworld_zoo.py`` rebuilds them with promptseg's own training
commands; ``shapeworld/build_info.json`` records the commands, the training time and the
validation figures.

=====================  ======================================================
id                     what
=====================  ======================================================
``shapeworld/clip``    a 3 M-parameter CLIP (transformers format) for ShapeWorld
``shapeworld/sam``     a small SAM (transformers format) for ShapeWorld
=====================  ======================================================
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZOO_MODELS", "zoo_folder"]

ZOO_ROOT = Path(__file__).resolve().parent

ZOO_MODELS: dict[str, Path] = {
    "shapeworld/clip": ZOO_ROOT / "shapeworld" / "clip",
    "shapeworld/sam": ZOO_ROOT / "shapeworld" / "sam",
}


def zoo_folder(model_id: str) -> Path | None:
    """The packaged folder of a zoo id, or ``None`` when ``model_id`` is not a zoo id."""
    return ZOO_MODELS.get(str(model_id).strip())

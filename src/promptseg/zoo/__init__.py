"""promptseg's own small models, trained on ShapeWorld and shipped inside the package.

They make the whole toolkit work with no network: ``promptseg demo``, the README examples,
the behaviour tests and the quality benchmark load them by id through the registry like any
other model. ``scripts/build_shapeworld_zoo.py`` rebuilds them with promptseg's own training
commands; ``shapeworld/build_info.json`` records the commands, the training time and the
validation figures.

=====================  ======================================================
id                     what
=====================  ======================================================
``shapeworld/clip``    a 1.9 M-parameter CLIP (transformers format, 64 px ViT)
``shapeworld/sam``     a 1.9 M-parameter SAM (transformers format, 256 px ViT)
=====================  ======================================================
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHAPEWORLD_SLIP_SETTINGS", "ZOO_MODELS", "zoo_folder", "zoo_settings"]

ZOO_ROOT = Path(__file__).resolve().parent

ZOO_MODELS: dict[str, Path] = {
    "shapeworld/clip": ZOO_ROOT / "shapeworld" / "clip",
    "shapeworld/sam": ZOO_ROOT / "shapeworld" / "sam",
}


def zoo_folder(model_id: str) -> Path | None:
    """The packaged folder of a zoo id, or ``None`` when ``model_id`` is not a zoo id."""
    return ZOO_MODELS.get(str(model_id).strip())


# slip settings for the ShapeWorld zoo, chosen on 20 val scenes with
# `python benchmarks/quality_shapeworld.py --calibrate --n 20` (README, "Quality on
# ShapeWorld"). SAM's default filters (pred_iou_thresh 0.88, stability 0.95) are calibrated
# for SAM ViT-H on SA-1B; a 1.9 M-parameter SAM trained for minutes predicts lower IoUs for its good
# masks, so those defaults would drop everything. The CLIP threshold turns prompts that name
# nothing in the scene into empty answers.
SHAPEWORLD_SLIP_SETTINGS: dict[str, float] = {
    "pred_iou_thresh": 0.6,
    "stability_score_thresh": 0.85,
    "threshold": 0.35,
}


def zoo_settings(method: str, clip: str | None, sam: str | None) -> dict[str, float]:
    """Pipeline settings that suit the zoo models, when ``method`` runs on both of them."""
    if method == "slip" and clip in ZOO_MODELS and sam in ZOO_MODELS:
        return dict(SHAPEWORLD_SLIP_SETTINGS)
    return {}

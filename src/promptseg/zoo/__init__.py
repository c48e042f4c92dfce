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

__all__ = ["SHAPEWORLD_SLIP_SETTINGS", "ZOO_MODELS", "zoo_folder"]

ZOO_ROOT = Path(__file__).resolve().parent

ZOO_MODELS: dict[str, Path] = {
    "shapeworld/clip": ZOO_ROOT / "shapeworld" / "clip",
    "shapeworld/sam": ZOO_ROOT / "shapeworld" / "sam",
}


def zoo_folder(model_id: str) -> Path | None:
    """The packaged folder of a zoo id, or ``None`` when ``model_id`` is not a zoo id."""
    return ZOO_MODELS.get(str(model_id).strip())


def _zoo_slip_settings() -> dict[str, float]:
    from promptseg.models.settings import recommended_settings

    folders = [(mid, ZOO_MODELS[mid]) for mid in ("shapeworld/sam", "shapeworld/clip")]
    valid = {"pred_iou_thresh", "stability_score_thresh", "threshold"}
    return recommended_settings(folders, "slip", valid)[0]


#: The slip settings the zoo folders recommend (their ``promptseg_settings.json``), which every
#: pipeline applies by itself when it runs on the zoo models: ``pred_iou_thresh=0.6``,
#: ``stability_score_thresh=0.85`` (SAM's own filters, 0.88 and 0.95, suit SAM ViT-H and drop
#: nearly every mask of a 1.9 M-parameter SAM) and ``threshold=0.35`` (a CLIP cosine below which
#: a prompt gets no mask). Chosen on 20 val scenes with
#: ``python benchmarks/quality_shapeworld.py --calibrate --n 20``.
SHAPEWORLD_SLIP_SETTINGS: dict[str, float] = _zoo_slip_settings()

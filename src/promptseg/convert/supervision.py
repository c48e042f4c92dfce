"""Convert between :class:`~promptseg.result.Segmentation` and ``supervision.Detections``.

supervision (Roboflow, https://github.com/roboflow/supervision) is an optional dependency:
``pip install 'promptseg[supervision]'``. Mapping: ``xyxy = boxes``, ``mask = masks``,
``confidence = scores``, ``class_id = query_index``, ``data["class_name"]`` = the prompt of
each instance, and every extra copied into ``data`` under its own name (nothing dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from promptseg.errors import InputError, require
from promptseg.result import Segmentation

__all__ = ["from_supervision", "to_supervision"]


def to_supervision(seg: Segmentation) -> Any:
    """A ``supervision.Detections`` holding the same instances.

    Returns:
        ``Detections(xyxy (N, 4) float32, mask (N, H, W) bool, confidence (N,) float32,
        class_id (N,) int64, data={"class_name": (N,) str, **extras})``.

    Raises:
        MissingDependencyError: supervision is not installed.
        InputError: an extra is called ``"class_name"``.
    """
    sv = require("supervision", "supervision")
    if "class_name" in seg.extras:
        raise InputError(
            "to_supervision: extras['class_name'] would overwrite the prompt names; rename it"
        )
    names = np.array([seg.prompts[q] for q in seg.query_index], dtype=str)
    if names.size == 0:
        names = np.zeros(0, dtype=str)
    data = {"class_name": names}
    data.update({k: v.copy() for k, v in seg.extras.items()})
    return sv.Detections(
        xyxy=seg.boxes.copy(),
        mask=seg.masks.copy(),
        confidence=seg.scores.copy(),
        class_id=seg.query_index.copy(),
        data=data,
    )


def from_supervision(detections: Any, prompts: Sequence[str]) -> Segmentation:
    """Build a :class:`~promptseg.result.Segmentation` from ``supervision.Detections``.

    Args:
        detections: Detections with ``mask`` set (``(N, H, W)`` bool).
        prompts: the prompts; ``class_id`` indexes them. Without ``class_id``, the
            ``data["class_name"]`` of each detection is looked up in ``prompts``.

    ``confidence`` defaults to 1.0 when missing; ``data`` entries other than ``class_name``
    with first axis ``N`` become extras.

    Raises:
        InputError: no masks, or neither ``class_id`` nor known ``class_name``.
    """
    prompts = tuple(prompts) if not isinstance(prompts, str) else prompts
    masks = getattr(detections, "mask", None)
    if masks is None:
        raise InputError(
            "from_supervision: the Detections has no masks (mask=None); a Segmentation needs "
            "them: run a segmenter (e.g. SAM) on the boxes first"
        )
    n = len(detections.xyxy)
    data = dict(getattr(detections, "data", {}) or {})
    if detections.class_id is not None:
        query_index = np.asarray(detections.class_id)
    elif "class_name" in data:
        lookup = {p: q for q, p in enumerate(prompts)}
        names = [str(c) for c in data["class_name"]]
        unknown = sorted(set(names) - set(lookup))
        if unknown:
            raise InputError(f"from_supervision: class names {unknown} are not in {prompts}")
        query_index = np.array([lookup[c] for c in names], dtype=np.int64)
    else:
        raise InputError(
            "from_supervision: the Detections has neither class_id nor data['class_name']; "
            "set class_id to the prompt index of each detection"
        )
    confidence = detections.confidence
    scores = np.ones(n, dtype=np.float32) if confidence is None else confidence
    extras = {
        k: np.asarray(v)
        for k, v in data.items()
        if k != "class_name" and np.ndim(v) >= 1 and len(v) == n
    }
    return Segmentation(
        masks=masks,
        scores=scores,
        boxes=detections.xyxy,
        query_index=query_index,
        prompts=prompts,
        extras=extras,
    )

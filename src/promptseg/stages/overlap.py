"""Overlap filter for "segment everything" proposals (SLIP's post-processing annotation filter).

SLIP: SAM+CLIP (Sec. "Model Architecture"; ``papers/slip-sam-clip.txt``) post-processes SAM's
automatic masks with "filters which separate out the intersecting segments without losing any
relevant information", which also cuts the number of segments CLIP must score. The paper gives
no algorithm, so this module implements one with that property, stated exactly:

Proposals are visited in decreasing quality (SAM's predicted IoU times stability score). Each one
is compared with every proposal already kept whose box it touches; the relation (duplicate,
nested, partial) is judged on the two proposals as SAM produced them:

1. **Duplicate** (IoU >= ``duplicate_iou``): it is merged into the kept proposal (pixel union)
   and dropped. SAM returns the same object several times from neighbouring grid points.
2. **Nested** (intersection >= ``containment`` of the smaller mask): both are kept unchanged.
   A part and its whole (a wheel and the car) are different, legitimate answers to different
   prompts, so neither is cut.
3. **Partial overlap** (any other non-empty intersection): the shared pixels stay with the
   better proposal and are removed from this one, so the two become disjoint.

A proposal that lost pixels to partial overlaps is compared once more, as what is left of
it, with the proposals kept before it: a remnant that is now a duplicate of one of them
(IoU >= ``duplicate_iou``) is merged into it as in 1. (A mask of several objects is "nested"
around each object it holds whole and "partial" with the rest; once the rest is cut away, it
would otherwise stay as a second copy of that object.) A proposal left with no pixels is
dropped. With ``min_area = 0`` the union of all masks is unchanged (no pixel is lost):
merged duplicates add their pixels to the keeper, and shared pixels of partial overlaps stay
in the keeper. ``min_area > 0`` also drops proposals left
smaller than that (their pixels may then be lost; off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promptseg.errors import ConfigError, InputError
from promptseg.result import masks_to_boxes

__all__ = ["OverlapFilterConfig", "FilteredMasks", "separate_overlaps", "box_intersection",
           "shared_pixels"]


@dataclass(frozen=True)
class OverlapFilterConfig:
    """Parameters of :func:`separate_overlaps`."""

    duplicate_iou: float = 0.9  # ours: SLIP gives no value; 0.9 merges only near-identical masks
    containment: float = 0.9  # ours: share of the smaller mask inside the other = "nested"
    min_area: int = 0  # ours: 0 keeps the no-pixel-lost guarantee of [SLIP] Sec. Model Arch.

    def __post_init__(self):
        if not 0.0 < self.duplicate_iou <= 1.0:
            raise ConfigError(f"duplicate_iou must be in (0, 1], got {self.duplicate_iou}")
        if not 0.0 < self.containment <= 1.0:
            raise ConfigError(f"containment must be in (0, 1], got {self.containment}")
        if self.min_area < 0:
            raise ConfigError(f"min_area must be >= 0, got {self.min_area}")


@dataclass(frozen=True)
class FilteredMasks:
    """Output of :func:`separate_overlaps`.

    Attributes:
        masks: ``(M, H, W) bool``, the kept proposals after merging/separation.
        index: ``(M,) int64``, index of each kept mask in the input proposals.
        changed: ``(M,) bool``, True where the mask differs from its input proposal.
    """

    masks: np.ndarray
    index: np.ndarray
    changed: np.ndarray


def separate_overlaps(
    masks: np.ndarray,
    quality: np.ndarray | None = None,
    config: OverlapFilterConfig | None = None,
) -> FilteredMasks:
    """Merge duplicates and make partially overlapping proposals disjoint (see module doc).

    Args:
        masks: ``(N, H, W) bool`` proposals.
        quality: ``(N,)`` float, higher is better (e.g. predicted IoU x stability); ties keep
            the input order. ``None`` keeps the input order.
        config: thresholds; defaults to :class:`OverlapFilterConfig`.

    Returns:
        :class:`FilteredMasks`, kept in decreasing quality.
    """
    config = config or OverlapFilterConfig()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InputError(f"masks must be (N, H, W), got shape {masks.shape}")
    n = masks.shape[0]
    if quality is None:
        quality = -np.arange(n, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    if quality.shape != (n,):
        raise InputError(f"quality must have shape ({n},), got {quality.shape}")

    order = np.argsort(-quality, kind="stable")
    original = masks.astype(bool, copy=False)
    work = original.copy()
    orig_boxes = masks_to_boxes(original).astype(np.int64)
    orig_areas = original.reshape(n, -1).sum(axis=1)
    boxes = orig_boxes.copy()
    areas = orig_areas.copy()
    kept: list[int] = []
    changed = np.zeros(n, dtype=bool)

    for i in order:
        if areas[i] == 0:
            continue
        merged = False
        for k in kept:
            # the relation is decided on the proposals as SAM made them, not on what is left
            # of them, so a remnant of a partial overlap is never mistaken for a nested part
            inter = shared_pixels(original[i], original[k], orig_boxes[i], orig_boxes[k])
            if inter == 0:
                continue
            if inter / (orig_areas[i] + orig_areas[k] - inter) >= config.duplicate_iou:
                # 1. duplicate: the keeper takes the union, this one goes
                _merge(work, areas, boxes, changed, keeper=k, dropped=i)
                merged = True
                break
            if inter / min(orig_areas[i], orig_areas[k]) >= config.containment:
                continue  # 2. nested: part and whole are both answers
            # 3. partial overlap: shared pixels stay with the better proposal
            window = box_intersection(boxes[i], boxes[k])
            if window is None:
                continue
            x0, y0, x1, y1 = window
            shared = work[i, y0:y1, x0:x1] & work[k, y0:y1, x0:x1]
            lost = int(shared.sum())
            if lost == 0:
                continue
            work[i, y0:y1, x0:x1] &= ~shared
            areas[i] -= lost
            changed[i] = True
            if areas[i] == 0:
                break
            boxes[i] = masks_to_boxes(work[i][None])[0]
        if not merged and changed[i] and areas[i] > 0:
            # 4. a remnant that became a duplicate of a kept proposal is merged into it
            for k in kept:
                inter = shared_pixels(work[i], work[k], boxes[i], boxes[k])
                if inter and inter / (areas[i] + areas[k] - inter) >= config.duplicate_iou:
                    _merge(work, areas, boxes, changed, keeper=k, dropped=i)
                    merged = True
                    break
        if merged or areas[i] == 0 or areas[i] < config.min_area:
            continue
        kept.append(int(i))

    index = np.asarray(kept, dtype=np.int64)
    return FilteredMasks(masks=work[index], index=index, changed=changed[index])


def shared_pixels(a: np.ndarray, b: np.ndarray, box_a: np.ndarray, box_b: np.ndarray) -> int:
    """Pixels in both ``(H, W) bool`` masks, counted only inside their boxes' overlap."""
    window = box_intersection(box_a, box_b)
    if window is None:
        return 0
    x0, y0, x1, y1 = window
    return int((a[y0:y1, x0:x1] & b[y0:y1, x0:x1]).sum())


def box_intersection(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    """Overlap of two xyxy boxes (x2, y2 exclusive) as ``(x0, y0, x1, y1)``; None if empty."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def _merge(work, areas, boxes, changed, keeper: int, dropped: int) -> None:
    """The keeper takes the union of its pixels and the dropped proposal's (in place)."""
    before = areas[keeper]
    work[keeper] |= work[dropped]
    areas[keeper] = int(work[keeper].sum())
    boxes[keeper] = _box_union(boxes[keeper], boxes[dropped])
    changed[keeper] = changed[keeper] or areas[keeper] != before


def _box_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])

"""Segmentation metrics: mask IoU, confusion-matrix mIoU, Boundary IoU, pixel-level AP.

References:

- Boundary IoU: Cheng, Girshick, Dollar, Berg, Kirillov, "Boundary IoU: Improving
  Object-Centric Image Segmentation Evaluation", CVPR 2021, and its reference
  implementation ``boundary_iou/utils/boundary_utils.py`` in
  github.com/bowenc0221/boundary-iou-api (``mask_to_boundary``, ``boundary_iou``).
- Pixel-level average precision: Lueddecke and Ecker, "Image Segmentation Using Text and
  Image Prompts" (CLIPSeg), CVPR 2022, section 5 ("AP") and supplementary section "Average
  Precision Computation", with the reference implementation ``FixedIntervalMetrics`` in
  github.com/timojl/clipseg ``metrics.py``.
- mIoU over a confusion matrix: the usual semantic-segmentation protocol (Everingham et al.,
  PASCAL VOC; Long et al., FCN, 2015).

Masks are bool arrays, ``(H, W)`` for one mask and ``(N, H, W)`` for a stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from promptseg.errors import InputError

__all__ = [
    "CLIPSEG_AP_THRESHOLDS",
    "ConfusionMatrix",
    "PixelAveragePrecision",
    "boundary_iou",
    "iou",
    "mask_iou",
    "mask_to_boundary",
    "pixel_average_precision",
]

#: The 49 thresholds of CLIPSeg's pixel AP: ``linspace(0, 1, 51)`` without 0 and 1
#: ([CLIPSeg-repo] metrics.py, FixedIntervalMetrics, n_values=51).
CLIPSEG_AP_THRESHOLDS = np.linspace(0.0, 1.0, 51)[1:-1]

# Pixels per chunk in mask_iou: float32 sums of 0/1 are exact below 2**24.
_IOU_CHUNK = 1 << 22


def _as_mask_stack(name: str, masks: Any) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{name}: expected masks of shape (N, H, W) or (H, W), got {arr.shape}")
    return arr.astype(bool, copy=False)


def mask_iou(a: Any, b: Any, empty_value: float = 0.0) -> np.ndarray:
    """Pairwise IoU of two stacks of masks.

    Computed as a matrix product of the flattened masks (exact counts: float32 products on
    chunks of 4M pixels, summed in float64), so it is fast for many masks.

    Args:
        a: ``(N, H, W)`` bool masks (an ``(H, W)`` mask counts as ``N = 1``).
        b: ``(M, H, W)`` bool masks, same ``H, W``.
        empty_value: IoU of a pair whose union is empty (both masks empty). 0.0 by default,
            as ``pycocotools.mask.iou`` gives, so empty masks never match anything; the
            single-pair :func:`iou` uses 1.0 instead.

    Returns:
        ``(N, M)`` float64, ``intersection / union``.
    """
    a = _as_mask_stack("mask_iou a", a)
    b = _as_mask_stack("mask_iou b", b)
    if a.shape[1:] != b.shape[1:]:
        raise InputError(f"mask_iou: masks of different sizes {a.shape[1:]} and {b.shape[1:]}")
    n, m = a.shape[0], b.shape[0]
    pixels = a.shape[1] * a.shape[2]
    fa = a.reshape(n, pixels)
    fb = b.reshape(m, pixels)
    inter = np.zeros((n, m), dtype=np.float64)
    for start in range(0, fa.shape[1], _IOU_CHUNK):
        ca = fa[:, start : start + _IOU_CHUNK].astype(np.float32)
        cb = fb[:, start : start + _IOU_CHUNK].astype(np.float32)
        inter += ca @ cb.T
    area_a = fa.sum(axis=1, dtype=np.int64).astype(np.float64)
    area_b = fb.sum(axis=1, dtype=np.int64).astype(np.float64)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.full((n, m), float(empty_value), dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def iou(pred: Any, gt: Any) -> float:
    """IoU of two ``(H, W)`` bool masks; 1.0 when both are empty (a correct "nothing")."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise InputError(
            f"iou: expected two (H, W) masks of one size, got {pred.shape}, {gt.shape}"
        )
    pred = pred.astype(bool, copy=False)
    gt = gt.astype(bool, copy=False)
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & gt)) / union


class ConfusionMatrix:
    """Accumulate a semantic-segmentation confusion matrix over many images.

    ``matrix[g, p]`` counts pixels of ground-truth class ``g`` predicted as ``p``.
    Pixels whose ground truth is ``ignore_index`` are skipped.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 255]]))
        >>> cm.iou_per_class().tolist(), cm.pixel_accuracy()
        ([0.5, 0.5], 0.6666666666666666)
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise InputError(f"num_classes must be an int, received {num_classes!r}")
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, received {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Forget every update."""
        self.matrix[:] = 0

    def update(self, pred: Any, gt: Any) -> None:
        """Add one image.

        Args:
            pred: ``(H, W)`` int class indices in ``[0, num_classes)``.
            gt: ``(H, W)`` int class indices in ``[0, num_classes)`` or ``ignore_index``.
        """
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise InputError(f"ConfusionMatrix.update: pred {pred.shape} vs gt {gt.shape}")
        for name, arr in (("pred", pred), ("gt", gt)):
            if arr.dtype.kind not in "biu":
                raise InputError(
                    f"ConfusionMatrix.update: {name} must hold integer class indices, "
                    f"received {arr.dtype}"
                )
        pred = pred.ravel().astype(np.int64)
        gt = gt.ravel().astype(np.int64)
        if self.ignore_index is not None:
            keep = gt != self.ignore_index
            pred, gt = pred[keep], gt[keep]
        c = self.num_classes
        for name, arr in (("pred", pred), ("gt", gt)):
            if arr.size and (arr.min() < 0 or arr.max() >= c):
                bad = arr.min() if arr.min() < 0 else arr.max()
                raise InputError(
                    f"ConfusionMatrix.update: {name} has class {bad}, outside [0, {c}) "
                    f"(ignore_index={self.ignore_index}); check num_classes"
                )
        self.matrix += np.bincount(gt * c + pred, minlength=c * c).reshape(c, c)

    def iou_per_class(self) -> np.ndarray:
        """``(C,)`` float64 ``TP / (TP + FP + FN)``; NaN for a class in neither gt nor pred."""
        tp = np.diag(self.matrix).astype(np.float64)
        return _ratio_or_nan(tp, self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp)

    def miou(self) -> float:
        """Mean IoU over the classes present in gt or pred (NaN if there are none)."""
        return _mean_of_present(self.iou_per_class())

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly (NaN if none counted)."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """``(C,)`` per-class recall ``TP / (TP + FN)``; NaN for classes absent from gt."""
        return _ratio_or_nan(np.diag(self.matrix).astype(np.float64), self.matrix.sum(axis=1))

    def mean_accuracy(self) -> float:
        """Mean of :meth:`class_accuracy` over classes present in gt (NaN if none)."""
        return _mean_of_present(self.class_accuracy())


def _ratio_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``(C,)`` float64 ``numerator / denominator``, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _mean_of_present(values: np.ndarray) -> float:
    """Mean of the non-NaN entries of ``values`` (per-class scores); NaN if there are none."""
    present = ~np.isnan(values)
    return float(values[present].mean()) if present.any() else float("nan")


def mask_to_boundary(mask: Any, dilation_ratio: float = 0.02) -> np.ndarray:
    """Inner boundary band of a mask, as in Boundary IoU (Cheng et al. 2021, sec. 4).

    The band is the mask minus its erosion by ``d = max(1, round(dilation_ratio * diag))``
    pixels (``diag`` = image diagonal; 3x3 kernel applied ``d`` times). The mask is padded
    with one zero pixel first, so a mask cut by the image border has a boundary there too,
    as in the reference ``mask_to_boundary``.

    Args:
        mask: ``(H, W)`` bool.
        dilation_ratio: band width as a fraction of the image diagonal.

    Returns:
        ``(H, W)`` bool boundary band.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"mask_to_boundary: expected an (H, W) mask, got {mask.shape}")
    if not dilation_ratio > 0:
        raise InputError(f"dilation_ratio must be > 0, received {dilation_ratio}")
    h, w = mask.shape
    mask_u8 = mask.astype(bool).astype(np.uint8)
    if h == 0 or w == 0:
        return mask_u8.astype(bool)
    # Python's round (half to even), as the reference implementation uses.
    d = max(1, int(round(dilation_ratio * float(np.hypot(h, w)))))
    padded = cv2.copyMakeBorder(mask_u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return (mask_u8 - eroded).astype(bool)


def boundary_iou(gt: Any, pred: Any, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two ``(H, W)`` masks (Cheng et al. 2021, eq. 2).

    IoU of the two :func:`mask_to_boundary` bands; 1.0 when both bands are empty (both
    masks empty), 0.0 when only one is.

    Args:
        gt: ``(H, W)`` bool ground truth.
        pred: ``(H, W)`` bool prediction.
        dilation_ratio: band width as a fraction of the image diagonal (0.02 in the paper).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise InputError(
            f"boundary_iou: expected two (H, W) masks of one size, got {gt.shape}, {pred.shape}"
        )
    bg = mask_to_boundary(gt, dilation_ratio)
    bp = mask_to_boundary(pred, dilation_ratio)
    union = int(np.count_nonzero(bg | bp))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(bg & bp)) / union


class PixelAveragePrecision:
    """Pixel-level average precision, accumulated image by image (CLIPSeg protocol).

    CLIPSeg (Lueddecke and Ecker 2022, supplementary "Average Precision Computation"):
    ranking all pixels of a dataset does not fit in memory, so the score maps are
    binarised at a fixed set of thresholds, true/false positives and false negatives are
    counted per image and summed over the dataset per threshold, giving one
    precision-recall point per threshold; AP is the area under that curve by Simpson
    integration. Details follow the reference ``FixedIntervalMetrics``:

    - thresholds ``linspace(0, 1, 51)[1:-1]`` (0.02, ..., 0.98); a pixel is positive when
      ``score > t``;
    - ``precision = TP / (eps + TP + FP)``, ``recall = TP / (eps + TP + FN)`` with
      ``eps = 1`` (the reference adds 1 to both denominators);
    - only thresholds with at least one positive pixel count; the points are sorted by
      recall;
    - Simpson's rule over recall (``scipy.integrate.simpson``), from the lowest to the
      highest recall reached (not from recall 0). ``method="trapezoid"`` is also offered.

    Two deliberate differences from the reference code: (1) points with the same recall
    are merged into one, keeping the highest precision (the reference only drops identical
    pairs, and Simpson's rule is wrong on zero-width intervals: integrating a constant 1
    over ``x = [0, .1, .1, 1]`` gives 0.37); (2) with fewer than two distinct recall levels
    the AP is undefined and :meth:`value` returns NaN (the reference returns 0.0). Binary
    score maps (0/1 masks) give a single point, so pixel AP is meant for soft maps.
    The reference used the old ``scipy.integrate.simps`` (``even="avg"``), which differs
    slightly from current scipy when the number of points is even.

    Scores are expected in ``[0, 1]`` (apply a sigmoid to logits first).

    Example:
        >>> ap = PixelAveragePrecision(thresholds=[0.2, 0.4, 0.6], eps=0.0)
        >>> ap.update(np.array([0.7, 0.5, 0.3, 0.1, 0.5, 0.3, 0.3]), np.arange(7) < 4)
        >>> round(ap.value(), 6)  # Simpson: (1/4) / 3 * (1 + 4 * 2/3 + 1/2) = 25/72
        0.347222
    """

    def __init__(
        self,
        thresholds: Sequence[float] | np.ndarray | None = None,
        eps: float = 1.0,  # [CLIPSeg-repo] metrics.py: tp / (1 + tp + fp)
        method: str = "simpson",
    ) -> None:
        t = CLIPSEG_AP_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
        if t.ndim != 1 or t.size == 0 or not np.all(np.diff(t) > 0):
            raise InputError("thresholds must be a non-empty, strictly increasing 1-D sequence")
        if method not in ("simpson", "trapezoid"):
            raise InputError(f"method must be 'simpson' or 'trapezoid', received {method!r}")
        if eps < 0:
            raise InputError(f"eps must be >= 0, received {eps}")
        self.thresholds = t.copy()
        self.eps = float(eps)
        self.method = method
        self.tp = np.zeros(t.size, dtype=np.int64)
        self.fp = np.zeros(t.size, dtype=np.int64)
        self.fn = np.zeros(t.size, dtype=np.int64)

    def update(self, scores: Any, gt: Any, valid: Any | None = None) -> None:
        """Add one image.

        Args:
            scores: ``(H, W)`` float scores (any shape, matching ``gt``).
            gt: ``(H, W)`` bool ground truth.
            valid: optional bool array of the same shape; only ``True`` pixels count.
        """
        scores = np.asarray(scores, dtype=np.float64)
        gt = np.asarray(gt)
        if scores.shape != gt.shape:
            raise InputError(f"pixel AP: scores {scores.shape} and gt {gt.shape} differ in shape")
        if np.isnan(scores).any():
            raise InputError("pixel AP: scores contain NaN")
        gt = gt.astype(bool, copy=False)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != gt.shape:
                raise InputError(f"pixel AP: valid {valid.shape} and gt {gt.shape} differ")
            scores, gt = scores[valid], gt[valid]
        flat_scores = np.sort(scores.ravel())
        pos_scores = np.sort(scores.ravel()[gt.ravel()])
        # Pixels with score > t: everything after the last score <= t.
        predicted = flat_scores.size - np.searchsorted(flat_scores, self.thresholds, "right")
        tp = pos_scores.size - np.searchsorted(pos_scores, self.thresholds, "right")
        self.tp += tp
        self.fp += predicted - tp
        self.fn += pos_scores.size - tp

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """``(precision, recall)`` points used for AP, by increasing recall (float64).

        One point per distinct recall, with the highest precision reached at it.
        """
        tp = self.tp.astype(np.float64)
        used = (self.tp + self.fp) > 0
        with np.errstate(invalid="ignore", divide="ignore"):  # eps = 0 and no positives
            precision = tp[used] / (self.eps + tp[used] + self.fp[used])
            recall = tp[used] / (self.eps + tp[used] + self.fn[used])
        keep = ~np.isnan(recall)
        best: dict[float, float] = {}
        for r, p in zip(recall[keep].tolist(), precision[keep].tolist(), strict=True):
            best[r] = max(p, best.get(r, -np.inf))
        r_sorted = sorted(best)
        return np.array([best[r] for r in r_sorted]), np.array(r_sorted)

    def value(self) -> float:
        """Average precision: area under the precision-recall points.

        NaN when there are fewer than two distinct recall levels (see the class docstring).
        """
        precision, recall = self.precision_recall()
        if precision.size < 2:
            return float("nan")
        if self.method == "trapezoid":
            return float(np.trapezoid(precision, recall))
        from scipy.integrate import simpson

        return float(simpson(precision, x=recall))


def pixel_average_precision(
    scores: Iterable[Any],
    gts: Iterable[Any],
    thresholds: Sequence[float] | np.ndarray | None = None,
    eps: float = 1.0,
    method: str = "simpson",
) -> float:
    """Pixel-level AP over a dataset, as CLIPSeg reports it.

    See :class:`PixelAveragePrecision` for the protocol (CLIPSeg, supplementary "Average
    Precision Computation"; reference ``FixedIntervalMetrics``).

    Args:
        scores: per-image float score maps in ``[0, 1]``, each ``(H_i, W_i)``.
        gts: per-image bool ground-truth masks, same shapes.
        thresholds: binarisation thresholds (default :data:`CLIPSEG_AP_THRESHOLDS`).
        eps: added to the precision and recall denominators (1 in the reference).
        method: ``"simpson"`` (reference) or ``"trapezoid"``.

    Returns:
        AP in ``[0, 1]`` (Simpson's rule can slightly overshoot on jagged curves); NaN
        when fewer than two distinct recall levels are reached (e.g. binary score maps).
    """
    metric = PixelAveragePrecision(thresholds=thresholds, eps=eps, method=method)
    scores = list(scores)
    gts = list(gts)
    if len(scores) != len(gts):
        raise InputError(f"pixel AP: {len(scores)} score maps but {len(gts)} ground truths")
    for s, g in zip(scores, gts, strict=True):
        metric.update(s, g)
    return metric.value()

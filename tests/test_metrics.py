"""Tests of promptseg.eval.metrics on hand-computed cases and against pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from promptseg.errors import InputError
from promptseg.eval.metrics import (
    CLIPSEG_AP_THRESHOLDS,
    ConfusionMatrix,
    PixelAveragePrecision,
    boundary_iou,
    iou,
    mask_iou,
    mask_to_boundary,
    pixel_average_precision,
)


# ----------------------------------------------------------------------------- IoU
def test_mask_iou_hand_computed() -> None:
    a = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], bool)  # top row; empty
    b = np.array([[[1, 0], [1, 0]], [[1, 1], [1, 1]], [[0, 0], [0, 0]]], bool)  # left; all; empty
    out = mask_iou(a, b)
    assert out.shape == (2, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, [[1 / 3, 2 / 4, 0.0], [0.0, 0.0, 0.0]])
    assert mask_iou(a, b, empty_value=1.0)[1, 2] == 1.0
    assert mask_iou(a[0], b[0]).shape == (1, 1)  # (H, W) counts as N = 1
    assert mask_iou(np.zeros((0, 2, 2)), b).shape == (0, 3)


def test_mask_iou_matches_pycocotools() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((7, 23, 31)) > rng.random((7, 1, 1))
    b = rng.random((5, 23, 31)) > rng.random((5, 1, 1))
    a[0] = False
    b[4] = False
    rle_a = mask_utils.encode(np.asfortranarray(np.moveaxis(a, 0, -1).astype(np.uint8)))
    rle_b = mask_utils.encode(np.asfortranarray(np.moveaxis(b, 0, -1).astype(np.uint8)))
    expected = mask_utils.iou(rle_a, rle_b, [0] * len(rle_b))
    np.testing.assert_allclose(mask_iou(a, b), expected, rtol=0, atol=1e-12)


def test_mask_iou_chunks_are_exact(monkeypatch) -> None:
    import promptseg.eval.metrics as metrics

    rng = np.random.default_rng(1)
    a = rng.random((3, 40, 50)) > 0.5
    b = rng.random((4, 40, 50)) > 0.5
    full = mask_iou(a, b)
    monkeypatch.setattr(metrics, "_IOU_CHUNK", 7)  # many uneven chunks
    np.testing.assert_array_equal(mask_iou(a, b), full)


def test_iou_single_pair() -> None:
    pred = np.array([[1, 1, 0], [0, 1, 0]], bool)
    gt = np.array([[1, 0, 0], [0, 1, 1]], bool)
    assert iou(pred, gt) == pytest.approx(2 / 4)
    empty = np.zeros((2, 3), bool)
    assert iou(empty, empty) == 1.0  # both empty: a correct "nothing"
    assert iou(pred, empty) == 0.0
    with pytest.raises(InputError, match="one size"):
        iou(pred, gt[:1])


@pytest.mark.parametrize(
    ("a", "b"), [(np.zeros((2, 3, 4)), np.zeros((2, 3, 5))), (np.zeros(5), np.zeros((1, 1, 5)))]
)
def test_mask_iou_errors(a, b) -> None:
    with pytest.raises(InputError):
        mask_iou(a, b)


# ----------------------------------------------------------------------------- confusion
def test_confusion_matrix_hand_computed() -> None:
    cm = ConfusionMatrix(3, ignore_index=255)
    pred = np.array([[0, 1, 2], [2, 2, 0]])
    gt = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    cm.update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[2, 0, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_allclose(cm.iou_per_class(), [1.0, 0.5, 0.5])
    assert cm.miou() == pytest.approx(2 / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 5)
    np.testing.assert_allclose(cm.class_accuracy(), [1.0, 0.5, 1.0])
    assert cm.mean_accuracy() == pytest.approx(2.5 / 3)
    cm.update(pred, gt)  # accumulates
    assert cm.matrix.sum() == 10 and cm.miou() == pytest.approx(2 / 3)
    cm.reset()
    assert cm.matrix.sum() == 0 and math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())


def test_confusion_matrix_absent_class_is_nan_and_skipped() -> None:
    cm = ConfusionMatrix(4)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    ious = cm.iou_per_class()
    assert ious[0] == pytest.approx(1 / 2) and ious[1] == pytest.approx(1 / 2)
    assert math.isnan(ious[2]) and math.isnan(ious[3])
    assert cm.miou() == pytest.approx(0.5)  # classes 2 and 3: in neither gt nor pred


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.array([0, 3]), np.array([0, 1]), "pred has class 3"),
        (np.array([0, 1]), np.array([0, 7]), "gt has class 7"),
        (np.array([0, -1]), np.array([0, 1]), "pred has class -1"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer class indices"),
        (np.array([0, 1, 1]), np.array([0, 1]), "pred"),
    ],
)
def test_confusion_matrix_errors(pred, gt, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ConfusionMatrix(3).update(pred, gt)


@pytest.mark.parametrize("n", [0, -2, 2.0, True])
def test_confusion_matrix_bad_num_classes(n) -> None:
    with pytest.raises(InputError, match="num_classes"):
        ConfusionMatrix(n)


# ----------------------------------------------------------------------------- boundary IoU
def test_boundary_of_full_mask_is_border_band() -> None:
    # 5x5 image: d = max(1, round(0.02 * 7.07)) = 1; the padding makes the image border a
    # boundary, so a full mask has the 16-pixel outer ring as boundary.
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False
    np.testing.assert_array_equal(mask_to_boundary(np.ones((5, 5), bool)), ring)
    # 100x100: d = round(0.02 * 141.4) = 3, a band 3 pixels wide: 100^2 - 94^2 pixels.
    assert mask_to_boundary(np.ones((100, 100), bool)).sum() == 100**2 - 94**2


def test_boundary_iou_hand_computed() -> None:
    gt = np.ones((5, 5), bool)  # boundary: outer ring, 16 pixels
    pred = np.zeros((5, 5), bool)
    pred[:4] = True  # boundary: rows 0 and 3, plus (1..2, 0) and (1..2, 4): 14 pixels
    # shared: row 0 (5), (1..2, 0/4) (4), (3, 0) and (3, 4) (2) = 11; union 16 + 14 - 11 = 19
    assert boundary_iou(gt, pred) == pytest.approx(11 / 19)
    inner = np.zeros((5, 5), bool)
    inner[1:4, 1:4] = True  # its boundary is the inner 8-pixel ring: disjoint from gt's
    assert boundary_iou(gt, inner) == 0.0
    assert iou(inner, gt) == pytest.approx(9 / 25)  # while mask IoU is not 0


def test_boundary_iou_empty_and_errors() -> None:
    empty = np.zeros((6, 6), bool)
    assert boundary_iou(empty, empty) == 1.0
    assert boundary_iou(empty, np.ones((6, 6), bool)) == 0.0
    with pytest.raises(InputError, match="one size"):
        boundary_iou(empty, np.zeros((6, 5), bool))
    with pytest.raises(InputError, match="dilation_ratio"):
        mask_to_boundary(empty, dilation_ratio=0)


def test_boundary_iou_identical_random_masks() -> None:
    mask = np.random.default_rng(2).random((30, 40)) > 0.5
    assert boundary_iou(mask, mask) == 1.0


# ----------------------------------------------------------------------------- pixel AP
# Hand case (thresholds 0.2, 0.4, 0.6): 4 positives scored 0.7, 0.5, 0.3, 0.1 and
# 3 negatives scored 0.5, 0.3, 0.3, split over two images.
#   t=0.6: TP 1, FP 0, FN 3    t=0.4: TP 2, FP 1, FN 2    t=0.2: TP 3, FP 3, FN 1
SCORES = [np.array([[0.7, 0.5, 0.5]]), np.array([[0.3, 0.1], [0.3, 0.3]])]
GTS = [np.array([[1, 1, 0]], bool), np.array([[1, 1], [0, 0]], bool)]
T = [0.2, 0.4, 0.6]


def test_pixel_ap_counts_and_curve() -> None:
    ap = PixelAveragePrecision(thresholds=T, eps=0.0)
    for s, g in zip(SCORES, GTS, strict=True):
        ap.update(s, g)
    assert ap.tp.tolist() == [3, 2, 1] and ap.fp.tolist() == [3, 1, 0]
    assert ap.fn.tolist() == [1, 2, 3]
    precision, recall = ap.precision_recall()
    np.testing.assert_allclose(recall, [1 / 4, 2 / 4, 3 / 4])
    np.testing.assert_allclose(precision, [1, 2 / 3, 1 / 2])


@pytest.mark.parametrize(
    ("eps", "method", "expected"),
    [
        # h = 1/4: Simpson (h / 3) (1 + 4 * 2/3 + 1/2) = 25/72
        (0.0, "simpson", 25 / 72),
        # trapezoid: 1/4 ((1 + 2/3) / 2 + (2/3 + 1/2) / 2) = 17/48
        (0.0, "trapezoid", 17 / 48),
        # eps = 1 (reference): points (1/5, 1/2), (2/5, 2/4), (3/5, 3/7);
        # Simpson (1/15) (1/2 + 4 * 1/2 + 3/7) = 41/210
        (1.0, "simpson", 41 / 210),
    ],
)
def test_pixel_ap_hand_computed(eps: float, method: str, expected: float) -> None:
    value = pixel_average_precision(SCORES, GTS, thresholds=T, eps=eps, method=method)
    assert value == pytest.approx(expected, abs=1e-12)


def test_pixel_ap_same_recall_keeps_best_precision() -> None:
    # t=0.2 and t=0.4 both find the one positive; t=0.2 also takes the negative.
    scores = np.array([0.5, 0.3, 0.1])
    gt = np.array([True, False, True])
    ap = PixelAveragePrecision(thresholds=[0.2, 0.4, 0.6], eps=0.0, method="trapezoid")
    ap.update(scores, gt)
    precision, recall = ap.precision_recall()
    # t=0.2: TP 1, FP 1 -> (1/2, 1/2); t=0.4: TP 1, FP 0 -> (1/2, 1); t=0.6: nothing predicted
    np.testing.assert_allclose(recall, [0.5])
    np.testing.assert_allclose(precision, [1.0])
    assert math.isnan(ap.value())  # one recall level: AP undefined


def test_pixel_ap_default_thresholds_and_degenerate_cases() -> None:
    assert CLIPSEG_AP_THRESHOLDS.shape == (49,)
    assert CLIPSEG_AP_THRESHOLDS[0] == pytest.approx(0.02)
    assert CLIPSEG_AP_THRESHOLDS[-1] == pytest.approx(0.98)
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    # Binary maps: a single precision-recall point -> NaN.
    assert math.isnan(pixel_average_precision([gt.astype(float)], [gt]))
    # No pixel above any threshold -> NaN, not an error.
    assert math.isnan(pixel_average_precision([np.zeros((4, 4))], [gt]))


def test_pixel_ap_ranking_quality() -> None:
    rng = np.random.default_rng(3)
    gt = rng.random((50, 50)) > 0.6
    noise = rng.random((50, 50))
    good = np.clip(0.7 * gt + 0.3 * noise, 0, 1)
    bad = noise
    ap_good = pixel_average_precision([good], [gt], eps=0.0)
    ap_bad = pixel_average_precision([bad], [gt], eps=0.0)
    assert ap_good > 0.5 > ap_bad > 0.0


def test_pixel_ap_counts_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    scores = [np.round(rng.random((9, 11)), 2) for _ in range(3)]  # ties on thresholds
    gts = [rng.random((9, 11)) > 0.5 for _ in range(3)]
    valid = rng.random((9, 11)) > 0.2
    ap = PixelAveragePrecision()
    for s, g in zip(scores, gts, strict=True):
        ap.update(s, g, valid=valid)
    for j, t in enumerate(CLIPSEG_AP_THRESHOLDS):
        tp = sum(int(((s > t) & g & valid).sum()) for s, g in zip(scores, gts, strict=True))
        fp = sum(int(((s > t) & ~g & valid).sum()) for s, g in zip(scores, gts, strict=True))
        fn = sum(int(((s <= t) & g & valid).sum()) for s, g in zip(scores, gts, strict=True))
        assert (ap.tp[j], ap.fp[j], ap.fn[j]) == (tp, fp, fn)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"thresholds": [0.5, 0.2]}, "increasing"),
        ({"thresholds": []}, "increasing"),
        ({"method": "riemann"}, "method"),
        ({"eps": -1}, "eps"),
    ],
)
def test_pixel_ap_bad_arguments(kwargs, match: str) -> None:
    with pytest.raises(InputError, match=match):
        PixelAveragePrecision(**kwargs)


def test_pixel_ap_bad_inputs() -> None:
    ap = PixelAveragePrecision()
    with pytest.raises(InputError, match="differ in shape"):
        ap.update(np.zeros((2, 2)), np.zeros((2, 3), bool))
    with pytest.raises(InputError, match="NaN"):
        ap.update(np.full((2, 2), np.nan), np.zeros((2, 2), bool))
    with pytest.raises(InputError, match="2 score maps but 1"):
        pixel_average_precision([np.zeros((2, 2))] * 2, [np.zeros((2, 2), bool)])

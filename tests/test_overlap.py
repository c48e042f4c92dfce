import numpy as np
import pytest

from promptseg.errors import ConfigError, InputError
from promptseg.result import masks_to_boxes
from promptseg.stages.overlap import OverlapFilterConfig, separate_overlaps


def _rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_masks_to_boxes_exact_and_empty():
    masks = np.stack([_rect(10, 12, 2, 5, 3, 9), np.zeros((10, 12), bool)])
    np.testing.assert_array_equal(masks_to_boxes(masks), [[3, 2, 9, 5], [0, 0, 0, 0]])
    assert masks_to_boxes(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_duplicate_is_merged_into_the_better_mask():
    a = _rect(20, 20, 0, 10, 0, 10)
    b = _rect(20, 20, 0, 10, 0, 11)  # IoU 100/110 = 0.909
    out = separate_overlaps(np.stack([a, b]), np.array([0.5, 0.9]))
    assert out.index.tolist() == [1]
    np.testing.assert_array_equal(out.masks[0], a | b)
    assert not out.changed[0]  # b already covered a


def test_partial_overlap_is_separated_and_no_pixel_lost():
    a = _rect(20, 20, 0, 10, 0, 10)
    b = _rect(20, 20, 5, 15, 5, 15)
    out = separate_overlaps(np.stack([a, b]), np.array([0.9, 0.5]))
    assert out.index.tolist() == [0, 1]
    np.testing.assert_array_equal(out.masks[0], a)
    np.testing.assert_array_equal(out.masks[1], b & ~a)
    assert out.changed.tolist() == [False, True]
    assert not (out.masks[0] & out.masks[1]).any()
    np.testing.assert_array_equal(out.masks.any(0), a | b)


def test_nested_masks_are_both_kept_unchanged():
    whole = _rect(20, 20, 0, 16, 0, 16)
    part = _rect(20, 20, 2, 6, 2, 6)
    out = separate_overlaps(np.stack([part, whole]), np.array([0.9, 0.8]))
    assert out.index.tolist() == [0, 1]
    np.testing.assert_array_equal(out.masks[1], whole)
    assert not out.changed.any()


def test_remnant_that_becomes_a_duplicate_is_merged():
    # a mask of two objects holds `a` whole (nested) and half of `b` (partial); once b's half
    # is cut away what is left is `a` again, a second copy that must not survive
    a = _rect(30, 30, 0, 10, 0, 10)
    b = _rect(30, 30, 15, 25, 0, 10)
    both = a | _rect(30, 30, 15, 20, 0, 10)
    out = separate_overlaps(np.stack([a, b, both]), np.array([0.9, 0.8, 0.7]))
    assert out.index.tolist() == [0, 1]
    np.testing.assert_array_equal(out.masks[0], a)
    np.testing.assert_array_equal(out.masks[1], b)
    np.testing.assert_array_equal(out.masks.any(0), a | b | both)
    # a remnant that is still more than a duplicate stays
    wider = a | _rect(30, 30, 15, 20, 0, 10) | _rect(30, 30, 0, 10, 12, 16)
    out = separate_overlaps(np.stack([a, b, wider]), np.array([0.9, 0.8, 0.7]))
    assert out.index.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(out.masks[2], wider & ~b)


def test_union_is_preserved_on_random_masks():
    rng = np.random.default_rng(0)
    masks = np.zeros((30, 40, 40), bool)
    for i in range(30):
        y, x = rng.integers(0, 30, 2)
        h, w = rng.integers(3, 15, 2)
        masks[i, y : y + h, x : x + w] = True
    out = separate_overlaps(masks, rng.random(30))
    np.testing.assert_array_equal(out.masks.any(0), masks.any(0))
    assert len(out.index) <= 30


def test_min_area_drops_small_leftovers():
    a = _rect(20, 20, 0, 10, 0, 10)
    b = _rect(20, 20, 0, 10, 8, 12)  # 4 columns left after separation: 10 x 2 = 20 px
    config = OverlapFilterConfig(min_area=21)
    out = separate_overlaps(np.stack([a, b]), np.array([0.9, 0.5]), config)
    assert out.index.tolist() == [0]


def test_bad_input():
    with pytest.raises(InputError, match="N, H, W"):
        separate_overlaps(np.zeros((4, 4), bool))
    with pytest.raises(InputError, match="quality"):
        separate_overlaps(np.zeros((2, 4, 4), bool), np.zeros(3))
    with pytest.raises(ConfigError):
        OverlapFilterConfig(duplicate_iou=0)

"""Dense CRF on synthetic maps with a known answer, and map-to-prompt on constructed maps."""

import numpy as np
import pytest

from promptseg.errors import InputError
from promptseg.stages.crf import (
    CAR_CRF,
    MEDCLIP_SAM_CRF,
    CrfConfig,
    dense_crf,
    multilabel_crf,
    saliency_crf,
)
from promptseg.stages.map_prompts import binarize, mask_prompt, peak_points, region_box, smooth


def _two_regions(h=40, w=60):
    """A red left half and a blue right half."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (220, 30, 30)
    image[:, w // 2:] = (30, 30, 220)
    return image


def test_crf_snaps_a_blurry_map_to_the_colour_edge():
    """A map that leaks 8 px past the red half's edge: the CRF follows the colours."""
    image = _two_regions()
    saliency = np.zeros((40, 60), np.float32)
    saliency[:, :38] = 0.7  # the truth is columns 0..29
    refined = saliency_crf(image, saliency, CrfConfig(iterations=5, gaussian_sxy=3,
                                                      gaussian_compat=3, bilateral_sxy=60,
                                                      bilateral_srgb=5, bilateral_compat=5))
    assert refined.shape == (40, 60)
    fg = refined > 0.5
    truth = np.zeros((40, 60), bool)
    truth[:, :30] = True
    assert (fg == truth).mean() > 0.98


def test_medclip_sam_form_keeps_a_confident_map():
    image = _two_regions()
    saliency = np.full((40, 60), 0.05, np.float32)
    saliency[:, :30] = 0.95
    refined = saliency_crf(image, saliency)  # MedCLIP-SAM's settings: one iteration
    assert MEDCLIP_SAM_CRF.iterations == 1
    assert ((refined > 0.5) == (saliency > 0.5)).all()
    both = saliency_crf(image, np.stack([saliency, 1 - saliency]))
    assert both.shape == (2, 40, 60)
    assert ((both[1] > 0.5) == (saliency < 0.5)).all()


def test_multilabel_crf_probabilities_and_labels():
    image = _two_regions()
    probs = np.full((3, 40, 60), 0.2, np.float32)
    probs[1, :, :30] = 0.6  # class 1 on the red half
    probs[2, :, 30:] = 0.6  # class 2 on the blue half
    probs[:, :, 25:35] = 1 / 3  # undecided around the edge
    refined = multilabel_crf(image, probs)
    assert refined.shape == (3, 40, 60)
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-4)
    labels = refined.argmax(0)
    assert (labels[:, :30] == 1).mean() > 0.95 and (labels[:, 30:] == 2).mean() > 0.95
    assert CAR_CRF.iterations == 10 and CAR_CRF.bilateral_sxy == 67


def test_crf_errors_name_the_problem():
    image = _two_regions()
    with pytest.raises(InputError, match=r"must be \(K, H, W\) = \(K, 40, 60\)"):
        dense_crf(image, np.zeros((2, 10, 10)))
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        saliency_crf(image, np.full((40, 60), 2.0))
    with pytest.raises(InputError, match="iterations must be >= 1"):
        CrfConfig(iterations=0)


def test_smooth_and_binarize():
    m = np.zeros((21, 21), np.float32)
    m[10, 10] = 1.0
    blurred = smooth(m, 2.0)
    assert blurred[10, 10] < 1 and blurred.sum() == pytest.approx(1.0, rel=1e-3)
    assert smooth(m, 0) is not None and (smooth(m, 0) == m).all()
    bimodal = np.zeros((10, 10), np.float32)
    bimodal[:, :3] = 0.9
    bimodal[:, 3:] = 0.1
    assert (binarize(bimodal) == (bimodal > 0.5)).all()  # Otsu splits the two levels
    assert binarize(bimodal, 0.95).sum() == 0
    assert not binarize(np.full((4, 4), 0.7)).any()  # constant: nothing stands out
    with pytest.raises(InputError, match="'otsu'"):
        binarize(bimodal, "mean")
    with pytest.raises(InputError, match="sigma"):
        smooth(m, -1)


def test_region_box_largest_and_all():
    mask = np.zeros((50, 80), bool)
    mask[5:15, 10:30] = True  # 200 px
    mask[30:45, 50:70] = True  # 300 px
    mask[0:2, 78:80] = True  # 4 px speck
    np.testing.assert_array_equal(region_box(mask), [50, 30, 70, 45])
    np.testing.assert_array_equal(region_box(mask, "all", 0.5), [10, 5, 70, 45])
    np.testing.assert_array_equal(region_box(mask, "all", 0.01), [10, 0, 80, 45])
    assert region_box(np.zeros((5, 5), bool)) is None
    with pytest.raises(InputError, match="'largest' or 'all'"):
        region_box(mask, "biggest")


def test_peak_points():
    m = np.zeros((40, 40), np.float32)
    m[10, 10], m[30, 30], m[12, 12], m[5, 35] = 0.9, 0.8, 0.85, 0.3
    np.testing.assert_array_equal(peak_points(m, k=1), [[10, 10]])
    # 0.85 at (12, 12) is within 8 px of the 0.9 peak: not a separate one
    np.testing.assert_array_equal(peak_points(m, k=3), [[10, 10], [30, 30], [35, 5]])
    np.testing.assert_array_equal(peak_points(m, k=2, min_distance=1), [[10, 10], [12, 12]])
    inside = np.zeros((40, 40), bool)
    inside[20:, 20:] = True
    np.testing.assert_array_equal(peak_points(m, k=2, mask=inside), [[30, 30]])
    assert peak_points(np.zeros((5, 5)), k=2).shape == (0, 2)


def test_mask_prompt_in_sam_frame():
    m = np.zeros((100, 200), np.float32)
    m[:, :100] = 1.0
    logits = mask_prompt(m, 256)
    assert logits.shape == (1, 256, 256)
    assert logits[0, 10, 10] > 9 and logits[0, 10, 200] < -9  # left half in, right out
    assert (logits[0, 130:] < -9).all()  # the padding below the image is background
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        mask_prompt(m * 3)

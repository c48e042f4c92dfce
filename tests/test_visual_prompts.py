"""promptseg.stages.visual_prompts: pixel-exact checks of every prompt and of the fast path."""

from __future__ import annotations

import doctest

import cv2
import numpy as np
import pytest

from promptseg.errors import ConfigError, InputError
from promptseg.stages import visual_prompts as vp
from promptseg.stages.visual_prompts import (
    RED,
    VISUAL_PROMPTS,
    apply_visual_prompt,
    black_background,
    blur_background,
    crop_to_mask,
    darken_background,
    draw_contour,
    draw_rectangle,
    gray_background,
    grayscale_background,
    list_visual_prompts,
    parse_visual_prompt,
    red_ellipse,
    render_candidates,
)

H, W = 60, 80


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def box_mask() -> np.ndarray:
    """Rows 10..29, columns 10..39: a 20 x 30 box."""
    mask = np.zeros((H, W), bool)
    mask[10:30, 10:40] = True
    return mask


def _red(picture: np.ndarray) -> np.ndarray:
    return np.all(picture == RED, axis=-1)


def _candidate_masks() -> np.ndarray:
    """Masks that stress the windowing: borders, one pixel, two parts, holes, thin, big."""
    yy, xx = np.mgrid[:H, :W]
    masks = np.zeros((10, H, W), bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 0:12, 0:9] = True  # top-left corner
    masks[2, 50:60, 65:80] = True  # bottom-right corner
    masks[3, 33, 47] = True  # one pixel
    masks[4, 5:15, 5:15] = masks[4, 40:55, 50:70] = True  # two parts
    masks[5] = ((yy - 30) ** 2 + (xx - 40) ** 2 <= 20**2) & ((yy - 30) ** 2 + (xx - 40) ** 2 > 36)
    masks[6, 2:58, 39:41] = True  # thin vertical bar
    masks[7] = True  # whole image
    masks[8] = (yy + xx) % 7 == 0  # diagonal stripes
    masks[9] = ((yy - 45) / 12.0) ** 2 + ((xx - 15) / 20.0) ** 2 <= 1  # ellipse near border
    return masks


# --------------------------------------------------------------------------- backgrounds


def test_black_background(image, box_mask):
    out = black_background(image, box_mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    assert (out[~box_mask] == 0).all()


@pytest.mark.parametrize("value", [128, 0, 255, 77])
def test_gray_background(image, box_mask, value):
    out = (
        gray_background(image, box_mask)
        if value == 128
        else gray_background(image, box_mask, value)
    )
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    assert (out[~box_mask] == value).all()


def test_grayscale_background(image, box_mask):
    out = grayscale_background(image, box_mask)
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    rgb = image[~box_mask].astype(np.float64)
    expected = np.rint(rgb @ [0.299, 0.587, 0.114])  # ITU-R 601 luma, as OpenCV's RGB2GRAY
    gray = out[~box_mask].astype(np.float64)
    assert (gray[:, 0] == gray[:, 1]).all() and (gray[:, 1] == gray[:, 2]).all()
    assert np.abs(gray[:, 0] - expected).max() <= 1  # OpenCV uses fixed-point weights


@pytest.mark.parametrize("intensity", [50, 0, 70, 100, 33])
def test_darken_background_exact_factor(image, box_mask, intensity):
    out = darken_background(image, box_mask, intensity=intensity)
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    v = image[~box_mask].astype(np.int64)
    expected = np.floor(v * (100 - intensity) / 100 + 0.5)  # round half up
    np.testing.assert_array_equal(out[~box_mask], expected)
    if intensity == 0:
        np.testing.assert_array_equal(out, image)
    if intensity == 100:
        np.testing.assert_array_equal(out, black_background(image, box_mask))


def test_blur_background_car_default(image, box_mask):
    out = blur_background(image, box_mask)
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    blurred = cv2.GaussianBlur(image, (15, 15), 0)  # [CaR] Algorithm B
    np.testing.assert_array_equal(out[~box_mask], blurred[~box_mask])
    assert (out[~box_mask] != image[~box_mask]).any()
    # OpenCV's sigma for a 15-pixel kernel is 2.6: the same as giving it explicitly
    np.testing.assert_allclose(
        out.astype(int), blur_background(image, box_mask, sigma=2.6, ksize=15), atol=1
    )


def test_blur_background_sigma(image, box_mask):
    out = blur_background(image, box_mask, sigma=4.0)
    blurred = cv2.GaussianBlur(image, (25, 25), 4.0)  # ksize = round(6 sigma + 1) | 1 = 25
    np.testing.assert_array_equal(out[~box_mask], blurred[~box_mask])
    np.testing.assert_array_equal(out[box_mask], image[box_mask])


def test_inputs_are_not_modified(image, box_mask):
    before, mask_before = image.copy(), box_mask.copy()
    for spec in ["black", "gray", "grayscale", "blur", "darken", "ellipse", "contour", "crop"]:
        apply_visual_prompt(image, box_mask, spec)
    render_candidates(image, box_mask[None], "blur+ellipse+crop:0.3")
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(box_mask, mask_before)


# --------------------------------------------------------------------------- drawings


def test_red_ellipse_car_geometry(box_mask):
    image = np.zeros((H, W, 3), np.uint8)
    out = red_ellipse(image, box_mask)
    red = _red(out)
    assert red.any() and (out[~red] == 0).all()  # only red pixels are drawn
    # centroid (19, 24) = floor of (19.5, 24.5); axes (30 // 2, 20 // 2) = (15, 10)
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 29, 9, 39)
    assert red[19, 9] and red[19, 39] and red[9, 24] and red[29, 24]
    assert not red[19, 24]  # an outline, not filled


def test_red_ellipse_centroid_vs_box():
    mask = np.zeros((H, W), bool)
    mask[10:50, 10:20] = True
    mask[40:50, 10:70] = True  # an L: centroid low and left of the box centre
    image = np.zeros((H, W, 3), np.uint8)
    cy, cx = np.nonzero(mask)
    centroid = (int(cy.mean()), int(cx.mean()))
    for center, (y, x) in (("centroid", centroid), ("box", (29, 39))):
        rows, cols = np.nonzero(_red(red_ellipse(image, mask, center=center)))
        assert (rows.min() + rows.max()) // 2 == y and (cols.min() + cols.max()) // 2 == x


def test_thickness_widens_the_line(box_mask):
    image = np.zeros((H, W, 3), np.uint8)
    thin = _red(red_ellipse(image, box_mask, thickness=1)).sum()
    thick = _red(red_ellipse(image, box_mask, thickness=3)).sum()
    assert thick > 2 * thin


def test_draw_rectangle_box_is_the_bounding_box(box_mask):
    image = np.zeros((H, W, 3), np.uint8)
    red = _red(draw_rectangle(image, box_mask, center="box"))
    border = box_mask.copy()
    border[11:29, 11:39] = False
    np.testing.assert_array_equal(red, border)


def test_draw_rectangle_car_centroid(box_mask):
    image = np.zeros((H, W, 3), np.uint8)
    rows, cols = np.nonzero(_red(draw_rectangle(image, box_mask, color=(255, 0, 0))))
    # [CaR]: centroid (19, 24) +- (10, 15)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 29, 9, 39)


def test_draw_contour_outline_and_holes():
    ring = np.zeros((H, W), bool)
    ring[10:40, 10:50] = True
    ring[20:30, 20:40] = False  # a hole: CaR fills it, so no inner outline
    image = np.zeros((H, W, 3), np.uint8)
    red = _red(draw_contour(image, ring))
    outer = np.zeros((H, W), bool)
    outer[10:40, 10:50] = True
    outer[11:39, 11:49] = False
    np.testing.assert_array_equal(red, outer)
    blue = draw_contour(image, ring, color=(0, 0, 255), thickness=1)
    assert (blue[outer] == (0, 0, 255)).all()
    assert not draw_contour(image, np.zeros((H, W), bool)).any()  # empty mask: nothing


# --------------------------------------------------------------------------- crop


def test_crop_tight(image, box_mask):
    np.testing.assert_array_equal(crop_to_mask(image, box_mask), image[10:30, 10:40])


def test_crop_margin_and_clipping(image, box_mask):
    # margin 0.1 of a 20 x 30 box: 2 rows, 3 columns each side
    np.testing.assert_array_equal(crop_to_mask(image, box_mask, 0.1), image[8:32, 7:43])
    # margin 0.25: 5 rows, 7.5 -> 8 columns (halves round up)
    np.testing.assert_array_equal(crop_to_mask(image, box_mask, margin=0.25), image[5:35, 2:48])
    # margin 1.0: clipped to the image
    np.testing.assert_array_equal(crop_to_mask(image, box_mask, 1.0), image[0:50, 0:70])


def test_crop_square(image, box_mask):
    out = crop_to_mask(image, box_mask, square=True)
    np.testing.assert_array_equal(out, image[5:35, 10:40])  # 20 rows grown to 30
    corner = np.zeros((H, W), bool)
    corner[0:4, 0:20] = True  # grows down only: the top is the image border
    np.testing.assert_array_equal(crop_to_mask(image, corner, square=True), image[0:20, 0:20])
    tall = np.zeros((H, W), bool)
    tall[:, 40] = True  # 60 rows: square of side 60 fits
    assert crop_to_mask(image, tall, square=True).shape == (60, 60, 3)


def test_crop_errors(image, box_mask):
    with pytest.raises(InputError, match="mask is empty"):
        crop_to_mask(image, np.zeros((H, W), bool))
    with pytest.raises(ConfigError, match="margin"):
        crop_to_mask(image, box_mask, margin=-0.1)


# --------------------------------------------------------------------------- specs


def test_registry_lists_names():
    names = list_visual_prompts()
    assert names == sorted(VISUAL_PROMPTS)
    for name in ["black", "gray", "blur", "darken", "crop", "ellipse", "contour", "rectangle"]:
        assert name in names
    assert {p.kind for p in VISUAL_PROMPTS.values()} == {"none", "background", "drawing", "crop"}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("black", "black"),
        ("black+crop", "black+crop:0.0"),
        ("crop+black", "black+crop:0.0"),
        ("Blur + Circle", "blur+ellipse:1"),
        ("ellipse+blur", "blur+ellipse:1"),
        ("darken:70", "darken:70"),
        ("gray", "gray:128"),
        (["grey:10", "crop:0.2"], "gray:10+crop:0.2"),
        ("mask+contour:2+box", "black+contour:2+rectangle:1"),
        ("none", "none"),
        ("blur:3.5+crop_square", "blur:3.5+crop_square:0.0"),
    ],
)
def test_parse_specs(spec, expected):
    assert parse_visual_prompt(spec).spec == expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("sparkle", r"unknown visual prompt 'sparkle'.*valid names: black, blur"),
        ("blurr", "did you mean 'blur'"),
        ("black++crop", "empty part"),
        ("", "empty part"),
        ([], "empty part"),
        ("crop+crop_square", "can crop once"),
        ("black:3", "takes no value"),
        ("darken:170", "0-100"),
        ("darken:x", "intensity must be a number"),
        ("gray:300", "0-255"),
        ("blur:0", "sigma must be > 0"),
        ("ellipse:0", "thickness"),
        ("crop:-1", "margin"),
        (42, "spec is a string"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_visual_prompt(spec)


def test_margin_argument(image, box_mask):
    assert parse_visual_prompt("crop", margin=0.1).spec == "crop:0.1"
    assert parse_visual_prompt("crop:0.1", margin=0.1).spec == "crop:0.1"
    assert parse_visual_prompt("black", margin=0.3).spec == "black"  # no crop: ignored
    with pytest.raises(ConfigError, match="given twice"):
        parse_visual_prompt("crop:0.2", margin=0.1)
    np.testing.assert_array_equal(
        apply_visual_prompt(image, box_mask, "crop", margin=0.1), image[8:32, 7:43]
    )


def test_combinations_apply_in_order(image, box_mask):
    def same(spec, expected):
        np.testing.assert_array_equal(apply_visual_prompt(image, box_mask, spec), expected)

    same("black+crop", crop_to_mask(black_background(image, box_mask), box_mask))
    same("crop+black", crop_to_mask(black_background(image, box_mask), box_mask))
    # drawings come after background edits: the ellipse stays pure red under "blur"
    car = red_ellipse(blur_background(image, box_mask), box_mask)
    same("ellipse+blur", car)
    same("blur+circle", car)
    # crop last, so its margin keeps the blurred context and the ellipse
    same("crop:0.5+blur+ellipse", crop_to_mask(car, box_mask, margin=0.5))
    same(
        "darken:70+gray+rectangle:2",
        draw_rectangle(
            gray_background(darken_background(image, box_mask, 70), box_mask),
            box_mask,
            thickness=2,
        ),
    )
    same("none", image)
    same("grayscale+blur", blur_background(grayscale_background(image, box_mask), box_mask))


def test_docstring_examples():
    result = doctest.testmod(vp, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- batched path

FAST_SPECS = [
    "black",
    "black+crop",
    "black+crop:0.25",
    "crop_square:0.1",
    "blur+ellipse",
    "blur+ellipse+crop",
    "blur+ellipse:3+crop:0.2",
    "blur:1.5+blur+contour:2+crop:0.5",
    "gray:90+contour+crop:0.1",
    "grayscale+blur+rectangle:4+crop",
    "darken:70+ellipse+rectangle+contour+crop_square:0.3",
    "black+blur+crop:1.0",
    "ellipse:5+crop",
    "rectangle:3+contour:3+crop",
    "none",
]


@pytest.mark.parametrize("spec", FAST_SPECS)
def test_render_candidates_equals_per_mask_path(image, spec):
    masks = _candidate_masks()
    fast = render_candidates(image, masks, spec)
    assert len(fast) == len(masks)
    for i, (got, mask) in enumerate(zip(fast, masks, strict=True)):
        expected = apply_visual_prompt(image, mask, spec)
        assert got.shape == expected.shape, (i, spec)
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected, err_msg=f"mask {i}, spec {spec}")


def test_render_candidates_margin_and_lists(image):
    masks = _candidate_masks()
    fast = render_candidates(image, list(masks[:3]), "black+crop", margin=0.2)
    for got, mask in zip(fast, masks[:3], strict=True):
        np.testing.assert_array_equal(got, apply_visual_prompt(image, mask, "black+crop:0.2"))


def test_render_candidates_edge_cases(image):
    assert render_candidates(image, np.zeros((0, H, W), bool), "blur+crop") == []
    masks = _candidate_masks()[:4]
    masks[2] = False
    with pytest.raises(InputError, match="mask 2: mask is empty"):
        render_candidates(image, masks, "black+crop")
    outs = render_candidates(image, masks, "black")  # no position needed: empty mask is fine
    assert (outs[2] == 0).all()
    with pytest.raises(InputError, match=r"does not match image"):
        render_candidates(image, masks[:, :10], "black")
    with pytest.raises(InputError, match=r"\(N, H, W\)"):
        render_candidates(image, masks[0], "black")
    with pytest.raises(ConfigError, match="unknown visual prompt"):
        render_candidates(image, masks, "sepia")


@pytest.mark.parametrize(
    "bad_image, bad_mask, match",
    [
        (np.zeros((H, W, 3), np.float32), None, "uint8"),
        (np.zeros((H, W), np.uint8), None, r"\(H, W, 3\)"),
        ([[0, 0, 0]], None, "numpy array"),
        (None, np.zeros((H, W), np.float32), "threshold"),
        (None, np.zeros((H, W + 1), bool), "does not match image"),
        (None, np.zeros((1, H, W), bool), r"\(H, W\)"),
    ],
)
def test_bad_inputs(image, box_mask, bad_image, bad_mask, match):
    img = image if bad_image is None else bad_image
    mask = box_mask if bad_mask is None else bad_mask
    with pytest.raises(InputError, match=match):
        black_background(img, mask)


def test_integer_masks_are_accepted(image, box_mask):
    np.testing.assert_array_equal(
        black_background(image, box_mask.astype(np.uint8)), black_background(image, box_mask)
    )


def test_bad_drawing_options(image, box_mask):
    with pytest.raises(ConfigError, match="thickness"):
        red_ellipse(image, box_mask, thickness=0)
    with pytest.raises(ConfigError, match="color"):
        draw_contour(image, box_mask, color=(300, 0, 0))
    with pytest.raises(ConfigError, match="center"):
        draw_rectangle(image, box_mask, center="middle")
    with pytest.raises(ConfigError, match="ksize"):
        blur_background(image, box_mask, ksize=4)
    with pytest.raises(InputError, match="mask is empty"):
        red_ellipse(image, np.zeros((H, W), bool))

"""Tests of promptseg.stages.proposals: parity with SamAutomaticMaskGenerator, config, reuse."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from fixtures_sam import shapes_image

from promptseg.errors import ConfigError, InputError
from promptseg.models.sam import SamSegmenter
from promptseg.stages.proposals import (
    MaskGenerationConfig,
    MaskProposals,
    build_point_grid,
    generate_crop_boxes,
    generate_masks,
)

pytest.importorskip("segment_anything")

HEIGHT, WIDTH = 192, 256
# Random weights: low thresholds so that many masks survive (see fixtures_sam).
LOW = {"points_per_side": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.5}
PARITY_CASES = {
    "many-masks": {**LOW, "box_nms_thresh": 1.0},
    "nms": {**LOW},
    "crops": {**LOW, "crop_n_layers": 1},
    "crops-nms1": {**LOW, "crop_n_layers": 1, "box_nms_thresh": 1.0},
    "small-regions": {**LOW, "box_nms_thresh": 1.0, "min_mask_region_area": 300},
    "crops+small-regions": {**LOW, "crop_n_layers": 1, "min_mask_region_area": 300},
    "two-layers-odd-batches": {
        **LOW,
        "points_per_side": 6,
        "points_per_batch": 10,
        "crop_n_layers": 2,
        "crop_n_points_downscale_factor": 2,
    },
    "defaults-8": {"points_per_side": 8},
}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return shapes_image(HEIGHT, WIDTH, seed=1)


@pytest.fixture(scope="module")
def segmenter(tiny_official_sam) -> SamSegmenter:
    return SamSegmenter.from_pretrained(tiny_official_sam.converted_dir)


@pytest.fixture(scope="module")
def official(tiny_official_sam, image):
    """Cached official outputs per parameter set: name -> list of records."""
    from segment_anything import SamAutomaticMaskGenerator

    cache: dict[str, list[dict]] = {}

    def run(name: str, params: dict) -> list[dict]:
        if name not in cache:
            cache[name] = SamAutomaticMaskGenerator(tiny_official_sam.model, **params).generate(
                image
            )
        return cache[name]

    return run


def _xywh_to_xyxy(box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], dtype=np.float32)


def assert_parity(ours: MaskProposals, ref: list[dict]) -> dict[str, float]:
    """Equal counts; official mask i matched by our mask i (same order) at IoU >= 0.99;
    predicted IoU and stability within 1e-3; same crop box and point; boxes within 1 px."""
    assert len(ours) == len(ref)
    stats = {"min_iou": 1.0, "max_score_diff": 0.0}
    for i, record in enumerate(ref):
        ours_i, theirs = ours.masks[i], record["segmentation"]
        union = (ours_i | theirs).sum()
        iou = (ours_i & theirs).sum() / union if union else 1.0
        assert iou >= 0.99, f"mask {i}: IoU {iou:.4f} with the official mask {i}"
        diffs = (
            abs(ours.predicted_iou[i] - record["predicted_iou"]),
            abs(ours.stability_score[i] - record["stability_score"]),
        )
        assert max(diffs) <= 1e-3
        np.testing.assert_allclose(ours.crop_boxes[i], _xywh_to_xyxy(record["crop_box"]))
        np.testing.assert_allclose(ours.point_coords[i], record["point_coords"][0], atol=1e-4)
        np.testing.assert_allclose(ours.boxes[i], _xywh_to_xyxy(record["bbox"]), atol=1.0)
        stats["min_iou"] = min(stats["min_iou"], float(iou))
        stats["max_score_diff"] = max(stats["max_score_diff"], float(max(diffs)))
    return stats


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_generate_masks_matches_official(segmenter, official, image, name):
    params = PARITY_CASES[name]
    ref = official(name, params)
    ours = generate_masks(segmenter, image, MaskGenerationConfig(**params))
    assert ours.masks.shape == (len(ref), HEIGHT, WIDTH)
    assert_parity(ours, ref)


def test_parity_cases_are_not_trivial(official):
    """The fixtures must exercise every path: many masks, crops, and small-region cleaning."""
    full = [0, 0, WIDTH, HEIGHT]
    many = official("many-masks", PARITY_CASES["many-masks"])
    assert len(many) >= 50
    areas = np.array([r["area"] for r in many])
    assert areas.max() < HEIGHT * WIDTH / 2  # object-sized, not whole-image masks
    # crops: masks from sub-crops and from the whole image survive, and the result differs
    # from the whole-image-only run
    crops = official("crops", PARITY_CASES["crops"])
    sources = [list(r["crop_box"]) for r in crops]
    assert any(s != full for s in sources) and any(s == full for s in sources)
    assert len(crops) != len(official("nms", PARITY_CASES["nms"]))
    # small regions: cleaning changes masks (no identical mask) or drops some
    without = official("many-masks", PARITY_CASES["many-masks"])
    cleaned = official("small-regions", PARITY_CASES["small-regions"])
    changed = [
        c
        for c in cleaned
        if not any(np.array_equal(c["segmentation"], w["segmentation"]) for w in without)
    ]
    assert changed
    crops_cleaned = official("crops+small-regions", PARITY_CASES["crops+small-regions"])
    assert len(crops_cleaned) < len(crops)


def test_point_grids_option_matches_official(segmenter, official, image):
    grid = build_point_grid(5)[::2]
    params = {**LOW, "box_nms_thresh": 1.0, "points_per_side": None, "point_grids": [grid]}
    ref = official("point-grids", params)
    ours = generate_masks(segmenter, image, MaskGenerationConfig(**params))
    assert len(ref) > 0
    assert_parity(ours, ref)


def test_given_embedding_is_reused(segmenter, image, monkeypatch):
    params = MaskGenerationConfig(**PARITY_CASES["crops"])
    plain = generate_masks(segmenter, image, params)
    embedding = segmenter.embed(image)
    calls = []
    original = SamSegmenter.embed

    def counting(self, img):
        calls.append(img.shape)
        return original(self, img)

    monkeypatch.setattr(SamSegmenter, "embed", counting)
    reused = generate_masks(segmenter, image, params, embedding=embedding)
    assert (HEIGHT, WIDTH, 3) not in calls  # the whole image was not embedded again
    assert len(calls) == 4  # the four layer-1 crops
    np.testing.assert_array_equal(reused.masks, plain.masks)
    np.testing.assert_array_equal(reused.predicted_iou, plain.predicted_iou)


def test_embedding_of_another_image_is_refused(segmenter, image):
    other = segmenter.embed(image[:100])
    with pytest.raises(InputError, match="size"):
        generate_masks(segmenter, image, MaskGenerationConfig(points_per_side=2), embedding=other)


@pytest.mark.parametrize("fixture", ["tiny_sam_dir", "tiny_sam_hq_dir", "tiny_sam2_dir"])
def test_every_family_generates(request, fixture):
    seg = SamSegmenter.from_pretrained(request.getfixturevalue(fixture))
    image = shapes_image(72, 96, seed=2)
    cfg = MaskGenerationConfig(
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
        crop_n_layers=1,
        min_mask_region_area=20,
    )
    out = generate_masks(seg, image, cfg, progress=True)
    assert len(out) > 0
    assert out.masks.shape[1:] == (72, 96) and out.masks.dtype == bool
    for name in ("boxes", "predicted_iou", "stability_score", "point_coords", "crop_boxes"):
        assert getattr(out, name).dtype == np.float32
    assert out.areas.shape == (len(out),)


def test_empty_result_keeps_every_axis(segmenter, image):
    cfg = MaskGenerationConfig(points_per_side=2, pred_iou_thresh=1.0, crop_n_layers=1)
    out = generate_masks(segmenter, image, cfg)
    assert len(out) == 0
    assert out.masks.shape == (0, HEIGHT, WIDTH)
    assert out.boxes.shape == (0, 4) and out.point_coords.shape == (0, 2)


def test_config_names_and_defaults_match_official():
    from segment_anything import SamAutomaticMaskGenerator

    official = {
        name: p.default
        for name, p in inspect.signature(SamAutomaticMaskGenerator.__init__).parameters.items()
        if name not in ("self", "model", "output_mode")
    }
    ours = {f.name: f.default for f in dataclasses.fields(MaskGenerationConfig)}
    assert ours == official


@pytest.mark.parametrize(
    "bad",
    [
        {"points_per_side": 0},
        {"points_per_side": 4.0},
        {"points_per_side": None},
        {"point_grids": [np.zeros((4, 2))]},
        {"points_per_side": None, "point_grids": [np.full((4, 2), 2.0)]},
        {"points_per_side": None, "point_grids": [np.zeros((4, 2))], "crop_n_layers": 1},
        {"points_per_batch": 0},
        {"pred_iou_thresh": 1.5},
        {"stability_score_thresh": -0.1},
        {"stability_score_offset": -1.0},
        {"box_nms_thresh": 2.0},
        {"crop_n_layers": -1},
        {"crop_nms_thresh": "0.7"},
        {"crop_overlap_ratio": 1.0},
        {"crop_n_points_downscale_factor": 0},
        {"points_per_side": 2, "crop_n_layers": 2, "crop_n_points_downscale_factor": 2},
        {"min_mask_region_area": -5},
    ],
)
def test_config_range_checks(bad):
    with pytest.raises(ConfigError):
        MaskGenerationConfig(**bad)


def test_config_is_frozen_and_hashable():
    cfg = MaskGenerationConfig(points_per_side=None, point_grids=[build_point_grid(2)])
    assert hash(cfg) == hash(dataclasses.replace(cfg))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.points_per_batch = 1  # type: ignore[misc]
    np.testing.assert_array_equal(cfg.layer_point_grids()[0], build_point_grid(2))


def test_helpers_match_official_utils():
    from segment_anything.utils import amg

    for n in (1, 4, 7):
        np.testing.assert_array_equal(build_point_grid(n), amg.build_point_grid(n))
    for size, layers, ratio in [
        ((192, 256), 1, 512 / 1500),
        ((300, 200), 2, 0.2),
        ((5, 5), 1, 0.9),
    ]:
        assert generate_crop_boxes(size, layers, ratio) == amg.generate_crop_boxes(
            size, layers, ratio
        )


def test_bad_image_raises_input_error(segmenter):
    with pytest.raises(InputError):
        generate_masks(segmenter, np.zeros((10, 10), np.uint8))

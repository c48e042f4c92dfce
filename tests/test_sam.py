"""Tests of promptseg.models.sam: loading, embedding, prompting; parity with SamPredictor."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fixtures_sam import TINY_IMAGE_SIZE, shapes_image

from promptseg.errors import ConfigError, InputError, WeightsError
from promptseg.models.sam import ImageEmbedding, PredictedMasks, SamSegmenter

FAMILIES = [("tiny_sam_dir", "sam"), ("tiny_sam_hq_dir", "sam_hq"), ("tiny_sam2_dir", "sam2")]
LOW_RES = 4 * (TINY_IMAGE_SIZE // 16)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return shapes_image(96, 128, seed=0)


@pytest.fixture(scope="module", params=FAMILIES, ids=[f for _, f in FAMILIES])
def loaded(request, image):
    """(segmenter, embedding, family) for each tiny family, loaded from its folder."""
    fixture, family = request.param
    folder = request.getfixturevalue(fixture)
    seg = SamSegmenter.from_pretrained(folder)
    return seg, seg.embed(image), family


def test_from_pretrained_reads_family_and_sizes(loaded):
    seg, _, family = loaded
    assert seg.family == family
    assert seg.image_size == TINY_IMAGE_SIZE
    assert seg.low_res_size == LOW_RES
    assert seg.device == torch.device("cpu")
    assert seg.dtype == torch.float32
    assert not any(p.requires_grad for p in seg.model.parameters())
    assert family in repr(seg)


def test_embed_returns_frozen_value(loaded, image):
    seg, emb, family = loaded
    assert isinstance(emb, ImageEmbedding)
    assert emb.original_size == (96, 128)
    assert emb.input_size == ((128, 128) if family == "sam2" else (96, 128))
    assert emb.model_id == seg.model_id and emb.family == family
    assert emb.image_embeddings.shape == (1, 32, 8, 8)
    assert len(emb.intermediate_embeddings) == (1 if family == "sam_hq" else 0)
    assert len(emb.high_res_features) == (2 if family == "sam2" else 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        emb.original_size = (1, 1)
    again = seg.embed(image)
    torch.testing.assert_close(again.image_embeddings, emb.image_embeddings)


def test_predict_single_point_shapes(loaded):
    seg, emb, _ = loaded
    out = seg.predict(emb, point_coords=[[30.0, 40.0]], point_labels=[1])
    assert isinstance(out, PredictedMasks)
    assert out.logits.shape == (1, 3, 96, 128) and out.logits.dtype == torch.float32
    assert out.iou_scores.shape == (1, 3) and out.iou_scores.dtype == torch.float32
    assert out.low_res_logits.shape == (1, 3, LOW_RES, LOW_RES)
    assert out.masks.dtype == torch.bool and torch.equal(out.masks, out.logits > 0)
    assert len(out) == 1
    single = seg.predict(emb, point_coords=[[30.0, 40.0]], multimask_output=False)
    assert single.logits.shape == (1, 1, 96, 128) and single.iou_scores.shape == (1, 1)


BOXES = np.array([[0, 0, 60, 60], [10, 10, 100, 90], [50, 20, 120, 90]], dtype=np.float32)
POINTS = np.array([[[10, 20], [40, 30]], [[50, 60], [5, 5]], [[100, 80], [90, 10]]], np.float32)
LABELS = np.array([[1, 0], [1, 1], [1, -1]])


@pytest.mark.parametrize("kind", ["points", "boxes", "points+boxes", "points+masks"])
def test_batched_prompts_equal_one_by_one(loaded, kind):
    seg, emb, _ = loaded
    kwargs: dict = {}
    if "points" in kind:
        kwargs.update(point_coords=POINTS, point_labels=LABELS)
    if "boxes" in kind:
        kwargs["boxes"] = BOXES
    if "masks" in kind:
        first = seg.predict(emb, point_coords=POINTS, point_labels=LABELS)
        kwargs["mask_inputs"] = first.low_res_logits[:, :1]
    batched = seg.predict(emb, **kwargs)
    assert batched.logits.shape == (3, 3, 96, 128)
    for b in range(3):
        row = {key: value[b] for key, value in kwargs.items()}
        one = seg.predict(emb, **row)
        torch.testing.assert_close(batched.logits[b], one.logits[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched.iou_scores[b], one.iou_scores[0], atol=1e-5, rtol=1e-5)


def test_prompts_change_the_masks(loaded):
    seg, emb, _ = loaded
    out = seg.predict(emb, point_coords=POINTS[:, :1], boxes=BOXES)
    assert not torch.equal(out.logits[0], out.logits[1])


def test_hq_token_only_changes_sam_hq_output(tiny_sam_hq_dir, image):
    seg = SamSegmenter.from_pretrained(tiny_sam_hq_dir)
    emb = seg.embed(image)
    both = seg.predict(emb, point_coords=[[30, 40]])
    hq = seg.predict(emb, point_coords=[[30, 40]], hq_token_only=True)
    assert hq.logits.shape == (1, 1, 96, 128)
    assert not torch.allclose(both.logits[:, :1], hq.logits)


def test_one_segmenter_serves_many_threads(loaded):
    seg, emb, _ = loaded
    expected = [seg.predict(emb, point_coords=POINTS[i : i + 1]).logits for i in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(
                lambda i: seg.predict(emb, point_coords=POINTS[i : i + 1]).logits,
                [0, 1, 2, 0, 1, 2],
            )
        )
    for i, got in enumerate(results):
        torch.testing.assert_close(got, expected[i % 3])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_returns_float32(tiny_sam_dir, image, dtype):
    full = SamSegmenter.from_pretrained(tiny_sam_dir)
    half = SamSegmenter.from_pretrained(tiny_sam_dir, dtype=dtype)
    assert half.dtype == dtype and next(half.model.parameters()).dtype == dtype
    ref = full.predict(full.embed(image), point_coords=POINTS, point_labels=LABELS)
    out = half.predict(half.embed(image), point_coords=POINTS, point_labels=LABELS)
    assert out.logits.dtype == out.iou_scores.dtype == out.low_res_logits.dtype == torch.float32
    agreement = (out.masks == ref.masks).float().mean().item()
    assert agreement > 0.98


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point_coords": np.zeros((2, 3, 3))}, "point_coords must be"),
        ({"point_coords": np.zeros((2, 3, 2)), "point_labels": np.ones((2, 2))}, "point_labels"),
        ({"point_coords": np.zeros((1, 1, 2)), "point_labels": [[2]]}, "point_labels must hold"),
        ({"point_labels": [[1]]}, "without point_coords"),
        ({"boxes": np.zeros((2, 5))}, "boxes must be"),
        ({"boxes": [[10, 10, 5, 20]]}, "x1 >= x0"),
        ({"point_coords": np.zeros((2, 1, 2)), "boxes": np.zeros((3, 4))}, "batch sizes differ"),
        ({"mask_inputs": np.zeros((1, 1, 16, 16))}, "mask_inputs must be"),
        ({"point_coords": [[np.nan, 1.0]]}, "finite"),
    ],
)
def test_bad_prompts_raise_input_error(loaded, kwargs, message):
    seg, emb, _ = loaded
    with pytest.raises(InputError, match=message):
        seg.predict(emb, **kwargs)


def test_embedding_of_another_model_is_refused(tiny_sam_dir, tiny_sam_hq_dir, image):
    sam = SamSegmenter.from_pretrained(tiny_sam_dir)
    hq = SamSegmenter.from_pretrained(tiny_sam_hq_dir)
    with pytest.raises(InputError, match="embed the image again"):
        hq.predict(sam.embed(image), point_coords=[[1, 1]])
    with pytest.raises(InputError, match="ImageEmbedding"):
        sam.predict("not an embedding", point_coords=[[1, 1]])
    half = SamSegmenter.from_pretrained(tiny_sam_dir, dtype="bf16")
    with pytest.raises(InputError, match="bfloat16"):
        sam.predict(half.embed(image), point_coords=[[1, 1]])


def test_dtype_strings_and_bad_dtypes(tiny_sam_dir):
    assert SamSegmenter.from_pretrained(tiny_sam_dir, dtype="fp16").dtype == torch.float16
    with pytest.raises(ConfigError, match="dtype"):
        SamSegmenter.from_pretrained(tiny_sam_dir, dtype="int8")
    with pytest.raises(ConfigError, match="dtype"):
        SamSegmenter.from_pretrained(tiny_sam_dir, dtype=torch.float64)


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), [[0, 0, 0]]]
)
def test_bad_images_raise_input_error(tiny_sam_dir, bad):
    seg = SamSegmenter.from_pretrained(tiny_sam_dir)
    with pytest.raises(InputError, match="image must be"):
        seg.embed(bad)


def test_wrong_family_folder_raises_weights_error(tmp_path):
    folder = tmp_path / "clip_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(WeightsError, match="clip") as info:
        SamSegmenter.from_pretrained(folder)
    assert str(folder) in str(info.value)


def test_missing_folder_or_config_raises_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        SamSegmenter.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="no config.json"):
        SamSegmenter.from_pretrained(tmp_path)


def test_corrupt_weights_raise_weights_error(tiny_sam_dir, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_sam_dir / "config.json").read_text())
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="could not load SamModel"):
        SamSegmenter.from_pretrained(folder)


# ------------------------------------------------------------------ parity with SamPredictor
@pytest.fixture(scope="module")
def official_pair(tiny_official_sam):
    from segment_anything import SamPredictor

    image = shapes_image(96, 128, seed=0)
    predictor = SamPredictor(tiny_official_sam.model)
    predictor.set_image(image)
    seg = SamSegmenter.from_pretrained(tiny_official_sam.converted_dir)
    return predictor, seg, seg.embed(image)


def test_embedding_matches_official(official_pair):
    predictor, _, emb = official_pair
    assert emb.input_size == tuple(predictor.input_size)
    torch.testing.assert_close(emb.image_embeddings, predictor.features, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "prompt",
    [
        {"point_coords": np.array([[30.0, 40.0]]), "point_labels": np.array([1])},
        {
            "point_coords": np.array([[30.0, 40.0], [100.5, 70.25]]),
            "point_labels": np.array([1, 0]),
        },
        {"box": np.array([20.0, 10.0, 90.0, 80.0])},
        {
            "point_coords": np.array([[60.0, 50.0]]),
            "point_labels": np.array([0]),
            "box": np.array([5.0, 5.0, 120.0, 90.0]),
        },
    ],
    ids=["point", "two-points", "box", "point+box"],
)
@pytest.mark.parametrize("multimask", [True, False])
def test_predict_matches_official_predictor(official_pair, prompt, multimask):
    predictor, seg, emb = official_pair
    ref_logits, ref_iou, ref_low = predictor.predict(
        **prompt, multimask_output=multimask, return_logits=True
    )
    out = seg.predict(
        emb,
        point_coords=None if "point_coords" not in prompt else prompt["point_coords"][None],
        point_labels=None if "point_labels" not in prompt else prompt["point_labels"][None],
        boxes=None if "box" not in prompt else prompt["box"][None],
        multimask_output=multimask,
    )
    np.testing.assert_allclose(out.logits[0].numpy(), ref_logits, atol=1e-3, rtol=0)
    np.testing.assert_allclose(out.iou_scores[0].numpy(), ref_iou, atol=1e-4, rtol=0)
    np.testing.assert_allclose(out.low_res_logits[0].numpy(), ref_low, atol=1e-3, rtol=0)
    ours, theirs = out.masks[0].numpy(), ref_logits > 0
    iou = (ours & theirs).sum() / max((ours | theirs).sum(), 1)
    assert iou >= 0.99


def test_mask_input_matches_official_predictor(official_pair):
    predictor, seg, emb = official_pair
    points, labels = np.array([[30.0, 40.0]]), np.array([1])
    _, _, low = predictor.predict(points, labels, multimask_output=True, return_logits=True)
    ref_logits, ref_iou, _ = predictor.predict(
        points, labels, mask_input=low[:1], multimask_output=False, return_logits=True
    )
    first = seg.predict(emb, point_coords=points[None], point_labels=labels[None])
    out = seg.predict(
        emb,
        point_coords=points[None],
        point_labels=labels[None],
        mask_inputs=first.low_res_logits[:, :1],
        multimask_output=False,
    )
    np.testing.assert_allclose(out.logits[0].numpy(), ref_logits, atol=1e-3, rtol=0)
    np.testing.assert_allclose(out.iou_scores[0].numpy(), ref_iou, atol=1e-4, rtol=0)

"""Tests of promptseg.convert.coco: RLE helpers, export, read-back round trip."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from promptseg.convert.coco import from_coco, rle_decode, rle_encode, save_coco, to_coco
from promptseg.errors import InputError
from promptseg.result import Segmentation

H, W = 20, 30
PROMPTS = ("a cat", "a dog", "a cat")  # duplicate prompts keep their own category


def _seg(n: int = 5, seed: int = 0) -> Segmentation:
    rng = np.random.default_rng(seed)
    masks = rng.random((n, H, W)) > 0.7
    if n > 1:
        masks[1] = False  # an empty mask
    boxes = rng.uniform(0, 10, (n, 2)).astype(np.float32)
    boxes = np.concatenate([boxes, boxes + rng.uniform(0, 10, (n, 2)).astype(np.float32)], 1)
    return Segmentation(
        masks=masks,
        scores=rng.random(n).astype(np.float32),
        boxes=boxes,  # not the mask boxes: they must survive as given
        query_index=rng.integers(0, len(PROMPTS), n),
        prompts=PROMPTS,
        extras={
            "predicted_iou": rng.random(n).astype(np.float32),
            "clip_scores": rng.random((n, len(PROMPTS))).astype(np.float32),
            "proposal_index": np.arange(n, dtype=np.int64),
        },
    )


@pytest.mark.parametrize("n", [0, 1, 5])
def test_rle_round_trip(n: int) -> None:
    masks = np.random.default_rng(n).random((n, 7, 9)) > 0.5
    rles = rle_encode(masks)
    assert len(rles) == n
    assert all(isinstance(r["counts"], str) and r["size"] == [7, 9] for r in rles)
    json.dumps(rles)
    decoded = rle_decode(rles, image_size=(7, 9))
    assert decoded.dtype == bool and decoded.shape == (n, 7, 9)
    np.testing.assert_array_equal(decoded, masks)


def test_rle_matches_pycocotools_and_accepts_bytes_and_lists() -> None:
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    (rle,) = rle_encode(mask)  # a single (H, W) mask is accepted
    ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert rle["counts"] == ref["counts"].decode()
    as_bytes = {"size": [4, 5], "counts": ref["counts"]}
    # Uncompressed RLE: column-major run lengths starting with background.
    flat = mask.flatten(order="F")
    runs, value, count = [], False, 0
    for v in flat:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    runs.append(count)
    uncompressed = {"size": [4, 5], "counts": runs}
    for r in (rle, as_bytes, uncompressed):
        np.testing.assert_array_equal(rle_decode([r])[0], mask)


def test_rle_decode_warnings_suppressed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rle_decode(rle_encode(np.ones((1, 3, 3), bool)))


@pytest.mark.parametrize(
    ("rles", "kwargs", "match"),
    [
        ([], {}, "image_size"),
        ([{"size": [2, 2]}], {}, "'size' and 'counts'"),
        (
            [{"size": [2, 2], "counts": "04"}, {"size": [3, 2], "counts": "06"}],
            {},
            "different sizes",
        ),
        ([{"size": [2, 2], "counts": "04"}], {"image_size": (3, 3)}, "differs"),
    ],
)
def test_rle_decode_errors(rles, kwargs, match: str) -> None:
    with pytest.raises(InputError, match=match):
        rle_decode(rles, **kwargs)


def test_to_coco_structure() -> None:
    seg = _seg()
    data = to_coco(seg, image_id=7, file_name="cat.jpg", annotation_id_start=100)
    json.dumps(data)
    assert data["images"] == [{"id": 7, "file_name": "cat.jpg", "height": H, "width": W}]
    assert data["categories"] == [{"id": q + 1, "name": p} for q, p in enumerate(PROMPTS)]
    anns = data["annotations"]
    assert [a["id"] for a in anns] == list(range(100, 105))
    for i, a in enumerate(anns):
        assert a["image_id"] == 7 and a["iscrowd"] == 0
        assert a["category_id"] == seg.query_index[i] + 1
        assert a["area"] == int(seg.masks[i].sum())
        x1, y1, x2, y2 = seg.boxes[i].tolist()
        assert a["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
        assert a["score"] == pytest.approx(float(seg.scores[i]))
        assert a["predicted_iou"] == pytest.approx(float(seg.extras["predicted_iou"][i]))
        assert len(a["clip_scores"]) == len(PROMPTS)
        # RLE agrees with pycocotools' own area
        rle = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()}
        assert int(mask_utils.area(rle)) == a["area"]
    assert to_coco(seg)["images"][0]["file_name"] == "1.png"
    assert "predicted_iou" not in to_coco(seg, include_extras=False)["annotations"][0]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_round_trip_file(tmp_path: Path, n: int) -> None:
    seg = _seg(n)
    path = seg.save_coco(tmp_path / "out" / "coco.json", image_id=3, file_name="x.png")
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == ["coco.json"]
    back = from_coco(path)
    assert back.prompts == seg.prompts and back.image_size == seg.image_size
    np.testing.assert_array_equal(back.masks, seg.masks)
    np.testing.assert_array_equal(back.scores, seg.scores)
    np.testing.assert_array_equal(back.boxes, seg.boxes)
    np.testing.assert_array_equal(back.query_index, seg.query_index)
    assert back.scores.dtype == np.float32 and back.boxes.dtype == np.float32
    if n:
        assert set(back.extras) == set(seg.extras)
        np.testing.assert_allclose(back.extras["clip_scores"], seg.extras["clip_scores"])
        np.testing.assert_array_equal(back.extras["proposal_index"], seg.extras["proposal_index"])
    assert back.meta["file_name"] == "x.png" and back.meta["image_id"] == 3
    same = Segmentation.from_coco(json.loads(path.read_text()), image_id=3)
    np.testing.assert_array_equal(same.masks, seg.masks)


def test_save_coco_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def broken_dump(obj, fh, **kwargs):
        fh.write('{"images": [')  # half the JSON, then the encoder fails
        raise TypeError("not JSON serializable")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(TypeError):
        save_coco(_seg(), tmp_path / "coco.json")
    assert list(tmp_path.iterdir()) == []


def test_from_plain_coco_ground_truth() -> None:
    # A ground-truth style file: gapped category ids, polygons, no scores, two images.
    corner = rle_encode(np.pad(np.ones((1, 2, 2), bool), ((0, 0), (0, 8), (0, 8))))[0]
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": 10, "width": 10},
            {"id": 2, "file_name": "b.jpg", "height": 10, "width": 10},
        ],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 2, "category_id": 90, "iscrowd": 0, "area": 16,
             "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
            {"id": 2, "image_id": 2, "category_id": 18, "iscrowd": 0,
             "segmentation": corner},
            {"id": 3, "image_id": 1, "category_id": 18, "iscrowd": 0,
             "segmentation": [[0, 0, 1, 0, 1, 1]]},
        ],
    }
    seg = from_coco(data, image_id=2)
    assert seg.prompts == ("dog", "toothbrush")  # ordered by category id
    assert seg.query_index.tolist() == [1, 0]
    assert seg.scores.tolist() == [1.0, 1.0]  # no score: 1.0
    assert seg.masks[0, 3:6, 3:6].all() and not seg.masks[0, 8:].any()
    np.testing.assert_array_equal(seg.boxes[0], [2, 2, 6, 6])  # from bbox
    np.testing.assert_array_equal(seg.boxes[1], [0, 0, 2, 2])  # from the mask
    assert seg.extras == {}
    with pytest.raises(InputError, match="2 images; pass image_id"):
        from_coco(data)
    with pytest.raises(InputError, match="no image with id 5"):
        from_coco(data, image_id=5)
    assert len(from_coco({**data, "annotations": []}, image_id=1)) == 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d["annotations"][0].update(category_id=99), "category_id 99"),
        (lambda d: d["annotations"][0].pop("segmentation"), "no usable segmentation"),
        (
            lambda d: d["annotations"][0].update(segmentation={"size": [3, 3], "counts": "09"}),
            "mask size",
        ),
    ],
)
def test_from_coco_errors(mutate, match: str) -> None:
    data = to_coco(_seg(2))
    mutate(data)
    with pytest.raises(InputError, match=match):
        from_coco(data)


def test_from_coco_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        from_coco(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a readable COCO JSON"):
        from_coco(bad)


def test_extra_named_like_coco_key() -> None:
    seg = Segmentation.from_masks(
        np.ones((1, 2, 2), bool), [1.0], [0], ["x"], extras={"score": [0.5]}
    )
    with pytest.raises(InputError, match="clash"):
        to_coco(seg)
    assert "score" in to_coco(seg, include_extras=False)["annotations"][0]

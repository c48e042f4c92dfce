"""Instance-task benchmark readers, each on a tiny fixture written in its published format."""

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from promptseg.convert.coco import rle_encode
from promptseg.data.shapeworld import generate_scene, write_dataset
from promptseg.errors import InputError
from promptseg.eval.datasets import load_dataset
from promptseg.eval.datasets._common import read_mask
from promptseg.eval.datasets.coco import CocoObjects
from promptseg.eval.datasets.folders import MaskFolder, prompt_from_file_name
from promptseg.eval.datasets.referring import PhraseCut, RefCOCO
from promptseg.eval.datasets.shapeworld import ShapeWorldFiles
from promptseg.eval.datasets.table import TableDataset


def _image(path, h, w, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def _mask(path, mask, value=255):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * value).save(path)
    return path


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# --------------------------------------------------------------------------- COCO


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco"
    _image(root / "val2017" / "000000000001.jpg", 20, 30)
    _image(root / "val2017" / "000000000002.jpg", 16, 16)
    rle = rle_encode(_box(20, 30, 10, 15, 20, 28))[0]
    wrong = rle_encode(_box(8, 8, 0, 4, 0, 4))[0]  # an 8x8 RLE on a 16x16 image
    data = {
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "height": 20, "width": 30},
            {"id": 2, "file_name": "000000000002.jpg", "height": 16, "width": 16},
        ],
        "categories": [
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 17, "name": "cat", "supercategory": "animal"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 40,
             "segmentation": [[2, 3, 10, 3, 10, 8, 2, 8]], "bbox": [2, 3, 8, 5]},
            {"id": 11, "image_id": 1, "category_id": 17, "iscrowd": 0, "area": 40,
             "segmentation": rle, "bbox": [20, 10, 8, 5]},
            {"id": 12, "image_id": 1, "category_id": 18, "iscrowd": 1, "area": 4,
             "segmentation": {"size": [20, 30], "counts": [0, 4, 596]}, "bbox": [0, 0, 1, 4]},
            {"id": 20, "image_id": 2, "category_id": 17, "iscrowd": 0, "area": 16,
             "segmentation": wrong, "bbox": [0, 0, 4, 4]},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def test_coco_one_sample_per_annotation_crowd_skipped(coco_root):
    ds = CocoObjects(coco_root)
    samples = list(ds)
    assert len(ds) == 3
    assert [s.id for s in samples] == [
        "coco/val2017/img-1/ann-10", "coco/val2017/img-1/ann-11", "coco/val2017/img-2/ann-20",
    ]
    assert [s.prompts for s in samples] == [("dog",), ("cat",), ("cat",)]
    assert all(s.tags == ("",) for s in samples)
    assert samples[0].image == coco_root / "val2017" / "000000000001.jpg"
    assert samples[0].info["category"] == "dog" and samples[0].info["annotation_id"] == 10
    polygon = samples[0].load()
    assert polygon.image.shape == (20, 30, 3) and polygon.masks.dtype == bool
    np.testing.assert_array_equal(polygon.masks[0], _box(20, 30, 3, 8, 2, 10))
    np.testing.assert_array_equal(samples[1].load().masks[0], _box(20, 30, 10, 15, 20, 28))


def test_coco_rle_of_wrong_size_is_reported_on_load(coco_root):
    sample = list(CocoObjects(coco_root))[2]
    with pytest.raises(InputError, match=r"sample coco/val2017/img-2/ann-20: truth of shape "
                                         r"\(1, 8, 8\) does not match the image"):
        sample.load()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_coco_manifest_levels_and_prompts(coco_root, tmp_path, fmt):
    rows = [
        {"image_id": 1, "annotation_id": 11, "level": "easy", "prompt": ""},
        {"image_id": 1, "annotation_id": 10, "level": "very hard", "prompt": "the dog"},
    ]
    path = tmp_path / f"manifest.{fmt}"
    if fmt == "csv":
        path.write_text("image_id,annotation_id,level,prompt\n1,11,easy,\n1,10,very hard,the dog\n")
    else:
        path.write_text(json.dumps(rows))
    ds = load_dataset("coco", coco_root, manifest=path)
    samples = list(ds)
    assert [s.id for s in samples] == ["coco/val2017/img-1/ann-11", "coco/val2017/img-1/ann-10"]
    assert [s.prompts for s in samples] == [("cat",), ("the dog",)]
    assert [s.tags for s in samples] == [("easy",), ("very hard",)]
    np.testing.assert_array_equal(samples[1].load().masks[0], _box(20, 30, 3, 8, 2, 10))


@pytest.mark.parametrize(
    "line, message",
    [
        ("1,99,easy", "annotation 99 is not in instances_val2017.json"),
        ("1,12,easy", "annotation 12 is a crowd region"),
        ("2,10,easy", "annotation 10 belongs to image 1, not 2"),
        ("1,x,easy", "row 1 needs an integer 'annotation_id'"),
    ],
)
def test_coco_manifest_errors(coco_root, tmp_path, line, message):
    path = tmp_path / "m.csv"
    path.write_text(f"image_id,annotation_id,level\n{line}\n")
    with pytest.raises(InputError, match=message):
        CocoObjects(coco_root, manifest=path)


def test_coco_other_annotations_file_and_manifest_under_root(coco_root):
    src = coco_root / "annotations" / "instances_val2017.json"
    src.rename(coco_root / "subset.json")
    (coco_root / "picked.csv").write_text("image_id,annotation_id,level\n1,10,hard\n")
    ds = CocoObjects(coco_root, annotations="subset.json", manifest="picked.csv")
    assert [(s.id, s.prompts, s.tags) for s in ds] == [
        ("coco/val2017/img-1/ann-10", ("dog",), ("hard",)),
    ]


def test_coco_prompt_template_and_errors(coco_root, tmp_path):
    ds = CocoObjects(coco_root, prompt="a photo of a {category}")
    assert next(iter(ds)).prompts == ("a photo of a dog",)
    assert next(iter(CocoObjects(coco_root, prompt="supercategory"))).prompts == ("animal",)
    with pytest.raises(InputError, match=r"has no split 'test2017'; splits: val2017"):
        CocoObjects(coco_root, split="test2017")
    with pytest.raises(InputError, match="is not a folder"):
        load_dataset("coco", tmp_path / "nowhere")
    with pytest.raises(InputError, match="manifest 'nope.csv' not found"):
        CocoObjects(coco_root, manifest="nope.csv")
    with pytest.raises(InputError, match="prompt='x'"):
        CocoObjects(coco_root, prompt="x")
    with pytest.raises(InputError, match="no annotations/instances"):
        CocoObjects(tmp_path)


# --------------------------------------------------------------------------- RefCOCO


@pytest.fixture
def refer_root(tmp_path):
    root = tmp_path / "refer"
    name = "COCO_train2014_000000000005.jpg"
    _image(root / "images" / "train2014" / name, 12, 14)
    refs = [
        {"ref_id": 1, "ann_id": 100, "image_id": 5, "split": "val", "category_id": 1,
         "file_name": "COCO_train2014_000000000005_100.jpg", "sent_ids": [7, 8],
         "sentences": [{"sent": "man on the left", "raw": "Man on the left", "sent_id": 7,
                        "tokens": ["man", "on", "the", "left"]},
                       {"sent": "guy in red", "raw": "guy in red", "sent_id": 8,
                        "tokens": ["guy", "in", "red"]}]},
        {"ref_id": 2, "ann_id": 101, "image_id": 5, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "right person", "sent_id": 9}]},
        {"ref_id": 3, "ann_id": 101, "image_id": 5, "split": "train", "category_id": 1,
         "sentences": [{"sent": "other", "sent_id": 10}]},
    ]
    (root / "refcoco").mkdir(parents=True)
    with open(root / "refcoco" / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    instances = {
        "images": [{"id": 5, "file_name": name, "height": 12, "width": 14}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
        "annotations": [
            {"id": 100, "image_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 6, 1, 6]], "bbox": [1, 1, 4, 5], "area": 20},
            {"id": 101, "image_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentation": rle_encode(_box(12, 14, 2, 10, 8, 13))[0], "bbox": [8, 2, 5, 8],
             "area": 40},
        ],
    }
    (root / "refcoco" / "instances.json").write_text(json.dumps(instances))
    return root


def test_refcoco_one_sample_per_sentence(refer_root):
    ds = load_dataset("refcoco", refer_root, split="val")
    assert isinstance(ds, RefCOCO) and ds.split_by == "unc" and len(ds) == 2
    samples = list(ds)
    assert [s.id for s in samples] == [
        "refcoco/unc/val/ref-1/sent-7", "refcoco/unc/val/ref-1/sent-8",
    ]
    assert [s.prompts for s in samples] == [("man on the left",), ("guy in red",)]
    assert samples[0].tags == ("val",)
    assert samples[0].info == {"ref_id": 1, "sent_id": 7, "ann_id": 100, "image_id": 5,
                               "file_name": "COCO_train2014_000000000005.jpg",
                               "category": "person"}
    loaded = samples[1].load()
    assert loaded.image.shape == (12, 14, 3)
    np.testing.assert_array_equal(loaded.masks[0], _box(12, 14, 1, 6, 1, 5))
    test_a = list(RefCOCO(refer_root, split="testA"))
    assert [s.id for s in test_a] == ["refcoco/unc/testA/ref-2/sent-9"]
    np.testing.assert_array_equal(test_a[0].load().masks[0], _box(12, 14, 2, 10, 8, 13))


def test_refcoco_images_directly_in_images_folder(refer_root):
    name = "COCO_train2014_000000000005.jpg"
    (refer_root / "images" / "train2014" / name).rename(refer_root / "images" / name)
    (refer_root / "images" / "train2014").rmdir()
    sample = next(iter(RefCOCO(refer_root, split="val")))
    assert sample.image == refer_root / "images" / name
    assert sample.load().masks.shape == (1, 12, 14)


def test_refcoco_errors(refer_root, tmp_path):
    with pytest.raises(InputError, match=r"'refcoco' has no split 'testB'; splits: train, val, "
                                         r"testA$"):
        RefCOCO(refer_root, split="testB")
    with pytest.raises(InputError, match=r"refs\(google\).p' not found"):
        RefCOCO(refer_root, split="val", split_by="google")
    with pytest.raises(InputError, match="no split_by 'umd'; choose unc, google"):
        RefCOCO(refer_root, split_by="umd")
    with pytest.raises(InputError, match=r"refcocog/refs\(umd\).p' not found"):
        load_dataset("refcocog", refer_root)
    with pytest.raises(InputError, match="unknown referring dataset"):
        RefCOCO(refer_root, dataset="refclef")
    with pytest.raises(InputError, match="'refcoco\\+': root .* is not a folder"):
        load_dataset("refcoco+", tmp_path / "missing")


def test_refcoco_pickle_with_objects_is_refused(refer_root):
    import collections

    with open(refer_root / "refcoco" / "refs(unc).p", "wb") as fh:
        pickle.dump([collections.OrderedDict(a=1)], fh)
    with pytest.raises(InputError, match="is not a refs pickle"):
        RefCOCO(refer_root)


def test_refcoco_missing_image_folder(refer_root):
    import shutil

    shutil.rmtree(refer_root / "images")
    with pytest.raises(InputError, match="no image folder"):
        RefCOCO(refer_root)


# --------------------------------------------------------------------------- PhraseCut


@pytest.fixture
def phrasecut_root(tmp_path):
    root = tmp_path / "phrasecut"
    _image(root / "images" / "2345.jpg", 10, 12)
    tasks = [
        {"task_id": "2345__111", "image_id": 2345, "phrase": "white sign",
         "Polygons": [[[[1, 1], [5, 1], [5, 4], [1, 4]]], [[[7, 6], [9, 6], [9, 8], [7, 8]]]],
         "instance_boxes": [[1, 1, 4, 3], [7, 6, 2, 2]]},
        {"task_id": "2345__112", "image_id": 2345, "phrase": "sky",
         "Polygons": [[[[0, 0], [11, 0], [11, 0.4], [0, 0.4]]]], "instance_boxes": [[0, 0, 11, 1]]},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "refer_val.json").write_text(json.dumps(tasks))
    return root


def test_phrasecut_union_of_instance_polygons(phrasecut_root):
    ds = load_dataset("phrasecut", phrasecut_root, split="val")
    assert isinstance(ds, PhraseCut) and len(ds) == 2
    samples = list(ds)
    assert [s.id for s in samples] == ["phrasecut/val/2345__111", "phrasecut/val/2345__112"]
    assert [s.prompts for s in samples] == [("white sign",), ("sky",)]
    assert samples[0].info["instances"] == 2
    expected = _box(10, 12, 1, 5, 1, 6) | _box(10, 12, 6, 9, 7, 10)
    np.testing.assert_array_equal(samples[0].load().masks[0], expected)
    np.testing.assert_array_equal(samples[1].load().masks[0], _box(10, 12, 0, 1, 0, 12))


def test_phrasecut_errors(phrasecut_root):
    with pytest.raises(InputError, match="has no split 'dev'; splits: train, val, test, miniv"):
        PhraseCut(phrasecut_root, split="dev")
    with pytest.raises(InputError, match="refer_test.json' not found"):
        PhraseCut(phrasecut_root)
    (phrasecut_root / "images" / "2345.jpg").unlink()
    with pytest.raises(InputError, match="sample phrasecut/val/2345__111: image: .* not found"):
        next(iter(PhraseCut(phrasecut_root, split="val"))).load()


# --------------------------------------------------------------------------- folders


def test_read_mask_rules(tmp_path):
    gray = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png", "m"), [[0, 0, 1, 1]])
    Image.fromarray(np.array([[0, 1, 1, 0]], dtype=np.uint8)).save(tmp_path / "01.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "01.png", "m"), [[0, 1, 1, 0]])
    rgb = np.zeros((1, 3, 3), dtype=np.uint8)
    rgb[0, 1, 2] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "c.png", "m"), [[0, 1, 0]])
    pal = Image.fromarray(np.array([[0, 2, 0]], dtype=np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20])
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png", "m"), [[0, 1, 0]])
    Image.fromarray(np.array([[0, 300]], dtype=np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "i16.png", "m"), [[0, 1]])
    with pytest.raises(InputError, match="m: .* not found"):
        read_mask(tmp_path / "none.png", "m")
    (tmp_path / "bad.png").write_text("no image")
    with pytest.raises(InputError, match="not a readable mask image"):
        read_mask(tmp_path / "bad.png", "m")


@pytest.mark.parametrize(
    "stem, preset, prompt",
    [
        ("bicycle_12345", "thinobject5k", "bicycle"),
        ("tennis_racket_3", "thinobject5k", "tennis racket"),
        ("Aerial-Lift_0001", None, "aerial lift"),
        ("12345", None, None),
        ("1#Accessories#1#Bag#2339506821_83cf9f1d22_o", "dis5k", "bag"),
        ("13#Furniture#5#Folding_Chair#abc", "dis5k", "folding chair"),
        ("bag_1", "dis5k", "bag"),
        ("pottedplant_2031_im", "big", "potted plant"),
        ("aeroplane_2008_000716", "big", "aeroplane"),
        ("lamp_1", "big", "lamp"),
        ("CHNCXR_0001_0", "chest-xray", "lungs"),
    ],
)
def test_prompt_from_file_name(stem, preset, prompt):
    assert prompt_from_file_name(stem, preset) == prompt


def test_plain_folder(tmp_path):
    root = tmp_path / "mine"
    _image(root / "images" / "cat_1.png", 8, 10)
    _mask(root / "masks" / "cat_1.png", _box(8, 10, 2, 5, 3, 7))
    _image(root / "images" / "tennis_racket_2.jpg", 6, 6)
    _mask(root / "masks" / "tennis_racket_2_mask.png", _box(6, 6, 0, 3, 0, 6))
    ds = load_dataset("folder", root)
    assert isinstance(ds, MaskFolder) and ds.split == "all"
    samples = list(ds)
    assert [s.id for s in samples] == ["folder/all/cat_1", "folder/all/tennis_racket_2"]
    assert [s.prompts for s in samples] == [("cat",), ("tennis racket",)]
    assert samples[1].info == {"file_name": "tennis_racket_2.jpg",
                               "mask_files": ["tennis_racket_2_mask.png"]}
    np.testing.assert_array_equal(samples[0].load().masks[0], _box(8, 10, 2, 5, 3, 7))
    fixed = list(MaskFolder(root, prompt="thing"))
    assert [s.prompts for s in fixed] == [("thing",), ("thing",)]


def test_plain_folder_errors(tmp_path):
    root = tmp_path / "mine"
    _image(root / "images" / "cat_1.png", 8, 10)
    _mask(root / "masks" / "cat_1.png", _box(4, 4, 0, 2, 0, 2))  # wrong size
    with pytest.raises(InputError, match=r"sample folder/all/cat_1: truth of shape \(1, 4, 4\) "
                                         r"does not match the image \(expected \(1, 8, 10\)\)"):
        next(iter(MaskFolder(root))).load()
    with pytest.raises(InputError, match="has no split 'val'; splits: all, images, masks"):
        MaskFolder(root, split="val")
    _image(root / "images" / "dog_2.png", 8, 10)
    with pytest.raises(InputError, match=r"1 image\(s\) have no mask .* \(first: 'dog_2.png'\)"):
        MaskFolder(root)
    _mask(root / "masks" / "dog_2.png", _box(8, 10, 0, 1, 0, 1))
    _image(root / "images" / "0042.png", 8, 10)
    _mask(root / "masks" / "0042.png", _box(8, 10, 0, 1, 0, 1))
    with pytest.raises(InputError, match="file name '0042.png' gives no prompt; pass a fixed"):
        MaskFolder(root)
    with pytest.raises(InputError, match="no image and mask folders"):
        MaskFolder(root, images="pics")
    with pytest.raises(InputError, match="unknown folder preset 'sbd'"):
        MaskFolder(root, preset="sbd")


def test_thinobject5k_list_file_and_sam_hq_layout(tmp_path):
    root = tmp_path / "ThinObject5K"
    for stem in ("bicycle_1", "fence_2", "wire_3"):
        _image(root / "images" / f"{stem}.jpg", 6, 8)
        _mask(root / "masks" / f"{stem}.png", _box(6, 8, 1, 2, 1, 7))
    (root / "list").mkdir()
    (root / "list" / "test.txt").write_text("bicycle_1.jpg\nwire_3.jpg\n")
    ds = load_dataset("thinobject5k", root)
    assert ds.split == "test"
    assert [s.id for s in ds] == ["thinobject5k/test/bicycle_1", "thinobject5k/test/wire_3"]
    assert [s.prompts for s in ds] == [("bicycle",), ("wire",)]
    hq = tmp_path / "hq"
    _image(hq / "images_test" / "rope_9.jpg", 6, 8)
    _mask(hq / "masks_test" / "rope_9.png", _box(6, 8, 0, 6, 3, 4))
    sample = next(iter(MaskFolder(hq, preset="thinobject5k")))
    assert sample.prompts == ("rope",)
    np.testing.assert_array_equal(sample.load().masks[0], _box(6, 8, 0, 6, 3, 4))
    with pytest.raises(InputError, match="has no split 'val'; splits: test, train"):
        MaskFolder(root, preset="thinobject5k", split="val")


def test_dis5k(tmp_path):
    root = tmp_path / "DIS5K"
    stem = "1#Accessories#1#Bag#2339506821_83cf9f1d22_o"
    _image(root / "DIS-VD" / "im" / f"{stem}.jpg", 7, 9)
    gt = np.zeros((7, 9), dtype=np.uint8)
    gt[2:4, 1:8] = 200  # anti-aliased 8-bit values
    gt[4, 1:8] = 100
    (root / "DIS-VD" / "gt").mkdir(parents=True)
    Image.fromarray(gt).save(root / "DIS-VD" / "gt" / f"{stem}.png")
    ds = load_dataset("dis5k", root)
    sample = next(iter(ds))
    assert ds.split == "DIS-VD" and sample.id == f"dis5k/DIS-VD/{stem}"
    assert sample.prompts == ("bag",)
    np.testing.assert_array_equal(sample.load().masks[0], _box(7, 9, 2, 4, 1, 8))
    with pytest.raises(InputError, match="split folder .*DIS-TE1' not found; splits found under "
                                         "root: DIS-VD"):
        load_dataset("dis5k", root, split="DIS-TE1")
    with pytest.raises(InputError, match="has no split 'DIS-TE5'"):
        load_dataset("dis5k", root, split="DIS-TE5")


def test_big_pairs_im_and_gt_and_ignores_seg(tmp_path):
    root = tmp_path / "BIG"
    folder = root / "test"
    _image(folder / "aeroplane_2008_000716_im.jpg", 8, 8)
    _mask(folder / "aeroplane_2008_000716_gt.png", _box(8, 8, 1, 7, 1, 7))
    _mask(folder / "aeroplane_2008_000716_seg.png", _box(8, 8, 0, 8, 0, 8))
    _image(folder / "diningtable_2009_1_im.jpg", 8, 8)
    _mask(folder / "diningtable_2009_1_gt.png", _box(8, 8, 4, 8, 0, 8))
    ds = load_dataset("big", root)
    samples = list(ds)
    assert [s.id for s in samples] == [
        "big/test/aeroplane_2008_000716", "big/test/diningtable_2009_1",
    ]
    assert [s.prompts for s in samples] == [("aeroplane",), ("dining table",)]
    assert samples[0].info["mask_files"] == ["aeroplane_2008_000716_gt.png"]
    np.testing.assert_array_equal(samples[0].load().masks[0], _box(8, 8, 1, 7, 1, 7))


def test_chest_xray_montgomery_left_right_union(tmp_path):
    root = tmp_path / "MontgomerySet"
    _image(root / "CXR_png" / "MCUCXR_0001_0.png", 10, 10, mode="L")
    _image(root / "CXR_png" / "MCUCXR_0002_0.png", 10, 10, mode="L")  # no masks: skipped
    _mask(root / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png", _box(10, 10, 2, 8, 1, 4), 1)
    _mask(root / "ManualMask" / "rightMask" / "MCUCXR_0001_0.png", _box(10, 10, 2, 8, 6, 9), 1)
    ds = load_dataset("chest-xray", root)
    assert ds.skipped == ["MCUCXR_0002_0.png"] and len(ds) == 1
    sample = next(iter(ds))
    assert sample.id == "chest-xray/all/MCUCXR_0001_0" and sample.prompts == ("lungs",)
    loaded = sample.load()
    assert loaded.image.shape == (10, 10, 3)
    np.testing.assert_array_equal(loaded.masks[0],
                                  _box(10, 10, 2, 8, 1, 4) | _box(10, 10, 2, 8, 6, 9))


def test_chest_xray_kaggle_layout(tmp_path):
    root = tmp_path / "Lung Segmentation"
    _image(root / "CXR_png" / "CHNCXR_0001_0.png", 6, 6, mode="L")
    _mask(root / "masks" / "CHNCXR_0001_0_mask.png", _box(6, 6, 1, 5, 1, 5))
    sample = next(iter(MaskFolder(root, preset="chest-xray")))
    assert sample.prompts == ("lungs",) and sample.info["mask_files"] == ["CHNCXR_0001_0_mask.png"]
    np.testing.assert_array_equal(sample.load().masks[0], _box(6, 6, 1, 5, 1, 5))


# --------------------------------------------------------------------------- table


def test_table_csv(tmp_path):
    root = tmp_path / "t"
    _image(root / "a.png", 5, 6)
    _mask(root / "m" / "a.png", _box(5, 6, 1, 3, 2, 5))
    _mask(root / "small.png", _box(3, 3, 0, 1, 0, 1))
    (root / "samples.csv").write_text(
        "image,mask,prompt,tag,id\n"
        "a.png,m/a.png,the box,easy,\n"
        "a.png,,a unicorn,negative,neg-1\n"
        "a.png,small.png,wrong,,\n"
    )
    ds = load_dataset("table", root)
    samples = list(ds)
    assert [s.id for s in samples] == ["row-1", "neg-1", "row-3"]
    assert [s.prompts for s in samples] == [("the box",), ("a unicorn",), ("wrong",)]
    assert [s.tags for s in samples] == [("easy",), ("negative",), ("",)]
    assert samples[0].image == root / "a.png"
    np.testing.assert_array_equal(samples[0].load().masks[0], _box(5, 6, 1, 3, 2, 5))
    negative = samples[1].load().masks
    assert negative.shape == (1, 5, 6) and not negative.any()
    with pytest.raises(InputError, match=r"sample row-3: truth of shape \(1, 3, 3\) does not "
                                         r"match the image"):
        samples[2].load()
    assert [s.id for s in TableDataset(root / "samples.csv")] == ["row-1", "neg-1", "row-3"]


def test_table_jsonl_with_splits_and_errors(tmp_path):
    _image(tmp_path / "img" / "x.png", 4, 4)
    _mask(tmp_path / "x.png", _box(4, 4, 0, 2, 0, 2))
    rows = [
        {"image": "img/x.png", "mask": "x.png", "prompt": "p1", "split": "val"},
        {"image": str(tmp_path / "img" / "x.png"), "mask": None, "prompt": "p2", "split": "test"},
    ]
    path = tmp_path / "list.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [s.prompts for s in TableDataset(path, split="test")] == [("p2",)]
    assert len(TableDataset(path)) == 2
    with pytest.raises(InputError, match="has no split 'train'; splits: all, test, val"):
        TableDataset(path, split="train")
    with pytest.raises(InputError, match="no samples.csv, samples.jsonl, samples.json in"):
        TableDataset(tmp_path / "img")
    path.write_text(json.dumps({"image": "img/x.png", "mask": "", "prompt": ""}) + "\n")
    with pytest.raises(InputError, match="row 1 has no 'prompt'"):
        TableDataset(path)
    (tmp_path / "gone.csv").write_text("image,mask,prompt\nimg/none.png,,p\n")
    with pytest.raises(InputError, match="sample row-1: image: .*none.png' not found"):
        next(iter(TableDataset(tmp_path / "gone.csv"))).load()
    (tmp_path / "dup.csv").write_text("image,mask,prompt,id\na,,p,k\nb,,q,k\n")
    with pytest.raises(InputError, match="row 2 repeats id 'k'"):
        TableDataset(tmp_path / "dup.csv")


# --------------------------------------------------------------------------- ShapeWorld


def test_shapeworld_files_match_generated_scenes(tmp_path):
    write_dataset(tmp_path, n=3, split="test", crops=False, progress=False)
    ds = load_dataset("shapeworld", tmp_path)
    assert isinstance(ds, ShapeWorldFiles) and ds.split == "test"
    samples = list(ds)
    assert [s.id for s in samples] == [f"shapeworld/test/scene-{i}" for i in range(3)]
    for i, sample in enumerate(samples):
        scene = generate_scene(i, split="test")
        assert sample.prompts == tuple(p.text for p in scene.prompts)
        assert sample.tags == tuple(p.kind for p in scene.prompts)
        assert sample.groups["combination"] == tuple(
            "seen" if p.seen else "held-out" for p in scene.prompts)
        loaded = sample.load()
        np.testing.assert_array_equal(loaded.image, scene.image)
        expected = np.stack([scene.target_mask(p) for p in scene.prompts])
        np.testing.assert_array_equal(loaded.masks, expected)
        for tag, mask in zip(sample.tags, loaded.masks, strict=True):
            assert mask.any() == (tag != "negative")


def test_shapeworld_files_errors(tmp_path):
    write_dataset(tmp_path, n=1, split="val", crops=False, progress=False,
                  scene_captions=False)
    with pytest.raises(InputError, match="instances_test.json and phrases_test.json are needed "
                                         "in .*; found: val"):
        ShapeWorldFiles(tmp_path)
    with pytest.raises(InputError, match="has no split 'dev'; splits: train, val, test"):
        ShapeWorldFiles(tmp_path, split="dev")
    with pytest.raises(InputError, match="unknown domain 'odd'"):
        ShapeWorldFiles(tmp_path, split="val", domain="odd")
    assert len(ShapeWorldFiles(tmp_path, split="val")) == 1
    with pytest.raises(InputError, match=r"unknown prompt kinds \['odd'\]"):
        ShapeWorldFiles(tmp_path, split="val", kinds="single,odd")


def test_shapeworld_files_kinds_filter(tmp_path):
    write_dataset(tmp_path, n=4, split="test", crops=False, progress=False)
    everything = list(ShapeWorldFiles(tmp_path))
    thin = list(load_dataset("shapeworld", tmp_path, kinds="thin,negative"))
    assert {t for s in thin for t in s.tags} <= {"thin", "negative"}
    assert sum(len(s.prompts) for s in thin) == sum(
        t in ("thin", "negative") for s in everything for t in s.tags)
    assert ShapeWorldFiles(tmp_path, kinds=["thin"]).describe()["kinds"] == ["thin"]
    assert "kinds" not in ShapeWorldFiles(tmp_path).describe()

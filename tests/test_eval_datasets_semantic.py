"""Semantic benchmark readers (VOC, Context, COCO-Object, ADE20K) and Pascal-5i episodes,
over tiny fixtures written in each benchmark's published on-disk layout and label encoding."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptseg.errors import ConfigError, InputError
from promptseg.eval.datasets import load_dataset
from promptseg.eval.datasets._labels import (
    ADE150_CLASSES,
    COCO_THING_CLASSES,
    CONTEXT59_CLASSES,
    VOC_CLASSES,
    natural_name,
)
from promptseg.eval.datasets.pascal5i import Pascal5i, fold_classes
from promptseg.eval.datasets.semantic import ADE20K, CocoObject, PascalContext, PascalVOC

H, W = 6, 8


# ------------------------------------------------------------------------------ fixtures
def _jpg(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, "JPEG")


def _palette_png(path: Path, arr: np.ndarray) -> None:
    """A VOC-style palette PNG: the pixel values are palette indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    palette = [0] * 768
    for i in range(256):  # VOC's bit-shuffled colour map; any palette reads the same
        palette[3 * i: 3 * i + 3] = [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256]
    img.putpalette(palette)
    img.save(path)
    assert Image.open(path).mode == "P"


def _gray_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(path)
    assert Image.open(path).mode == "L"


def _label(*values: int) -> np.ndarray:
    """An ``(H, W)`` map: one row band per value, the last row 255 (a border)."""
    arr = np.full((H, W), 255, dtype=np.uint8)
    for i, v in enumerate(values):
        arr[i, :] = v
    return arr


VOC_LABELS = {
    "2007_000001": _label(0, 1, 16, 20, 0),  # background, aeroplane, pottedplant, tvmonitor
    "2007_000002": _label(0, 11, 15, 15, 15),  # diningtable, person
}


def _write_voc(folder: Path, labels: dict[str, np.ndarray], seg_dir: str = "SegmentationClass",
               lists: dict[str, list[str]] | None = None) -> None:
    for key, arr in labels.items():
        _jpg(folder / "JPEGImages" / f"{key}.jpg", *arr.shape)
        if seg_dir == "SegmentationClass":
            _palette_png(folder / seg_dir / f"{key}.png", arr)
        else:
            _gray_png(folder / seg_dir / f"{key}.png", arr)
    sets = folder / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for split, keys in (lists or {"val": list(labels)}).items():
        (sets / f"{split}.txt").write_text("\n".join(keys) + "\n")


@pytest.fixture
def voc_root(tmp_path):
    _write_voc(tmp_path / "VOCdevkit" / "VOC2012", VOC_LABELS,
               lists={"val": list(VOC_LABELS), "train": ["2007_000002"]})
    return tmp_path


# ------------------------------------------------------------------------------ VOC
def test_voc21_keeps_background_as_class(voc_root):
    ds = PascalVOC(voc_root, num_classes=21)
    assert (ds.name, ds.task, ds.background, ds.ignore_index) == ("voc21", "semantic", "class", 255)
    assert len(ds.classes) == 21 and ds.classes[0] == "background"
    assert ds.classes[1:] == VOC_CLASSES
    samples = list(ds)
    assert len(ds) == 2 and [s.id for s in samples] == ["voc21/val/2007_000001",
                                                         "voc21/val/2007_000002"]
    s = samples[0]
    assert len(s.prompts) == 21 and s.prompts[0] == "background"
    assert s.prompts[16] == "potted plant" and s.prompts[20] == "tv monitor"
    assert s.prompts[11] == "dining table" and s.prompts[1] == "aeroplane"
    assert s.info == {"file_name": "2007_000001.jpg", "label_file": "2007_000001.png"}
    loaded = s.load()
    assert loaded.image.shape == (H, W, 3) and loaded.image.dtype == np.uint8
    assert loaded.label_map.dtype == np.int64
    np.testing.assert_array_equal(loaded.label_map, VOC_LABELS["2007_000001"].astype(np.int64))
    assert loaded.masks is None


def test_voc20_ignores_background(voc_root):
    ds = PascalVOC(voc_root, num_classes=20)
    assert ds.name == "voc20" and ds.background == "ignore" and ds.classes == VOC_CLASSES
    loaded = next(iter(ds)).load()
    expected = np.full((H, W), 255)
    expected[1], expected[2], expected[3] = 0, 15, 19  # aeroplane, pottedplant, tvmonitor
    np.testing.assert_array_equal(loaded.label_map, expected)
    assert ds.classes[15] == "pottedplant" and ds.classes[19] == "tvmonitor"
    assert next(iter(ds)).prompts[15] == "potted plant"


@pytest.mark.parametrize("where", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_may_be_any_level(voc_root, where):
    assert len(PascalVOC(voc_root / where)) == 2


def test_voc_split_and_aug_labels(tmp_path):
    _write_voc(tmp_path / "VOC2012", VOC_LABELS, seg_dir="SegmentationClassAug",
               lists={"train": ["2007_000002"]})
    ds = PascalVOC(tmp_path, num_classes=21, split="train")
    assert [s.id for s in ds] == ["voc21/train/2007_000002"]
    np.testing.assert_array_equal(next(iter(ds)).load().label_map, VOC_LABELS["2007_000002"])


def test_voc_prompts_override(voc_root):
    names = [f"a photo of {c}" for c in ("background", *VOC_CLASSES)]
    assert next(iter(PascalVOC(voc_root, prompts=names))).prompts == tuple(names)
    with pytest.raises(ConfigError, match="2 prompts given for its 21 classes"):
        PascalVOC(voc_root, prompts=["a", "b"])


def test_voc_errors(voc_root, tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        PascalVOC(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no split 'test'; splits: val, train, trainval"):
        PascalVOC(voc_root, split="test")
    with pytest.raises(InputError, match="trainval.txt"):  # a split without its list
        PascalVOC(voc_root, split="trainval")
    with pytest.raises(ConfigError, match="20 or 21"):
        PascalVOC(voc_root, num_classes=19)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no JPEGImages/ found"):
        PascalVOC(empty)


def test_voc_bad_label_maps(voc_root):
    folder = voc_root / "VOCdevkit" / "VOC2012"
    seg = folder / "SegmentationClass"
    # a label map of another size than its image: Sample.load says so
    _palette_png(seg / "2007_000001.png", np.zeros((H + 1, W), np.uint8))
    first = next(iter(PascalVOC(voc_root)))
    with pytest.raises(InputError, match=r"does not match the image .*expected \(6, 8\)"):
        first.load()
    # a colour rendering instead of indices
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(seg / "2007_000001.png")
    with pytest.raises(InputError, match="is a RGB image"):
        next(iter(PascalVOC(voc_root))).load()
    # a value VOC does not have
    _palette_png(seg / "2007_000001.png", _label(0, 42))
    with pytest.raises(InputError, match=r"label values 42 .*expected 0-20, 255"):
        next(iter(PascalVOC(voc_root))).load()
    # a missing label file
    (seg / "2007_000001.png").unlink()
    with pytest.raises(InputError, match="label map.*not found"):
        next(iter(PascalVOC(voc_root))).load()


# ------------------------------------------------------------------------------ Context
@pytest.fixture
def context_root(tmp_path):
    folder = tmp_path / "VOCdevkit" / "VOC2010"
    arr = np.array([[0, 1, 40, 59]] * 2, dtype=np.uint8)
    _jpg(folder / "JPEGImages" / "2008_000002.jpg", 2, 4)
    _gray_png(folder / "SegmentationClassContext" / "2008_000002.png", arr)
    sets = folder / "ImageSets" / "SegmentationContext"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("2008_000002\n")
    (sets / "train.txt").write_text("2008_000002\n")
    return tmp_path


def test_context59_and_60(context_root):
    c59 = PascalContext(context_root, num_classes=59)
    assert (c59.name, c59.background, len(c59.classes)) == ("context59", "ignore", 59)
    assert c59.classes == CONTEXT59_CLASSES
    s = next(iter(c59))
    assert s.id == "context59/val/2008_000002" and s.prompts[39] == "potted plant"
    np.testing.assert_array_equal(s.load().label_map, [[255, 0, 39, 58]] * 2)
    c60 = PascalContext(context_root, num_classes=60, split="train")
    assert (c60.name, c60.background, len(c60.classes)) == ("context60", "class", 60)
    assert c60.classes[0] == "background" and c60.classes[40] == "pottedplant"
    np.testing.assert_array_equal(next(iter(c60)).load().label_map, [[0, 1, 40, 59]] * 2)
    assert len(PascalContext(context_root / "VOCdevkit" / "VOC2010")) == 1
    with pytest.raises(InputError, match="splits: val, train"):
        PascalContext(context_root, split="test")
    with pytest.raises(ConfigError, match="59 or 60"):
        PascalContext(context_root, num_classes=61)


# ------------------------------------------------------------------------------ COCO-Object
def _coco(tmp_path: Path, suffix: str, arr: np.ndarray, split: str = "val2017") -> Path:
    root = tmp_path / "coco_stuff164k"
    _jpg(root / "images" / split / "000000000139.jpg", *arr.shape)
    _gray_png(root / "annotations" / split / f"000000000139{suffix}", arr)
    return root


def test_coco_object_raw_stuffthingmaps(tmp_path):
    # raw values are COCO id - 1: person 0, stop sign (id 13) 12, toothbrush (id 90) 89,
    # stuff 91..181 (banner 91, wood 181), 255 unlabeled
    root = _coco(tmp_path, ".png", np.array([[0, 12, 89, 91, 181, 255]], np.uint8))
    ds = CocoObject(root)
    assert (ds.name, ds.background, len(ds.classes), ds.encoding) == (
        "coco-object", "class", 81, "raw")
    assert ds.classes[0] == "background" and ds.classes[1:] == COCO_THING_CLASSES
    assert ds.classes[12] == "stop sign" and ds.classes[80] == "toothbrush"
    s = next(iter(ds))
    assert s.id == "coco-object/val2017/000000000139" and len(s.prompts) == 81
    np.testing.assert_array_equal(s.load().label_map, [[1, 12, 80, 0, 0, 255]])
    bg = CocoObject(root, unlabeled="background")
    np.testing.assert_array_equal(next(iter(bg)).load().label_map, [[1, 12, 80, 0, 0, 0]])
    assert bg.describe()["unlabeled"] == "background"
    # id 12 (raw 11) is no COCO category: the wrong encoding or dataset
    _gray_png(root / "annotations" / "val2017" / "000000000139.png",
              np.array([[0, 11, 0, 0, 0, 0]], np.uint8))
    with pytest.raises(InputError, match="label values 11 "):
        next(iter(CocoObject(root))).load()


def test_coco_object_label_train_ids(tmp_path):
    # mmseg's 171 classes: things 0..79, stuff 80..170
    root = _coco(tmp_path, "_labelTrainIds.png", np.array([[0, 79, 80, 170, 255]], np.uint8))
    ds = CocoObject(root)
    assert ds.encoding == "label"
    np.testing.assert_array_equal(next(iter(ds)).load().label_map, [[1, 80, 0, 0, 255]])


def test_coco_object_instance_train_ids(tmp_path):
    # GroupViT's COCO-Object files: read as they are; preferred over the other encodings
    root = _coco(tmp_path, "_instanceTrainIds.png", np.array([[0, 1, 80, 255]], np.uint8))
    _gray_png(root / "annotations" / "val2017" / "000000000139.png",
              np.array([[5, 5, 5, 5]], np.uint8))
    ds = CocoObject(root)
    assert ds.encoding == "instance" and ds.describe()["encoding"] == "instance"
    np.testing.assert_array_equal(next(iter(ds)).load().label_map, [[0, 1, 80, 255]])
    raw = CocoObject(root, encoding="raw")
    np.testing.assert_array_equal(next(iter(raw)).load().label_map, [[6, 6, 6, 6]])
    with pytest.raises(ConfigError, match="encoding must be"):
        CocoObject(root, encoding="rgb")
    with pytest.raises(ConfigError, match="unlabeled must be"):
        CocoObject(root, unlabeled="drop")


def test_coco_object_errors(tmp_path):
    root = _coco(tmp_path, ".png", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="splits: val2017, train2017"):
        CocoObject(root, split="val2014")
    with pytest.raises(InputError, match="images/train2017/ and annotations/train2017/"):
        CocoObject(root, split="train2017")
    assert len(CocoObject(tmp_path)) == 1  # the folder holding coco_stuff164k


# ------------------------------------------------------------------------------ ADE20K
@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split, name in (("validation", "ADE_val_00000001"), ("training", "ADE_train_00000001")):
        _jpg(root / "images" / split / f"{name}.jpg", 1, 4)
        _gray_png(root / "annotations" / split / f"{name}.png",
                  np.array([[0, 1, 8, 150]], np.uint8))
    return tmp_path


def test_ade150(ade_root):
    ds = ADE20K(ade_root)
    assert (ds.name, ds.background, len(ds.classes), ds.split) == (
        "ade150", "none", 150, "validation")
    assert ds.classes == ADE150_CLASSES and ds.classes[7] == "bed"
    s = next(iter(ds))
    assert s.id == "ade150/validation/ADE_val_00000001" and s.prompts[-1] == "flag"
    np.testing.assert_array_equal(s.load().label_map, [[255, 0, 7, 149]])
    assert [x.id for x in ADE20K(ade_root / "ADEChallengeData2016", split="train")] == [
        "ade150/training/ADE_train_00000001"]
    with pytest.raises(InputError, match="splits: validation, training"):
        ADE20K(ade_root, split="test")


def test_ade150_rejects_values_above_150(ade_root):
    path = ade_root / "ADEChallengeData2016" / "annotations" / "validation"
    _gray_png(path / "ADE_val_00000001.png", np.array([[0, 151, 200, 1]], np.uint8))
    with pytest.raises(InputError, match=r"label values 151, 200 .*expected 0-150, 255"):
        next(iter(ADE20K(ade_root))).load()


# ------------------------------------------------------------------------------ registry
def test_load_dataset_names(voc_root, context_root, ade_root, tmp_path):
    counts = {}
    for name, root in (("voc20", voc_root), ("voc21", voc_root), ("context59", context_root),
                       ("context60", context_root), ("ade150", ade_root)):
        ds = load_dataset(name, root)
        assert ds.name == name and ds.task == "semantic"
        assert ds.describe()["num_classes"] == len(ds.classes)
        counts[name] = len(ds.classes)
    coco = load_dataset("coco-object", _coco(tmp_path / "c", ".png", np.zeros((2, 2), np.uint8)))
    counts["coco-object"] = len(coco.classes)
    assert counts == {"voc20": 20, "voc21": 21, "context59": 59, "context60": 60,
                      "ade150": 150, "coco-object": 81}
    assert load_dataset("voc21", voc_root, split="train").split == "train"
    with pytest.raises(InputError, match="splits: val, train, trainval"):
        load_dataset("voc20", voc_root, split="testing")


def test_natural_names():
    assert natural_name("pottedplant") == "potted plant"
    assert natural_name("tvmonitor") == "tv monitor"
    assert natural_name("bed ") == "bed" and natural_name("sky") == "sky"


# ------------------------------------------------------------------------------ Pascal-5i
# fold 0 = VOC 1..5 (aeroplane, bicycle, bird, boat, bottle); 15 = person is in fold 2
P5I = {
    "a1": _label(0, 1, 1, 15, 0),  # aeroplane + person
    "a2": _label(1, 0, 0, 0, 0),  # aeroplane
    "a3": _label(1, 1, 2, 0, 0),  # aeroplane + bicycle
    "b1": _label(2, 2, 0, 0, 0),  # bicycle
    "c1": _label(3, 0, 0, 0, 0),  # bird, in no other image: no episode
    "p1": _label(15, 15, 0, 0, 0),  # person only
    "p2": _label(15, 0, 7, 0, 0),  # person + car
}


@pytest.fixture
def p5i_root(tmp_path):
    _write_voc(tmp_path / "VOC2012", P5I, lists={"val": list(P5I), "train": list(P5I)})
    return tmp_path


def test_fold_classes():
    assert fold_classes(0) == (1, 2, 3, 4, 5) and fold_classes(3) == (16, 17, 18, 19, 20)
    assert len(fold_classes(1, "train")) == 15 and 6 not in fold_classes(1, "train")


def test_pascal5i_episodes(p5i_root):
    ds = Pascal5i(p5i_root, fold=0, episodes=10)
    assert ds.task == "oneshot" and ds.classes == ()
    assert ds.fold_classes == ("aeroplane", "bicycle", "bird", "boat", "bottle")
    samples = list(ds)
    assert len(ds) == 10 and samples[0].id == "pascal5i/fold0/ep-000000"
    assert samples[9].id == "pascal5i/fold0/ep-000009"
    # pairs in list order, classes ascending: (a1, 1), (a2, 1), (a3, 1), (a3, 2), (b1, 2);
    # (c1, 3) has no support image and is skipped; episodes cycle through the pairs
    pairs = [(s.info["query"], s.info["class_id"]) for s in samples]
    assert pairs[:5] == [("a1", 1), ("a2", 1), ("a3", 1), ("a3", 2), ("b1", 2)]
    assert pairs[5:] == pairs[:5]
    for s in samples:
        (support,) = s.info["support"]
        assert support != s.info["query"]
        holders = {1: {"a1", "a2", "a3"}, 2: {"a3", "b1"}}[s.info["class_id"]]
        assert support in holders
        assert s.prompts == (s.info["class"],) and s.tags == (s.info["class"],)
    # exact masks: the query's and the support's pixels of the class, borders not foreground
    s = samples[3]  # (a3, bicycle): the support can only be b1
    assert s.info["support"] == ["b1"] and s.prompts == ("bicycle",)
    loaded = s.load()
    assert loaded.image.shape == (H, W, 3) and loaded.masks.shape == (1, H, W)
    np.testing.assert_array_equal(loaded.masks[0], P5I["a3"] == 2)
    (simg,), (smask,) = loaded.support_images, loaded.support_masks
    assert simg.shape == (H, W, 3) and smask.dtype == bool
    np.testing.assert_array_equal(smask, P5I["b1"] == 2)
    assert loaded.label_map is None


def test_pascal5i_is_deterministic(p5i_root):
    def draw(**kw):
        return [(s.id, s.info["query"], tuple(s.info["support"]))
                for s in Pascal5i(p5i_root, episodes=40, **kw)]

    first = draw(seed=3)
    assert first == draw(seed=3)
    assert len({sup for _, q, sup in first if q == "a1"}) == 2  # both a2 and a3 drawn
    assert any(draw(seed=s) != first for s in range(4, 8))


def test_pascal5i_options(p5i_root):
    ds = Pascal5i(p5i_root, episodes=None)
    assert len(ds) == 5  # one episode per (query, class) pair
    two = list(Pascal5i(p5i_root, shots=2, episodes=3))
    assert two[0].info["query"] == "a1" and sorted(two[0].info["support"]) == ["a2", "a3"]
    assert len(two[0].load().support_masks) == 2
    # shots=2 leaves only aeroplane (3 images)
    assert {s.info["class_id"] for s in Pascal5i(p5i_root, shots=2, episodes=None)} == {1}
    train = list(Pascal5i(p5i_root, split="train", episodes=None))
    assert {s.info["class"] for s in train} == {"person"}  # car (7) is in one image only
    assert [s.info["query"] for s in train] == ["a1", "p1", "p2"]
    d = Pascal5i(p5i_root, fold=0, seed=5, episodes=7).describe()
    assert (d["fold"], d["seed"], d["episodes"], d["shots"], d["split"]) == (0, 5, 7, 1, "val")
    assert "fold=0" in repr(Pascal5i(p5i_root))


def test_pascal5i_errors(p5i_root, tmp_path):
    with pytest.raises(ConfigError, match="fold must be"):
        Pascal5i(p5i_root, fold=4)
    with pytest.raises(ConfigError, match="shots must be"):
        Pascal5i(p5i_root, shots=0)
    with pytest.raises(ConfigError, match="episodes must be"):
        Pascal5i(p5i_root, episodes=0)
    with pytest.raises(InputError, match="no split 'test'; splits: val, train"):
        Pascal5i(p5i_root, split="test")
    with pytest.raises(InputError, match="is not a folder"):
        Pascal5i(tmp_path / "missing")
    with pytest.raises(InputError, match="no class of fold 3"):
        len(Pascal5i(p5i_root, fold=3))
    # a support label map of another size than its image
    _palette_png(p5i_root / "VOC2012" / "SegmentationClass" / "b1.png",
                 np.full((H + 2, W), 2, np.uint8))
    s = list(Pascal5i(p5i_root, episodes=4))[3]
    assert s.info["support"] == ["b1"]
    with pytest.raises(InputError, match="support 0 label map of shape"):
        s.load()
    # and a query's: from Sample.load
    s = list(Pascal5i(p5i_root, episodes=5))[4]
    assert s.info["query"] == "b1"
    with pytest.raises(InputError, match="does not match the image"):
        s.load()


def test_pascal5i_via_load_dataset(p5i_root):
    ds = load_dataset("pascal5i", p5i_root, fold=0, episodes=3)
    assert isinstance(ds, Pascal5i) and [s.id for s in ds][-1] == "pascal5i/fold0/ep-000002"
    assert load_dataset("pascal5i", p5i_root).episodes == 1000

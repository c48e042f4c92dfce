"""Class-name tables and label-map reading shared by the semantic and one-shot readers.

- The class names of each benchmark, as the benchmark (and mmsegmentation's dataset classes,
  which CaR's and GroupViT's evaluation code use) spells them, index = label value after
  the reader's mapping: :data:`VOC_CLASSES`, :data:`CONTEXT59_CLASSES`,
  :data:`COCO_THING_CLASSES` (with :data:`COCO_THING_IDS`), :data:`ADE150_CLASSES`.
- :func:`natural_name`: the words a text prompt uses for a class whose dataset name is run
  together (``"pottedplant"`` -> ``"potted plant"``).
- :func:`read_label_png`: a label PNG's class indices (palette or grayscale), never its
  colours.
- :func:`label_lut` / :func:`map_labels`: map raw label values to the reader's classes
  through a lookup table that rejects values the benchmark does not have (a sign of the wrong
  folder or encoding), with a message naming them.
- :func:`read_id_list`, :func:`find_folder`: the image lists of ``ImageSets/`` and the
  usual places a benchmark folder sits under ``--root``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from promptseg.errors import InputError
from promptseg.eval.datasets._common import require_file
from promptseg.eval.datasets.base import IGNORE_INDEX

__all__ = [
    "ADE150_CLASSES",
    "COCO_THING_CLASSES",
    "COCO_THING_IDS",
    "CONTEXT59_CLASSES",
    "VOC_CLASSES",
    "find_folder",
    "identity_lut",
    "ignore_background_lut",
    "label_lut",
    "map_labels",
    "natural_name",
    "read_id_list",
    "read_label_png",
]

#: PASCAL VOC 2012's 20 object classes, label values 1..20 (0 is background, 255 borders);
#: Everingham et al., IJCV 2010.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

#: PASCAL-Context's 59 most frequent classes (Mottaghi et al., CVPR 2014), label values 1..59
#: of the ``SegmentationClassContext`` PNGs (0: every other concept, "background").
CONTEXT59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth",
    "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food",
    "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck",
    "tvmonitor", "wall", "water", "window", "wood",
)

#: COCO's 80 thing classes in the standard order (Lin et al. 2014, arXiv:1405.0312).
COCO_THING_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

#: The COCO category id of each of :data:`COCO_THING_CLASSES` (1..90 with gaps). A
#: COCO-Stuff-164k ``stuffthingmaps`` PNG stores ``id - 1``: things 0..89, stuff 91..181.
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78,
    79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)

#: ADE20K's SceneParsing-150 classes (Zhou et al., CVPR 2017), label values 1..150 of the
#: ``ADEChallengeData2016`` PNGs (0: "other", not scored); mmsegmentation's spelling, without
#: its stray space after "bed".
ADE150_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers",
    "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river",
    "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill",
    "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair",
    "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower",
    "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent",
    "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier",
    "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)

# dataset spellings that run words together, and the words a text prompt uses instead
_NATURAL = {
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
}


def natural_name(name: str) -> str:
    """The words a text prompt uses for the class ``name`` (``"tvmonitor"`` -> ``"tv monitor"``;
    other names unchanged, stripped)."""
    name = name.strip()
    return _NATURAL.get(name, name)


def read_label_png(path: Path, what: str) -> np.ndarray:
    """The class indices of a label PNG as ``(H, W) int64``.

    Palette PNGs (VOC's ``SegmentationClass``) give their palette indices, grayscale PNGs
    (8 or 16 bit: ``SegmentationClassAug``, Context, ADE20K, COCO-Stuff) their values; the
    colours are never read.

    Raises:
        InputError: missing, unreadable, or an RGB image (a colour rendering, not a label map).
    """
    from PIL import Image, UnidentifiedImageError

    require_file(path, what)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
                raise InputError(
                    f"{what}: {str(path)!r} is a {img.mode} image; a label map holds one class "
                    "index per pixel (a palette or grayscale PNG), not colours"
                )
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{what}: {str(path)!r} is not a readable label PNG ({exc})") from exc
    return arr.astype(np.int64)


def label_lut(mapping: Mapping[int, int], size: int = 256) -> np.ndarray:
    """A lookup table ``raw value -> label`` of ``size`` entries; ``-1`` marks a raw value
    the benchmark does not have."""
    lut = np.full(size, -1, dtype=np.int64)
    for raw, label in mapping.items():
        lut[raw] = label
    return lut


def map_labels(raw: np.ndarray, lut: np.ndarray, what: str) -> np.ndarray:
    """``lut[raw]`` as ``(H, W) int64``.

    Raises:
        InputError: a raw value outside the table, or one it marks ``-1``; the message lists
            them (a label map from another benchmark, or in another encoding).
    """
    raw = np.asarray(raw, dtype=np.int64)
    bad = (raw < 0) | (raw >= len(lut))
    if not bad.any():
        out = lut[raw]
        bad = out < 0
        if not bad.any():
            return out
    values = np.unique(raw[bad])
    shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    known = np.flatnonzero(lut >= 0)
    raise InputError(
        f"{what}: label values {shown} are not labels of this benchmark (expected "
        f"{_ranges(known)}); is the label map from another dataset or in another encoding?"
    )


def _ranges(values: Sequence[int] | np.ndarray) -> str:
    """``[0, 1, 2, 5, 255]`` -> ``"0-2, 5, 255"``."""
    parts: list[str] = []
    values = [int(v) for v in values]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ", ".join(parts)


def ignore_background_lut(num_classes: int) -> np.ndarray:
    """Raw ``0`` (background) -> ignore, ``1..num_classes`` -> ``0..num_classes-1``, 255 kept
    as ignore: the "without background" rule of VOC-20, Context-59 and ADE-150."""
    mapping = {k: k - 1 for k in range(1, num_classes + 1)}
    return label_lut({0: IGNORE_INDEX, **mapping, IGNORE_INDEX: IGNORE_INDEX})


def identity_lut(num_classes: int) -> np.ndarray:
    """Raw ``0..num_classes-1`` kept (label 0 is the background class), 255 kept as ignore."""
    return label_lut({**{k: k for k in range(num_classes)}, IGNORE_INDEX: IGNORE_INDEX})


def read_id_list(path: Path, what: str) -> list[str]:
    """The image ids of an ``ImageSets`` list, in file order.

    Each non-empty line's first field is an id (``2007_000033``) or an image path
    (``/JPEGImages/2007_000033.jpg`` as in DeepLab's ``train_aug.txt``), whose stem is taken.
    """
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: {str(path)!r} is not a readable text list ({exc})") from exc
    ids = [Path(line.split()[0]).stem for line in text.splitlines() if line.strip()]
    if not ids:
        raise InputError(f"{what}: {str(path)!r} lists no images")
    return ids


def find_folder(root: Path, candidates: Sequence[str], marker: str, what: str) -> Path:
    """The first of ``root / candidate`` holding ``marker`` (a file or folder name).

    Raises:
        InputError: none does; the message lists the places looked at.
    """
    for candidate in candidates:
        folder = root / candidate if candidate else root
        if (folder / marker).exists():
            return folder
    looked = ", ".join(str((root / c) if c else root) for c in candidates)
    raise InputError(
        f"{what}: no {marker}/ found under --root {str(root)!r} (looked in {looked}); pass the "
        "folder holding the benchmark as it is published"
    )

"""Semantic-segmentation benchmarks: one label map per image, scored by a confusion matrix.

The zero-shot semantic benchmarks of [CaR] (``papers/clip-as-rnn.txt``) Sec. 4.1
("Datasets") and Table 1, each read from its published label PNGs, with the paper's
background rule (``background`` of :class:`~promptseg.eval.datasets.base.EvalDataset`):

=================  ========  =======  =================================================
``--dataset``      classes   rule     label map (after mapping)
=================  ========  =======  =================================================
``voc21``          21        class    0 background, 1..20 the VOC objects
``voc20``          20        ignore   0..19 the VOC objects; background not scored
``context60``      60        class    0 background ("other"), 1..59 the Context classes
``context59``      59        ignore   0..58 the Context classes; background not scored
``coco-object``    81        class    0 background (all COCO-Stuff "stuff"), 1..80 things
``ade150``         150       none     0..149; ADE's 0 "other" not scored
=================  ========  =======  =================================================

"Without background" (VOC-20, Context-59: [CaR] Sec. 4.1 and appendix A.2, Table J) scores
only the pixels whose truth is a foreground class: background pixels get ``ignore_index``
(255), as do the benchmarks' own unscored pixels (VOC's object borders, 255).

Every sample of a split has the same prompts: one per class, ``prompts[i]`` standing for
``classes[i]`` (the runner turns the answered masks back into a label map by that index,
``"background"`` included where it is a class). ``classes`` keep the dataset's spelling
(``"pottedplant"``, ``"tvmonitor"``), the prompts the words a text encoder reads
(``"potted plant"``, ``"tv monitor"``: :func:`~promptseg.eval.datasets._labels.natural_name`);
``prompts=`` replaces them (e.g. with the renamed lists of a paper's code).

Sample ids are ``"{name}/{split}/{image stem}"``; ``info`` holds ``file_name`` and
``label_file``. Pixels are read only by :meth:`Sample.load`; construction reads the split's
image list (or lists the image folder) and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import ConfigError, InputError
from promptseg.eval.datasets._common import read_image
from promptseg.eval.datasets._labels import (
    ADE150_CLASSES,
    COCO_THING_CLASSES,
    COCO_THING_IDS,
    CONTEXT59_CLASSES,
    VOC_CLASSES,
    find_folder,
    identity_lut,
    ignore_background_lut,
    label_lut,
    map_labels,
    natural_name,
    read_id_list,
    read_label_png,
)
from promptseg.eval.datasets.base import (
    IGNORE_INDEX,
    EvalDataset,
    LoadedSample,
    Sample,
    check_split,
)

__all__ = ["ADE20K", "COCO_ENCODINGS", "CocoObject", "PascalContext", "PascalVOC"]

#: Label encodings :class:`CocoObject` reads, by the file ending they are found with.
COCO_ENCODINGS = {
    "instance": "_instanceTrainIds.png",  # GroupViT's COCO-Object conversion: 0 bg, 1..80
    "label": "_labelTrainIds.png",  # mmseg's COCO-Stuff-164k: things 0..79, stuff 80..170
    "raw": ".png",  # COCO-Stuff-164k stuffthingmaps: COCO id - 1, stuff 91..181
}


class _LabelMapDataset(EvalDataset):
    """A semantic benchmark as ``(key, image, label PNG)`` items and one lookup table."""

    task = "semantic"

    def __init__(self, root: str | Path, split: str, prompts: Sequence[str] | None):
        super().__init__(root, split)
        if prompts is None:
            prompts = [natural_name(c) for c in self.classes]
        prompts = tuple(str(p) for p in prompts)
        if len(prompts) != len(self.classes):
            raise ConfigError(
                f"dataset {self.name!r}: {len(prompts)} prompts given for its "
                f"{len(self.classes)} classes; pass one prompt per class, in class order"
            )
        self.prompts = prompts
        self._items: list[tuple[str, Path, Path]] = []
        self._lut = np.zeros(0, dtype=np.int64)

    def samples(self) -> Iterator[Sample]:
        for key, image, label in self._items:
            sid = f"{self.name}/{self.split}/{key}"
            yield Sample(
                id=sid, image=image, prompts=self.prompts,
                loader=_LabelLoader(image, label, self._lut, sid),
                info={"file_name": image.name, "label_file": label.name},
            )

    def __len__(self) -> int:
        return len(self._items)

    def _check_any(self, where: Path) -> None:
        if not self._items:
            raise InputError(f"dataset {self.name!r}: split {self.split!r} has no images in "
                             f"{str(where)!r}")


class _LabelLoader:
    """Reads one image and its label PNG, mapped to the dataset's classes."""

    def __init__(self, image: Path, label: Path, lut: np.ndarray, sid: str):
        self.image, self.label, self.lut, self.sid = image, label, lut, sid

    def __call__(self) -> LoadedSample:
        image = read_image(self.image, f"sample {self.sid}: image")
        what = f"sample {self.sid}: label map"
        raw = read_label_png(self.label, what)
        return LoadedSample(image=image, label_map=map_labels(raw, self.lut, what))


def _voc_items(folder: Path, ids: Sequence[str], labels: Path) -> list[tuple[str, Path, Path]]:
    return [(k, folder / "JPEGImages" / f"{k}.jpg", labels / f"{k}.png") for k in ids]


class PascalVOC(_LabelMapDataset):
    """PASCAL VOC 2012 segmentation, with background as a class (VOC-21) or not scored (VOC-20).

    [CaR] Sec. 4.1: "Pascal VOC encompasses 21 categories: 20 object classes (VOC-20)
    alongside one background class (VOC-21)"; VOC-20 ignores the background pixels
    (appendix A.2). The 255 object borders are never scored.

    Layout (Everingham et al., the VOC2012 devkit): ``JPEGImages/{id}.jpg``,
    ``SegmentationClass/{id}.png`` (palette PNGs: index 0 background, 1..20 the classes of
    :data:`~promptseg.eval.datasets._labels.VOC_CLASSES`, 255 borders; SBD's grayscale
    ``SegmentationClassAug`` is read when ``SegmentationClass`` is absent) and
    ``ImageSets/Segmentation/{split}.txt``, in ``root/VOC2012``, ``root/VOCdevkit/VOC2012``
    or ``root`` itself.

    Args:
        root: the folder holding VOC2012 (see above).
        num_classes: 21 (``voc21``: ``"background"`` + the 20 objects) or 20 (``voc20``).
        split: ``val`` (default: the 1,449 images [CaR] reports on), ``train``, ``trainval``.
        prompts: one text per class instead of their natural names.
    """

    splits = ("val", "train", "trainval")
    source = "PASCAL VOC 2012, host.robots.ox.ac.uk/pascal/VOC/voc2012"

    def __init__(self, root: str | Path, num_classes: int = 21, split: str = "val",
                 prompts: Sequence[str] | None = None):
        if num_classes not in (20, 21):
            raise ConfigError(f"PascalVOC: num_classes must be 20 or 21, not {num_classes!r}")
        self.name = f"voc{num_classes}"
        if num_classes == 21:
            self.classes, self.background = ("background", *VOC_CLASSES), "class"
        else:
            self.classes, self.background = VOC_CLASSES, "ignore"
        super().__init__(root, check_split(split, self.splits, self.name), prompts)
        folder = find_folder(self.root, ("VOC2012", "VOCdevkit/VOC2012", ""), "JPEGImages",
                             f"dataset {self.name!r}")
        labels = folder / "SegmentationClass"
        if not labels.is_dir() and (folder / "SegmentationClassAug").is_dir():
            labels = folder / "SegmentationClassAug"
        ids = read_id_list(folder / "ImageSets" / "Segmentation" / f"{split}.txt",
                           f"dataset {self.name!r}: split list")
        self._items = _voc_items(folder, ids, labels)
        self._lut = identity_lut(21) if num_classes == 21 else ignore_background_lut(20)


class PascalContext(_LabelMapDataset):
    """PASCAL-Context, 59 classes without background (Context-59) or with it (Context-60).

    [CaR] Sec. 4.1: "the prevalent version comprising 59 classes including both 'things' and
    'stuff' categories (PC-59), and one background ('other') class for the concepts outside of
    the 59 classes (PC-60)"; PC-59 ignores the background pixels (appendix A.2).

    Layout (mmsegmentation's PASCAL-Context preparation, which CaR's evaluation follows):
    ``VOCdevkit/VOC2010/JPEGImages/{id}.jpg``, ``SegmentationClassContext/{id}.png``
    (grayscale: 0 background, 1..59 the classes of
    :data:`~promptseg.eval.datasets._labels.CONTEXT59_CLASSES`) and
    ``ImageSets/SegmentationContext/{split}.txt``, under ``root``, ``root/VOC2010`` or
    ``root`` being the VOC2010 folder.

    Args:
        root: the folder holding VOC2010 with the Context labels (see above).
        num_classes: 60 (``context60``: ``"background"`` + 59) or 59 (``context59``).
        split: ``val`` (default: the 5,105 images) or ``train``.
        prompts: one text per class instead of their natural names.
    """

    splits = ("val", "train")
    source = "PASCAL-Context, cs.stanford.edu/~roozbeh/pascal-context"

    def __init__(self, root: str | Path, num_classes: int = 59, split: str = "val",
                 prompts: Sequence[str] | None = None):
        if num_classes not in (59, 60):
            raise ConfigError(
                f"PascalContext: num_classes must be 59 or 60, not {num_classes!r}"
            )
        self.name = f"context{num_classes}"
        if num_classes == 60:
            self.classes, self.background = ("background", *CONTEXT59_CLASSES), "class"
        else:
            self.classes, self.background = CONTEXT59_CLASSES, "ignore"
        super().__init__(root, check_split(split, self.splits, self.name), prompts)
        folder = find_folder(self.root, ("VOCdevkit/VOC2010", "VOC2010", ""),
                             "SegmentationClassContext", f"dataset {self.name!r}")
        ids = read_id_list(folder / "ImageSets" / "SegmentationContext" / f"{split}.txt",
                           f"dataset {self.name!r}: split list")
        self._items = _voc_items(folder, ids, folder / "SegmentationClassContext")
        self._lut = identity_lut(60) if num_classes == 60 else ignore_background_lut(59)


def _coco_lut(encoding: str, unlabeled: int) -> np.ndarray:
    """Raw values of ``encoding`` -> COCO-Object labels (0 background, 1..80 things)."""
    if encoding == "instance":
        return label_lut({**{k: k for k in range(81)}, IGNORE_INDEX: IGNORE_INDEX})
    if encoding == "label":
        mapping = {k: k + 1 for k in range(80)} | {k: 0 for k in range(80, 171)}
    else:
        mapping = {cid - 1: i + 1 for i, cid in enumerate(COCO_THING_IDS)}
        mapping |= {k: 0 for k in range(91, 182)}
    return label_lut({**mapping, IGNORE_INDEX: unlabeled})


class CocoObject(_LabelMapDataset):
    """COCO-Object: COCO-Stuff-164k with every "stuff" class merged into one background.

    [CaR] Sec. 4.1, following GroupViT [68]: "the COCO Object dataset ... merges all 'stuff'
    classes into one background class and thus has 81 classes (80 'things' + 1 background)";
    ``classes`` are ``"background"`` and
    :data:`~promptseg.eval.datasets._labels.COCO_THING_CLASSES`.

    Layout (COCO-Stuff-164k as mmsegmentation prepares it): ``images/{split}/*.jpg`` and
    ``annotations/{split}/``, under ``root``. The label encodings read (``encoding``; ``auto``
    takes the first found in this order):

    - ``instance``: ``{stem}_instanceTrainIds.png``, GroupViT's own COCO-Object conversion
      (``convert_dataset/convert_coco_object.py``, the files [CaR]'s numbers come from):
      0 background, 1..80 things. Read as they are.
    - ``label``: ``{stem}_labelTrainIds.png``, mmsegmentation's 171-class COCO-Stuff: things
      0..79 -> 1..80, stuff 80..170 -> 0.
    - ``raw``: ``{stem}.png``, COCO-Stuff-164k's ``stuffthingmaps``: COCO category id - 1,
      things 0..89 (80 ids in 0..90) -> 1..80 in the standard order, stuff 91..181 -> 0.

    In ``label`` and ``raw``, 255 marks pixels COCO-Stuff leaves unlabeled: not scored by
    default (``unlabeled="ignore"``). GroupViT's conversion maps them to 255 + 1 in a uint8
    array, which NumPy 1.x wraps to 0, so its files count them as background;
    ``unlabeled="background"`` does the same from the other encodings.

    Args:
        root: the COCO-Stuff-164k folder (``images/``, ``annotations/``).
        split: ``val2017`` (default: the 5,000 images) or ``train2017``.
        encoding: ``auto`` (default), ``instance``, ``label`` or ``raw`` (see above).
        unlabeled: ``ignore`` (default) or ``background``: COCO-Stuff's 255 pixels.
        prompts: one text per class instead of the class names.
    """

    name = "coco-object"
    classes = ("background", *COCO_THING_CLASSES)
    background = "class"
    splits = ("val2017", "train2017")
    source = "COCO-Stuff-164k, github.com/nightrome/cocostuff; COCO-Object as in GroupViT"

    def __init__(self, root: str | Path, split: str = "val2017", encoding: str = "auto",
                 unlabeled: str = "ignore", prompts: Sequence[str] | None = None):
        if encoding not in ("auto", *COCO_ENCODINGS):
            raise ConfigError(f"CocoObject: encoding must be auto, {', '.join(COCO_ENCODINGS)}"
                              f", not {encoding!r}")
        if unlabeled not in ("ignore", "background"):
            raise ConfigError(
                f"CocoObject: unlabeled must be 'ignore' or 'background', not {unlabeled!r}"
            )
        super().__init__(root, check_split(split, self.splits, self.name), prompts)
        folder = find_folder(self.root, ("", "coco_stuff164k"), "annotations",
                             f"dataset {self.name!r}")
        images, labels = folder / "images" / split, folder / "annotations" / split
        for path in (images, labels):
            if not path.is_dir():
                raise InputError(f"dataset {self.name!r}: {str(path)!r} is not a folder; "
                                 f"split {split!r} needs images/{split}/ and annotations/{split}/")
        self.encoding = encoding if encoding != "auto" else self._detect(labels)
        self.unlabeled = unlabeled
        suffix = COCO_ENCODINGS[self.encoding]
        self._items = [(p.stem, p, labels / f"{p.stem}{suffix}") for p in _jpgs(images)]
        self._check_any(images)
        self._lut = _coco_lut(self.encoding, IGNORE_INDEX if unlabeled == "ignore" else 0)

    @staticmethod
    def _detect(labels: Path) -> str:
        names = [e.name for e in os.scandir(labels)]
        for encoding in ("instance", "label"):
            if any(n.endswith(COCO_ENCODINGS[encoding]) for n in names):
                return encoding
        return "raw"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "encoding": self.encoding, "unlabeled": self.unlabeled}


def _jpgs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


class ADE20K(_LabelMapDataset):
    """ADE20K SceneParsing, 150 classes (ADE-150, [CaR] Sec. 4.1 and Table 1).

    No background class: ADE's label 0 ("other", objects outside the 150) is not scored and
    1..150 become 0..149 (:data:`~promptseg.eval.datasets._labels.ADE150_CLASSES`), as in the
    benchmark's own evaluation (Zhou et al., CVPR 2017).

    Layout (the ``ADEChallengeData2016`` release): ``images/{split}/*.jpg`` and
    ``annotations/{split}/{stem}.png`` (grayscale), under ``root`` or
    ``root/ADEChallengeData2016``.

    Args:
        root: the ADEChallengeData2016 folder or the folder holding it.
        split: ``validation`` (default: the 2,000 images) or ``training``; ``val`` and
            ``train`` are accepted for them.
        prompts: one text per class instead of the class names.
    """

    name = "ade150"
    classes = ADE150_CLASSES
    background = "none"
    splits = ("validation", "training")
    source = "ADE20K SceneParsing (ADEChallengeData2016), sceneparsing.csail.mit.edu"

    def __init__(self, root: str | Path, split: str = "validation",
                 prompts: Sequence[str] | None = None):
        split = {"val": "validation", "train": "training"}.get(split, split)
        super().__init__(root, check_split(split, self.splits, self.name), prompts)
        folder = find_folder(self.root, ("", "ADEChallengeData2016"), "annotations",
                             f"dataset {self.name!r}")
        images = folder / "images" / split
        if not images.is_dir():
            raise InputError(f"dataset {self.name!r}: {str(images)!r} is not a folder")
        labels = folder / "annotations" / split
        self._items = [(p.stem, p, labels / f"{p.stem}.png") for p in _jpgs(images)]
        self._check_any(images)
        self._lut = ignore_background_lut(150)

"""Pascal-5i one-shot segmentation episodes, as ``promptseg eval --dataset pascal5i``.

Benchmark: Shaban et al., "One-Shot Learning for Semantic Segmentation", BMVC 2017
(arXiv:1709.03410): the 20 PASCAL VOC classes in 4 folds of 5, fold ``i`` holding VOC classes
``5i+1 .. 5i+5`` (fold 0: aeroplane, bicycle, bird, boat, bottle). An episode is a query
image containing class ``c`` of the fold, and a different support image (``shots`` of them)
containing ``c`` with its mask of ``c``; the truth is the query's mask of ``c``.

[CLIPSeg] (``papers/clipseg.txt``) Sec. 5.3 and Tables 5-7 score CLIPSeg on it "following the
evaluation protocol of one-shot segmentation" of PFENet [40] and HSNet [55]; Table 7 runs
the same episodes with the class name as a text prompt instead of the support image, so each
episode also carries the class name as its prompt. CLIPSeg does not restate the protocol's
size: 1,000 episodes per fold (``episodes``) is the test setting of those methods' code
(HSNet's and PFENet's), each query ``(image, class)`` pair of the fold taken in turn and a
support drawn at random for it.

What this reader does:

- the (query image, class) pairs: every image of the split list whose label map holds a
  class of the fold (``split="val"``, the test protocol) or of the other three folds
  (``split="train"``, the classes a one-shot model trains on), in list order, classes
  ascending; pairs whose class appears in no other image are skipped;
- episode ``j`` queries pair ``j mod len(pairs)``, and draws its supports without
  replacement among the other images holding that class, from a generator seeded by
  ``(seed, fold)``: the same arguments give the same episodes on every machine;
- masks: ``label == c``. VOC's 255 object borders are not foreground (HSNet also leaves them
  out of the IoU; :class:`~promptseg.eval.datasets.base.LoadedSample` has no ignore mask for
  one-shot samples, so here they count as background). No small-object filtering (PFENet
  drops objects under 2x32x32 pixels; HSNet's lists do not).

Layout: VOC2012 with SBD's augmentation as the one-shot code bases use it, in
``root/VOC2012``, ``root/VOCdevkit/VOC2012`` or ``root``: ``JPEGImages/{id}.jpg``, labels in
``SegmentationClass/`` (palette) or ``SegmentationClassAug/`` (grayscale; both with 0
background, 1..20 classes, 255 borders; ``val`` prefers the first, ``train`` the second),
image lists ``ImageSets/Segmentation/val.txt`` and, for ``train``, the first found of
``ImageSets/Segmentation/train_aug.txt``, ``ImageSets/SegmentationAug/train_aug.txt``,
``ImageSets/Segmentation/train.txt``.

Building the episodes reads every label map of the split list once (1,449 small PNGs for
``val``), on first use, not at construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import ConfigError, InputError
from promptseg.eval.datasets._common import read_image
from promptseg.eval.datasets._labels import (
    VOC_CLASSES,
    find_folder,
    natural_name,
    read_id_list,
    read_label_png,
)
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample, check_split

__all__ = ["FOLDS", "Pascal5i", "fold_classes"]

#: Number of folds; fold ``i`` holds VOC classes ``5i+1 .. 5i+5`` (Shaban et al. 2017).
FOLDS = 4

_TRAIN_LISTS = ("Segmentation/train_aug.txt", "SegmentationAug/train_aug.txt",
                "Segmentation/train.txt")


def fold_classes(fold: int, split: str = "val") -> tuple[int, ...]:
    """The VOC label values (1..20) of ``fold``'s episodes: its 5 classes for ``val``, the
    other 15 for ``train``."""
    test = tuple(range(5 * fold + 1, 5 * fold + 6))
    return test if split == "val" else tuple(c for c in range(1, 21) if c not in test)


class Pascal5i(EvalDataset):
    """Pascal-5i episodes: one prompt (the class name) with its support image and mask.

    Args:
        root: the folder holding VOC2012 (see the module docstring).
        fold: 0..3.
        split: ``val`` (default: the fold's 5 classes over VOC2012 val) or ``train`` (the
            other 15 classes over the train list).
        shots: support images per episode (1: one-shot). ``support_images`` and
            ``support_masks`` hold the ``shots`` examples of the episode's single prompt.
        seed: seeds the support draws, with ``fold``.
        episodes: episodes to make (1,000 as in the one-shot protocol, see the module
            docstring); ``None``: one per (query image, class) pair.

    Sample ids are ``"pascal5i/fold{fold}/ep-{j:06d}"``; the prompt is the class's natural
    name (``"potted plant"``), the tag its VOC name (so reports give the per-class IoU whose
    mean is Pascal-5i's mIoU); ``info`` holds ``class``, ``class_id`` (1..20), ``query`` and
    ``support`` (image ids).
    """

    name = "pascal5i"
    task = "oneshot"
    splits = ("val", "train")
    source = "PASCAL VOC 2012 + SBD; folds of Shaban et al. 2017 (arXiv:1709.03410)"

    def __init__(self, root: str | Path, fold: int = 0, split: str = "val", shots: int = 1,
                 seed: int = 0, episodes: int | None = 1000):
        if fold not in range(FOLDS):
            raise ConfigError(f"pascal5i: fold must be 0, 1, 2 or 3, not {fold!r}")
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ConfigError(f"pascal5i: shots must be a positive integer, not {shots!r}")
        if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int)
                                     or episodes < 1):
            raise ConfigError(
                f"pascal5i: episodes must be a positive integer or None, not {episodes!r}"
            )
        super().__init__(root, check_split(split, self.splits, self.name))
        self.fold, self.shots, self.seed, self.episodes = fold, shots, int(seed), episodes
        self.folder = find_folder(self.root, ("VOC2012", "VOCdevkit/VOC2012", ""),
                                  "JPEGImages", "dataset 'pascal5i'")
        self.ids = read_id_list(self._list_file(), "dataset 'pascal5i': split list")
        self.fold_classes = tuple(VOC_CLASSES[c - 1] for c in fold_classes(fold, split))
        self._episodes: list[tuple[str, int, tuple[str, ...]]] | None = None

    def _list_file(self) -> Path:
        sets = self.folder / "ImageSets"
        if self.split == "val":
            return sets / "Segmentation" / "val.txt"
        for name in _TRAIN_LISTS:
            if (sets / name).is_file():
                return sets / name
        return sets / _TRAIN_LISTS[-1]  # missing: read_id_list says so

    def _label_path(self, key: str) -> Path:
        dirs = ("SegmentationClass", "SegmentationClassAug")
        if self.split == "train":
            dirs = dirs[::-1]
        for d in dirs:
            path = self.folder / d / f"{key}.png"
            if path.is_file():
                return path
        return self.folder / dirs[0] / f"{key}.png"  # missing: read_label_png says so

    def _build(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """``(query id, class, support ids)`` per episode, from the label maps."""
        wanted = set(fold_classes(self.fold, self.split))
        pairs: list[tuple[str, int]] = []
        by_class: dict[int, list[str]] = {c: [] for c in sorted(wanted)}
        for key in self.ids:
            raw = read_label_png(self._label_path(key), f"dataset 'pascal5i': image {key}")
            for c in sorted(wanted.intersection(int(v) for v in np.unique(raw))):
                pairs.append((key, c))
                by_class[c].append(key)
        pairs = [(k, c) for k, c in pairs if len(by_class[c]) > self.shots]
        if not pairs:
            raise InputError(
                f"dataset 'pascal5i': no class of fold {self.fold} ({', '.join(self.fold_classes)}"
                f") is in {self.shots + 1} or more images of split {self.split!r}; an episode "
                "needs a query and different support images"
            )
        rng = np.random.default_rng([self.seed, self.fold])
        count = len(pairs) if self.episodes is None else self.episodes
        episodes = []
        for j in range(count):
            key, c = pairs[j % len(pairs)]
            others = [k for k in by_class[c] if k != key]
            picks = rng.choice(len(others), size=self.shots, replace=False)
            episodes.append((key, c, tuple(others[int(i)] for i in picks)))
        return episodes

    def _all(self) -> list[tuple[str, int, tuple[str, ...]]]:
        if self._episodes is None:
            self._episodes = self._build()
        return self._episodes

    def samples(self) -> Iterator[Sample]:
        images = self.folder / "JPEGImages"
        for j, (key, c, support) in enumerate(self._all()):
            sid = f"pascal5i/fold{self.fold}/ep-{j:06d}"
            name = VOC_CLASSES[c - 1]
            yield Sample(
                id=sid, image=images / f"{key}.jpg", prompts=(natural_name(name),),
                tags=(name,),
                loader=_EpisodeLoader(
                    (images / f"{key}.jpg", self._label_path(key)),
                    tuple((images / f"{k}.jpg", self._label_path(k)) for k in support),
                    c, sid,
                ),
                info={"class": name, "class_id": c, "query": key, "support": list(support)},
            )

    def __len__(self) -> int:
        return len(self._all())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fold": self.fold, "shots": self.shots,
                "seed": self.seed, "episodes": self.episodes}

    def __repr__(self) -> str:
        return (f"Pascal5i(root={str(self.root)!r}, fold={self.fold}, split={self.split!r}, "
                f"shots={self.shots}, seed={self.seed}, episodes={self.episodes})")


class _EpisodeLoader:
    """Reads an episode's query and supports, each as its image and its mask of one class."""

    def __init__(self, query: tuple[Path, Path], support: tuple[tuple[Path, Path], ...],
                 class_id: int, sid: str):
        self.query, self.support, self.class_id, self.sid = query, support, class_id, sid

    def _read(self, image: Path, label: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
        pixels = read_image(image, f"sample {self.sid}: {what} image")
        mask = read_label_png(label, f"sample {self.sid}: {what} label map") == self.class_id
        # the query's size is checked by Sample.load, against the image it is scored on
        if what != "query" and mask.shape != pixels.shape[:2]:
            raise InputError(
                f"sample {self.sid}: {what} label map of shape {mask.shape} does not match "
                f"its image {pixels.shape[:2]}; is it from another image?"
            )
        return pixels, mask

    def __call__(self) -> LoadedSample:
        image, mask = self._read(*self.query, "query")
        support = [self._read(img, lab, f"support {i}") for i, (img, lab)
                   in enumerate(self.support)]
        return LoadedSample(
            image=image, masks=mask[None],
            support_images=tuple(s[0] for s in support),
            support_masks=tuple(s[1] for s in support),
        )

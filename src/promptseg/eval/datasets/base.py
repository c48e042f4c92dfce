"""What every evaluation dataset yields: :class:`Sample` records and the :class:`EvalDataset`
interface, plus the few checks every reader shares.

A dataset reader reads the benchmark's own on-disk format (COCO JSON, VOC label PNGs, the
RefCOCO pickle, ...) and yields one :class:`Sample` per unit the benchmark scores:

- ``task="instance"``: one image and one or more text prompts, each with its exact truth mask
  (an empty mask for a prompt that names nothing: a negative). Scored by IoU per prompt
  (referring expressions, the medical paper's single objects, ShapeWorld, folders of masks).
- ``task="semantic"``: one image and its label map; the prompts are the dataset's class
  names, the truth is ``label_map`` (``(H, W)`` int64, ``ignore_index`` where not scored).
  Scored by a confusion matrix over the whole split.
- ``task="oneshot"``: like ``instance``, with an example (support) image and mask per prompt
  (Pascal-5i).

Images and masks are read lazily, when :meth:`Sample.load` is called, so a reader of 100k
samples costs its index only. Sample ids are stable across runs (resuming a killed
evaluation matches them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import InputError

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "EvalDataset",
    "LoadedSample",
    "Sample",
    "check_mask_shape",
    "check_root",
    "check_split",
]

TASKS = ("instance", "semantic", "oneshot")

#: Label of pixels a semantic benchmark does not score (VOC's object borders, ...).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class LoadedSample:
    """A sample with its pixels read.

    Attributes:
        image: ``(H, W, 3) uint8`` RGB.
        masks: ``(Q, H, W) bool``, the truth of each prompt (``instance``/``oneshot``); an
            all-false mask means the prompt names nothing in the image. ``None`` for
            ``semantic``.
        label_map: ``(H, W) int64`` class indices into the dataset's ``classes``, with
            :data:`IGNORE_INDEX` (or the dataset's ``ignore_index``) where not scored;
            ``semantic`` only.
        support_images: ``oneshot`` only: ``(H', W', 3) uint8`` example image per prompt.
        support_masks: ``oneshot`` only: ``(H', W') bool`` example mask per prompt.
    """

    image: np.ndarray
    masks: np.ndarray | None = None
    label_map: np.ndarray | None = None
    support_images: tuple[np.ndarray, ...] = ()
    support_masks: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One scored unit of a benchmark, its pixels not yet read.

    Attributes:
        id: stable and unique within the dataset (e.g. ``"refcoco/val/ref-1234/sent-0"``).
        image: path of the image file, or ``None`` when ``loader`` makes the pixels.
        prompts: the text prompts asked about this image (``semantic``: the class names).
        tags: per prompt, a group it is reported in (the medical paper's difficulty level,
            a ShapeWorld prompt kind, a RefCOCO ``testA``/``testB`` split, ...); ``""``
            when none. Same length as ``prompts``.
        loader: ``loader() -> LoadedSample``; reads image and truth from disk.
        groups: further groupings of the prompts, by name: per prompt its group in each
            (ShapeWorld's ``{"combination": ("seen", "held-out", ...)}`` beside its kinds in
            ``tags``); reported as one mIoU per group. Each the length of ``prompts``.
        info: small JSON-ready facts kept in the per-sample results (file names,
            category, annotation id, ...).
    """

    id: str
    image: Path | None
    prompts: tuple[str, ...]
    loader: Callable[[], LoadedSample] = field(repr=False, compare=False)
    tags: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.id:
            raise InputError("a sample needs a non-empty id")
        object.__setattr__(self, "prompts", tuple(self.prompts))
        tags = tuple(self.tags) if self.tags else ("",) * len(self.prompts)
        if len(tags) != len(self.prompts):
            raise InputError(
                f"sample {self.id}: {len(tags)} tags for {len(self.prompts)} prompts"
            )
        object.__setattr__(self, "tags", tags)
        groups = {str(k): tuple(str(v) for v in values) for k, values in self.groups.items()}
        for name, values in groups.items():
            if len(values) != len(self.prompts):
                raise InputError(f"sample {self.id}: grouping {name!r} has {len(values)} "
                                 f"values for {len(self.prompts)} prompts")
        object.__setattr__(self, "groups", groups)

    def load(self) -> LoadedSample:
        """Read the pixels (the image and its truth), checked for matching sizes."""
        loaded = self.loader()
        h, w = loaded.image.shape[:2]
        if loaded.masks is not None:
            check_mask_shape(loaded.masks, (len(self.prompts), h, w), f"sample {self.id}")
        if loaded.label_map is not None:
            check_mask_shape(loaded.label_map, (h, w), f"sample {self.id} label map")
        return loaded


class EvalDataset(ABC):
    """Base of every benchmark reader: a sized, re-iterable sequence of :class:`Sample`.

    Subclasses set the class attributes and implement :meth:`samples`. Construction checks
    the root and the split and builds the index; it reads no pixels.

    Attributes:
        name: the ``--dataset`` name (``"refcoco"``, ``"voc20"``, ...).
        task: one of :data:`TASKS`.
        classes: ``semantic``: class names, index = label value. Empty otherwise.
        background: ``semantic``: how the benchmark treats background ([CaR] Sec. 4.1):
            ``"class"`` (label 0 is a class, scored like the others: VOC-21, Context-60,
            COCO-Object), ``"ignore"`` (label 0 is not scored: VOC-20, Context-59) or
            ``"none"`` (no background label: ADE20K-150, where 0 is ignored as "other").
        ignore_index: ``semantic``: label value not scored.
        split: which split this reader reads.
        source: where the benchmark is published (shown in reports).
    """

    name: str = ""
    task: str = "instance"
    classes: tuple[str, ...] = ()
    background: str = "none"
    ignore_index: int = IGNORE_INDEX
    source: str = ""

    def __init__(self, root: str | Path, split: str):
        self.root = check_root(root, self.name)
        self.split = split

    @abstractmethod
    def samples(self) -> Iterator[Sample]:
        """Every sample of the split, in a fixed order."""

    def __iter__(self) -> Iterator[Sample]:
        return self.samples()

    def __len__(self) -> int:
        return sum(1 for _ in self.samples())

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for reports: name, task, split, root, classes, source."""
        return {
            "name": self.name, "task": self.task, "split": self.split, "root": str(self.root),
            "num_classes": len(self.classes), "background": self.background,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r})"


def check_root(root: str | Path, dataset: str) -> Path:
    """``root`` as a Path; an InputError naming the dataset when it is not a folder."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise InputError(
            f"dataset {dataset!r}: root {str(path)!r} is not a folder; pass --root the folder "
            "holding the benchmark (docs/benchmarks.md lists the layout of each)"
        )
    return path


def check_split(split: str, splits: Sequence[str], dataset: str) -> str:
    """``split`` when it is one of ``splits``; an InputError listing them otherwise."""
    if split not in splits:
        raise InputError(
            f"dataset {dataset!r} has no split {split!r}; splits: {', '.join(splits)}"
        )
    return split


def check_mask_shape(mask: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    """InputError when a truth mask or label map does not have the image's size."""
    if tuple(mask.shape) != tuple(shape):
        raise InputError(
            f"{what}: truth of shape {tuple(mask.shape)} does not match the image "
            f"(expected {tuple(shape)}); is the mask from another image?"
        )

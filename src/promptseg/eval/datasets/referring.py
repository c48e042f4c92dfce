"""Referring-expression benchmarks: RefCOCO, RefCOCO+, RefCOCOg and PhraseCut.

- RefCOCO / RefCOCO+ (Yu et al. 2016, "Modeling Context in Referring Expressions",
  arXiv:1608.00272) and RefCOCOg (Mao et al. 2016, arXiv:1511.02283; the ``umd`` split of
  Nagaraja et al. 2016, arXiv:1608.00525), in the layout of the ``refer`` toolkit
  (github.com/lichengunc/refer): ``root/{dataset}/refs({split_by}).p``, a pickle of a list of
  refs (``ref_id``, ``ann_id``, ``image_id``, ``split``, ``sentences``: ``sent``,
  ``sent_id``, ...), ``root/{dataset}/instances.json`` (COCO instances of the referred
  objects) and the COCO train2014 images in ``root/images/`` (or ``root/images/train2014/``,
  or the toolkit's ``root/images/mscoco/images/train2014/``). One sample per sentence; the
  truth is the referred annotation's mask; the tag is the split (``testA``: people,
  ``testB``: other objects).
- PhraseCut (Wu et al. 2020, "PhraseCut: Language-based Image Segmentation in the Wild",
  arXiv:2008.01187; github.com/ChenyunWu/PhraseCutDataset): ``root/refer_{split}.json``, a
  list of tasks (``task_id``, ``image_id``, ``phrase``, ``Polygons``: per instance a list of
  polygons of ``[x, y]`` points, ``instance_boxes``), images ``root/images/{image_id}.jpg``.
  One sample per task; the truth is the union of all its instances' polygons.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import InputError
from promptseg.eval.datasets._common import (
    AnnotationLoader,
    CocoIndex,
    polygons_mask,
    read_coco_index,
    read_image,
    read_json,
    require_file,
)
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample, check_split

__all__ = ["PHRASECUT_SPLITS", "REFCOCO_SPLITS", "PhraseCut", "RefCOCO"]

#: (dataset, split_by) -> the splits its refs file is published with.
REFCOCO_SPLITS: dict[tuple[str, str], tuple[str, ...]] = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco", "google"): ("train", "val", "test"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}
_DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
_SPLIT_ORDER = ("train", "val", "test", "testA", "testB", "testC")

PHRASECUT_SPLITS = ("train", "val", "test", "miniv")


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings and numbers only: a refs file needs nothing else, and
    refusing every class keeps a tampered file from running code."""

    def find_class(self, module: str, name: str):  # noqa: D102
        raise pickle.UnpicklingError(f"refuses to load {module}.{name}")


def _load_refs(path: Path, what: str) -> list[dict[str, Any]]:
    data = require_file(path, what).read_bytes()
    refs = None
    # the published files were pickled by Python 2; its str objects need an encoding
    for encoding in ("utf-8", "latin1"):
        try:
            refs = _PlainUnpickler(io.BytesIO(data), encoding=encoding).load()
            break
        except UnicodeDecodeError:
            continue
        except Exception as exc:  # any unpickling failure means: not a refs file
            raise InputError(f"{what}: {str(path)!r} is not a refs pickle ({exc})") from exc
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise InputError(f"{what}: {str(path)!r} must hold a list of ref dicts")
    return refs


class RefCOCO(EvalDataset):
    """RefCOCO, RefCOCO+ or RefCOCOg: one sample per referring sentence.

    Args:
        root: the folder holding ``{dataset}/`` and ``images/`` (the ``refer`` toolkit's
            ``data/`` folder).
        dataset: ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
        split: a split present in the refs file (default ``"val"``, which every split_by
            has); see :data:`REFCOCO_SPLITS`.
        split_by: whose split: ``"unc"`` (default for refcoco and refcoco+), ``"umd"``
            (default for refcocog) or ``"google"`` (refcoco, refcocog).

    Sample ids are ``"{dataset}/{split_by}/{split}/ref-{ref_id}/sent-{sent_id}"``; ``info``
    holds ``ref_id``, ``sent_id``, ``ann_id``, ``image_id``, ``file_name`` and ``category``.

    Raises:
        InputError: unknown dataset or split_by; missing refs file, instances file or image
            folder; a split not in the refs file (the message lists those present); a ref
            whose annotation or image is not in ``instances.json``.
    """

    task = "instance"
    source = "https://github.com/lichengunc/refer (refs pickle + instances.json)"

    def __init__(
        self,
        root: str | Path,
        dataset: str = "refcoco",
        split: str = "val",
        split_by: str | None = None,
    ):
        if dataset not in _DEFAULT_SPLIT_BY:
            raise InputError(
                f"unknown referring dataset {dataset!r}; choose refcoco, refcoco+ or refcocog"
            )
        self.name = dataset
        super().__init__(root, split)
        split_by = split_by or _DEFAULT_SPLIT_BY[dataset]
        known = [s for d, s in REFCOCO_SPLITS if d == dataset]
        if split_by not in known:
            raise InputError(
                f"dataset {dataset!r} has no split_by {split_by!r}; choose {', '.join(known)}"
            )
        self.split_by = split_by
        what = f"dataset {dataset!r}"
        folder = self.root / dataset
        refs = _load_refs(folder / f"refs({split_by}).p", what)
        present = sorted(
            {str(r.get("split")) for r in refs},
            key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else 99, s),
        )
        check_split(split, present, dataset)
        self.index: CocoIndex = read_coco_index(folder / "instances.json", what)
        self.refs = [r for r in refs if r.get("split") == split]
        for ref in self.refs:
            if int(ref["ann_id"]) not in self.index.annotations:
                raise InputError(
                    f"{what}: ref {ref.get('ref_id')} refers to annotation {ref['ann_id']}, "
                    f"which is not in {folder / 'instances.json'}"
                )
        self.image_dir = self._image_dir()

    def _image_dir(self) -> Path:
        images = self.root / "images"
        candidates = [images / "train2014", images / "mscoco" / "images" / "train2014", images]
        existing = [c for c in candidates if c.is_dir()]
        if not existing:
            raise InputError(
                f"dataset {self.name!r}: no image folder {str(images)!r}; put the COCO train2014 "
                "images in root/images/ (or root/images/train2014/)"
            )
        if self.refs:
            first = self.index.images[int(self.refs[0]["image_id"])]["file_name"]
            for folder in existing:
                if (folder / str(first)).is_file():
                    return folder
        return existing[0]

    def samples(self) -> Iterator[Sample]:
        for ref in self.refs:
            ann = self.index.annotations[int(ref["ann_id"])]
            img = self.index.images[int(ann["image_id"])]
            path = self.image_dir / str(img["file_name"])
            for k, sent in enumerate(ref.get("sentences", [])):
                sent_id = sent.get("sent_id", k)
                sid = (
                    f"{self.name}/{self.split_by}/{self.split}/ref-{ref['ref_id']}/sent-{sent_id}"
                )
                yield Sample(
                    id=sid,
                    image=path,
                    prompts=(str(sent.get("sent", sent.get("raw", ""))),),
                    tags=(self.split,),
                    loader=AnnotationLoader(path, ann, sid),
                    info={
                        "ref_id": int(ref["ref_id"]), "sent_id": sent_id,
                        "ann_id": int(ann["id"]), "image_id": int(img["id"]),
                        "file_name": str(img["file_name"]),
                        "category": self.index.category_name(ann),
                    },
                )

    def __len__(self) -> int:
        return sum(len(r.get("sentences", [])) for r in self.refs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "split_by": self.split_by}


class PhraseCut(EvalDataset):
    """VGPhraseCut: one sample per referring task (phrase), truth the union of its instances.

    Args:
        root: the folder holding ``refer_{split}.json`` and ``images/``.
        split: ``"test"`` (default), ``"val"``, ``"miniv"`` or ``"train"``.

    Sample ids are ``"phrasecut/{split}/{task_id}"``; ``info`` holds ``task_id``,
    ``image_id`` and ``instances`` (their number). The image size is the image file's.

    Raises:
        InputError: missing root or ``refer_{split}.json``, unknown split, malformed tasks;
            a missing image when the sample is loaded.
    """

    name = "phrasecut"
    task = "instance"
    source = "https://github.com/ChenyunWu/PhraseCutDataset (refer_{split}.json)"

    def __init__(self, root: str | Path, split: str = "test"):
        super().__init__(root, check_split(split, PHRASECUT_SPLITS, "phrasecut"))
        path = self.root / f"refer_{split}.json"
        tasks = read_json(path, "dataset 'phrasecut'")
        if not isinstance(tasks, list):
            raise InputError(f"dataset 'phrasecut': {path} must hold a list of tasks")
        for n, task in enumerate(tasks):
            if not isinstance(task, dict) or not {"task_id", "image_id", "phrase"} <= set(task):
                raise InputError(
                    f"dataset 'phrasecut': {path}: task {n} needs task_id, image_id, phrase and "
                    "Polygons"
                )
        self.tasks = tasks
        self.image_dir = self.root / "images"

    def samples(self) -> Iterator[Sample]:
        for task in self.tasks:
            path = self.image_dir / f"{task['image_id']}.jpg"
            sid = f"phrasecut/{self.split}/{task['task_id']}"
            polygons = task.get("Polygons") or []
            yield Sample(
                id=sid,
                image=path,
                prompts=(str(task["phrase"]),),
                loader=_PolygonLoader(path, polygons, sid),
                info={
                    "task_id": str(task["task_id"]), "image_id": task["image_id"],
                    "instances": len(polygons),
                },
            )

    def __len__(self) -> int:
        return len(self.tasks)


class _PolygonLoader:
    def __init__(self, path: Path, polygons: list[Any], sid: str):
        self.path, self.polygons, self.sid = path, polygons, sid

    def __call__(self) -> LoadedSample:
        image = read_image(self.path, f"sample {self.sid}: image")
        h, w = image.shape[:2]
        try:
            mask = polygons_mask([p for inst in self.polygons for p in inst], h, w)
        except (TypeError, ValueError, IndexError) as exc:
            raise InputError(f"sample {self.sid}: malformed Polygons ({exc})") from exc
        return LoadedSample(image=image, masks=np.ascontiguousarray(mask[None]))

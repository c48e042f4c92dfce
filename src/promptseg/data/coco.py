"""COCO instance annotations read as numpy arrays, one image at a time.

Format: Lin et al. 2014, "Microsoft COCO: Common Objects in Context" (arXiv:1405.0312), and
the data format page of cocodataset.org ("Object Detection"): a JSON file with ``images``
(``id``, ``file_name``, ``height``, ``width``), ``annotations`` (``image_id``,
``category_id``, ``segmentation`` as polygons or RLE, ``iscrowd``) and ``categories``.

Crowd annotations (``iscrowd = 1``) are skipped, as SAM-style training and instance metrics
skip them: one crowd region covers many objects and has no single prompt.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import ImageError, InputError

__all__ = ["CocoInstances", "CocoSample"]


@dataclass
class CocoSample:
    """One image and its (non-crowd) instance masks.

    Attributes:
        image_id: the image's COCO id.
        file_name: its ``file_name`` as written in the JSON.
        image: ``(H, W, 3) uint8`` RGB.
        masks: ``(N, H, W)`` bool, one per annotation (N may be 0).
        category_ids: ``(N,)`` int64.
        annotation_ids: ``(N,)`` int64.
    """

    image_id: int
    file_name: str
    image: np.ndarray
    masks: np.ndarray
    category_ids: np.ndarray
    annotation_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.masks.shape[0])


class CocoInstances:
    """A COCO instances JSON and its images, read lazily: ``dataset[i]`` loads image ``i``.

    Args:
        path: the instances JSON.
        image_root: folder the ``file_name`` of each image is relative to; default the JSON's
            folder.

    Attributes:
        categories: ``{category_id: name}``.
        image_ids: ids of the images, in the JSON's order (index ``i`` is ``image_ids[i]``).

    Raises:
        InputError: the file is missing, not JSON, or not a COCO instances file. A missing or
            unreadable image is reported (by name) when it is read.
    """

    def __init__(self, path: str | Path, image_root: str | Path | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"COCO file {str(self.path)!r} does not exist; check the path")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.path}: not a readable COCO JSON file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputError(
                f"{self.path}: not a COCO instances file (no 'images' list); expected keys "
                "images, annotations, categories"
            )
        anns = data.get("annotations", [])
        if not isinstance(anns, list):
            raise InputError(f"{self.path}: 'annotations' must be a list")
        self.image_root = Path(image_root) if image_root is not None else self.path.parent
        self.categories: dict[int, str] = {}
        for cat in data.get("categories", []) or []:
            try:
                self.categories[int(cat["id"])] = str(cat.get("name", cat["id"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{self.path}: malformed category {cat!r}") from exc
        self._images: list[dict[str, Any]] = []
        for img in data["images"]:
            if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                raise InputError(
                    f"{self.path}: every image needs 'id' and 'file_name', got {img!r}"[:300]
                )
            self._images.append(img)
        self.image_ids: list[int] = [int(img["id"]) for img in self._images]
        if len(set(self.image_ids)) != len(self.image_ids):
            raise InputError(f"{self.path}: image ids are not unique")
        known = set(self.image_ids)
        self._anns: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.num_crowd = 0
        for ann in anns:
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise InputError(f"{self.path}: malformed annotation {ann!r}"[:300])
            if ann.get("iscrowd", 0):
                self.num_crowd += 1
                continue
            image_id = int(ann["image_id"])
            if image_id not in known:
                raise InputError(
                    f"{self.path}: annotation {ann.get('id')!r} refers to image {image_id}, "
                    "which is not in 'images'"
                )
            self._anns[image_id].append(ann)

    def __len__(self) -> int:
        return len(self._images)

    def num_instances(self, i: int) -> int:
        """Number of non-crowd annotations of image ``i``, without reading the image."""
        return len(self._anns.get(self.image_ids[i], []))

    @property
    def num_annotations(self) -> int:
        """Number of non-crowd annotations in the file."""
        return sum(len(v) for v in self._anns.values())

    def image_path(self, i: int) -> Path:
        return self.image_root / str(self._images[i]["file_name"])

    def __getitem__(self, i: int) -> CocoSample:
        from promptseg.convert.coco import _decode, _segmentation_to_rle
        from promptseg.image import load_image

        if not -len(self) <= i < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        img = self._images[i]
        path = self.image_path(i)
        if not path.is_file():
            raise InputError(
                f"image {img['file_name']!r} (id {img['id']}) of {self.path.name} not found at "
                f"{path}; pass image_root= the folder holding the images"
            )
        try:
            image = load_image(path)
        except ImageError as exc:
            raise InputError(f"image {img['file_name']!r} (id {img['id']}): {exc}") from exc
        h, w = image.shape[:2]
        anns = self._anns.get(int(img["id"]), [])
        if anns:
            try:
                rles = [_segmentation_to_rle(a, h, w) for a in anns]
            except InputError as exc:
                raise InputError(f"{self.path.name}, image {img['file_name']!r}: {exc}") from exc
            masks = _decode(rles)
        else:
            masks = np.zeros((0, h, w), dtype=bool)
        return CocoSample(
            image_id=int(img["id"]),
            file_name=str(img["file_name"]),
            image=image,
            masks=masks,
            category_ids=np.asarray([int(a.get("category_id", 0)) for a in anns], dtype=np.int64),
            annotation_ids=np.asarray([int(a.get("id", k)) for k, a in enumerate(anns)],
                                      dtype=np.int64),
        )

    def __repr__(self) -> str:
        return (
            f"CocoInstances({str(self.path)!r}, images={len(self)}, "
            f"annotations={self.num_annotations}, categories={len(self.categories)})"
        )

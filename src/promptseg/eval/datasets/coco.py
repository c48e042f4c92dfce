"""COCO objects, one prompt per annotated object, as ``promptseg eval --dataset coco``.

Format: Lin et al. 2014, "Microsoft COCO: Common Objects in Context" (arXiv:1405.0312), and
the data format page of cocodataset.org: ``root/annotations/instances_{split}.json`` with the
images in ``root/{split}/``. Segmentations may be polygons or RLE; crowd annotations
(``iscrowd = 1``) are skipped, as one crowd region covers many objects.

Two protocols:

- without a manifest: every non-crowd annotation of the split is one sample, its prompt the
  category name, its tag ``""``;
- with a manifest: the medical LVLM paper's hand-picked subset ([LVLM] Sec. IV-A1,
  ``papers/lvlm-medical-sam-clip.txt``): 100 val2017 images, one selected object each, in four
  human-judged difficulty levels of 25 images (``easy``: one object on a plain background;
  ``hard``/``very hard``: many objects on a busy background), prompted by the object's class
  and reported as mIoU overall and per level. The manifest (a CSV, JSON or JSON-lines table)
  has a row per sample with columns ``image_id``, ``annotation_id``, ``level`` and optionally
  ``prompt`` (text to use instead of the category name); the level becomes the sample's tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptseg.errors import InputError
from promptseg.eval.datasets._common import (
    AnnotationLoader,
    CocoIndex,
    read_coco_index,
    read_rows,
)
from promptseg.eval.datasets.base import EvalDataset, Sample, check_split

__all__ = ["LEVELS", "CocoObjects"]

#: The difficulty levels of [LVLM] Sec. IV-A1, easiest first.
LEVELS = ("easy", "medium", "hard", "very hard")


class CocoObjects(EvalDataset):
    """COCO instances, one sample (image, one prompt, one object mask) per object.

    Args:
        root: the COCO folder, holding ``annotations/`` and one image folder per split.
        split: ``val2017`` (default), ``train2017``, ...: any split whose
            ``annotations/instances_{split}.json`` exists; the images are in ``root/{split}``.
        annotations: another instances JSON to read (absolute, or relative to ``root``);
            ``split`` then only names the image folder.
        manifest: a table of the samples to score (see the module docstring); absolute, or
            relative to the working directory or to ``root``.
        prompt: ``"category"`` (the category name, default), ``"supercategory"``, or a
            template holding ``{category}`` (e.g. ``"a photo of a {category}"``). A manifest's
            ``prompt`` column wins over it.

    Sample ids are ``"coco/{split}/img-{image_id}/ann-{annotation_id}"``; ``info`` holds
    ``image_id``, ``annotation_id``, ``file_name``, ``category`` and ``area``.

    Raises:
        InputError: missing root, instances file or manifest; unknown split (the message
            lists the splits found); a manifest row naming an unknown or crowd annotation,
            or an annotation of another image.
    """

    name = "coco"
    task = "instance"
    source = "https://cocodataset.org (instances JSON)"

    def __init__(
        self,
        root: str | Path,
        split: str = "val2017",
        annotations: str | Path | None = None,
        manifest: str | Path | None = None,
        prompt: str = "category",
    ):
        super().__init__(root, split)
        if prompt not in ("category", "supercategory") and "{category}" not in str(prompt):
            raise InputError(
                f"dataset 'coco': prompt={prompt!r} is not 'category', 'supercategory' or a "
                "template holding '{category}'"
            )
        self.prompt = str(prompt)
        if annotations is not None:
            path = Path(annotations).expanduser()
            if not path.is_absolute() and not path.is_file():
                path = self.root / path
        else:
            folder = self.root / "annotations"
            splits = sorted(
                p.name[len("instances_"):-len(".json")] for p in folder.glob("instances_*.json")
            )
            if not splits:
                raise InputError(
                    f"dataset 'coco': no annotations/instances_*.json under {str(self.root)!r}; "
                    "expected the layout root/annotations/instances_val2017.json + root/val2017/"
                )
            check_split(split, splits, self.name)
            path = folder / f"instances_{split}.json"
        self.annotations_path = path
        self.image_dir = self.root / split
        self.index: CocoIndex = read_coco_index(path, "dataset 'coco'")
        self.manifest = None if manifest is None else self._find(manifest)
        self._rows = self._manifest_rows() if self.manifest else self._all_rows()

    def _find(self, manifest: str | Path) -> Path:
        path = Path(manifest).expanduser()
        if not path.is_file() and not path.is_absolute() and (self.root / path).is_file():
            path = self.root / path
        if not path.is_file():
            raise InputError(f"dataset 'coco': manifest {str(manifest)!r} not found")
        return path

    def _text(self, ann: dict[str, Any]) -> str:
        cat = self.index.categories.get(int(ann.get("category_id", -1)), {})
        name = str(cat.get("name", ann.get("category_id", "")))
        if self.prompt == "category":
            return name
        if self.prompt == "supercategory":
            return str(cat.get("supercategory", name))
        return self.prompt.replace("{category}", name)

    def _all_rows(self) -> list[tuple[int, str, str]]:
        anns = self.index.annotations
        return [
            (ann_id, self._text(anns[ann_id]), "")
            for ann_id in self.index.order
            if not anns[ann_id].get("iscrowd", 0)
        ]

    def _manifest_rows(self) -> list[tuple[int, str, str]]:
        where = f"dataset 'coco': manifest {self.manifest}"
        rows = read_rows(self.manifest, where)
        out: list[tuple[int, str, str]] = []
        seen: set[int] = set()
        for n, row in enumerate(rows, 1):
            try:
                ann_id = int(row["annotation_id"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(
                    f"{where}: row {n} needs an integer 'annotation_id' (columns: image_id, "
                    "annotation_id, level, optional prompt)"
                ) from exc
            ann = self.index.annotations.get(ann_id)
            if ann is None:
                raise InputError(
                    f"{where}: row {n}: annotation {ann_id} is not in {self.annotations_path.name}"
                )
            if ann.get("iscrowd", 0):
                raise InputError(f"{where}: row {n}: annotation {ann_id} is a crowd region")
            image_id = row.get("image_id")
            if image_id not in (None, "") and int(image_id) != int(ann["image_id"]):
                raise InputError(
                    f"{where}: row {n}: annotation {ann_id} belongs to image {ann['image_id']}, "
                    f"not {image_id}"
                )
            if ann_id in seen:
                raise InputError(f"{where}: row {n} repeats annotation {ann_id}")
            seen.add(ann_id)
            text = str(row.get("prompt") or "").strip() or self._text(ann)
            out.append((ann_id, text, str(row.get("level") or "").strip()))
        return out

    def samples(self) -> Iterator[Sample]:
        for ann_id, text, tag in self._rows:
            ann = self.index.annotations[ann_id]
            img = self.index.images[int(ann["image_id"])]
            path = self.image_dir / str(img["file_name"])
            sid = f"coco/{self.split}/img-{img['id']}/ann-{ann_id}"
            yield Sample(
                id=sid,
                image=path,
                prompts=(text,),
                tags=(tag,),
                loader=AnnotationLoader(path, ann, sid),
                info={
                    "image_id": int(img["id"]), "annotation_id": ann_id,
                    "file_name": str(img["file_name"]), "category": self.index.category_name(ann),
                    "area": ann.get("area"),
                },
            )

    def __len__(self) -> int:
        return len(self._rows)

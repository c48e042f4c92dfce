"""Helpers the benchmark readers share: files that must exist, images, binary mask files,
tables of rows (CSV, JSON, JSON lines) and COCO-style annotation files.

Every failure is a one-line :class:`~promptseg.errors.InputError` naming the file and what is
wrong with it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import ImageError, InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "CocoIndex",
    "annotation_mask",
    "polygons_mask",
    "read_coco_index",
    "read_image",
    "read_json",
    "read_mask",
    "read_rows",
    "require_file",
]

#: File name endings read as images (and masks) when a folder is listed, lower case.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """``path`` when it is a file; an InputError naming ``what`` otherwise."""
    if not path.is_file():
        extra = f"; {hint}" if hint else ""
        raise InputError(f"{what}: {str(path)!r} not found{extra}")
    return path


def read_image(path: Path, what: str) -> np.ndarray:
    """The image at ``path`` as ``(H, W, 3) uint8`` RGB (see :func:`promptseg.image.load_image`).

    Raises:
        InputError: missing or unreadable, the message starting with ``what``.
    """
    from promptseg.image import load_image

    require_file(path, what)
    try:
        return load_image(path)
    except ImageError as exc:
        raise InputError(f"{what}: {exc}") from exc


def read_mask(path: Path, what: str) -> np.ndarray:
    """A binary mask file as ``(H, W) bool``.

    Foreground is:

    - 1-bit images: the set pixels;
    - 8-bit images (grayscale, RGB, with or without alpha; the alpha channel is ignored):
      values above 127 in any colour channel, so anti-aliased or JPEG-compressed 0/255 masks
      read as intended; except when every value is 0 or 1 (a 0/1 label PNG), where 1 is
      foreground;
    - palette images: any non-zero palette index;
    - 16-bit and 32-bit integer or float images: any non-zero value.

    Raises:
        InputError: missing or not an image, the message starting with ``what``.
    """
    from PIL import Image, UnidentifiedImageError

    require_file(path, what)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "P":
                arr = np.asarray(img)
                return arr != 0
            if mode in ("RGBA", "LA", "PA"):
                img = img.convert("RGB" if mode == "RGBA" else "L")
            elif mode not in ("1", "L", "RGB", "I", "I;16", "I;16B", "I;16L", "F"):
                img = img.convert("RGB")
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"{what}: {str(path)!r} is not a readable mask image ({exc})") from exc
    if arr.dtype == bool:
        mask = arr
    elif arr.dtype == np.uint8:
        mask = arr > 0 if int(arr.max(initial=0)) <= 1 else arr > 127
    else:
        mask = arr != 0
    if mask.ndim == 3:
        mask = mask.any(axis=-1)
    return np.ascontiguousarray(mask)


def read_json(path: Path, what: str) -> Any:
    """Parsed JSON of ``path``; InputError when missing or not JSON."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what}: {str(path)!r} is not readable JSON ({exc})") from exc


def read_rows(path: Path, what: str) -> list[dict[str, Any]]:
    """The rows of a table file as dicts, in file order.

    Formats, by ending: ``.csv`` (a header row, then one row per line), ``.jsonl`` (one JSON
    object per line; blank lines skipped) and ``.json`` (a list of objects). CSV values are
    strings, stripped of surrounding spaces; an empty CSV cell is ``""``.

    Raises:
        InputError: missing file, unknown ending, malformed rows.
    """
    require_file(path, what)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                rows = [
                    {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
                    for row in reader
                ]
            return rows
        if suffix == ".jsonl":
            rows = []
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise InputError(f"{what}: {path} line {n} is not a JSON object")
                        rows.append(row)
            return rows
        if suffix == ".json":
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InputError(f"{what}: {path} must hold a JSON list of objects (rows)")
            return data
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise InputError(f"{what}: {str(path)!r} is not a readable table ({exc})") from exc
    raise InputError(f"{what}: {str(path)!r} must end in .csv, .jsonl or .json")


def polygons_mask(polygons: list[Any], h: int, w: int) -> np.ndarray:
    """``(H, W) bool`` union of polygons, each a list of ``[x, y]`` points in pixels.

    Rasterised with ``PIL.ImageDraw.polygon`` (interior and outline set); polygons of fewer
    than three points are drawn as the pixels they touch.
    """
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (int(w), int(h)), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        points = [(float(p[0]), float(p[1])) for p in poly]
        if len(points) >= 3:
            draw.polygon(points, fill=1, outline=1)
        elif points:
            draw.line(points if len(points) > 1 else points * 2, fill=1)
    return np.asarray(canvas) > 0


@dataclass(frozen=True)
class CocoIndex:
    """A COCO-style instances file held as dicts by id.

    Attributes:
        path: the file.
        images: ``{image_id: image dict}`` (``file_name``, ``height``, ``width``).
        annotations: ``{annotation_id: annotation dict}``, crowd annotations included.
        categories: ``{category_id: category dict}`` (``name``, ``supercategory``).
        order: annotation ids in file order.
    """

    path: Path
    images: dict[int, dict[str, Any]]
    annotations: dict[int, dict[str, Any]]
    categories: dict[int, dict[str, Any]]
    order: tuple[int, ...]

    def category_name(self, ann: Mapping[str, Any]) -> str:
        cat = self.categories.get(int(ann.get("category_id", -1)), {})
        return str(cat.get("name", ann.get("category_id", "")))


def read_coco_index(path: Path, what: str) -> CocoIndex:
    """Read a COCO instances JSON (``images``, ``annotations``, ``categories``).

    Raises:
        InputError: missing, not JSON, not an instances file, or ids missing or repeated.
    """
    data = read_json(path, what)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(
            f"{what}: {path} is not a COCO instances file (no 'images' list); expected keys "
            "images, annotations, categories"
        )
    images: dict[int, dict[str, Any]] = {}
    annotations: dict[int, dict[str, Any]] = {}
    categories: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    try:
        for img in data["images"]:
            images[int(img["id"])] = img
        for cat in data.get("categories", []) or []:
            categories[int(cat["id"])] = cat
        for ann in data.get("annotations", []) or []:
            ann_id = int(ann["id"])
            if ann_id in annotations:
                raise InputError(f"{what}: {path} repeats annotation id {ann_id}")
            annotations[ann_id] = ann
            order.append(ann_id)
            if int(ann["image_id"]) not in images:
                raise InputError(
                    f"{what}: {path}: annotation {ann_id} refers to image {ann['image_id']}, "
                    "which is not in 'images'"
                )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"{what}: {path}: malformed image, category or annotation (needs 'id'; annotations "
            f"'image_id'): {exc!r}"
        ) from exc
    return CocoIndex(path, images, annotations, categories, tuple(order))


def annotation_mask(ann: Mapping[str, Any], h: int, w: int, what: str) -> np.ndarray:
    """``(H, W) bool`` mask of a COCO annotation: polygons rasterised at ``(h, w)`` (as
    pycocotools does), RLE (compressed or not) decoded at the size it records.

    An RLE of another size than the image is returned as it is, so that
    :meth:`Sample.load <promptseg.eval.datasets.base.Sample.load>` reports the mismatch.
    """
    from pycocotools import mask as mask_utils

    from promptseg.convert.coco import _decode, rle_decode

    seg = ann.get("segmentation")
    try:
        if isinstance(seg, Mapping):
            return rle_decode([seg])[0]
        if isinstance(seg, list) and seg:
            polys = [list(map(float, p)) for p in seg if len(p) >= 6]
            if not polys:
                return np.zeros((h, w), dtype=bool)
            return _decode([mask_utils.merge(mask_utils.frPyObjects(polys, h, w))])[0]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise InputError(f"{what}: {exc}") from exc
        raise InputError(f"{what}: unreadable segmentation ({exc})") from exc
    raise InputError(f"{what}: no usable segmentation (expected polygons or RLE)")


class AnnotationLoader:
    """``loader()`` of a sample whose truth is one COCO annotation: reads the image and
    decodes the annotation at the image's size (COCO objects, RefCOCO referents)."""

    def __init__(self, path: Path, ann: dict[str, Any], sample_id: str):
        self.path, self.ann, self.sample_id = path, ann, sample_id

    def __call__(self):
        from promptseg.eval.datasets.base import LoadedSample

        what = f"sample {self.sample_id}"
        image = read_image(self.path, f"{what}: image")
        h, w = image.shape[:2]
        mask = annotation_mask(self.ann, h, w, f"{what}: annotation {self.ann['id']}")
        return LoadedSample(image=image, masks=mask[None])

"""COCO instance-segmentation format: export a :class:`~promptseg.result.Segmentation` and
read it back.

Format: Lin et al. 2014, "Microsoft COCO: Common Objects in Context", and the data format
page of cocodataset.org ("Object Detection" annotations). Masks are compressed RLE made with
pycocotools (``counts`` stored as ``str`` so the dict is JSON-ready), ``bbox`` is
``[x, y, width, height]`` in pixels, ``area`` the mask's pixel count.

Mapping: one category per prompt, ``category_id = query_index + 1``, ``name = prompt``; one
annotation per instance with ``score`` and ``iscrowd = 0``, plus every extra of the instance
as a further key (``predicted_iou``, ``stability_score``, ``clip_scores`` as a list, ...), as
SAM's automatic mask generator writes them.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import InputError
from promptseg.result import Segmentation, masks_to_boxes

__all__ = ["from_coco", "rle_decode", "rle_encode", "save_coco", "to_coco"]

# Keys of a COCO annotation that are not extras.
_STANDARD_KEYS = frozenset(
    {"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "score"}
)


def rle_encode(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode masks as COCO compressed RLE.

    Args:
        masks: ``(N, H, W)`` bool (or 0/1) masks; a single ``(H, W)`` mask is accepted too.

    Returns:
        ``N`` dicts ``{"size": [H, W], "counts": str}``, JSON-ready.
    """
    from pycocotools import mask as mask_utils

    arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"rle_encode: expected masks of shape (N, H, W), received {arr.shape}")
    if arr.shape[0] == 0:
        return []
    # pycocotools wants (H, W, N) uint8 in Fortran order.
    fortran = np.asfortranarray(np.moveaxis(arr.astype(bool, copy=False), 0, -1), dtype=np.uint8)
    rles = mask_utils.encode(fortran)
    return [
        {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles
    ]


def rle_decode(
    rles: Sequence[Mapping[str, Any]], image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode COCO RLEs (compressed ``counts`` as str or bytes, or uncompressed lists).

    Args:
        rles: dicts with ``"size": [H, W]`` and ``"counts"``.
        image_size: ``(H, W)``; needed only when ``rles`` is empty, checked otherwise.

    Returns:
        ``(N, H, W)`` bool masks.
    """
    rles = list(rles)
    if not rles:
        if image_size is None:
            raise InputError("rle_decode: no RLEs given; pass image_size=(H, W) for N = 0")
        h, w = image_size
        return np.zeros((0, int(h), int(w)), dtype=bool)
    objs = [_to_compressed(r, i) for i, r in enumerate(rles)]
    sizes = {tuple(o["size"]) for o in objs}
    if len(sizes) != 1:
        raise InputError(f"rle_decode: RLEs of different sizes {sorted(sizes)}")
    size = sizes.pop()
    if image_size is not None and tuple(int(v) for v in image_size) != size:
        raise InputError(f"rle_decode: RLE size {list(size)} differs from image_size {image_size}")
    return _decode(objs)


def to_coco(
    seg: Segmentation,
    image_id: int = 1,
    file_name: str | None = None,
    annotation_id_start: int = 1,
    include_extras: bool = True,
) -> dict[str, Any]:
    """COCO dict (``info``, ``images``, ``categories``, ``annotations``) for one image.

    Args:
        seg: the segmentation.
        image_id: id of the image entry.
        file_name: the image's file name (default ``"{image_id}.png"``).
        annotation_id_start: id of the first annotation; ids are consecutive.
        include_extras: write each instance's extras as further annotation keys.

    Returns:
        A JSON-ready dict. ``bbox`` is ``seg.boxes`` as ``[x1, y1, x2 - x1, y2 - y1]``.

    Raises:
        InputError: an extra is named like a standard COCO key.
    """
    h, w = seg.image_size
    if include_extras:
        clash = sorted(_STANDARD_KEYS.intersection(seg.extras))
        if clash:
            raise InputError(
                f"to_coco: extras {clash} clash with COCO annotation keys; rename them or pass "
                "include_extras=False"
            )
    rles = rle_encode(seg.masks)
    areas = seg.areas
    boxes = seg.boxes.astype(np.float64)
    annotations = []
    for i in range(len(seg)):
        x1, y1, x2, y2 = boxes[i]
        ann: dict[str, Any] = {
            "id": int(annotation_id_start + i),
            "image_id": image_id,
            "category_id": int(seg.query_index[i]) + 1,
            "segmentation": rles[i],
            "area": int(areas[i]),
            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            "iscrowd": 0,
            "score": float(seg.scores[i]),
        }
        if include_extras:
            for key, values in seg.extras.items():
                ann[key] = to_jsonable(values[i])
        annotations.append(ann)
    from promptseg import __version__

    return {
        "info": {"description": "promptseg segmentation", "version": __version__},
        "images": [
            {
                "id": image_id,
                "file_name": file_name if file_name is not None else f"{image_id}.png",
                "height": h,
                "width": w,
            }
        ],
        "categories": [{"id": q + 1, "name": p} for q, p in enumerate(seg.prompts)],
        "annotations": annotations,
    }


def save_coco(seg: Segmentation, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`to_coco` as JSON to ``path``, atomically. Returns the path.

    ``kwargs`` go to :func:`to_coco` (``image_id``, ``file_name``, ...).
    """
    data = to_coco(seg, **kwargs)
    path = Path(path)
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    return path


def from_coco(data: Mapping[str, Any] | str | os.PathLike, image_id: int | None = None):
    """Read one image's annotations back as a :class:`~promptseg.result.Segmentation`.

    Works on files written by :func:`save_coco` (exact round trip of masks, scores, boxes,
    query indices and prompts) and on ordinary COCO files (polygon segmentations too):

    - prompts are the category names ordered by category id, and ``query_index`` is the
      position of an annotation's category in that order (``category_id - 1`` for
      promptseg files);
    - ``score`` defaults to 1.0 when absent (ground truth), ``bbox`` to the mask's box;
    - extras are the non-standard annotation keys present in every annotation of the image
      with numeric values; they come back as float64 / int64 arrays (and are absent when
      the image has no annotation);
    - ``meta`` records ``source="coco"``, ``image_id`` and ``file_name``.

    Args:
        data: a COCO dict, or the path of a COCO JSON file.
        image_id: which image; may be left out when the file holds one image.

    Raises:
        InputError: unreadable file, unknown or ambiguous image id, malformed annotation.
    """
    if isinstance(data, (str, os.PathLike)):
        data = _read_json(Path(data))
    if not isinstance(data, Mapping):
        raise InputError(f"from_coco: expected a COCO dict or JSON path, received {type(data)}")
    images = data.get("images") or []
    categories = sorted(data.get("categories") or [], key=lambda c: c["id"])
    prompts = tuple(str(c["name"]) for c in categories)
    q_of_cat = {c["id"]: q for q, c in enumerate(categories)}

    ids = [im["id"] for im in images]
    if image_id is None:
        if len(ids) != 1:
            raise InputError(
                f"from_coco: the data holds {len(ids)} images; pass image_id= one of "
                f"{ids[:20]}{' ...' if len(ids) > 20 else ''}"
            )
        image_id = ids[0]
    matches = [im for im in images if im["id"] == image_id]
    if not matches:
        raise InputError(f"from_coco: no image with id {image_id!r}; ids are {ids[:20]}")
    image = matches[0]
    anns = [a for a in data.get("annotations") or [] if a.get("image_id") == image_id]

    h, w = image.get("height"), image.get("width")
    if h is None or w is None:
        size = _first_rle_size(anns)
        if size is None:
            raise InputError(f"from_coco: image {image_id!r} has no height/width")
        h, w = size
    h, w = int(h), int(w)

    meta = {"source": "coco", "image_id": image_id, "file_name": image.get("file_name")}
    if not anns:
        return Segmentation.empty(prompts, (h, w), meta=meta)

    objs = []
    query_index = []
    for a in anns:
        cat = a.get("category_id")
        if cat not in q_of_cat:
            raise InputError(
                f"from_coco: annotation {a.get('id')!r} has category_id {cat!r}, which is not "
                "in categories"
            )
        query_index.append(q_of_cat[cat])
        objs.append(_segmentation_to_rle(a, h, w))
    masks = _decode(objs)
    scores = np.array([float(a.get("score", 1.0)) for a in anns], dtype=np.float32)
    if all("bbox" in a for a in anns):
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    else:
        boxes = masks_to_boxes(masks)

    extras = {}
    extra_keys = set(anns[0]) - _STANDARD_KEYS
    for a in anns[1:]:
        extra_keys &= set(a)
    for key in sorted(extra_keys):
        try:
            values = np.array([a[key] for a in anns])
        except ValueError:  # ragged lists
            continue
        if values.dtype.kind in "biuf":
            extras[key] = values
    return Segmentation(
        masks=masks,
        scores=scores,
        boxes=boxes.astype(np.float32),
        query_index=np.array(query_index, dtype=np.int64),
        prompts=prompts,
        extras=extras,
        meta=meta,
    )


# ---------------------------------------------------------------------- helpers
def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; check the path") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable COCO JSON file ({exc})") from exc


def _first_rle_size(anns: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    for a in anns:
        seg = a.get("segmentation")
        if isinstance(seg, Mapping) and "size" in seg:
            return int(seg["size"][0]), int(seg["size"][1])
    return None


def _to_compressed(rle: Mapping[str, Any], i: int) -> dict[str, Any]:
    """A pycocotools RLE object (bytes counts) from a compressed or uncompressed RLE dict."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InputError(f"RLE {i}: expected a dict with 'size' and 'counts', received {rle!r}")
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [h, w], "counts": counts}


def _segmentation_to_rle(ann: Mapping[str, Any], h: int, w: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if isinstance(seg, Mapping):
        rle = _to_compressed(seg, ann.get("id", 0))
        if tuple(rle["size"]) != (h, w):
            raise InputError(
                f"from_coco: annotation {ann.get('id')!r} has mask size {rle['size']}, image is "
                f"{[h, w]}"
            )
        return rle
    if isinstance(seg, list) and seg:  # polygons [[x1, y1, x2, y2, ...], ...]
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    raise InputError(
        f"from_coco: annotation {ann.get('id')!r} has no usable segmentation (RLE or polygons)"
    )


def _decode(objs: list[dict[str, Any]]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        # pycocotools + numpy 2: "__array__ implementation doesn't accept a copy keyword".
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(objs)  # (H, W, N) uint8
    return np.ascontiguousarray(np.moveaxis(decoded, -1, 0)).astype(bool)

"""The one result type every promptseg pipeline returns: :class:`Segmentation`.

Modelled on supervision's ``Detections`` (one validated dataclass, boolean filtering,
``empty()`` and ``merge()``), with everything in the frame of the original image:

- ``masks``: ``(N, H, W)`` bool, ``H, W`` the original image size;
- ``scores``: ``(N,)`` float32; each pipeline documents what its score means;
- ``boxes``: ``(N, 4)`` float32, ``xyxy`` in pixels; ``x2, y2`` are exclusive, so the box of
  a mask is ``[xmin, ymin, xmax + 1, ymax + 1]`` (an empty mask has box ``[0, 0, 0, 0]``);
- ``query_index``: ``(N,)`` int64, which prompt each instance answers (index into
  ``prompts``);
- ``prompts``: the ``Q`` text prompts of the query, in order;
- ``heatmaps``: ``None`` or ``(Q, H, W)`` float32, one dense relevance map per prompt;
- ``extras``: per-instance arrays whose first axis is ``N`` (``"predicted_iou"``,
  ``"stability_score"``, ``"clip_scores"`` of shape ``(N, Q)``, ...);
- ``meta``: per-image facts (``"pipeline"``, ``"models"``, ``"config"``, and ``"timings"``:
  seconds per stage).

``N = 0`` keeps every axis: masks ``(0, H, W)``, boxes ``(0, 4)``, extras ``(0, ...)``.
Conversions to other formats live in :mod:`promptseg.convert` and are reached through thin
methods here (``save_coco``, ``save_overlay``, ``to_supervision``, ...). The dependency runs
one way: ``promptseg.convert`` builds on this module, and this module imports nothing from
it at import time (the methods import their converter when called).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import InputError

# No module-level import of promptseg.convert: convert builds on this module, so the
# conversion methods below are shortcuts that import their converter when called.

__all__ = ["Instance", "Segmentation", "masks_to_boxes"]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of masks.

    Args:
        masks: ``(N, H, W)`` bool (or 0/1) masks.

    Returns:
        ``(N, 4)`` float32 ``xyxy`` boxes in pixels, ``x2, y2`` exclusive
        (``[xmin, ymin, xmax + 1, ymax + 1]``); all zeros for an empty mask.

    Example:
        >>> m = np.zeros((1, 4, 5), bool); m[0, 1:3, 2] = True
        >>> masks_to_boxes(m).tolist()
        [[2.0, 1.0, 3.0, 3.0]]
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InputError(
            f"masks: expected shape (N, H, W), received {masks.shape}; for one (H, W) mask pass "
            "mask[None]"
        )
    masks = masks.astype(bool, copy=False)
    n, h, w = masks.shape
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0 or h == 0 or w == 0:
        return boxes
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    found = rows.any(axis=1)
    x1 = cols.argmax(axis=1)
    x2 = w - cols[:, ::-1].argmax(axis=1)
    y1 = rows.argmax(axis=1)
    y2 = h - rows[:, ::-1].argmax(axis=1)
    boxes[found] = np.stack([x1, y1, x2, y2], axis=1)[found].astype(np.float32)
    return boxes


@dataclass(frozen=True, eq=False)
class Instance:
    """One instance of a :class:`Segmentation`, as yielded by iterating over it.

    Attributes:
        index: position in the segmentation.
        mask: ``(H, W)`` bool (a view into ``Segmentation.masks``).
        score: the instance score.
        box: ``(x1, y1, x2, y2)`` pixels, ``x2, y2`` exclusive.
        query_index: index of the prompt in ``Segmentation.prompts``.
        prompt: the prompt text.
        extras: the instance's row of every extra (numpy scalars or arrays).
    """

    index: int
    mask: np.ndarray
    score: float
    box: tuple[float, float, float, float]
    query_index: int
    prompt: str
    extras: dict[str, Any]


_NUMERIC_KINDS = "biuf"


@dataclass(eq=False, repr=False)
class Segmentation:
    """Instance masks for the prompts of one image, in original-image pixels.

    See the module docstring for every field's shape, dtype and meaning. The constructor
    validates shapes and dtypes and raises :class:`~promptseg.errors.InputError` saying
    what it expected and what it received. Lossless coercions are done for you: lists
    become arrays, 0/1 integer masks become bool, integral floats become int64 query
    indices; scores, boxes and heatmaps are stored as float32. Arrays that already have
    the right dtype are kept, not copied.

    Example:
        >>> m = np.zeros((2, 4, 6), bool); m[0, :2, :3] = True; m[1, 3, 5] = True
        >>> seg = Segmentation.from_masks(m, scores=[0.9, 0.4], query_index=[0, 1],
        ...                               prompts=("a cat", "a dog"))
        >>> len(seg), seg.image_size, seg.boxes[1].tolist()
        (2, (4, 6), [5.0, 3.0, 6.0, 4.0])
        >>> len(seg[seg.scores > 0.5]), seg.for_prompt("a dog").scores.tolist()
        (1, [0.4000000059604645])
    """

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    query_index: np.ndarray
    prompts: tuple[str, ...]
    heatmaps: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prompts = _check_prompts(self.prompts)
        self.masks = _check_masks(self.masks)
        n, h, w = self.masks.shape
        q = len(self.prompts)
        self.scores = _float_array("scores", self.scores, (n,), "(N,)")
        self.boxes = _float_array("boxes", self.boxes, (n, 4), "(N, 4)")
        bad = ~((self.boxes[:, 2] >= self.boxes[:, 0]) & (self.boxes[:, 3] >= self.boxes[:, 1]))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"Segmentation.boxes must be xyxy with x2 >= x1 and y2 >= y1; row {i} is "
                f"{self.boxes[i].tolist()} (xywh boxes? convert with x2 = x + w, y2 = y + h)"
            )
        self.query_index = _check_query_index(self.query_index, n, q)
        if self.heatmaps is not None:
            self.heatmaps = _float_array("heatmaps", self.heatmaps, (q, h, w), "(Q, H, W)")
        self.extras = _check_extras(self.extras, n)
        if not isinstance(self.meta, Mapping):
            raise InputError(
                f"Segmentation.meta must be a dict, received {type(self.meta).__name__}"
            )
        self.meta = dict(self.meta)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_masks(
        cls,
        masks: np.ndarray,
        scores: np.ndarray | Sequence[float],
        query_index: np.ndarray | Sequence[int],
        prompts: Sequence[str],
        **kwargs: Any,
    ) -> Segmentation:
        """Build a segmentation whose boxes are the tight boxes of ``masks``.

        Args:
            masks: ``(N, H, W)`` bool.
            scores: ``(N,)``.
            query_index: ``(N,)`` indices into ``prompts``.
            prompts: the ``Q`` prompts.
            **kwargs: ``heatmaps``, ``extras``, ``meta``.
        """
        masks = _check_masks(masks)
        return cls(masks, scores, masks_to_boxes(masks), query_index, prompts, **kwargs)

    @classmethod
    def empty(
        cls,
        prompts: Sequence[str],
        image_size: tuple[int, int],
        *,
        heatmaps: np.ndarray | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Segmentation:
        """A segmentation with no instances (``N = 0``) for an image of ``image_size``.

        Args:
            prompts: the ``Q`` prompts.
            image_size: ``(H, W)`` of the original image.
            heatmaps: optional ``(Q, H, W)`` float maps.
            meta: optional per-image facts.
        """
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError) as exc:
            raise InputError(f"image_size must be (H, W), received {image_size!r}") from exc
        if h < 0 or w < 0:
            raise InputError(f"image_size must be (H, W) >= 0, received {image_size!r}")
        return cls(
            masks=np.zeros((0, h, w), dtype=bool),
            scores=np.zeros(0, dtype=np.float32),
            boxes=np.zeros((0, 4), dtype=np.float32),
            query_index=np.zeros(0, dtype=np.int64),
            prompts=prompts,
            heatmaps=heatmaps,
            meta=dict(meta or {}),
        )

    @classmethod
    def merge(cls, segmentations: Iterable[Segmentation]) -> Segmentation:
        """Concatenate the instances of several segmentations of the same image.

        All must have the same ``image_size`` and ``prompts``; instances keep their order
        (first segmentation first). ``extras`` must have the same keys in every
        segmentation that has instances. ``heatmaps`` and ``meta`` are taken from the first
        segmentation that has heatmaps (resp. the first one).

        Raises:
            InputError: empty list, different image sizes, prompts or extras.
        """
        segs = list(segmentations)
        if not segs:
            raise InputError("Segmentation.merge needs at least one Segmentation, got none")
        for i, s in enumerate(segs):
            if not isinstance(s, Segmentation):
                raise InputError(
                    f"Segmentation.merge: item {i} is a {type(s).__name__}, not a Segmentation"
                )
        first = segs[0]
        for i, s in enumerate(segs[1:], start=1):
            if s.image_size != first.image_size:
                raise InputError(
                    f"Segmentation.merge: item {i} has image_size {s.image_size}, expected "
                    f"{first.image_size} (merge only results of the same image)"
                )
            if s.prompts != first.prompts:
                raise InputError(
                    f"Segmentation.merge: item {i} has prompts {s.prompts}, expected "
                    f"{first.prompts}"
                )
        filled = [s for s in segs if len(s)] or [first]
        keys = list(filled[0].extras)
        for s in filled:
            if set(s.extras) != set(keys):
                raise InputError(
                    "Segmentation.merge: extras differ: "
                    f"{sorted(s.extras)} vs {sorted(keys)}; give every segmentation the same "
                    "extras (or drop them)"
                )
        extras = {}
        for k in keys:
            try:
                extras[k] = np.concatenate([s.extras[k] for s in filled], axis=0)
            except ValueError as exc:
                shapes = [s.extras[k].shape for s in filled]
                raise InputError(
                    f"Segmentation.merge: extras[{k!r}] have incompatible shapes {shapes}"
                ) from exc
        heatmaps = next((s.heatmaps for s in segs if s.heatmaps is not None), None)
        return cls(
            masks=np.concatenate([s.masks for s in segs], axis=0),
            scores=np.concatenate([s.scores for s in segs]),
            boxes=np.concatenate([s.boxes for s in segs], axis=0),
            query_index=np.concatenate([s.query_index for s in segs]),
            prompts=first.prompts,
            heatmaps=heatmaps,
            extras=extras,
            meta=dict(first.meta),
        )

    @classmethod
    def from_coco(cls, data: Any, image_id: int | None = None) -> Segmentation:
        """Read one image's annotations from a COCO dict or JSON file.

        See :func:`promptseg.convert.coco.from_coco`.
        """
        from promptseg.convert.coco import from_coco  # shortcut: convert builds on result

        return from_coco(data, image_id=image_id)

    @classmethod
    def from_supervision(cls, detections: Any, prompts: Sequence[str]) -> Segmentation:
        """Build from a ``supervision.Detections`` with masks.

        See :func:`promptseg.convert.supervision.from_supervision`.
        """
        from promptseg.convert.supervision import from_supervision  # shortcut, as above

        return from_supervision(detections, prompts)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the original image, in pixels."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` int64 number of pixels of each mask."""
        return self.masks.sum(axis=(1, 2), dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"Segmentation(n={len(self)}, image_size={self.image_size}, prompts={self.prompts}, "
            f"heatmaps={'yes' if self.heatmaps is not None else 'no'}, "
            f"extras={sorted(self.extras)})"
        )

    def __iter__(self) -> Iterator[Instance]:
        """Yield one :class:`Instance` record per instance, in order."""
        for i in range(len(self)):
            q = int(self.query_index[i])
            yield Instance(
                index=i,
                mask=self.masks[i],
                score=float(self.scores[i]),
                box=tuple(float(v) for v in self.boxes[i]),
                query_index=q,
                prompt=self.prompts[q],
                extras={k: v[i] for k, v in self.extras.items()},
            )

    def __getitem__(self, key: Any) -> Segmentation:
        """Select instances; always returns a :class:`Segmentation` (an int keeps ``N = 1``).

        ``key`` is an int, a slice, an ``(N,)`` bool mask or an array of indices. Extras are
        selected too; prompts, heatmaps and meta are kept.
        """
        n = len(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"instance index {i} out of range for {n} instances")
            index: Any = np.array([i % n], dtype=np.int64)
        elif isinstance(key, slice):
            index = key
        else:
            index = _selection(key, n)
        return Segmentation(
            masks=self.masks[index],
            scores=self.scores[index],
            boxes=self.boxes[index],
            query_index=self.query_index[index],
            prompts=self.prompts,
            heatmaps=self.heatmaps,
            extras={k: v[index] for k, v in self.extras.items()},
            meta=dict(self.meta),
        )

    def filter(self, keep: Any) -> Segmentation:
        """Keep the instances selected by an ``(N,)`` bool mask or an array of indices.

        Example: ``seg.filter(seg.scores > 0.5)``.
        """
        return self[_selection(keep, len(self))]

    def for_prompt(self, query: int | str) -> Segmentation:
        """The instances answering one prompt, given by index or by its text.

        A text matching several prompts (duplicates) selects all of them.
        """
        if isinstance(query, str):
            hits = [i for i, p in enumerate(self.prompts) if p == query]
            if not hits:
                raise InputError(f"prompt {query!r} is not one of {self.prompts}")
            return self.filter(np.isin(self.query_index, hits))
        if isinstance(query, (bool, np.bool_)) or not isinstance(query, (int, np.integer)):
            raise InputError(
                f"for_prompt takes a prompt index or text, received {type(query).__name__}"
            )
        q = len(self.prompts)
        if not 0 <= int(query) < q:
            raise InputError(f"prompt index {int(query)} out of range for {q} prompts")
        return self.filter(self.query_index == int(query))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, include_masks: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: prompts, image size, one record per instance, and meta.

        Each instance record has ``index``, ``query_index``, ``prompt``, ``score``, ``box``
        (``xyxy`` pixels, ``x2, y2`` exclusive), ``area`` (pixels) and ``extras``; with
        ``include_masks=True`` also ``mask``, a COCO compressed RLE
        (``{"size": [H, W], "counts": str}``, decode with
        :func:`promptseg.convert.coco.rle_decode`). Heatmaps are not included.
        Non-finite floats become ``null``.
        """
        rles = None
        if include_masks:
            from promptseg.convert.coco import rle_encode  # convert builds on result

            rles = rle_encode(self.masks)
        areas = self.areas
        instances = []
        for i in range(len(self)):
            q = int(self.query_index[i])
            record: dict[str, Any] = {
                "index": i,
                "query_index": q,
                "prompt": self.prompts[q],
                "score": to_jsonable(self.scores[i]),
                "box": to_jsonable(self.boxes[i]),
                "area": int(areas[i]),
                "extras": {k: to_jsonable(v[i]) for k, v in self.extras.items()},
            }
            if rles is not None:
                record["mask"] = rles[i]
            instances.append(record)
        h, w = self.image_size
        return {
            "image_size": [h, w],
            "prompts": list(self.prompts),
            "num_instances": len(self),
            "instances": instances,
            "meta": to_jsonable(self.meta),
        }

    def to_json(self, include_masks: bool = False, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(include_masks=include_masks), indent=indent)

    # ------------------------------------------------------------------ exports
    # The converters import here, when called: promptseg.convert builds on this module.
    def save_masks(self, out_dir: str | os.PathLike, stem: str = "mask") -> list[Path]:
        """Write one PNG per mask (mode ``L``, 0 = background, 255 = mask).

        Files are named ``{stem}_{index}_{prompt slug}.png``, e.g.
        ``mask_000_the-red-star.png`` (index zero-padded to at least 3 digits, slug made of
        lower-case ASCII letters, digits and ``-``). Each file is written atomically; the
        folder is created if needed.

        Returns:
            The paths written, in instance order.
        """
        from PIL import Image

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        n = len(self)
        width = max(3, len(str(max(n - 1, 0))))
        paths = []
        for i in range(n):
            q = int(self.query_index[i])
            path = out_dir / f"{stem}_{i:0{width}d}_{_slug(self.prompts[q], q)}.png"
            with atomic_write(path) as tmp:
                pixels = self.masks[i].astype(np.uint8) * np.uint8(255)
                Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
            paths.append(path)
        return paths

    def to_coco(self, **kwargs: Any) -> dict[str, Any]:
        """COCO dict of this image; see :func:`promptseg.convert.coco.to_coco`."""
        from promptseg.convert.coco import to_coco

        return to_coco(self, **kwargs)

    def save_coco(self, path: str | os.PathLike, **kwargs: Any) -> Path:
        """Write COCO JSON atomically; see :func:`promptseg.convert.coco.save_coco`."""
        from promptseg.convert.coco import save_coco

        return save_coco(self, path, **kwargs)

    def save_overlay(
        self, image: Any, path: str | os.PathLike, alpha: float = 0.5, **kwargs: Any
    ) -> Path:
        """Write a PNG of ``image`` with the masks drawn over it and a legend.

        See :func:`promptseg.convert.overlay.save_overlay`.
        """
        from promptseg.convert.overlay import save_overlay

        return save_overlay(self, image, path, alpha=alpha, **kwargs)

    def to_supervision(self) -> Any:
        """A ``supervision.Detections``.

        See :func:`promptseg.convert.supervision.to_supervision`.
        """
        from promptseg.convert.supervision import to_supervision

        return to_supervision(self)


# ---------------------------------------------------------------------- validation helpers
def _check_prompts(prompts: Any) -> tuple[str, ...]:
    if isinstance(prompts, str):
        raise InputError(
            f"Segmentation.prompts must be a sequence of strings, received the string "
            f"{prompts!r}; pass ({prompts!r},)"
        )
    try:
        out = tuple(prompts)
    except TypeError as exc:
        raise InputError(
            f"Segmentation.prompts must be a sequence of strings, received "
            f"{type(prompts).__name__}"
        ) from exc
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise InputError(
                f"Segmentation.prompts[{i}] must be a str, received {type(p).__name__} {p!r}"
            )
    return out


def _check_masks(masks: Any) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim != 3:
        hint = " (for one mask pass mask[None])" if arr.ndim == 2 else ""
        hint = hint or " (no instances? use Segmentation.empty(prompts, image_size))"
        raise InputError(
            f"Segmentation.masks: expected shape (N, H, W), received {arr.shape}{hint}"
        )
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(f"Segmentation.masks: expected dtype bool, received {arr.dtype}")
    if not ((arr == 0) | (arr == 1)).all():
        raise InputError(
            f"Segmentation.masks: expected dtype bool, received {arr.dtype} with values other "
            "than 0 and 1; threshold it yourself, e.g. masks > 0.5"
        )
    return arr.astype(bool)


def _float_array(name: str, value: Any, shape: tuple[int, ...], spec: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0 and int(np.prod(shape)) == 0:
        arr = arr.reshape(shape)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise InputError(f"Segmentation.{name}: expected float32 numbers, received {arr.dtype}")
    if arr.shape != shape:
        raise InputError(
            f"Segmentation.{name}: expected shape {spec} = {shape}, received {arr.shape}"
        )
    return arr.astype(np.float32, copy=False)


def _check_query_index(value: Any, n: int, q: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0 and n == 0:
        arr = arr.reshape(0)
    if arr.shape != (n,):
        raise InputError(
            f"Segmentation.query_index: expected shape (N,) = ({n},), received {arr.shape}"
        )
    if arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"Segmentation.query_index: expected int64 indices, received {arr.dtype}"
        )
    arr = arr.astype(np.int64, copy=False)
    if n and (arr.min() < 0 or arr.max() >= q):
        raise InputError(
            f"Segmentation.query_index: values must be in [0, {q}) (indices into {q} prompts), "
            f"received values in [{arr.min()}, {arr.max()}]"
        )
    return arr


def _check_extras(extras: Any, n: int) -> dict[str, np.ndarray]:
    if not isinstance(extras, Mapping):
        raise InputError(
            f"Segmentation.extras must be a dict of arrays, received {type(extras).__name__}"
        )
    out = {}
    for key, value in extras.items():
        if not isinstance(key, str):
            raise InputError(f"Segmentation.extras keys must be str, received {key!r}")
        arr = np.asarray(value)
        if arr.size == 0 and n == 0 and arr.ndim <= 1:
            arr = arr.reshape(0)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise InputError(
                f"Segmentation.extras[{key!r}]: expected first axis N = {n}, received shape "
                f"{arr.shape}"
            )
        out[key] = arr
    return out


def _selection(key: Any, n: int) -> np.ndarray:
    arr = np.asarray(key)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise InputError(f"boolean selection: expected shape ({n},), received {arr.shape}")
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InputError(
            f"selection must be an ({n},) bool mask or a 1-D array of indices, received "
            f"{arr.dtype} array of shape {arr.shape}"
        )
    if arr.min() < -n or arr.max() >= n:
        raise InputError(
            f"selection indices must be in [{-n}, {n}), received [{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.int64, copy=False)


def _slug(text: str, q: int, max_len: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_len].strip("-")
    return slug or f"prompt-{q}"

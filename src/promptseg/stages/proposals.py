"""Automatic mask generation ("segment everything") with a SAM-family segmenter.

Paper: Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643, section 7.1 and
appendix B (automatic mask generation for SA-1B). Reference implementation:
``segment_anything.SamAutomaticMaskGenerator`` (PyPI ``segment-anything==1.0``,
``automatic_mask_generator.py`` and ``utils/amg.py``); this module keeps its parameter names,
defaults, thresholds (``>`` for predicted IoU, ``>=`` for stability), steps and output order:

1. crop boxes: the whole image, then per layer i a (2^(i+1))^2 grid of overlapping crops;
2. per crop: embed the crop once, prompt it with a regular point grid in batches
   (one foreground point, three masks each), keep masks with predicted IoU above
   ``pred_iou_thresh`` and stability score at least ``stability_score_thresh``, binarise at 0,
   take boxes, drop boxes near a crop edge that is not an image edge, then box NMS
   (``box_nms_thresh``, scored by predicted IoU);
3. across crops (only when there are several): box NMS scored by ``1 / crop area`` so masks
   from smaller crops win;
4. if ``min_mask_region_area > 0``: fill small holes, remove small islands (OpenCV connected
   components, 8-connectivity), recompute boxes, NMS preferring unchanged masks.

Deviation (speed and memory only, same results): masks are kept as bit-packed tensors in the
crop frame instead of RLE, so pycocotools is not in the hot path. The same algorithm is applied
to every SAM family (SAM 2's own generator has extra options, such as mask-to-mask refinement,
that are not reproduced here).

Conventions: image ``(H, W, 3) uint8`` RGB; boxes xyxy pixels of the original image, where
x1 / y1 are the last column / row inside the mask (inclusive, as the reference computes them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import torch

from promptseg.errors import ConfigError, InputError
from promptseg.image import check_rgb_image
from promptseg.models.sam import ImageEmbedding, SamSegmenter

logger = logging.getLogger(__name__)

__all__ = [
    "MaskGenerationConfig",
    "MaskProposals",
    "build_point_grid",
    "generate_crop_boxes",
    "generate_masks",
    "stability_scores",
]

# [SAM-repo] utils/amg.py is_box_near_crop_edge: tolerance in pixels
_CROP_EDGE_ATOL = 20.0
# [SAM-repo] modeling/sam.py Sam.mask_threshold
_MASK_THRESHOLD = 0.0


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class MaskGenerationConfig:
    """Parameters of automatic mask generation; names and defaults of the SAM reference.

    The defaults were chosen by the SAM authors for SAM ViT-H. ``point_grids`` (a sequence of
    ``(n, 2)`` grids in [0, 1], one per crop layer) replaces ``points_per_side``: give exactly
    one of the two, e.g. ``MaskGenerationConfig(points_per_side=None, point_grids=[grid])``.
    Grids are stored as tuples of (x, y) tuples so the config stays hashable.
    """

    points_per_side: int | None = 32  # [SAM-repo] automatic_mask_generator.py
    points_per_batch: int = 64  # [SAM-repo] automatic_mask_generator.py
    pred_iou_thresh: float = 0.88  # [SAM-repo] automatic_mask_generator.py
    stability_score_thresh: float = 0.95  # [SAM-repo] automatic_mask_generator.py
    stability_score_offset: float = 1.0  # [SAM-repo] automatic_mask_generator.py
    box_nms_thresh: float = 0.7  # [SAM-repo] automatic_mask_generator.py
    crop_n_layers: int = 0  # [SAM-repo] automatic_mask_generator.py
    crop_nms_thresh: float = 0.7  # [SAM-repo] automatic_mask_generator.py
    crop_overlap_ratio: float = 512 / 1500  # [SAM-repo] automatic_mask_generator.py
    crop_n_points_downscale_factor: int = 1  # [SAM-repo] automatic_mask_generator.py
    point_grids: Sequence[Any] | None = None  # [SAM-repo] automatic_mask_generator.py
    min_mask_region_area: int = 0  # [SAM-repo] automatic_mask_generator.py

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise ConfigError(
                "give exactly one of points_per_side and point_grids (set points_per_side=None "
                "when you pass point_grids)"
            )
        if self.points_per_side is not None and (
            not _is_int(self.points_per_side) or self.points_per_side < 1
        ):
            raise ConfigError(f"points_per_side must be an int >= 1, got {self.points_per_side!r}")
        for name in ("points_per_batch", "crop_n_points_downscale_factor"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("crop_n_layers", "min_mask_region_area"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
        for name in (
            "pred_iou_thresh",
            "stability_score_thresh",
            "box_nms_thresh",
            "crop_nms_thresh",
        ):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
        if not _is_real(self.stability_score_offset) or self.stability_score_offset < 0:
            raise ConfigError(
                f"stability_score_offset must be a number >= 0, got {self.stability_score_offset!r}"
            )
        if not _is_real(self.crop_overlap_ratio) or not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise ConfigError(
                f"crop_overlap_ratio must be a number in [0, 1), got {self.crop_overlap_ratio!r}"
            )
        if self.points_per_side is not None:
            for layer in range(self.crop_n_layers + 1):
                if int(self.points_per_side / (self.crop_n_points_downscale_factor**layer)) < 1:
                    raise ConfigError(
                        f"crop layer {layer} would get no points: points_per_side "
                        f"{self.points_per_side} / crop_n_points_downscale_factor "
                        f"{self.crop_n_points_downscale_factor}**{layer} < 1"
                    )
        if self.point_grids is not None:
            grids = []
            for i, grid in enumerate(self.point_grids):
                arr = np.asarray(grid, dtype=np.float64)
                if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
                    raise ConfigError(
                        f"point_grids[{i}] must be (n, 2) with n >= 1, got {arr.shape}"
                    )
                if not np.all((arr >= 0) & (arr <= 1)):
                    raise ConfigError(f"point_grids[{i}] must hold x, y normalised to [0, 1]")
                grids.append(tuple(tuple(float(v) for v in row) for row in arr))
            if len(grids) < self.crop_n_layers + 1:
                raise ConfigError(
                    f"point_grids has {len(grids)} grid(s) but crop_n_layers={self.crop_n_layers} "
                    f"needs {self.crop_n_layers + 1} (one per layer, the whole image first)"
                )
            object.__setattr__(self, "point_grids", tuple(grids))

    def layer_point_grids(self) -> list[np.ndarray]:
        """One ``(n, 2)`` float64 grid in [0, 1] per crop layer (layer 0 = the whole image)."""
        if self.point_grids is not None:
            return [np.asarray(g, dtype=np.float64) for g in self.point_grids]
        return [
            build_point_grid(int(self.points_per_side / (self.crop_n_points_downscale_factor**i)))
            for i in range(self.crop_n_layers + 1)
        ]


@dataclass(frozen=True, eq=False)
class MaskProposals:
    """Masks proposed by :func:`generate_masks`, in the reference generator's output order.

    Attributes:
        masks: ``(N, H, W)`` bool, original image size.
        boxes: ``(N, 4)`` float32 xyxy pixels; x1, y1 are inclusive (last column / row).
        predicted_iou: ``(N,)`` float32, the decoder's IoU estimate.
        stability_score: ``(N,)`` float32, IoU of the mask thresholded at +offset and -offset.
        point_coords: ``(N, 2)`` float32 x, y of the point prompt that produced each mask.
        crop_boxes: ``(N, 4)`` float32 xyxy of the crop each mask came from.
    """

    masks: np.ndarray
    boxes: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    point_coords: np.ndarray
    crop_boxes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.masks)
        if self.masks.ndim != 3 or self.masks.dtype != np.bool_:
            raise InputError(
                f"masks must be (N, H, W) bool, got {self.masks.shape} {self.masks.dtype}"
            )
        expected = {
            "boxes": (n, 4),
            "predicted_iou": (n,),
            "stability_score": (n,),
            "point_coords": (n, 2),
            "crop_boxes": (n, 4),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise InputError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` int64 pixel count of each mask."""
        return self.masks.reshape(len(self.masks), -1).sum(axis=1).astype(np.int64)


# ---------------------------------------------------------------------------- geometry helpers
def build_point_grid(n_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` float64 points evenly spaced in [0, 1]^2, cell centres, x varying fastest."""
    half_step = 1.0 / (2 * n_per_side)
    side = np.linspace(half_step, 1.0 - half_step, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def generate_crop_boxes(
    image_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (xyxy ints) and their layer index: the whole image, then the crop layers.

    Layer i (1-based) tiles the image with ``2**i`` crops per side that overlap by
    ``int(overlap_ratio * short_side * 2 / 2**i)`` pixels, as the reference does.
    """
    height, width = image_size
    short_side = min(height, width)
    boxes: list[list[int]] = [[0, 0, width, height]]
    layers: list[int] = [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + width) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + height) / per_side))
        starts_x = [int((crop_w - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):  # x outer, y inner, as the reference
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layers.append(layer)
    return boxes, layers


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``(N, h, w)`` bool -> ``(N, 4)`` int64 xyxy (inclusive); ``[0, 0, 0, 0]`` if empty."""
    n, h, w = masks.shape
    if n == 0 or h == 0 or w == 0:
        return torch.zeros((n, 4), dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    row_idx = torch.arange(h, device=masks.device)
    col_idx = torch.arange(w, device=masks.device)
    top = torch.where(rows, row_idx, h).amin(dim=1)
    bottom = torch.where(rows, row_idx, -1).amax(dim=1)
    left = torch.where(cols, col_idx, w).amin(dim=1)
    right = torch.where(cols, col_idx, -1).amax(dim=1)
    boxes = torch.stack([left, top, right, bottom], dim=1)
    empty = ~rows.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)


def stability_scores(logits: torch.Tensor, threshold: float = 0.0,
                     offset: float = 1.0) -> torch.Tensor:
    """``(..., H, W)`` mask logits -> ``(...)`` SAM's stability score: the IoU between the
    masks binarised at ``threshold + offset`` and ``threshold - offset`` (defaults: SAM's).

    The high-threshold mask lies inside the low one, so IoU = area(high) / area(low)
    (NaN when both are empty, as in the reference).
    """
    high = (logits > (threshold + offset)).sum(dim=(-1, -2), dtype=torch.int32)
    low = (logits > (threshold - offset)).sum(dim=(-1, -2), dtype=torch.int32)
    return high / low


def _near_crop_edge(boxes: torch.Tensor, crop_box: list[int], image_box: list[int]) -> torch.Tensor:
    """True for boxes (crop frame) within 20 px of a crop edge that is not an image edge."""
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([[x0, y0, x0, y0]], device=boxes.device)
    full = (boxes + offset).float()
    crop_t = torch.tensor(crop_box, dtype=torch.float32, device=boxes.device)[None]
    image_t = torch.tensor(image_box, dtype=torch.float32, device=boxes.device)[None]
    near_crop = torch.isclose(full, crop_t, atol=_CROP_EDGE_ATOL, rtol=0)
    near_image = torch.isclose(full, image_t, atol=_CROP_EDGE_ATOL, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def _pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """``(N, h, w)`` bool -> ``(N, h, ceil(w / 8))`` uint8, 8 pixels per byte (MSB first)."""
    n, h, w = masks.shape
    pad = (-w) % 8
    as_bytes = torch.nn.functional.pad(masks.to(torch.uint8), (0, pad))
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=masks.device)
    return (as_bytes.view(n, h, (w + pad) // 8, 8) * weights).sum(dim=-1, dtype=torch.uint8)


def _unpack_masks(packed: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`_pack_masks`."""
    n, h, n_bytes = packed.shape
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) & weights) != 0
    return bits.view(n, h, n_bytes * 8)[:, :, :width]


# ---------------------------------------------------------------------------- per-crop records
@dataclass
class _CropRecords:
    """Masks of one crop: packed masks in the crop frame, the rest in the image frame."""

    crop_box: list[int]
    packed: torch.Tensor  # (n, h, ceil(w/8)) uint8
    boxes: torch.Tensor  # (n, 4) int64, image frame
    iou: torch.Tensor  # (n,) float32
    stability: torch.Tensor  # (n,) float32
    points: torch.Tensor  # (n, 2) float64, image frame


def _process_batch(
    segmenter: SamSegmenter,
    embedding: ImageEmbedding,
    points: np.ndarray,
    crop_box: list[int],
    image_size: tuple[int, int],
    cfg: MaskGenerationConfig,
) -> dict[str, torch.Tensor]:
    """One batch of point prompts on one crop -> filtered masks (crop frame)."""
    n = len(points)
    prompts = segmenter.check_prompts(
        point_coords=points[:, None, :], point_labels=np.ones((n, 1), dtype=np.int64)
    )
    low_res, iou = segmenter.decode(embedding, prompts, multimask_output=True)
    k = low_res.shape[1]
    low_res = low_res.flatten(0, 1)
    iou = iou.flatten(0, 1)
    pts = torch.from_numpy(np.repeat(points, k, axis=0)).to(low_res.device)

    # Filter by predicted IoU (strictly above the threshold). The reference filters after
    # upscaling; the score does not depend on it, so only the kept masks are upscaled here.
    if cfg.pred_iou_thresh > 0.0:
        keep = iou > cfg.pred_iou_thresh
        low_res, iou, pts = low_res[keep], iou[keep], pts[keep]
    logits = segmenter.upscale(low_res[None], embedding)[0]
    # Stability score (kept when at or above the threshold)
    stability = stability_scores(logits, _MASK_THRESHOLD, cfg.stability_score_offset)
    if cfg.stability_score_thresh > 0.0:
        keep = stability >= cfg.stability_score_thresh
        logits, iou, pts, stability = logits[keep], iou[keep], pts[keep], stability[keep]
    # Binarise, box, drop masks cut by a crop edge that is not an image edge
    masks = logits > _MASK_THRESHOLD
    del logits
    boxes = _mask_boxes(masks)
    height, width = image_size
    near = _near_crop_edge(boxes, crop_box, [0, 0, width, height])
    if bool(near.any()):
        keep = ~near
        masks, boxes, iou, pts, stability = (
            masks[keep],
            boxes[keep],
            iou[keep],
            pts[keep],
            stability[keep],
        )
    return {
        "packed": _pack_masks(masks),
        "boxes": boxes,
        "iou": iou,
        "stability": stability,
        "points": pts,
    }


def _process_crop(
    segmenter: SamSegmenter,
    image: np.ndarray,
    crop_box: list[int],
    grid: np.ndarray,
    cfg: MaskGenerationConfig,
    embedding: ImageEmbedding | None,
    bar: Any,
) -> _CropRecords:
    from torchvision.ops import batched_nms

    x0, y0, x1, y1 = crop_box
    crop = image[y0:y1, x0:x1, :]
    crop_h, crop_w = crop.shape[:2]
    # Embed the crop (the caller's embedding of the whole image is reused when given)
    emb = embedding if embedding is not None else segmenter.embed(np.ascontiguousarray(crop))
    # Point grid of this layer, in crop pixels (float64, x then y)
    points = grid * np.array([[crop_w, crop_h]], dtype=np.float64)

    parts = []
    for start in range(0, len(points), cfg.points_per_batch):
        batch = points[start : start + cfg.points_per_batch]
        parts.append(_process_batch(segmenter, emb, batch, crop_box, image.shape[:2], cfg))
        if bar is not None:
            bar.update(1)
    merged = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    # Remove duplicates within the crop: box NMS scored by predicted IoU
    boxes = merged["boxes"]
    keep = batched_nms(
        boxes.float(),
        merged["iou"],
        torch.zeros(len(boxes), device=boxes.device),
        iou_threshold=cfg.box_nms_thresh,
    )
    merged = {key: value[keep] for key, value in merged.items()}

    # Back to the image frame
    offset = torch.tensor([x0, y0], device=boxes.device)
    return _CropRecords(
        crop_box=list(crop_box),
        packed=merged["packed"],
        boxes=merged["boxes"] + offset.repeat(2)[None],
        iou=merged["iou"],
        stability=merged["stability"],
        points=merged["points"] + offset[None],
    )


# ---------------------------------------------------------------------------- small regions
def _remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than the area.

    Connected components with 8-connectivity (OpenCV). When every island is small the largest
    is kept. Returns the new mask and whether it changed.
    """
    import cv2

    holes = mode == "holes"
    working = (mask ^ holes).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = [i + 1 for i, size in enumerate(sizes) if size < area_thresh]
    if not small:
        return mask, False
    if holes:
        # label 0 is the mask itself; small background components become mask
        return np.isin(labels, [0, *small]), True
    dropped = {0, *small}
    kept = [i for i in range(n_labels) if i not in dropped]
    if not kept:
        kept = [int(np.argmax(sizes)) + 1]
    return np.isin(labels, kept), True


def _postprocess_small_regions(
    masks: np.ndarray, boxes: torch.Tensor, min_area: int, nms_thresh: float
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Clean every mask, then NMS preferring unchanged masks; returns masks, boxes, keep."""
    from torchvision.ops import batched_nms

    if len(masks) == 0:
        return masks, boxes, torch.zeros(0, dtype=torch.int64)
    cleaned = np.empty_like(masks)
    scores = []
    for i, mask in enumerate(masks):
        mask, changed_holes = _remove_small_regions(mask, min_area, "holes")
        mask, changed_islands = _remove_small_regions(mask, min_area, "islands")
        cleaned[i] = mask
        scores.append(0.0 if (changed_holes or changed_islands) else 1.0)
    new_boxes = _mask_boxes(torch.from_numpy(cleaned))
    keep = batched_nms(
        new_boxes.float(),
        torch.as_tensor(scores),
        torch.zeros(len(new_boxes)),
        iou_threshold=nms_thresh,
    )
    return cleaned[keep.numpy()], new_boxes[keep], keep


# ---------------------------------------------------------------------------- entry point
def generate_masks(
    segmenter: SamSegmenter,
    image: np.ndarray,
    config: MaskGenerationConfig | None = None,
    embedding: ImageEmbedding | None = None,
    progress: bool = False,
) -> MaskProposals:
    """Propose masks for everything in an image, as ``SamAutomaticMaskGenerator.generate``.

    Args:
        segmenter: a loaded SAM-family model.
        image: ``(H, W, 3) uint8`` RGB.
        config: generation parameters; default ``MaskGenerationConfig()``.
        embedding: ``segmenter.embed(image)`` if already computed; reused for the whole-image
            crop so the image encoder does not run twice.
        progress: show a progress bar over point batches (tqdm).

    Returns:
        :class:`MaskProposals` (N may be 0).

    Raises:
        InputError: bad image, or an embedding of another image size or model.
    """
    cfg = config if config is not None else MaskGenerationConfig()
    image = check_rgb_image(image)
    height, width = image.shape[:2]
    if embedding is not None:
        if not isinstance(embedding, ImageEmbedding):
            raise InputError(f"embedding must be an ImageEmbedding, got {type(embedding).__name__}")
        if tuple(embedding.original_size) != (height, width):
            raise InputError(
                f"embedding is of an image of size {embedding.original_size}, the image is "
                f"{(height, width)}; pass the embedding of this image or none"
            )
        if embedding.model_id != segmenter.model_id:
            raise InputError(
                f"embedding was computed by {embedding.model_id!r}, not {segmenter.model_id!r}"
            )
    crop_boxes, layer_idxs = generate_crop_boxes(
        (height, width), cfg.crop_n_layers, cfg.crop_overlap_ratio
    )
    grids = cfg.layer_point_grids()
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            total = sum(math.ceil(len(grids[layer]) / cfg.points_per_batch) for layer in layer_idxs)
            bar = tqdm(total=total, desc="segment everything", unit="batch")
        except ImportError:
            logger.info("progress=True needs tqdm; continuing without a progress bar")

    try:
        with torch.inference_mode():
            crops = []
            for crop_box, layer in zip(crop_boxes, layer_idxs, strict=True):
                reuse = embedding if crop_box == [0, 0, width, height] else None
                crops.append(
                    _process_crop(segmenter, image, crop_box, grids[layer], cfg, reuse, bar)
                )
                logger.debug("crop %s (layer %d): %d masks", crop_box, layer, len(crops[-1].iou))
            proposals = _merge_crops(crops, (height, width), cfg)
    finally:
        if bar is not None:
            bar.close()
    return proposals


def _merge_crops(
    crops: list[_CropRecords], image_size: tuple[int, int], cfg: MaskGenerationConfig
) -> MaskProposals:
    from torchvision.ops import batched_nms, box_area

    height, width = image_size
    device = crops[0].boxes.device
    boxes = torch.cat([c.boxes for c in crops])
    iou = torch.cat([c.iou for c in crops])
    stability = torch.cat([c.stability for c in crops])
    points = torch.cat([c.points for c in crops])
    crop_index = torch.cat(
        [torch.full((len(c.iou),), i, dtype=torch.int64) for i, c in enumerate(crops)]
    )
    row = torch.cat([torch.arange(len(c.iou)) for c in crops])
    crop_boxes = torch.tensor([c.crop_box for c in crops], dtype=torch.int64)[crop_index]

    # Remove duplicates between crops: smaller crops win (score = 1 / crop area)
    if len(crops) > 1:
        scores = (1 / box_area(crop_boxes)).to(device)
        keep = batched_nms(
            boxes.float(),
            scores,
            torch.zeros(len(boxes), device=device),
            iou_threshold=cfg.crop_nms_thresh,
        )
        keep_cpu = keep.cpu()
        boxes, iou, stability, points = boxes[keep], iou[keep], stability[keep], points[keep]
        crop_index, row, crop_boxes = crop_index[keep_cpu], row[keep_cpu], crop_boxes[keep_cpu]

    # Paste the surviving masks into the full image, in output order
    masks = torch.zeros((len(row), height, width), dtype=torch.bool, device=device)
    for i, crop in enumerate(crops):
        where = torch.nonzero(crop_index == i).flatten()
        if len(where) == 0:
            continue
        x0, y0, x1, y1 = crop.crop_box
        unpacked = _unpack_masks(crop.packed[row[where].to(crop.packed.device)], x1 - x0)
        masks[where.to(device), y0:y1, x0:x1] = unpacked
    masks_np = masks.cpu().numpy()
    boxes = boxes.cpu()

    # Fill small holes, drop small islands, then NMS preferring unchanged masks
    if cfg.min_mask_region_area > 0:
        nms_thresh = max(cfg.box_nms_thresh, cfg.crop_nms_thresh)
        masks_np, boxes, keep = _postprocess_small_regions(
            masks_np, boxes, cfg.min_mask_region_area, nms_thresh
        )
        iou, stability, points = iou.cpu()[keep], stability.cpu()[keep], points.cpu()[keep]
        crop_boxes = crop_boxes[keep]

    return MaskProposals(
        masks=np.ascontiguousarray(masks_np, dtype=bool),
        boxes=boxes.cpu().numpy().astype(np.float32).reshape(-1, 4),
        predicted_iou=iou.cpu().numpy().astype(np.float32).reshape(-1),
        stability_score=stability.cpu().numpy().astype(np.float32).reshape(-1),
        point_coords=points.cpu().numpy().astype(np.float32).reshape(-1, 2),
        crop_boxes=crop_boxes.cpu().numpy().astype(np.float32).reshape(-1, 4),
    )

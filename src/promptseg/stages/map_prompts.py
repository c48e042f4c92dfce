"""From a soft map to prompts SAM takes: a box, peak points, a low-resolution mask.

The step between "where CLIP looks" (:mod:`promptseg.stages.saliency`, refined by
:mod:`promptseg.stages.crf`) and a SAM-family segmenter, shared by ``camsam`` (the medical
paper's gScoreCAM pipeline, ``papers/lvlm-medical-sam-clip.txt`` Sec. III-C, Fig. 5: map ->
CRF -> box -> SAM), CLIP as RNN's proposals and Talk2SAM's text-only use.

- :func:`smooth`: Gaussian smoothing; the medical paper found its results "highly sensitive
  to the Gaussian filter settings used to generate bounding box prompts" (Sec. VI), so
  ``sigma`` is always an option.
- :func:`binarize`: a fixed threshold or Otsu's.
- :func:`region_box`: the box of the largest connected component (MedCLIP-SAM: the largest
  contour), or of every component holding at least a share of the largest's area.
- :func:`peak_points`: the k highest local maxima, as SAM point prompts.
- :func:`mask_prompt`: the map as SAM's low-resolution mask input (logits in SAM's padded
  input frame).
"""

from __future__ import annotations

import numpy as np

from promptseg.errors import InputError

__all__ = ["binarize", "mask_prompt", "peak_points", "region_box", "smooth"]


def _check_map(saliency, what: str = "map") -> np.ndarray:
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim != 2 or min(saliency.shape) < 1:
        raise InputError(f"{what} must be an (H, W) array, got shape {saliency.shape}")
    if not np.all(np.isfinite(saliency)):
        raise InputError(f"{what} must be finite")
    return saliency


def smooth(saliency: np.ndarray, sigma: float) -> np.ndarray:
    """``(H, W)`` float32: Gaussian-blurred with ``sigma`` pixels (0: unchanged)."""
    import cv2

    saliency = _check_map(saliency)
    if sigma < 0:
        raise InputError(f"sigma must be >= 0 pixels, got {sigma}")
    if sigma == 0:
        return saliency
    return cv2.GaussianBlur(saliency, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT)


def binarize(saliency: np.ndarray, threshold: float | str = "otsu") -> np.ndarray:
    """``(H, W)`` bool: ``map > threshold``; ``"otsu"`` picks the threshold that best splits
    the map's histogram (Otsu 1979, on 256 levels of a map in [0, 1]). A constant map is
    all false under Otsu (nothing stands out)."""
    import cv2

    saliency = _check_map(saliency)
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise InputError(f"threshold must be a number or 'otsu', got {threshold!r}")
        if saliency.max() - saliency.min() <= 1e-12:
            return np.zeros(saliency.shape, bool)
        levels = np.clip(np.round(saliency * 255), 0, 255).astype(np.uint8)
        t, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return levels > t
    return saliency > float(threshold)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(H, W) int32`` and stats ``(K, 5)`` (x, y, w, h, area) of the 8-connected
    components, background row dropped (label k + 1 is row k)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    return labels, stats[1:count]


def region_box(mask: np.ndarray, mode: str = "largest",
               min_area_share: float = 0.25) -> np.ndarray | None:
    """``(4,)`` xyxy float32 box (pixel edges: ``x1 = last column + 1``) of a mask's region,
    or ``None`` when the mask is empty.

    Args:
        mask: ``(H, W)`` bool.
        mode: ``"largest"``: the largest connected component (MedCLIP-SAM); ``"all"``: every
            component of at least ``min_area_share`` of the largest's area (two lungs).
        min_area_share: for ``"all"``, in (0, 1].
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise InputError(f"mask must be (H, W), got shape {mask.shape}")
    if mode not in ("largest", "all"):
        raise InputError(f"box mode must be 'largest' or 'all', got {mode!r}")
    if not 0 < min_area_share <= 1:
        raise InputError(f"min_area_share must be in (0, 1], got {min_area_share}")
    _, stats = _components(mask)
    if len(stats) == 0:
        return None
    areas = stats[:, 4]
    if mode == "largest":
        keep = [int(np.argmax(areas))]
    else:
        keep = np.flatnonzero(areas >= min_area_share * areas.max()).tolist()
    x0 = min(stats[k, 0] for k in keep)
    y0 = min(stats[k, 1] for k in keep)
    x1 = max(stats[k, 0] + stats[k, 2] for k in keep)
    y1 = max(stats[k, 1] + stats[k, 3] for k in keep)
    return np.asarray([x0, y0, x1, y1], np.float32)


def peak_points(saliency: np.ndarray, k: int = 1, min_distance: int = 8,
                mask: np.ndarray | None = None) -> np.ndarray:
    """``(P, 2)`` float32 x, y of the ``k`` highest local maxima (``P <= k``), best first.

    A local maximum is the largest value within ``min_distance`` pixels (a square window);
    a plateau gives its first pixel in row-major order. ``mask`` keeps only peaks inside it.
    Zero-valued pixels are never peaks.
    """
    import cv2

    saliency = _check_map(saliency)
    if k < 1 or min_distance < 0:
        raise InputError(f"k must be >= 1 and min_distance >= 0, got {k}, {min_distance}")
    size = 2 * int(min_distance) + 1
    local_max = cv2.dilate(saliency, np.ones((size, size), np.uint8))
    candidates = (saliency >= local_max) & (saliency > 0)
    if mask is not None:
        candidates &= np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(candidates)
    order = np.lexsort((np.arange(len(ys)), -saliency[ys, xs]))  # value, then row-major
    points: list[tuple[int, int]] = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        if all(max(abs(x - px), abs(y - py)) > min_distance for px, py in points):
            points.append((x, y))
        if len(points) == k:
            break
    return np.asarray(points, np.float32).reshape(-1, 2)


def mask_prompt(saliency: np.ndarray, low_res_size: int = 256, eps: float = 1e-4) -> np.ndarray:
    """``(1, L, L)`` float32 logits for SAM's ``mask_inputs``: the map in [0, 1] resized into
    SAM's input frame (longest side to ``L``, padded bottom and right with "background"), as
    ``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    import cv2

    saliency = _check_map(saliency)
    if saliency.min() < 0 or saliency.max() > 1:
        raise InputError("a mask prompt needs a map in [0, 1]")
    h, w = saliency.shape
    scale = low_res_size / max(h, w)
    nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    resized = cv2.resize(saliency, (nw, nh), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((low_res_size, low_res_size), np.float32)
    frame[:nh, :nw] = resized
    p = np.clip(frame, eps, 1 - eps)
    return np.log(p / (1 - p))[None].astype(np.float32)

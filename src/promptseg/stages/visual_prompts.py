"""Visual prompts: show CLIP one candidate region of an image.

A mask classifier such as CLIP sees a whole picture, not a mask. To ask "is this region a
dog?", the region is marked on the image itself. Each function here takes an image and one
mask and returns a new picture; the scoring stage encodes these pictures with CLIP.

Sources:

- [CaR] Sun et al., "CLIP as RNN: Segment Countless Visual Concepts without Training
  Endeavor", CVPR 2024, arXiv:2312.07661 (``papers/clip-as-rnn.txt``; reference code
  https://github.com/kevin-ssy/CLIP_as_RNN). Sec. 3.3 (the mask classifier) applies red
  circles, contours, bounding boxes, background blur and gray background; Sec. 4.2, Table 4
  finds circle + blur best on Pascal VOC (67.6 mIoU) and the black "mask" prompt worst (61.8).
  Supplementary Sec. C / Algorithm B gives the code: color ``(255, 0, 0)``, ``thickness=1``,
  ``cv2.GaussianBlur(image, (15, 15), 0)``; its ``mask2chw`` centres the circle and the
  rectangle on the mask centroid, with axes half the mask's bounding-box size.
- [Red-circle] Shtedritski, Rupprecht, Vedaldi, "What does CLIP know about a red circle?
  Visual prompt engineering for VLMs", ICCV 2023, arXiv:2304.06712 (cited by CaR as [56]).
- [LVLM-med] "segment on black": the base pipeline of ``papers/lvlm-medical-sam-clip.txt``
  (and SLIP, ``papers/slip-sam-clip.txt``) gives CLIP "the mask from SAM", the segment on a
  black background; that paper's Sec. VI proposes cropping to the segment as future work.

Deviations from [CaR]'s code, on purpose: its "gray" converts the background to grayscale with
``COLOR_BGR2GRAY`` on an RGB array (channel weights swapped); ``grayscale_background`` uses
the RGB weights. ``gray_background`` here fills the background with one constant value
(128 by default), which CaR does not do. Contours are taken after filling holes, as CaR does.

Conventions (the package-wide ones): ``image`` is ``(H, W, 3) uint8`` RGB; ``mask`` is
``(H, W) bool`` in the same pixel frame (integer 0/1 masks are accepted); every function
returns a new ``(H', W', 3) uint8`` array and never changes its input. Boxes are in pixels,
``(y0, y1, x0, x1)`` with exclusive ends where this module uses them internally.

Prompts combine through a spec string such as ``"blur+ellipse"`` or ``"black+crop"``
(:func:`apply_visual_prompt`); :data:`VISUAL_PROMPTS` lists the names. Background edits run
first, then drawings, then the crop, whatever the order in the spec.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from promptseg.errors import ConfigError, InputError
from promptseg.image import check_rgb_image

__all__ = [
    "RED",
    "VISUAL_PROMPTS",
    "VisualPrompt",
    "VisualPromptPlan",
    "apply_visual_prompt",
    "black_background",
    "blur_background",
    "crop_to_mask",
    "darken_background",
    "draw_contour",
    "draw_rectangle",
    "gray_background",
    "grayscale_background",
    "list_visual_prompts",
    "parse_visual_prompt",
    "red_ellipse",
    "render_candidates",
]

RED: tuple[int, int, int] = (255, 0, 0)  # [CaR] Algorithm B, color=(255, 0, 0) (RGB)
CAR_THICKNESS = 1  # [CaR] Algorithm B, thickness=1
CAR_BLUR_KSIZE = 15  # [CaR] Algorithm B, blur_strength=(15, 15), sigma 0 -> OpenCV's 2.6
GRAY_VALUE = 128  # mid-gray; our default, CaR's "gray" is grayscale_background
DARKEN_PERCENT = 50  # our default; no paper here sets one

_Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), exclusive ends, pixels


# --------------------------------------------------------------------------- validation


def _as_bool_masks(masks: Any, ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"{what} must be bool (or integer 0/1), got dtype {arr.dtype}; "
                "threshold probability maps first, e.g. mask > 0.5"
            )
        arr = arr != 0
    if arr.ndim != ndim:
        shape = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise InputError(f"{what} must be {shape}, got shape {arr.shape}")
    return arr


def _check_pair(image: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    image = check_rgb_image(image)
    mask = _as_bool_masks(mask, 2, "mask")
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"mask shape {mask.shape} does not match image (H, W) {image.shape[:2]}; "
            "masks must be in the original image's pixel frame"
        )
    return image, mask


def _check_thickness(thickness: Any) -> int:
    if isinstance(thickness, bool) or not isinstance(thickness, (int, np.integer)):
        raise ConfigError(f"thickness must be an integer >= 1 (pixels), got {thickness!r}")
    if thickness < 1:
        raise ConfigError(f"thickness must be >= 1 pixel, got {thickness}")
    return int(thickness)


def _check_color(color: Any) -> tuple[int, int, int]:
    try:
        values = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(not 0 <= c <= 255 for c in values):
        raise ConfigError(f"color must be three integers 0-255 (R, G, B), got {color!r}")
    return values  # type: ignore[return-value]


def _check_margin(margin: Any) -> float:
    try:
        value = float(margin)
    except (TypeError, ValueError):
        raise ConfigError(f"margin must be a number >= 0, got {margin!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"margin must be >= 0 (a fraction of the mask's box size), got {margin!r}"
        )
    return value


def _check_center(center: str) -> str:
    if center not in ("centroid", "box"):
        raise ConfigError(f"center must be 'centroid' (as CaR) or 'box', got {center!r}")
    return center


def _check_drawing(
    image: Any, mask: Any, thickness: Any, color: Any
) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int, int]]:
    """Check a drawing's arguments, in that order; raise InputError or ConfigError.

    Returns:
        ``(canvas, mask, thickness, color)``: a fresh copy of the ``(H, W, 3) uint8`` image to
        draw on, the ``(H, W) bool`` mask, the line width in pixels and the RGB colour.
    """
    image, mask = _check_pair(image, mask)
    return image.copy(), mask, _check_thickness(thickness), _check_color(color)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    """Where a mask is, in image pixels: box (exclusive ends) and floor of its centroid."""

    box: _Box
    centroid: tuple[int, int]  # (cy, cx) = floor(mean row), floor(mean column), as CaR


def _geometry(mask: np.ndarray, box: _Box | None = None) -> _Geometry:
    if box is None:
        box = _mask_box(mask)
    y0, y1, x0, x1 = box
    sub = mask[y0:y1, x0:x1]
    count = int(np.count_nonzero(sub))
    # Integer arithmetic: floor(sum / count) is exact, so a crop and the full image agree.
    sum_y = int(np.count_nonzero(sub, axis=1) @ np.arange(y0, y1, dtype=np.int64))
    sum_x = int(np.count_nonzero(sub, axis=0) @ np.arange(x0, x1, dtype=np.int64))
    return _Geometry(box=box, centroid=(sum_y // count, sum_x // count))


def _mask_box(mask: np.ndarray) -> _Box:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise InputError(
            "mask is empty (no True pixel): this visual prompt needs the mask's position; "
            "drop empty masks before rendering"
        )
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _crop_window(box: _Box, hw: tuple[int, int], margin: float, square: bool) -> _Box:
    """Crop window for a mask box: grown by ``margin`` of the box size, clipped to the image."""
    y0, y1, x0, x1 = box
    h, w = hw
    py = _round_half_up(margin * (y1 - y0))
    px = _round_half_up(margin * (x1 - x0))
    y0, y1, x0, x1 = y0 - py, y1 + py, x0 - px, x1 + px
    if square:
        side = max(y1 - y0, x1 - x0)
        y0, y1 = _grow_to(y0, y1, side, h)
        x0, x1 = _grow_to(x0, x1, side, w)
    return max(0, y0), min(h, y1), max(0, x0), min(w, x1)


def _grow_to(a: int, b: int, side: int, limit: int) -> tuple[int, int]:
    """Grow [a, b) symmetrically to ``side`` pixels, then slide it inside [0, limit)."""
    extra = side - (b - a)
    a -= extra // 2
    b += extra - extra // 2
    if a < 0:
        b, a = b - a, 0
    if b > limit:
        a, b = a - (b - limit), limit
    return max(a, 0), b


def _union(a: _Box, b: _Box) -> _Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _grow(box: _Box, pad: int, hw: tuple[int, int]) -> _Box:
    return (
        max(0, box[0] - pad),
        min(hw[0], box[1] + pad),
        max(0, box[2] - pad),
        min(hw[1], box[3] + pad),
    )


# --------------------------------------------------------------------------- canvas operations
# Each works in place on a canvas (the whole image or a window of it). Drawings take the mask
# geometry in image pixels and the canvas origin, so a window draws exactly the same pixels.


def _fill_outside(canvas: np.ndarray, inside: np.ndarray, value: int) -> None:
    np.copyto(canvas, np.uint8(value), where=~inside[:, :, None])


def _darken_outside(canvas: np.ndarray, inside: np.ndarray, intensity: int) -> None:
    outside = ~inside
    values = canvas[outside].astype(np.uint16)
    # round(v * (100 - intensity) / 100), halves rounded up, in exact integer arithmetic
    canvas[outside] = ((values * (100 - intensity) + 50) // 100).astype(np.uint8)


def _grayscaled(canvas: np.ndarray) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _paste_outside(canvas: np.ndarray, inside: np.ndarray, source: np.ndarray) -> None:
    np.copyto(canvas, source, where=~inside[:, :, None])


def _blur_params(sigma: float | None, ksize: int | None) -> tuple[int, float]:
    """(kernel size, sigma passed to OpenCV); sigma 0 lets OpenCV derive it from the size."""
    if sigma is not None:
        sigma = float(sigma)
        if not math.isfinite(sigma) or sigma <= 0:
            raise ConfigError(f"blur sigma must be > 0 pixels, got {sigma!r}")
    if ksize is not None:
        if isinstance(ksize, bool) or not isinstance(ksize, (int, np.integer)):
            raise ConfigError(f"blur ksize must be an odd integer >= 1, got {ksize!r}")
        if ksize < 1 or ksize % 2 == 0:
            raise ConfigError(f"blur ksize must be an odd integer >= 1, got {ksize}")
    if sigma is None and ksize is None:
        return CAR_BLUR_KSIZE, 0.0
    if ksize is None:
        # OpenCV's own rule for 8-bit images when only sigma is given: round(6 sigma + 1) | 1
        ksize = int(round(sigma * 6 + 1)) | 1
    return int(ksize), 0.0 if sigma is None else sigma


def _blurred(canvas: np.ndarray, params: tuple[int, float]) -> np.ndarray:
    import cv2

    ksize, sigma = params
    return cv2.GaussianBlur(canvas, (ksize, ksize), sigma)  # border: reflect-101


def _centre_and_axes(geom: _Geometry, center: str) -> tuple[int, int, int, int]:
    """(cx, cy, half width, half height) as CaR's ``mask2chw``, or centred on the box."""
    y0, y1, x0, x1 = geom.box
    if center == "centroid":
        cy, cx = geom.centroid
    else:
        cy, cx = (y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2
    return cx, cy, (x1 - x0) // 2, (y1 - y0) // 2


def _draw_ellipse_on(canvas, geom, origin, color, thickness, center) -> None:
    import cv2

    cx, cy, ax, ay = _centre_and_axes(geom, center)
    centre = (cx - origin[1], cy - origin[0])
    cv2.ellipse(canvas, centre, (ax, ay), 0, 0, 360, color, thickness)


def _draw_rectangle_on(canvas, geom, origin, color, thickness, center) -> None:
    import cv2

    if center == "box":
        y0, y1, x0, x1 = geom.box
        p0, p1 = (x0, y0), (x1 - 1, y1 - 1)
    else:  # [CaR] Algorithm B: centroid +- half the box size
        cx, cy, ax, ay = _centre_and_axes(geom, center)
        p0, p1 = (cx - ax, cy - ay), (cx + ax, cy + ay)
    oy, ox = origin
    cv2.rectangle(canvas, (p0[0] - ox, p0[1] - oy), (p1[0] - ox, p1[1] - oy), color, thickness)


def _draw_contour_on(canvas, inside, color, thickness) -> None:
    import cv2
    from scipy.ndimage import binary_fill_holes

    filled = binary_fill_holes(inside).astype(np.uint8)  # [CaR] fills holes first
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, color, thickness)


def _shape_extent(geom: _Geometry, thickness: int, center: str, shape: str) -> _Box:
    """Image pixels a drawing may touch: its outline grown by the line thickness."""
    pad = thickness + 2
    if shape == "contour" or (shape == "rectangle" and center == "box"):
        y0, y1, x0, x1 = geom.box
    else:
        cx, cy, ax, ay = _centre_and_axes(geom, center)
        y0, y1, x0, x1 = cy - ay, cy + ay + 1, cx - ax, cx + ax + 1
    return y0 - pad, y1 + pad, x0 - pad, x1 + pad


# --------------------------------------------------------------------------- public functions


def crop_to_mask(
    image: np.ndarray, mask: np.ndarray, margin: float = 0.0, square: bool = False
) -> np.ndarray:
    """Crop the image to the mask's bounding box, grown by a margin.

    The "crop" option that ``papers/lvlm-medical-sam-clip.txt`` (Sec. VI) proposes so that
    CLIP is not shown a mostly black picture; combine with :func:`black_background` for a
    segment-on-black crop.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``; must hold at least one True pixel.
        margin: grow the tight box by ``round(margin * box height)`` pixels at the top and at
            the bottom and ``round(margin * box width)`` at the left and right (halves round
            up), then clip to the image. ``0.0`` is the tight box.
        square: grow the shorter side (symmetrically, sliding inside the image) so the crop is
            square where the image allows it. CLIP's preprocessing resizes the shortest side
            and centre-crops, which cuts the ends off a long thin crop; a square crop keeps
            the whole region.

    Returns:
        A new ``(h, w, 3) uint8`` array, ``image[y0:y1, x0:x1]``.

    Raises:
        InputError: the mask is empty or does not match the image.
    """
    image, mask = _check_pair(image, mask)
    margin = _check_margin(margin)
    y0, y1, x0, x1 = _crop_window(_mask_box(mask), image.shape[:2], margin, bool(square))
    return image[y0:y1, x0:x1].copy()


def black_background(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Set every pixel outside the mask to 0: the segment on black.

    [LVLM-med] base pipeline and SLIP give CLIP the SAM segment this way; it is [CaR]'s "mask"
    prompt (Table 4: the weakest one, 61.8 mIoU on Pascal VOC).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``. An empty mask gives an all-black picture.

    Returns:
        A new ``(H, W, 3) uint8`` array; pixels inside the mask are unchanged.
    """
    image, mask = _check_pair(image, mask)
    out = image.copy()
    _fill_outside(out, mask, 0)
    return out


def gray_background(image: np.ndarray, mask: np.ndarray, value: int = GRAY_VALUE) -> np.ndarray:
    """Set every pixel outside the mask to one gray level ``(value, value, value)``.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``.
        value: gray level 0-255.

    Returns:
        A new ``(H, W, 3) uint8`` array; pixels inside the mask are unchanged.
    """
    image, mask = _check_pair(image, mask)
    value = _check_int_range(value, 0, 255, "gray value")
    out = image.copy()
    _fill_outside(out, mask, value)
    return out


def grayscale_background(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Turn the background to grayscale, keeping the mask in colour ([CaR]'s "gray" prompt).

    Gray level = OpenCV's ``COLOR_RGB2GRAY`` (0.299 R + 0.587 G + 0.114 B, rounded), copied to
    the three channels. (CaR's code applies ``COLOR_BGR2GRAY`` to an RGB array.)

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``.

    Returns:
        A new ``(H, W, 3) uint8`` array; pixels inside the mask are unchanged.
    """
    image, mask = _check_pair(image, mask)
    out = image.copy()
    _paste_outside(out, mask, _grayscaled(image))
    return out


def blur_background(
    image: np.ndarray, mask: np.ndarray, sigma: float | None = None, ksize: int | None = None
) -> np.ndarray:
    """Gaussian-blur the pixels outside the mask; the mask stays sharp ([CaR] "blur").

    [CaR] Algorithm B blurs the whole image with ``cv2.GaussianBlur(image, (15, 15), 0)``
    (OpenCV then uses sigma = 0.3 * ((15 - 1) / 2 - 1) + 0.8 = 2.6 pixels) and keeps the blurred
    pixels outside the mask; with circle it is CaR's best prompt (Table 4, 67.6 mIoU on VOC).
    Borders are reflected (OpenCV's reflect-101).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``.
        sigma: Gaussian standard deviation in pixels. ``None`` with ``ksize=None`` is CaR's
            setting (kernel 15, sigma 2.6).
        ksize: odd kernel size in pixels; ``None`` derives it from sigma as OpenCV does for
            8-bit images (``round(6 * sigma + 1) | 1``).

    Returns:
        A new ``(H, W, 3) uint8`` array; pixels inside the mask are unchanged.
    """
    image, mask = _check_pair(image, mask)
    params = _blur_params(sigma, ksize)
    out = image.copy()
    _paste_outside(out, mask, _blurred(image, params))
    return out


def darken_background(
    image: np.ndarray, mask: np.ndarray, intensity: int = DARKEN_PERCENT
) -> np.ndarray:
    """Darken the pixels outside the mask by ``intensity`` percent.

    Each background value ``v`` becomes ``round(v * (100 - intensity) / 100)`` (halves round
    up): ``0`` leaves the image as is, ``100`` is :func:`black_background`. A softer "segment
    on black" that keeps some context; no paper in ``papers/`` sets a value, 50 is ours.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``.
        intensity: integer percent 0-100.

    Returns:
        A new ``(H, W, 3) uint8`` array; pixels inside the mask are unchanged.
    """
    image, mask = _check_pair(image, mask)
    intensity = _check_int_range(intensity, 0, 100, "darken intensity (percent)")
    out = image.copy()
    _darken_outside(out, mask, intensity)
    return out


def red_ellipse(
    image: np.ndarray,
    mask: np.ndarray,
    thickness: int = CAR_THICKNESS,
    color: tuple[int, int, int] = RED,
    center: str = "centroid",
) -> np.ndarray:
    """Draw an ellipse around the mask: [CaR]'s "circle", after [Red-circle].

    Axes are half the mask's bounding-box width and height (``w // 2``, ``h // 2``) as in
    CaR's ``mask2chw``; the centre is the mask centroid (floor of the mean pixel row and
    column, CaR) or, with ``center="box"``, the box centre. Drawn with ``cv2.ellipse``
    (8-connected line, no anti-aliasing), so every drawn pixel is exactly ``color``.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool`` with at least one True pixel.
        thickness: line width in pixels (CaR: 1).
        color: RGB colour (default red ``(255, 0, 0)``).
        center: ``"centroid"`` (CaR) or ``"box"``.

    Returns:
        A new ``(H, W, 3) uint8`` array.
    """
    out, mask, thickness, color = _check_drawing(image, mask, thickness, color)
    _draw_ellipse_on(out, _geometry(mask), (0, 0), color, thickness, _check_center(center))
    return out


def draw_rectangle(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = RED,
    thickness: int = CAR_THICKNESS,
    center: str = "centroid",
) -> np.ndarray:
    """Draw a rectangle around the mask ([CaR] Algorithm B "rectangle").

    With ``center="centroid"`` (CaR) the corners are the centroid +- half the box size
    (``w // 2``, ``h // 2``); with ``center="box"`` the rectangle is the mask's bounding box
    itself (its outermost pixels).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool`` with at least one True pixel.
        color: RGB colour (default red).
        thickness: line width in pixels (CaR: 1).
        center: ``"centroid"`` (CaR) or ``"box"``.

    Returns:
        A new ``(H, W, 3) uint8`` array.
    """
    out, mask, thickness, color = _check_drawing(image, mask, thickness, color)
    _draw_rectangle_on(out, _geometry(mask), (0, 0), color, thickness, _check_center(center))
    return out


def draw_contour(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = RED,
    thickness: int = CAR_THICKNESS,
) -> np.ndarray:
    """Draw the mask's outer outline ([CaR] "contour", Table 4: 66.0 mIoU on VOC).

    Holes are filled first (``scipy.ndimage.binary_fill_holes``), then the outer contours of
    every connected part are found (``cv2.findContours``, external, simple chain) and drawn.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``; an empty mask draws nothing.
        color: RGB colour (default red).
        thickness: line width in pixels (CaR: 1).

    Returns:
        A new ``(H, W, 3) uint8`` array.
    """
    out, mask, thickness, color = _check_drawing(image, mask, thickness, color)
    _draw_contour_on(out, mask, color, thickness)
    return out


def _check_int_range(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer {lo}-{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{what} must be {lo}-{hi}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- registry and specs


@dataclass(frozen=True)
class VisualPrompt:
    """One named visual prompt usable in a spec string.

    Attributes:
        name: spec name, e.g. ``"blur"``.
        kind: ``"background"`` (edits pixels outside the mask), ``"drawing"`` (draws a shape),
            ``"crop"`` or ``"none"``; applied in that order, background first.
        param: what ``name:VALUE`` sets (e.g. ``"sigma"``), or ``None`` if it takes no value.
        default: the value used when the spec gives none.
        source: where it comes from ([CaR], [LVLM-med], ...).
        apply: ``apply(image, mask, value) -> image``, the public function behind the name.
    """

    name: str
    kind: str
    param: str | None
    default: Any
    source: str
    apply: Callable[[np.ndarray, np.ndarray, Any], np.ndarray]
    _convert: Callable[[str], Any] | None = None

    def parse_value(self, raw: str) -> Any:
        """Convert the text after ``name:`` into a checked value (raises ConfigError)."""
        if self.param is None or self._convert is None:
            raise ConfigError(f"visual prompt {self.name!r} takes no value, got {raw!r}")
        try:
            return self._convert(raw)
        except ConfigError as exc:
            raise ConfigError(f"visual prompt '{self.name}:{raw}': {exc}") from None
        except ValueError:
            raise ConfigError(
                f"visual prompt '{self.name}:{raw}': {self.param} must be a number"
            ) from None


def _int_between(lo: int, hi: int, what: str) -> Callable[[str], int]:
    return lambda raw: _check_int_range(int(raw), lo, hi, what)


def _positive_float(raw: str) -> float:
    value = float(raw)
    _blur_params(value, None)
    return value


_THICKNESS = _int_between(1, 10_000, "thickness")


def _drawing(name: str, source: str, draw: Callable[..., np.ndarray]) -> VisualPrompt:
    """A ``"drawing"`` prompt whose value is the line thickness in pixels (default CaR's 1).

    ``draw(image, mask, thickness=...)`` is the public function that draws the shape.
    """
    return VisualPrompt(
        name=name,
        kind="drawing",
        param="thickness",
        default=CAR_THICKNESS,
        source=source,
        apply=lambda i, m, v: draw(i, m, thickness=v),
        _convert=_THICKNESS,
    )


def _crop(name: str, source: str, *, square: bool) -> VisualPrompt:
    """A ``"crop"`` prompt: :func:`crop_to_mask` with its ``margin`` as the value (default 0).

    The margin is a fraction of the mask's box size; ``square`` crops to a square window.
    """
    return VisualPrompt(
        name=name,
        kind="crop",
        param="margin",
        default=0.0,
        source=source,
        apply=lambda i, m, v: crop_to_mask(i, m, margin=v, square=square),
        _convert=_check_margin,
    )


VISUAL_PROMPTS: dict[str, VisualPrompt] = {
    p.name: p
    for p in (
        VisualPrompt(
            name="none",
            kind="none",
            param=None,
            default=None,
            source="identity",
            apply=lambda i, m, v: i.copy(),
        ),
        VisualPrompt(
            name="black",
            kind="background",
            param=None,
            default=None,
            source="[LVLM-med] base pipeline, SLIP; [CaR] 'mask'",
            apply=lambda i, m, v: black_background(i, m),
        ),
        VisualPrompt(
            name="gray",
            kind="background",
            param="value",
            default=GRAY_VALUE,
            source="constant gray (ours)",
            apply=lambda i, m, v: gray_background(i, m, value=v),
            _convert=_int_between(0, 255, "gray value"),
        ),
        VisualPrompt(
            name="grayscale",
            kind="background",
            param=None,
            default=None,
            source="[CaR] 'gray'",
            apply=lambda i, m, v: grayscale_background(i, m),
        ),
        VisualPrompt(
            name="blur",
            kind="background",
            param="sigma",
            default=None,
            source="[CaR] 'blur': kernel 15, sigma 2.6",
            apply=lambda i, m, v: blur_background(i, m, sigma=v),
            _convert=_positive_float,
        ),
        VisualPrompt(
            name="darken",
            kind="background",
            param="intensity",
            default=DARKEN_PERCENT,
            source="ours",
            apply=lambda i, m, v: darken_background(i, m, intensity=v),
            _convert=_int_between(0, 100, "darken intensity (percent)"),
        ),
        _drawing("ellipse", "[CaR] 'circle', [Red-circle]", red_ellipse),
        _drawing("contour", "[CaR] 'contour'", draw_contour),
        _drawing("rectangle", "[CaR] 'rectangle'", draw_rectangle),
        _crop("crop", "[LVLM-med] Sec. VI (future work there)", square=False),
        _crop("crop_square", "square crop (ours)", square=True),
    )
}
"""Every visual prompt name a spec may use, mapped to its :class:`VisualPrompt`."""

_ALIASES = {"circle": "ellipse", "mask": "black", "grey": "gray", "box": "rectangle"}


def list_visual_prompts() -> list[str]:
    """Names accepted in a visual-prompt spec, sorted (aliases: circle, mask, grey, box)."""
    return sorted(VISUAL_PROMPTS)


@dataclass(frozen=True)
class VisualPromptPlan:
    """A parsed, validated spec: ordered steps with their values.

    Attributes:
        background: ``(prompt, value)`` steps that edit pixels outside the mask, in spec order.
        drawings: ``(prompt, value)`` shapes drawn after the background edits, in spec order.
        crop: ``(prompt, margin)`` applied last, or ``None``.
    """

    background: tuple[tuple[VisualPrompt, Any], ...]
    drawings: tuple[tuple[VisualPrompt, Any], ...]
    crop: tuple[VisualPrompt, float] | None

    @property
    def steps(self) -> tuple[tuple[VisualPrompt, Any], ...]:
        """All steps in the order they are applied."""
        return self.background + self.drawings + ((self.crop,) if self.crop else ())

    @property
    def spec(self) -> str:
        """Canonical spec string with explicit values, e.g. ``"blur+ellipse:1+crop:0.1"``."""
        parts = [p.name if p.param is None or v is None else f"{p.name}:{v}" for p, v in self.steps]
        return "+".join(parts) or "none"

    @property
    def needs_position(self) -> bool:
        """True if a step needs the mask's box (drawings but contour, crops): empty masks fail."""
        return self.crop is not None or any(p.name != "contour" for p, _ in self.drawings)


def parse_visual_prompt(
    spec: str | Sequence[str] | VisualPromptPlan, margin: float | None = None
) -> VisualPromptPlan:
    """Parse a spec such as ``"blur+ellipse"``, ``"black+crop:0.1"`` or ``["gray", "crop"]``.

    Each part is ``name`` or ``name:value`` (see :data:`VISUAL_PROMPTS`: ``gray:VALUE``,
    ``blur:SIGMA``, ``darken:PERCENT``, ``ellipse|contour|rectangle:THICKNESS``,
    ``crop|crop_square:MARGIN``). Names are case-insensitive; aliases: circle=ellipse,
    mask=black, grey=gray, box=rectangle.

    Args:
        spec: the spec string, a sequence of parts, or an already parsed plan.
        margin: crop margin (fraction of the box size) for a ``crop`` given without a value;
            ignored when the spec has no crop.

    Raises:
        ConfigError: unknown name (the message lists the valid ones), bad value, two crops, or
            ``margin`` contradicting a ``crop:VALUE`` in the spec.
    """
    if isinstance(spec, VisualPromptPlan):
        plan = spec
    else:
        plan = _parse_parts(_spec_parts(spec))
    if margin is not None and plan.crop is not None:
        margin = _check_margin(margin)
        prompt, value = plan.crop
        if value is None:
            plan = VisualPromptPlan(plan.background, plan.drawings, (prompt, margin))
        elif value != margin:
            raise ConfigError(
                f"crop margin given twice: '{prompt.name}:{value}' in the spec and "
                f"margin={margin}; give it in one place"
            )
    if plan.crop is not None and plan.crop[1] is None:
        plan = VisualPromptPlan(plan.background, plan.drawings, (plan.crop[0], 0.0))
    return plan


def _spec_parts(spec: Any) -> list[str]:
    if isinstance(spec, str):
        pieces = [spec]
    elif isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec):
        pieces = list(spec)
    else:
        raise ConfigError(
            f"a visual-prompt spec is a string like 'blur+ellipse' or a list of names, got {spec!r}"
        )
    parts = [part.strip().lower() for piece in pieces for part in piece.split("+")]
    if not parts or any(not part for part in parts):
        raise ConfigError(
            f"visual-prompt spec {spec!r} has an empty part; valid names: "
            f"{', '.join(list_visual_prompts())}"
        )
    return parts


def _parse_parts(parts: list[str]) -> VisualPromptPlan:
    background, drawings, crops = [], [], []
    for part in parts:
        name, sep, raw = part.partition(":")
        name = _ALIASES.get(name.strip(), name.strip())
        prompt = VISUAL_PROMPTS.get(name)
        if prompt is None:
            close = difflib.get_close_matches(name, [*VISUAL_PROMPTS, *_ALIASES], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown visual prompt {name!r}{hint}; valid names: "
                f"{', '.join(list_visual_prompts())} (aliases: "
                f"{', '.join(f'{a}={b}' for a, b in _ALIASES.items())}); "
                "combine them with '+', e.g. 'blur+ellipse'"
            )
        if sep:
            value = prompt.parse_value(raw.strip())
        else:
            value = prompt.default if prompt.kind != "crop" else None
        step = (prompt, value)
        {"background": background, "drawing": drawings, "crop": crops, "none": []}[
            prompt.kind
        ].append(step)
    if len(crops) > 1:
        raise ConfigError(f"a visual-prompt spec can crop once, got {[p.name for p, _ in crops]}")
    return VisualPromptPlan(tuple(background), tuple(drawings), crops[0] if crops else None)


def apply_visual_prompt(
    image: np.ndarray,
    mask: np.ndarray,
    spec: str | Sequence[str] | VisualPromptPlan,
    margin: float | None = None,
) -> np.ndarray:
    """Apply a combined visual prompt to one mask, step by step on the full image.

    Background edits run first (in spec order), then drawings (in spec order), then the crop,
    so ``"crop+blur+ellipse"`` blurs and circles the full image and crops last: a crop with a
    margin keeps its blurred context and the whole ellipse where it fits.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) bool``.
        spec: e.g. ``"black"``, ``"black+crop"``, ``"blur+ellipse"``, ``"darken:70"``,
            ``["gray", "crop:0.1"]`` (see :func:`parse_visual_prompt`).
        margin: crop margin for a ``crop`` without a value.

    Returns:
        A new ``(H', W', 3) uint8`` array (``H' = H``, ``W' = W`` unless the spec crops).

    Example:
        >>> import numpy as np
        >>> image = np.full((8, 8, 3), 200, np.uint8)
        >>> mask = np.zeros((8, 8), bool); mask[2:4, 3:6] = True
        >>> apply_visual_prompt(image, mask, "black+crop").shape
        (2, 3, 3)
    """
    plan = parse_visual_prompt(spec, margin)
    image, mask = _check_pair(image, mask)
    out = image
    for prompt, value in plan.steps:
        out = prompt.apply(out, mask, value)
    return out if out is not image else image.copy()


def render_candidates(
    image: np.ndarray,
    masks: np.ndarray,
    spec: str | Sequence[str] | VisualPromptPlan,
    margin: float | None = None,
) -> list[np.ndarray]:
    """Render one visually prompted picture per candidate mask, for CLIP scoring.

    Gives exactly ``[apply_visual_prompt(image, m, spec, margin) for m in masks]``, faster:
    when the spec crops, each mask is edited only inside a window around its crop (grown by
    the blur kernel radius and the drawn shapes' extent, so every kept pixel comes out the
    same) instead of on a full-image copy.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        masks: ``(N, H, W) bool`` candidate masks in the image's pixel frame.
        spec: visual-prompt spec (see :func:`parse_visual_prompt`).
        margin: crop margin for a ``crop`` without a value.

    Returns:
        ``N`` new ``(H_i, W_i, 3) uint8`` arrays, in mask order (``[]`` for ``N = 0``).

    Raises:
        InputError: bad shapes, or an empty mask where the spec needs its position (a crop or
            a shape around it); the message names the mask index.
    """
    plan = parse_visual_prompt(spec, margin)
    image = check_rgb_image(image)
    masks = _as_bool_masks(masks, 3, "masks")
    hw = image.shape[:2]
    if masks.shape[1:] != hw:
        raise InputError(
            f"masks shape {masks.shape} does not match image (H, W) {hw}; expected (N, H, W)"
        )
    # Without a crop every picture is full size: a first blur or grayscale step does not depend
    # on the mask, so it is computed once for the image and pasted outside each mask.
    source = None
    if plan.crop is None and plan.background and plan.background[0][0].name in _WHOLE_EDITS:
        prompt, value = plan.background[0]
        source = _WHOLE_EDITS[prompt.name](image, value)
    outputs = []
    for index, mask in enumerate(masks):
        try:
            outputs.append(_render_one(image, mask, plan, source))
        except InputError as exc:
            raise InputError(f"mask {index}: {exc}") from None
    return outputs


def _render_one(
    image: np.ndarray, mask: np.ndarray, plan: VisualPromptPlan, source: np.ndarray | None
) -> np.ndarray:
    """One picture; ``source`` is the first background step already applied to the image."""
    hw = image.shape[:2]
    geom = _geometry(mask) if plan.needs_position else None
    if plan.crop is None:
        window = crop = (0, hw[0], 0, hw[1])
    else:
        prompt, crop_margin = plan.crop
        crop = _crop_window(geom.box, hw, crop_margin, prompt.name == "crop_square")
        window = crop
        for prompt, value in plan.drawings:
            window = _union(window, _shape_extent(geom, value, "centroid", prompt.name))
        # Each blur reads its kernel radius around a pixel: pad so the kept pixels see the
        # same neighbours as on the full image (at the image border both use reflect-101).
        pad = sum(_blur_params(v, None)[0] // 2 for p, v in plan.background if p.name == "blur")
        window = _grow(window, pad, hw)
    y0, y1, x0, x1 = window
    canvas = image[y0:y1, x0:x1].copy()
    inside = mask[y0:y1, x0:x1]
    for step, (prompt, value) in enumerate(plan.background):
        if step == 0 and source is not None:
            _paste_outside(canvas, inside, source[y0:y1, x0:x1])
        elif prompt.name in _WHOLE_EDITS:
            _paste_outside(canvas, inside, _WHOLE_EDITS[prompt.name](canvas, value))
        elif prompt.name == "darken":
            _darken_outside(canvas, inside, value)
        else:
            _fill_outside(canvas, inside, 0 if prompt.name == "black" else value)
    for prompt, value in plan.drawings:
        if prompt.name == "contour":
            _draw_contour_on(canvas, inside, RED, value)
        elif prompt.name == "ellipse":
            _draw_ellipse_on(canvas, geom, (y0, x0), RED, value, "centroid")
        else:
            _draw_rectangle_on(canvas, geom, (y0, x0), RED, value, "centroid")
    if crop == window:
        return canvas
    cy0, cy1, cx0, cx1 = crop
    return canvas[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].copy()


# Background edits that do not depend on the mask: computed on a whole canvas, then pasted.
_WHOLE_EDITS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "blur": lambda canvas, sigma: _blurred(canvas, _blur_params(sigma, None)),
    "grayscale": lambda canvas, _value: _grayscaled(canvas),
}

"""Draw a :class:`~promptseg.result.Segmentation` over its image, for people to look at;
and soft maps (where CLIP looks, a result's ``heatmaps``) as colour overlays.

Each mask gets a translucent fill and an opaque contour in its prompt's colour; a legend
strip beside (or below) the image lists every prompt with its colour swatch and the score
of its best mask. Drawing uses OpenCV (contours) and PIL (legend, default font).
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from promptseg._io import atomic_write
from promptseg.errors import InputError

if TYPE_CHECKING:
    from promptseg.result import Segmentation

__all__ = ["draw_heatmaps", "draw_overlay", "prompt_colors", "save_heatmaps", "save_overlay"]

# Tableau 10, a palette designed to keep categories apart; prompts past 10 get hues spaced
# by the golden angle.
_PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def prompt_colors(num_prompts: int) -> np.ndarray:
    """``(Q, 3)`` uint8 RGB colours, one per prompt, the same for every image."""
    colors = []
    for q in range(num_prompts):
        if q < len(_PALETTE):
            colors.append(_PALETTE[q])
        else:
            hue = (q * 0.618033988749895) % 1.0
            r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
            colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.array(colors, dtype=np.uint8).reshape(-1, 3)


def draw_overlay(
    seg: Segmentation,
    image: Any,
    alpha: float = 0.5,
    legend: str | None = "right",
    contour_width: int | None = None,
) -> np.ndarray:
    """Render the masks over the image.

    Larger masks are drawn first so small ones stay visible on top.

    Args:
        seg: the segmentation; its ``image_size`` must match the image.
        image: anything :func:`promptseg.image.load_image` accepts.
        alpha: opacity of the mask fill, in ``[0, 1]``.
        legend: ``"right"``, ``"bottom"`` or ``None`` (no legend).
        contour_width: contour thickness in pixels (default: about 1/300 of the shorter
            image side, at least 1); 0 draws no contours.

    Returns:
        ``(H', W', 3)`` uint8 RGB: the image (``H, W``) plus the legend strip.
    """
    import cv2

    from promptseg.image import load_image

    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1], received {alpha}")
    if legend not in ("right", "bottom", None):
        raise InputError(f"legend must be 'right', 'bottom' or None, received {legend!r}")
    rgb = load_image(image, max_pixels=None)
    if rgb.shape[:2] != seg.image_size:
        raise InputError(
            f"the image is {rgb.shape[:2]} (H, W) but the segmentation is for {seg.image_size}; "
            "pass the image the segmentation was made from"
        )
    h, w = seg.image_size
    colors = prompt_colors(len(seg.prompts))
    if contour_width is None:
        contour_width = max(1, round(min(h, w) / 300))

    canvas = rgb.astype(np.float32)
    order = np.argsort(-seg.areas, kind="stable")
    for i in order:
        mask = seg.masks[i]
        color = colors[seg.query_index[i]].astype(np.float32)
        canvas[mask] = (1.0 - alpha) * canvas[mask] + alpha * color
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if contour_width > 0:
        for i in order:
            contours, _ = cv2.findContours(
                seg.masks[i].astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
            )
            color = tuple(int(c) for c in colors[seg.query_index[i]])
            cv2.drawContours(out, contours, -1, color, int(contour_width))
    if legend is None or not seg.prompts:
        return out
    return _add_legend(out, seg, colors, legend)


def save_overlay(
    seg: Segmentation, image: Any, path: str | os.PathLike, alpha: float = 0.5, **kwargs: Any
) -> Path:
    """Write :func:`draw_overlay` to ``path`` atomically (PNG unless the suffix names another
    format PIL writes, e.g. ``.jpg``). ``kwargs`` go to :func:`draw_overlay`. Returns the path.
    """
    from PIL import Image

    pixels = draw_overlay(seg, image, alpha=alpha, **kwargs)
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() in ("", ".png") else None
    with atomic_write(path) as tmp:
        Image.fromarray(pixels).save(tmp, format=fmt)
    return path


def _legend_font(image_height: int):
    from PIL import ImageFont

    size = int(min(48, max(12, round(image_height / 30))))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _add_legend(out: np.ndarray, seg: Segmentation, colors: np.ndarray, where: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = out.shape[:2]
    font = _legend_font(h)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = []
    for q, prompt in enumerate(seg.prompts):
        scores = seg.scores[seg.query_index == q]
        text = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        text += f"  {scores.max():.2f}" if scores.size else "  (no mask)"
        labels.append(text)

    def text_box(text: str) -> tuple[int, int]:
        try:
            x0, y0, x1, y1 = measure.textbbox((0, 0), text, font=font)
        except UnicodeEncodeError:  # bitmap font without the glyphs
            return text_box(_ascii(text))
        return x1 - x0, y1

    sizes = [text_box(t) for t in labels]
    line = max(th for _, th in sizes)
    pad = max(4, line // 2)
    swatch = line
    row = line + pad
    strip_w = pad + swatch + pad + max(tw for tw, _ in sizes) + pad
    strip_h = pad + row * len(labels)
    if where == "right":
        canvas = Image.new("RGB", (w + strip_w, max(h, strip_h)), (255, 255, 255))
        origin = (w, 0)
    else:
        canvas = Image.new("RGB", (max(w, strip_w), h + strip_h), (255, 255, 255))
        origin = (0, h)
    canvas.paste(Image.fromarray(out), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for q, text in enumerate(labels):
        x = origin[0] + pad
        y = origin[1] + pad + q * row
        color = tuple(int(c) for c in colors[q])
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=color, outline=(0, 0, 0))
        try:
            draw.text((x + swatch + pad, y), text, fill=(0, 0, 0), font=font)
        except UnicodeEncodeError:
            draw.text((x + swatch + pad, y), _ascii(text), fill=(0, 0, 0), font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def draw_heatmaps(image: Any, heatmaps: np.ndarray, prompts: list[str] | tuple[str, ...],
                  alpha: float = 0.5, title: str | None = None,
                  columns: int = 4) -> np.ndarray:
    """One panel per prompt: the image under its ``(H, W)`` map in [0, 1] (OpenCV's "jet"
    colour map: blue 0, red 1), the prompt above it; a colour bar with its scale at the
    right. Returns ``(H', W', 3) uint8``.

    Args:
        image: ``(H, W, 3) uint8`` RGB (anything :func:`promptseg.image.load_image` reads).
        heatmaps: ``(Q, H, W)`` maps in [0, 1], e.g. a result's ``heatmaps``.
        prompts: the Q prompts.
        alpha: weight of the colour map over the image.
        title: a line above the panels (the CAM method, the model).
        columns: panels per row.
    """
    import cv2
    from PIL import Image, ImageDraw

    from promptseg.image import load_image

    image = load_image(image)
    maps = np.asarray(heatmaps, dtype=np.float32)
    h, w = image.shape[:2]
    if maps.ndim != 3 or maps.shape[1:] != (h, w) or len(maps) != len(prompts):
        raise InputError(f"heatmaps must be (Q, H, W) = ({len(prompts)}, {h}, {w}), got "
                         f"{maps.shape}")
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    font = _legend_font(h)
    line = int(font.size * 1.4) if hasattr(font, "size") else 14
    panels = []
    for m, prompt in zip(maps, prompts, strict=True):
        levels = np.clip(np.nan_to_num(m) * 255, 0, 255).astype(np.uint8)
        colour = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        blend = (1 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32)
        panel = Image.new("RGB", (w, h + line), "white")
        panel.paste(Image.fromarray(blend.astype(np.uint8)), (0, line))
        ImageDraw.Draw(panel).text((2, 1), _fit(prompt, font, w), fill="black", font=font)
        panels.append(panel)
    cols = max(1, min(int(columns), len(panels)))
    rows = -(-len(panels) // cols)
    bar_w = max(40, w // 8)
    top = line if title else 0
    sheet = Image.new("RGB", (cols * w + bar_w, top + rows * (h + line)), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, ((i % cols) * w, top + (i // cols) * (h + line)))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((2, 1), _fit(title, font, sheet.width - 4), fill="black", font=font)
    # the colour bar: 1 at the top, 0 at the bottom, beside the first row
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None].repeat(bar_w // 3, axis=1)
    bar = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    x0 = cols * w + 4
    sheet.paste(Image.fromarray(bar), (x0, top + line))
    draw.text((x0 + bar_w // 3 + 3, top + line), "1", fill="black", font=font)
    draw.text((x0 + bar_w // 3 + 3, top + line + h - line), "0", fill="black", font=font)
    return np.asarray(sheet)


def save_heatmaps(image: Any, heatmaps: np.ndarray, prompts, path: str | os.PathLike,
                  **kwargs: Any) -> Path:
    """Write :func:`draw_heatmaps` to ``path`` atomically (PNG unless the suffix names
    another format). Returns the path."""
    from PIL import Image

    pixels = draw_heatmaps(image, heatmaps, list(prompts), **kwargs)
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() in ("", ".png") else None
    with atomic_write(path) as tmp:
        Image.fromarray(pixels).save(tmp, format=fmt)
    return path


def _fit(text: str, font, width: int) -> str:
    """``text`` cut with "..." to fit ``width`` pixels in ``font``."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."

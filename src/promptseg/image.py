"""Read any supported image into the one array format promptseg works on.

Every pipeline takes images as numpy arrays of shape ``(H, W, 3)``, dtype ``uint8``, RGB
channel order, at the original size: :func:`load_image` turns a path, encoded bytes, a
PIL image or a numpy array into that, and rejects anything it cannot convert with a
:class:`promptseg.errors.ImageError` whose message names the input and what to do.

Decoding uses Pillow. The pixel-count limit is checked on the header, before any pixel
is decoded (``PIL.Image.open`` is lazy), so a decompression bomb costs nothing; Pillow's
own guard (``PIL.Image.MAX_IMAGE_PIXELS``) is reported the same way.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from promptseg.errors import ImageError, InputError

__all__ = ["DEFAULT_MAX_PIXELS", "check_rgb_image", "load_image"]

logger = logging.getLogger(__name__)

#: Default limit on ``H * W``: 50 megapixels (e.g. 8660 x 5773), about 150 MB as RGB uint8.
DEFAULT_MAX_PIXELS = 50_000_000


def load_image(source: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image as an ``(H, W, 3)`` ``uint8`` RGB array at its original size.

    Accepted sources:

    - a path (``str`` or ``os.PathLike``) or encoded bytes (``bytes``, ``bytearray``,
      ``memoryview``) of any format Pillow reads (PNG, JPEG, TIFF, WebP, BMP, GIF, ...);
      multi-frame files give their first frame;
    - a ``PIL.Image.Image``;
    - a numpy array of shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or ``(H, W, 4)``
      (RGBA), dtype ``uint8``, ``uint16``, ``bool`` or float with values in ``[0, 1]``.

    Conversions (the result is always RGB ``uint8``):

    - EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so ``(H, W)`` is the
      size the image is displayed at, not the stored one;
    - grayscale (``1``, ``L``, ``I;16``, ``I``, ``F``) is repeated on the three channels;
    - alpha (``RGBA``, ``LA``, ``PA``, palette images with transparency, 4-channel arrays)
      is dropped: transparent pixels keep the colour stored under them, no compositing;
    - 16-bit data (``I;16*`` modes, ``uint16`` arrays, 32-bit ``I`` images with values in
      ``0..65535``) keeps the high byte (``v >> 8``), so full range maps to full range;
    - float data (``F`` mode, float arrays) must lie in ``[0, 1]`` and becomes
      ``round(255 * v)``; ``bool`` becomes 0 / 255;
    - ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and palette (``P``) images are converted by
      Pillow.

    Args:
        source: the image, as above.
        max_pixels: largest accepted ``H * W``; ``None`` disables this check (Pillow's own
            ``PIL.Image.MAX_IMAGE_PIXELS`` guard still applies to encoded images).

    Returns:
        A new C-contiguous ``(H, W, 3)`` ``uint8`` array (never a view of ``source``).

    Raises:
        ImageError: the file is missing, a directory, not an image or truncated; the bytes
            are empty; the array has the wrong shape, dtype or value range; or the image
            has more than ``max_pixels`` pixels.

    Example:
        >>> load_image(np.zeros((2, 3), dtype=bool)).shape
        (2, 3, 3)
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 1
    ):
        raise ImageError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")

    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        return _from_pil(source, "the PIL image", max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError("the image bytes are empty: pass the content of an image file")
        return _decode(io.BytesIO(data), f"the image bytes ({len(data)} bytes)", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(source, max_pixels)
    raise ImageError(
        f"cannot read an image from a {type(source).__name__}: pass a file path, encoded "
        "bytes, a PIL.Image.Image or an (H, W, 3) uint8 numpy array"
    )


def check_rgb_image(image: Any, name: str = "image") -> np.ndarray:
    """Check that ``image`` is already in promptseg's format; convert nothing.

    Unlike :func:`load_image`, this accepts only an ``(H, W, 3) uint8`` RGB numpy array with
    ``H, W >= 1``, and raises :class:`promptseg.errors.InputError` naming ``name`` (e.g.
    ``"image 2"``) otherwise.

    Returns:
        The same pixels as a C-contiguous array (the input itself when it already is one),
        which OpenCV and torch need.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"{name} must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}; "
            "load files with promptseg.image.load_image"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"{name} must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}; "
            "promptseg.image.load_image converts gray, RGBA and float pictures"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


def _from_path(source: str | os.PathLike, max_pixels: int | None) -> np.ndarray:
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if isinstance(source, str) and text.startswith(("http://", "https://")):
        raise ImageError(f"{text}: URLs are not read; download the image and pass its path")
    path = Path(text).expanduser()
    if not path.exists():
        raise ImageError(f"{path}: no such file; check the path (working directory: {Path.cwd()})")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory; pass the path of one image file")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ImageError(f"{path}: cannot open ({exc.strerror}); check its permissions") from exc
    with fh:
        return _decode(fh, str(path), max_pixels)


def _decode(fh: Any, name: str, max_pixels: int | None) -> np.ndarray:
    """Open (lazily) from a binary file object, check the size, then decode."""
    try:
        img = Image.open(fh)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(name, exc) from exc
    except Exception as exc:  # Pillow's plugins raise many types on bad data
        raise ImageError(
            f"{name}: not a readable image ({type(exc).__name__}: {exc}); pass a PNG, JPEG, "
            "TIFF, WebP, BMP or GIF file"
        ) from exc
    with img:
        _check_pixels(img.size, name, max_pixels)
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            raise _bomb_error(name, exc) from exc
        except Exception as exc:
            raise ImageError(
                f"{name}: the image data cannot be decoded ({type(exc).__name__}: {exc}); the "
                "file is probably truncated or corrupt: re-download or re-export it"
            ) from exc
        return _from_pil(img, name, max_pixels)


def _bomb_error(name: str, exc: Exception) -> ImageError:
    return ImageError(
        f"{name}: Pillow refuses to decode it as a possible decompression bomb ({exc}); if you "
        "trust the file, raise PIL.Image.MAX_IMAGE_PIXELS"
    )


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int | None) -> None:
    """``size`` is PIL's (W, H)."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image is empty ({width} x {height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{name}: {width} x {height} = {width * height} pixels is more than max_pixels="
            f"{max_pixels}; downscale the image or pass a larger max_pixels"
        )


def _from_pil(img: Image.Image, name: str, max_pixels: int | None) -> np.ndarray:
    _check_pixels(img.size, name, max_pixels)
    try:
        img.load()
    except Exception as exc:
        raise ImageError(
            f"{name}: the image data cannot be decoded ({type(exc).__name__}: {exc}); the "
            "file is probably truncated or corrupt"
        ) from exc
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception as exc:  # malformed EXIF must not make a readable image unreadable
        logger.warning("%s: EXIF orientation ignored (%s: %s)", name, type(exc).__name__, exc)
        oriented = img
    if oriented is not None:
        img = oriented
    return _pil_to_rgb(img, name)


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8, order="C")
    if mode.startswith("I;16"):
        return _gray_to_rgb(_uint16_to_uint8(np.asarray(img, dtype=np.uint16)))
    if mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(
                f"{name}: 32-bit integer image with values in [{values.min()}, {values.max()}]"
                ", outside the 16-bit range; convert it to 8-bit yourself"
            )
        return _gray_to_rgb(_uint16_to_uint8(values.astype(np.uint16)))
    if mode == "F":
        return _gray_to_rgb(_float_to_uint8(np.asarray(img), name))
    if mode in ("LA", "La"):
        return _gray_to_rgb(np.asarray(img.getchannel("L"), dtype=np.uint8))
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in img.info
        rgb = img.convert("RGBA").convert("RGB") if has_alpha else img.convert("RGB")
        return np.array(rgb, dtype=np.uint8, order="C")
    try:
        rgb = img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"{name}: image mode {mode!r} cannot be converted to RGB ({exc}); save it as an "
            "RGB PNG or JPEG"
        ) from exc
    return np.array(rgb, dtype=np.uint8, order="C")


def _from_array(arr: np.ndarray, max_pixels: int | None) -> np.ndarray:
    name = "the image array"
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"{name} has shape {arr.shape}, which looks channels-first (C, H, W); expected "
            "(H, W, 3): pass arr.transpose(1, 2, 0)"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageError(
            f"{name} has shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) RGB or "
            "(H, W, 4) RGBA"
        )
    _check_pixels((arr.shape[1], arr.shape[0]), name, max_pixels)
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * np.uint8(255)
    elif arr.dtype == np.uint16:
        out = _uint16_to_uint8(arr)
    elif np.issubdtype(arr.dtype, np.floating):
        out = _float_to_uint8(arr, name)
    else:
        raise ImageError(
            f"{name} has dtype {arr.dtype}; expected uint8 (0..255), uint16, bool or float in "
            "[0, 1]: convert it, e.g. arr.astype(np.uint8) if its values are 0..255"
        )
    if out.ndim == 2:
        return _gray_to_rgb(out)
    return np.array(out[:, :, :3], dtype=np.uint8, order="C")


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    return (values >> 8).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size:
        if not np.isfinite(values).all():
            raise ImageError(f"{name} holds NaN or infinite values; replace them first")
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(
                f"{name} is float with values in [{low:g}, {high:g}]; expected [0, 1]: divide "
                "by 255 (or by its maximum) first, or pass uint8"
            )
    return np.rint(values * 255.0).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2), dtype=np.uint8)

"""Tests of promptseg.image.load_image on real files written with PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptseg.errors import ImageError
from promptseg.image import load_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)  # H=6, W=10: non-square


def _png_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


# ----------------------------------------------------------------------------- success
@pytest.mark.parametrize("kind", ["str", "path", "bytes", "bytearray", "pil", "array"])
def test_sources_give_same_rgb_array(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(RGB).save(path)
    source = {
        "str": str(path),
        "path": path,
        "bytes": path.read_bytes(),
        "bytearray": bytearray(path.read_bytes()),
        "pil": Image.open(path),
        "array": RGB,
    }[kind]
    out = load_image(source)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_array_result_is_a_copy() -> None:
    out = load_image(RGB)
    out[0, 0] = 0
    assert not np.shares_memory(out, RGB)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 128], [255, 7]], np.uint8), np.array([[0, 128], [255, 7]])),
        (np.array([[[0], [128]], [[255], [7]]], np.uint8), np.array([[0, 128], [255, 7]])),
        (np.array([[0, 65535], [256, 511]], np.uint16), np.array([[0, 255], [1, 1]])),
        (np.array([[True, False], [False, True]]), np.array([[255, 0], [0, 255]])),
        (np.array([[0.0, 1.0], [0.5, 0.2]], np.float32), np.array([[0, 255], [128, 51]])),
        (np.array([[0.0, 1.0], [0.5, 0.2]], np.float64), np.array([[0, 255], [128, 51]])),
    ],
    ids=["HW-uint8", "HW1-uint8", "HW-uint16", "HW-bool", "HW-float32", "HW-float64"],
)
def test_gray_arrays(array: np.ndarray, expected: np.ndarray) -> None:
    out = load_image(array)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


def test_rgba_and_uint16_rgb_arrays() -> None:
    rgba = np.concatenate([RGB, np.zeros((6, 10, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), RGB)  # alpha dropped, colour kept
    wide = RGB.astype(np.uint16) * 257  # 8-bit value v -> 16-bit v * 257, high byte is v
    np.testing.assert_array_equal(load_image(wide), RGB)


def test_exif_orientation_png_exact(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rot.png"
    Image.fromarray(RGB).save(path, exif=exif)
    out = load_image(path)
    assert out.shape == (10, 6, 3)
    np.testing.assert_array_equal(out, np.rot90(RGB, k=-1))


def test_exif_orientation_jpeg(tmp_path: Path) -> None:
    # Two flat halves (left red, right blue) survive JPEG well enough to check the rotation.
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (64, 32, 3)  # transposed size
    # Rotated clockwise: the left (red) half is now on top.
    assert out[8, 16, 0] > 200 and out[8, 16, 2] < 60
    assert out[56, 16, 2] > 200 and out[56, 16, 0] < 60
    # Without the tag the same pixels load unrotated.
    Image.fromarray(arr).save(tmp_path / "plain.jpg", quality=95)
    assert load_image(tmp_path / "plain.jpg").shape == (32, 64, 3)


def test_16bit_png(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 32768], [40000, 65535, 511, 1000]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    out = load_image(path)
    np.testing.assert_array_equal(out[:, :, 1], values >> 8)
    assert out[0, 3, 0] == 128 and out[1, 1, 2] == 255  # full range maps to full range


def test_32bit_int_image() -> None:
    values = np.array([[0, 65535], [256, 1024]], np.int32)
    out = load_image(Image.fromarray(values, mode="I"))
    np.testing.assert_array_equal(out[:, :, 0], [[0, 255], [1, 4]])
    with pytest.raises(ImageError, match="16-bit range"):
        load_image(Image.fromarray(np.array([[70000]], np.int32), mode="I"))


def test_float_pil_image() -> None:
    out = load_image(Image.fromarray(np.array([[0.0, 1.0]], np.float32), mode="F"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 255])
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(Image.fromarray(np.array([[0.0, 3.0]], np.float32), mode="F"))


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    assert out.shape == (8, 16, 3)
    r, g, b = out[4, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 3))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    assert "transparency" in Image.open(path).info
    out = load_image(path)
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])  # transparent: stored colour kept
    np.testing.assert_array_equal(out[1, 1], [0, 255, 0])


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1", "YCbCr", "I;16"])
def test_pil_modes(mode: str) -> None:
    img = Image.fromarray(RGB).convert(mode) if mode != "I;16" else Image.fromarray(
        RGB[:, :, 0].astype(np.uint16) << 8
    )
    out = load_image(img)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8
    if mode in ("RGBA",):
        np.testing.assert_array_equal(out, RGB)
    if mode == "I;16":
        np.testing.assert_array_equal(out[:, :, 0], RGB[:, :, 0])
    if mode in ("L", "LA", "1", "I;16"):
        assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (5, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = load_image(path)
    assert out.shape == (4, 5, 3) and out[0, 0, 0] > 200 and out[0, 0, 2] < 60


def test_limit_allows_exact_size() -> None:
    assert load_image(RGB, max_pixels=60).shape == (6, 10, 3)
    assert load_image(RGB, max_pixels=None).shape == (6, 10, 3)


# ----------------------------------------------------------------------------- failures
def _truncated_png(tmp_path: Path) -> Path:
    data = _png_bytes(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.png", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "t.png").write_text("hello, I am text") and p / "t.png", "not a readable"),
        (_truncated_png, "truncated"),
        (lambda p: (p / "e.png").write_bytes(b"") or p / "e.png", "not a readable"),
    ],
    ids=["missing", "directory", "text-as-png", "truncated", "empty-file"],
)
def test_bad_files(tmp_path: Path, make, match: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageError, match=match) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_over_limit_checked_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(RGB).save(path)

    def fail_load(self):  # decoding must not start
        raise AssertionError("decoded an over-limit image")

    monkeypatch.setattr(Image.Image, "load", fail_load)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", fail_load)
    with pytest.raises(ImageError, match="max_pixels=59"):
        load_image(path, max_pixels=59)
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(path.read_bytes(), max_pixels=10)


@pytest.mark.parametrize(
    "source",
    [RGB, Image.fromarray(RGB)],
    ids=["array", "pil"],
)
def test_over_limit_other_sources(source) -> None:
    with pytest.raises(ImageError, match="60 pixels is more than max_pixels=59"):
        load_image(source, max_pixels=59)


def test_pillow_decompression_bomb_guard(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    Image.fromarray(RGB).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 60 pixels > 2 * 10: Pillow raises
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path, max_pixels=None)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\nnot really", "not a readable"),
        (np.zeros((4, 5, 2), np.uint8), "expected"),
        (np.zeros((3, 8, 9), np.uint8), "channels-first"),
        (np.zeros((2, 3, 4, 3), np.uint8), "expected"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 5, 3), np.int64), "dtype int64"),
        (np.full((4, 5, 3), 2.0), r"\[0, 1\]"),
        (np.full((4, 5, 3), np.nan), "NaN"),
        (12, "cannot read an image from a int"),
        ("https://example.com/cat.png", "URLs"),
    ],
    ids=[
        "empty-bytes", "bad-bytes", "2-channels", "chw", "4d", "zero-size", "int64",
        "float-range", "nan", "int", "url",
    ],
)
def test_bad_inputs(source, match: str) -> None:
    with pytest.raises(ImageError, match=match) as info:
        load_image(source)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("max_pixels", [0, -1, 1.5, True])
def test_bad_max_pixels(max_pixels) -> None:
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(RGB, max_pixels=max_pixels)


@pytest.mark.parametrize("mode", ["La", "PA", "LAB", "HSV", "CMYK", "RGBX", "RGBa", "I;16B"])
def test_more_pil_modes(mode: str) -> None:
    out = load_image(Image.new(mode, (5, 4)))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8


def test_48bit_png_and_16bit_tiff_written_by_opencv(tmp_path: Path) -> None:
    import cv2

    bgr = np.zeros((2, 3, 3), np.uint16)
    bgr[..., 2] = 65535  # red, full 16-bit range
    bgr[0, 0, 0] = 32768  # plus half blue at (0, 0)
    cv2.imwrite(str(tmp_path / "rgb48.png"), bgr)
    out = load_image(tmp_path / "rgb48.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 128])
    np.testing.assert_array_equal(out[1, 2], [255, 0, 0])
    gray = (np.arange(6).reshape(2, 3) * 10000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "gray16.tif"), gray)
    np.testing.assert_array_equal(load_image(tmp_path / "gray16.tif")[..., 2], gray >> 8)

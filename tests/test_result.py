"""Tests of promptseg.result.Segmentation, its exports (masks, overlay, supervision, JSON)
and the atomic writer they share."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import InputError
from promptseg.result import Instance, Segmentation, masks_to_boxes

H, W = 12, 16
PROMPTS = ("the red star", "a dog", "Ünïcödé  ?!")


def _seg(with_extras: bool = True, heatmaps: bool = False) -> Segmentation:
    masks = np.zeros((3, H, W), bool)
    masks[0, 2:5, 3:9] = True  # box [3, 2, 9, 5]
    masks[1, 0, 15] = True  # single corner pixel: box [15, 0, 16, 1]
    masks[2, 6:12, 0:4] = True  # touches bottom-left: box [0, 6, 4, 12]
    extras = {}
    if with_extras:
        extras = {
            "predicted_iou": np.array([0.9, 0.8, 0.7], np.float32),
            "clip_scores": np.arange(9, dtype=np.float32).reshape(3, 3),
        }
    return Segmentation.from_masks(
        masks,
        scores=[0.5, 0.25, 0.75],
        query_index=[0, 2, 0],
        prompts=PROMPTS,
        heatmaps=np.zeros((3, H, W), np.float32) if heatmaps else None,
        extras=extras,
        meta={"pipeline": "test", "timings": {"total": np.float64(0.5)}},
    )


# ----------------------------------------------------------------------------- building
def test_from_masks_boxes_and_dtypes() -> None:
    seg = _seg()
    assert len(seg) == 3 and seg.image_size == (H, W)
    np.testing.assert_array_equal(seg.boxes, [[3, 2, 9, 5], [15, 0, 16, 1], [0, 6, 4, 12]])
    assert seg.masks.dtype == bool and seg.scores.dtype == np.float32
    assert seg.boxes.dtype == np.float32 and seg.query_index.dtype == np.int64
    assert seg.prompts == PROMPTS and isinstance(seg.prompts, tuple)
    np.testing.assert_array_equal(seg.areas, [18, 1, 24])


def test_masks_to_boxes_empty_mask_and_n0() -> None:
    masks = np.zeros((2, 3, 4), bool)
    masks[1, 2, 3] = True
    np.testing.assert_array_equal(masks_to_boxes(masks), [[0, 0, 0, 0], [3, 2, 4, 3]])
    assert masks_to_boxes(np.zeros((0, 3, 4), bool)).shape == (0, 4)
    with pytest.raises(InputError, match=r"mask\[None\]"):
        masks_to_boxes(np.zeros((3, 4), bool))


def test_masks_to_boxes_random_against_loop() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((20, 9, 7)) > 0.93
    for mask, box in zip(masks, masks_to_boxes(masks), strict=True):
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if xs.size else [0] * 4
        np.testing.assert_array_equal(box, expected)


def test_coercions() -> None:
    seg = Segmentation(
        masks=np.ones((1, 2, 2), np.uint8),  # 0/1 ints: lossless
        scores=[1],
        boxes=[[0, 0, 2, 2]],
        query_index=np.array([0.0]),  # integral floats: lossless
        prompts=["x"],
        extras={"a": [3]},
    )
    assert seg.masks.dtype == bool and seg.query_index.dtype == np.int64
    assert seg.scores.dtype == np.float32 and seg.extras["a"].shape == (1,)


def test_empty_keeps_axes() -> None:
    seg = Segmentation.empty(PROMPTS, image_size=(H, W))
    assert len(seg) == 0 and seg.image_size == (H, W)
    assert seg.masks.shape == (0, H, W) and seg.boxes.shape == (0, 4)
    assert seg.scores.shape == (0,) and seg.query_index.shape == (0,)
    # empty lists are accepted for N = 0
    seg2 = Segmentation(np.zeros((0, H, W), bool), [], [], [], PROMPTS, extras={"e": []})
    assert seg2.boxes.shape == (0, 4) and seg2.extras["e"].shape == (0,)
    assert seg.to_dict()["instances"] == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"masks": np.zeros((H, W), bool)}, r"expected shape \(N, H, W\), received \(12, 16\)"),
        ({"masks": np.full((3, H, W), 255, np.uint8)}, "masks > 0.5"),
        ({"masks": np.zeros((3, H, W), str)}, "dtype bool"),
        ({"scores": [1.0, 2.0]}, r"scores: expected shape \(N,\) = \(3,\), received \(2,\)"),
        ({"scores": ["a", "b", "c"]}, "float32"),
        ({"boxes": np.zeros((3, 5))}, r"boxes: expected shape \(N, 4\) = \(3, 4\)"),
        ({"boxes": [[5, 0, 1, 1]] * 3}, "x2 >= x1"),
        ({"query_index": [0, 1, 3]}, r"in \[0, 3\)"),
        ({"query_index": [0, 1, -1]}, r"in \[0, 3\)"),
        ({"query_index": [0.5, 1, 1]}, "int64"),
        ({"query_index": [0, 1]}, r"query_index: expected shape \(N,\) = \(3,\)"),
        ({"prompts": "a dog"}, "sequence of strings"),
        ({"prompts": ("a", 1, "c")}, r"prompts\[1\] must be a str"),
        ({"heatmaps": np.zeros((2, H, W))}, r"heatmaps: expected shape \(Q, H, W\) = \(3, 12"),
        ({"extras": {"x": np.zeros(2)}}, r"extras\['x'\]: expected first axis N = 3"),
        ({"extras": {"x": np.float32(1)}}, "first axis"),
        ({"extras": {1: np.zeros(3)}}, "keys must be str"),
        ({"extras": [1, 2]}, "dict of arrays"),
        ({"meta": [1]}, "meta must be a dict"),
    ],
)
def test_validation_errors(kwargs, match: str) -> None:
    base = _seg()
    fields = {
        "masks": base.masks,
        "scores": base.scores,
        "boxes": base.boxes,
        "query_index": base.query_index,
        "prompts": base.prompts,
    }
    fields.update(kwargs)
    with pytest.raises(InputError, match=match):
        Segmentation(**fields)


# ----------------------------------------------------------------------------- selection
def test_filter_by_bool_and_index() -> None:
    seg = _seg()
    kept = seg.filter(seg.scores > 0.4)
    assert len(kept) == 2
    np.testing.assert_array_equal(kept.query_index, [0, 0])
    np.testing.assert_array_equal(kept.extras["clip_scores"], [[0, 1, 2], [6, 7, 8]])
    np.testing.assert_array_equal(kept.masks, seg.masks[[0, 2]])
    picked = seg[np.array([2, 0])]
    np.testing.assert_array_equal(picked.scores, [0.75, 0.5])
    np.testing.assert_array_equal(picked.extras["predicted_iou"], np.float32([0.7, 0.9]))
    none = seg.filter(np.zeros(3, bool))
    assert none.masks.shape == (0, H, W) and none.extras["clip_scores"].shape == (0, 3)
    assert len(seg[[]]) == 0


def test_getitem_int_and_slice_keep_axes() -> None:
    seg = _seg(heatmaps=True)
    one = seg[-1]
    assert isinstance(one, Segmentation) and one.masks.shape == (1, H, W)
    assert one.boxes.shape == (1, 4) and one.extras["clip_scores"].shape == (1, 3)
    assert one.heatmaps is not None and one.meta["pipeline"] == "test"
    assert len(seg[1:]) == 2
    with pytest.raises(IndexError):
        seg[3]


@pytest.mark.parametrize(
    ("key", "match"),
    [(np.ones(2, bool), r"expected shape \(3,\)"), (np.array([5]), "indices"), ([[0]], "1-D")],
)
def test_bad_selection(key, match: str) -> None:
    with pytest.raises(InputError, match=match):
        _seg().filter(key)


def test_for_prompt() -> None:
    seg = _seg()
    np.testing.assert_array_equal(seg.for_prompt(0).scores, [0.5, 0.75])
    assert len(seg.for_prompt("a dog")) == 0
    np.testing.assert_array_equal(seg.for_prompt(PROMPTS[2]).scores, [0.25])
    with pytest.raises(InputError, match="not one of"):
        seg.for_prompt("a cat")
    with pytest.raises(InputError, match="out of range"):
        seg.for_prompt(3)


def test_iteration_yields_named_records() -> None:
    records = list(_seg())
    assert [type(r) for r in records] == [Instance] * 3
    assert records[1].prompt == PROMPTS[2] and records[1].box == (15.0, 0.0, 16.0, 1.0)
    assert records[2].extras["clip_scores"].tolist() == [6, 7, 8]
    assert records[0].mask.shape == (H, W)


# ----------------------------------------------------------------------------- merge
def test_merge() -> None:
    seg = _seg(heatmaps=True)
    merged = Segmentation.merge([seg[:1], Segmentation.empty(PROMPTS, (H, W)), seg[1:]])
    assert len(merged) == 3 and merged.heatmaps is not None
    np.testing.assert_array_equal(merged.masks, seg.masks)
    np.testing.assert_array_equal(merged.extras["clip_scores"], seg.extras["clip_scores"])
    only_empty = Segmentation.merge([Segmentation.empty(PROMPTS, (H, W))] * 2)
    assert only_empty.masks.shape == (0, H, W)


@pytest.mark.parametrize(
    ("others", "match"),
    [
        ([], "at least one"),
        ([Segmentation.empty(PROMPTS, (H, W + 1))], "image_size"),
        ([Segmentation.empty(("x",), (H, W))], "prompts"),
        (["not a seg"], "not a Segmentation"),
        ([None], "not a Segmentation"),
    ],
)
def test_merge_errors(others, match: str) -> None:
    items = [_seg()] + others if others else []
    with pytest.raises(InputError, match=match):
        Segmentation.merge(items)


def test_merge_extras_mismatch() -> None:
    with pytest.raises(InputError, match="extras differ"):
        Segmentation.merge([_seg(), _seg(with_extras=False)])


# ----------------------------------------------------------------------------- JSON
def test_to_dict_and_json() -> None:
    seg = _seg()
    d = seg.to_dict()
    assert d["image_size"] == [H, W] and d["prompts"] == list(PROMPTS)
    assert d["num_instances"] == 3 and "mask" not in d["instances"][0]
    first = d["instances"][0]
    assert first["box"] == [3.0, 2.0, 9.0, 5.0] and first["prompt"] == PROMPTS[0]
    assert first["extras"]["clip_scores"] == [0.0, 1.0, 2.0] and first["area"] == 18
    assert d["meta"]["timings"]["total"] == 0.5
    assert json.loads(seg.to_json()) == d


def test_to_dict_with_rle_masks_decodes_back() -> None:
    from promptseg.convert.coco import rle_decode

    seg = _seg()
    d = json.loads(seg.to_json(include_masks=True))
    rles = [inst["mask"] for inst in d["instances"]]
    assert all(isinstance(r["counts"], str) for r in rles)
    np.testing.assert_array_equal(rle_decode(rles), seg.masks)


def test_to_jsonable() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        a: float = 1.0
        b: tuple = (1, 2)

    out = to_jsonable(
        {"x": np.float32(0.5), "n": np.int64(3), "arr": np.eye(2), "p": Path("a/b"),
         "cfg": Cfg(), "nan": float("nan"), 3: True}
    )
    assert out == {"x": 0.5, "n": 3, "arr": [[1.0, 0.0], [0.0, 1.0]], "p": "a/b",
                   "cfg": {"a": 1.0, "b": [1, 2]}, "nan": None, "3": True}
    json.dumps(out)


# ----------------------------------------------------------------------------- exports
def test_save_masks(tmp_path: Path) -> None:
    seg = _seg()
    paths = seg.save_masks(tmp_path / "out")
    names = [p.name for p in paths]
    assert names == [
        "mask_000_the-red-star.png",
        "mask_001_unicode.png",
        "mask_002_the-red-star.png",
    ]
    for path, mask in zip(paths, seg.masks, strict=True):
        img = Image.open(path)
        assert img.mode == "L" and img.size == (W, H)
        arr = np.asarray(img)
        assert set(np.unique(arr)) <= {0, 255}
        np.testing.assert_array_equal(arr == 255, mask)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    assert Segmentation.empty(PROMPTS, (H, W)).save_masks(tmp_path / "none") == []


def test_save_masks_slug_fallback(tmp_path: Path) -> None:
    seg = Segmentation.from_masks(np.ones((1, 2, 2), bool), [1.0], [0], ["猫"])
    assert [p.name for p in seg.save_masks(tmp_path, stem="m")] == ["m_000_prompt-0.png"]


def _boom(*args, **kwargs):
    raise RuntimeError("encoder failed")


def _partial_then_boom(self, fp, *args, **kwargs):
    Path(fp).write_bytes(b"\x89PNG half")  # half a file reaches the disk
    raise RuntimeError("encoder failed")


@pytest.mark.parametrize("failure", [_boom, _partial_then_boom], ids=["raise", "partial"])
def test_save_masks_failure_leaves_nothing(tmp_path: Path, monkeypatch, failure) -> None:
    monkeypatch.setattr(Image.Image, "save", failure)
    with pytest.raises(RuntimeError, match="encoder failed"):
        _seg().save_masks(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [_boom, _partial_then_boom], ids=["raise", "partial"])
def test_save_overlay_failure_keeps_old_file(tmp_path: Path, monkeypatch, failure) -> None:
    out = tmp_path / "overlay.png"
    out.write_bytes(b"old")
    monkeypatch.setattr(Image.Image, "save", failure)
    with pytest.raises(RuntimeError):
        _seg().save_overlay(np.zeros((H, W, 3), np.uint8), out)
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.png"]
    assert out.read_bytes() == b"old"


def test_atomic_write(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".json" and tmp != target
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "{}" and len(list(target.parent.iterdir())) == 1
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_write(target):
        pass
    with atomic_write(target, fsync=True) as tmp:
        tmp.write_text("[]")
    assert target.read_text() == "[]"


def test_save_overlay(tmp_path: Path) -> None:
    image = np.full((H, W, 3), 100, np.uint8)
    seg = _seg()
    path = seg.save_overlay(image, tmp_path / "o.png", alpha=0.5)
    out = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape[0] >= H and out.shape[1] > W  # legend strip on the right
    # Pixel inside mask 0 (prompt 0, Tableau blue (31, 119, 180)) away from its contour.
    np.testing.assert_array_equal(out[3, 5], [66, 110, 140])
    np.testing.assert_array_equal(out[8, 10], [100, 100, 100])  # no mask there
    assert list(tmp_path.iterdir()) == [path]

    bottom = seg.save_overlay(image, tmp_path / "b.png", legend="bottom", contour_width=0)
    arr = np.asarray(Image.open(bottom))
    assert arr.shape[0] > H and arr.shape[1] >= W
    np.testing.assert_array_equal(arr[2, 3], [66, 110, 140])  # no contour: fill at the edge


def test_overlay_draws_legend_and_checks_input(tmp_path: Path) -> None:
    from promptseg.convert.overlay import draw_overlay, prompt_colors

    image = np.zeros((H, W, 3), np.uint8)
    seg = _seg()
    plain = draw_overlay(seg, image, legend=None)
    assert plain.shape == (H, W, 3)
    with_legend = draw_overlay(seg, image)
    strip = with_legend[:, W:]
    colors = prompt_colors(len(PROMPTS))
    for color in colors:  # every prompt's swatch appears in the legend
        assert (strip == color).all(axis=2).any()
    assert prompt_colors(25).shape == (25, 3) and len({tuple(c) for c in prompt_colors(25)}) == 25
    with pytest.raises(InputError, match="pass the image the segmentation was made from"):
        draw_overlay(seg, np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(InputError, match="alpha"):
        draw_overlay(seg, image, alpha=1.5)
    with pytest.raises(InputError, match="legend"):
        draw_overlay(seg, image, legend="left")
    empty = draw_overlay(Segmentation.empty(PROMPTS, (H, W)), image)
    assert empty.shape[1] > W


# ----------------------------------------------------------------------------- supervision
def test_supervision_round_trip() -> None:
    import supervision as sv

    seg = _seg()
    det = seg.to_supervision()
    assert isinstance(det, sv.Detections) and len(det) == 3
    np.testing.assert_array_equal(det.xyxy, seg.boxes)
    np.testing.assert_array_equal(det.mask, seg.masks)
    np.testing.assert_array_equal(det.class_id, seg.query_index)
    assert list(det.data["class_name"]) == [PROMPTS[0], PROMPTS[2], PROMPTS[0]]
    np.testing.assert_array_equal(det.data["clip_scores"], seg.extras["clip_scores"])
    # supervision's own filtering keeps our extras aligned
    sub = det[det.confidence > 0.4]
    assert sub.data["predicted_iou"].tolist() == pytest.approx([0.9, 0.7])

    back = Segmentation.from_supervision(det, PROMPTS)
    for name in ("masks", "scores", "boxes", "query_index"):
        np.testing.assert_array_equal(getattr(back, name), getattr(seg, name))
    assert back.prompts == PROMPTS and set(back.extras) == set(seg.extras)


def test_supervision_empty_and_by_name() -> None:
    import supervision as sv

    det = Segmentation.empty(PROMPTS, (H, W)).to_supervision()
    assert len(det) == 0 and det.mask.shape == (0, H, W)
    assert len(Segmentation.from_supervision(det, PROMPTS)) == 0

    named = sv.Detections(
        xyxy=np.array([[0, 0, 2, 2]], np.float32),
        mask=np.ones((1, H, W), bool),
        data={"class_name": np.array(["a dog"])},
    )
    seg = Segmentation.from_supervision(named, PROMPTS)
    assert seg.query_index.tolist() == [1] and seg.scores.tolist() == [1.0]
    with pytest.raises(InputError, match="not in"):
        Segmentation.from_supervision(named, ("a cat",))
    with pytest.raises(InputError, match="no masks"):
        Segmentation.from_supervision(sv.Detections(xyxy=np.zeros((1, 4))), PROMPTS)
    with pytest.raises(InputError, match="neither class_id"):
        Segmentation.from_supervision(
            sv.Detections(xyxy=np.zeros((1, 4)), mask=np.ones((1, H, W), bool)), PROMPTS
        )


def test_repr_is_short() -> None:
    text = repr(_seg())
    assert text.startswith("Segmentation(n=3, image_size=(12, 16)") and len(text) < 200


# ---------------------------------------------------------------------- dependency direction
_SRC = Path(__file__).resolve().parents[1] / "src" / "promptseg"
_CONVERTERS = ("coco", "overlay", "supervision")


def _imported_modules(tree: ast.AST, *, top_level_only: bool) -> list[str]:
    """Absolute module names imported in ``tree`` (outside functions if top_level_only)."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            ):
                continue
            if isinstance(child, ast.Import):
                found.extend(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append(child.module)
            visit(child)

    visit(tree)
    return found


def test_result_does_not_import_convert_at_module_level() -> None:
    tree = ast.parse((_SRC / "result.py").read_text(encoding="utf-8"))
    top = _imported_modules(tree, top_level_only=True)
    assert not [m for m in top if m.startswith("promptseg.convert")], top


def test_converters_state_their_dependency_on_result_at_the_top() -> None:
    # convert builds on result: whatever it needs from result is imported at module level
    # (or under TYPE_CHECKING), never hidden inside a function to dodge a cycle.
    for name in _CONVERTERS:
        tree = ast.parse((_SRC / "convert" / f"{name}.py").read_text(encoding="utf-8"))
        top = _imported_modules(tree, top_level_only=True)
        everywhere = _imported_modules(tree, top_level_only=False)
        assert "promptseg.result" in top, name
        assert everywhere.count("promptseg.result") == top.count("promptseg.result"), name


def test_importing_result_loads_no_converter() -> None:
    code = (
        "import sys, promptseg.result\n"
        "print([m for m in sys.modules if m.startswith('promptseg.convert')])\n"
        "import promptseg.convert.coco, promptseg.convert.overlay, "
        "promptseg.convert.supervision\n"
    )
    for first in ("", "import promptseg.convert.coco\n"):
        run = subprocess.run(
            [sys.executable, "-c", first + code], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        expected = "['promptseg.convert', 'promptseg.convert.coco']" if first else "[]"
        assert run.stdout.strip() == expected

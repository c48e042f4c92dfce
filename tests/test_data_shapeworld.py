"""ShapeWorld: determinism, exact masks, held-out pairs, prompt semantics, mosaic, export."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter

import numpy as np
import pytest

from promptseg.convert.coco import rle_decode
from promptseg.data import shapeworld as sw
from promptseg.data.shapeworld import (
    COLOURS,
    HELD_OUT_COMBOS,
    NOVEL_SHAPES,
    PROMPT_KINDS,
    SHAPES,
    THIN_SHAPES,
    ShapeWorldConfig,
    generate_scene,
    generate_scenes,
    mosaic,
    object_crop,
    write_dataset,
)
from promptseg.errors import InputError

PLURAL_TO_SHAPE = {v: k for k, v in sw.PLURALS.items()}
REFERRING = re.compile(r"^the (\w+) (left of|right of|above|below) the (\w+) (\w+)$")


@pytest.fixture(scope="module")
def scenes():
    """A mix of base train, base test and novel scenes (generated once)."""
    out = list(generate_scenes(60, seed=3, split="train"))
    out += list(generate_scenes(60, seed=3, split="test"))
    out += list(generate_scenes(30, seed=3, split="val", domain="novel"))
    return out


def test_determinism():
    a = generate_scene(5, seed=1, split="val")
    b = generate_scene(5, seed=1, split="val")
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.masks, b.masks)
    assert a.prompts == b.prompts and a.caption == b.caption
    c = generate_scene(6, seed=1, split="val")
    d = generate_scene(5, seed=2, split="val")
    e = generate_scene(5, seed=1, split="train")
    for other in (c, d, e):
        assert not np.array_equal(a.image, other.image)
    first = next(generate_scenes(3, seed=1, split="val"))
    assert np.array_equal(first.image, generate_scene(0, seed=1, split="val").image)


def test_image_and_mask_format(scenes):
    for s in scenes:
        assert s.image.shape == (256, 256, 3) and s.image.dtype == np.uint8
        masks = s.masks
        assert masks.shape == (len(s.objects), 256, 256) and masks.dtype == bool
        assert 1 <= len(s.objects) <= 6
        assert masks.sum(axis=0).max() <= 1, "visible masks must be disjoint"
        for o in s.objects:
            assert o.mask.sum() >= 30
            x0, y0, x1, y1 = o.box
            ys, xs = np.nonzero(o.mask)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            cx, cy = o.centre
            assert x0 <= cx < x1 and y0 <= cy < y1


def test_solid_objects_have_their_colour_exactly():
    cfg = ShapeWorldConfig(backgrounds=("flat",), fill_weights=(1.0, 0.0, 0.0))
    checked = 0
    for s in generate_scenes(20, seed=7, config=cfg):
        for o in s.objects:
            assert o.fill == "solid"
            pixels = s.image[o.mask]
            assert (pixels == np.asarray(o.rgb, dtype=np.uint8)).all()
            assert np.abs(np.subtract(o.rgb, COLOURS[o.colour])).max() <= cfg.colour_jitter
            checked += 1
        # background pixels never carry an object's exact colour along its outline
        covered = s.masks.any(axis=0)
        assert len(np.unique(s.image[~covered].reshape(-1, 3), axis=0)) == 1
    assert checked > 20


def test_patterned_fills_keep_colour_dominant():
    cfg = ShapeWorldConfig(backgrounds=("flat",), fill_weights=(0.0, 0.5, 0.5))
    for s in generate_scenes(10, seed=2, config=cfg):
        for o in s.objects:
            if o.thin:
                continue
            pixels = s.image[o.mask].reshape(-1, 3)
            share = (pixels == np.asarray(o.rgb, dtype=np.uint8)).all(axis=1).mean()
            assert share > 0.5, (o.shape, o.fill, share)


def test_ring_hole_is_not_mask():
    for s in generate_scenes(80, seed=0):
        for o in s.objects:
            if o.shape == "ring":
                x0, y0, x1, y1 = o.box
                cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
                if x1 - x0 > 20 and o.mask[y0:y1, x0:x1].mean() > 0.3:
                    assert not o.mask[cy, cx]
                    return
    pytest.fail("no ring found")


def test_held_out_combos_absent_in_train_and_val():
    assert len(HELD_OUT_COMBOS) == len(SHAPES)
    assert {shape for _, shape in HELD_OUT_COMBOS} == set(SHAPES)
    for split in ("train", "val"):
        for s in generate_scenes(100, seed=11, split=split):
            assert not any(o.combo in HELD_OUT_COMBOS for o in s.objects)
            for p in s.prompts:
                assert p.seen
                for colour, shape in HELD_OUT_COMBOS:
                    assert f"{colour} {shape}" not in p.text


def test_held_out_combos_frequent_in_test(scenes):
    test = [s for s in scenes if s.split == "test"]
    with_held = sum(any(o.combo in HELD_OUT_COMBOS for o in s.objects) for s in test)
    assert with_held >= 0.3 * len(test)
    unseen = [p for s in test for p in s.prompts if not p.seen]
    assert len(unseen) >= 0.3 * len(test)
    assert {p.kind for p in unseen} >= {"single", "negative"}


def test_seen_flag_matches_held_out(scenes):
    for s in scenes:
        for p in s.prompts:
            targets_held = any(s.objects[i].combo in HELD_OUT_COMBOS for i in p.targets)
            names_held = any(f"{c} {sh}" in p.text for c, sh in HELD_OUT_COMBOS)
            assert p.seen == (not (targets_held or names_held)), p


def test_prompt_targets_match_text(scenes):
    kinds = Counter()
    margin = ShapeWorldConfig().relation_margin * 256
    for s in scenes:
        objs = s.objects
        assert any(p.kind == "negative" for p in s.prompts)
        if any(Counter(o.combo for o in objs)[o.combo] == 1 and not o.thin for o in objs):
            assert any(p.kind == "single" for p in s.prompts)
        assert len({p.text for p in s.prompts}) == len(s.prompts)
        for p in s.prompts:
            kinds[p.kind] += 1
            assert p.kind in PROMPT_KINDS
            words = p.text.split()
            mask = s.target_mask(p)
            assert mask.shape == (256, 256)
            assert mask.sum() == sum(objs[i].mask.sum() for i in p.targets)
            if p.kind == "single":
                colour, shape = words[1], words[2]
                assert words[0] == "the" and len(p.targets) == 1
                matches = [i for i, o in enumerate(objs) if o.combo == (colour, shape)]
                assert matches == list(p.targets)
            elif p.kind == "multi":
                shape = PLURAL_TO_SHAPE[p.text]
                matches = [i for i, o in enumerate(objs) if o.shape == shape]
                assert matches == list(p.targets) and len(matches) >= 2
            elif p.kind == "attribute":
                assert words[0] == "something"
                matches = [i for i, o in enumerate(objs) if words[1] in (o.colour, o.fill)]
                assert matches == list(p.targets) and matches
            elif p.kind == "thin":
                matches = [i for i, o in enumerate(objs) if o.shape == words[1]]
                assert words[1] in THIN_SHAPES and matches == list(p.targets)
            elif p.kind == "negative":
                assert p.targets == () and not mask.any()
                if len(words) == 3:
                    assert not any(o.combo == (words[1], words[2]) for o in objs)
                else:
                    assert not any(o.shape == PLURAL_TO_SHAPE[p.text] for o in objs)
            else:
                shape, rel, a_colour, a_shape = REFERRING.match(p.text).groups()
                anchors = [i for i, o in enumerate(objs) if o.combo == (a_colour, a_shape)]
                assert len(anchors) == 1 and not objs[anchors[0]].thin
                anchor = objs[anchors[0]].centre
                same = [i for i, o in enumerate(objs) if o.shape == shape and i != anchors[0]]
                holding = [
                    i for i in same if sw.relation_holds(rel, objs[i].centre, anchor, margin)
                ]
                assert holding == list(p.targets)
    assert set(kinds) == set(PROMPT_KINDS), kinds


def test_referring_geometry_example():
    for s in generate_scenes(40, seed=5):
        for p in s.prompts:
            if p.kind != "referring":
                continue
            _, rel, colour, shape = REFERRING.match(p.text).groups()
            (anchor,) = [o for o in s.objects if o.combo == (colour, shape)]
            tx, ty = s.objects[p.targets[0]].centre
            ax, ay = anchor.centre
            offset = {"left of": ax - tx, "right of": tx - ax, "above": ay - ty, "below": ty - ay}
            assert offset[rel] >= 0.08 * 256
            return
    pytest.fail("no referring prompt")


def test_captions(scenes):
    for s in scenes:
        assert s.caption.endswith("background")
        for o in s.objects:
            if not o.thin:
                assert f"{o.colour} " in s.caption
        for i, o in enumerate(s.objects):
            text = s.object_caption(i)
            assert text.startswith(("a ", "an ")) and text.endswith(o.shape)
    s = generate_scene(0, seed=3)
    rng = np.random.default_rng(0)
    obj = s.objects[0]
    variants = {s.object_caption(0, rng) for _ in range(200)}
    assert len(variants) >= 4
    attribute = {f"something {obj.colour}", f"something {obj.fill}"}
    assert f"something {obj.colour}" in variants
    assert all(v.endswith(obj.shape) or v in attribute for v in variants)


def test_thin_structures_present():
    found = Counter()
    for s in generate_scenes(80, seed=9):
        for o in s.objects:
            if o.thin:
                found[o.shape] += 1
                assert o.shape in THIN_SHAPES and o.fill == "solid"
        assert sum(o.thin for o in s.objects) <= 1
    assert set(found) == set(THIN_SHAPES)


def test_novel_domain_uses_only_novel_shapes(scenes):
    novel = [s for s in scenes if s.domain == "novel"]
    shapes = {o.shape for s in novel for o in s.objects}
    assert shapes <= set(NOVEL_SHAPES) and len(shapes) >= 4
    for s in novel:
        for p in s.prompts:
            assert p.seen
            assert not any(name in p.text.split() for name in SHAPES + THIN_SHAPES)


def test_mosaic_geometry():
    tiles = [generate_scene(i, seed=4) for i in range(4)]
    m = mosaic(tiles)
    assert m.image.shape == (512, 512, 3)
    assert len(m.objects) == sum(len(t.objects) for t in tiles)
    k = 0
    for t, tile in enumerate(tiles):
        y0, x0 = (t // 2) * 256, (t % 2) * 256
        assert np.array_equal(m.image[y0 : y0 + 256, x0 : x0 + 256], tile.image)
        for o in tile.objects:
            assert m.tile_of(k) == t
            big = m.objects[k].mask
            assert np.array_equal(big[y0 : y0 + 256, x0 : x0 + 256], o.mask)
            assert big.sum() == o.mask.sum()
            bx0, by0, bx1, by1 = m.objects[k].box
            assert (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0) == o.box
            k += 1
    combos = Counter(o.combo for o in m.objects)
    assert m.prompts
    for p in m.prompts:
        (i,) = p.targets
        assert p.kind == "single" and combos[m.objects[i].combo] == 1
        assert p.text == f"the {m.objects[i].colour} {m.objects[i].shape}"
    with pytest.raises(InputError):
        mosaic(tiles[:3])
    small = generate_scene(0, config=ShapeWorldConfig(size=128))
    with pytest.raises(InputError):
        mosaic([*tiles[:3], small])


def test_object_crop():
    s = generate_scene(2, seed=1)
    o = s.objects[0]
    x0, y0, x1, y1 = o.box
    crop = object_crop(s, 0, "context", margin=0.0)
    assert crop.shape[0] >= y1 - y0 and crop.shape[1] >= x1 - x0
    black = object_crop(s, 0, "black", margin=0.0)
    gray = object_crop(s, 0, "gray", margin=0.0)
    assert black.shape == gray.shape == crop.shape
    outside = ~o.mask[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2]
    assert outside.shape == crop.shape[:2]
    assert (black[outside] == 0).all() and (gray[outside] == 128).all()
    assert np.array_equal(black[~outside], crop[~outside])
    with pytest.raises(InputError):
        object_crop(s, 0, "white")


def test_write_dataset_round_trip(tmp_path, capsys):
    n = 6
    paths = write_dataset(tmp_path, n, seed=2, split="test", progress=False)
    assert capsys.readouterr().err == ""
    assert set(paths) == {"images", "instances", "phrases", "captions"}
    coco = json.loads(paths["instances"].read_text())
    cats = {c["id"]: c for c in coco["categories"]}
    assert {c["name"] for c in cats.values()} >= set(SHAPES + THIN_SHAPES)
    assert all(
        c["supercategory"] == ("thin" if c["name"] in THIN_SHAPES else "shape")
        for c in cats.values()
    )
    assert len(coco["images"]) == n
    anns_by_image = {}
    for a in coco["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    ann_ids = {a["id"] for a in coco["annotations"]}
    assert len(ann_ids) == len(coco["annotations"])
    for entry in coco["images"]:
        assert (tmp_path / entry["file_name"]).is_file()
        scene = generate_scene(entry["id"] - 1, seed=2, split="test")
        anns = anns_by_image.get(entry["id"], [])
        decoded = rle_decode([a["segmentation"] for a in anns], (256, 256))
        assert np.array_equal(decoded, scene.masks)
        for a, o in zip(anns, scene.objects, strict=True):
            assert cats[a["category_id"]]["name"] == o.shape
            assert a["attributes"] == {"colour": o.colour, "fill": o.fill}
            assert a["area"] == o.mask.sum() and a["iscrowd"] == 0
            x0, y0, x1, y1 = o.box
            assert a["bbox"] == [x0, y0, x1 - x0, y1 - y0]
    from PIL import Image

    first = coco["images"][0]
    saved = np.asarray(Image.open(tmp_path / first["file_name"]))
    assert np.array_equal(saved, generate_scene(0, seed=2, split="test").image)

    phrases = json.loads(paths["phrases"].read_text())
    assert len(phrases) == sum(len(generate_scene(i, 2, "test").prompts) for i in range(n))
    for ph in phrases:
        assert set(ph) == {"image_id", "file_name", "phrase", "kind", "seen", "ann_ids"}
        assert set(ph["ann_ids"]) <= ann_ids
        assert all(
            anns_id in {a["id"] for a in anns_by_image[ph["image_id"]]} for anns_id in ph["ann_ids"]
        )
        assert (ph["kind"] == "negative") == (ph["ann_ids"] == [])

    with open(paths["captions"], newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["image", "caption"]
    n_objects = len(coco["annotations"])
    assert len(rows) - 1 == n + n_objects
    for image, caption in rows[1:]:
        assert (tmp_path / image).is_file() and caption

    # a second split and the novel domain share the folder
    more = write_dataset(tmp_path, 2, split="val", crops=False, progress=False)
    novel = write_dataset(tmp_path, 2, split="val", domain="novel", crops=False, progress=False)
    assert more["instances"] != novel["instances"] != paths["instances"]
    with open(more["captions"], newline="") as fh:
        assert len(list(csv.reader(fh))) == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda: generate_scene(0, split="training"),
        lambda: generate_scene(0, domain="alien"),
        lambda: generate_scene(-1),
        lambda: generate_scene(0, config={"size": 128}),
        lambda: ShapeWorldConfig(size=32),
        lambda: ShapeWorldConfig(min_objects=0),
        lambda: ShapeWorldConfig(min_objects=4, max_objects=2),
        lambda: ShapeWorldConfig(backgrounds=("space",)),
        lambda: list(generate_scenes(0)),
        lambda: write_dataset("/tmp/unused-shapeworld", 0, progress=False),
        lambda: write_dataset("/tmp/unused-shapeworld", 2, split="dev", progress=False),
    ],
)
def test_bad_arguments_raise_input_error(call):
    with pytest.raises(InputError) as info:
        call()
    assert "\n" not in str(info.value)


def test_other_sizes_and_counts():
    cfg = ShapeWorldConfig(size=128, min_objects=3, max_objects=3, thin_probability=0.0)
    for s in generate_scenes(10, config=cfg):
        assert s.image.shape == (128, 128, 3)
        assert 1 <= len(s.objects) <= 3
        assert not any(o.thin for o in s.objects)


def test_generation_is_fast():
    generate_scene(0)
    start = time.perf_counter()
    for i in range(20):
        generate_scene(i, seed=123)
    assert (time.perf_counter() - start) / 20 < 0.05

"""The ShapeWorld zoo: shipped weights load by id, and the models really learned ShapeWorld.

Floors here are set well below what was measured when the zoo was built (see
``src/promptseg/zoo/shapeworld/build_info.json``), so they fail on a broken model or a broken
loading path, not on noise.
"""

import json

import numpy as np
import pytest

from promptseg.cli import main
from promptseg.data.shapeworld import generate_scene, object_crop
from promptseg.eval.metrics import iou
from promptseg.models import load_clip, load_sam
from promptseg.models.registry import is_available_locally, list_models
from promptseg.zoo import ZOO_MODELS


def _size_mb(folder) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def test_zoo_ids_are_known_local_and_small():
    ids = {m.id for m in list_models()}
    assert {"shapeworld/clip", "shapeworld/sam"} <= ids
    assert all(is_available_locally(i) for i in ZOO_MODELS)
    assert sum(_size_mb(folder) for folder in ZOO_MODELS.values()) < 30


def test_zoo_clip_names_object_crops():
    clip = load_clip("shapeworld/clip", device="cpu")
    right = total = 0
    for index in range(12):
        scene = generate_scene(index, seed=11, split="test")
        objects = [i for i, o in enumerate(scene.objects) if not o.thin]
        if len(objects) < 2:
            continue
        captions = [f"the {scene.objects[i].colour} {scene.objects[i].shape}" for i in objects]
        crops = [object_crop(scene, i, "context", margin=0.2) for i in objects]
        pred = (clip.encode_images(crops) @ clip.encode_text(captions).T).argmax(1).tolist()
        right += sum(p == k for k, p in enumerate(pred))
        total += len(objects)
    assert total >= 20
    assert right / total > 0.8, f"{right}/{total}"


def test_zoo_sam_segments_objects_from_boxes():
    sam = load_sam("shapeworld/sam", device="cpu")
    scores = []
    for index in range(6):
        scene = generate_scene(index, seed=12, split="test")
        emb = sam.embed(scene.image)
        boxes = np.array([o.box for o in scene.objects], dtype=np.float64)
        out = sam.predict(emb, boxes=boxes, multimask_output=False)
        masks = out.masks[:, 0].cpu().numpy()
        scores += [iou(m, o.mask) for m, o in zip(masks, scene.objects, strict=True)]
    assert np.mean(scores) > 0.7, np.round(scores, 2)


def test_demo_command_runs_offline_and_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--seed", "1", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (out / "overlay.png").is_file() and (out / "scene.png").is_file()
    kinds = [row["kind"] for row in report["rows"]]
    assert "negative" in kinds and "single" in kinds
    assert all(row["iou"] is None or 0.0 <= row["iou"] <= 1.0 for row in report["rows"])
    saved = json.loads((out / "demo.json").read_text())
    assert saved["rows"] == report["rows"]


@pytest.mark.parametrize("bad", [["demo", "--method", "nope"], ["demo", "--domain", "moon"]])
def test_demo_bad_input_is_one_line_error(tmp_path, bad, capsys):
    assert main([*bad, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_segment_on_the_zoo_gives_the_demos_answers(tmp_path):
    """The zoo folders carry their settings: promptseg.segment with nothing but the model ids
    answers as the demo does (issue 17: it used to run SAM ViT-H's filters and drop masks)."""
    import promptseg
    from promptseg.demo import choose_prompts, run_demo
    from promptseg.zoo import SHAPEWORLD_SLIP_SETTINGS

    result = run_demo(tmp_path / "demo", seed=0, device="cpu")
    scene = generate_scene(0, seed=0, split="test")
    prompts = [p.text for p in choose_prompts(scene, 5)]
    assert prompts == [row["prompt"] for row in result.rows]
    seg = promptseg.segment(scene.image, prompts, clip="shapeworld/clip", sam="shapeworld/sam",
                            device="cpu")
    for q, row in enumerate(result.rows):
        mine = seg.for_prompt(q)
        assert len(mine) == row["masks"]
        assert int(mine.masks.any(axis=0).sum()) == row["predicted_pixels"]
    applied = seg.meta["model_settings"]["applied"]
    assert applied == SHAPEWORLD_SLIP_SETTINGS
    assert seg.meta["model_settings"]["origin"] == {
        "pred_iou_thresh": "shapeworld/sam", "stability_score_thresh": "shapeworld/sam",
        "threshold": "shapeworld/clip"}
    assert seg.meta["config"]["mask_generation"]["pred_iou_thresh"] == 0.6
    assert any(row["masks"] for row in result.rows)


def test_explicit_options_win_over_the_zoo_settings():
    import promptseg
    from promptseg.pipelines.slip import SlipConfig

    pipe = promptseg.load_pipeline("slip", clip="shapeworld/clip", sam="shapeworld/sam",
                                   device="cpu", pred_iou_thresh=0.7, threshold=None)
    assert pipe.config.mask_generation.pred_iou_thresh == 0.7
    assert pipe.config.threshold is None
    assert pipe.config.mask_generation.stability_score_thresh == 0.85
    assert pipe.model_settings["applied"] == {"stability_score_thresh": 0.85}
    # a config object: fields unlike the defaults count as the user's
    config = SlipConfig(clip="shapeworld/clip", sam="shapeworld/sam", threshold=0.2)
    pipe = promptseg.load_pipeline("slip", config=config, device="cpu")
    assert pipe.config.threshold == 0.2
    assert pipe.config.mask_generation.pred_iou_thresh == 0.6
    off = promptseg.load_pipeline("slip", clip="shapeworld/clip", sam="shapeworld/sam",
                                  device="cpu", use_model_settings=False)
    assert off.config.mask_generation.pred_iou_thresh == 0.88 and off.model_settings == {}

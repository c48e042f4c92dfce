"""Recommended settings in a model folder (promptseg_settings.json): read, validated, applied
under the user's options and recorded in the result's meta, by API and CLI alike."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import promptseg
from promptseg.cli import main
from promptseg.errors import WeightsError
from promptseg.models.settings import (
    SETTINGS_FILE,
    read_model_settings,
    recommended_settings,
    write_model_settings,
)


@pytest.fixture
def folders(tmp_path, tiny_sam_dir, tiny_hf_clip_dir):
    """Copies of the tiny SAM and CLIP folders with settings files of their own."""
    sam = shutil.copytree(tiny_sam_dir, tmp_path / "sam")
    clip = shutil.copytree(tiny_hf_clip_dir, tmp_path / "clip")
    write_model_settings(sam, {"*": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                                     "not_a_slip_option": 1}}, source="test")
    write_model_settings(clip, {"slip": {"threshold": -1.0, "points_per_side": 4}},
                         source="test")
    return sam, clip


def test_write_then_read_round_trip(tmp_path):
    path = write_model_settings(tmp_path, {"slip": {"threshold": 0.3}}, source="a grid")
    assert path.name == SETTINGS_FILE
    assert json.loads(path.read_text())["source"] == "a grid"
    assert read_model_settings(tmp_path) == {"slip": {"threshold": 0.3}}
    assert read_model_settings(tmp_path / "nothing-here") == {}


@pytest.mark.parametrize("text", ["{not json", '{"pipelines": [1, 2]}', '{"pipelines": {"a": 1}}'])
def test_a_broken_settings_file_is_named(tmp_path, text):
    (tmp_path / SETTINGS_FILE).write_text(text)
    with pytest.raises(WeightsError, match=SETTINGS_FILE):
        read_model_settings(tmp_path)


def test_own_table_wins_over_any_and_later_models_win(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_model_settings(a, {"*": {"x": 1, "y": 1, "z": 9}, "p": {"y": 2}}, source="")
    write_model_settings(b, {"p": {"x": 3}}, source="")
    settings, origin = recommended_settings([("A", a), ("B", b), ("C", None)], "p",
                                            valid={"x", "y"})
    assert settings == {"x": 3, "y": 2}  # "z" is for other pipelines: skipped
    assert origin == {"x": "B", "y": "A"}
    write_model_settings(b, {"p": {"nope": 3}}, source="")
    with pytest.raises(WeightsError, match="nope"):
        recommended_settings([("B", b)], "p", valid={"x"})


def test_pipeline_applies_settings_under_explicit_options(folders):
    sam, clip = folders
    pipe = promptseg.load_pipeline("slip", clip=str(clip), sam=str(sam), device="cpu",
                                   points_per_side=8)
    mg = pipe.config.mask_generation
    assert (mg.pred_iou_thresh, mg.stability_score_thresh) == (0.0, 0.0)
    assert mg.points_per_side == 8  # the user's option beats the CLIP folder's 4
    assert pipe.config.threshold == -1.0
    assert pipe.model_settings["origin"]["threshold"] == str(clip)
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    seg = pipe(image, ["a thing"])
    assert seg.meta["model_settings"]["applied"] == {
        "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "threshold": -1.0}


def test_cli_segment_records_the_settings_it_applied(folders, tmp_path, capsys):
    sam, clip = folders
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(image)
    code = main(["segment", str(image), "-p", "a thing", "--clip", str(clip), "--sam", str(sam),
                 "--json", "--points-per-side", "4", "--device", "cpu"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["meta"]["model_settings"]["applied"]["threshold"] == -1.0
    code = main(["segment", str(image), "-p", "a thing", "--clip", str(clip), "--sam", str(sam),
                 "--json", "--points-per-side", "4", "--device", "cpu", "--no-model-settings"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["meta"]["model_settings"] == {}
    assert record["meta"]["config"]["mask_generation"]["pred_iou_thresh"] == 0.88

"""The command line: outputs, JSON, and one-line errors with exit code 2 on bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from promptseg.cli import main
from promptseg.convert.coco import from_coco

LOW = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
       "--box-nms-thresh", "0.9"]


@pytest.fixture
def models(tiny_sam_dir, tiny_hf_clip_dir):
    return ["--clip", str(tiny_hf_clip_dir), "--sam", str(tiny_sam_dir), "--device", "cpu"]


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    arr[10:30, 10:30] = (230, 30, 30)
    path = tmp_path / "scene.png"
    Image.fromarray(arr).save(path)
    return path


def test_segment_writes_every_format(models, image_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(image_file), "-p", "a red square", "-p", "grass", *models, *LOW,
                 "--out", str(out), "--quiet"])
    assert code == 0
    folder = out / "scene"
    pngs = sorted((folder / "masks").glob("*.png"))
    assert len(pngs) == 2 and "a-red-square" in pngs[0].name
    seg = from_coco(folder / "coco.json")
    assert seg.prompts == ("a red square", "grass") and seg.masks.shape == (2, 48, 64)
    for png, mask in zip(pngs, seg.masks, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(png)) > 0, mask)
    assert Image.open(folder / "overlay.png").size[1] >= 48


def test_segment_json(models, image_file, capsys):
    code = main(["segment", str(image_file), "-p", "a red square", *models, *LOW, "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["prompts"] == ["a red square"] and record["num_instances"] == 1
    assert record["image"] == str(image_file) and "timings" in record["meta"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["segment", "missing.png", "-p", "x", "--json"], "not found"),
        (["segment", "{image}", "-p", "", "--json"], "empty"),
        (["segment", "{image}", "-p", "x", "--json", "--method", "nope"], "unknown method"),
        (["segment", "{image}", "-p", "x", "--json", "--sam", "facebook-sam-vit-bse"],
         "unknown model"),
        (["segment", "{image}", "-p", "x", "--json", "--sam", "{clip}"], "SAM-family"),
        (["segment", "{text}", "-p", "x", "--json"], "{text}"),
        (["segment", "{image}", "-p", "x", "--format", "gif", "--out", "o"], "unknown --format"),
        (["segment", "{image}", "-p", "x", "--json", "--output", "many"], "output must be"),
        (["segment", "{image}", "-p", "x", "--json", "--max-pixels", "100"], "100"),
    ],
)
def test_bad_input_exit_2_one_line(args, message, models, image_file, tmp_path, capsys,
                                   tiny_hf_clip_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    subs = {"{image}": str(image_file), "{clip}": str(tiny_hf_clip_dir), "{text}": str(text)}
    args = [subs.get(a, a) for a in args]
    message = subs.get(message, message)
    extra = models if "--sam" not in args else models[:2] + models[4:]
    code = main([*args, *extra, *LOW])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_too_many_prompts(models, image_file, capsys):
    args = ["segment", str(image_file), "--json", *models]
    for i in range(101):
        args += ["-p", f"thing {i}"]
    assert main(args) == 2
    assert "limit" in capsys.readouterr().err


def test_models_lists_known_ids(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ids = {r["id"] for r in rows}
    assert {"facebook/sam-vit-base", "open_clip:RN50/openai", "facebook/sam2.1-hiera-tiny",
            "flaviagiammarino/medsam-vit-base", "syscv-community/sam-hq-vit-base"} <= ids
    # offline, only the zoo shipped in the package is available
    assert {r["id"] for r in rows if r["local"]} == {"shapeworld/clip", "shapeworld/sam"}


def test_convert_sam(tiny_official_sam, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["convert", "sam", str(tiny_official_sam.checkpoint), str(out)]) == 0
    assert (out / "config.json").is_file()
    assert main(["convert", "sam", str(tmp_path / "none.pth"), str(out)]) == 2


def test_one_bad_image_among_many(models, image_file, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(image_file.read_bytes()[:60])  # truncated PNG
    out = tmp_path / "out"
    code = main(["segment", str(image_file), str(bad), "-p", "a red square", *models, *LOW,
                 "--out", str(out), "--quiet"])
    assert code == 2
    assert "broken.png" in capsys.readouterr().err
    assert (out / "scene" / "coco.json").is_file()
    assert not (out / "broken").exists()


def test_folder_of_images(models, image_file, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image, not listed")
    code = main(["segment", str(tmp_path), "-p", "a red square", *models, *LOW, "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(image_file)


def test_unexpected_failure_exit_1_one_line(models, image_file, monkeypatch, capsys):
    from promptseg.pipelines.slip import SlipPipeline

    def broken(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SlipPipeline, "prepare", broken)
    code = main(["segment", str(image_file), "-p", "x", *models, *LOW, "--json"])
    err = capsys.readouterr().err
    assert code == 1
    assert "out of memory" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_default_output_folder(models, image_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["segment", str(image_file), "-p", "a red square", *models, *LOW, "-q"]) == 0
    assert (tmp_path / "promptseg-out" / "scene" / "overlay.png").is_file()


def test_version_and_module_entry(capsys):
    import subprocess
    import sys

    assert main(["--version"]) == 0
    assert "promptseg 0.1.0" in capsys.readouterr().out
    run = subprocess.run([sys.executable, "-m", "promptseg", "methods"], capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0 and "slip" in run.stdout.split()


def test_segment_with_camsam(models, image_file, capsys):
    code = main(["segment", str(image_file), "-p", "a red square", "-p", "grass", *models,
                 "--method", "camsam", "--cam", "gradcam", "--no-crf", "--cam-points", "1",
                 "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["meta"]["pipeline"] == "camsam"
    config = record["meta"]["config"]
    assert (config["cam"], config["crf"], config["points"]) == ("gradcam", False, 1)


def test_camsam_refuses_slip_options_in_one_line(models, image_file, capsys):
    code = main(["segment", str(image_file), "-p", "x", *models, "--method", "camsam",
                 "--visual-prompt", "crop", "--json"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "visual_prompt" in err[0]


def test_explain_writes_heatmap_sheet(tiny_hf_clip_dir, image_file, tmp_path, capsys):
    out = tmp_path / "maps" / "explain.png"
    code = main(["explain", str(image_file), "-p", "a red square", "-p", "grass", "--clip",
                 str(tiny_hf_clip_dir), "--cam", "gradcam", "--input-size", "64",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0 and out.is_file()
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] > 48 and sheet.shape[1] > 2 * 64  # two panels and a colour bar
    code = main(["explain", str(image_file), "-p", "x", "--clip", str(tiny_hf_clip_dir),
                 "--cam", "hilacam", "--device", "cpu", "--out", str(tmp_path / "no.png")])
    assert code == 2 and not (tmp_path / "no.png").exists()
    assert "unknown CAM method 'hilacam'" in capsys.readouterr().err

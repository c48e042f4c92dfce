"""The data and training commands end to end through the CLI: ShapeWorld files in, model
folders out that `--clip` / `--sam` load."""

import json

import pytest
from fixtures_sam import build_tiny_sam_config
from test_train_clip import TINY_CONFIG

from promptseg.cli import main
from promptseg.models import load_clip, load_sam
from promptseg.models.registry import clear_cache


@pytest.fixture(scope="module")
def shapeworld_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    for split, n in (("train", 6), ("val", 3)):
        assert main(["data", "shapeworld", "--out", str(out), "--n", str(n), "--split", split,
                     "--size", "128", "-q"]) == 0
    return out


def test_data_shapeworld_writes_every_format(shapeworld_dir):
    for name in ("instances_train.json", "phrases_train.json", "captions_train.csv",
                 "instances_val.json"):
        assert (shapeworld_dir / name).is_file()
    coco = json.loads((shapeworld_dir / "instances_train.json").read_text())
    assert len(coco["images"]) == 6 and coco["annotations"]
    phrases = json.loads((shapeworld_dir / "phrases_train.json").read_text())
    assert {p["kind"] for p in phrases} >= {"single", "negative"}


def test_train_clip_cli_from_config(shapeworld_dir, tmp_path, capsys):
    cfg = tmp_path / "clip.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    out = tmp_path / "clip"
    code = main(["train", "clip", str(shapeworld_dir / "captions_train.csv"), "--val-data",
                 str(shapeworld_dir / "captions_val.csv"), "--from-config", str(cfg),
                 "--out", str(out), "--epochs", "1", "--batch-size", "8", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and summary["train_pairs"] > 6
    clear_cache()
    assert load_clip(str(out), device="cpu").image_size == 32


def test_train_sam_cli_from_config(shapeworld_dir, tmp_path, capsys):
    cfg = tmp_path / "sam.json"
    build_tiny_sam_config().to_json_file(str(cfg))
    out = tmp_path / "sam"
    code = main(["train", "sam", str(shapeworld_dir / "instances_train.json"), "--val-data",
                 str(shapeworld_dir / "instances_val.json"), "--from-config", str(cfg),
                 "--out", str(out), "--epochs", "1", "--batch-size", "2", "--no-progress"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
    clear_cache()
    assert load_sam(str(out), device="cpu").image_size == 128


@pytest.mark.parametrize("args, words", [
    (["train", "clip", "missing.csv", "--out", "OUT", "--from-config", "x.json"], "does not exist"),
    (["train", "sam", "missing.json", "--out", "OUT", "--from-config", "x.json"], "missing"),
    (["data", "shapeworld", "--out", "OUT", "--split", "dev"], "split"),
    (["train", "clip", "x.csv", "--out", "OUT", "--epochs", "0", "--from-config", "c"], "epochs"),
])
def test_bad_training_input_is_one_line(tmp_path, capsys, args, words):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err

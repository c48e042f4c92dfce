"""`promptseg.train.clip`: contrastive training of transformers and OpenCLIP models."""

import json

import numpy as np
import pytest
import torch
from fixtures_clip import TINY_OPEN_CLIP
from PIL import Image

from promptseg.errors import ConfigError, InputError
from promptseg.models import load_clip
from promptseg.models.registry import clear_cache
from promptseg.train.clip import (
    ClipTrainConfig,
    build_from_config,
    contrastive_loss,
    read_captions,
    select_trainable,
    train_clip,
)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220),
           "yellow": (230, 230, 20)}

TINY_CONFIG = {
    "model_type": "clip",
    "projection_dim": 16,
    "text_config": {"vocab_size": 600, "hidden_size": 32, "intermediate_size": 64,
                    "num_hidden_layers": 2, "num_attention_heads": 2,
                    "max_position_embeddings": 16},
    "vision_config": {"image_size": 32, "patch_size": 8, "hidden_size": 32,
                      "intermediate_size": 64, "num_hidden_layers": 2,
                      "num_attention_heads": 2},
}


@pytest.fixture(scope="module")
def colour_pairs(tmp_path_factory):
    """80 squares of four colours on dark noise, captioned with their colour."""
    root = tmp_path_factory.mktemp("colour_pairs")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,caption"]
    for i in range(80):
        name = list(COLOURS)[i % 4]
        img = rng.integers(0, 40, (32, 32, 3)).astype(np.uint8)
        img[6:26, 6:26] = COLOURS[name]
        Image.fromarray(img).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,a {name} square")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    (root / "config.json").write_text(json.dumps(TINY_CONFIG))
    return root


def _config(root, out, **kwargs):
    base = dict(data=str(root / "captions.csv"), out=str(out), epochs=6, batch_size=16,
                lr=1e-3, progress=False)
    base.update(kwargs)
    return ClipTrainConfig(**base)


def test_contrastive_loss_exact_values():
    img = torch.eye(3)
    # perfect alignment at scale e^0 = 1: every row is softmax([1, 0, 0])
    loss = contrastive_loss(img, img, torch.tensor(0.0))
    expected = -np.log(np.e / (np.e + 2))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # equal captions are positives of each other: rows 0 and 1 share "a"
    same = contrastive_loss(img, img, torch.tensor(0.0), captions=["a", "a", "b"])
    row = -0.5 * (np.log(np.e / (np.e + 2)) + np.log(1 / (np.e + 2)))
    expected = (2 * row - np.log(np.e / (np.e + 2))) / 3
    assert float(same) == pytest.approx(expected, rel=1e-6)
    # unique captions: identical to CLIP's loss
    assert float(contrastive_loss(img, img, torch.tensor(0.0), captions=["a", "b", "c"])) == (
        pytest.approx(float(loss)))


def test_from_config_learns_colours_and_loads_through_registry(colour_pairs, tmp_path):
    out = tmp_path / "run"
    summary = train_clip(_config(colour_pairs, out, from_config=str(colour_pairs /
                                                                     "config.json")))
    assert summary["epochs"] == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(7))
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert summary["best_val_accuracy"] == 1.0
    clear_cache()
    clip = load_clip(str(out), device="cpu")
    text = clip.encode_text([f"a {name} square" for name in COLOURS])
    images = []
    for rgb in COLOURS.values():
        img = np.zeros((32, 32, 3), np.uint8)
        img[6:26, 6:26] = rgb
        images.append(img)
    pred = (clip.encode_images(images) @ text.T).argmax(1)
    assert pred.tolist() == [0, 1, 2, 3]


def test_projection_only_freezes_both_towers(tiny_hf_clip_dir, colour_pairs, tmp_path):
    before = load_clip(str(tiny_hf_clip_dir), device="cpu").model.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    train_clip(_config(colour_pairs, tmp_path / "run", model=str(tiny_hf_clip_dir), epochs=1,
                       train_parts="projection"))
    clear_cache()
    after = load_clip(str(tmp_path / "run"), device="cpu").model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "the projection heads should train"
    assert all(k.startswith(("visual_projection", "text_projection", "logit_scale"))
               for k in changed), changed


def test_select_trainable_parts_open_clip(tiny_open_clip_dir):
    model = load_clip(str(tiny_open_clip_dir), device="cpu").model
    image = select_trainable(model, "open_clip", "image")
    assert any(n.startswith("visual.") for n in image)
    assert "text_projection" in image and "logit_scale" in image
    assert not any(n.startswith(("transformer.", "token_embedding")) for n in image)
    with pytest.raises(ConfigError, match="train-parts"):
        select_trainable(model, "open_clip", "decoder")
    model.requires_grad_(False)


def test_open_clip_from_config_trains_and_reloads(colour_pairs, tmp_path):
    cfg = dict(TINY_OPEN_CLIP)
    cfg["vision_cfg"] = {**cfg["vision_cfg"], "image_size": 32, "patch_size": 8}
    path = tmp_path / "open_clip.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "run"
    train_clip(_config(colour_pairs, out, from_config=str(path), epochs=1))
    assert (out / "open_clip_config.json").is_file()
    clear_cache()
    clip = load_clip(str(out), device="cpu")
    assert clip.family == "open_clip" and clip.image_size == 32


def test_resume_continues_from_last_epoch(colour_pairs, tmp_path):
    out = tmp_path / "run"
    cfg = str(colour_pairs / "config.json")
    train_clip(_config(colour_pairs, out, from_config=cfg, epochs=1))
    with pytest.raises(InputError, match="--resume"):
        train_clip(_config(colour_pairs, out, from_config=cfg, epochs=2))
    summary = train_clip(_config(colour_pairs, out, from_config=cfg, epochs=2, resume=True))
    assert summary["epochs"] == 1
    lines = (out / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines]
    assert epochs == [0, 1, 2]


def test_read_captions_formats_and_errors(colour_pairs, tmp_path):
    csv_pairs = read_captions(colour_pairs / "captions.csv")
    assert len(csv_pairs) == 80 and csv_pairs.captions[1] == "a green square"
    jsonl = tmp_path / "pairs.jsonl"
    first = zip(csv_pairs.images[:3], csv_pairs.captions[:3], strict=True)
    jsonl.write_text("\n".join(json.dumps({"image": str(p), "caption": c}) for p, c in first))
    assert read_captions(jsonl).captions == csv_pairs.captions[:3]
    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({
        "images": [{"id": 7, "file_name": str(csv_pairs.images[0])}],
        "annotations": [{"id": 1, "image_id": 7, "caption": "a red square"},
                        {"id": 2, "image_id": 7, "caption": "red"}],
    }))
    assert read_captions(coco).captions == ["a red square", "red"]
    with pytest.raises(InputError, match="does not exist"):
        read_captions(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,words\nx.png,hello\n")
    with pytest.raises(InputError, match="header"):
        read_captions(bad)
    gone = tmp_path / "gone.csv"
    gone.write_text("image,caption\nnope.png,hello\n")
    with pytest.raises(InputError, match="not found"):
        read_captions(gone)


def test_bad_settings_are_one_line_errors(colour_pairs, tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        train_clip(_config(colour_pairs, tmp_path / "a"))
    with pytest.raises(ConfigError, match="batch-size"):
        train_clip(_config(colour_pairs, tmp_path / "b", from_config="x", batch_size=1))
    with pytest.raises(InputError, match="from-config"):
        build_from_config(tmp_path / "none.json", tmp_path / "c")
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="neither"):
        build_from_config(weird, tmp_path / "d")

"""`promptseg.train.clip_parts` and `promptseg.train.autoencoder`: a CLIP from a timm image
backbone + a Hugging Face text encoder, and autoencoder pretraining of its image tower."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from promptseg.errors import ConfigError, UnknownModelError, WeightsError
from promptseg.models import load_clip
from promptseg.models.registry import clear_cache
from promptseg.train.autoencoder import AutoencoderTrainConfig, train_autoencoder
from promptseg.train.clip import ClipTrainConfig, select_trainable, train_clip
from promptseg.train.clip_parts import build_clip_from_parts

BACKBONE = "resnet10t"  # 4.9 M parameters; any input size
SIZE = 32
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220),
           "yellow": (230, 230, 20)}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "an", "photo", "of", "the",
         "square", *COLOURS]


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory):
    """A 2-layer DistilBERT (dim 32) with a 15-word WordPiece vocabulary, weights included."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    folder = tmp_path_factory.mktemp("distilbert")
    tokenizer = DistilBertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})
    torch.manual_seed(1)
    model = DistilBertModel(DistilBertConfig(
        vocab_size=len(WORDS), dim=32, hidden_dim=64, n_layers=2, n_heads=2,
        max_position_embeddings=32))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    """40 squares of four colours on dark noise, captioned with their colour."""
    root = tmp_path_factory.mktemp("colours")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,caption"]
    for i in range(40):
        name = list(COLOURS)[i % 4]
        img = rng.integers(0, 40, (SIZE, SIZE, 3)).astype(np.uint8)
        img[6:26, 6:26] = COLOURS[name]
        Image.fromarray(img).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,a {name} square")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def autoencoder_run(colour_data, tmp_path_factory):
    """2 epochs of autoencoder training on 16 of the images (a folder of images)."""
    images = tmp_path_factory.mktemp("ae_images")
    for i in range(16):
        shutil.copy(colour_data / "img" / f"{i}.png", images / f"{i}.png")
    out = tmp_path_factory.mktemp("ae") / "run"
    summary = train_autoencoder(AutoencoderTrainConfig(
        data=str(images), out=str(out), backbone=BACKBONE, image_size=SIZE, epochs=2,
        batch_size=4, progress=False, val_fraction=0.25))
    return out, summary


def _build(tiny_distilbert, out, **kwargs):
    options = dict(image_backbone=BACKBONE, text_encoder=str(tiny_distilbert), embed_dim=16,
                   image_size=SIZE, context_length=16)
    options.update(kwargs)
    return build_clip_from_parts(out, **options)


def _state(folder):
    clear_cache()
    return {k: v.clone() for k, v in load_clip(str(folder), device="cpu").model.state_dict()
            .items()}


def test_built_folder_loads_embeds_and_moves(tiny_distilbert, tmp_path):
    from transformers import DistilBertModel

    folder = _build(tiny_distilbert, tmp_path / "clip")
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_name"] == BACKBONE
    assert config["model_cfg"]["text_cfg"]["hf_model_name"] == "text_encoder"
    assert (folder / "text_encoder" / "config.json").is_file()
    clear_cache()
    clip = load_clip(str(folder), device="cpu")
    assert clip.embed_dim == 16 and clip.image_size == SIZE
    texts = ["a red square", "a photo of the blue square", "green"]
    text = clip.encode_text(texts)
    image = clip.encode_images([np.zeros((40, 50, 3), np.uint8), np.full((20, 20, 3), 200,
                                                                          np.uint8)])
    assert text.shape == (3, 16) and image.shape == (2, 16)
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(image.norm(dim=1), torch.ones(2), atol=1e-5)
    # [SLIP]: the text tower starts from the text encoder's own weights
    pretrained = DistilBertModel.from_pretrained(tiny_distilbert).state_dict()
    tower = clip.model.text.transformer.state_dict()
    assert all(torch.equal(pretrained[k], tower[k]) for k in tower)
    # relocatable: the text encoder's files travel inside the folder
    moved = tmp_path / "elsewhere" / "clip"
    shutil.move(str(folder), str(moved))
    clear_cache()
    again = load_clip(str(moved), device="cpu")
    assert torch.allclose(again.encode_text(texts), text, atol=1e-6)


def test_part_rules_for_timm_and_hf_towers(tiny_distilbert, tmp_path):
    clear_cache()
    model = load_clip(str(_build(tiny_distilbert, tmp_path / "clip")), device="cpu").model
    image = set(select_trainable(model, "open_clip", "image"))
    assert any(n.startswith("visual.trunk.") for n in image)
    assert {n for n in image if not n.startswith("visual.trunk.")} == {
        n for n, _ in model.named_parameters() if n.startswith(("visual.head.", "text.proj"))
    } | {"logit_scale"}
    text = set(select_trainable(model, "open_clip", "text"))
    assert any(n.startswith("text.transformer.") for n in text)
    assert not any(n.startswith("visual.trunk.") for n in text)


def test_train_clip_from_parts_projection_only_then_all(tiny_distilbert, colour_data,
                                                        tmp_path):
    base = dict(data=str(colour_data / "captions.csv"), image_backbone=BACKBONE,
                text_encoder=str(tiny_distilbert), embed_dim=16, image_size=SIZE, batch_size=8,
                lr=1e-3, progress=False, augment=False)
    init = _state(_build(tiny_distilbert, tmp_path / "init"))  # what train_clip builds (seed 0)
    out = tmp_path / "heads"
    summary = train_clip(ClipTrainConfig(out=str(out), epochs=1, train_parts="projection",
                                         **base))
    assert summary["epochs"] == 1
    assert (out / "text_encoder" / "tokenizer.json").is_file()
    after = _state(out)  # the run folder loads (and is self-contained)
    frozen = [k for k in init if k.startswith(("visual.trunk.", "text.transformer."))]
    assert frozen and all(torch.equal(init[k], after[k]) for k in frozen)  # incl. BN stats
    changed = {k for k in init if not torch.equal(init[k], after[k])}
    assert changed and all(k.startswith(("visual.head.", "text.proj", "logit_scale"))
                           for k in changed), changed

    out = tmp_path / "all"
    train_clip(ClipTrainConfig(out=str(out), epochs=2, **base))
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    after = _state(out)
    assert any(not torch.equal(init[k], after[k]) for k in frozen)


def test_train_clip_needs_one_model_source(tiny_distilbert, colour_data, tmp_path):
    base = dict(data=str(colour_data / "captions.csv"), progress=False)
    with pytest.raises(ConfigError, match="--image-backbone and --text-encoder"):
        train_clip(ClipTrainConfig(out=str(tmp_path / "a"), image_backbone=BACKBONE, **base))
    with pytest.raises(ConfigError, match="exactly one"):
        train_clip(ClipTrainConfig(out=str(tmp_path / "b"), model="x", image_backbone=BACKBONE,
                                   text_encoder=str(tiny_distilbert), **base))


def test_autoencoder_lowers_val_mse_and_initialises_clip(autoencoder_run, tiny_distilbert,
                                                         tmp_path):
    out, summary = autoencoder_run
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert min(r["val_loss"] for r in records[1:]) < records[0]["val_loss"]
    assert summary["best_val_loss"] == min(r["val_loss"] for r in records[1:])
    ae = json.loads((out / "autoencoder_config.json").read_text())
    assert ae["backbone"] == BACKBONE and ae["image_size"] == SIZE
    encoder = load_file(str(out / "encoder.safetensors"))
    clip_dir = _build(tiny_distilbert, tmp_path / "clip", image_init=str(out))
    clear_cache()
    clip = load_clip(str(clip_dir), device="cpu")
    trunk = clip.model.visual.trunk.state_dict()
    assert set(trunk) == set(encoder)
    assert all(torch.equal(trunk[k], encoder[k]) for k in encoder)
    assert clip.image_mean == pytest.approx(tuple(ae["mean"]))


def test_autoencoder_resumes(autoencoder_run, tmp_path):
    out, _ = autoencoder_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    config = json.loads((run / "train_config.json").read_text())
    config.update(out=str(run), epochs=3, resume=True)
    summary = train_autoencoder(AutoencoderTrainConfig(**config))
    assert summary["epochs"] == 1
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]


def test_clear_errors(autoencoder_run, tiny_distilbert, tmp_path):
    out, _ = autoencoder_run
    with pytest.raises(ConfigError, match=f"trained with a '{BACKBONE}' encoder"):
        _build(tiny_distilbert, tmp_path / "a", image_backbone="resnet18", image_init=str(out))
    # HF_HUB_OFFLINE=1 (conftest): no ImageNet weights to be had
    with pytest.raises(WeightsError, match=f"ImageNet weights for {BACKBONE} could not be"):
        _build(tiny_distilbert, tmp_path / "b", image_init="imagenet")
    with pytest.raises(UnknownModelError, match="not a timm architecture"):
        _build(tiny_distilbert, tmp_path / "c", image_backbone="resnet10")
    with pytest.raises(UnknownModelError, match="Hugging Face cache"):
        _build(tiny_distilbert, tmp_path / "d", text_encoder="no-such-org/no-such-model")
    with pytest.raises(ConfigError, match="cannot take 64x64"):
        _build(tiny_distilbert, tmp_path / "e", image_backbone="vit_tiny_patch16_224",
               image_size=64)


def test_cli_autoencoder_from_coco_then_clip_from_parts(colour_data, tiny_distilbert, tmp_path,
                                                        capsys):
    from promptseg.cli import main

    coco = {"images": [{"id": i, "file_name": f"img/{i}.png", "width": SIZE, "height": SIZE}
                       for i in range(8)], "annotations": [], "categories": []}
    (colour_data / "instances.json").write_text(json.dumps(coco))
    ae = tmp_path / "ae"
    code = main(["train", "autoencoder", str(colour_data / "instances.json"), "--out", str(ae),
                 "--backbone", BACKBONE, "--image-size", str(SIZE), "--epochs", "1",
                 "--batch-size", "4", "--val-fraction", "0.25", "--no-progress"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["train_images"] == 6
    run = tmp_path / "clip"
    code = main(["train", "clip", str(colour_data / "captions.csv"), "--out", str(run),
                 "--image-backbone", BACKBONE, "--text-encoder", str(tiny_distilbert),
                 "--embed-dim", "8", "--image-size", str(SIZE), "--image-init", str(ae),
                 "--train-parts", "projection", "--epochs", "1", "--batch-size", "8",
                 "--max-samples", "8", "--no-progress"])
    assert code == 0
    trunk = _state(run)
    encoder = load_file(str(ae / "encoder.safetensors"))
    assert all(torch.equal(trunk[f"visual.trunk.{k}"], v) for k, v in encoder.items())

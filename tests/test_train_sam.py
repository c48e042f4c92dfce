"""promptseg.train.sam and promptseg.data.coco: SAM fine-tuning on a tiny COCO dataset.

The dataset is made here (solid rectangles and discs on dark noise, RLE masks), the models
are the tiny SAMs of ``fixtures_sam`` (128-pixel input), so every run takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_sam import build_tiny_sam_config
from PIL import Image

from promptseg.convert.coco import rle_encode
from promptseg.errors import ConfigError, InputError
from promptseg.models import registry
from promptseg.train.sam import SamTrainConfig, sam_losses, train_sam


def make_coco(root: Path, n: int = 12, size: int = 64, seed: int = 0) -> Path:
    """``n`` noisy ``size`` x ``size`` images with 1-3 solid shapes each, as a COCO file."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, anns = [], []
    for i in range(n):
        image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        masks: list[np.ndarray] = []
        for k in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(14, size - 14, 2)
            r = rng.uniform(6, 12)
            if k % 2:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            else:
                mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < 0.8 * r)
            for previous in masks:
                mask &= ~previous
            image[mask] = rng.integers(120, 256, 3)
            masks.append(mask)
        Image.fromarray(image).save(root / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": size, "width": size})
        for rle in rle_encode(np.stack(masks)):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "segmentation": rle, "iscrowd": 0})
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "shape"}]}))
    return path


@pytest.fixture(scope="module")
def coco12(tmp_path_factory) -> Path:
    return make_coco(tmp_path_factory.mktemp("coco12"), n=12)


@pytest.fixture(scope="module")
def coco24(tmp_path_factory) -> Path:
    return make_coco(tmp_path_factory.mktemp("coco24"), n=24, seed=1)


@pytest.fixture(scope="module")
def tiny_config_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sam_cfg") / "config.json"
    build_tiny_sam_config().to_json_file(path)
    return path


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _config(data: Path, out: Path, **kwargs) -> SamTrainConfig:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return SamTrainConfig(data=str(data), out=str(out), **kwargs)


# ---------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained_from_config(coco24, tiny_config_json, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "from_config"
    summary = train_sam(_config(
        coco24, out, from_config=str(tiny_config_json), epochs=8, batch_size=4, lr=3e-3,
        prompts_per_image=4, scheduler="constant", val_fraction=0.25,
    ))
    return out, summary


def test_from_config_learns_and_loads(trained_from_config, coco24):
    out, summary = trained_from_config
    records = _metrics(out)
    assert [r["epoch"] for r in records] == list(range(9))  # epoch 0 = before training
    first, best = records[1], min(records[1:], key=lambda r: r["val_loss"])
    # measured: val loss 1.60 -> 0.80, val IoU 0.10 -> 0.33 (epoch 1 -> 8, seed 0)
    assert best["val_loss"] < 0.8 * first["val_loss"]
    assert best["val_iou"] > first["val_iou"] + 0.1
    assert summary["best_val_loss"] == pytest.approx(best["val_loss"])
    assert summary["val_iou"] == pytest.approx(best["val_iou"])
    assert summary["trainable_params"] == summary["total_params"] - 32  # Fourier matrix fixed
    assert set(records[1]) >= {"epoch", "train_loss", "val_loss", "val_iou_box",
                               "val_iou_point", "lr", "seconds"}
    assert (out / "train_config.json").is_file() and (out / "train_state.pt").is_file()

    registry.clear_cache()
    seg = registry.load_sam(str(out), device="cpu")
    from promptseg.data.coco import CocoInstances

    dataset = CocoInstances(coco24)
    ious = []
    for i in range(4):  # the first shape of every image is a rectangle
        sample = dataset[i]
        rect = sample.masks[0]
        ys, xs = np.nonzero(rect)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        pred = seg.predict(seg.embed(sample.image), boxes=box, multimask_output=False)
        mask = pred.masks[0, 0].numpy()
        assert mask.shape == rect.shape
        ious.append((mask & rect).sum() / (mask | rect).sum())
    print("box IoU on training rectangles:", np.round(ious, 3))
    assert np.mean(ious) > 0.3  # measured 0.54 (0.34, 0.84, 0.56, 0.42)
    registry.clear_cache()


def test_finetune_keeps_frozen_encoder(tiny_sam_dir, coco12, tmp_path):
    out = tmp_path / "ft"
    summary = train_sam(_config(coco12, out, model=str(tiny_sam_dir), epochs=2, batch_size=4,
                                lr=1e-3, val_fraction=0.25))
    from promptseg.models.sam import SamSegmenter

    source = SamSegmenter.from_pretrained(tiny_sam_dir).model.state_dict()
    trained = SamSegmenter.from_pretrained(out).model.state_dict()
    encoder = [k for k in source if k.startswith("vision_encoder.")]
    decoder = [k for k in source if k.startswith("mask_decoder.")]
    assert encoder and decoder
    assert all(torch.equal(source[k], trained[k]) for k in encoder)
    assert any(not torch.equal(source[k], trained[k]) for k in decoder)
    assert summary["trainable_params"] < summary["total_params"] // 3
    # the processor files of the source travel with the model
    assert (out / "preprocessor_config.json").is_file() or (out / "processor_config.json").is_file()


def test_finetune_sam_hq(tiny_sam_hq_dir, coco12, tmp_path):
    out = tmp_path / "hq"
    summary = train_sam(_config(coco12, out, model=str(tiny_sam_hq_dir), epochs=1, batch_size=4,
                                val_fraction=0.25))
    assert summary["epochs"] == 1 and np.isfinite(summary["best_val_loss"])
    registry.clear_cache()
    assert registry.load_sam(str(out), device="cpu").family == "sam_hq"
    registry.clear_cache()


def test_resume_continues_and_used_folder_is_refused(tiny_sam_dir, coco12, tmp_path):
    out = tmp_path / "resume"
    args = dict(model=str(tiny_sam_dir), batch_size=4, lr=1e-3, val_fraction=0.25,
                augment=False)
    first = train_sam(_config(coco12, out, epochs=1, **args))
    assert first["epochs"] == 1
    second = train_sam(_config(coco12, out, epochs=2, resume=True, **args))
    assert second["epochs"] == 1  # only epoch 2 ran
    assert [r["epoch"] for r in _metrics(out)] == [0, 1, 2]
    state = torch.load(out / "train_state.pt", weights_only=False)
    assert state["epoch"] == 2
    # the optimiser went on: Adam's step counter counts both epochs' steps (3 + 3); a
    # parameter that got no gradient in a step (point embeddings in a box-only step) lags
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert max(steps) == 6
    with pytest.raises(InputError, match="already holds a training run"):
        train_sam(_config(coco12, out, epochs=3, **args))
    # a finished run resumed with no epochs left does nothing
    third = train_sam(_config(coco12, out, epochs=2, resume=True, **args))
    assert third["epochs"] == 0 and len(_metrics(out)) == 3


# ---------------------------------------------------------------------- errors
def test_model_and_config_errors(coco12, tiny_config_json, tiny_sam_dir, tiny_sam2_dir,
                                 tmp_path):
    with pytest.raises(ConfigError, match="exactly one of"):
        train_sam(_config(coco12, tmp_path / "a"))
    with pytest.raises(ConfigError, match="exactly one of"):
        train_sam(_config(coco12, tmp_path / "b", model=str(tiny_sam_dir),
                          from_config=str(tiny_config_json)))
    with pytest.raises(InputError, match="does not exist"):
        train_sam(_config(tmp_path / "missing.json", tmp_path / "c", model=str(tiny_sam_dir)))
    with pytest.raises(ConfigError, match="SAM 2 is not supported yet"):
        train_sam(_config(coco12, tmp_path / "d", model=str(tiny_sam2_dir)))
    with pytest.raises(ConfigError, match="batch_size"):
        train_sam(_config(coco12, tmp_path / "e", model=str(tiny_sam_dir), batch_size=0))
    with pytest.raises(ConfigError, match="point_probability"):
        train_sam(_config(coco12, tmp_path / "f", model=str(tiny_sam_dir),
                          point_probability=1.5))
    with pytest.raises(ConfigError, match="val_fraction"):
        train_sam(_config(coco12, tmp_path / "g", model=str(tiny_sam_dir), val_fraction=1.0))
    assert not (tmp_path / "d").exists()  # nothing is written before the checks pass


def test_data_without_annotations_is_refused(tiny_sam_dir, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    data = tmp_path / "empty.json"
    data.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
                         "segmentation": rle_encode(np.ones((8, 8), bool))[0]}],
        "categories": [{"id": 1, "name": "x"}],
    }))
    with pytest.raises(InputError, match="no \\(non-crowd\\) instance annotations"):
        train_sam(_config(data, tmp_path / "out", model=str(tiny_sam_dir)))


def test_sam_losses_pick_the_best_mask():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = target[0] * 20 - 10
    logits = torch.stack([-good, good, torch.zeros(8, 8)])[None]  # (1, 3, 8, 8)
    iou_pred = torch.tensor([[0.0, 1.0, 0.0]])
    loss, best = sam_losses(logits, iou_pred, target)
    assert best.tolist() == [1]
    assert float(loss) < 0.05


# ---------------------------------------------------------------------- COCO reader
def test_coco_instances_polygons_rle_and_crowd(tmp_path):
    from promptseg.data.coco import CocoInstances

    Image.fromarray(np.full((20, 30, 3), 7, np.uint8)).save(tmp_path / "img.png")
    rle_mask = np.zeros((20, 30), bool)
    rle_mask[5:10, 3:8] = True
    data = {
        "images": [{"id": 7, "file_name": "img.png", "height": 20, "width": 30},
                   {"id": 8, "file_name": "gone.png", "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "iscrowd": 0,
             "segmentation": [[10, 2, 20, 2, 20, 12, 10, 12]]},
            {"id": 2, "image_id": 7, "category_id": 3, "iscrowd": 0,
             "segmentation": rle_encode(rle_mask)[0]},
            {"id": 3, "image_id": 7, "category_id": 3, "iscrowd": 1,
             "segmentation": rle_encode(~rle_mask)[0]},
        ],
        "categories": [{"id": 2, "name": "square"}, {"id": 3, "name": "patch"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = CocoInstances(tmp_path / "ann.json")
    assert len(ds) == 2 and ds.image_ids == [7, 8]
    assert ds.categories == {2: "square", 3: "patch"}
    sample = ds[0]
    assert sample.image.shape == (20, 30, 3) and sample.image.dtype == np.uint8
    assert sample.masks.shape == (2, 20, 30) and sample.masks.dtype == bool
    assert sample.category_ids.tolist() == [2, 3]
    assert sample.annotation_ids.tolist() == [1, 2]  # the crowd annotation is skipped
    ys, xs = np.nonzero(sample.masks[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 19, 2, 11)
    np.testing.assert_array_equal(sample.masks[1], rle_mask)
    with pytest.raises(InputError, match="gone.png"):
        ds[1]
    with pytest.raises(InputError, match="does not exist"):
        CocoInstances(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable COCO JSON"):
        CocoInstances(tmp_path / "bad.json")


def test_from_config_uses_the_reference_fourier_scale(tmp_path):
    """[SAM-repo] draws the prompt/image position matrix as randn (scale 1); transformers
    draws it hidden_size // 2 wider, which leaves a model trained from scratch blind to where
    a prompt is."""
    from promptseg.train.sam import _build_from_config

    cfg = tmp_path / "config.json"
    build_tiny_sam_config().to_json_file(str(cfg))
    seg, _ = _build_from_config(cfg, torch.device("cpu"), seed=0)
    matrix = seg.model.shared_image_embedding.positional_embedding
    assert matrix is seg.model.prompt_encoder.shared_embedding.positional_embedding
    assert 0.5 < float(matrix.std()) < 1.5
    assert json.loads(cfg.read_text())["model_type"] == "sam"


# ---------------------------------------------------------------------- filter settings
def test_recommend_filters_quantile_floor_and_cap():
    from promptseg.train.sam import recommend_filters

    scores = np.linspace(0.5, 0.99, 50)  # the 10% quantile is 0.549
    rec = recommend_filters(scores, np.full(50, 0.99))
    assert rec == {"pred_iou_thresh": 0.54, "stability_score_thresh": 0.95}  # capped at SAM's
    assert recommend_filters([0.3, np.nan], [0.7])["pred_iou_thresh"] == 0.3
    empty = recommend_filters([], [])
    assert all(np.isnan(v) for v in empty.values())


def test_trained_folder_carries_its_measured_filters(trained_from_config, tiny_hf_clip_dir):
    from promptseg.models.settings import read_model_settings
    from promptseg.pipelines.slip import SlipPipeline

    out, _ = trained_from_config
    records = _metrics(out)
    best = [r for r in records[1:] if r["best"]][-1]
    settings = read_model_settings(out)
    assert np.isfinite(best["pred_iou_thresh"]), "no good validation mask: nothing to test"
    filters = settings["*"]
    assert filters["pred_iou_thresh"] == pytest.approx(best["pred_iou_thresh"])
    assert filters["stability_score_thresh"] == pytest.approx(best["stability_score_thresh"])
    assert filters["pred_iou_thresh"] < 0.88  # a tiny SAM's good masks score lower
    assert 0 <= filters["stability_score_thresh"] <= 0.95

    registry.clear_cache()
    pipe = SlipPipeline(sam=str(out), clip=str(tiny_hf_clip_dir), device="cpu")
    assert pipe.config.mask_generation.pred_iou_thresh == filters["pred_iou_thresh"]
    assert pipe.model_settings["origin"]["pred_iou_thresh"] == str(out)
    registry.clear_cache()


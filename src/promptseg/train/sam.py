"""Fine-tuning a SAM-family model on COCO instance masks: ``promptseg train sam``.

What the papers do, and what this command takes from each:

- [SAM] Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643, Sec. 3 and
  App. A "Training algorithm": prompts are sampled from ground-truth masks, a box or a point;
  an ambiguous single-point prompt predicts three masks and only the lowest-loss one is
  back-propagated; the IoU head is trained with a mean-square error against the actual IoU of
  each predicted mask. (SAM's mask loss is focal + dice at 20:1, with interactive rounds of
  correction points; we use one round and BCE + dice, below.)
  Reference: https://github.com/facebookresearch/segment-anything
- [MedSAM] Ma et al., "Segment Anything in Medical Images", Nature Communications 15, 654
  (2024), arXiv:2304.12306: box prompts from the ground truth shifted by a random 0-20 pixels
  (at 1024 px), an unweighted sum of BCE and dice, AdamW with learning rate 1e-4 and weight
  decay 0.01 (our defaults). MedSAM trains the image encoder and mask decoder and freezes the
  prompt encoder. Reference: https://github.com/bowang-lab/MedSAM
- [SAM-HQ] Ke et al., "Segment Anything in High Quality", NeurIPS 2023, arXiv:2306.01567:
  the whole pre-trained SAM stays frozen and only small decoder parts train, with BCE + dice,
  which keeps SAM's zero-shot ability. Reference: https://github.com/SysCV/sam-hq

Deviations, and why: by default the image encoder is frozen when fine-tuning (as SAM-HQ; it
holds ~95 % of the weights, and freezing it lets the image embeddings be computed once and
cached) and the prompt encoder and mask decoder both train (MedSAM freezes the prompt encoder;
it is tiny, and training it is what a new prompt distribution needs). A model built from a
configuration (random weights) trains everything. SAM-HQ models train their whole mask
decoder (SAM's and the HQ parts), not the HQ parts alone. SAM 2 is not supported yet.

Frames: every forward pass uses :class:`~promptseg.models.sam.SamSegmenter`'s own
preprocessing (``_preprocess``, ``_scale_xy``, ``_decode``), so the trained model behaves the
same in ``predict`` and automatic mask generation. The loss is computed in the model's input
frame: low-resolution logits are upsampled bilinearly to the padded square (S, S) and cropped
to the resized image, and the truth masks are resized (longest side S) into the same frame,
so the padding never counts. Validation IoU is measured at the original image size, on the
masks ``predict`` returns.

The run folder is at every moment a model folder (the best epoch by validation loss) that
``promptseg.models.load_sam(out)`` loads; see :mod:`promptseg.train.loop` for the run files
and resume.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, InputError, WeightsError
from promptseg.train import loop
from promptseg.train.config import SamTrainConfig

__all__ = ["SamTrainConfig", "train_sam", "evaluate_sam", "save_sam", "sam_losses"]

logger = logging.getLogger(__name__)

# Validation prompts are drawn with this seed (and the image's index), whatever the run's
# seed, so every epoch and every run on the same validation images scores the same prompts.
_VAL_SEED = 20230405
# Prompts decoded at once in validation (bounds the memory of full-size logits).
_VAL_CHUNK = 16
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


# ---------------------------------------------------------------------- checks and data
def _check(config: SamTrainConfig) -> None:
    if (config.model is None) == (config.from_config is None):
        raise ConfigError(
            "give exactly one of --model (fine-tune a SAM id, folder or .pth) and "
            "--from-config (random weights from a SamConfig JSON)"
        )

    def whole(name: str, low: int) -> None:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    def number(name: str, low: float, high: float = math.inf, *, open_low: bool = False) -> None:
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
        )
        if not ok:
            bound = f"> {low}" if open_low else f">= {low}"
            limit = f" and <= {high}" if math.isfinite(high) else ""
            raise ConfigError(f"{name} must be a number {bound}{limit}, got {value!r}")

    for name in ("epochs", "batch_size", "prompts_per_image"):
        whole(name, 1)
    whole("warmup_steps", 0)
    whole("seed", 0)
    if config.max_images is not None:
        whole("max_images", 1)
    number("lr", 0.0, open_low=True)
    number("weight_decay", 0.0)
    number("point_probability", 0.0, 1.0)
    number("box_jitter", 0.0, 1.0)
    for name in ("dice_weight", "bce_weight", "iou_weight"):
        number(name, 0.0)
    if config.dice_weight + config.bce_weight <= 0:
        raise ConfigError("dice_weight and bce_weight are both 0: no mask loss is left")
    if config.val_data is None and not 0.0 < float(config.val_fraction) < 1.0:
        raise ConfigError(
            f"val_fraction must be between 0 and 1 (exclusive), got {config.val_fraction!r}; "
            "or give --val-data"
        )
    if config.scheduler not in loop.SCHEDULERS:
        raise ConfigError(
            f"unknown scheduler {config.scheduler!r}: use one of {', '.join(loop.SCHEDULERS)}"
        )


def _annotated(dataset, max_images: int | None) -> np.ndarray:
    """Indices of the images (of the first ``max_images``) that have an instance."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    return np.asarray([i for i in range(n) if dataset.num_instances(i) > 0], dtype=np.int64)


def _datasets(config: SamTrainConfig):
    """``(train dataset, train indices, val dataset, val indices)``."""
    from promptseg.data.coco import CocoInstances

    train_ds = CocoInstances(config.data, config.image_root)
    train_idx = _annotated(train_ds, config.max_images)
    if len(train_idx) == 0:
        raise InputError(
            f"{config.data} has no (non-crowd) instance annotations"
            + (f" in its first {config.max_images} images" if config.max_images else "")
            + "; train sam needs instance masks"
        )
    if config.val_data is not None:
        val_ds = CocoInstances(config.val_data, config.image_root)
        val_idx = _annotated(val_ds, config.max_images)
        if len(val_idx) == 0:
            raise InputError(f"{config.val_data} has no (non-crowd) instance annotations")
        return train_ds, train_idx, val_ds, val_idx
    if len(train_idx) < 2:
        raise InputError(
            f"{config.data} has {len(train_idx)} annotated image; holding out a validation "
            "set needs at least 2 (or give --val-data)"
        )
    order = np.random.default_rng(config.seed).permutation(len(train_idx))
    n_val = min(len(train_idx) - 1, max(1, round(config.val_fraction * len(train_idx))))
    val_idx = np.sort(train_idx[order[:n_val]])
    return train_ds, np.sort(train_idx[order[n_val:]]), train_ds, val_idx


# ---------------------------------------------------------------------- the model
def _processor_files(family: str, image_size: int, low_res: int) -> dict[str, bytes]:
    """The files of a default SAM processor for ``image_size`` (ImageNet mean and std)."""
    import transformers

    processor_cls = transformers.SamHQProcessor if family == "sam_hq" else transformers.SamProcessor
    processor = processor_cls(
        image_processor=transformers.SamImageProcessor(
            size={"longest_edge": image_size},
            pad_size={"height": image_size, "width": image_size},
            mask_size={"longest_edge": low_res},
            mask_pad_size={"height": low_res, "width": low_res},
        )
    )
    with tempfile.TemporaryDirectory(prefix="promptseg-sam-proc-") as tmp:
        processor.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def _official_fourier_features_(model: torch.nn.Module) -> None:
    """Give a new model SAM's random Fourier matrix for prompt and image positions.

    [SAM-repo] ``PositionEmbeddingRandom(num_pos_feats, scale=None)`` draws it as
    ``1.0 * randn(2, num_pos_feats)``; transformers' ``SamPositionalEmbedding`` draws it with
    scale ``hidden_size // 2`` (harmless for pretrained weights, which overwrite it). At that
    scale the features of nearby pixels are unrelated, so a model trained from scratch cannot
    learn where a point or box is and answers every prompt alike. The matrix stays fixed in
    training (a buffer in the reference), and prompt encoder and model share it.
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("positional_embedding") and "shared" in name:
                param.copy_(torch.randn_like(param))


def _build_from_config(path: str | Path, device: torch.device, seed: int):
    """A SamSegmenter with random (seeded) weights, and its processor files."""
    import transformers

    from promptseg.models.sam import SamSegmenter, _preprocessing_from_folder

    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise InputError(f"--from-config {str(path)!r} does not exist; give a SamConfig JSON")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--from-config {path}: not a readable JSON file ({exc})") from exc
    model_type = data.get("model_type", "sam") if isinstance(data, dict) else None
    if model_type in ("sam2", "sam2_video"):
        raise ConfigError("fine-tuning SAM 2 is not supported yet: use a SAM or SAM-HQ config")
    classes = {"sam": ("sam", "SamConfig", "SamModel"),
               "sam_hq": ("sam_hq", "SamHQConfig", "SamHQModel")}
    if model_type not in classes:
        raise ConfigError(
            f"--from-config {path} holds model_type {model_type!r}; train sam builds 'sam' or "
            "'sam_hq' models"
        )
    family, config_name, model_name = classes[model_type]
    try:
        sam_config = getattr(transformers, config_name).from_dict(data)
    except Exception as exc:  # transformers raises many types for a bad config
        raise ConfigError(f"--from-config {path}: not a valid {config_name} ({exc})") from exc
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(sam_config).float().to(device).eval()
    model.requires_grad_(False)
    _official_fourier_features_(model)
    image_size = int(sam_config.prompt_encoder_config.image_size)
    patch = int(sam_config.prompt_encoder_config.patch_size)
    files = _processor_files(family, image_size, 4 * (image_size // patch))
    with tempfile.TemporaryDirectory(prefix="promptseg-sam-proc-") as tmp:
        for name, blob in files.items():
            (Path(tmp) / name).write_bytes(blob)
        mean, std = _preprocessing_from_folder(Path(tmp))
    seg = SamSegmenter(
        model=model, family=family, model_id=f"from_config:{path}", image_size=image_size,
        pixel_mean=mean, pixel_std=std, device=device, dtype=torch.float32,
    )
    return seg, files


def _load_pretrained(model_id: str | Path, device: torch.device):
    """A fresh (uncached) SamSegmenter for ``model_id``, and its processor files."""
    from promptseg.models import registry
    from promptseg.models.sam import SamSegmenter

    source, family, arch = registry._locate(model_id)
    if family != "sam":
        raise ConfigError(f"{model_id} is a {arch} model; train sam needs a SAM-family model")
    if arch == "sam2":
        raise ConfigError(
            f"{model_id} is a SAM 2 model: fine-tuning SAM 2 is not supported yet; use a SAM "
            "or SAM-HQ model"
        )
    seg = SamSegmenter.from_pretrained(source, device=device, dtype=torch.float32,
                                       model_id=str(model_id))
    folder = Path(source)
    files = {n: (folder / n).read_bytes() for n in _PROCESSOR_FILES if (folder / n).is_file()}
    if not files:
        files = _processor_files(seg.family, seg.image_size, seg.low_res_size)
    return seg, files


def _set_trainable(model: torch.nn.Module, train_image_encoder: bool) -> None:
    """Prompt encoder + mask decoder always, the vision encoder when asked; the random
    Fourier matrix of the position encoding stays fixed (a buffer in the reference SAM)."""
    model.requires_grad_(False)
    model.prompt_encoder.requires_grad_(True)
    model.mask_decoder.requires_grad_(True)
    if train_image_encoder:
        model.vision_encoder.requires_grad_(True)
    model.shared_image_embedding.requires_grad_(False)  # tied to the prompt encoder's copy


def _train_mode(model: torch.nn.Module, train_image_encoder: bool) -> None:
    model.eval()
    model.prompt_encoder.train()
    model.mask_decoder.train()
    if train_image_encoder:
        model.vision_encoder.train()


def save_sam(seg, out: str | Path, processor_files: dict[str, bytes]) -> Path:
    """Write ``seg``'s model (``save_pretrained``) and processor files into ``out``.

    Files are written to a hidden temporary folder inside ``out`` first and then moved in,
    so an interrupted save leaves the previous model loadable.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".saving-") as tmp:
        seg.model.save_pretrained(tmp)
        for name, blob in processor_files.items():
            (Path(tmp) / name).write_bytes(blob)
        for path in sorted(Path(tmp).iterdir()):
            if path.is_file():
                os.replace(path, out / path.name)
    return out


# ---------------------------------------------------------------------- embeddings
class _Embedder:
    """Image embeddings, with gradients when the encoder trains, else cached by key."""

    def __init__(self, seg, train_image_encoder: bool, cache: bool) -> None:
        self.seg = seg
        self.train_image_encoder = train_image_encoder
        self.cache_enabled = cache and not train_image_encoder
        self.cache: dict[Any, Any] = {}

    def _wrap(self, emb: torch.Tensor, interm: tuple, image: np.ndarray, input_size):
        from promptseg.models.sam import ImageEmbedding

        return ImageEmbedding(
            image_embeddings=emb, original_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=(int(input_size[0]), int(input_size[1])), model_id=self.seg.model_id,
            family=self.seg.family, intermediate_embeddings=interm,
        )

    def _encode(self, images: list[np.ndarray]) -> list[Any]:
        seg = self.seg
        pixels, sizes = zip(*(seg._preprocess(np.ascontiguousarray(im)) for im in images),
                            strict=True)
        out = seg.model.vision_encoder(torch.cat(pixels))
        emb = out[0]
        interm = tuple(out[1]) if seg.family == "sam_hq" else ()
        return [
            self._wrap(emb[k : k + 1], tuple(t[k : k + 1] for t in interm), im, sizes[k])
            for k, im in enumerate(images)
        ]

    def __call__(self, keys: list[Any], images: list[np.ndarray], grad: bool) -> list[Any]:
        if grad and self.train_image_encoder:
            return self._encode(images)
        result: list[Any] = [self.cache.get(k) if self.cache_enabled else None for k in keys]
        missing = [i for i, r in enumerate(result) if r is None]
        if missing:
            with torch.no_grad():
                fresh = self._encode([images[i] for i in missing])
            for i, emb in zip(missing, fresh, strict=True):
                result[i] = emb
                if self.cache_enabled:
                    self.cache[keys[i]] = emb
        return result


# ---------------------------------------------------------------------- prompts and loss
def _frame_targets(seg, masks: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    """``(N, H, W)`` bool masks -> ``(N, h, w)`` float 0/1 in the resized (unpadded) frame."""
    t = torch.from_numpy(np.ascontiguousarray(masks)).to(seg.device, torch.float32)[:, None]
    if tuple(t.shape[-2:]) != tuple(input_size):
        t = F.interpolate(t, size=input_size, mode="bilinear", align_corners=False,
                          antialias=True)
    return (t[:, 0] > 0.5).float()


def sam_losses(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-prompt loss and the chosen mask, for K masks per prompt.

    Args:
        logits: ``(P, K, h, w)`` mask logits in the input frame (padding cropped off).
        iou_pred: ``(P, K)`` the IoU head's estimates.
        target: ``(P, h, w)`` 0/1 truth in the same frame.
        weights: ``(bce, dice, iou)`` weights.

    Returns:
        ``(P,)`` losses (BCE + dice of the lowest-loss mask of each prompt, [SAM] App. A, plus
        the IoU head's squared error on all K masks) and ``(P,)`` the index of that mask.
    """
    bce_w, dice_w, iou_w = weights
    t = target[:, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean((-2, -1))
    prob = logits.sigmoid()
    inter = (prob * t).sum((-2, -1))
    dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum((-2, -1)) + t.sum((-2, -1)) + 1.0)
    mask_loss = bce_w * bce + dice_w * dice  # (P, K)
    best = mask_loss.detach().argmin(dim=1)
    chosen = mask_loss.gather(1, best[:, None])[:, 0]
    with torch.no_grad():
        hard = logits > 0
        truth = t > 0.5
        union = (hard | truth).sum((-2, -1)).clamp(min=1)
        actual = (hard & truth).sum((-2, -1)) / union
    iou_loss = ((iou_pred - actual) ** 2).mean(dim=1)
    return chosen + iou_w * iou_loss, best


def _input_frame_logits(seg, low_res: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """``(P, K, L, L)`` -> ``(P, K, h, w)``: upsampled to the padded square, padding cut off."""
    size = (seg.image_size, seg.image_size)
    up = F.interpolate(low_res.float(), size, mode="bilinear", align_corners=False)
    return up[..., : input_size[0], : input_size[1]]


def _decode(seg, emb, points: np.ndarray | None, boxes: np.ndarray | None, multimask: bool):
    """Run prompt encoder + mask decoder with gradients, prompts in original pixels."""
    xy_dtype = torch.float32 if seg.device.type == "mps" else torch.float64
    size = emb.original_size
    if points is not None:
        pts = torch.from_numpy(seg._scale_xy(points[:, None, :], size)).to(seg.device, xy_dtype)
        labels = torch.ones(pts.shape[:2], dtype=torch.int64, device=seg.device)
        return seg._decode(emb, pts, labels, None, None, len(points), multimask, False)
    scaled = seg._scale_xy(boxes.reshape(-1, 2, 2), size).reshape(-1, 4)
    box_t = torch.from_numpy(scaled).to(seg.device, xy_dtype)
    return seg._decode(emb, None, None, box_t, None, len(boxes), multimask, False)


def _sample_prompts(masks: np.ndarray, rng: np.random.Generator, k: int, point_p: float,
                    jitter: float):
    """Pick up to ``k`` instances; each gets a positive point or a jittered box.

    Returns ``(point_instances, points (P, 2) xy, box_instances, boxes (B, 4) xyxy)``.
    """
    from promptseg.result import masks_to_boxes

    h, w = masks.shape[1:]
    chosen = rng.choice(len(masks), size=min(k, len(masks)), replace=False)
    is_point = rng.random(len(chosen)) < point_p
    point_ids, box_ids = chosen[is_point], chosen[~is_point]
    points = np.zeros((len(point_ids), 2))
    for j, i in enumerate(point_ids):
        ys, xs = np.nonzero(masks[i])
        pick = rng.integers(len(xs))
        points[j] = (xs[pick], ys[pick])
    boxes = masks_to_boxes(masks[box_ids]).astype(np.float64)
    if len(boxes) and jitter > 0:
        side = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
        side = np.tile(side, 2)  # (B, 4): w, h, w, h
        boxes = boxes + rng.uniform(-jitter, jitter, size=boxes.shape) * side
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        lo = np.minimum(boxes[:, :2], boxes[:, 2:])
        hi = np.maximum(boxes[:, :2], boxes[:, 2:])
        boxes = np.concatenate([lo, hi], axis=1)
    return point_ids, points, box_ids, boxes


def _val_prompts(masks: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed validation prompts of one image: each instance's tight box and one
    positive point drawn with a fixed seed."""
    from promptseg.result import masks_to_boxes

    rng = np.random.default_rng([_VAL_SEED, int(index)])
    points = np.zeros((len(masks), 2))
    for j, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        pick = rng.integers(len(xs))
        points[j] = (xs[pick], ys[pick])
    return masks_to_boxes(masks).astype(np.float64), points


def _nonempty(masks: np.ndarray) -> np.ndarray:
    return masks[masks.reshape(len(masks), -1).any(axis=1)]


# ---------------------------------------------------------------------- evaluation
def evaluate_sam(seg, dataset, indices, embedder: _Embedder | None = None,
                 weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Validation loss and mean IoU on the fixed prompts of ``dataset[indices]``.

    Each instance is prompted once with its tight box (one mask) and once with a positive
    point drawn with a fixed seed (three masks; the IoU is that of the mask the IoU head
    ranks first, as ``predict`` users pick it; the loss that of the best one, as in
    training). IoU is measured at the original image size on the masks ``predict`` returns.

    For the automatic-mask filters it also records, for each point prompt whose first-ranked
    mask is good (IoU >= :data:`GOOD_MASK_IOU`), that mask's predicted IoU and stability score:
    :func:`recommend_filters` turns them into the thresholds that keep most good masks.

    Returns:
        ``val_loss``, ``val_iou_box``, ``val_iou_point``, ``val_iou`` (mean of all prompts),
        ``val_prompts``, and ``pred_iou_thresh`` / ``stability_score_thresh`` (the
        recommended filters; NaN when no point prompt gave a good mask).
    """
    from promptseg.stages.proposals import stability_scores

    embedder = embedder or _Embedder(seg, False, cache=False)
    losses: list[float] = []
    ious: dict[str, list[float]] = {"box": [], "point": []}
    good: dict[str, list[float]] = {"pred_iou": [], "stability": []}
    seg.model.eval()
    with torch.no_grad():
        for index in indices:
            sample = dataset[int(index)]
            masks = _nonempty(sample.masks)
            if len(masks) == 0:
                continue
            (emb,) = embedder([("val", id(dataset), int(index))], [sample.image], grad=False)
            boxes, points = _val_prompts(masks, int(index))
            truth_full = torch.from_numpy(masks).to(seg.device)
            target = _frame_targets(seg, masks, emb.input_size)
            for start in range(0, len(masks), _VAL_CHUNK):
                part = slice(start, start + _VAL_CHUNK)
                for kind in ("box", "point"):
                    multimask = kind == "point"
                    low, iou_pred = _decode(
                        seg, emb, points[part] if multimask else None,
                        None if multimask else boxes[part], multimask,
                    )
                    logits = _input_frame_logits(seg, low, emb.input_size)
                    loss, _ = sam_losses(logits, iou_pred.float(), target[part], weights)
                    losses.extend(loss.tolist())
                    pick = iou_pred.argmax(dim=1)
                    low_pick = low[torch.arange(len(pick), device=low.device), pick][:, None]
                    full = seg._upscale(low_pick.float(), emb.input_size, emb.original_size)
                    pred = full[:, 0] > 0
                    truth = truth_full[part]
                    inter = (pred & truth).sum((-2, -1)).float()
                    union = (pred | truth).sum((-2, -1)).clamp(min=1).float()
                    iou = inter / union
                    ious[kind].extend(iou.tolist())
                    if multimask:
                        ok = iou >= GOOD_MASK_IOU
                        picked_iou = iou_pred.float().gather(1, pick[:, None])[:, 0]
                        good["pred_iou"].extend(picked_iou[ok].tolist())
                        good["stability"].extend(stability_scores(full[:, 0])[ok].tolist())
    if not losses:
        raise InputError("no validation instance has a non-empty mask")
    return {
        "val_loss": float(np.mean(losses)),
        "val_iou_box": float(np.mean(ious["box"])),
        "val_iou_point": float(np.mean(ious["point"])),
        "val_iou": float(np.mean(ious["box"] + ious["point"])),
        "val_prompts": len(losses),
        **recommend_filters(good["pred_iou"], good["stability"]),
    }


#: a validation mask this close to its instance counts as good when measuring the filters
GOOD_MASK_IOU = 0.5
#: the share of good masks the recommended filters keep (each filter alone)
FILTER_KEEP = 0.9
#: SAM's own filters ([SAM-repo] automatic_mask_generator.py), the most we recommend
SAM_FILTERS = {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95}


def recommend_filters(pred_ious, stabilities, keep: float = FILTER_KEEP) -> dict[str, float]:
    """Automatic-mask filters for this model from its good validation masks' scores.

    SAM's 0.88 / 0.95 suit ViT-H on SA-1B; a smaller or briefly trained SAM predicts lower
    IoUs for its good masks, and those defaults drop nearly all of them. Each threshold is the
    ``1 - keep`` quantile of the good masks' scores (it keeps ``keep`` of them), rounded down
    to 0.01 and never above SAM's own value.

    Returns:
        ``{"pred_iou_thresh": t, "stability_score_thresh": s}``, NaN without good masks.
    """
    recommended = {}
    for name, values in (("pred_iou_thresh", pred_ious), ("stability_score_thresh", stabilities)):
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            recommended[name] = math.nan
            continue
        quantile = math.floor(float(np.quantile(values, 1.0 - keep)) * 100) / 100
        recommended[name] = max(0.0, min(SAM_FILTERS[name], quantile))
    return recommended


def _write_filter_settings(out: Path, metrics: dict[str, float], epoch: int) -> None:
    """Record the validation-measured filters in ``out``'s settings file (none if unmeasured)."""
    from promptseg.models.settings import ANY_PIPELINE, write_model_settings

    filters = {name: metrics[name] for name in SAM_FILTERS if math.isfinite(metrics[name])}
    if not filters:
        logger.warning("train sam: no good validation mask; %s gets no filter settings", out)
        return
    write_model_settings(out, {ANY_PIPELINE: filters}, source=(
        f"promptseg train sam, epoch {epoch}: the {1 - FILTER_KEEP:.0%} quantile of the "
        f"predicted IoU and stability of validation point-prompt masks with IoU >= "
        f"{GOOD_MASK_IOU}, capped at SAM's 0.88 / 0.95"))


# ---------------------------------------------------------------------- training
def _train_step(seg, embedder: _Embedder, dataset, batch: np.ndarray, rng: np.random.Generator,
                config: SamTrainConfig, weights: tuple[float, float, float]) -> torch.Tensor:
    """Mean loss over every prompt of the images in ``batch``."""
    samples, keys, images = [], [], []
    for index in batch:
        sample = dataset[int(index)]
        flip = bool(config.augment and rng.random() < 0.5)
        image, masks = sample.image, _nonempty(sample.masks)
        if flip:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        samples.append(np.ascontiguousarray(masks))
        keys.append(("train", int(index), flip))
        images.append(np.ascontiguousarray(image))
    embeddings = embedder(keys, images, grad=True)
    total: list[torch.Tensor] = []
    for masks, emb in zip(samples, embeddings, strict=True):
        if len(masks) == 0:
            continue
        point_ids, points, box_ids, boxes = _sample_prompts(
            masks, rng, config.prompts_per_image, config.point_probability, config.box_jitter
        )
        used = np.concatenate([point_ids, box_ids])
        target_all = _frame_targets(seg, masks[used], emb.input_size)
        n_points = len(point_ids)
        if n_points:
            low, iou_pred = _decode(seg, emb, points, None, True)
            logits = _input_frame_logits(seg, low, emb.input_size)
            total.append(sam_losses(logits, iou_pred, target_all[:n_points], weights)[0])
        if len(box_ids):
            low, iou_pred = _decode(seg, emb, None, boxes, False)
            logits = _input_frame_logits(seg, low, emb.input_size)
            total.append(sam_losses(logits, iou_pred, target_all[n_points:], weights)[0])
    if not total:
        raise InputError("a training batch had no instance with a non-empty mask")
    return torch.cat(total).mean()


def _batches(indices: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = indices[rng.permutation(len(indices))]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_sam(config: SamTrainConfig) -> dict[str, Any]:
    """Fine-tune (or train from a configuration) a SAM-family model; see
    :class:`SamTrainConfig`.

    Returns:
        A summary: ``out``, ``epochs`` run by this call, ``best_val_loss``, ``val_iou`` (of
        the best epoch), ``seconds``, ``trainable_params``, ``total_params``,
        ``train_images``, ``val_images``.

    Raises:
        ConfigError, InputError: bad settings or data, with a message saying what to change.
        PromptsegError: the loss stopped being finite (lower ``lr``).
    """
    with loop.quiet_library_bars():
        return _train_sam(config)


def _train_sam(config: SamTrainConfig) -> dict[str, Any]:
    from promptseg.models._device import resolve_device

    _check(config)
    device = resolve_device(config.device)
    train_ds, train_idx, val_ds, val_idx = _datasets(config)
    if config.model is not None:
        seg, processor_files = _load_pretrained(config.model, device)
    else:
        seg, processor_files = _build_from_config(config.from_config, device, config.seed)
    train_encoder = (
        config.from_config is not None if config.train_image_encoder is None
        else bool(config.train_image_encoder)
    )
    run = loop.TrainRun(config.out, asdict(config), resume=config.resume)
    state = run.load_state()
    loop.seed_everything(config.seed)
    model = seg.model
    _set_trainable(model, train_encoder)
    trainable, total = loop.count_parameters(model)
    optimizer = loop.make_optimizer(model.parameters(), config.optimizer, config.lr,
                                    config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    schedule = loop.LrSchedule(optimizer, config.scheduler,
                               total_steps=steps_per_epoch * config.epochs,
                               warmup_steps=config.warmup_steps)
    weights = (config.bce_weight, config.dice_weight, config.iou_weight)
    start_epoch, best = 1, {"val_loss": math.inf, "val_iou": math.nan}
    if state is not None:
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        saved = state["trainable"]
        if set(saved) != names:
            raise InputError(
                f"cannot resume {run.out}: the saved run trained other parts of the model "
                "(was --train-image-encoder changed?)"
            )
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in saved.items():
                params[name].copy_(value.to(params[name].device))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        loop.TrainRun.restore_rng(state)
    logger.info("train sam: %d/%d parameters train (image encoder %s), %d train / %d val images",
                trainable, total, "trains" if train_encoder else "frozen", len(train_idx),
                len(val_idx))
    embedder = _Embedder(seg, train_encoder, config.cache_embeddings)
    if state is None:  # epoch 0: where training starts from
        metrics = evaluate_sam(seg, val_ds, val_idx, embedder, weights)
        run.log({"epoch": 0, "lr": schedule.lr, **metrics})
    epochs_run = 0
    with loop.progress_bar(config.progress) as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            rng = np.random.default_rng([config.seed, epoch])

            def loss_of(batch: list[int], rng: np.random.Generator = rng) -> torch.Tensor:
                _train_mode(model, train_encoder)  # evaluation between epochs set eval mode
                return _train_step(seg, embedder, train_ds, batch, rng, config, weights)

            train_loss = loop.train_epoch(bar, epoch, config.epochs,
                                          _batches(train_idx, config.batch_size, rng), loss_of,
                                          optimizer, schedule)
            metrics = evaluate_sam(seg, val_ds, val_idx, embedder, weights)
            lr = schedule.lr
            schedule.step_epoch(metrics["val_loss"])
            improved = metrics["val_loss"] < best["val_loss"]
            if improved:
                best = {"val_loss": metrics["val_loss"], "val_iou": metrics["val_iou"]}
                save_sam(seg, run.out, processor_files)
                _write_filter_settings(run.out, metrics, epoch)
            run.log({"epoch": epoch, "train_loss": train_loss, **metrics, "lr": lr,
                     "best": improved, "seconds": time.perf_counter() - t0})
            run.save_state({
                "trainable": {n: p.detach().cpu() for n, p in model.named_parameters()
                              if p.requires_grad},
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "epoch": epoch, "best": best,
            })
            epochs_run += 1
    model.eval()
    model.requires_grad_(False)
    if not (run.out / "config.json").is_file():
        raise WeightsError(f"no epoch gave a finite validation loss; nothing saved in {run.out}")
    return {
        "out": run.out, "epochs": epochs_run, "best_val_loss": best["val_loss"],
        "val_iou": best["val_iou"], "seconds": run.elapsed(),
        "trainable_params": trainable, "total_params": total,
        "train_images": len(train_idx), "val_images": len(val_idx),
    }

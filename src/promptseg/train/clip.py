"""Contrastive fine-tuning of a CLIP model on image-caption pairs: ``promptseg train clip``.

What the two CLIP-based papers behind promptseg do before they segment:

- [SLIP] fine-tunes CLIP on a domain (Pokemon, ~10k images, 80/20 train/validation split),
  AdamW, ``ReduceLROnPlateau`` with factor 0.9 and patience 5, learning rates searched on a
  grid with 1e-4 best, projection heads of 128 or 512 ("Training", items 1-8, Table 1), and
  targets made from the ground-truth similarity of the pairs (item 5);
- [LVLM] trains a domain CLIP on chest X-ray reports with seven settings of which parts
  train: projection heads only, heads + image encoder, heads + both encoders (Table II),
  Adam, 1e-3, batch 128, 10 epochs (Table I).

Any CLIP the registry loads (transformers ``CLIPModel`` or OpenCLIP) trains here, or one
built with random weights from a configuration (``from_config``), or one built from parts: a
timm image backbone + a Hugging Face text encoder (``image_backbone`` + ``text_encoder``,
:mod:`promptseg.train.clip_parts`). The run folder is a model
folder in the format it was loaded from, so ``promptseg.models.load_clip(out)`` (and
``--clip OUT`` on the command line) use it like any other model; see
:mod:`promptseg.train.loop` for the run files and resume.

Loss: CLIP's symmetric cross-entropy over the batch's image-text similarities ([CLIP] Fig. 3).
Small domains repeat captions ("a red star" twice in a batch); with ``targets="captions"``
(the default) pairs with the same caption count as positives of each other, with equal
weight, instead of as negatives; with unique captions this is exactly CLIP's loss.
``targets="clip"`` is the plain one-positive loss.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, InputError
from promptseg.train import loop
from promptseg.train.config import TARGETS, TRAIN_PARTS, ClipTrainConfig

__all__ = ["TRAIN_PARTS", "ClipTrainConfig", "CaptionPairs", "read_captions", "train_clip"]

logger = logging.getLogger(__name__)

_IMAGE_KEYS = ("image", "file_name", "filepath", "file", "path", "filename")
_CAPTION_KEYS = ("caption", "text", "title", "label")


# ---------------------------------------------------------------------- data


@dataclass
class CaptionPairs:
    """Image-caption pairs: ``images[i]`` (a path) is described by ``captions[i]``."""

    images: list[Path]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, index: np.ndarray | list[int]) -> CaptionPairs:
        return CaptionPairs([self.images[i] for i in index], [self.captions[i] for i in index])


def read_captions(path: str | Path, image_root: str | Path | None = None) -> CaptionPairs:
    """Read image-caption pairs from a CSV, JSONL or COCO captions JSON (see
    :class:`ClipTrainConfig`). Image files are checked to exist.

    Raises:
        InputError: the file is missing, unreadable, has no pairs, lacks the image or caption
            column, or names an image that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"caption file {path} does not exist")
    root = Path(image_root) if image_root is not None else path.parent
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _read_csv(path)
        elif suffix in (".jsonl", ".ndjson"):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif suffix == ".json":
            rows = _read_coco_captions(json.loads(path.read_text()), path)
        else:
            raise InputError(
                f"caption file {path}: unknown format {suffix!r}; use .csv, .jsonl or a COCO "
                "captions .json"
            )
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"caption file {path} is not readable: {exc}") from exc
    images, captions = [], []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: record {n} is not an object with image and caption")
        image = next((row[k] for k in _IMAGE_KEYS if row.get(k)), None)
        caption = next((row[k] for k in _CAPTION_KEYS if row.get(k)), None)
        if image is None or caption is None or not str(caption).strip():
            raise InputError(
                f"{path}: record {n} lacks an image ({'/'.join(_IMAGE_KEYS)}) or a caption "
                f"({'/'.join(_CAPTION_KEYS)})"
            )
        images.append(root / str(image))
        captions.append(str(caption).strip())
    if not captions:
        raise InputError(f"caption file {path} holds no image-caption pairs")
    missing = [p for p in dict.fromkeys(images) if not p.is_file()]
    if missing:
        raise InputError(
            f"{path}: {len(missing)} image file(s) not found, e.g. {missing[0]}; image paths "
            "are relative to --image-root or else to the caption file's folder"
        )
    return CaptionPairs(images, captions)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in (reader.fieldnames or [])]
        if not any(k in fields for k in _IMAGE_KEYS) or not any(k in fields for k in _CAPTION_KEYS):
            raise InputError(
                f"{path}: the CSV header must name an image column ({'/'.join(_IMAGE_KEYS)}) and "
                f"a caption column ({'/'.join(_CAPTION_KEYS)}); found {reader.fieldnames}"
            )
        return [{k.strip().lower(): v for k, v in row.items() if k} for row in reader]


def _read_coco_captions(data: Any, path: Path) -> list[dict[str, str]]:
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise InputError(
            f"{path}: a .json caption file must be COCO captions (images, annotations)"
        )
    files = {img["id"]: img["file_name"] for img in data["images"]}
    rows = []
    for ann in data["annotations"]:
        if "caption" not in ann:
            raise InputError(f"{path}: annotation {ann.get('id')} has no caption (COCO captions)")
        if ann["image_id"] not in files:
            raise InputError(f"{path}: annotation {ann.get('id')} names unknown image_id")
        rows.append({"image": files[ann["image_id"]], "caption": ann["caption"]})
    return rows


def _split(pairs: CaptionPairs, fraction: float, seed: int) -> tuple[CaptionPairs, CaptionPairs]:
    """Hold out ``fraction`` of the images (all captions of an image stay together)."""
    unique = list(dict.fromkeys(pairs.images))
    _, val_idx = loop.holdout_split(len(unique), fraction, seed, what="image")
    val_images = {unique[i] for i in val_idx}
    val = [i for i, p in enumerate(pairs.images) if p in val_images]
    train = [i for i, p in enumerate(pairs.images) if p not in val_images]
    return pairs.subset(train), pairs.subset(val)


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 80-100% of each side at a random place (no flips, no colours)."""
    h, w = image.shape[:2]
    ch = max(1, int(round(h * rng.uniform(0.8, 1.0))))
    cw = max(1, int(round(w * rng.uniform(0.8, 1.0))))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw]


# ---------------------------------------------------------------------- model


def _load_model(config: ClipTrainConfig, workdir: Path, device: torch.device):
    """A fresh (uncached) ClipScorer to train: from the registry, or built from a config."""
    from promptseg.models.clip import ClipScorer
    from promptseg.models.registry import _locate

    parts = config.image_backbone is not None or config.text_encoder is not None
    given = (config.model is not None) + (config.from_config is not None) + parts
    if given != 1 or (parts and (config.image_backbone is None or config.text_encoder is None)):
        raise ConfigError(
            "give exactly one of --model (an id or folder), --from-config, or the pair "
            "--image-backbone and --text-encoder (a CLIP built from parts)"
        )
    if config.model is not None:
        source, family, arch = _locate(config.model)
        if family != "clip":
            raise ConfigError(f"--model {config.model} holds a {arch} model, not a CLIP")
        return ClipScorer.from_pretrained(source, device=device)
    if parts:
        from promptseg.train.clip_parts import build_clip_from_parts

        folder = build_clip_from_parts(
            workdir / "init", config.image_backbone, config.text_encoder,
            embed_dim=config.embed_dim, image_init=config.image_init,
            image_size=config.image_size, seed=config.seed,
        )
    else:
        folder = build_from_config(config.from_config, workdir / "init", config.tokenizer,
                                   seed=config.seed)
    return ClipScorer.from_pretrained(str(folder), device=device)


def build_from_config(
    config_path: str | Path, out: str | Path, tokenizer: str | Path | None = None, seed: int = 0
) -> Path:
    """Write a CLIP with random weights, built from a configuration, as a model folder.

    Args:
        config_path: a transformers ``CLIPConfig`` JSON or an OpenCLIP model configuration
            (see :class:`ClipTrainConfig`).
        out: the folder to write.
        tokenizer: transformers only: a tokenizer folder (default: the OpenAI BPE cut to the
            configuration's vocabulary).
        seed: seeds the random weights.

    Returns:
        ``out``, loadable with ``promptseg.models.load_clip``.
    """
    path = Path(config_path)
    if not path.is_file():
        raise InputError(f"--from-config {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"--from-config {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"--from-config {path} must hold a JSON object")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if data.get("model_type") == "clip":
        return _build_hf(path, out, tokenizer)
    if "model_cfg" in data or "embed_dim" in data:
        return _build_open_clip(data, out)
    raise InputError(
        f"--from-config {path} is neither a transformers CLIPConfig (model_type 'clip') nor an "
        "OpenCLIP model configuration (embed_dim, vision_cfg, text_cfg)"
    )


def _build_hf(path: Path, out: Path, tokenizer: str | Path | None) -> Path:
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    from promptseg.models.clip_tokenizer import BASE_TOKENS, build_clip_tokenizer

    data = json.loads(path.read_text())
    text_cfg = data.setdefault("text_config", {})
    vocab = int(text_cfg.get("vocab_size", 49408))
    if tokenizer is not None:
        tok = AutoTokenizer.from_pretrained(str(tokenizer))
        if len(tok) > vocab:
            raise ConfigError(
                f"the tokenizer in {tokenizer} has {len(tok)} tokens but text_config.vocab_size "
                f"is {vocab}"
            )
    else:
        if vocab < BASE_TOKENS:
            raise ConfigError(
                f"text_config.vocab_size {vocab} is below the {BASE_TOKENS} tokens the CLIP BPE "
                "needs; raise it or pass --tokenizer"
            )
        tok = build_clip_tokenizer(num_merges=min(vocab, 49408) - BASE_TOKENS)
    # the text tower pools at the end-of-text token: tell it which id that is
    for key in ("eos", "bos", "pad"):
        token_id = getattr(tok, f"{key}_token_id")
        text_cfg[f"{key}_token_id"] = int(token_id if token_id is not None else 0)
    cfg = CLIPConfig.from_dict(data)
    model = CLIPModel(cfg)
    size = int(cfg.vision_config.image_size)
    processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _build_open_clip(data: dict[str, Any], out: Path) -> Path:
    from promptseg.errors import require

    open_clip = require("open_clip", "openclip")
    from safetensors.torch import save_model

    model_cfg = data.get("model_cfg", data)
    preprocess_cfg = data.get("preprocess_cfg", {})
    try:
        model = open_clip.CLIP(**model_cfg) if "hf_model_name" not in model_cfg.get(
            "text_cfg", {}) else open_clip.CustomTextCLIP(**model_cfg)
    except Exception as exc:
        raise ConfigError(f"OpenCLIP cannot build this model configuration: {exc}") from exc
    size = model_cfg.get("vision_cfg", {}).get("image_size", 224)
    preprocess_cfg = {"size": size, "mean": list(open_clip.OPENAI_DATASET_MEAN),
                      "std": list(open_clip.OPENAI_DATASET_STD), **preprocess_cfg}
    (out / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2)
    )
    save_model(model, str(out / "open_clip_model.safetensors"))
    return out


def select_trainable(model: torch.nn.Module, family: str, parts: str) -> list[str]:
    """Turn gradients on for ``parts`` (see :class:`ClipTrainConfig`); returns their names."""
    wanted = {p.strip().lower() for p in parts.split(",") if p.strip()}
    unknown = wanted - set(TRAIN_PARTS)
    if unknown or not wanted:
        raise ConfigError(
            f"unknown --train-parts {parts!r}: use a comma list of {', '.join(TRAIN_PARTS)}"
        )
    if "all" in wanted:
        wanted = {"projection", "image", "text"}
    names = []
    for name, param in model.named_parameters():
        part = _part_of(name, family)
        param.requires_grad_(part in wanted or part == "projection")
        if param.requires_grad:
            names.append(name)
    return names


_HF_PROJECTION = ("visual_projection.", "text_projection.", "logit_scale")
_OPEN_CLIP_PROJECTION = (
    "visual.proj", "visual.head.", "visual.attnpool.c_proj.", "text_projection", "text.proj",
    "logit_scale", "logit_bias",
)


def freeze_frozen_batchnorm(model: torch.nn.Module) -> None:
    """Keep batch-norm layers whose parameters are all frozen in eval mode, so their running
    statistics stay as loaded (call after ``model.train()``): a frozen tower stays frozen."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _part_of(name: str, family: str) -> str:
    """``projection``, ``image`` or ``text`` for a parameter name of either library."""
    if family == "hf_clip":
        if name.startswith(_HF_PROJECTION):
            return "projection"
        return "image" if name.startswith("vision_model.") else "text"
    if name.startswith(_OPEN_CLIP_PROJECTION):
        return "projection"
    return "image" if name.startswith("visual.") else "text"


def save_clip(scorer, out: Path) -> None:
    """Write the model in the format it came in, so the registry loads ``out``."""
    backend = scorer._backend
    model = backend.model
    if backend.family == "hf_clip":
        model.save_pretrained(out)
        backend.image_processor.save_pretrained(out)
        backend.tokenizer.save_pretrained(out)
        return
    from safetensors.torch import save_model

    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    preprocess_cfg.setdefault("size", backend.image_size)
    preprocess_cfg.setdefault("mean", list(backend.image_mean))
    preprocess_cfg.setdefault("std", list(backend.image_std))
    (out / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": backend.model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2, default=str))
    save_model(model, str(out / "open_clip_model.safetensors"))
    from promptseg.train.clip_parts import save_text_encoder

    save_text_encoder(backend, out)  # a text encoder kept inside the folder goes along


# ---------------------------------------------------------------------- loss


def contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
    captions: list[str] | None = None,
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy ([CLIP] Fig. 3) over a batch of ``B`` pairs.

    Args:
        image_features: ``(B, D)`` (normalised here).
        text_features: ``(B, D)``.
        logit_scale: the log of the temperature's inverse (as both libraries store it).
        captions: when given, pairs with equal captions are positives of each other, with
            equal weight (rows of the target matrix sum to 1).
    """
    img = F.normalize(image_features.float(), dim=-1)
    txt = F.normalize(text_features.float(), dim=-1)
    scale = logit_scale.float().exp().clamp(max=100.0)
    logits = scale * img @ txt.T
    if captions is None:
        labels = torch.arange(len(img), device=img.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    codes = torch.tensor([ids[c] for c in captions], device=img.device)
    same = (codes[:, None] == codes[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    loss_i = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return 0.5 * (loss_i + loss_t)


def _logit_scale(model: torch.nn.Module) -> torch.Tensor:
    return model.logit_scale


# ---------------------------------------------------------------------- training


def _check(config: ClipTrainConfig) -> None:
    if config.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 2:
        raise ConfigError(f"--batch-size must be >= 2 (a contrastive loss needs negatives), "
                          f"got {config.batch_size}")
    if not 0.0 < config.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {config.val_fraction}")
    if config.targets not in TARGETS:
        raise ConfigError(f"unknown --targets {config.targets!r}: use {' or '.join(TARGETS)}")


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    # drop a last batch of one pair: it has no negatives
    return [order[i : i + batch_size] for i in range(0, n, batch_size)
            if len(order[i : i + batch_size]) > 1]


def _forward(scorer, pairs: CaptionPairs, idx: np.ndarray, cache: loop.DecodedImages,
             rng: np.random.Generator | None, targets: str) -> torch.Tensor:
    backend = scorer._backend
    images = [cache.get(pairs.images[i]) for i in idx]
    if rng is not None:
        images = [_augment(img, rng) for img in images]
    captions = [pairs.captions[i] for i in idx]
    pixels = backend.preprocess(images).to(scorer.device)
    tokens = {k: v.to(scorer.device) for k, v in backend.tokenize(captions).items()}
    image_features = backend.image_features(pixels)
    text_features = backend.text_features(tokens)
    return contrastive_loss(image_features, text_features, _logit_scale(backend.model),
                            captions if targets == "captions" else None)


@torch.no_grad()
def evaluate(scorer, pairs: CaptionPairs, batch_size: int, targets: str = "captions",
             cache: loop.DecodedImages | None = None, max_classes: int = 1000) -> dict[str, float]:
    """Validation loss (mean over batches in file order) and zero-shot accuracy: each image
    classified among the distinct captions of ``pairs`` (up to ``max_classes``)."""
    cache = cache or loop.DecodedImages()
    model = scorer._backend.model
    model.eval()
    losses = [_forward(scorer, pairs, idx, cache, None, targets).item()
              for idx in _batches(len(pairs), batch_size, None)]
    classes = list(dict.fromkeys(pairs.captions))[:max_classes]
    class_id = {c: i for i, c in enumerate(classes)}
    keep = [i for i, c in enumerate(pairs.captions) if c in class_id]
    text = scorer._backend
    feats = []
    for start in range(0, len(classes), 256):
        tokens = {k: v.to(scorer.device)
                  for k, v in text.tokenize(classes[start : start + 256]).items()}
        feats.append(F.normalize(text.text_features(tokens).float(), dim=-1))
    text_features = torch.cat(feats)
    correct = 0
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size]
        pixels = text.preprocess([cache.get(pairs.images[i]) for i in idx]).to(scorer.device)
        img = F.normalize(text.image_features(pixels).float(), dim=-1)
        pred = (img @ text_features.T).argmax(1).cpu().numpy()
        truth = np.array([class_id[pairs.captions[i]] for i in idx])
        correct += int((pred == truth).sum())
    return {
        "val_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_accuracy": correct / max(1, len(keep)),
        "val_classes": len(classes),
    }


def train_clip(config: ClipTrainConfig) -> dict[str, Any]:
    """Run contrastive training as configured; see :class:`ClipTrainConfig`.

    Returns:
        A summary: ``out``, ``epochs`` run, ``best_val_loss``, ``best_val_accuracy``,
        ``seconds``, ``trainable_params``, ``total_params``, ``train_pairs``, ``val_pairs``.

    Raises:
        ConfigError, InputError: bad settings or data, with a message saying what to change.
    """
    with loop.quiet_library_bars():
        return _train_clip(config)


def _train_clip(config: ClipTrainConfig) -> dict[str, Any]:
    from promptseg.models._device import resolve_device

    _check(config)
    device = resolve_device(config.device)
    pairs = read_captions(config.data, config.image_root)  # bad data: nothing written
    run = loop.TrainRun(config.out, asdict(config), resume=config.resume)
    loop.seed_everything(config.seed)
    if config.val_data:
        train_pairs, val_pairs = pairs, read_captions(config.val_data, config.image_root)
    else:
        train_pairs, val_pairs = _split(pairs, config.val_fraction, config.seed)
    if config.max_samples is not None:
        train_pairs = train_pairs.subset(range(min(len(train_pairs), config.max_samples)))
    if len(train_pairs) < 2:
        raise InputError("training needs at least 2 image-caption pairs")

    state = run.load_state()
    with tempfile.TemporaryDirectory(prefix="promptseg-clip-") as tmp:
        if state is not None:  # the run folder holds the model it was saved as
            from promptseg.models.clip import ClipScorer

            scorer = ClipScorer.from_pretrained(str(_saved_source(run.out)), device=device)
        else:
            scorer = _load_model(config, Path(tmp), device)
    model = scorer._backend.model
    model.float()
    select_trainable(model, scorer.family, config.train_parts)
    trainable, total = loop.count_parameters(model)
    optimizer = loop.make_optimizer(model.parameters(), config.optimizer, config.lr,
                                    config.weight_decay)
    steps_per_epoch = len(_batches(len(train_pairs), config.batch_size, None))
    schedule = loop.LrSchedule(
        optimizer, config.scheduler, total_steps=steps_per_epoch * config.epochs,
        warmup_steps=config.warmup_steps, factor=config.plateau_factor,
        patience=config.plateau_patience,
    )
    start_epoch, best = 1, {"val_loss": math.inf, "val_accuracy": 0.0}
    if state is not None:
        start_epoch, best = run.restore(state, model, optimizer, schedule)
    logger.info("train clip: %d/%d parameters train, %d train / %d val pairs",
                trainable, total, len(train_pairs), len(val_pairs))
    cache = loop.DecodedImages()
    rng = np.random.default_rng([config.seed, start_epoch])
    epochs_run = 0
    if state is None:  # epoch 0: where training starts from
        metrics = evaluate(scorer, val_pairs, config.batch_size, config.targets, cache)
        run.log({"epoch": 0, "lr": schedule.lr, **metrics})
    with loop.progress_bar(config.progress) as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            freeze_frozen_batchnorm(model)
            train_loss = loop.train_epoch(
                bar, epoch, config.epochs, _batches(len(train_pairs), config.batch_size, rng),
                lambda idx: _forward(scorer, train_pairs, idx, cache,
                                     rng if config.augment else None, config.targets),
                optimizer, schedule,
            )
            metrics = evaluate(scorer, val_pairs, config.batch_size, config.targets, cache)
            lr = schedule.lr
            schedule.step_epoch(metrics["val_loss"])
            improved = metrics["val_loss"] < best["val_loss"]
            if improved:
                best = {"val_loss": metrics["val_loss"], "val_accuracy": metrics["val_accuracy"]}
                model.eval()
                save_clip(scorer, run.out)
            record = {"epoch": epoch, "train_loss": train_loss, **metrics, "lr": lr,
                      "best": improved, "seconds": time.perf_counter() - t0}
            run.log(record)
            run.save_state({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict(), "epoch": epoch, "best": best})
            epochs_run += 1
    model.eval()
    model.requires_grad_(False)
    return {
        "out": run.out, "epochs": epochs_run, "best_val_loss": best["val_loss"],
        "best_val_accuracy": best["val_accuracy"], "seconds": run.elapsed(),
        "trainable_params": trainable, "total_params": total,
        "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
    }


def _saved_source(out: Path) -> Path:
    """The model saved in a run folder (the best epoch so far), for resuming."""
    if (out / "config.json").is_file() or (out / "open_clip_config.json").is_file():
        return out
    raise InputError(f"cannot resume: {out} has a training state but no saved model")

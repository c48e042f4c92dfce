"""Autoencoder pretraining of a CLIP image backbone on domain images:
``promptseg train autoencoder``.

[LVLM] (Sec. III-B, Table I, Fig. 2) pretrains the image encoder of its domain CLIP as an
autoencoder on chest X-rays before contrastive training, from scratch ("FS") or from ImageNet
weights ("FP"): MSE loss, Adam, learning rate 1e-3, batch 128, 10 epochs (the defaults of
:class:`~promptseg.train.config.AutoencoderTrainConfig`). The paper does not describe its
decoder; here it is a small stack of (2x nearest upsampling, 3x3 convolution, group norm,
ReLU) stages from the backbone's last feature map back to the input size, trained on
normalised pixels (the mean and std the CLIP will use).

The run folder holds ``encoder.safetensors``: the timm backbone without its classifier, with
the parameter names OpenCLIP's ``TimmModel`` uses under ``visual.trunk``, so
``build_clip_from_parts(..., image_init=OUT)`` and ``promptseg train clip --image-init OUT``
start from it; ``autoencoder_config.json`` records the backbone, image size, mean and std.
The best epoch by validation MSE is kept; see :mod:`promptseg.train.loop` for the run files
and resume.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from promptseg.errors import ConfigError, InputError
from promptseg.train import loop
from promptseg.train.clip_parts import (
    AUTOENCODER_CONFIG,
    AUTOENCODER_WEIGHTS,
    _default_mean_std,
    probe_image_size,
    timm_trunk,
)
from promptseg.train.config import AutoencoderTrainConfig

__all__ = ["AutoencoderTrainConfig", "ImageAutoencoder", "read_image_list", "train_autoencoder"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DECODER_WEIGHTS = "decoder.safetensors"


# ---------------------------------------------------------------------- model


class ImageAutoencoder(nn.Module):
    """A timm backbone (``encoder``) and a convolutional upsampling ``decoder``.

    Args:
        backbone: a timm architecture.
        image_size: side of the square images to reconstruct.
        init: ``"scratch"`` or ``"imagenet"`` for the encoder.

    ``forward`` maps ``(B, 3, S, S)`` normalised pixels to their reconstruction, same shape.
    """

    def __init__(self, backbone: str, image_size: int, init: str = "scratch") -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.encoder = timm_trunk(backbone, init)
        features = probe_image_size(self.encoder.forward_features, self.encoder, backbone,
                                    image_size, flag="--image-size")
        self._layout = _layout(features, self.encoder)
        channels, side = _to_map(features, self._layout, self.encoder).shape[1:3]
        self.decoder = _decoder(int(channels), int(side), self.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = _to_map(self.encoder.forward_features(pixels), self._layout, self.encoder)
        out = self.decoder(features)
        if out.shape[-1] != self.image_size:
            out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear",
                                align_corners=False)
        return out


def _layout(features: torch.Tensor, trunk: nn.Module) -> str:
    """``nchw``, ``nhwc`` (Swin) or ``tokens`` (ViT) for a backbone's ``forward_features``."""
    channels = int(getattr(trunk, "num_features", 0) or 0)
    if features.ndim == 4:
        if features.shape[1] == channels or features.shape[-1] != channels:
            return "nchw"
        return "nhwc"
    if features.ndim == 3:
        return "tokens"
    raise ConfigError(
        f"the backbone's features have shape {tuple(features.shape)}; the autoencoder needs a "
        "feature map or patch tokens"
    )


def _to_map(features: torch.Tensor, layout: str, trunk: nn.Module) -> torch.Tensor:
    if layout == "nchw":
        return features
    if layout == "nhwc":
        return features.permute(0, 3, 1, 2)
    tokens = features[:, int(getattr(trunk, "num_prefix_tokens", 0) or 0):]
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise ConfigError(f"{tokens.shape[1]} patch tokens do not form a square grid")
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)


def _decoder(channels: int, side: int, image_size: int) -> nn.Sequential:
    """From a ``(channels, side, side)`` map to ``(3, image_size, image_size)``."""
    width = min(256, channels)
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 1)]
    stages = max(0, math.ceil(math.log2(max(1.0, image_size / max(1, side)))))
    for _ in range(stages):
        out = max(16, width // 2)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                   nn.Conv2d(width, out, 3, padding=1), nn.GroupNorm(1, out), nn.ReLU()]
        width = out
    layers.append(nn.Conv2d(width, 3, 3, padding=1))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------- data


def read_image_list(data: str | Path, image_root: str | Path | None = None) -> list[Path]:
    """The distinct images of a folder, a caption file or a COCO instances JSON (see
    :class:`AutoencoderTrainConfig`), checked to exist.

    Raises:
        InputError: nothing found, an unreadable file, or a named image that does not exist.
    """
    from promptseg.train.clip import read_captions

    path = Path(data)
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return images
    if not path.is_file():
        raise InputError(f"--data {path} is neither a folder of images nor a file")
    if path.suffix.lower() == ".json":
        try:
            coco = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not readable JSON: {exc}") from exc
        anns = coco.get("annotations", []) if isinstance(coco, dict) else []
        if isinstance(coco, dict) and "images" in coco and not any(
                isinstance(a, dict) and "caption" in a for a in anns):
            root = Path(image_root) if image_root is not None else path.parent
            images = list(dict.fromkeys(root / str(img["file_name"]) for img in coco["images"]))
            if not images:
                raise InputError(f"{path} lists no images")
            missing = [p for p in images if not p.is_file()]
            if missing:
                raise InputError(
                    f"{path}: {len(missing)} image file(s) not found, e.g. {missing[0]}; paths "
                    "are relative to --image-root or else to the JSON's folder"
                )
            return images
    return list(dict.fromkeys(read_captions(path, image_root).images))


class _Pixels:
    """Normalised pixel batches of images resized to ``size`` x ``size`` (decoded once)."""

    def __init__(self, size: int, mean, std, budget_bytes: int = 4 << 30) -> None:
        self.images = loop.DecodedImages(budget_bytes, size=size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def batch(self, paths: list[Path]) -> torch.Tensor:
        """``(B, 3, S, S)`` float32 pixels, normalised with ``mean`` and ``std``."""
        array = np.stack([self.images.get(p) for p in paths])
        pixels = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0
        return (pixels - self.mean) / self.std


# ---------------------------------------------------------------------- training


def _check(config: AutoencoderTrainConfig) -> None:
    if config.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 2:
        raise ConfigError(f"--batch-size must be >= 2 (batch norm needs it), got "
                          f"{config.batch_size}")
    if config.image_size < 16:
        raise ConfigError(f"--image-size must be >= 16, got {config.image_size}")
    if not 0.0 < config.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {config.val_fraction}")


def _split(images: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    train, val = loop.holdout_split(len(images), fraction, seed, what="image", min_train=2)
    return [images[i] for i in train], [images[i] for i in val]


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    # a last batch of one image breaks batch norm in training mode: drop it
    return [order[i : i + batch_size] for i in range(0, n, batch_size)
            if len(order[i : i + batch_size]) > 1 or rng is None]


@torch.no_grad()
def evaluate(model: ImageAutoencoder, images: list[Path], pixels: _Pixels, batch_size: int,
             device: torch.device) -> float:
    """Mean squared error per pixel and channel over ``images`` (normalised pixels)."""
    model.eval()
    total, count = 0.0, 0
    for idx in _batches(len(images), batch_size, None):
        x = pixels.batch([images[i] for i in idx]).to(device)
        total += float(F.mse_loss(model(x), x, reduction="sum"))
        count += x.numel()
    return total / max(1, count)


def _save(model: ImageAutoencoder, out: Path, config: AutoencoderTrainConfig, mean, std,
          epoch: int, val_loss: float) -> None:
    from safetensors.torch import save_file

    def tensors(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}

    save_file(tensors(model.encoder), str(out / AUTOENCODER_WEIGHTS))
    save_file(tensors(model.decoder), str(out / DECODER_WEIGHTS))
    (out / AUTOENCODER_CONFIG).write_text(json.dumps({
        "backbone": config.backbone, "image_size": config.image_size, "mean": list(mean),
        "std": list(std), "image_init": config.image_init, "epoch": epoch,
        "val_loss": val_loss}, indent=2) + "\n")


def train_autoencoder(config: AutoencoderTrainConfig) -> dict[str, Any]:
    """Train an image autoencoder as configured; see :class:`AutoencoderTrainConfig`.

    Returns:
        A summary: ``out``, ``epochs`` run, ``best_val_loss`` (MSE), ``seconds``,
        ``trainable_params``, ``total_params``, ``train_images``, ``val_images``.

    Raises:
        ConfigError, InputError, UnknownModelError, WeightsError: bad settings, data or
            backbone, with a message saying what to change.
    """
    with loop.quiet_library_bars():
        return _train_autoencoder(config)


def _train_autoencoder(config: AutoencoderTrainConfig) -> dict[str, Any]:
    from promptseg.models._device import resolve_device

    _check(config)
    device = resolve_device(config.device)
    run = loop.TrainRun(config.out, asdict(config), resume=config.resume)
    loop.seed_everything(config.seed)
    images = read_image_list(config.data, config.image_root)
    if config.max_images is not None:
        images = images[: config.max_images]
    train_images, val_images = _split(images, config.val_fraction, config.seed)

    state = run.load_state()
    # a resumed run takes its weights from the state: no ImageNet download again
    init = "scratch" if state is not None else config.image_init
    model = ImageAutoencoder(config.backbone, config.image_size, init).to(device)
    mean, std = _default_mean_std(model.encoder)
    pixels = _Pixels(config.image_size, mean, std)
    trainable, total = loop.count_parameters(model)
    optimizer = loop.make_optimizer(model.parameters(), config.optimizer, config.lr,
                                    config.weight_decay)
    start_epoch, best = 1, math.inf
    if state is not None:
        start_epoch, best = run.restore(state, model, optimizer)
    logger.info("train autoencoder: %s, %d parameters, %d train / %d val images",
                config.backbone, total, len(train_images), len(val_images))
    rng = np.random.default_rng([config.seed, start_epoch])
    epochs_run = 0
    if state is None:  # epoch 0: where training starts from
        run.log({"epoch": 0, "val_loss": evaluate(model, val_images, pixels, config.batch_size,
                                                  device)})
    with loop.progress_bar(config.progress) as bar:
        for epoch in range(start_epoch, config.epochs + 1):
            t0 = time.perf_counter()
            model.train()

            def loss_of(idx: np.ndarray) -> torch.Tensor:
                x = pixels.batch([train_images[i] for i in idx]).to(device)
                return F.mse_loss(model(x), x)

            train_loss = loop.train_epoch(bar, epoch, config.epochs,
                                          _batches(len(train_images), config.batch_size, rng),
                                          loss_of, optimizer)
            val_loss = evaluate(model, val_images, pixels, config.batch_size, device)
            improved = val_loss < best
            if improved:
                best = val_loss
                _save(model, run.out, config, mean, std, epoch, val_loss)
            run.log({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                     "lr": float(optimizer.param_groups[0]["lr"]), "best": improved,
                     "seconds": time.perf_counter() - t0})
            run.save_state({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch, "best": best})
            epochs_run += 1
    model.eval()
    return {
        "out": run.out, "epochs": epochs_run, "best_val_loss": best, "seconds": run.elapsed(),
        "trainable_params": trainable, "total_params": total,
        "train_images": len(train_images), "val_images": len(val_images),
    }

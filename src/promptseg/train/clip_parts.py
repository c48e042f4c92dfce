"""A CLIP built from parts: any timm image backbone + a Hugging Face text encoder, each with a
projection head into a joint space, as both CLIP-based papers behind promptseg train one.

- [SLIP] "Training" items 3-4: ResNet-50 image embeddings and DistilBERT text embeddings,
  each projected by a projection head into a common space of 128 or 512 dimensions (Table 1:
  128 was best); both encoders start pretrained.
- [LVLM] Sec. III, Tables I-II: Swin-T or ResNet-50 image encoders, from scratch ("FS"),
  from ImageNet ("FP"), or pretrained on the domain's images as an autoencoder first
  (``promptseg train autoencoder``; :mod:`promptseg.train.autoencoder`).

The result is an OpenCLIP model folder (``open_clip_config.json`` +
``open_clip_model.safetensors``) with ``vision_cfg.timm_model_name`` and
``text_cfg.hf_model_name``, which ``promptseg.models.load_clip`` loads offline. The text
encoder's configuration and tokenizer are copied into ``text_encoder/`` inside the folder
(``hf_model_name: "text_encoder"``, resolved against the folder when it loads), so the folder
is self-contained and can be moved; every weight, the text encoder's included, is in
``open_clip_model.safetensors``.

Deviations: the projection heads are OpenCLIP's two-layer MLPs (``timm_proj``/``hf_proj_type``
``"mlp"``) rather than the residual head with layer norm of the reference notebook SLIP
follows; DistilBERT and BERT pool the ``[CLS]`` token's last hidden state, other text
encoders average their tokens. Building DistilBERT text towers needs a small compatibility
shim around OpenCLIP (:mod:`promptseg.models._open_clip_compat`).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import torch

from promptseg.errors import ConfigError, InputError, UnknownModelError, WeightsError, require

__all__ = [
    "IMAGE_INITS", "TEXT_SUBDIR", "build_clip_from_parts", "save_text_encoder", "timm_trunk",
]

IMAGE_INITS = ("scratch", "imagenet")  # or a folder written by ``train autoencoder``
TEXT_SUBDIR = "text_encoder"
AUTOENCODER_CONFIG = "autoencoder_config.json"
AUTOENCODER_WEIGHTS = "encoder.safetensors"

_CLS_POOLED = ("distilbert", "bert")  # pool the [CLS] token; other encoders: mean of tokens
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip_from_parts(
    out: str | Path,
    image_backbone: str = "resnet50",
    text_encoder: str = "distilbert-base-uncased",
    embed_dim: int = 128,
    image_init: str = "scratch",
    image_size: int = 224,
    context_length: int = 77,
    seed: int = 0,
) -> Path:
    """Write a CLIP made of a timm image backbone and a Hugging Face text encoder.

    Args:
        out: the model folder to write (created; files in it are overwritten).
        image_backbone: a timm architecture (``resnet50``, ``swin_tiny_patch4_window7_224``,
            ``vit_small_patch16_224``, ...). Its classifier is removed; its pooled features go
            through a projection head (an MLP) to ``embed_dim``.
        text_encoder: a folder holding a transformers text model's ``config.json`` and
            tokenizer (and weights, when it has been trained), or a Hugging Face id already in
            the local cache (nothing is downloaded). DistilBERT, BERT, RoBERTa, XLM-RoBERTa,
            MT5 and M2M-100 encoders are supported. Its weights are used when the folder has
            them ([SLIP]: pretrained DistilBERT), else it starts random.
        embed_dim: size of the joint embedding space ([SLIP] Table 1: 128 or 512).
        image_init: ``"scratch"`` (random), ``"imagenet"`` (timm's pretrained weights, from
            the Hugging Face cache or a download), or a folder written by
            ``promptseg train autoencoder`` for the same backbone ([LVLM] Table II).
        image_size: side of the square input images ([SLIP] and [LVLM]: 224).
        context_length: text tokens per prompt (at most the text encoder's
            ``max_position_embeddings``).
        seed: seeds the random weights (heads and any part that starts from scratch).

    Returns:
        ``out``, a folder that ``promptseg.models.load_clip`` loads.

    Raises:
        UnknownModelError: an unknown timm architecture, or a text encoder that is neither a
            folder nor in the Hugging Face cache.
        WeightsError: unreadable text encoder files, ImageNet weights that cannot be loaded
            (offline), or autoencoder weights that do not fit the backbone.
        ConfigError: bad sizes, an unsupported text model type, or an autoencoder trained
            with another backbone.
    """
    open_clip = require("open_clip", "openclip")
    require("timm", "openclip")
    from safetensors.torch import save_model

    from promptseg.models._open_clip_compat import hf_text_towers

    if embed_dim < 1 or image_size < 1 or context_length < 2:
        raise ConfigError(
            f"embed_dim, image_size and context_length must be positive (context_length >= 2), "
            f"got {embed_dim}, {image_size}, {context_length}"
        )
    _check_timm_name(image_backbone)
    init_folder = _image_init_folder(image_init, image_backbone)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = _resolve_text_encoder(text_encoder)
    text_config, has_weights = _copy_text_encoder(source, out / TEXT_SUBDIR)
    context_length = min(int(context_length), int(text_config.max_position_embeddings))
    model_type = text_config.model_type
    model_cfg: dict[str, Any] = {
        "embed_dim": int(embed_dim),
        "vision_cfg": {
            "timm_model_name": image_backbone,
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "mlp",
            "image_size": int(image_size),
        },
        "text_cfg": {
            "hf_model_name": TEXT_SUBDIR,
            "hf_tokenizer_name": TEXT_SUBDIR,
            "hf_model_pretrained": False,
            "hf_proj_type": "mlp",
            "hf_pooler_type": ("cls_last_hidden_state_pooler" if model_type in _CLS_POOLED
                               else "mean_pooler"),
            "context_length": context_length,
        },
    }
    build_cfg = json.loads(json.dumps(model_cfg))
    build_cfg["text_cfg"]["hf_model_name"] = str((out / TEXT_SUBDIR).resolve())
    torch.manual_seed(seed)
    with hf_text_towers():
        try:
            model = open_clip.CustomTextCLIP(**build_cfg)
        except Exception as exc:
            raise ConfigError(
                f"OpenCLIP cannot build {image_backbone} + {model_type} text: {exc}"
            ) from exc
        if has_weights:
            _load_text_weights(model, source)
    mean, std = _default_mean_std(model.visual.trunk)
    if image_init == "imagenet":
        trunk = timm_trunk(image_backbone, "imagenet")
        _load_trunk(model, trunk.state_dict(), f"timm's ImageNet weights of {image_backbone}")
        mean, std = _default_mean_std(trunk)
    elif init_folder is not None:
        ae = _read_autoencoder_config(init_folder)
        _load_trunk(model, _read_encoder(init_folder), f"the autoencoder in {init_folder}")
        mean, std = tuple(ae["mean"]), tuple(ae["std"])
    _check_image_size(model, image_backbone, image_size)
    preprocess_cfg = {"size": int(image_size), "mean": list(mean), "std": list(std)}
    (out / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2)
    )
    save_model(model, str(out / "open_clip_model.safetensors"))
    return out


# ---------------------------------------------------------------------- image tower


def timm_trunk(name: str, init: str = "scratch") -> torch.nn.Module:
    """A timm backbone without its classifier, exactly as OpenCLIP's ``TimmModel`` holds it
    under ``visual.trunk`` (so its ``state_dict`` loads there).

    Args:
        name: a timm architecture.
        init: ``"scratch"`` or ``"imagenet"`` (timm's pretrained weights).

    Raises:
        UnknownModelError: ``name`` is not a timm architecture.
        WeightsError: the ImageNet weights cannot be loaded (offline and not cached).
    """
    timm = require("timm", "openclip")
    _check_timm_name(name)
    if init not in IMAGE_INITS:
        raise ConfigError(f"unknown image init {init!r}: use {' or '.join(IMAGE_INITS)}")
    try:
        trunk = timm.create_model(name, pretrained=init == "imagenet")
    except Exception as exc:
        if init != "imagenet":
            raise ConfigError(f"timm cannot build {name}: {exc}") from exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"the timm ImageNet weights for {name} could not be loaded ({reason[:200]}). Run "
            "once with network access so timm stores them in the Hugging Face cache (HF_HOME), "
            "or start from 'scratch', or from a folder written by `promptseg train "
            "autoencoder`"
        ) from exc
    trunk.reset_classifier(0, global_pool="avg")
    return trunk


def _check_timm_name(name: str) -> None:
    timm = require("timm", "openclip")
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"{name!r} is not a timm architecture.{hint} timm.list_models() lists them"
        )


def _default_mean_std(trunk: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(trunk, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        return _OPENAI_MEAN, _OPENAI_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _image_init_folder(image_init: str, backbone: str) -> Path | None:
    """``None`` for the named inits, else the autoencoder folder (checked)."""
    if image_init in IMAGE_INITS:
        return None
    folder = Path(str(image_init)).expanduser()
    if not folder.is_dir():
        raise InputError(
            f"image_init {image_init!r} must be 'scratch', 'imagenet' or a folder written by "
            "`promptseg train autoencoder`"
        )
    ae = _read_autoencoder_config(folder)
    if ae.get("backbone") != backbone:
        raise ConfigError(
            f"the autoencoder in {folder} was trained with a {ae.get('backbone')!r} encoder, "
            f"but the CLIP's image backbone is {backbone!r}; use the same backbone"
        )
    return folder


def _read_autoencoder_config(folder: Path) -> dict[str, Any]:
    path = folder / AUTOENCODER_CONFIG
    if not path.is_file() or not (folder / AUTOENCODER_WEIGHTS).is_file():
        raise InputError(
            f"{folder} is not an autoencoder folder: expected {AUTOENCODER_CONFIG} and "
            f"{AUTOENCODER_WEIGHTS}, as `promptseg train autoencoder` writes them"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not {"backbone", "mean", "std"} <= set(data):
        raise WeightsError(f"{path} lacks backbone, mean or std")
    return data


def _read_encoder(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / AUTOENCODER_WEIGHTS))
    except Exception as exc:
        raise WeightsError(f"{folder / AUTOENCODER_WEIGHTS} is unreadable: {exc}") from exc


def _load_trunk(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.visual.trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise WeightsError(
            f"{what} do not fit the CLIP's image backbone: {' '.join(first)[:300]}"
        ) from exc


def probe_image_size(forward, trunk: torch.nn.Module, backbone: str, image_size: int,
                     flag: str = "image_size") -> torch.Tensor:
    """Run ``forward`` on one black image in eval mode, without gradients, and return its
    output; fixed-size backbones (ViT, Swin) reject other sizes with a ConfigError that names
    the size the backbone takes and the ``flag`` to change."""
    was_training = trunk.training
    trunk.eval()
    try:
        with torch.no_grad():
            return forward(torch.zeros(1, 3, image_size, image_size))
    except Exception as exc:
        native = (getattr(trunk, "pretrained_cfg", None) or {}).get("input_size")
        hint = f"; it takes {native[-1]}-pixel images" if native else ""
        raise ConfigError(
            f"timm {backbone} cannot take {image_size}x{image_size} images ({exc}){hint}: "
            f"change {flag}"
        ) from exc
    finally:
        trunk.train(was_training)


def _check_image_size(model: torch.nn.Module, backbone: str, image_size: int) -> None:
    """One forward pass: fixed-size backbones (ViT, Swin) reject other sizes."""
    probe_image_size(model.visual, model.visual.trunk, backbone, image_size)


# ---------------------------------------------------------------------- text tower


def _resolve_text_encoder(text_encoder: str | Path) -> Path:
    """A local folder, or the cached snapshot of a Hugging Face id (never a download)."""
    folder = Path(str(text_encoder)).expanduser()
    if folder.is_dir():
        return folder
    name = str(text_encoder)
    if folder.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise UnknownModelError(f"text encoder {name!r} is not a folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:
        raise UnknownModelError(
            f"text encoder {name!r} is neither a local folder nor in the Hugging Face cache. "
            f"Download it once (`hf download {name}`, with network access) or pass a folder "
            "holding its config.json, tokenizer and weights (model.save_pretrained + "
            "tokenizer.save_pretrained)"
        ) from exc


def _copy_text_encoder(source: Path, dest: Path) -> tuple[Any, bool]:
    """Write ``source``'s configuration and tokenizer to ``dest``; returns the configuration
    and whether ``source`` holds weights."""
    from transformers import AutoConfig, AutoTokenizer

    from promptseg.models._open_clip_compat import hf_text_towers

    try:
        config = AutoConfig.from_pretrained(str(source))
    except Exception as exc:
        raise WeightsError(f"{source} has no readable transformers config.json: {exc}") from exc
    with hf_text_towers():
        from open_clip.hf_configs import arch_dict

        supported = sorted(arch_dict)
    if config.model_type not in supported:
        raise ConfigError(
            f"text encoder {source} is a {config.model_type!r} model; OpenCLIP text towers "
            f"support {', '.join(supported)}"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except Exception as exc:
        raise WeightsError(f"{source} has no readable tokenizer: {exc}") from exc
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"the tokenizer in {source} has no padding token")
    # OpenCLIP's text tower masks the positions holding config.pad_token_id
    config.pad_token_id = int(tokenizer.pad_token_id)
    dest.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    has_weights = any((source / name).is_file() for name in (
        "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
        "pytorch_model.bin.index.json"))
    return config, has_weights


def _load_text_weights(model: torch.nn.Module, source: Path) -> None:
    from promptseg.models._open_clip_compat import CompatAutoModel
    from promptseg.train.loop import quiet_library_bars

    encoder_decoder = bool(getattr(model.text.config, "is_encoder_decoder", False))
    try:  # as OpenCLIP's HFTextEncoder loads it (the encoder of encoder-decoder models)
        with quiet_library_bars():
            if encoder_decoder:
                pretrained = CompatAutoModel.from_pretrained(str(source)).encoder
            else:
                pretrained = CompatAutoModel.from_pretrained(str(source), add_pooling_layer=False)
    except Exception as exc:
        raise WeightsError(f"could not load the text encoder weights in {source}: {exc}") from exc
    result = model.text.transformer.load_state_dict(pretrained.state_dict(), strict=False)
    if result.missing_keys:
        raise WeightsError(
            f"the text encoder weights in {source} lack {len(result.missing_keys)} tensors of "
            f"the model, e.g. {result.missing_keys[0]}"
        )


def save_text_encoder(backend: Any, out: Path) -> None:
    """Write the text encoder's configuration and tokenizer into ``out`` again when the model
    was loaded with them inside its folder (so a trained copy stays self-contained)."""
    subdir = getattr(backend, "text_encoder_subdir", None)
    if not subdir:
        return
    dest = Path(out) / subdir
    dest.mkdir(parents=True, exist_ok=True)
    backend.model.text.config.save_pretrained(str(dest))
    backend.tokenizer.tokenizer.save_pretrained(str(dest))

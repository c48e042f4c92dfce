"""CLIP image and text embeddings behind one wrapper, for transformers and OpenCLIP weights.

[CLIP] Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021, arXiv:2103.00020 (https://github.com/openai/CLIP). Two
implementations of it load here:

- transformers ``CLIPModel`` (``model_type: "clip"`` in ``config.json``), with the processor
  and tokenizer saved beside it (https://github.com/huggingface/transformers);
- OpenCLIP (Ilharco et al., https://github.com/mlfoundations/open_clip): a built-in
  architecture with a pretrained tag (``"open_clip:ViT-B-16/laion400m_e32"``) or a folder with
  ``open_clip_config.json`` + ``open_clip_model.safetensors`` (as open_clip's
  ``"local-dir:"`` form and its hub repositories store them).

Each keeps its own preprocessing (resize, crop, mean and std come with the weights), so an
embedding equals what the library itself computes: ``CLIPModel.get_image_features`` /
``get_text_features`` (their ``pooler_output``) or OpenCLIP's ``encode_image`` /
``encode_text``, L2-normalised. OpenCLIP pretrained tags trained with QuickGELU get it even
when the architecture name lacks ``-quickgelu`` (open_clip#771: a silent mismatch there skewed
published results).

Conventions (the package-wide ones): images are ``(H, W, 3) uint8`` RGB arrays of any size;
embeddings are ``float32`` rows of unit L2 norm on the model's device, computed under
``torch.inference_mode`` (no gradients; CAM methods that need them use ``ClipScorer.model``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import (
    ConfigError,
    InputError,
    UnknownModelError,
    WeightsError,
    require,
)
from promptseg.image import check_rgb_image
from promptseg.models._device import resolve_device, resolve_dtype  # noqa: E402
from promptseg.models._open_clip_compat import hf_text_towers

__all__ = ["OPEN_CLIP_PREFIX", "ClipScorer"]

logger = logging.getLogger(__name__)

OPEN_CLIP_PREFIX = "open_clip:"
_LOCAL_DIR_PREFIX = "local-dir:"  # open_clip's own spelling of a folder
_OPEN_CLIP_CONFIG = "open_clip_config.json"

class ClipScorer:
    """A frozen CLIP model: text and image embeddings in one joint space.

    Build it with :meth:`from_pretrained`. It holds no per-call state, so one instance can
    serve many threads.

    Attributes:
        model_id: the source it was loaded from (folder path or ``open_clip:ARCH/TAG``).
        family: ``"hf_clip"`` (transformers) or ``"open_clip"``.
        device: where the weights live and embeddings are returned.
        dtype: weight dtype (``float32``, ``float16`` or ``bfloat16``); embeddings are float32.
        image_size: side ``S`` of the square ``(3, S, S)`` input the image tower takes.
        embed_dim: embedding size ``D``.
        logit_scale: CLIP's learned temperature, already exponentiated (100.0 for OpenAI's).
        context_length: text tokens per prompt (77 for CLIP); longer prompts are truncated.
        image_mean, image_std: RGB normalisation of :meth:`preprocess`, in [0, 1] units.
        model: the underlying ``torch.nn.Module`` (``CLIPModel`` or open_clip's ``CLIP``).

    Example (needs the weights, so not run as a doctest)::

        clip = ClipScorer.from_pretrained("open_clip:ViT-B-16/laion400m_e32")
        text = clip.encode_text(["a dog", "a cat"])  # (2, D)
        image = clip.encode_images([picture])  # (1, D); picture: (H, W, 3) uint8
        probs = (clip.logit_scale * image @ text.T).softmax(-1)  # (1, 2)
    """

    def __init__(self, backend: _Backend, *, model_id: str, device: torch.device, dtype):
        self._backend = backend
        self.model_id = model_id
        self.family = backend.family
        self.device = device
        self.dtype = dtype
        self.image_size = backend.image_size
        self.embed_dim = backend.embed_dim
        self.context_length = backend.context_length
        self.image_mean = backend.image_mean
        self.image_std = backend.image_std
        self.logit_scale = float(backend.model.logit_scale.detach().float().exp())

    def __repr__(self) -> str:
        return (
            f"ClipScorer(model_id={self.model_id!r}, family={self.family!r}, "
            f"image_size={self.image_size}, embed_dim={self.embed_dim}, "
            f"device={self.device}, dtype={self.dtype})"
        )

    @property
    def model(self) -> torch.nn.Module:
        """The wrapped model, in eval mode (read it; changing it changes every caller)."""
        return self._backend.model

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike,
        device: torch.device | str = torch.device("cpu"),
        dtype: torch.dtype | str = torch.float32,
    ) -> ClipScorer:
        """Load CLIP weights from a local folder or an OpenCLIP spec.

        Args:
            source: one of
                - a transformers CLIP folder (``config.json`` with ``model_type: "clip"``,
                  weights, and the processor and tokenizer files saved beside them);
                - an OpenCLIP folder (``open_clip_config.json`` + ``open_clip_model.safetensors``
                  or ``.bin`` / ``.pth``), also written ``open_clip:/path/to/folder``;
                - ``open_clip:ARCH/TAG``, e.g. ``open_clip:RN50/openai`` or
                  ``open_clip:ViT-B-16/laion400m_e32`` (``open_clip.list_pretrained()``);
                  the weights come from the Hugging Face cache or a download.
                A folder holding both formats loads with transformers; prefix it with
                ``open_clip:`` to load the OpenCLIP files. Hub ids such as
                ``openai/clip-vit-base-patch16`` are resolved to folders by
                ``promptseg.models.load_clip``.
            device: where to put the model (``torch.device`` or a string like ``"cuda:0"``).
            dtype: ``torch.float32`` / ``float16`` / ``bfloat16`` or ``"fp32"``, ``"fp16"``,
                ``"bf16"``.

        Raises:
            UnknownModelError: the source is not a folder, or an OpenCLIP architecture or tag
                is unknown or its weights cannot be downloaded.
            WeightsError: the folder holds another model family or unreadable weights.
            MissingDependencyError: ``open_clip`` is needed and not installed.
        """
        device = resolve_device(device)
        dtype = resolve_dtype(dtype)
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, str) or not source.strip():
            raise InputError(
                f"CLIP source must be a folder path or 'open_clip:ARCH/TAG', got {source!r}"
            )
        model_id = source
        if source.startswith(OPEN_CLIP_PREFIX):
            rest = source[len(OPEN_CLIP_PREFIX) :]
            if rest.startswith(_LOCAL_DIR_PREFIX):
                rest = rest[len(_LOCAL_DIR_PREFIX) :]
            folder = Path(rest).expanduser()
            if folder.is_dir() or rest.startswith(("/", ".", "~")):
                backend = _OpenClipBackend.from_folder(_existing_folder(folder, source))
            else:
                arch, tag = _split_arch_tag(rest, source)
                model_id = f"{OPEN_CLIP_PREFIX}{arch}/{tag}"
                backend = _OpenClipBackend.from_tag(arch, tag, model_id)
        else:
            if source.startswith(_LOCAL_DIR_PREFIX):
                source = source[len(_LOCAL_DIR_PREFIX) :]
            folder = _existing_folder(Path(source).expanduser(), source)
            if _folder_family(folder) == "hf_clip":
                backend = _HFClipBackend.from_folder(folder, dtype)
            else:
                backend = _OpenClipBackend.from_folder(folder)
        backend.model.to(device=device, dtype=dtype).eval()
        backend.model.requires_grad_(False)
        scorer = cls(backend, model_id=model_id, device=device, dtype=dtype)
        logger.info("loaded %r", scorer)
        return scorer

    # ------------------------------------------------------------------ preprocessing

    def preprocess(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """Turn images into the model's input with the model's own preprocessing.

        transformers: ``CLIPImageProcessor`` (resize the shortest side, bicubic; centre crop;
        rescale to [0, 1]; normalise). OpenCLIP: the transform that comes with the weights
        (applied to PIL images, as open_clip expects).

        Args:
            images: a sequence of ``(H, W, 3) uint8`` RGB arrays (sizes may differ), or one
                ``(B, H, W, 3) uint8`` array.

        Returns:
            ``(B, 3, S, S) float32`` on the CPU, ``S = image_size``.
        """
        arrays = _check_images(images)
        if not arrays:
            return torch.empty((0, 3, self.image_size, self.image_size))
        return self._backend.preprocess(arrays).float()

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token tensors the text tower takes, on the CPU (``input_ids`` is ``(Q, L)``)."""
        return self._backend.tokenize(_check_texts(texts))

    # ------------------------------------------------------------------ embeddings

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embed prompts.

        Args:
            texts: ``Q >= 1`` non-blank strings; each is truncated to ``context_length``
                tokens.
            batch_size: prompts per forward pass (results do not depend on it).

        Returns:
            ``(Q, D) float32``, rows of unit L2 norm, on :attr:`device`.

        Raises:
            InputError: an empty list, a blank prompt, or a bare string instead of a list.
        """
        texts = _check_texts(texts)
        batch_size = _check_batch_size(batch_size)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self._backend.tokenize(texts[start : start + batch_size])
                tokens = {k: v.to(self.device) for k, v in tokens.items()}
                chunks.append(F.normalize(self._backend.text_features(tokens).float(), dim=-1))
        return torch.cat(chunks)

    def encode_images(
        self, images: Sequence[np.ndarray] | np.ndarray | torch.Tensor, batch_size: int = 32
    ) -> torch.Tensor:
        """Embed images.

        Args:
            images: a sequence of ``(H, W, 3) uint8`` RGB arrays, a ``(B, H, W, 3) uint8``
                array, or a ``(B, 3, S, S)`` float tensor already made by :meth:`preprocess`.
            batch_size: images per forward pass (and per preprocessing call); results do not
                depend on it beyond float noise.

        Returns:
            ``(B, D) float32``, rows of unit L2 norm, on :attr:`device`; ``(0, D)`` for no
            images.
        """
        batch_size = _check_batch_size(batch_size)
        if isinstance(images, torch.Tensor):
            pixels = self._check_pixels(images)
            batches = (pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size))
        else:
            arrays = _check_images(images)
            batches = (
                self._backend.preprocess(arrays[i : i + batch_size])
                for i in range(0, len(arrays), batch_size)
            )
        chunks = [torch.empty((0, self.embed_dim), device=self.device)]
        with torch.inference_mode():
            for batch in batches:
                batch = batch.to(device=self.device, dtype=self.dtype)
                chunks.append(F.normalize(self._backend.image_features(batch).float(), dim=-1))
        return torch.cat(chunks)

    def _check_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, s, s):
            raise InputError(
                f"a preprocessed image tensor must be (B, 3, {s}, {s}) for {self.model_id}, got "
                f"{tuple(pixels.shape)}; pass uint8 (H, W, 3) arrays to preprocess them"
            )
        if not pixels.is_floating_point():
            raise InputError(
                f"a preprocessed image tensor must be float (normalised), got {pixels.dtype}; "
                "pass uint8 images as (H, W, 3) numpy arrays instead"
            )
        return pixels


# ---------------------------------------------------------------------- backends


class _Backend(Protocol):
    """What differs between the two libraries; ClipScorer does the rest."""

    family: str
    model: torch.nn.Module
    image_size: int
    embed_dim: int
    context_length: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor: ...

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]: ...

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor: ...


class _HFClipBackend:
    family = "hf_clip"

    @classmethod
    def from_folder(cls, folder: Path, dtype: torch.dtype) -> _HFClipBackend:
        from transformers import CLIPImageProcessor, CLIPModel

        self = cls()
        try:
            self.model = CLIPModel.from_pretrained(folder, dtype=dtype)
        except Exception as exc:  # any load failure is a weights problem here
            raise WeightsError(f"could not load CLIP weights from {folder}: {exc}") from exc
        try:
            self.image_processor = CLIPImageProcessor.from_pretrained(folder)
        except Exception as exc:
            raise WeightsError(
                f"{folder} has CLIP weights but no readable image processor "
                f"(processor_config.json or preprocessor_config.json): {exc}. Save the "
                "model's CLIPProcessor there (processor.save_pretrained(folder))"
            ) from exc
        self.tokenizer = _load_tokenizer(folder)
        config = self.model.config
        self.image_size = int(config.vision_config.image_size)
        self.embed_dim = int(config.projection_dim)
        self.context_length = int(config.text_config.max_position_embeddings)
        self.image_mean = tuple(float(v) for v in self.image_processor.image_mean)
        self.image_std = tuple(float(v) for v in self.image_processor.image_std)
        return self

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        out = self.image_processor(
            images=images, return_tensors="pt", input_data_format="channels_last"
        )
        pixels = out["pixel_values"]
        if tuple(pixels.shape[1:]) != (3, self.image_size, self.image_size):
            raise WeightsError(
                f"the image processor gives {tuple(pixels.shape[1:])} but the model takes "
                f"(3, {self.image_size}, {self.image_size}); its crop_size does not match "
                "vision_config.image_size"
            )
        return pixels

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        # transformers 5 returns an output object; the projected embedding is pooler_output
        return self.model.get_text_features(**tokens).pooler_output

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixels).pooler_output


class _OpenClipBackend:
    family = "open_clip"
    text_encoder_subdir: str | None = None  # see _local_text_cfg

    @classmethod
    def from_folder(cls, folder: Path) -> _OpenClipBackend:
        open_clip = require("open_clip", "openclip")
        if not (folder / _OPEN_CLIP_CONFIG).is_file():
            raise WeightsError(f"{folder} has no {_OPEN_CLIP_CONFIG}: it is not an OpenCLIP folder")
        weights = [
            p for ext in ("safetensors", "bin", "pth", "pt") for p in folder.glob(f"*.{ext}")
        ]
        if not weights:
            raise WeightsError(
                f"{folder} has {_OPEN_CLIP_CONFIG} but no weights file; expected "
                "open_clip_model.safetensors (or open_clip_pytorch_model.bin)"
            )
        try:
            with open(folder / _OPEN_CLIP_CONFIG, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{folder / _OPEN_CLIP_CONFIG} is not readable JSON: {exc}") from exc
        model_cfg = config.get("model_cfg") if isinstance(config, dict) else None
        if not isinstance(model_cfg, dict) or "embed_dim" not in model_cfg:
            raise WeightsError(
                f"{folder / _OPEN_CLIP_CONFIG} has no 'model_cfg' with 'embed_dim'; OpenCLIP "
                'folders store {"model_cfg": {...}, "preprocess_cfg": {...}}'
            )
        name = f"{_LOCAL_DIR_PREFIX}{folder.resolve()}"
        text_cfg, subdir = _local_text_cfg(model_cfg, folder)
        try:
            with hf_text_towers():  # DistilBERT text towers (see _open_clip_compat)
                if subdir is None:
                    model, _, transform = open_clip.create_model_and_transforms(name)
                    tokenizer = open_clip.get_tokenizer(name)
                else:  # a text encoder inside the folder (train clip's models from parts)
                    model, _, transform = open_clip.create_model_and_transforms(
                        name, text_cfg=text_cfg)
                    tokenizer = open_clip.tokenizer.HFTokenizer(
                        text_cfg["hf_tokenizer_name"],
                        context_length=text_cfg.get("context_length", 77),
                        tokenizer_mode=text_cfg.get("tokenizer_mode"),
                        **(text_cfg.get("tokenizer_kwargs") or {}),
                    )
        except Exception as exc:  # config/weights mismatch, corrupt file, ...
            raise WeightsError(f"could not load OpenCLIP model from {folder}: {exc}") from exc
        self = cls._build(model, transform, tokenizer, model_cfg)
        self.text_encoder_subdir = subdir  # save_clip writes it again beside the weights
        return self

    @classmethod
    def from_tag(cls, arch: str, tag: str, model_id: str) -> _OpenClipBackend:
        open_clip = require("open_clip", "openclip")
        model_cfg = open_clip.get_model_config(arch)
        pretrained_cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
        # QuickGELU comes with the tag (open_clip#771): "ViT-B-16/openai" needs it.
        quick_gelu = bool(pretrained_cfg.get("quick_gelu")) and not model_cfg.get("quick_gelu")
        try:
            with _root_errors_silenced():  # open_clip logs the failure on the root logger too
                model, _, transform = open_clip.create_model_and_transforms(
                    arch, pretrained=tag, force_quick_gelu=quick_gelu
                )
            tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # offline, hub error, partial cache
            reason = str(exc).split(". ")[0]
            raise UnknownModelError(
                f"OpenCLIP weights for {model_id!r} could not be loaded or downloaded ({reason}). "
                "Run once with network access so they land in the Hugging Face cache "
                "(HF_HOME), or provide them as a local folder holding open_clip_config.json + "
                "open_clip_model.safetensors and load that folder (or "
                "'open_clip:/path/to/folder')"
            ) from exc
        if quick_gelu:
            model_cfg = {**model_cfg, "quick_gelu": True}
        return cls._build(model, transform, tokenizer, model_cfg)

    @classmethod
    def _build(cls, model, transform, tokenizer, model_cfg: dict) -> _OpenClipBackend:
        self = cls()
        self.model = model
        self.transform = transform
        self.tokenizer = tokenizer
        self.model_cfg = dict(model_cfg)  # what open_clip built it from (saved by train clip)
        preprocess_cfg = getattr(model.visual, "preprocess_cfg", {})
        size = preprocess_cfg.get("size", getattr(model.visual, "image_size", None))
        sizes = (size, size) if isinstance(size, int) else tuple(size)
        if len(sizes) != 2 or sizes[0] != sizes[1]:
            raise WeightsError(f"only square CLIP inputs are supported, this model takes {size}")
        self.image_size = int(sizes[0])
        self.embed_dim = int(model_cfg["embed_dim"])
        self.context_length = int(getattr(tokenizer, "context_length", 77))
        self.image_mean = tuple(float(v) for v in preprocess_cfg.get("mean", ()))
        self.image_std = tuple(float(v) for v in preprocess_cfg.get("std", ()))
        return self

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        from PIL import Image

        return torch.stack([self.transform(Image.fromarray(image)) for image in images])

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(texts)}

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_text(tokens["input_ids"])

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


# ---------------------------------------------------------------------- helpers


def _folder_family(folder: Path) -> str:
    """``"hf_clip"`` or ``"open_clip"`` for a model folder; WeightsError for anything else."""
    config_path = folder / "config.json"
    model_type = None
    if config_path.is_file():
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{config_path} is not readable JSON: {exc}") from exc
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if model_type == "clip":
            return "hf_clip"
    if (folder / _OPEN_CLIP_CONFIG).is_file():
        return "open_clip"
    if config_path.is_file():
        raise WeightsError(
            f"{folder} holds a {model_type!r} model (config.json model_type), not CLIP; "
            "expected model_type 'clip' or an OpenCLIP folder with open_clip_config.json"
        )
    raise WeightsError(
        f"{folder} is not a CLIP model folder: it has neither config.json (transformers, "
        "model_type 'clip') nor open_clip_config.json (OpenCLIP)"
    )


def _local_text_cfg(model_cfg: dict, folder: Path) -> tuple[dict, str | None]:
    """Resolve a Hugging Face text encoder stored inside an OpenCLIP folder.

    ``text_cfg.hf_model_name`` (and ``hf_tokenizer_name``) may name a subfolder, such as
    ``"text_encoder"``, holding the text model's ``config.json`` and tokenizer; the folder then
    moves as one. Returns the text configuration with that subfolder made absolute and
    ``hf_model_pretrained`` off (the weights come with the CLIP), and the subfolder's name;
    ``(text_cfg, None)`` when the text encoder is not a subfolder.
    """
    text_cfg = dict(model_cfg.get("text_cfg") or {})
    name = text_cfg.get("hf_model_name")
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        return text_cfg, None
    if not (folder / name / "config.json").is_file():
        return text_cfg, None
    text_cfg["hf_model_name"] = str((folder / name).resolve())
    text_cfg["hf_tokenizer_name"] = str((folder / text_cfg.get("hf_tokenizer_name", name))
                                        .resolve())
    text_cfg["hf_model_pretrained"] = False
    return text_cfg, name


def _existing_folder(folder: Path, source: str) -> Path:
    if folder.is_dir():
        return folder
    if folder.exists():
        raise WeightsError(f"{source!r} is a file; a CLIP model is a folder of files")
    raise UnknownModelError(
        f"CLIP model {source!r} not found: it is not a local folder. Give a folder with a "
        "transformers CLIP (config.json, weights, processor) or an OpenCLIP model "
        "(open_clip_config.json + open_clip_model.safetensors), an OpenCLIP spec like "
        "'open_clip:ViT-B-16/laion400m_e32', or a hub id through promptseg.models.load_clip"
    )


def _split_arch_tag(rest: str, source: str) -> tuple[str, str]:
    open_clip = require("open_clip", "openclip")
    arch, _, tag = rest.rpartition("/")
    arch = arch.replace("/", "-")  # "ViT-B/16" is OpenAI's spelling of "ViT-B-16", as open_clip
    if not arch:
        arch, tag = tag, ""
    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"{source!r}: {arch!r} is not an OpenCLIP architecture.{hint} "
            "open_clip.list_models() lists them; the form is 'open_clip:ARCH/TAG'"
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags and not Path(tag).is_file():
        what = f"{tag!r} is not a pretrained tag of {arch}" if tag else "no pretrained tag given"
        raise UnknownModelError(
            f"{source!r}: {what}; available: "
            f"{', '.join(f'open_clip:{arch}/{t}' for t in tags) or 'none'}"
        )
    return arch, tag


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _root_errors_silenced():
    """Drop records logged straight to the root logger (open_clip's ``logging.error``) while
    the caller turns the failure into one clear exception of its own."""
    root = logging.getLogger()
    dropper = _DropRecords()
    root.addFilter(dropper)
    try:
        yield
    finally:
        root.removeFilter(dropper)


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f"texts must be a list of strings, got one string {texts!r}; use [text]")
    try:
        texts = list(texts)
    except TypeError:
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    if not texts:
        raise InputError("texts is empty: give at least one prompt")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {i} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InputError(f"text {i} is empty or blank: every prompt needs words")
    return texts


def _check_images(images: Any) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise InputError(
                f"images must be a sequence of (H, W, 3) arrays; got one array {images.shape}: "
                "wrap it in a list"
            )
        if images.ndim != 4:
            raise InputError(f"images array must be (B, H, W, 3) uint8, got {images.shape}")
        images = list(images)
    elif isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise InputError(
            f"images must be a list of (H, W, 3) uint8 arrays, got {type(images).__name__}"
        )
    return [check_rgb_image(image, f"image {i}") for i, image in enumerate(images)]


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


#: words a real vocabulary encodes to distinct ids (a fallback tokenizer maps all alike)
_PROBE_WORDS = ("cat", "dog", "red", "box")


def _load_tokenizer(folder: Path):
    """The tokenizer saved in ``folder``, checked to be a real one.

    transformers 5 quietly builds a 3-token CLIPTokenizer when the files are missing, which
    maps every word to one id, so: the files must be there, and distinct words must get
    distinct ids. Any vocabulary size is fine (a character-level one of 190 tokens too).
    """
    from transformers import AutoTokenizer

    files = sorted(p.name for p in folder.iterdir()
                   if p.name in ("tokenizer.json", "vocab.json", "merges.txt"))
    if "tokenizer.json" not in files and not {"vocab.json", "merges.txt"} <= set(files):
        found = f" (it has only {', '.join(files)})" if files else ""
        raise WeightsError(
            f"{folder} has CLIP weights but no tokenizer files: it needs tokenizer.json, or "
            f"vocab.json and merges.txt{found}. Save the model's CLIPProcessor or "
            "CLIPTokenizer there (processor.save_pretrained(folder))"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:
        raise WeightsError(
            f"could not read the tokenizer files ({', '.join(files)}) in {folder}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    ids = [tuple(tokenizer(word, add_special_tokens=False)["input_ids"]) for word in _PROBE_WORDS]
    if len(set(ids)) < len(ids) or not all(ids):
        raise WeightsError(
            f"the tokenizer in {folder} maps the distinct words {', '.join(_PROBE_WORDS)} to "
            f"the ids {[list(i) for i in ids]}: its vocabulary cannot tell words apart (a "
            "broken or placeholder vocab.json?). Save the model's real tokenizer there"
        )
    return tokenizer

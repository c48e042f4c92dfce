"""The model registry: one way to load every model family by id or local folder.

An id is one of:

- a Hugging Face hub id (``openai/clip-vit-base-patch16``, ``facebook/sam-vit-base``), looked up
  in the local hub cache first and downloaded only when the cache does not have it;
- an OpenCLIP spec ``open_clip:ARCH/TAG`` (``open_clip:RN50/openai``) or
  ``open_clip:/path/to/folder``;
- a local folder written by ``save_pretrained`` (transformers) or holding
  ``open_clip_config.json`` + weights (OpenCLIP);
- an official ``segment_anything`` checkpoint file (``sam_vit_b_01ec64.pth``, MedSAM's
  ``medsam_vit_b.pth``), converted once to a transformers folder in promptseg's cache.

A model is loaded once per process for each (id, device, dtype) and reused; loaded models hold
no per-image state, so one instance serves many threads.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptseg.errors import ConfigError, UnknownModelError, WeightsError
from promptseg.models._device import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

__all__ = [
    "ModelInfo",
    "KNOWN_MODELS",
    "list_models",
    "load_clip",
    "load_sam",
    "load_model",
    "resolve_device",
    "resolve_dtype",
    "detect_family",
    "is_available_locally",
    "model_folder",
    "clear_cache",
]


@dataclass(frozen=True)
class ModelInfo:
    """A model promptseg knows by name.

    Attributes:
        id: the id users pass (hub id or ``open_clip:ARCH/TAG``).
        family: ``"clip"`` or ``"sam"`` (the role it plays in a pipeline).
        arch: the loader: ``"hf_clip"``, ``"open_clip"``, ``"sam"``, ``"sam_hq"``, ``"sam2"``.
        params_m: parameters in millions (approximate, for the ``models`` listing).
        paper: where it comes from.
    """

    id: str
    family: str
    arch: str
    params_m: float
    paper: str


KNOWN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("openai/clip-vit-base-patch16", "clip", "hf_clip", 150, "CLIP, Radford et al. 2021"),
    ModelInfo("openai/clip-vit-base-patch32", "clip", "hf_clip", 151, "CLIP, Radford et al. 2021"),
    ModelInfo("openai/clip-vit-large-patch14", "clip", "hf_clip", 428, "CLIP, Radford et al. 2021"),
    ModelInfo("open_clip:RN50/openai", "clip", "open_clip", 102, "CLIP (OpenCLIP weights)"),
    ModelInfo("open_clip:RN101/openai", "clip", "open_clip", 120, "CLIP (OpenCLIP weights)"),
    ModelInfo("open_clip:RN50/cc12m", "clip", "open_clip", 102, "OpenCLIP, Conceptual 12M"),
    ModelInfo("open_clip:ViT-B-16/openai", "clip", "open_clip", 150, "CLIP (OpenCLIP weights)"),
    ModelInfo("open_clip:ViT-B-16/laion400m_e32", "clip", "open_clip", 150, "OpenCLIP, LAION-400M"),
    ModelInfo("open_clip:ViT-L-14/openai", "clip", "open_clip", 428, "CLIP (OpenCLIP weights)"),
    ModelInfo("facebook/sam-vit-base", "sam", "sam", 94, "SAM, Kirillov et al. 2023"),
    ModelInfo("facebook/sam-vit-large", "sam", "sam", 312, "SAM, Kirillov et al. 2023"),
    ModelInfo("facebook/sam-vit-huge", "sam", "sam", 641, "SAM, Kirillov et al. 2023"),
    ModelInfo("syscv-community/sam-hq-vit-base", "sam", "sam_hq", 95, "SAM-HQ, Ke et al. 2023"),
    ModelInfo("syscv-community/sam-hq-vit-large", "sam", "sam_hq", 314, "SAM-HQ, Ke et al. 2023"),
    ModelInfo("syscv-community/sam-hq-vit-huge", "sam", "sam_hq", 643, "SAM-HQ, Ke et al. 2023"),
    ModelInfo("facebook/sam2.1-hiera-tiny", "sam", "sam2", 39, "SAM 2, Ravi et al. 2024"),
    ModelInfo("facebook/sam2.1-hiera-small", "sam", "sam2", 46, "SAM 2, Ravi et al. 2024"),
    ModelInfo("facebook/sam2.1-hiera-base-plus", "sam", "sam2", 81, "SAM 2, Ravi et al. 2024"),
    ModelInfo("facebook/sam2.1-hiera-large", "sam", "sam2", 224, "SAM 2, Ravi et al. 2024"),
    ModelInfo("flaviagiammarino/medsam-vit-base", "sam", "sam", 94, "MedSAM, Ma et al. 2024"),
    ModelInfo("shapeworld/clip", "clip", "hf_clip", 1.9, "promptseg zoo, trained on ShapeWorld"),
    ModelInfo("shapeworld/sam", "sam", "sam", 1.9, "promptseg zoo, trained on ShapeWorld"),
)

_KNOWN_BY_ID = {info.id: info for info in KNOWN_MODELS}

# transformers `model_type` -> (family, arch)
_MODEL_TYPES = {
    "clip": ("clip", "hf_clip"),
    "sam": ("sam", "sam"),
    "sam_hq": ("sam", "sam_hq"),
    "sam2": ("sam", "sam2"),
    "sam2_video": ("sam", "sam2"),  # facebook/sam2.1-hiera-* ship the video model's config
}

_OPEN_CLIP_PREFIX = "open_clip:"
_cache: dict[tuple[str, str, str, str], Any] = {}
_cache_lock = threading.Lock()


def list_models(family: str | None = None) -> list[ModelInfo]:
    """The models promptseg knows by name, optionally of one family (``"clip"``/``"sam"``)."""
    if family is not None and family not in ("clip", "sam"):
        raise ConfigError(f"unknown model family {family!r}: use 'clip' or 'sam'")
    return [m for m in KNOWN_MODELS if family is None or m.family == family]


def detect_family(folder: str | Path) -> tuple[str, str]:
    """Read a model folder and say what it holds: ``(family, arch)``.

    Raises:
        WeightsError: the folder holds no model promptseg can load.
    """
    folder = Path(folder)
    if (folder / "open_clip_config.json").is_file():
        return "clip", "open_clip"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WeightsError(
            f"{folder} is not a model folder: it has no config.json (transformers) or "
            "open_clip_config.json (OpenCLIP)"
        )
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (json.JSONDecodeError, OSError) as exc:
        raise WeightsError(f"{config_path} is not readable JSON: {exc}") from exc
    if model_type not in _MODEL_TYPES:
        raise WeightsError(
            f"{folder} holds a {model_type!r} model, which promptseg does not load; "
            f"supported model types: {', '.join(sorted(_MODEL_TYPES))}"
        )
    return _MODEL_TYPES[model_type]


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_available_locally(model_id: str) -> bool:
    """True when ``model_id`` loads without a network: a folder, or in the hub cache."""
    from promptseg.zoo import zoo_folder

    zoo = zoo_folder(model_id)
    if zoo is not None:
        return _has_weights(zoo)
    if Path(model_id).expanduser().exists():
        return True
    if model_id.startswith(_OPEN_CLIP_PREFIX):
        spec = model_id[len(_OPEN_CLIP_PREFIX) :]
        if Path(spec).expanduser().exists():
            return True
        return _open_clip_cached(spec)
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # a malformed id is simply not available
        return False
    return isinstance(hit, str)


def _open_clip_cached(spec: str) -> bool:
    if "/" not in spec:
        return False
    arch, tag = spec.split("/", 1)
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        cfg = open_clip.get_pretrained_cfg(arch, tag)
    except Exception:
        return False
    hub_id = cfg.get("hf_hub", "") if cfg else ""
    if not hub_id:
        return False
    repo = hub_id.rstrip("/")
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        try:
            if isinstance(try_to_load_from_cache(repo, name), str):
                return True
        except Exception:
            return False
    return False


_HUB_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken"]  # configs, tokenizers, processors


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _snapshot(model_id: str, local_only: bool) -> Path:
    """The snapshot folder of a hub repo: safetensors weights, else PyTorch ``.bin`` ones."""
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(model_id, local_files_only=local_only,
                                    allow_patterns=[*_HUB_FILES, "*.safetensors"]))
    if not _has_weights(folder):  # older repos ship only pytorch_model.bin
        folder = Path(snapshot_download(model_id, local_files_only=local_only,
                                        allow_patterns=[*_HUB_FILES, "*.bin"]))
    if not _has_weights(folder):
        raise FileNotFoundError(f"no weights (*.safetensors, *.bin) in {folder}")
    return folder


def _resolve_hub_id(model_id: str) -> Path:
    """Local folder for a hub id: the cache first, then a download; a clear error otherwise."""
    try:
        return _snapshot(model_id, local_only=True)
    except Exception:
        pass
    reason = "offline mode (HF_HUB_OFFLINE is set)"
    if not os.environ.get("HF_HUB_OFFLINE"):
        try:
            return _snapshot(model_id, local_only=False)
        except Exception as exc:  # network, auth, not found: all end in the same advice
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    raise UnknownModelError(
        f"model {model_id!r} is not in the local Hugging Face cache ({_hub_cache_dir()}) and "
        f"could not be downloaded ({reason}). Provide it by running once with network access "
        "(it is then cached), by pointing HF_HOME at a cache that has it, or by passing a local "
        "folder written by save_pretrained instead of the id. `promptseg models` lists known ids."
    )


def _looks_like_hub_id(model_id: str) -> bool:
    parts = model_id.split("/")
    return len(parts) == 2 and all(parts) and not model_id.startswith((".", "~"))


def _converted_dir(checkpoint: Path) -> Path:
    """Where an official SAM checkpoint is converted to: promptseg's cache, keyed by content."""
    stat = checkpoint.stat()
    key = f"{checkpoint.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("PROMPTSEG_CACHE", Path.home() / ".cache" / "promptseg"))
    return root / "converted" / f"{checkpoint.stem}-{digest}"


def _locate(model_id: str | Path) -> tuple[str | Path, str, str]:
    """Turn an id into ``(source for from_pretrained, family, arch)``."""
    text = str(model_id).strip()
    if not text:
        raise UnknownModelError("empty model id: pass a hub id, an open_clip: spec or a folder")
    from promptseg.zoo import zoo_folder

    zoo = zoo_folder(text)
    if zoo is not None:  # promptseg's own models, shipped in the package
        if not _has_weights(zoo):
            raise UnknownModelError(
                f"zoo model {text!r} has no weights in {zoo}; rebuild the zoo with "
                "`python scripts/build_shapeworld_zoo.py` from a promptseg checkout"
            )
        family, arch = detect_family(zoo)
        return zoo, family, arch
    if text.startswith(_OPEN_CLIP_PREFIX):
        spec = text[len(_OPEN_CLIP_PREFIX) :]
        local = Path(spec).expanduser()
        if local.is_dir():
            family, arch = detect_family(local)
            if arch != "open_clip":
                raise WeightsError(f"{local} is a {arch} folder, not an OpenCLIP folder")
            return local, family, arch
        return text, "clip", "open_clip"
    path = Path(text).expanduser()
    if path.is_dir():
        family, arch = detect_family(path)
        return path, family, arch
    if path.is_file():
        if path.suffix in (".pth", ".pt"):
            out = _converted_dir(path)
            if not (out / "config.json").is_file():
                from promptseg.convert.sam_checkpoint import convert_sam_checkpoint

                logger.info("converting official SAM checkpoint %s to %s", path, out)
                convert_sam_checkpoint(path, out)
            return out, "sam", "sam"
        raise WeightsError(
            f"{path} is a file; pass a model folder, or an official SAM checkpoint (.pth)"
        )
    if _looks_like_hub_id(text):
        folder = _resolve_hub_id(text)
        family, arch = detect_family(folder)
        return folder, family, arch
    close = difflib.get_close_matches(text, list(_KNOWN_BY_ID), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {text!r}: it is not a folder, a file, a hub id (owner/name) or an "
        f"open_clip: spec.{hint} `promptseg models` lists the known ids."
    )


def model_folder(model_id: str | Path) -> Path | None:
    """The local folder a model id loads from (a zoo, hub-cache or converted folder), without
    loading the weights; ``None`` for OpenCLIP specs, which have no folder of ours, and for an
    id that cannot be found (loading it then gives the error that says how to provide it).

    Raises:
        WeightsError: as :func:`load_model` would for a folder it cannot read.
    """
    try:
        source, _, _ = _locate(model_id)
    except UnknownModelError:
        return None
    return source if isinstance(source, Path) else None


def load_model(
    model_id: str | Path,
    family: str | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "fp32",
):
    """Load a model by id or folder, once per process for each (id, device, dtype).

    Args:
        model_id: hub id, ``open_clip:ARCH/TAG``, model folder or official SAM ``.pth``.
        family: ``"clip"`` or ``"sam"``; when given, a model of another family is an error.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` or a torch device.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"``.

    Returns:
        A :class:`promptseg.models.clip.ClipScorer` or :class:`promptseg.models.sam.SamSegmenter`.

    Raises:
        UnknownModelError: the id is not a folder and not in the hub cache / downloadable.
        WeightsError: the folder holds another family or unreadable weights.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    key = (str(model_id), family or "", str(torch_device), str(torch_dtype))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        source, found_family, arch = _locate(model_id)
        if family is not None and found_family != family:
            expected = {"clip": "a CLIP model", "sam": "a SAM-family model"}[family]
            raise WeightsError(
                f"{model_id} holds a {arch} model, but {expected} is needed here"
            )
        if found_family == "clip":
            from promptseg.models.clip import ClipScorer

            model = ClipScorer.from_pretrained(source, device=torch_device, dtype=torch_dtype)
        else:
            from promptseg.models.sam import SamSegmenter

            model = SamSegmenter.from_pretrained(source, device=torch_device, dtype=torch_dtype)
        if str(model_id) != str(source):
            try:
                model.model_id = str(model_id)
            except AttributeError:
                pass
        _cache[key] = model
        return model


def load_clip(model_id: str | Path, device="auto", dtype="fp32"):
    """Load a CLIP model (transformers or OpenCLIP) by id or folder; see :func:`load_model`."""
    return load_model(model_id, family="clip", device=device, dtype=dtype)


def load_sam(model_id: str | Path, device="auto", dtype="fp32"):
    """Load a SAM-family model (SAM, SAM-HQ, SAM 2, MedSAM) by id or folder."""
    return load_model(model_id, family="sam", device=device, dtype=dtype)


def clear_cache() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _cache_lock:
        _cache.clear()

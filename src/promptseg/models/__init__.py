"""Model families (CLIP, SAM) loaded by id or folder through one registry."""

from promptseg.models.registry import (
    KNOWN_MODELS,
    ModelInfo,
    clear_cache,
    is_available_locally,
    list_models,
    load_clip,
    load_model,
    load_sam,
)

__all__ = [
    "KNOWN_MODELS",
    "ModelInfo",
    "clear_cache",
    "is_available_locally",
    "list_models",
    "load_clip",
    "load_model",
    "load_sam",
]

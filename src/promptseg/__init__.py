"""promptseg: segment what a sentence names with frozen vision-language models.

>>> import promptseg
>>> seg = promptseg.segment("scene.png", ["the red star"], method="slip")  # doctest: +SKIP
>>> seg.masks.shape  # (N, H, W) bool  # doctest: +SKIP

Public names are imported on first use, so ``import promptseg`` does not load torch.
"""

from __future__ import annotations

import importlib

from promptseg.errors import (
    ConfigError,
    ImageError,
    InputError,
    MissingDependencyError,
    PromptsegError,
    UnknownModelError,
    WeightsError,
)

__version__ = "0.1.0"

_LAZY = {
    "segment": "promptseg.api",
    "Segmentation": "promptseg.result",
    "load_image": "promptseg.image",
    "list_models": "promptseg.models.registry",
    "load_clip": "promptseg.models.registry",
    "load_sam": "promptseg.models.registry",
    "list_pipelines": "promptseg.pipelines",
    "load_pipeline": "promptseg.pipelines",
}

__all__ = [
    "ConfigError",
    "ImageError",
    "InputError",
    "MissingDependencyError",
    "PromptsegError",
    "UnknownModelError",
    "WeightsError",
    *sorted(_LAZY),
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'promptseg' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

"""Pipelines: each published method is a composition of stages, registered by name."""

from __future__ import annotations

import difflib

from promptseg.errors import ConfigError

__all__ = ["PIPELINES", "list_pipelines", "get_pipeline_class", "load_pipeline"]

# name -> (module, class); imported on demand so `import promptseg` stays light
PIPELINES: dict[str, tuple[str, str]] = {
    "camsam": ("promptseg.pipelines.camsam", "CamSamPipeline"),
    "slip": ("promptseg.pipelines.slip", "SlipPipeline"),
}


def list_pipelines() -> list[str]:
    """Names accepted by :func:`load_pipeline` and ``--method``."""
    return sorted(PIPELINES)


def get_pipeline_class(name: str):
    """The pipeline class registered as ``name``; a ConfigError with suggestions otherwise."""
    if name not in PIPELINES:
        close = difflib.get_close_matches(str(name), list(PIPELINES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown method {name!r}.{hint} Available: {', '.join(list_pipelines())}"
        )
    import importlib

    module, cls = PIPELINES[name]
    return getattr(importlib.import_module(module), cls)


def load_pipeline(name: str = "slip", config=None, device="auto", dtype="fp32", **options):
    """Build a pipeline once and reuse it on many images.

    Args:
        name: a name from :func:`list_pipelines`.
        config: the pipeline's config dataclass (e.g. ``SlipConfig``); ``options`` override it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        dtype: ``"fp32"``, ``"fp16"``, ``"bf16"``.
        **options: config fields, e.g. ``clip="openai/clip-vit-base-patch16"``,
            ``points_per_side=16``.
    """
    cls = get_pipeline_class(name)
    return cls(config, device=device, dtype=dtype, **options)

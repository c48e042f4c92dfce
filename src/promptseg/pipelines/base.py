"""What every pipeline shares: configuration with per-call overrides, image and prompt checks,
and the split between per-image work (``prepare``) and per-prompt work (``segment``)."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any, ClassVar

from promptseg.errors import ConfigError
from promptseg.prompts import normalize_prompts

__all__ = ["Pipeline", "replace_config", "config_to_dict", "explicit_options", "image_key",
           "Timer"]


def _field_names(config) -> set[str]:
    return {f.name for f in dataclasses.fields(config)}


def replace_config(config, **overrides):
    """``dataclasses.replace`` that also routes keys to nested config dataclasses.

    ``replace_config(SlipConfig(), points_per_side=16)`` sets
    ``SlipConfig().mask_generation.points_per_side``. An unknown key is a
    :class:`ConfigError` that lists the valid names.
    """
    if not overrides:
        return config
    top = _field_names(config)
    direct = {k: v for k, v in overrides.items() if k in top}
    rest = {k: v for k, v in overrides.items() if k not in top}
    for name in sorted(top):
        value = getattr(config, name)
        if not rest or not dataclasses.is_dataclass(value):
            continue
        nested_keys = {k: rest[k] for k in list(rest) if k in _field_names(value)}
        if nested_keys:
            for k in nested_keys:
                del rest[k]
            base = direct.get(name, value)
            direct[name] = replace_config(base, **nested_keys)
    if rest:
        valid = sorted(_all_names(config))
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(rest))} for {type(config).__name__}; "
            f"valid options: {', '.join(valid)}"
        )
    try:
        return dataclasses.replace(config, **direct)
    except TypeError as exc:
        raise ConfigError(f"bad option for {type(config).__name__}: {exc}") from exc


def _all_names(config) -> set[str]:
    names = set()
    for f in dataclasses.fields(config):
        names.add(f.name)
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            names |= _all_names(value)
    return names


def _leaf_values(config) -> dict[str, Any]:
    """``{field name: value}`` of a config and its nested config dataclasses' fields."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            values.update(_leaf_values(value))
        else:
            values[f.name] = value
    return values


def explicit_options(config, config_class: type, overrides: dict[str, Any]) -> set[str]:
    """The option names a user set: keyword ``overrides`` (a nested config given whole counts
    for all its fields) and, in a ``config`` object they passed, fields unlike the default."""
    explicit = set(overrides)
    default = config_class()
    for value in overrides.values():
        if dataclasses.is_dataclass(value):
            explicit |= set(_leaf_values(value))
    if config is not None:
        mine, base = _leaf_values(config), _leaf_values(default)
        explicit |= {k for k, v in mine.items() if base.get(k) != v}
    return explicit


def image_key(image) -> str:
    """A short fingerprint of an ``(H, W, C)`` image array: equal pixels, equal key."""
    import hashlib

    import numpy as np

    arr = np.ascontiguousarray(image)
    digest = hashlib.blake2b(arr.tobytes(), digest_size=16).hexdigest()
    return f"{arr.shape}:{arr.dtype}:{digest}"


def config_to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value):
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class Timer:
    """Wall-clock seconds per named stage: ``with timer("clip_scoring"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class Pipeline(ABC):
    """Base of every pipeline.

    ``pipe(image, prompts) == pipe.segment(pipe.prepare(image), prompts)``.

    Subclasses set ``name`` and ``config_class`` and implement ``prepare`` (everything that
    depends on the image only, computed once) and ``segment`` (per prompt set).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    #: config fields that name models; their folders' recommended settings apply
    model_fields: ClassVar[tuple[str, ...]] = ()
    #: how ``promptseg eval`` runs this pipeline on a kind of benchmark (``"instance"``,
    #: ``"semantic"``, ``"oneshot"``): options applied under the user's
    task_options: ClassVar[dict[str, dict[str, Any]]] = {}
    #: a dict shared by pipelines that may reuse each other's image work (``None``: no reuse);
    #: ``promptseg eval`` shares one across a grid and empties it after each sample
    stage_cache: dict | None = None

    def __init__(self, config=None, **overrides):
        given = config
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = replace_config(config, **overrides)
        self.model_settings: dict[str, Any] = {}
        if getattr(self.config, "use_model_settings", False):
            self.config, self.model_settings = self._apply_model_settings(
                self.config, explicit_options(given, self.config_class, overrides)
            )

    def _apply_model_settings(self, config, explicit: set[str]):
        """``config`` with the settings its models' folders recommend, under ``explicit``.

        Returns ``(config, record)``; the record (``applied``: option -> value, ``origin``:
        option -> model id) goes into every result's ``meta["model_settings"]``.
        """
        from promptseg.models.registry import model_folder
        from promptseg.models.settings import recommended_settings

        valid = _all_names(config) - set(self.model_fields) - {"use_model_settings"}
        folders = [(getattr(config, f), model_folder(getattr(config, f)))
                   for f in self.model_fields]
        settings, origin = recommended_settings(folders, self.name, valid)
        applied = {k: v for k, v in settings.items() if k not in explicit}
        if not applied:
            return config, {}
        record = {"applied": applied, "origin": {k: origin[k] for k in applied}}
        try:
            return replace_config(config, **applied), record
        except ConfigError as exc:
            raise ConfigError(
                f"the settings recommended by {', '.join(sorted(set(origin.values())))} are "
                f"not valid here ({exc}); pass use_model_settings=False to ignore them"
            ) from exc

    def with_options(self, **overrides):
        """This pipeline's config with per-call overrides applied (validated)."""
        return replace_config(self.config, **overrides)

    def resolve_config(self, config=None, **overrides):
        """``config`` (default: the pipeline's) with ``overrides`` applied."""
        base = config if config is not None else self.config
        return replace_config(base, **overrides) if overrides else base

    def check_request(self, prompts: tuple[str, ...], config) -> None:
        """Reject a prompt set the config cannot answer, before any expensive work."""
        return None

    @abstractmethod
    def prepare(self, image, config=None, **overrides):
        """Per-image work shared by every prompt; returns an immutable value."""

    @abstractmethod
    def segment(self, prepared, prompts, config=None, **overrides):
        """Per-prompt work on a prepared image; returns a Segmentation."""

    def __call__(self, image, prompts: str | Iterable[str], **overrides):
        """Segment ``prompts`` in ``image`` (path, bytes, PIL image or array).

        Keyword overrides change config fields for this call only.
        """
        config = self.with_options(**overrides)
        prompts = normalize_prompts(prompts, getattr(config, "max_prompts", 100))
        self.check_request(prompts, config)
        return self.segment(self.prepare(image, config=config), prompts, config=config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

"""Recommended pipeline settings that travel with a model folder.

A model's good settings depend on the model: SAM's automatic-mask filters
(``pred_iou_thresh`` 0.88, ``stability_score_thresh`` 0.95) are calibrated for SAM ViT-H on
SA-1B, and a small SAM trained for minutes predicts lower IoUs for its good masks, so those
defaults drop nearly every mask; a CLIP's similarity threshold for "the prompt names nothing"
depends on its embedding. So a model folder may hold :data:`SETTINGS_FILE` beside its
``config.json``::

    {
      "format": 1,
      "source": "how the values were chosen (a command, a validation split)",
      "pipelines": {
        "slip": {"pred_iou_thresh": 0.6, "stability_score_thresh": 0.85},
        "*": {"...": "any pipeline whose config has the field"}
      }
    }

Pipelines apply these under the user's explicit options (an option the user gives always
wins; ``use_model_settings=False`` turns them off) and record what they applied in the
result's ``meta["model_settings"]``. ``promptseg train sam`` writes the values it measured on
its validation split; the ShapeWorld zoo ships the values calibrated for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import WeightsError

__all__ = [
    "ANY_PIPELINE",
    "SETTINGS_FILE",
    "read_model_settings",
    "recommended_settings",
    "write_model_settings",
]

logger = logging.getLogger(__name__)

SETTINGS_FILE = "promptseg_settings.json"
ANY_PIPELINE = "*"
_FORMAT = 1


def _settings_path(folder: str | Path) -> Path:
    return Path(folder) / SETTINGS_FILE


def read_model_settings(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The ``pipelines`` table of a model folder's settings file; ``{}`` when it has none.

    Raises:
        WeightsError: the file exists but is not the format above (names the file).
    """
    path = _settings_path(folder)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not readable JSON ({exc}); fix or delete the file") from exc
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in pipelines.items()
    ):
        raise WeightsError(
            f"{path}: expected {{\"pipelines\": {{\"<pipeline>\": {{\"<option>\": value}}}}}}; "
            "fix or delete the file"
        )
    return pipelines


def write_model_settings(
    folder: str | Path, pipelines: Mapping[str, Mapping[str, Any]], source: str
) -> Path:
    """Write (atomically) the recommended settings of the model in ``folder``.

    Args:
        folder: a model folder.
        pipelines: ``{pipeline name or "*": {option: value}}``.
        source: how the values were chosen, for the reader of the file.

    Returns:
        The path written.
    """
    path = _settings_path(folder)
    record = {"format": _FORMAT, "source": source,
              "pipelines": {str(k): dict(v) for k, v in pipelines.items()}}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(record), indent=2) + "\n", encoding="utf-8")
    return path


def recommended_settings(
    folders: Iterable[tuple[str, Path | None]], pipeline: str, valid: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings the models recommend for ``pipeline``, and which model each came from.

    Args:
        folders: ``(model id, folder or None)`` per model of the pipeline, in order; a later
            model's value for the same option replaces an earlier one's.
        pipeline: the pipeline's name; its own table wins over the ``"*"`` table.
        valid: option names the pipeline's config accepts; ``"*"`` entries outside it are
            skipped (they are meant for other pipelines), a pipeline's own table must hold
            only valid names.

    Returns:
        ``(settings, origin)``: ``{option: value}`` and ``{option: model id}``.

    Raises:
        WeightsError: a folder's table for ``pipeline`` names an option the pipeline lacks.
    """
    settings: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for model_id, folder in folders:
        if folder is None:
            continue
        tables = read_model_settings(folder)
        general = {k: v for k, v in tables.get(ANY_PIPELINE, {}).items() if k in valid}
        own = tables.get(pipeline, {})
        unknown = sorted(set(own) - valid)
        if unknown:
            raise WeightsError(
                f"{_settings_path(folder)} recommends unknown {pipeline} option(s) "
                f"{', '.join(unknown)}; fix the file or pass use_model_settings=False"
            )
        for key, value in {**general, **own}.items():
            if key in settings and settings[key] != value:
                logger.info("%s: %s=%r from %s replaces %r from %s", pipeline, key, value,
                            model_id, settings[key], origin[key])
            settings[key] = value
            origin[key] = str(model_id)
    return settings, origin

"""Benchmark readers for ``promptseg eval``, registered by ``--dataset`` name.

Each reader reads the benchmark's own published on-disk format and yields
:class:`~promptseg.eval.datasets.base.Sample` records; ``docs/benchmarks.md`` lists where each
is published and the folder layout expected under ``--root``.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from promptseg.errors import ConfigError
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample

__all__ = ["DATASETS", "EvalDataset", "LoadedSample", "Sample", "list_datasets", "load_dataset"]

_P = "promptseg.eval.datasets."

# --dataset name -> (module, class, fixed keyword arguments); imported on demand so that
# `promptseg eval --help` and list_datasets() read no reader module
DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # instance: one object per prompt, scored by IoU
    "coco": (_P + "coco", "CocoObjects", {}),
    "refcoco": (_P + "referring", "RefCOCO", {"dataset": "refcoco"}),
    "refcoco+": (_P + "referring", "RefCOCO", {"dataset": "refcoco+"}),
    "refcocog": (_P + "referring", "RefCOCO", {"dataset": "refcocog"}),
    "phrasecut": (_P + "referring", "PhraseCut", {}),
    "folder": (_P + "folders", "MaskFolder", {}),
    "thinobject5k": (_P + "folders", "MaskFolder", {"preset": "thinobject5k"}),
    "dis5k": (_P + "folders", "MaskFolder", {"preset": "dis5k"}),
    "big": (_P + "folders", "MaskFolder", {"preset": "big"}),
    "chest-xray": (_P + "folders", "MaskFolder", {"preset": "chest-xray"}),
    "table": (_P + "table", "TableDataset", {}),
    "shapeworld": (_P + "shapeworld", "ShapeWorldFiles", {}),
    # semantic: a label map per image, scored by a confusion matrix ([CaR] Sec. 4.1)
    "voc20": (_P + "semantic", "PascalVOC", {"num_classes": 20}),
    "voc21": (_P + "semantic", "PascalVOC", {"num_classes": 21}),
    "context59": (_P + "semantic", "PascalContext", {"num_classes": 59}),
    "context60": (_P + "semantic", "PascalContext", {"num_classes": 60}),
    "coco-object": (_P + "semantic", "CocoObject", {}),
    "ade150": (_P + "semantic", "ADE20K", {}),
    # one-shot: an example image and mask per prompt ([CLIPSeg] Tables 5-7)
    "pascal5i": (_P + "pascal5i", "Pascal5i", {}),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` and ``promptseg eval --dataset``."""
    return sorted(DATASETS)


def load_dataset(name: str, root: str | Path, split: str | None = None, **options: Any):
    """The reader of benchmark ``name`` over the data in ``root``.

    Args:
        name: a name from :func:`list_datasets`.
        root: the folder holding the benchmark, laid out as it is published.
        split: the split to read; ``None`` gives the reader's default (the papers' test split).
        **options: reader options (e.g. ``manifest=`` for ``coco``, ``prompt=`` for
            ``folder``).

    Raises:
        ConfigError: unknown dataset name (with the closest names).
        InputError: missing root, unknown split, unreadable files.
    """
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown dataset {name!r}.{hint} Available: {', '.join(list_datasets())}"
        )
    module, cls, fixed = DATASETS[name]
    reader = getattr(importlib.import_module(module), cls)
    kwargs = {**fixed, **options}
    if split is not None:
        kwargs["split"] = split
    return reader(root, **kwargs)

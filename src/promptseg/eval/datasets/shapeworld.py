"""ShapeWorld scenes written to disk, as ``promptseg eval --dataset shapeworld``.

Reads what ``promptseg data shapeworld --out DIR --split S`` writes
(:func:`promptseg.data.shapeworld.write_dataset`): ``instances_{tag}.json`` (COCO instances,
RLE masks, image id = scene index + 1), ``phrases_{tag}.json`` (one entry per prompt:
``image_id``, ``file_name``, ``phrase``, ``kind``, ``seen``, ``ann_ids``) and
``images/{tag}_{index:06d}.png``, where ``tag`` is the split, or ``novel_{split}`` for the
novel domain. One sample per scene with all its prompts; each prompt's tag is its kind
(``single``, ``multi``, ``attribute``, ``referring``, ``thin``, ``negative``), its group in
the grouping ``combination`` is ``seen`` or ``held-out`` (whether it names or targets a
colour-shape pair held out of training), and its truth the union of its targets' masks
(empty for a negative), as :meth:`promptseg.data.shapeworld.Scene.target_mask` gives it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.data.shapeworld import DOMAINS, PROMPT_KINDS, SPLITS
from promptseg.errors import InputError
from promptseg.eval.datasets._common import (
    CocoIndex,
    annotation_mask,
    read_coco_index,
    read_image,
    read_json,
)
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample, check_split

__all__ = ["ShapeWorldFiles"]


class ShapeWorldFiles(EvalDataset):
    """ShapeWorld files: one sample per scene, one prompt per tagged phrase.

    Args:
        root: the ``--out`` folder of ``promptseg data shapeworld``.
        split: ``"test"`` (default), ``"val"`` or ``"train"``.
        domain: ``"base"`` (default) or ``"novel"`` (files tagged ``novel_{split}``).
        kinds: only prompts of these kinds (default: all); scenes left without a prompt are
            skipped. A comma-separated string is accepted (``--dataset-option
            kinds=single,thin``).

    Sample ids are ``"shapeworld/{tag}/scene-{index}"``; ``info`` holds ``file_name`` and
    ``index``; ``groups["combination"]`` is per prompt ``"seen"`` or ``"held-out"``.

    Raises:
        InputError: missing root or files (the message lists the tags found in ``root``);
            unknown split or domain; a phrase naming an unknown image or annotation.
    """

    name = "shapeworld"
    task = "instance"
    source = "promptseg data shapeworld (promptseg.data.shapeworld.write_dataset)"

    def __init__(self, root: str | Path, split: str = "test", domain: str = "base",
                 kinds: Sequence[str] | str | None = None):
        super().__init__(root, check_split(split, SPLITS, self.name))
        if domain not in DOMAINS:
            raise InputError(f"dataset 'shapeworld': unknown domain {domain!r}; choose "
                             f"{', '.join(DOMAINS)}")
        if isinstance(kinds, str):
            kinds = [k.strip() for k in kinds.split(",") if k.strip()]
        self.kinds = tuple(kinds) if kinds else tuple(PROMPT_KINDS)
        unknown = sorted(set(self.kinds) - set(PROMPT_KINDS))
        if unknown:
            raise InputError(f"dataset 'shapeworld': unknown prompt kinds {unknown}; use "
                             f"{', '.join(PROMPT_KINDS)}")
        self.domain = domain
        self.tag = split if domain == "base" else f"{domain}_{split}"
        instances = self.root / f"instances_{self.tag}.json"
        phrases_path = self.root / f"phrases_{self.tag}.json"
        if not instances.is_file() or not phrases_path.is_file():
            found = sorted(p.name[len("phrases_"):-len(".json")]
                           for p in self.root.glob("phrases_*.json"))
            raise InputError(
                f"dataset 'shapeworld': {instances.name} and {phrases_path.name} are needed in "
                f"{str(self.root)!r}; found: {', '.join(found) or 'none'} (write them with "
                f"promptseg data shapeworld --out {self.root} --split {split})"
            )
        what = "dataset 'shapeworld'"
        self.index: CocoIndex = read_coco_index(instances, what)
        phrases = read_json(phrases_path, what)
        if not isinstance(phrases, list):
            raise InputError(f"{what}: {phrases_path} must hold a list of phrases")
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for n, p in enumerate(phrases):
            try:
                image_id = int(p["image_id"])
                ann_ids = [int(a) for a in p["ann_ids"]]
                str(p["phrase"]), str(p["kind"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{what}: {phrases_path.name} entry {n} needs image_id, "
                                 "phrase, kind and ann_ids") from exc
            if image_id not in self.index.images:
                raise InputError(f"{what}: {phrases_path.name} entry {n} names image "
                                 f"{image_id}, which is not in {instances.name}")
            bad = [a for a in ann_ids if a not in self.index.annotations]
            if bad:
                raise InputError(f"{what}: {phrases_path.name} entry {n} names annotation "
                                 f"{bad[0]}, which is not in {instances.name}")
            if str(p["kind"]) in self.kinds:
                by_image[image_id].append(p)
        self._scenes = [(i, by_image[i]) for i in sorted(self.index.images) if by_image[i]]

    def samples(self) -> Iterator[Sample]:
        for image_id, phrases in self._scenes:
            img = self.index.images[image_id]
            path = self.root / str(img["file_name"])
            sid = f"shapeworld/{self.tag}/scene-{image_id - 1}"
            targets = [[self.index.annotations[int(a)] for a in p["ann_ids"]] for p in phrases]
            yield Sample(
                id=sid,
                image=path,
                prompts=tuple(str(p["phrase"]) for p in phrases),
                tags=tuple(str(p["kind"]) for p in phrases),
                loader=_SceneLoader(path, targets, sid),
                groups={"combination": tuple("seen" if p.get("seen", True) else "held-out"
                                             for p in phrases)},
                info={"file_name": str(img["file_name"]), "index": image_id - 1},
            )

    def __len__(self) -> int:
        return len(self._scenes)

    def describe(self):
        described = {**super().describe(), "domain": self.domain}
        if self.kinds != tuple(PROMPT_KINDS):
            described["kinds"] = list(self.kinds)
        return described


class _SceneLoader:
    def __init__(self, path: Path, targets: list[list[dict[str, Any]]], sid: str):
        self.path, self.targets, self.sid = path, targets, sid

    def __call__(self) -> LoadedSample:
        image = read_image(self.path, f"sample {self.sid}: image")
        h, w = image.shape[:2]
        decoded: dict[int, np.ndarray] = {}
        masks = np.zeros((len(self.targets), h, w), dtype=bool)
        for q, anns in enumerate(self.targets):
            for ann in anns:
                key = int(ann["id"])
                if key not in decoded:
                    decoded[key] = annotation_mask(ann, h, w, f"sample {self.sid}: "
                                                   f"annotation {key}")
                if decoded[key].shape != (h, w):
                    return LoadedSample(image=image, masks=decoded[key][None])  # load() reports
                masks[q] |= decoded[key]
        return LoadedSample(image=image, masks=masks)

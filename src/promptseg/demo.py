"""``promptseg demo``: the whole toolkit on one ShapeWorld scene, offline, with the zoo.

Generates a test scene (its right answers are known exactly), asks a pipeline several of the
scene's own prompts (one per prompt kind), writes the scene, the overlay of the answers and a
JSON record, and scores each answer against the truth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import InputError

__all__ = ["DEMO_KINDS", "DemoResult", "run_demo"]

# one prompt per kind, in this order, as the scene allows
DEMO_KINDS = ("single", "multi", "attribute", "thin", "referring", "negative")


@dataclass
class DemoResult:
    """What :func:`run_demo` did: one row per prompt and the files it wrote."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def mean_iou(self) -> float:
        scored = [r["iou"] for r in self.rows if r["iou"] is not None]
        return float(np.mean(scored)) if scored else float("nan")


def choose_prompts(scene, max_prompts: int = 5) -> list:
    """One prompt per kind of :data:`DEMO_KINDS` the scene has, up to ``max_prompts``; a
    negative one is always kept (it shows an empty answer)."""
    chosen = []
    for kind in DEMO_KINDS:
        found = [p for p in scene.prompts if p.kind == kind]
        if found:
            chosen.append(found[0])
    negatives = [p for p in chosen if p.kind == "negative"]
    others = [p for p in chosen if p.kind != "negative"]
    return others[: max(0, max_prompts - len(negatives))] + negatives


def run_demo(
    out: str | os.PathLike = "promptseg-demo",
    seed: int = 0,
    method: str = "slip",
    clip: str = "shapeworld/clip",
    sam: str = "shapeworld/sam",
    prompts: list[str] | None = None,
    domain: str = "base",
    device: str = "auto",
    max_prompts: int = 5,
    **options: Any,
) -> DemoResult:
    """Segment a ShapeWorld test scene with a pipeline and score it against the truth.

    Args:
        out: folder for ``scene.png``, ``overlay.png`` (the answers) and ``demo.json``.
        seed: picks the scene (``generate_scene(0, seed, "test", domain)``).
        method: a pipeline name (``promptseg methods``).
        clip, sam: model ids or folders (default: the ShapeWorld zoo).
        prompts: your own prompts instead of the scene's; they are answered but not scored.
        domain: ``base`` or ``novel`` scenes.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        max_prompts: how many of the scene's prompts to ask.
        options: further pipeline settings (e.g. ``threshold=0.25``); they win over the
            settings the model folders recommend (the zoo's
            :data:`promptseg.zoo.SHAPEWORLD_SLIP_SETTINGS`), which apply by themselves.
    """
    import time

    from promptseg.data.shapeworld import generate_scene
    from promptseg.eval.metrics import iou
    from promptseg.pipelines import load_pipeline

    if max_prompts < 1:
        raise InputError(f"max_prompts must be >= 1, got {max_prompts}")
    scene = generate_scene(0, seed=seed, split="test", domain=domain)
    if prompts:
        asked = [(text, None) for text in prompts]
    else:
        asked = [(p.text, p) for p in choose_prompts(scene, max_prompts)]
    result = DemoResult()
    t0 = time.perf_counter()
    pipe = load_pipeline(method, clip=clip, sam=sam, device=device, **options)
    result.seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = pipe(scene.image, [text for text, _ in asked])
    result.seconds["segment"] = time.perf_counter() - t0
    for q, (text, truth_prompt) in enumerate(asked):
        mine = seg.for_prompt(q)
        pred = mine.masks.any(axis=0) if len(mine) else np.zeros(scene.image.shape[:2], bool)
        score = float(mine.scores.max()) if len(mine) else None
        value = None
        if truth_prompt is not None:
            value = iou(pred, scene.target_mask(truth_prompt))
        result.rows.append({
            "prompt": text, "kind": truth_prompt.kind if truth_prompt else "yours",
            "masks": len(mine), "score": score, "iou": value,
            "truth_pixels": int(scene.target_mask(truth_prompt).sum()) if truth_prompt else None,
            "predicted_pixels": int(pred.sum()),
        })
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    with atomic_write(folder / "scene.png") as tmp:
        Image.fromarray(scene.image).save(tmp)
    seg.save_overlay(scene.image, folder / "overlay.png")
    record = {"seed": seed, "domain": domain, "method": method, "clip": clip, "sam": sam,
              "caption": scene.caption, "rows": result.rows, "mean_iou": result.mean_iou,
              "seconds": result.seconds, "options": options}
    with atomic_write(folder / "demo.json") as tmp:
        tmp.write_text(json.dumps(to_jsonable(record), indent=2) + "\n")
    result.files = {"scene": folder / "scene.png", "overlay": folder / "overlay.png",
                    "json": folder / "demo.json"}
    return result

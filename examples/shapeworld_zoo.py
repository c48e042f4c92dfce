"""The Python API on a ShapeWorld scene with the zoo models, offline.

Run: ``python examples/shapeworld_zoo.py [OUT_DIR]``. It generates a test scene, segments
three of its prompts with ``slip`` (``shapeworld/clip`` + ``shapeworld/sam``, shipped in the
package), prints each answer's IoU against the exact truth, and writes the overlay.
"""

from __future__ import annotations

import sys
from pathlib import Path

import promptseg
from promptseg.data.shapeworld import generate_scene
from promptseg.eval.metrics import iou


def main(out: str | Path = "shapeworld-example") -> list[float]:
    scene = generate_scene(index=0, seed=3, split="test")
    prompts = [p for p in scene.prompts if p.kind in ("single", "attribute", "negative")][:3]
    # the zoo's SAM is small: its folder recommends looser mask filters, and the CLIP's a
    # threshold (promptseg_settings.json); the pipeline applies them by itself
    pipe = promptseg.load_pipeline("slip", clip="shapeworld/clip", sam="shapeworld/sam")
    seg = pipe(scene.image, [p.text for p in prompts])
    scores = []
    for q, prompt in enumerate(prompts):
        answer = seg.for_prompt(q).masks.any(axis=0)
        scores.append(iou(answer, scene.target_mask(prompt)))
        print(f"{prompt.text!r:32} {prompt.kind:10} IoU {scores[-1]:.3f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seg.save_overlay(scene.image, out / "overlay.png")
    return scores


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Which visual prompt lets CLIP pick the right segment: the segment on black, or a tight crop?

The medical LVLM paper (``papers/lvlm-medical-sam-clip.txt``, Sec. V-A "Next Steps") asks
whether CLIP is thrown off by a masked image that is "mostly black" and whether cropping to the
segment would do better. This benchmark measures exactly the CLIP selection step of ``slip``:

1. It trains a small CLIP (transformers architecture, the real CLIP tokenizer) from scratch on
   single-object pictures with captions such as "a red circle", as SLIP fine-tunes CLIP on
   single-Pokemon images. The model is throw-away, made only for this measurement.
2. It renders scenes of 2-5 such objects on a textured ground and gives the ``slip`` scoring
   stage (:func:`promptseg.stages.scoring.encode_candidates` and ``score_prompts``) the exact
   instance masks plus the ground as candidates (oracle proposals, so SAM plays no part).
3. For each object, the prompt is its caption; a hit is the top candidate being that object.

It prints the selection accuracy for each visual prompt spec, on the same scenes and model.

Run: ``python benchmarks/visual_prompt_ablation.py [--steps 1500] [--scenes 200]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402
import torch  # noqa: E402
from _report import table  # noqa: E402

COLOURS = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (40, 60, 220),
    "yellow": (235, 215, 30), "purple": (140, 40, 170), "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
CAPTIONS = [f"a {c} {s}" for c in COLOURS for s in SHAPES]
SPECS = ("black", "black+crop", "black+crop:0.2", "gray+crop:0.2", "crop:0.2", "blur+ellipse",
         "gray")


def draw_shape(canvas: np.ndarray, shape: str, colour, cx: int, cy: int, r: int) -> np.ndarray:
    """Draw a filled shape of radius ``r`` and return its mask ``(H, W) bool``."""
    mask = np.zeros(canvas.shape[:2], np.uint8)
    if shape == "circle":
        cv2.circle(mask, (cx, cy), r, 1, -1)
    elif shape == "square":
        cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:  # cross
        t = max(2, r // 3)
        cv2.rectangle(mask, (cx - r, cy - t), (cx + r, cy + t), 1, -1)
        cv2.rectangle(mask, (cx - t, cy - r), (cx + t, cy + r), 1, -1)
    jitter = np.random.default_rng(cx * 7919 + cy).integers(-15, 16, 3)
    canvas[mask > 0] = np.clip(np.array(colour) + jitter, 0, 255)
    return mask > 0


def ground(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Light textured ground: a random pale tone plus noise."""
    base = rng.integers(150, 235, 3)
    noise = rng.normal(0, 12, (h, w, 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def single_object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, int]:
    label = int(rng.integers(len(CAPTIONS)))
    colour, shape = CAPTIONS[label].split()[1:]
    img = ground(size, size, rng)
    r = int(rng.integers(size // 4, size // 2 - 2))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    draw_shape(img, shape, COLOURS[colour], cx, cy, r)
    return img, label


def scene(rng: np.random.Generator, size: int):
    """2-5 non-overlapping objects with distinct captions; masks (K, H, W) and labels."""
    img = ground(size, size, rng)
    k = int(rng.integers(2, 6))
    labels = rng.choice(len(CAPTIONS), size=k, replace=False)
    masks, taken = [], np.zeros((size, size), bool)
    for label in labels:
        colour, shape = CAPTIONS[label].split()[1:]
        for _ in range(50):
            r = int(rng.integers(size // 14, size // 7))
            cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
            box = np.zeros_like(taken)
            box[max(0, cy - r - 2) : cy + r + 3, max(0, cx - r - 2) : cx + r + 3] = True
            if not (box & taken).any():
                break
        masks.append(draw_shape(img, shape, COLOURS[colour], cx, cy, r))
        taken |= box
    return img, np.stack(masks), labels


def train_clip(folder: Path, steps: int, size: int, seed: int) -> float:
    """Train a tiny CLIP on single-object pictures; returns seconds taken."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from promptseg.models.clip_tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = CLIPConfig(
        text_config={"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77},
        vision_config={"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4,
                       "num_attention_heads": 4, "image_size": size, "patch_size": 8},
        projection_dim=64,
    )
    model = CLIPModel(config)
    tokenizer = build_clip_tokenizer()
    images = CLIPImageProcessor(size={"shortest_edge": size},
                                crop_size={"height": size, "width": size})
    text = tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    mean = torch.tensor(images.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(images.image_std).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        batch = [single_object(rng, size) for _ in range(64)]
        pixels = torch.tensor(np.stack([b[0] for b in batch])).permute(0, 3, 1, 2).float() / 255
        labels = torch.tensor([b[1] for b in batch])
        image_emb = model.get_image_features(pixel_values=(pixels - mean) / std).pooler_output
        text_emb = model.get_text_features(**text).pooler_output
        logits = model.logit_scale.exp() * torch.nn.functional.normalize(image_emb, dim=-1) @ \
            torch.nn.functional.normalize(text_emb, dim=-1).T
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == steps - 1:
            acc = (logits.argmax(1) == labels).float().mean().item()
            print(f"  step {step:5d}  loss {loss.item():.3f}  train acc {acc:.2f}")
    model.eval()
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--scene-size", type=int, default=256)
    parser.add_argument("--clip-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import promptseg
    from promptseg.stages.scoring import encode_candidates, score_prompts

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ablation-clip"
        print(f"training a {args.clip_size}px CLIP on {len(CAPTIONS)} captions, "
              f"{args.steps} steps")
        seconds = train_clip(folder, args.steps, args.clip_size, args.seed)
        print(f"  trained in {seconds:.0f} s ({torch.get_num_threads()} threads)")
        clip = promptseg.load_clip(str(folder), device="cpu")
        text = clip.encode_text(CAPTIONS)

        rng = np.random.default_rng(args.seed + 1)
        scenes = [scene(rng, args.scene_size) for _ in range(args.scenes)]
        hits = {spec: 0 for spec in SPECS}
        total = 0
        for img, masks, labels in scenes:
            candidates = np.concatenate([masks, ~masks.any(0)[None]])  # objects + the ground
            total += len(labels)
            for spec in SPECS:
                feats = encode_candidates(clip, img, candidates, spec)
                scored = score_prompts(feats, text[labels], len(labels))
                hits[spec] += int((scored.scores.argmax(0) == np.arange(len(labels))).sum())
        print(table(f"selection accuracy, {total} prompts in {args.scenes} scenes (oracle "
                    "segments + the ground as candidates; same model, same scenes)",
                    ("visual prompt", "accuracy"),
                    [(spec, f"{hits[spec] / total:.3f}") for spec in SPECS]))


if __name__ == "__main__":
    main()
